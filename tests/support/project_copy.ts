// A copy of this project's code (no lock, no committed remote, no report outputs): the tests that run the
// smoke profile end to end start from nothing in a directory of their own.
import { dirname, join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;

export async function copyProject(prefix: string): Promise<string> {
  const dest = await Deno.makeTempDir({ prefix });
  const files = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["ls-files", "-co", "--exclude-standard"], cwd: ROOT }).output()).stdout,
  ).trim().split("\n");
  for (const rel of files) {
    if (rel.startsWith("reports/") && !rel.startsWith("reports/build/")) continue; // outputs, not code
    if (/^pipeline\/lock.*\.json$/.test(rel) || rel.startsWith("pipeline/remote/")) continue; // start from nothing
    await Deno.mkdir(join(dest, dirname(rel)), { recursive: true });
    await Deno.copyFile(join(ROOT, rel), join(dest, rel)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // deleted but not yet staged
    });
  }
  return dest;
}
