// Seeds as a dimension of the graph: each declared seed its own node
// (`<node>+s<seed>`), the base node unchanged, targeting by stage, variant or seed node.
import assert from "node:assert/strict";
import { capSeeds, Graph } from "../../../pipeline/engine/graph.ts";
import { STAGES } from "../../../pipeline/stages.ts";
import { PipelineError, type StageDef } from "../../../pipeline/types.ts";

const seed = { type: "int", default: 42, min: 0, doc: "seed" } as const;
const lr = { type: "float", default: 0.1, min: 0, doc: "lr" } as const;
const DEFS: StageDef[] = [
  { name: "data", doc: "", deps: [], module: "d.ts", outputs: [], params: {} },
  { name: "cnn", doc: "", deps: ["data"], module: "c.ts", outputs: [], params: { lr, seed }, seeds: [42, 1, 2] },
  {
    name: "mlp",
    doc: "",
    deps: ["data"],
    module: "m.ts",
    outputs: [],
    params: { lr, seed },
    variants: { default: {}, big: { lr: 0.5 } },
    seeds: { default: [42, 7] },
  },
  { name: "report", doc: "", deps: ["cnn", "mlp"], module: "r.ts", outputs: [], params: {} },
];

Deno.test("a profile's maxSeeds keeps the first seeds of each stage and variant; the nodes kept are unchanged", () => {
  const full = new Graph(DEFS);
  const g = new Graph(capSeeds(DEFS, 2));
  assert.deepEqual(g.order, ["data", "cnn", "cnn+s1", "mlp@default", "mlp@default+s7", "mlp@big", "report"]);
  for (const n of g.order) assert.deepEqual(g.nodes.get(n)!.params, full.nodes.get(n)!.params, n);
  assert.deepEqual(new Graph(capSeeds(DEFS, 1)).order, ["data", "cnn", "mlp@default", "mlp@big", "report"]);
  assert.equal(capSeeds(DEFS), DEFS, "no profile cap: the declarations as they are");
});

Deno.test("seeds: one node per extra seed, the base node as before, each with its seed", () => {
  const g = new Graph(DEFS);
  assert.deepEqual(g.order.filter((n) => n !== "data" && n !== "report"), [
    "cnn",
    "cnn+s1",
    "cnn+s2",
    "mlp@default",
    "mlp@default+s7",
    "mlp@big",
  ]);
  assert.equal(g.nodes.get("cnn")!.params.seed, 42);
  assert.equal(g.nodes.get("cnn+s2")!.params.seed, 2);
  assert.equal(g.nodes.get("cnn+s2")!.seedOf, "cnn");
  assert.deepEqual(g.nodes.get("mlp@default+s7")!.params, { lr: 0.1, seed: 7 });
  assert.deepEqual(g.nodes.get("cnn+s1")!.deps, ["data"]);
  // A downstream stage depends on every seed.
  assert.deepEqual(g.nodes.get("report")!.deps, [
    "cnn",
    "cnn+s1",
    "cnn+s2",
    "mlp@default",
    "mlp@default+s7",
    "mlp@big",
  ]);
  // Targets: a stage or variant names its seeds too; a seed node itself; the base's own seed is the base.
  assert.deepEqual(g.resolve("cnn"), ["cnn", "cnn+s1", "cnn+s2"]);
  assert.deepEqual(g.resolve("mlp@default"), ["mlp@default", "mlp@default+s7"]);
  assert.deepEqual(g.resolve("cnn+s1"), ["cnn+s1"]);
  assert.deepEqual(g.resolve("cnn+s42"), ["cnn"]);
  assert.deepEqual(g.upstreamClosure(["cnn+s2"]), ["data", "cnn+s2"]);
  assert.throws(() => g.resolve("cnn+s9"), PipelineError);
});

