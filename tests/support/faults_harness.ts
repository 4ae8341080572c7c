// Fault injection, shared by tests/pipeline/engine/faults_test.ts (small counts, CI) and
// tests/bench/reliability.ts (the long version, printing the counts): SIGKILLs
// of the whole process group at seeded moments, concurrent runs on one cache,
// bad inputs, and the checks after each (one-line errors, an untouched cache,
// no half-written entries, outputs equal to an uninterrupted run).
import { dirname, join } from "node:path";
import { listFiles } from "../../pipeline/store/cache.ts";
import { hashFile } from "../../pipeline/store/hash.ts";
import { copyProject } from "./project_copy.ts";

export const ROOT = new URL("../..", import.meta.url).pathname;
const CLI = join(ROOT, "pipeline/cli.ts");

/** mulberry32: the same kill moments on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Temporary projects made here, removed when the process ends. */
const made: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of made) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A toy project: `count` checkpoints every step with the shared helper (two
// variants), `blob` writes a file of `mib` MiB in pieces, `join` reads both.
const TOY: Record<string, string> = {
  "stages.ts": `export const STAGES = [
  { name: "count", doc: "", deps: [], module: "count.ts", outputs: ["count.txt"],
    params: { steps: { type: "int", default: 12, min: 1, doc: "" }, lr: { type: "float", default: 0.1, doc: "" } },
    variants: { small: { steps: 6 }, big: { steps: 30 } } },
  { name: "blob", doc: "", deps: [], module: "blob.ts", outputs: ["blob.bin"],
    params: { mib: { type: "float", default: 0.5, min: 0, doc: "" } } },
  { name: "join", doc: "", deps: ["count", "blob"], module: "join.ts", outputs: ["join.txt"],
    params: { mode: { type: "string", default: "sum", choices: ["sum", "max"], doc: "" },
      flag: { type: "bool", default: false, doc: "" }, sizes: { type: "ints", default: [1, 2], doc: "" } } },
];
export const PROFILES = { quick: { doc: "", set: { "count.steps": 3 } } };
`,
  "events.ts": `export async function event(ctx, what) {
  await Deno.writeTextFile(ctx.root + "/events.log", what + " " + ctx.stage + "\\n", { append: true });
}
export const pause = () => new Promise((r) => setTimeout(r, Number(Deno.env.get("TOY_DELAY_MS") ?? 40)));
`,
  "count.ts": `import { loadCheckpoint, saveCheckpoint } from "./models/checkpoint.ts";
import { checkLoss } from "./models/diverged.ts";
import { event, pause } from "./events.ts";
export async function run(ctx) {
  await event(ctx, "start");
  const { steps, lr } = ctx.params;
  const found = await loadCheckpoint(ctx.checkpointDir, (m) => m.steps === steps, (m) => ctx.log(m));
  let s = found ? found.meta.s : { step: 0, acc: 1 };
  if (found) await event(ctx, "resumed");
  for (let i = s.step; i < steps; i++) {
    checkLoss(lr > 1e10 ? NaN : 1 / (i + 1), i + 1, lr);
    s = { step: i + 1, acc: (s.acc * 31 + i) % 1000003 };
    await saveCheckpoint(ctx.checkpointDir, s.step, { steps, s }, [new Uint8Array(32 << 10).fill(s.acc & 255)]);
    await pause();
  }
  await Deno.writeTextFile(ctx.outDir + "/count.txt", String(s.acc));
  return { acc: s.acc };
}
`,
  "blob.ts": `import { event, pause } from "./events.ts";
export async function run(ctx) {
  await event(ctx, "start");
  const f = await Deno.open(ctx.outDir + "/blob.bin", { write: true, create: true });
  const piece = new Uint8Array(64 << 10);
  for (let i = 0; i < ctx.params.mib * 16; i++) {
    await f.write(piece.fill(i & 255));
    if (i % 4 === 0) await pause();
  }
  f.close();
  return {};
}
`,
  "join.ts": `import { event, pause } from "./events.ts";
export async function run(ctx) {
  await event(ctx, "start");
  const count = await Deno.readTextFile(Object.entries(ctx.inputs).find(([k]) => k.startsWith("count@big"))[1] + "/count.txt");
  const blob = await Deno.stat(ctx.inputs.blob + "/blob.bin");
  await pause();
  await Deno.writeTextFile(ctx.outDir + "/join.txt", count + "+" + blob.size + " " + ctx.params.mode);
  return {};
}
`,
};

/** A fresh toy project; it imports this project's checkpoint helper and the trainers' divergence check. */
export async function toyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "faults-toy-" });
  made.push(root);
  for (const [rel, text] of Object.entries(TOY)) {
    await Deno.writeTextFile(
      join(root, rel),
      text.replaceAll('"./models/', `"${ROOT}models/`).replaceAll('"./pipeline/', `"${ROOT}pipeline/`),
    );
  }
  return root;
}

