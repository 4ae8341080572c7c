// The environment the PyTorch reference runs in, and what each side of a bench runs.
//
// Our kernels are pinned in-process: models/compute/blas.ts sets OPENBLAS_CORETYPE=Haswell and
// OPENBLAS_NUM_THREADS=1, models/compute/onednn.ts ONEDNN_MAX_CPU_ISA=AVX2 (Deno.env.set, when each
// library loads). A child spawned with this process's environment inherits them: PyTorch's OpenBLAS
// forced onto the Haswell kernels and 1 thread, its oneDNN onto AVX2 — a handicap that overstates our
// ratios wherever the CPU's own kernels are faster. So the environment the machine gave this process is
// snapshotted when this module is first evaluated (tests/bench/main.ts imports it first, before any
// area; blas.ts and onednn.ts set nothing at import time, only when they load), and the reference is spawned with
// exactly that copy (clearEnv: true): PyTorch runs as it would on the user's machine.
// This module imports no library module (describeSides loads them dynamically, after the snapshot).
import { fileURLToPath } from "node:url";

/** Debian's interpreter, where python3-torch lives (not a pyenv one). */
export const PYTHON = "/usr/bin/python3";
const PROBE = fileURLToPath(new URL("torch_env.py", import.meta.url));

function readEnv(): Readonly<Record<string, string>> | null {
  try {
    return Object.freeze(Deno.env.toObject());
  } catch {
    return null; // no --allow-env: nothing here can change the environment either
  }
}
const ORIGINAL = readEnv();

/** A copy of the environment this process started with (null without --allow-env). */
export function originalEnv(): Record<string, string> | null {
  return ORIGINAL && { ...ORIGINAL };
}

/**
 * `cmd` spawned in the environment this process started with, whatever has been set in-process
 * since (the PyTorch reference, and anything that must see the machine's own environment).
 */
export function originalEnvCommand(cmd: string, options: Omit<Deno.CommandOptions, "env" | "clearEnv"> = {}) {
  return new Deno.Command(cmd, ORIGINAL ? { ...options, clearEnv: true, env: { ...ORIGINAL } } : options);
}

/** Whether Debian's python3 can import torch (spawned like the reference). */
export async function torchAvailable(): Promise<boolean> {
  const out = await originalEnvCommand(PYTHON, { args: ["-c", "import torch"], stdout: "null", stderr: "null" })
    .output().catch(() => null);
  return !!out?.success;
}

/** The ISA flags that decide which kernels run (as /proc/cpuinfo names them). */
const ISA_FLAGS = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"];

export interface Cpu {
  model: string;
  vendor: string;
  /** Of ISA_FLAGS, those this CPU has. */
  isa: string[];
  /** The README's machine class: "AMD AVX2", "AMD AVX-512", "Intel AVX-512", … */
  cls: string;
}

/** The CPU from /proc/cpuinfo (Linux); "unknown" fields elsewhere. */
export function cpu(): Cpu {
  let info = "";
  try {
    info = Deno.readTextFileSync("/proc/cpuinfo");
  } catch { /* not Linux */ }
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(info)?.[1].trim();
  const flags = new Set(field("flags")?.split(/\s+/) ?? []);
  const vendor = field("vendor_id") ?? "unknown";
  const isa = ISA_FLAGS.filter((f) => flags.has(f));
  const make = vendor === "AuthenticAMD" ? "AMD" : vendor === "GenuineIntel" ? "Intel" : vendor;
  const width = flags.has("avx512f") ? "AVX-512" : flags.has("avx2") ? "AVX2" : "no AVX2";
  return { model: field("model name") ?? "unknown", vendor, isa, cls: `${make} ${width}` };
}

/** "load average …: a b c", with a warning when the 1-minute figure is ≥ 1 (timings move with it). */
export function loadLine(when: string): string {
  const l = Deno.loadavg();
  const warn = l[0] >= 1 ? ` — not a quiet machine (≥ 1): timings below move with the load` : "";
  return `load average ${when}: ${l.map((x) => x.toFixed(2)).join(" ")}${warn}`;
}

/** What torch_env.py reports about PyTorch in the machine's own environment. */
export interface TorchEnv {
  torch: string;
  threads: number;
  mkldnn: boolean;
  /** From torch.__config__.show(): BLAS_INFO, LAPACK_INFO, USE_MKLDNN, CPU capability, oneDNN version. */
  config: Record<string, string>;
  /** The OpenBLAS library mapped into the process after import torch (and a matmul), if any. */
  openblas: { path: string; corename: string; config: string; threads: number } | null;
  /** oneDNN's verbose lines from one convolution (ONEDNN_VERBOSE=1 set inside the probe). */
  onednn: { isa: string | null; impl: string | null; version: string | null };
  /** The OPENBLAS_* / ONEDNN_* / OMP_* variables the probe's process saw (before its own verbose flag). */
  env: Record<string, string>;
}

