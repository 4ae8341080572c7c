// A child process that dies with its parent. A timer on the main thread cannot
// do it: a stage busy in a synchronous training loop would not notice for
// seconds. A web worker (its own thread) polls the parent pid and SIGKILLs this
// process within ~0.2 s of the parent's death, so a killed engine takes its
// workers, and they their tasks, with it.
export function dieWithParent() {
  const code = `const p = ${Deno.ppid};
setInterval(() => { if (Deno.ppid !== p) Deno.kill(${Deno.pid}, "SIGKILL"); }, 200);`;
  new Worker(`data:application/javascript,${encodeURIComponent(code)}`, { type: "module" });
}