Deno.test("seeds: overrides reach the seed nodes, except their seed", () => {
  const g = new Graph(DEFS, [
    { target: "mlp@default", param: "lr", raw: "0.3" },
    { target: "cnn", param: "seed", raw: "5" },
    { target: "cnn+s1", param: "lr", raw: "0.2" },
  ]);
  assert.equal(g.nodes.get("mlp@default+s7")!.params.lr, 0.3);
  assert.equal(g.nodes.get("mlp@big")!.params.lr, 0.5);
  assert.deepEqual([g.nodes.get("cnn")!.params.seed, g.nodes.get("cnn+s1")!.params.seed], [5, 1]);
  assert.deepEqual([g.nodes.get("cnn")!.params.lr, g.nodes.get("cnn+s1")!.params.lr], [0.1, 0.2]);
  assert.throws(() => new Graph(DEFS, [{ target: "cnn+s1", param: "seed", raw: "3" }]), /seed node's seed/);
});

Deno.test("seeds: bad declarations are one clear error", () => {
  const with_ = (patch: Partial<StageDef>) => DEFS.map((d) => (d.name === "cnn" ? { ...d, ...patch } : d));
  assert.throws(() => new Graph(with_({ seeds: [1, 1] })), /bad seeds 1, 1/);
  assert.throws(() => new Graph(with_({ seeds: [1], params: { lr } })), /no seed parameter/);
  assert.throws(() => new Graph(with_({ seeds: { nope: [1] } })), /unknown variant nope/);
});

Deno.test("seeds: the pipeline repeats the cheap runs and the CNN over 5 seeds, base keys unchanged", () => {
  const g = new Graph(STAGES);
  for (const base of ["train-numpy-mlp", "train-torch-mlp@default", "train-cnn"]) {
    assert.equal(g.nodes.get(base)!.params.seed, 42);
    assert.deepEqual(g.seedsOf(base), [1, 2, 3, 4].map((s) => `${base}+s${s}`));
  }
  // The GA rows over the seeds trained so far (of the five); each eval-mode stage over its twin's seeds.
  const suffixes = (node: string) => g.seedsOf(node).map((n) => n.slice(node.length));
  for (const row of ["ga1", "ga1-dropout", "ga1-dropout-batchnorm", "ga2", "ga3"]) {
    assert.ok(suffixes(`train-torch-mlp@${row}`).every((s) => ["+s1", "+s2", "+s3", "+s4"].includes(s)), row);
  }
  assert.deepEqual(suffixes("dropout-eval-mode"), suffixes("train-torch-mlp@ga1-dropout"));
  assert.deepEqual(suffixes("batchnorm-eval-mode"), suffixes("train-torch-mlp@ga1-dropout-batchnorm"));
  assert.ok(g.nodes.get("report")!.deps.includes("train-cnn+s4"));
});

Deno.test("perSeedOf: a stage runs once per seed of a dep, each node reading that seed's run alone", () => {
  const score: StageDef = {
    name: "score",
    doc: "",
    deps: ["data", "mlp@default"],
    perSeedOf: "mlp@default",
    reads: { "mlp@default": [] },
    module: "s.ts",
    outputs: [],
    params: { draws: { type: "int", default: 5, min: 1, doc: "" } },
  };
  const g = new Graph([...DEFS, score]);
  assert.deepEqual(g.nodes.get("score")!.deps, ["data", "mlp@default"], "the base pairs with the base");
  assert.deepEqual(g.nodes.get("score+s7")!.deps, ["data", "mlp@default+s7"]);
  assert.deepEqual(g.nodes.get("score+s7")!.reads, { "mlp@default+s7": [] });
  assert.deepEqual(g.nodes.get("score+s7")!.params, { draws: 5 }, "its own parameters: no seed of its own");
  assert.deepEqual(g.expand("score"), ["score", "score+s7"]);
  assert.ok(g.order.indexOf("score+s7") > g.order.indexOf("mlp@default+s7"));
  assert.throws(
    () => new Graph([...DEFS, { ...score, perSeedOf: "cnn" }]),
    /score: perSeedOf cnn is not among its deps/,
  );
  // The study's eval-mode stages score each seed of their twin.
  const study = new Graph(STAGES);
  for (const s of study.seedsOf("dropout-eval-mode")) {
    assert.deepEqual(study.nodes.get(s)!.deps, ["preprocess", `train-torch-mlp@ga1-dropout${s.slice(-3)}`]);
  }
});
