// Where a run's outputs appear in the project once it is run or restored: out/<stage> links
// to the run's files in the cache, and a published stage's files (e.g. the report) are copied
// into the project with a provenance.json saying which run they are.
import { dirname, join } from "node:path";
import type { RunEntry } from "../store/cache.ts";
import type { Node } from "./graph.ts";
import { canonicalJson, sha256, writeFileAtomic } from "../store/hash.ts";
import type { Workspace } from "./workspace.ts";

/** out/<stage> → the run's files; a published stage's files copied into the project. */
export async function materialise(ws: Workspace, node: Node, entry: RunEntry) {
  const link = join(ws.root, "out", node.name);
  await Deno.mkdir(dirname(link), { recursive: true });
  // Swapped by rename: a reader of out/<stage> sees the old run or the new one, never no link.
  const tmpLink = `${link}.${Deno.pid}.tmp`;
  await Deno.remove(tmpLink).catch(() => {});
  await Deno.symlink(ws.store.treeDir(entry.key), tmpLink);
  await Deno.rename(tmpLink, link);
  const publish = ws.publish?.[node.def.name] ?? node.def.publish;
  if (!publish) return;
  for (const rel of Object.keys(entry.outputs)) {
    if (entry.absent?.includes(rel)) continue; // a thin run: in a shared remote only
    const dest = join(ws.root, publish, rel);
    await Deno.mkdir(dirname(dest), { recursive: true });
    await writeFileAtomic(dest, await Deno.readFile(join(ws.store.treeDir(entry.key), rel)));
  }
  await writeFileAtomic(join(ws.root, publish, "provenance.json"), JSON.stringify(provenance(entry), null, 2));
}

/** Which run a set of files is: published beside them, and given to a stage with each input. */
export function provenance(entry: RunEntry) {
  return {
    stage: entry.stage,
    key: entry.key,
    params: entry.params,
    code_hash: sha256(canonicalJson(entry.code)),
    code: entry.code,
    inputs: entry.inputs,
    outputs: Object.fromEntries(Object.entries(entry.outputs).map(([f, o]) => [f, o.hash])),
    deno: entry.deno,
    npm: entry.external.filter((x) => x.startsWith("npm:")),
    started: entry.startedAt,
    wall_s: entry.wallSeconds,
    metrics: entry.metrics,
    record: entry.record ?? {},
  };
}
