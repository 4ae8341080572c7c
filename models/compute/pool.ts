// A pool of worker threads that the main thread drives synchronously: run() hands one
// task to each worker through shared memory, does task 0 itself, and returns when all
// are done. Workers call native code on raw addresses in the caller's memory (e.g. the
// tfjs wasm heap), which stays put because the caller is blocked meanwhile.
//
// Workers are node:worker_threads workers (unref'd, so they never keep the process
// alive) whose entry is this very module; each imports the handler modules it was
// started with (their export `poolTask(args)`; `poolInit()`, if exported, runs first)
// before entering its wait loop.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

/** A task's arguments: up to ARGS numbers (addresses included: they fit a double). */
export type PoolTask = (args: Float64Array) => void;

const ARGS = 16;
// Per worker, in the Int32Array: the task's sequence number (main → worker), the last
// sequence number done (worker → main), the handler's index, an error flag.
const SEQ = 0, DONE = 1, HANDLER = 2, ERROR = 3, SLOT = 4;
const STOP = -1;
// Busy-wait a few microseconds before sleeping: GEMMs come in quick succession.
const SPIN = 2000;

interface Start {
  pool: true;
  index: number;
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

  /** Threads that run a task at once: the workers and the calling thread. */
  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts `threads - 1` workers that load `modules` (URLs of modules exporting poolTask).
   * Rejects if a worker fails to start.
   */
  static async start(threads: number, modules: string[]): Promise<WorkerPool> {
    const n = Math.max(0, threads - 1);
    const ctl = new SharedArrayBuffer(n * SLOT * 4), args = new SharedArrayBuffer(n * ARGS * 8);
    const workers = Array.from({ length: n }, (_, index) => {
      const data: Start = { pool: true, index, ctl, args, modules };
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
   * Runs tasks[0] with `local` on this thread and tasks[i] on worker i-1 with the handler
   * of modules[handler]; returns when all are done. At most `size` tasks.
   */
  run(handler: number, local: PoolTask, tasks: ArrayLike<number>[]): void {
    if (tasks.length > this.size) throw new Error(`pool: ${tasks.length} tasks for ${this.size} threads`);
    if (handler < 0 || handler >= this.modules.length) throw new Error(`pool: no handler ${handler}`);
    const seq = ++this.seq;
    const { ctl, args } = this;
    for (let i = 1; i < tasks.length; i++) {
      const w = i - 1;
      args.set(tasks[i], w * ARGS);
      ctl[w * SLOT + HANDLER] = handler;
      ctl[w * SLOT + ERROR] = 0;
      Atomics.store(ctl, w * SLOT + SEQ, seq);
      Atomics.notify(ctl, w * SLOT + SEQ);
    }
    let error: unknown;
    if (tasks.length) {
      try {
        local(Float64Array.from(tasks[0]));
      } catch (e) {
        error = e;
      }
    }
    for (let w = 0; w < tasks.length - 1; w++) {
      waitFor(ctl, w * SLOT + DONE, seq);
      if (ctl[w * SLOT + ERROR]) error ??= new Error(`pool: task ${w + 1} failed in its worker`);
    }
    if (error) throw error;
  }

  /** Ends the workers (they also end with the process). */
  close(): void {
    for (let w = 0; w < this.workers.length; w++) {
      Atomics.store(this.ctl, w * SLOT + SEQ, STOP);
      Atomics.notify(this.ctl, w * SLOT + SEQ);
    }
    this.workers.length = 0;
  }
}

/** Blocks until ctl[i] === want (spinning briefly first). */
function waitFor(ctl: Int32Array, i: number, want: number): void {
  for (let s = 0; s < SPIN; s++) if (Atomics.load(ctl, i) === want) return;
  for (let v; (v = Atomics.load(ctl, i)) !== want;) Atomics.wait(ctl, i, v, 1000);
}

/** Blocks until ctl[i] !== old; returns the new value. */
function waitChange(ctl: Int32Array, i: number, old: number): number {
  for (let s = 0; s < SPIN; s++) {
    const v = Atomics.load(ctl, i);
    if (v !== old) return v;
  }
  for (;;) {
    Atomics.wait(ctl, i, old);
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
  const base = start.index * SLOT, view = args.subarray(start.index * ARGS, (start.index + 1) * ARGS);
  parentPort!.postMessage("ready");
  for (let seen = 0;;) {
    seen = waitChange(ctl, base + SEQ, seen);
    if (seen === STOP) return;
    try {
      handlers[ctl[base + HANDLER]](view);
    } catch (e) {
      console.error(`pool worker ${start.index}:`, e);
      ctl[base + ERROR] = 1;
    }
    Atomics.store(ctl, base + DONE, seen);
    Atomics.notify(ctl, base + DONE);
  }
}

if (!isMainThread && (workerData as Start | undefined)?.pool === true) {
  workerMain(workerData as Start).catch((e) => parentPort!.postMessage(`pool worker failed: ${e?.message ?? e}`));
}
