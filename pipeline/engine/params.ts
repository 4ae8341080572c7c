// Typed parameters: parsing `--set stage.param=value`, validating, defaults.
import type { Override } from "./graph.ts";
import { type ParamSpec, type ParamValue, PipelineError } from "../types.ts";

function describe(spec: ParamSpec): string {
  switch (spec.type) {
    case "int":
      return "an integer (e.g. 1500)";
    case "float":
      return "a number (e.g. 1e-4)";
    case "ints":
      return "comma-separated integers (e.g. 1000,500)";
    case "bool":
      return "true or false";
    case "string":
      return spec.choices ? `one of ${spec.choices.join(", ")}` : "a string";
  }
}

/** Parse a command-line string into the declared type, or throw a one-line error. */
export function parseParam(where: string, spec: ParamSpec, raw: string): ParamValue {
  const bad = () =>
    new PipelineError(`${where}=${raw}: expected ${describe(spec)}`, `use --set ${where}=<${describe(spec)}>`);
  let value: ParamValue;
  switch (spec.type) {
    case "int": {
      const n = strictInt(raw);
      if (n === undefined) throw bad();
      value = n;
      break;
    }
    case "float": {
      const n = raw.trim() === "" ? NaN : Number(raw);
      if (!Number.isFinite(n)) throw bad();
      value = n;
      break;
    }
    case "ints": {
      const ns = raw.split(",").map((s) => strictInt(s.trim()));
      if (ns.some((n) => n === undefined)) throw bad();
      value = ns as number[];
      break;
    }
    case "bool":
      if (raw !== "true" && raw !== "false") throw bad();
      value = raw === "true";
      break;
    case "string":
      value = raw;
  }
  return checkParam(where, spec, value);
}

/** A decimal integer in the safe range ("-12", "1500"), else undefined: no 0x10, " 7 ", 1e3 or 99999999999999999999. */
function strictInt(raw: string): number | undefined {
  if (!/^[+-]?\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Check a typed value (a default, a variant's value or a parsed one) against its declaration. */
export function checkParam(where: string, spec: ParamSpec, value: ParamValue): ParamValue {
  const fail = (why: string) => new PipelineError(`${where}=${JSON.stringify(value)}: ${why}`, `use ${describe(spec)}`);
  const numbers = spec.type === "ints" ? value : [value];
  if (spec.type === "ints" && (!Array.isArray(value) || value.length === 0)) throw fail("expected a non-empty list");
  if (spec.type === "int" || spec.type === "float" || spec.type === "ints") {
    for (const n of numbers as unknown[]) {
      if (typeof n !== "number" || !Number.isFinite(n)) throw fail("not a number");
      if (spec.type !== "float" && !Number.isInteger(n)) throw fail("not an integer");
      if (spec.type !== "float" && !Number.isSafeInteger(n)) throw fail("not an integer in the safe range");
      if (spec.min !== undefined && n < spec.min) throw fail(`below the minimum ${spec.min}`);
    }
  }
  if (spec.type === "bool" && typeof value !== "boolean") throw fail("not a boolean");
  if (spec.type === "string") {
    if (typeof value !== "string") throw fail("not a string");
    if (spec.choices && !spec.choices.includes(value)) throw fail(`not one of ${spec.choices.join(", ")}`);
  }
  return value;
}

/** "train-cnn.lr=1e-3" → { target: "train-cnn", param: "lr", raw: "1e-3" }. */
export function splitAssignment(text: string): { target: string; param: string; raw: string } {
  const m = /^([^.=\s]+)\.([^=\s]+)=(.*)$/s.exec(text);
  if (!m) {
    throw new PipelineError(
      `--set ${text}: not of the form stage.param=value`,
      "write e.g. --set train-cnn.lr=1e-4",
    );
  }
  return { target: m[1], param: m[2], raw: m[3] };
}

/**
 * pipeline/params.json (or params.local.json): {"stage.param": value, …} → overrides that
 * remember the file, so a bad key or value is reported with its name. Absent: none.
 */
export async function readParamsFile(file: string): Promise<Override[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const bad = (why: string) =>
    new PipelineError(`${file}: ${why}`, 'write {"stage.param": value, …}, e.g. {"train-cnn.lr": 0.0001}');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw bad(
      `expected an object, found ${data === null ? "null" : Array.isArray(data) ? "an array" : `a ${typeof data}`}`,
    );
  }
  return Object.entries(data).map(([where, value]) => {
    const m = /^([^.=\s]+)\.([^.=\s]+)$/.exec(where);
    if (!m) throw bad(`key ${JSON.stringify(where)} is not of the form "stage.param"`);
    const typed = typeof value === "number" || typeof value === "string" || typeof value === "boolean" ||
      (Array.isArray(value) && value.length > 0 && value.every((n) => typeof n === "number"));
    if (!typed) throw bad(`${where}: ${JSON.stringify(value)} is not a number, string, boolean or list of numbers`);
    return { target: m[1], param: m[2], value: value as ParamValue, from: file };
  });
}