/** PyTorch's side, probed with tests/bench/torch_env.py in the original environment; a string when it cannot run. */
export async function torchEnv(): Promise<TorchEnv | string> {
  const out = await originalEnvCommand(PYTHON, { args: [PROBE], stderr: "piped" }).output().catch((e) => e as Error);
  if (out instanceof Error) return `unknown (${out.message})`;
  if (!out.success) return `unknown (torch_env.py failed: ${new TextDecoder().decode(out.stderr).trim().slice(-300)})`;
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last) as TorchEnv;
  } catch {
    return `unknown (torch_env.py printed ${JSON.stringify(last.slice(0, 200))})`;
  }
}

/** The variables that pin kernels, as the machine's environment set them. */
const PINS = ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"];

let described: Promise<void> | undefined;

/**
 * Prints, once per process, what each side runs: the CPU (model, ISA, class), the load at start,
 * the kernel-pinning variables the machine's own environment sets, ours (OpenBLAS core type and
 * threads, oneDNN ISA) and PyTorch's (BLAS, oneDNN, the OpenBLAS core it runs), probed in the
 * machine's environment (torch: false leaves PyTorch's side out: tests). Loads our libraries
 * (after the snapshot, which is all that matters).
 */
export function describeSides({ torch = true } = {}): Promise<void> {
  return described ??= (async () => {
    const c = cpu();
    const lacking = ["avx512f", "amx_tile"].filter((f) => !c.isa.includes(f)).map((f) => `no ${f}`);
    console.log(`CPU: ${c.model} (${c.vendor}), ${navigator.hardwareConcurrency} logical CPUs`);
    console.log(`  ISA: ${[...c.isa, ...lacking].join(", ")}; machine class: ${c.cls}`);
    console.log(loadLine("at start"));
    const orig = ORIGINAL ?? {};
    const set = PINS.filter((k) => orig[k] !== undefined).map((k) => `${k}=${orig[k]}`);
    if (orig.OPENBLAS_CORETYPE) {
      console.log(
        `  OPENBLAS_CORETYPE=${orig.OPENBLAS_CORETYPE} is set by this machine's environment: it forces that kernel ` +
          `family on PyTorch's OpenBLAS too (unset: chosen for this CPU)`,
      );
    }
    console.log(
      `  machine's environment: ${set.length ? set.join(" ") : `none of ${PINS.join(", ")} set`} ` +
        `(PyTorch runs in it; ours pins its own in-process)`,
    );
    const { loadBlas } = await import("../../models/compute/blas.ts");
    const { loadOnednn } = await import("../../models/compute/onednn.ts");
    const blas = loadBlas(), dnnl = loadOnednn();
    const forced = ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "ONEDNN_MAX_CPU_ISA"]
      .map((k) => [k, envGet(k)] as const).filter(([k, v]) => v !== undefined && v !== orig[k])
      .map(([k, v]) => `${k}=${v}`);
    console.log(`ours: ${blas.blas ? blas.blas.description : `no OpenBLAS (${blas.reason})`}`);
    console.log(`  ${dnnl.dnnl ? dnnl.dnnl.description : dnnl.reason}`);
    console.log(`  set in-process by us: ${forced.length ? forced.join(" ") : "nothing"} (not passed to PyTorch)`);
    if (!torch) return;
    if (!(await torchAvailable())) return console.log(`PyTorch: not installed (Debian's python3-torch)`);
    const t = await torchEnv();
    if (typeof t === "string") return console.log(`PyTorch: ${t}`);
    const cfg = (k: string) => t.config[k] ?? "unknown";
    const ob = t.openblas
      ? `${t.openblas.config.split(" ").slice(0, 2).join(" ")} core ${t.openblas.corename}, ` +
        `${t.openblas.threads} thread(s) (${t.openblas.path})`
      : "unknown (no OpenBLAS library mapped)";
    console.log(`PyTorch ${t.torch} (in the machine's environment; intra-op threads by default: ${t.threads}):`);
    console.log(`  BLAS: build's BLAS_INFO=${cfg("BLAS_INFO")}; runs ${ob}`);
    console.log(
      `  oneDNN: mkldnn available ${t.mkldnn}, ${t.onednn.version ?? cfg("oneDNN")}; ISA ${t.onednn.isa ?? "unknown"}` +
        `; a convolution ran ${t.onednn.impl ?? "unknown (no oneDNN primitive reported)"}`,
    );
    console.log(`  ATen CPU capability: ${cfg("CPU capability usage")}`);
  })();
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