/** A copy of this project (code only: no lock, no remote, no reports) for runs of the smoke profile. */
export async function projectCopy(): Promise<string> {
  const dest = await copyProject("faults-project-");
  made.push(dest);
  return dest;
}

export interface Run {
  code: number;
  stderr: string;
  stdout: string;
}

/** The CLI's arguments for a project: the toy (its stages.ts) or a project copy (its own cli.ts). */
function argv(root: string, args: string[]): string[] {
  return isToy(root)
    ? ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args]
    : ["run", "-A", join(root, "pipeline/cli.ts"), ...args];
}

function isToy(root: string): boolean {
  try {
    return Deno.statSync(join(root, "count.ts")).isFile;
  } catch {
    return false;
  }
}

function command(root: string, args: string[], env: Record<string, string>, program = Deno.execPath()) {
  const piped = program === Deno.execPath(); // a killed group's orphans would hold pipes open
  return new Deno.Command(program, {
    args: piped ? argv(root, args) : [Deno.execPath(), ...argv(root, args)],
    cwd: root,
    env: { PIPELINE_CACHE: join(root, ".cache"), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: piped ? "piped" : "null",
    stderr: piped ? "piped" : "null",
  });
}

export async function cli(root: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await command(root, args, env).output();
  const dec = new TextDecoder();
  return { code: out.code, stderr: dec.decode(out.stderr), stdout: dec.decode(out.stdout) };
}

/** Why stderr is not one clean error line (undefined when it is). */
export function notOneLine(stderr: string): string | undefined {
  const lines = stderr.split("\n").filter((l) => l.trim());
  const errors = lines.filter((l) => l.startsWith("error: "));
  if (lines.some((l) => /^\s+at |Uncaught|stack trace/.test(l))) return `a stack trace:\n${stderr}`;
  if (errors.length !== 1) return `${errors.length} error lines:\n${stderr}`;
  return undefined;
}

/** What a run may not change: run entries, objects, trees, the lock file. */
export async function snapshot(cache: string, root: string): Promise<string> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out.push(`${p.slice(cache.length)} ${(await Deno.lstat(p)).size}`);
    }
  };
  for (const sub of ["runs", "objects", "trees"]) await walk(join(cache, sub)).catch(() => {});
  out.sort();
  const files = await Array.fromAsync(Deno.readDir(join(root, "pipeline"))).catch(() => [] as Deno.DirEntry[]);
  for (const e of files.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (/^lock.*\.json$/.test(e.name)) out.push(e.name, await Deno.readTextFile(join(root, "pipeline", e.name)));
  }
  return out.join("\n");
}

/** Problems in a cache: run entries that do not parse, files that do not hold their recorded hash. */
export async function integrity(cache: string): Promise<string[]> {
  const problems: string[] = [];
  const names = await Array.fromAsync(Deno.readDir(join(cache, "runs"))).catch(() => [] as Deno.DirEntry[]);
  for (const e of names) {
    let entry: { key: string; outputs: Record<string, { hash: string }> };
    try {
      entry = JSON.parse(await Deno.readTextFile(join(cache, "runs", e.name)));
    } catch {
      problems.push(`half-written entry ${e.name}`);
      continue;
    }
    for (const [rel, { hash }] of Object.entries(entry.outputs)) {
      const actual = await hashFile(join(cache, "trees", entry.key, rel)).catch(() => "missing");
      if (actual !== hash) {
        problems.push(`${entry.key.slice(0, 8)}/${rel}: ${actual.slice(0, 8)} ≠ ${hash.slice(0, 8)}`);
      }
    }
  }
  return problems;
}

