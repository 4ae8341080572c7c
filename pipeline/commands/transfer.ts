// push or pull, with a progress line over every remote involved.
import type { Engine } from "../engine/engine.ts";
import { TransferProgress } from "../sharing/remote.ts";
import { PipelineError } from "../types.ts";
import { WHOLE_REMOTE_HINT } from "./options.ts";

export async function transfer(engine: Engine, command: "push" | "pull", targets: string[]): Promise<number> {
  const remotes = engine.store.remotes;
  const url = remotes.at(-1)!.url;
  const progress = new TransferProgress(`${command} ${url}`);
  for (const r of remotes) r.progress = progress;
  if (command === "push") {
    const { pushed, already, skipped } = await engine.push(targets);
    if (progress.totalObjects) progress.show(true);
    console.error(`pushed to ${url}: ${pushed.join(", ") || "nothing new"}`);
    if (already.length) console.error(`already there: ${already.join(", ")}`);
    if (!skipped.length) return 0;
    const why = remotes.length === 1 ? "not in the cache" : "not whole in the cache";
    console.error(`not pushed (${why}): ${skipped.join(", ")}`);
    return 0;
  }
  const { pulled, missing, thin, neverRun } = await engine.pull(targets);
  if (progress.totalObjects || progress.objects) progress.show(true);
  console.error(`pulled from ${remotes.map((r) => r.url).join(" + ")}: ${pulled.join(", ") || "nothing"}`);
  if (neverRun.length) {
    console.error(`never run (nothing to pull; \`deno task reproduce\` trains them): ${neverRun.join(", ")}`);
  }
  if (!missing.length && !thin.length) return 0;
  if (!missing.length) {
    throw new PipelineError(
      `restored without their big files: ${thin.join(", ")} (the committed remote keeps files up to 8 MiB)`,
      `${WHOLE_REMOTE_HINT}, or rebuild them here: \`deno task reproduce ${thin.join(" ")} --whole\` ` +
        "(`deno task status` first says what that costs)",
    );
  }
  throw new PipelineError(
    `not restored: ${missing.join(", ")} (not in any remote, or refused as shown above)`,
    "push them from a machine that has them, or run `deno task reproduce`",
  );
}
