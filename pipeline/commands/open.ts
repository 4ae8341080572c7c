// Opening the project for a command: the stage declaration, the parameter
// sources in their order, the profile, the remote and the executor.
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Engine } from "../engine/engine.ts";
import { capSeeds, type Override, own } from "../engine/graph.ts";
import { readParamsFile, splitAssignment } from "../engine/params.ts";
import { readLocalSettings } from "../engine/settings.ts";
import { type ParamValue, PipelineError, type Profile, type StageDef } from "../types.ts";
import { asUsage, type Values } from "./command.ts";
import { executorFrom } from "./options.ts";

export interface Opened {
  engine: Engine;
  /** The profiles the declaration declares: `exp` marks runs made with one. */
  profiles: Record<string, Profile>;
}

export async function openEngine(root: string, values: Values, lockFile: string): Promise<Opened> {
  const pipelineFile = (values.pipeline as string | undefined) ?? join(root, "pipeline/stages.ts");
  const mod = await import(pathToFileURL(resolve(pipelineFile)).href);
  const profiles: Record<string, Profile> = mod.PROFILES ?? {};
  let profile: Profile | undefined;
  const name = values.profile as string | undefined;
  if (name) {
    profile = own(profiles, name);
    if (!profile) {
      throw new PipelineError(
        `unknown profile ${name}`,
        `use one of: ${Object.keys(profiles).join(", ") || "(none declared)"}`,
      );
    }
  }
  const defs: StageDef[] = capSeeds(mod.STAGES, profile?.maxSeeds);
  // Parameter sources, in the order applied (later wins); `params` shows which one set each value.
  const local = await readParamsFile(join(root, "pipeline", "params.local.json"));
  for (const o of local) {
    const def = defs.find((d) => d.name === o.target.split("@")[0]);
    if (def && !own(def.params, o.param)?.transport) {
      throw new PipelineError(
        `pipeline/params.local.json sets ${o.target}.${o.param}, which is not a transport-only parameter ` +
          "(it changes results)",
        `move it to pipeline/params.json (committed), or pass --set ${o.target}.${o.param}=…`,
      );
    }
  }
  const overrides: Override[] = [
    ...(await readParamsFile(join(root, "pipeline", "params.json"))).map((o) => ({ ...o, source: "params.json" })),
    ...local.map((o) => ({ ...o, source: "params.local.json" })),
    ...assignments(profile?.set ?? {}, `profile ${name}`),
    ...((values.set as string[] | undefined) ?? []).map((s) => ({
      ...asUsage(() => splitAssignment(s)),
      source: "--set",
    })),
  ];
  // A run with --set or a profile is an experiment: recorded in the cache, not in pipeline/lock.json.
  const set = (values.set as string[] | undefined) ?? [];
  const experiment = set.length || name ? { set, profile: name, recordLock: !set.length } : undefined;
  const settings = await readLocalSettings(root);
  const engine = await Engine.open({
    root,
    defs,
    overrides,
    lockFile,
    // An experiment's published copies (e.g. the report) go under out/experiment/, not over the committed ones.
    publish: set.length
      ? {
        ...Object.fromEntries(defs.filter((d) => d.publish).map((d) => [d.name, join("out", "experiment", d.name)])),
        ...profile?.publish,
      }
      : profile?.publish,
    remoteUrl: values.remote as string | undefined,
    executor: executorFrom(values, settings),
    experiment,
  });
  return { engine, profiles };
}

/** {"stage.param": value} → overrides. */
function assignments(set: Record<string, ParamValue>, source: string): Override[] {
  return Object.entries(set).map(([where, value]) => {
    const dot = where.lastIndexOf(".");
    return { target: where.slice(0, dot), param: where.slice(dot + 1), value, source };
  });
}