/**
 * The outputs of every stage (out/<stage>/…): text as is (or as `pick` reduces it,
 * e.g. a history to its curves, leaving timings out), other files by hash.
 */
export async function outputs(root: string, pick = (_file: string, text: string) => text) {
  const out: Record<string, string> = {};
  for await (const s of Deno.readDir(join(root, "out"))) {
    for (const rel of await listFiles(join(root, "out", s.name))) {
      if (rel.startsWith("_")) continue;
      const path = join(root, "out", s.name, rel);
      out[`${s.name}/${rel}`] = /\.(txt|json)$/.test(rel)
        ? pick(rel, await Deno.readTextFile(path))
        : await hashFile(path);
    }
  }
  return out;
}

/** Spawn the CLI in its own process group, SIGKILL the whole group after `ms`. */
export async function killAfter(root: string, args: string[], env: Record<string, string>, ms: number) {
  // setsid: the CLI leads a new process group, so the kill reaches its workers too (as a terminal's ^C would).
  const child = command(root, args, env, "setsid").spawn();
  await sleep(ms);
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch { /* it had finished */ }
  const status = await child.status;
  return status.signal === "SIGKILL";
}

export interface KillCounts {
  kills: number;
  /** Kills that landed while the run was still going (the others found it finished). */
  landed: number;
  /** Reruns that resumed from a checkpoint of the killed run (toy project). */
  resumed: number;
  corrupt: string[];
  wrong: string[];
}

/**
 * `n` rounds on fresh caches: start `args`, SIGKILL the process group at a seeded
 * moment in [minMs, maxMs], check the cache, rerun to the end, compare the outputs.
 */
