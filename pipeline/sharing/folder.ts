// A folder backend: the committed pipeline/remote/ (files up to 8 MiB: git is no place for
// datasets or weights, so a run with bigger files is restored thin, see RunEntry.absent), or a
// folder on a shared disk (file:///mnt/shared/study: everything).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hashFile, writeFileAtomic } from "../store/hash.ts";
import { PipelineError } from "../types.ts";
import type { Backend } from "./backend.ts";

export class FolderBackend implements Backend {
  constructor(readonly dir: string, readonly maxBytes?: number, readonly url = dir) {}

  async stat(rel: string): Promise<number | undefined> {
    return await Deno.stat(join(this.dir, rel)).then((i) => i.size, notFound(undefined));
  }

  /** Hashing a local file is cheap enough to check what is there, not only its size. */
  async holds(rel: string, hash: string): Promise<boolean> {
    return await hashFile(join(this.dir, rel)).then((h) => h === hash, notFound(false));
  }

  async read(rel: string): Promise<string | undefined> {
    return await Deno.readTextFile(join(this.dir, rel)).catch(notFound(undefined));
  }

  async get(rel: string, dest: string, onBytes?: (n: number) => void): Promise<boolean> {
    const ok = await Deno.copyFile(join(this.dir, rel), dest).then(() => true, notFound(false));
    if (ok) onBytes?.((await Deno.stat(dest)).size);
    return ok;
  }

  async put(rel: string, src: string | Uint8Array, onBytes?: (n: number) => void): Promise<void> {
    const dest = join(this.dir, rel);
    await Deno.mkdir(dirname(dest), { recursive: true });
    const bytes = typeof src === "string" ? await Deno.readFile(src) : src;
    await writeFileAtomic(dest, bytes); // a temporary name, then a rename
    onBytes?.(bytes.length);
  }
}

/** file:///abs/path: a folder on a shared disk, every file whatever its size. */
export function open(url: string): Backend {
  let dir: string;
  try {
    dir = fileURLToPath(url);
  } catch {
    throw new PipelineError(`bad remote URL ${url}`, "write it as file:///absolute/path/to/folder");
  }
  return new FolderBackend(dir.replace(/\/+$/, "") || "/", undefined, url.replace(/\/+$/, ""));
}

function notFound<T>(value: T) {
  return (e: unknown): T => {
    if (e instanceof Deno.errors.NotFound) return value;
    throw e;
  };
}
