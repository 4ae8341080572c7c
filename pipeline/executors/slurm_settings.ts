// The "slurm" block of pipeline/config.local.json, checked: a wrong value is one line naming it.
import { checkResources } from "./executor.ts";
import type { SlurmSettings } from "./slurm.ts";
import { PipelineError } from "../types.ts";

const EXAMPLE = '"slurm": {"partition": "cpu", "account": "lab", "args": ["--qos=normal"], ' +
  '"resources": {"train-cnn": {"seconds": 43200, "memMB": 8000}}}';

export function checkSlurmSettings(value: unknown, where: string): SlurmSettings {
  if (value === undefined) return {};
  const bad = (field: string, fix: string) =>
    new PipelineError(
      `${where}: "slurm"${field ? `.${field}` : ""} is ${
        JSON.stringify(field ? (value as Record<string, unknown>)[field] : value)
      }`,
      fix,
    );
  if (!value || typeof value !== "object" || Array.isArray(value)) throw bad("", `write ${EXAMPLE}`);
  const s = value as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!["partition", "account", "args", "resources", "poll"].includes(key)) {
      throw new PipelineError(`${where}: unknown "slurm" setting "${key}"`, `write ${EXAMPLE}`);
    }
  }
  for (const key of ["partition", "account"]) {
    if (s[key] !== undefined && typeof s[key] !== "string") throw bad(key, `write "${key}": "NAME"`);
  }
  if (s.args !== undefined && (!Array.isArray(s.args) || s.args.some((a) => typeof a !== "string"))) {
    throw bad("args", 'write "args": ["--qos=normal"] (sbatch flags)');
  }
  if (s.poll !== undefined && !(typeof s.poll === "number" && s.poll > 0)) {
    throw bad("poll", 'write "poll": 1 (seconds between polls of a job\'s state)');
  }
  if (s.resources !== undefined) {
    if (!s.resources || typeof s.resources !== "object" || Array.isArray(s.resources)) {
      throw bad("resources", 'write "resources": {"<stage or stage@variant>": {"seconds": 7200}}');
    }
    for (const [stage, r] of Object.entries(s.resources)) checkResources(r, `${where}: "slurm".resources.${stage}`);
  }
  return s as SlurmSettings;
}
