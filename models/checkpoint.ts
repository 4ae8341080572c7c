// Checkpoints that carry their own hashes, shared by every training stage.
// A checkpoint at step S is its data files (ckpt-S-<i>.bin) and a manifest
// (checkpoint-S.json: the step, each file's size and SHA-256, the caller's
// metadata) renamed into place last, like a run entry: a kill at any moment
// leaves no manifest that names missing or half-written files. Loading checks
// every file against the manifest; a damaged checkpoint is discarded with one
// line and the previous one (the last two are kept) is used instead.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writing } from "../pipeline/types.ts";

/** How many checkpoints to keep: the newest, and one to fall back on if it is damaged. */
const KEEP = 2;
const MANIFEST = /^checkpoint-(\d+)\.json$/;

interface Manifest<M> {
  step: number;
  files: Array<{ name: string; size: number; sha256: string }>;
  meta: M;
}

export interface Loaded<M> {
  step: number;
  meta: M;
  blobs: Uint8Array[];
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Manifest steps in dir, newest first. */
async function steps(dir: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = MANIFEST.exec(e.name);
      if (m) out.push(Number(m[1]));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => b - a);
}

/** Write the checkpoint of `step`: data files, then the manifest (atomically), then drop old ones. */
export async function saveCheckpoint<M>(dir: string, step: number, meta: M, blobs: Uint8Array[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const files: Manifest<M>["files"] = [];
  for (const [i, blob] of blobs.entries()) {
    const name = `ckpt-${step}-${i}.bin`;
    await writing(join(dir, name), blob.byteLength, () => Deno.writeFile(join(dir, name), blob));
    files.push({ name, size: blob.byteLength, sha256: sha256(blob) });
  }
  const manifest = join(dir, `checkpoint-${step}.json`);
  const text = JSON.stringify({ step, files, meta } satisfies Manifest<M>);
  await writing(manifest, text.length, async () => {
    await Deno.writeTextFile(`${manifest}.tmp`, text);
    await Deno.rename(`${manifest}.tmp`, manifest);
  });
  const keep = (await steps(dir)).slice(0, KEEP);
  for await (const e of Deno.readDir(dir)) {
    const s = /^(?:checkpoint|ckpt)-(\d+)[.-]/.exec(e.name)?.[1];
    if (s !== undefined && !keep.includes(Number(s))) await Deno.remove(join(dir, e.name)).catch(() => {});
  }
}

/**
 * The newest intact checkpoint whose metadata `accept`s (a checkpoint of another
 * configuration is skipped silently), or null. Damaged ones are named and removed.
 */
export async function loadCheckpoint<M>(
  dir: string,
  accept: (meta: M) => boolean,
  log: (message: string) => void = (m) => console.error(m),
): Promise<Loaded<M> | null> {
  let discarded = false;
  for (const step of await steps(dir)) {
    const path = join(dir, `checkpoint-${step}.json`);
    let manifest: Manifest<M>;
    let damage: string | undefined;
    const blobs: Uint8Array[] = [];
    try {
      manifest = JSON.parse(await Deno.readTextFile(path));
      if (!Array.isArray(manifest.files) || manifest.step !== step) throw new SyntaxError();
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      manifest = { step, files: [], meta: undefined as M };
      damage = "its manifest is unreadable";
    }
    if (!damage && !accept(manifest.meta)) continue;
    for (const f of damage ? [] : manifest.files) {
      const bytes = await Deno.readFile(join(dir, f.name)).catch(() => undefined);
      if (!bytes) damage = `${f.name} is missing`;
      else if (bytes.byteLength !== f.size) damage = `${f.name} has ${bytes.byteLength} bytes, not ${f.size}`;
      else if (sha256(bytes) !== f.sha256) damage = `${f.name} does not match its SHA-256`;
      if (damage) break;
      blobs.push(bytes!);
    }
    if (!damage) {
      if (discarded) log(`using the previous intact checkpoint, at step ${step}`);
      return { step, meta: manifest.meta, blobs };
    }
    log(`checkpoint at step ${step} in ${dir} is damaged (${damage}): discarding it`);
    discarded = true;
    await Deno.remove(path).catch(() => {});
    for (const f of manifest.files) await Deno.remove(join(dir, f.name)).catch(() => {});
  }
  if (discarded) log("no intact checkpoint left: starting from the beginning");
  return null;
}
