// A run's checkpoints are its stage's (models/checkpoint.ts: data files, then a manifest naming
// them with their SHA-256s, renamed into place last). The data files are covered by the
// manifest; the manifest — which also carries the curve so far and the optimizer's state — is
// covered here, by the engine, without touching the stages' code (it is in their cache keys):
//   - while a run goes on, every manifest that appears is sealed: checkpoint-S.json.seal holds
//     its SHA-256 (a manifest appears whole, by rename, so what is seen is what was written);
//   - before a run starts (a resume), every checkpoint whose manifest is unsealed, altered, of
//     the wrong shape, or names a file other than its own ckpt-S-<i>.bin is discarded, with one
//     line, its own files removed by that pattern (never by the names it holds).
// A manifest written just before a kill, before the engine saw it, is unsealed: the previous
// checkpoint is used (at most one checkpoint interval is recomputed).
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writeFileAtomic } from "../store/hash.ts";

const MANIFEST = /^checkpoint-(\d+)\.json$/;
const SEAL = ".seal";
const HEX64 = /^[0-9a-f]{64}$/;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Seal every manifest in dir that has no seal yet. */
export async function sealCheckpoints(dir: string): Promise<void> {
  const here = await names(dir);
  for (const name of here) {
    if (!MANIFEST.test(name) || here.includes(name + SEAL)) continue;
    const bytes = await Deno.readFile(join(dir, name)).catch(() => undefined); // removed meanwhile: nothing to seal
    if (bytes) await writeFileAtomic(join(dir, name + SEAL), sha256(bytes)).catch(() => {});
  }
}

/** Seal manifests as they appear (every `ms`) until stop(), which seals a last time. */
export function sealWhileRunning(dir: string, ms = 500): { stop(): Promise<void> } {
  let pass = Promise.resolve();
  const timer = setInterval(() => {
    pass = pass.then(() => sealCheckpoints(dir)).catch(() => {});
  }, ms);
  return {
    async stop() {
      clearInterval(timer);
      await pass;
      await sealCheckpoints(dir).catch(() => {});
    },
  };
}

/** Why the manifest `name` (checkpoint-S.json) cannot be trusted, or undefined. */
function damage(name: string, bytes: Uint8Array, seal: string | undefined): string | undefined {
  const step = Number(MANIFEST.exec(name)![1]);
  if (seal === undefined) return "its manifest was never sealed (written after the engine last looked, or by hand)";
  if (seal.trim() !== sha256(bytes)) return "its manifest does not match its seal (altered since it was written)";
  let m: unknown;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return "its manifest is not JSON";
  }
  if (!m || typeof m !== "object" || Array.isArray(m)) return "its manifest is not an object";
  const { step: s, files } = m as { step?: unknown; files?: unknown };
  if (s !== step) return `its manifest says step ${JSON.stringify(s)}`;
  if (!("meta" in m)) return "its manifest has no meta";
  if (!Array.isArray(files)) return "its manifest has no list of files";
  const own = new RegExp(`^ckpt-${step}-\\d+\\.bin$`);
  for (const f of files as unknown[]) {
    const { name: n, size, sha256: h } = (f ?? {}) as { name?: unknown; size?: unknown; sha256?: unknown };
    if (typeof n !== "string" || !own.test(n)) return `its manifest names ${JSON.stringify(n)}, not a file of its own`;
    if (!Number.isSafeInteger(size) || (size as number) < 0) return `its manifest gives ${n} a bad size`;
    if (typeof h !== "string" || !HEX64.test(h)) return `its manifest gives ${n} a bad SHA-256`;
  }
  return undefined;
}

/**
 * Before a run starts: discard every checkpoint in dir whose manifest is not sealed as written or
 * not a manifest (its files found by its step's own pattern), and seals left without a manifest.
 */
export async function checkCheckpoints(dir: string, log: (line: string) => void): Promise<void> {
  const here = await names(dir);
  for (const name of here) {
    if (name.endsWith(SEAL) && !here.includes(name.slice(0, -SEAL.length))) {
      await Deno.remove(join(dir, name)).catch(() => {});
    }
    const m = MANIFEST.exec(name);
    if (!m) continue;
    const bytes = await Deno.readFile(join(dir, name));
    const seal = here.includes(name + SEAL) ? await Deno.readTextFile(join(dir, name + SEAL)) : undefined;
    const why = damage(name, bytes, seal);
    if (!why) continue;
    log(`checkpoint at step ${m[1]} in ${dir} is damaged (${why}): discarding it`);
    const own = new RegExp(`^(checkpoint-${m[1]}\\.json(\\${SEAL})?|ckpt-${m[1]}-\\d+\\.bin)$`);
    for (const f of here.filter((f) => own.test(f))) await Deno.remove(join(dir, f)).catch(() => {});
  }
}