export async function killRounds(
  root: string,
  opts: { n: number; seed: number; minMs: number; maxMs: number; args: string[]; pick?: Parameters<typeof outputs>[1] },
): Promise<KillCounts> {
  const counts: KillCounts = { kills: 0, landed: 0, resumed: 0, corrupt: [], wrong: [] };
  const refCache = join(root, ".cache-reference");
  const ref = await cli(root, opts.args, { PIPELINE_CACHE: refCache });
  if (ref.code !== 0) throw new Error(`the uninterrupted run failed:\n${ref.stderr}`);
  const want = JSON.stringify(await outputs(root, opts.pick));
  const random = rng(opts.seed);
  for (let i = 0; i < opts.n; i++) {
    const cache = join(root, `.cache-kill-${i}`);
    const at = Math.round(opts.minMs + random() * (opts.maxMs - opts.minMs));
    counts.kills++;
    if (await killAfter(root, opts.args, { PIPELINE_CACHE: cache }, at)) counts.landed++;
    for (const p of await integrity(cache)) counts.corrupt.push(`kill ${i} at ${at} ms: ${p}`);
    await Deno.remove(join(root, "events.log")).catch(() => {});
    const rerun = await cli(root, opts.args, { PIPELINE_CACHE: cache });
    const events = await Deno.readTextFile(join(root, "events.log")).catch(() => "");
    if (events.includes("resumed ")) counts.resumed++;
    if (rerun.code !== 0) counts.wrong.push(`kill ${i} at ${at} ms: the rerun failed: ${rerun.stderr.slice(-400)}`);
    else {
      const got = JSON.stringify(await outputs(root, opts.pick));
      if (got !== want) counts.wrong.push(`kill ${i} at ${at} ms: outputs differ: ${got} ≠ ${want}`);
    }
    for (const p of await integrity(cache)) counts.corrupt.push(`after the rerun of kill ${i}: ${p}`);
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
  return counts;
}

/** `k` reproduce runs at once on one fresh cache: all must succeed, each stage built once, outputs right. */
export async function concurrentRuns(root: string, k: number): Promise<{ runs: number; conflicts: string[] }> {
  const cache = join(root, `.cache-concurrent-${k}`);
  await Deno.remove(join(root, "events.log")).catch(() => {});
  const runs = await Promise.all(
    Array.from({ length: k }, () => cli(root, ["reproduce", "--jobs", "2"], { PIPELINE_CACHE: cache })),
  );
  const conflicts: string[] = [];
  runs.forEach((r, i) => r.code !== 0 && conflicts.push(`run ${i} exited ${r.code}: ${r.stderr.slice(-300)}`));
  const starts = (await Deno.readTextFile(join(root, "events.log"))).trim().split("\n").filter((l) =>
    l.startsWith("start ")
  );
  const perStage = new Map<string, number>();
  for (const l of starts) perStage.set(l.slice(6), (perStage.get(l.slice(6)) ?? 0) + 1);
  for (const [stage, n] of perStage) if (n > 1) conflicts.push(`${stage} built ${n} times`);
  for (const p of await integrity(cache)) conflicts.push(p);
  const joined = await Deno.readTextFile(join(root, "out/join/join.txt"));
  if (!/^\d+\+\d+ sum$/.test(joined)) conflicts.push(`join.txt is ${joined}`);
  return { runs: k, conflicts };
}

export interface BadInput {
  name: string;
  args: string[];
  /** Expected message (after "error: "). */
  expect: RegExp;
  env?: Record<string, string>;
  /** pipeline/params.json for this case. */
  params?: string;
}

/** Bad inputs for the toy project: each must exit 1 (2: a malformed command line) with one line and leave the cache as it was. */
export function toyBadInputs(root: string): BadInput[] {
  const file = join(root, "a-file");
  Deno.writeTextFileSync(file, "not a directory");
  const p = (params: string, expect: RegExp): Omit<BadInput, "name"> => ({ args: ["status"], params, expect });
  const set = (assignment: string, expect: RegExp): Omit<BadInput, "name"> => ({
    args: ["reproduce", "--set", assignment],
    expect,
  });
  const cases: Record<string, Omit<BadInput, "name">> = {
    "unknown stage": { args: ["reproduce", "nope"], expect: /^unknown stage nope — use one of: count, blob, join/ },
    "unknown variant": {
      args: ["reproduce", "count@huge"],
      expect: /^unknown variant count@huge — count has the variants: small, big/,
    },
    "variant of a stage without": { args: ["reproduce", "blob@x"], expect: /^unknown variant blob@x — blob has no/ },
    "status of an unknown stage": { args: ["status", "nope"], expect: /^unknown stage nope/ },
    "params of an unknown stage": { args: ["params", "nope"], expect: /^unknown stage nope/ },
    "push of an unknown stage": { args: ["push", "nope"], expect: /^unknown stage nope/ },
    "int: letters": set("count.steps=abc", /^count\.steps=abc: expected an integer/),
    "int: a fraction": set("count.steps=1.5", /^count\.steps=1\.5: expected an integer/),
    "int: below min": set("count.steps=0", /^count\.steps=0: below the minimum 1/),
    "int: negative": set("count.steps=-5", /^count\.steps=-5: below the minimum 1/),
    "int: empty": set("count.steps=", /^count\.steps=: expected an integer/),
    "float: letters": set("count.lr=abc", /^count\.lr=abc: expected a number/),
    "float: infinite": set("count.lr=1e999", /^count\.lr=1e999: expected a number/),
    "float: NaN": set("count.lr=NaN", /^count\.lr=NaN: expected a number/),
    "unknown parameter": set("count.zzz=1", /^unknown parameter count\.zzz — count takes: steps, lr/),
    "no stage.param": set("oops", /^--set oops: not of the form stage\.param=value/),
    "no stage": set(".x=1", /^--set \.x=1: not of the form/),
    "no name at all": set("=1", /^--set =1: not of the form/),
    "unknown stage in --set": set("nope.x=1", /^unknown stage nope/),
    "unknown variant in --set": set("count@huge.steps=3", /^unknown variant count@huge/),
    "string: not a choice": set("join.mode=avg", /^join\.mode="avg": not one of sum, max/),
    "bool: yes": set("join.flag=yes", /^join\.flag=yes: expected true or false/),
    "ints: a gap": set("join.sizes=1,,2", /^join\.sizes=1,,2: expected comma-separated integers/),
    "ints: letters": set("join.sizes=a", /^join\.sizes=a: expected comma-separated integers/),
    "--set without a value": {
      args: ["reproduce", "--set"],
      expect: /^Option --set <value> argument missing — see --help/,
    },
    "--jobs 0": { args: ["reproduce", "--jobs", "0"], expect: /^--jobs 0: expected an integer ≥ 1/ },
    "--jobs -1": { args: ["reproduce", "--jobs", "-1"], expect: /^--jobs -1: expected an integer ≥ 1 — e.g. --jobs 2/ },
    "--jobs abc": { args: ["reproduce", "--jobs", "abc"], expect: /^--jobs abc: expected an integer ≥ 1/ },
    "unknown option": { args: ["reproduce", "--frobnicate"], expect: /^Unknown option --frobnicate — see --help/ },
    "unknown command": { args: ["frobnicate"], expect: /^unknown command frobnicate/ },
    "unknown profile": {
      args: ["reproduce", "--profile", "nope"],
      expect: /^unknown profile nope — use one of: quick/,
    },
    "--single without upstream": {
      args: ["reproduce", "join", "--single", "--profile", "quick"],
      expect: /^join needs the outputs of count@small, which are not in the cache/,
    },
    "diverging lr": set(
      "count.lr=1e30",
      /^count@small: training diverged: the loss became NaN at step 1 with lr=1e\+30 — lower the learning rate/,
    ),
    "diverging lr, one variant": {
      args: ["reproduce", "count@big", "--set", "count@big.lr=1e30"],
      expect: /^count@big: training diverged: .* at step 1 .*--set count@big\.lr=/,
    },
    "params.json null": p("null", /params\.json: expected an object, found null/),
    "params.json a list": p("[1,2]", /params\.json: expected an object, found an array/),
    "params.json a string": p('"x"', /params\.json: expected an object, found a string/),
    "params.json a number": p("42", /params\.json: expected an object, found a number/),
    "params.json not JSON": p("{", /params\.json: not valid JSON/),
    "params.json key without a dot": p('{"a": 1}', /params\.json: key "a" is not of the form "stage\.param"/),
    "params.json key with two dots": p(
      '{"count.steps.x": 1}',
      /params\.json: key "count\.steps\.x" is not of the form/,
    ),
    "params.json unknown stage": p('{"nope.steps": 1}', /params\.json: unknown stage nope/),
    "params.json unknown parameter": p('{"count.zzz": 1}', /params\.json: unknown parameter count\.zzz/),
    "params.json unknown variant": p('{"count@huge.steps": 1}', /params\.json: unknown variant count@huge/),
    "params.json value of the wrong type": p(
      '{"count.steps": "abc"}',
      /params\.json: count\.steps="abc": not a number/,
    ),
    "params.json null value": p('{"count.steps": null}', /params\.json: count\.steps: null is not a number/),
    "params.json object value": p('{"count.steps": {}}', /params\.json: count\.steps: \{\} is not a number/),
    "PIPELINE_CACHE a regular file": {
      args: ["status"],
      env: { PIPELINE_CACHE: file },
      expect: /^the cache .*a-file is not a directory \(a regular file is there\)/,
    },
    "PIPELINE_CACHE under a regular file": {
      args: ["reproduce"],
      env: { PIPELINE_CACHE: join(file, "cache") },
      expect: /^the cache .*a-file\/cache is not a directory \(a parent of it is a file\)/,
    },
  };
  return Object.entries(cases).map(([name, c]) => ({ name, ...c }));
}

/**
 * Bad inputs found by issue 27's round: parameter names that are Object.prototype members, integers
 * that are not plain decimals in the safe range, caches where no cache can be. Each exits 1 with one line.
 */
export function trustBadInputs(root: string): BadInput[] {
  const loop = join(root, "loop");
  try {
    Deno.symlinkSync(loop, loop); // a symlink to itself: ELOOP
  } catch { /* made by an earlier call */ }
  const set = (assignment: string, expect: RegExp): Omit<BadInput, "name"> => ({
    args: ["status", "--set", assignment], // status: on a build without the check, a 1e20-step run would start
    expect,
  });
  const p = (params: string, expect: RegExp): Omit<BadInput, "name"> => ({ args: ["status"], params, expect });
  const cases: Record<string, Omit<BadInput, "name">> = {};
  for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__", "isPrototypeOf"]) {
    cases[`--set count.${name}`] = set(
      `count.${name}=1`,
      new RegExp(`^unknown parameter count\\.${name} — count takes`),
    );
    cases[`params.json count.${name}`] = p(
      `{"count.${name}": 1}`,
      new RegExp(`params\\.json: unknown parameter count\\.${name}`),
    );
  }
  Object.assign(cases, {
    "variant named constructor": set("count@constructor.steps=3", /^unknown variant count@constructor/),
    "profile named constructor": {
      args: ["reproduce", "--profile", "constructor"],
      expect: /^unknown profile constructor — use one of: quick/,
    },
    "profile named toString": { args: ["status", "--profile", "toString"], expect: /^unknown profile toString/ },
    "int: hexadecimal": set("count.steps=0x10", /^count\.steps=0x10: expected an integer/),
    "int: binary": set("count.steps=0b11", /^count\.steps=0b11: expected an integer/),
    "int: spaces": set("count.steps= 7 ", /^count\.steps= 7 : expected an integer/),
    "int: exponent": set("count.steps=1e3", /^count\.steps=1e3: expected an integer/),
    "int: beyond the safe range": set(
      "count.steps=99999999999999999999",
      /^count\.steps=99999999999999999999: expected an integer/,
    ),
    "ints: hexadecimal": set("join.sizes=1,0x10", /^join\.sizes=1,0x10: expected comma-separated integers/),
    "ints: beyond the safe range": set(
      "join.sizes=99999999999999999999",
      /^join\.sizes=99999999999999999999: expected comma-separated integers/,
    ),
    "params.json int beyond the safe range": p(
      '{"count.steps": 1e20}',
      /params\.json: count\.steps=100000000000000000000: not an integer in the safe range/,
    ),
  });
  const cache = (where: string, path: string, expect: RegExp) => {
    for (const command of ["status", "reproduce"]) {
      cases[`PIPELINE_CACHE ${where} (${command})`] = { args: [command], env: { PIPELINE_CACHE: path }, expect };
    }
  };
  cache("at /proc", "/proc", /^the cache \/proc is unusable \(.*\)/);
  cache("at /proc/self/fd", "/proc/self/fd", /^the cache \/proc\/self\/fd is unusable \(.*\)/);
  cache("a symlink loop", loop, /^the cache .*\/loop is unusable \(a symlink loop\)/);
  cache("at /dev/null", "/dev/null", /^the cache \/dev\/null is not a directory \(a device is there\)/);
  return Object.entries(cases).map(([name, c]) => ({ name, ...c }));
}

