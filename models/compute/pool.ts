// A pool of worker threads that the main thread drives synchronously: run() publishes a
// list of tasks in shared memory, and the calling thread and the workers claim them one
// at a time (an atomic counter) until none is left; run() returns when all are done.
// Claiming, rather than one fixed task per worker, matters on a busy machine: a worker
// that the OS has not scheduled yet simply claims nothing, and the caller does its share.
// Which thread computes a task never changes what the task computes.
//
// Workers call native code on raw addresses in the caller's memory (e.g. the tfjs wasm
// heap), which stays put because the caller is blocked meanwhile. They are
// node:worker_threads workers (unref'd, so they never keep the process alive) whose
// entry is this very module; each imports the handler modules it was started with (their
// export `poolTask(args)`; `poolInit()`, if exported, runs first) before its wait loop.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

/** A task's arguments: up to ARGS numbers (addresses included: they fit a double). */
export type PoolTask = (args: Float64Array) => void;

const ARGS = 16, MAX_TASKS = 64;
// The Int32Array: the run's sequence number (workers wake when it changes), the next
// task to claim tagged with the run (seq << 8 | index: a late worker cannot claim a task
// of another run), the tasks done, the number of tasks, the handler's index, an error flag.
const SEQ = 0, NEXT = 1, DONE = 2, COUNT = 3, HANDLER = 4, ERROR = 5, CTL = 6;
const STOP = -1, SEQ_MASK = 0x3fffff;
// Busy-wait a few microseconds before sleeping: products come in quick succession.
const SPIN = 2000;

interface Start {
  pool: true;
  ctl: SharedArrayBuffer;
  args: SharedArrayBuffer;
  modules: string[];
}

export class WorkerPool {
  private seq = 0;
  private constructor(
    private readonly workers: Worker[],
    private readonly ctl: Int32Array,
    private readonly args: Float64Array,
    private readonly modules: string[],
  ) {}

  /** Threads that run tasks at once: the workers and the calling thread. */
  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts `threads - 1` workers that load `modules` (URLs of modules exporting poolTask).
   * Rejects if a worker fails to start.
   */
  static async start(threads: number, modules: string[]): Promise<WorkerPool> {
    const n = Math.max(0, threads - 1);
    const ctl = new SharedArrayBuffer(CTL * 4), args = new SharedArrayBuffer(MAX_TASKS * ARGS * 8);
    const workers = Array.from({ length: n }, () => {
      const data: Start = { pool: true, ctl, args, modules };
      return new Worker(new URL(import.meta.url), { workerData: data });
    });
    try {
      await Promise.all(workers.map((w) =>
        new Promise<void>((resolve, reject) => {
          w.once("message", (m) => m === "ready" ? resolve() : reject(new Error(String(m))));
          w.once("error", reject);
        })
      ));
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    for (const w of workers) w.unref();
    return new WorkerPool(workers, new Int32Array(ctl), new Float64Array(args), modules);
  }

  /**
   * Runs every task (at most MAX_TASKS) with the handler of modules[handler] — `local` on
   * this thread, the module's poolTask on a worker — and returns when all are done.
   */
  run(handler: number, local: PoolTask, tasks: ArrayLike<number>[]): void {
    if (tasks.length > MAX_TASKS) throw new Error(`pool: ${tasks.length} tasks (at most ${MAX_TASKS})`);
    if (handler < 0 || handler >= this.modules.length) throw new Error(`pool: no handler ${handler}`);
    const { ctl, args } = this;
    const seq = this.seq = (this.seq + 1) & SEQ_MASK || 1;
    // Tag NEXT with the new run but nothing claimable first, so that a worker still busy
    // claiming in the last run cannot take a task while this one is being written.
    Atomics.store(ctl, NEXT, seq << 8 | 0xff);
    tasks.forEach((t, i) => args.set(t, i * ARGS));
    ctl[COUNT] = tasks.length;
    ctl[HANDLER] = handler;
    ctl[ERROR] = 0;
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, NEXT, seq << 8); // publishes the tasks
    Atomics.store(ctl, SEQ, seq);
    Atomics.notify(ctl, SEQ);
    let error: unknown;
    try {
      claim(ctl, args, seq, local);
    } catch (e) {
      error = e;
    }
    for (let done; (done = Atomics.load(ctl, DONE)) !== tasks.length;) waitChange(ctl, DONE, done);
    if (ctl[ERROR]) error ??= new Error("pool: a task failed in a worker (see its error above)");
    if (error) throw error;
  }

