// The local import closure of a stage module: every project file it loads at
// run time, transitively, found by parsing its code (not listed by hand), plus
// the npm packages it reaches through the import map. Its hash is part of the
// stage's cache key, so editing a file two imports down reruns the stage; the
// hash of a code file is that of its normalised code (see code.ts), so an edit
// that changes no behaviour (a comment, a reflow, a type) reruns nothing.
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { CodeCache } from "./code.ts";
import type { StatCache } from "./hash.ts";

export interface Closure {
  /** Project-relative path → SHA-256 of its normalised code (code files) or of its bytes (assets). */
  files: Record<string, string>;
  /** External packages reached, e.g. "npm:@tensorflow/tfjs-core@4.22.0". */
  external: string[];
}

export async function readImportMap(root: string): Promise<Record<string, string>> {
  try {
    const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
    return config.imports ?? {};
  } catch {
    return {};
  }
}

/** Resolve a bare specifier through the import map (exact key, or longest "prefix/" key). */
function mapBare(spec: string, map: Record<string, string>): string | undefined {
  if (spec in map) return map[spec];
  let best = "";
  for (const key of Object.keys(map)) {
    if (key.endsWith("/") && spec.startsWith(key) && key.length > best.length) best = key;
  }
  return best ? map[best] + spec.slice(best.length) : undefined;
}

/** "npm:@scope/name@1.2.3/sub/path" → "npm:@scope/name@1.2.3". */
function packageOf(spec: string): string {
  const body = spec.replace(/^npm:\/?/, "");
  const parts = body.split("/");
  return "npm:" + (body.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]);
}

export async function importClosure(
  root: string,
  entry: string,
  stats: StatCache,
  code: CodeCache,
  importMap?: Record<string, string>,
): Promise<Closure> {
  const map = importMap ?? await readImportMap(root);
  const files: Record<string, string> = {};
  const external = new Set<string>();
  const queue = [resolve(root, entry)];
  const seen = new Set<string>();
  while (queue.length) {
    const path = queue.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const rel = relative(root, path);
    let byteHash: string;
    try {
      byteHash = await stats.hash(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      files[rel] = "missing"; // e.g. an asset not made yet; a real import of it fails the stage itself
      continue;
    }
    if (!/\.(ts|tsx|js|mjs|jsx|mts)$/.test(path)) { // an asset: hashed, not parsed
      files[rel] = byteHash;
      continue;
    }
    const info = await code.info(path, byteHash);
    files[rel] = info.hash;
    for (let spec of info.specifiers) {
      if (!spec.startsWith(".") && !spec.startsWith("/") && !/^[a-z]+:/.test(spec)) {
        const mapped = mapBare(spec, map);
        if (mapped === undefined) {
          external.add(`unmapped:${spec}`);
          continue;
        }
        spec = mapped.startsWith("../") || mapped.startsWith("../../") ? resolve(root, mapped) : mapped;
      }
      if (spec.startsWith("npm:")) external.add(packageOf(spec));
      else if (/^(node|jsr|https?):/.test(spec)) external.add(spec.startsWith("node:") ? "node:*" : spec);
      else {
        const target = spec.startsWith("file://")
          ? new URL(spec).pathname
          : isAbsolute(spec)
          ? spec
          : resolve(dirname(path), spec);
        queue.push(target);
      }
    }
  }
  await code.save();
  return { files, external: [...external].sort() };
}
