// `deno task test [paths and deno test flags]`: the suite (or the given paths) with TMPDIR set to
// a folder of this run's own, removed when it ends, so that every temporary folder the tests make
// (toy projects, s3rver's buckets, Chromium's profiles, native builds) goes with it — a machine
// that runs the suite every day does not fill its /tmp. Exits with the runner's status.
const given = Deno.args;
const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};
// Paths are the arguments that name files or folders (a flag's value, as in `--filter NAME`, does not).
const paths = given.filter((a) => !a.startsWith("-") && exists(a));
const args = ["test", "-A", "--parallel", ...given, ...(paths.length ? [] : ["tests/"])];
const tmp = await Deno.makeTempDir({ prefix: "pipeline-tests-" });
// Ctrl-C reaches the runner too (one process group): wait for it to stop, then clean up.
const ignore = () => {};
Deno.addSignalListener("SIGINT", ignore);
let code = 1;
try {
  const child = new Deno.Command(Deno.execPath(), { args, env: { TMPDIR: tmp } }).spawn();
  code = (await child.status).code; // 128 + the signal's number when one ended it
} finally {
  Deno.removeSignalListener("SIGINT", ignore);
  await Deno.remove(tmp, { recursive: true }).catch((e) => console.error(`could not remove ${tmp}: ${e.message}`));
}
Deno.exit(code);
