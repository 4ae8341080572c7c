// Machine-local settings, git-ignored: where this machine's cache is shared to and how
// it runs stages. `pipeline/config.local.json` (like DVC's config.local); parameter
// values that are transport-only (a download URL) go in `pipeline/params.local.json`.
import { join } from "node:path";
import { checkExecutorSettings } from "../executors/registry.ts";
import { PipelineError } from "../types.ts";
import { findScheme, writableExamples } from "../sharing/registry.ts";

export interface LocalSettings {
  /** The shared remote, e.g. "s3://bucket/prefix" (push, pull, and restores on reproduce; schemes: registry.ts). */
  remote?: string;
  /** Per-scheme options of remotes, e.g. {"ssh": {"identity": "~/.ssh/id_ed25519"}} (see each backend). */
  remoteOptions?: Record<string, Record<string, string>>;
  /** How stages run: an executor's name (pipeline/executors/registry.ts); default "local". */
  executor?: string;
  /** Each executor's own settings, under its name (checked by the executor). */
  [executor: string]: unknown;
}

/** Read `pipeline/config.local.json` (absent: {}); a malformed file is a one-line error naming it. */
export async function readLocalSettings(root: string): Promise<LocalSettings> {
  const file = join(root, "pipeline", "config.local.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PipelineError(`${file} is not valid JSON: ${(e as Error).message}`, 'write {"remote": "s3://…", …}');
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new PipelineError(`${file} must hold a JSON object`, 'write {"remote": "s3://…", …}');
  }
  const remote = (value as LocalSettings).remote;
  if (remote !== undefined && (typeof remote !== "string" || (remote !== "git" && !findScheme(remote)))) {
    throw new PipelineError(
      `${file}: "remote" is ${JSON.stringify(remote)}`,
      `write "remote": one of ${writableExamples(true).join(", ")} (or "git" for the committed pipeline/remote/ alone)`,
    );
  }
  checkExecutorSettings(value as Record<string, unknown>, file);
  return value as LocalSettings;
}