  /** Ends the workers (they also end with the process). */
  close(): void {
    Atomics.store(this.ctl, SEQ, STOP);
    Atomics.notify(this.ctl, SEQ);
    this.workers.length = 0;
  }
}

/** Claims and runs tasks of run `seq` until none is left; counts each one done. */
function claim(ctl: Int32Array, args: Float64Array, seq: number, fn: PoolTask): void {
  for (;;) {
    const next = Atomics.load(ctl, NEXT), i = next & 0xff;
    if (next >>> 8 !== seq || i >= ctl[COUNT]) return;
    if (Atomics.compareExchange(ctl, NEXT, next, next + 1) !== next) continue;
    try {
      fn(args.subarray(i * ARGS, (i + 1) * ARGS));
    } finally {
      Atomics.add(ctl, DONE, 1);
      Atomics.notify(ctl, DONE);
    }
  }
}

/** Blocks until ctl[i] !== old (spinning briefly first); returns the new value. */
function waitChange(ctl: Int32Array, i: number, old: number): number {
  for (let s = 0; s < SPIN; s++) {
    const v = Atomics.load(ctl, i);
    if (v !== old) return v;
  }
  for (;;) {
    Atomics.wait(ctl, i, old, 1000);
    const v = Atomics.load(ctl, i);
    if (v !== old) return v;
  }
}

// The process's shared pool: its workers serve these modules, by index.
export const POOL_BLAS = 0, POOL_ADAM = 1;
const SHARED_MODULES = ["./blas.ts", "./adam_kernel.ts"].map((m) => new URL(m, import.meta.url).href);
let shared: WorkerPool | undefined;
let sharedStart: Promise<WorkerPool | undefined> | undefined;

/** The shared pool once started (undefined before, or with 1 thread). */
export function sharedPool(): WorkerPool | undefined {
  return shared;
}

/** Starts the shared pool once with `threads` threads in all; a failure is logged and leaves it undefined. */
export function startSharedPool(threads: number): Promise<WorkerPool | undefined> {
  if (threads <= 1) return Promise.resolve(undefined);
  return sharedStart ??= WorkerPool.start(threads, SHARED_MODULES).then(
    (p) => shared = p,
    (e) => {
      console.error(`worker threads did not start (${e?.message ?? e}); using 1 thread`);
      return undefined;
    },
  );
}

async function workerMain(start: Start): Promise<void> {
  const handlers: PoolTask[] = [];
  for (const m of start.modules) {
    const mod = await import(m);
    if (typeof mod.poolTask !== "function") throw new Error(`${m} exports no poolTask`);
    mod.poolInit?.();
    handlers.push(mod.poolTask);
  }
  const ctl = new Int32Array(start.ctl), args = new Float64Array(start.args);
  parentPort!.postMessage("ready");
  for (let seen = 0;;) {
    seen = waitChange(ctl, SEQ, seen);
    if (seen === STOP) return;
    try {
      claim(ctl, args, seen, handlers[ctl[HANDLER]]);
    } catch (e) {
      console.error("pool worker:", e);
      ctl[ERROR] = 1;
    }
  }
}

if (!isMainThread && (workerData as Start | undefined)?.pool === true) {
  workerMain(workerData as Start).catch((e) => parentPort!.postMessage(`pool worker failed: ${e?.message ?? e}`));
}