/** Run each bad input on a project whose cache is complete; return the failures (empty: all good). */
export async function checkBadInputs(root: string, cases: BadInput[]): Promise<string[]> {
  const cache = join(root, ".cache");
  const failures: string[] = [];
  for (const c of cases) {
    const paramsFile = join(root, "pipeline/params.json");
    const before = await snapshot(cache, root);
    const saved = await Deno.readTextFile(paramsFile).catch(() => undefined);
    if (c.params !== undefined) {
      await Deno.mkdir(dirname(paramsFile), { recursive: true });
      await Deno.writeTextFile(paramsFile, c.params);
    }
    const r = await cli(root, c.args, c.env);
    if (c.params !== undefined) {
      if (saved === undefined) await Deno.remove(paramsFile);
      else await Deno.writeTextFile(paramsFile, saved);
    }
    const line = r.stderr.split("\n").find((l) => l.startsWith("error: "))?.slice(7) ?? "";
    // Exit 1: the input is wrong; 2: the command line itself is (the CLI's documented codes).
    const why = r.code !== 1 && r.code !== 2
      ? `exit ${r.code}`
      : notOneLine(r.stderr) ?? (c.expect.test(line) ? undefined : `message ${JSON.stringify(line)}`);
    if (why) failures.push(`${c.name} (${c.args.join(" ")}): ${why}`);
    else if ((await snapshot(cache, root)) !== before) failures.push(`${c.name}: the cache changed`);
  }
  return failures;
}
