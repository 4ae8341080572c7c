// The PyTorch reference of `deno task bench` runs in the environment the machine gave the bench,
// not in ours: models/compute/blas.ts and onednn.ts set OPENBLAS_CORETYPE=Haswell,
// OPENBLAS_NUM_THREADS=1 and ONEDNN_MAX_CPU_ISA=AVX2 in-process, and a child that inherited them
// would run PyTorch on our pinned kernels (issue 28). A bench-like child process (bench_env_child.ts),
// started with a chosen environment, loads our libraries and then spawns `env` through the same
// helper as the reference: what that sees must be exactly the chosen environment. No timing.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { cpu } from "./environment.ts";

const CHILD = new URL("./environment_child.ts", import.meta.url).pathname;
const PINNED = /^(OPENBLAS_|GOTO_|OMP_|ONEDNN_|DNNL_|BENCH_ENV_)/;

/** This process's environment without the variables that pin kernels, plus `extra`. */
function machineEnv(extra: Record<string, string>): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (PINNED.test(k)) delete env[k];
  return { ...env, ...extra };
}

async function child(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", CHILD], env, clearEnv: true }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const lines = text.trim().split("\n");
  return {
    printed: lines.slice(0, -1).join("\n"),
    ...(JSON.parse(lines.at(-1)!) as {
      blas: boolean;
      snapshot: Record<string, string>;
      inProcess: Record<string, string>;
      spawned: Record<string, string>;
    }),
  };
}

const cases: [string, Record<string, string>][] = [
  ["sets none of the pins", {}],
  ["sets its own OpenBLAS core type and threads", { OPENBLAS_CORETYPE: "Zen", OPENBLAS_NUM_THREADS: "2" }],
];

for (const [what, extra] of cases) {
  Deno.test({
    name: `bench: the reference runs in the machine's environment when it ${what}, after our pins`,
    ignore: !existsSync("/usr/bin/env"),
    async fn() {
      const env = machineEnv(extra);
      const r = await child(env);
      assert.deepEqual(r.snapshot, env, "the snapshot is the environment the process started with");
      assert.deepEqual(r.spawned, env, "the reference's environment is exactly the machine's");
      assert.equal(r.inProcess.BENCH_ENV_IN_PROCESS, "1");
      if (r.blas && cpu().isa.includes("avx2")) {
        // Our setup did run in-process: the test compares against a changed environment.
        assert.equal(r.inProcess.OPENBLAS_CORETYPE, "Haswell");
        assert.equal(r.inProcess.OPENBLAS_NUM_THREADS, "1");
      }
      assert.equal(r.spawned.OPENBLAS_CORETYPE, extra.OPENBLAS_CORETYPE);
      // The bench says OPENBLAS_CORETYPE is set only when the machine set it.
      const line = /OPENBLAS_CORETYPE=\S+ is set by this machine's environment/;
      if (extra.OPENBLAS_CORETYPE) {
        assert.match(r.printed, /OPENBLAS_CORETYPE=Zen is set by this machine's environment/);
      } else assert.doesNotMatch(r.printed, line);
      assert.match(r.printed, /^CPU: /m);
    },
  });
}
