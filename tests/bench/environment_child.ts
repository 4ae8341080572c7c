// Child of tests/bench/environment_test.ts, started with a chosen environment. As tests/bench/main.ts: the
// environment is snapshotted first (environment.ts, imported first), then our libraries load and pin
// their kernels through Deno.env, the bench prints what each side runs, and `env -0` is spawned the
// way the PyTorch reference is. Prints describeSides' lines, then {snapshot, inProcess, spawned}.
import { describeSides, originalEnv, originalEnvCommand } from "./environment.ts";
import { loadBlas } from "../../models/compute/blas.ts";
import { loadOnednn } from "../../models/compute/onednn.ts";

const blas = loadBlas().blas !== null;
loadOnednn();
Deno.env.set("BENCH_ENV_IN_PROCESS", "1"); // anything else set in-process: not passed on either
await describeSides({ torch: false });
const out = await originalEnvCommand("/usr/bin/env", { args: ["-0"] }).output();
const spawned = Object.fromEntries(
  new TextDecoder().decode(out.stdout).split("\0").filter(Boolean).map((l) => {
    const i = l.indexOf("=");
    return [l.slice(0, i), l.slice(i + 1)];
  }),
);
console.log(JSON.stringify({ blas, snapshot: originalEnv(), inProcess: Deno.env.toObject(), spawned }));
