// File helpers of the cache: links and moves that fall back to copies across filesystems, listing
// a directory, and whether a process is alive (locks and tmp/ name their writer's pid).
import { join, relative } from "node:path";
import { parseEntry } from "./entry.ts";

/** Hard links need one filesystem; across two (EXDEV) or where links are refused, copy. */
export async function linkOrCopy(src: string, dest: string) {
  try {
    await Deno.link(src, dest);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw e;
    await Deno.copyFile(src, dest);
    await Deno.chmod(dest, 0o444);
  }
}

export async function moveOrCopy(src: string, dest: string) {
  try {
    await Deno.rename(src, dest);
  } catch (e) {
    if (!/os error 18|cross-device/i.test(String(e))) throw e;
    const tmp = `${dest}.${Deno.pid}.tmp`; // copy, then rename: an object is never half there
    await Deno.copyFile(src, tmp);
    await Deno.rename(tmp, dest);
    await Deno.remove(src);
  }
}

/** The run entry at path, stored under key: undefined if absent, { corrupt } if not one to trust (entry.ts). */
export async function readEntryFile(path: string, key: string) {
  try {
    return parseEntry(await Deno.readTextFile(path), key);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return Deno.build.os !== "linux"; // without /proc, assume alive (never steal a live lock)
  }
}

/** Every file under dir, as sorted relative paths with "/" separators. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  await walk(dir);
  return out.sort();
}

/** The latest modification time of a directory and everything in it (ms; 0 if unreadable). */
export async function newestMtime(dir: string): Promise<number> {
  let t = (await Deno.stat(dir).catch(() => undefined))?.mtime?.getTime() ?? 0;
  for (const rel of await listFiles(dir).catch(() => [])) {
    t = Math.max(t, (await Deno.stat(join(dir, rel)).catch(() => undefined))?.mtime?.getTime() ?? 0);
  }
  return t;
}
