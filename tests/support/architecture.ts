// The project's layering rules, checked on a tree (the real one, or a fixture):
// no run-time import cycle among project files; the study's code (models/, data/,
// reports/) uses nothing of pipeline/ at run time but the stage contract
// pipeline/types.ts; no file in pipeline/ over 400 lines. Run-time imports are
// those the cache keys see (pipeline/store/code.ts): `import type` is erased.
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { analyse } from "../../pipeline/store/code.ts";

/** The folders whose files are the project's code. */
export const PROJECT_DIRS = ["pipeline", "models", "data", "reports", ".ci"];
/** Study code: may use pipeline/ only through the stage contract. */
export const STUDY_DIRS = ["models", "data", "reports"];
export const CONTRACT = "pipeline/types.ts";
export const MAX_LINES = 400;
/** Data, not code: the committed runs of the study. */
const EXCLUDED = ["pipeline/remote"];
const CODE = /\.(ts|tsx|js|mjs|jsx|mts)$/;

export interface Violation {
  rule: "cycle" | "layering" | "size";
  /** The files involved, project-relative; a cycle's in import order, the first repeated at the end. */
  files: string[];
  message: string;
}

/** Project-relative path → the project files it imports at run time. */
export async function importGraph(root: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await codeFiles(root)) {
    const source = await Deno.readTextFile(join(root, file));
    const { specifiers } = await analyse(source, file);
    const targets = specifiers
      .filter((s) => s.startsWith("./") || s.startsWith("../"))
      // A program started as a process of its own (`new URL("./worker.ts", import.meta.url)` given to
      // `deno run`) is in the cache keys but is not an import: it cannot close a cycle of modules.
      .filter((s) => imported(source, s))
      .map((s) => posix(relative(root, resolve(root, dirname(file), s.split("?")[0]))))
      // new URL("../../deno.json", import.meta.url) reads a file; only code is imported.
      .filter((t) => CODE.test(t) && !t.startsWith(".."));
    graph.set(file, [...new Set(targets)].sort());
  }
  return graph;
}

/** Whether `spec` is loaded as a module (import, export … from, import()), not only named as a path. */
function imported(source: string, spec: string): boolean {
  const quoted = `["']${spec.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']`;
  return new RegExp(`(\\bfrom\\s*|\\bimport\\s*\\(?\\s*)${quoted}`).test(source);
}

export async function checkArchitecture(root: string): Promise<Violation[]> {
  const graph = await importGraph(root);
  const violations: Violation[] = [...cycles(graph)];
  for (const [file, targets] of graph) {
    if (!STUDY_DIRS.some((d) => file.startsWith(`${d}/`))) continue;
    for (const t of targets.filter((t) => t.startsWith("pipeline/") && t !== CONTRACT)) {
      violations.push({
        rule: "layering",
        files: [file, t],
        message: `${file} imports ${t} at run time: study code may use only ${CONTRACT} of pipeline/ ` +
          "(an `import type` is fine)",
      });
    }
  }
  for (const file of graph.keys()) {
    if (!file.startsWith("pipeline/")) continue;
    const lines = (await Deno.readTextFile(join(root, file))).split("\n").length - 1;
    if (lines > MAX_LINES) {
      violations.push({ rule: "size", files: [file], message: `${file}: ${lines} lines (at most ${MAX_LINES})` });
    }
  }
  return violations;
}

/** One cycle per strongly connected component (Tarjan), as a path through it in import order. */
export function cycles(graph: Map<string, string[]>): Violation[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return components.map((component) => {
    const path = cycleThrough(graph, new Set(component));
    return {
      rule: "cycle",
      files: path,
      message: `import cycle: ${path.join(" → ")}`,
    };
  });
}

/** The shortest cycle from the component's first file (by name) back to it, staying inside the component. */
function cycleThrough(graph: Map<string, string[]>, component: Set<string>): string[] {
  const start = [...component].sort()[0];
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(previous.get(path[0])!);
        return [...path, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

async function codeFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    let entries;
    try {
      entries = [...Deno.readDirSync(join(root, dir))];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (EXCLUDED.includes(path)) continue;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && CODE.test(e.name) && extname(e.name) !== ".d.ts") files.push(path);
    }
  };
  for (const dir of PROJECT_DIRS) await walk(dir);
  return files.sort();
}

const posix = (p: string) => p.split(sep).join("/");
