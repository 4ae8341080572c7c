// Small C kernels kept as source in TypeScript modules (so that the source is part of the
// cache key of every stage that runs them) and compiled on first use with the machine's C
// compiler (Debian package `gcc`; `.ci/setup` installs it) into a shared library named by
// the source's and flags' hash, under $PIPELINE_NATIVE_DIR (default: the OS temp folder).
// The kernels write their arithmetic with intrinsics, and no flag allows the compiler to
// reorder or contract floating-point operations (no -ffast-math; -ffp-contract=off), so
// the bits do not depend on the compiler's version. No compiler, or no FFI permission:
// null with the reason, and the caller uses its fallback (which gives the same bits).
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { envGet } from "./onednn.ts";

/** Whether /proc/cpuinfo lists every one of these flags (false if it cannot be read). */
export function cpuHas(...flags: string[]): boolean {
  try {
    const have = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
    return flags.every((f) => have.includes(f));
  } catch {
    return false;
  }
}

function compile(source: string, flags: string[], out: string): string | null {
  const dir = Deno.makeTempDirSync({ dir: join(out, ".."), prefix: ".build-" });
  try {
    const src = join(dir, "kernel.c"), lib = join(dir, "kernel.so");
    Deno.writeTextFileSync(src, source);
    const cc = envGet("CC") ?? "gcc";
    let r: Deno.CommandOutput;
    try {
      r = new Deno.Command(cc, { args: [...flags, "-shared", "-fPIC", src, "-o", lib], stderr: "piped" }).outputSync();
    } catch (e) {
      return `no C compiler (${cc}: ${e instanceof Error ? e.message : e}; Debian: apt-get install gcc)`;
    }
    if (!r.success) {
      const msg = new TextDecoder().decode(r.stderr).split("\n").find((l) => /error/.test(l)) ?? "failed";
      return `${cc} could not build it: ${msg.trim()}`;
    }
    Deno.renameSync(lib, out); // atomic: a concurrent process sees the whole library or none
    return null;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * The library built from `source` with `flags` (cached by their hash), opened with `symbols`;
 * or null with the reason it could not be.
 */
export function nativeLibrary<S extends Deno.ForeignLibraryInterface>(
  name: string,
  source: string,
  flags: string[],
  symbols: S,
): { lib: Deno.DynamicLibrary<S> | null; reason: string } {
  try {
    const dir = envGet("PIPELINE_NATIVE_DIR") ?? join(tmpdir(), "pipeline-native");
    Deno.mkdirSync(dir, { recursive: true });
    const path = join(
      dir,
      `${name}-${createHash("sha256").update(JSON.stringify([source, flags])).digest("hex").slice(0, 16)}.so`,
    );
    let exists = false;
    try {
      exists = Deno.statSync(path).isFile;
    } catch { /* not built yet */ }
    if (!exists) {
      const why = compile(source, flags, path);
      if (why) return { lib: null, reason: `${name}: ${why}` };
    }
    return { lib: Deno.dlopen(path, symbols), reason: "" };
  } catch (e) {
    return { lib: null, reason: `${name}: ${e instanceof Error ? e.message : String(e)}` };
  }
}
