// What machine a run ran on: part of the run's record (never of its outputs or key), so a
// report can say where each number came from and a difference between machines can be traced.
import { release } from "node:os";

export interface HostFacts {
  cpu: string;
  cores: number;
  /** The vector extensions that decide which kernels a library may pick. */
  isa: string[];
  os: string;
  deno: string;
  /** `git rev-parse HEAD` of the project, "+dirty" when it has uncommitted changes. */
  commit: string;
  /** Environment variables that steer native kernels and threads, as set for the worker. */
  env: Record<string, string>;
}

const ISA = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile", "neon"];
const STEERING = /^(OPENBLAS_|OMP_|ONEDNN_|DNNL_|MKL_|GOTO_|PIPELINE_THREADS|COMPUTE_)/;

let cached: Omit<HostFacts, "env"> | undefined;

export async function hostFacts(root: string, env: Record<string, string | undefined>): Promise<HostFacts> {
  cached ??= await readHost(root);
  const steering = Object.entries(env).filter(([k, v]) => STEERING.test(k) && v !== undefined);
  return { ...cached, env: Object.fromEntries(steering.sort()) as Record<string, string> };
}

async function readHost(root: string): Promise<Omit<HostFacts, "env">> {
  let cpu = "unknown", flags: string[] = [];
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpu;
    flags = (/^(?:flags|Features)\s*:\s*(.+)$/m.exec(info)?.[1] ?? "").split(/\s+/);
  } catch { /* not Linux: leave unknown */ }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    isa: ISA.filter((f) => flags.includes(f)),
    os: `${Deno.build.os} ${release()} (${Deno.build.arch})`,
    deno: Deno.version.deno,
    commit: await gitCommit(root),
  };
}

async function gitCommit(root: string): Promise<string> {
  const git = (...args: string[]) =>
    new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "null" }).output();
  try {
    const head = await git("rev-parse", "HEAD");
    if (!head.success) return "not a git checkout";
    const dirty = await git("status", "--porcelain", "--untracked-files=no");
    return new TextDecoder().decode(head.stdout).trim() +
      (new TextDecoder().decode(dirty.stdout).trim() ? "+dirty" : "");
  } catch {
    return "git not available";
  }
}
