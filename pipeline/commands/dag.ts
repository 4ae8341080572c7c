// `dag`: the stage graph as a tree for the terminal (with each stage's state),
// as Mermaid (paste into Markdown) or as Graphviz DOT (`| dot -Tsvg`).
import type { StageResult } from "../engine/plan.ts";
import type { Graph } from "../engine/graph.ts";
import { paint } from "../terminal/style.ts";
import type { Command } from "./command.ts";
import { JSON_OPTION, PARAMETER_OPTIONS } from "./options.ts";

/**
 * Each stage under the upstream stage it waits for last (so every stage appears once, below all
 * its inputs), its other inputs named beside it.
 */
export function dagTree(graph: Graph, states: Map<string, StageResult>, color = false): string {
  const position = new Map(graph.order.map((n, i) => [n, i]));
  const parent = (n: string) => graph.nodes.get(n)!.deps.toSorted((a, b) => position.get(b)! - position.get(a)!)[0];
  const children = new Map<string, string[]>();
  for (const n of graph.order) {
    const p = parent(n);
    if (p) children.set(p, [...(children.get(p) ?? []), n]);
  }
  const rows: Array<[string, string]> = [];
  const walk = (n: string, prefix: string, last: boolean, root: boolean) => {
    const others = graph.nodes.get(n)!.deps.filter((d) => d !== parent(n));
    const also = others.length
      ? ` (+ ${others.length > 3 ? `${others.slice(0, 3).join(", ")}, …` : others.join(", ")})`
      : "";
    rows.push([root ? n : `${prefix}${last ? "└─ " : "├─ "}${n}${also}`, state(states.get(n), color)]);
    const kids = children.get(n) ?? [];
    kids.forEach((k, i) => walk(k, root ? "" : prefix + (last ? "   " : "│  "), i === kids.length - 1, false));
  };
  for (const n of graph.order) if (!parent(n)) walk(n, "", true, true);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, s]) => `${label.padEnd(width)}  ${s}`.trimEnd()).join("\n");
}

function state(r: StageResult | undefined, color: boolean): string {
  if (!r) return "";
  const c = r.outcome === "up to date" ? "green" : r.outcome === "run" ? "yellow" : "cyan";
  const why = r.reasons.length > 3 ? [...r.reasons.slice(0, 3), `${r.reasons.length - 3} more`] : r.reasons;
  return `${paint(color, c, r.outcome)}${why.length ? ` (${why.join("; ")})` : ""}`;
}

export function dagDot(graph: Graph): string {
  const lines = ["digraph pipeline {", "  rankdir=LR;", "  node [shape=box];"];
  for (const name of graph.order) {
    lines.push(`  "${name}";`);
    for (const dep of graph.nodes.get(name)!.deps) lines.push(`  "${dep}" -> "${name}";`);
  }
  return [...lines, "}"].join("\n");
}

export function dagJson(graph: Graph, states: Map<string, StageResult>) {
  return graph.order.map((name) => {
    const r = states.get(name);
    return { stage: name, deps: graph.nodes.get(name)!.deps, action: r?.outcome, reasons: r?.reasons ?? [] };
  });
}

export const dag: Command = {
  name: "dag",
  synopsis: "",
  help: "the stage graph: a tree with each stage's state (default), --mermaid or --dot",
  options: {
    ...PARAMETER_OPTIONS,
    ...JSON_OPTION,
    mermaid: { type: "boolean", help: "the graph as a Mermaid flowchart" },
    dot: { type: "boolean", help: "the graph in Graphviz DOT (| dot -Tsvg > dag.svg)" },
  },
  async run(c) {
    const engine = await c.engine();
    if (c.values.mermaid) console.log(engine.graph.mermaid());
    else if (c.values.dot) console.log(dagDot(engine.graph));
    else {
      const states = new Map((await engine.status()).map((r) => [r.stage, r]));
      console.log(
        c.values.json ? JSON.stringify(dagJson(engine.graph, states), null, 2) : dagTree(engine.graph, states, c.color),
      );
    }
    return 0;
  },
};
