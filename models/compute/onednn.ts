// oneDNN (Debian's libdnnl2, 2.6.x) through Deno FFI: the library PyTorch's own CPU
// convolutions run on. The 2.x C API only passes pointers: an operation descriptor and
// memory descriptors are filled in opaque byte buffers, then a primitive descriptor, a
// primitive, and `dnnl_primitive_execute` with an array of {int arg; dnnl_memory_t}.
// Missing library or no FFI permission: null with the reason; callers keep their own path.
//
// Environment: COMPUTE_ONEDNN=/path/libdnnl.so picks a file (a missing one gives the reason).
// The ISA is pinned to AVX2 before the library loads (ONEDNN_MAX_CPU_ISA and
// dnnl_set_max_cpu_isa): oneDNN's AVX-512 kernels sum in another order, so results would
// depend on the CPU. Threads: OpenMP (OMP_NUM_THREADS, read at load).
import type { Sgemm } from "./blas.ts";

const P = "pointer", I32 = "i32", I64 = "i64", F32 = "f32", U32 = "u32", U64 = "u64";
const symbols = {
  dnnl_version: { parameters: [], result: P },
  dnnl_set_max_cpu_isa: { parameters: [I32], result: I32 },
  dnnl_get_effective_cpu_isa: { parameters: [], result: I32 },
  dnnl_engine_create: { parameters: [P, I32, U64], result: I32 },
  dnnl_stream_create: { parameters: [P, P, U32], result: I32 },
  dnnl_stream_wait: { parameters: [P], result: I32 },
  dnnl_memory_desc_init_by_tag: { parameters: [P, I32, P, I32, I32], result: I32 },
  dnnl_memory_desc_init_submemory: { parameters: [P, P, P, P], result: I32 },
  dnnl_memory_desc_get_size: { parameters: [P], result: U64 },
  dnnl_memory_desc_equal: { parameters: [P, P], result: I32 },
  dnnl_memory_create: { parameters: [P, P, P, P], result: I32 },
  dnnl_memory_get_data_handle: { parameters: [P, P], result: I32 },
  dnnl_memory_set_data_handle: { parameters: [P, P], result: I32 },
  dnnl_primitive_desc_create: { parameters: [P, P, P, P, P], result: I32 },
  dnnl_primitive_desc_query: { parameters: [P, I32, I32, P], result: I32 },
  dnnl_primitive_desc_query_md: { parameters: [P, I32, I32], result: P },
  dnnl_primitive_create: { parameters: [P, P], result: I32 },
  dnnl_primitive_execute: { parameters: [P, P, I32, P], result: I32 },
  dnnl_reorder_primitive_desc_create: { parameters: [P, P, P, P, P, P], result: I32 },
  dnnl_primitive_attr_create: { parameters: [P], result: I32 },
  dnnl_post_ops_create: { parameters: [P], result: I32 },
  dnnl_post_ops_append_eltwise: { parameters: [P, F32, I32, F32, F32], result: I32 },
  dnnl_post_ops_append_binary: { parameters: [P, I32, P], result: I32 },
  dnnl_primitive_attr_set_post_ops: { parameters: [P, P], result: I32 },
  dnnl_convolution_forward_desc_init: { parameters: [P, I32, I32, P, P, P, P, P, P, P], result: I32 },
  dnnl_convolution_backward_data_desc_init: { parameters: [P, I32, P, P, P, P, P, P], result: I32 },
  dnnl_convolution_backward_weights_desc_init: { parameters: [P, I32, P, P, P, P, P, P, P], result: I32 },
  dnnl_batch_normalization_forward_desc_init: { parameters: [P, I32, P, F32, U32], result: I32 },
  dnnl_batch_normalization_backward_desc_init: { parameters: [P, I32, P, P, F32, U32], result: I32 },
  dnnl_pooling_forward_desc_init: { parameters: [P, I32, I32, P, P, P, P, P, P], result: I32 },
  dnnl_pooling_backward_desc_init: { parameters: [P, I32, P, P, P, P, P, P], result: I32 },
  dnnl_sgemm: { parameters: ["u8", "u8", I64, I64, I64, F32, P, I64, P, I64, F32, P, I64], result: I32 },
} as const;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];
type Ptr = Deno.PointerValue;

/** dnnl_types.h (2.6). */
export const enum Tag {
  any = 1,
  a = 2,
  ab = 3,
  abcd = 5,
  nhwc = 20, // acdb
  nChw8c = 93, // aBcd8b
  OIhw8i8o = 98, // ABcd8b8a
  hwio = 30, // cdba
}
export const enum Prop {
  training = 64,
  inference = 96,
  backward = 128,
  backwardData = 160,
  backwardWeights = 192,
}
export const enum Query {
  src = 129,
  diffSrc = 130,
  weights = 131,
  diffWeights = 132,
  dst = 133,
  diffDst = 134,
  workspace = 135,
  implInfo = 8,
}
export const enum Arg {
  src = 1,
  dst = 17,
  weights = 33,
  bias = 41,
  mean = 49,
  variance = 50,
  scale = 51,
  shift = 52,
  workspace = 64,
  diffSrc = 129,
  diffDst = 145,
  diffWeights = 161,
  diffBias = 169,
  diffScale = 255,
  diffShift = 256,
}
export const BN_GLOBAL_STATS = 0x1, BN_FUSE_RELU = 0x4, BN_SCALE = 0x8, BN_SHIFT = 0x10;
const F32_TYPE = 3, CONV_DIRECT = 1, POOL_MAX = 0x1ff, RELU = 0x1f, ISA_AVX2 = 7;
const BINARY_ADD = 0x1fff0, BINARY_MUL = 0x1fff1;
const DESC_BYTES = 8192; // ≥ sizeof of every 2.6 descriptor (the largest, convolution's, is 5,976)
// sizeof(dnnl_memory_desc_t) in 2.6 (gcc's, over libdnnl-dev 2.6.3's dnnl.h). A copy reads exactly this much: a memory
// desc oneDNN returns lies inside its own objects, and reading past it can cross into an unmapped page (a segfault
// in a test run of 7 Dec 2026 read 1,024 bytes there).
const MD_BYTES = 696;

/** A memory descriptor: an opaque buffer (ours) or a pointer into a primitive descriptor. */
export type Md = Ptr;
/** A tensor: a oneDNN memory object over a Float32Array that JS reads and writes. */
export interface Mem {
  md: Md;
  mem: Ptr;
  data: Float32Array;
}

export interface Dnnl {
  /** e.g. "oneDNN 2.6.3 (AVX2 pinned, OpenMP 2 threads)". */
  readonly description: string;
  readonly version: string;
  /** OpenMP threads at load (OMP_NUM_THREADS, else the cores). */
  readonly threads: number;
  /** Threads for the primitives run from now on (≤ threads). */
  setThreads(n: number): void;
  /** A plain memory descriptor (dims outermost first, the logical NCHW / OIHW order). */
  md(dims: number[], tag: Tag): Md;
  /** The region dims at offsets inside a tensor of descriptor parent (a view: same buffer). */
  sub(parent: Md, dims: number[], offsets: number[]): Md;
  equal(a: Md, b: Md): boolean;
  /** Bytes a descriptor's tensor occupies (blocked formats pad channels). */
  bytes(md: Md): number;
  /** A tensor over `data` (or fresh zeros); the descriptor is copied, so pd queries may go away. */
  mem(md: Md, data?: Float32Array): Mem;
  /** Points an existing memory object at another array of the same size. */
  rebind(m: Mem, data: Float32Array): void;
  /** `post`: element-wise operations fused after the convolution, in order (see PostOp). */
  convFwd(prop: Prop, src: Md, weights: Md, bias: Md | null, dst: Md, stride: number, pad: number, post?: PostOp[]): Pd;
  convBwdData(diffSrc: Md, weights: Md, diffDst: Md, stride: number, pad: number, hint: Pd): Pd;
  convBwdWeights(src: Md, diffWeights: Md, diffBias: Md | null, diffDst: Md, stride: number, pad: number, hint: Pd): Pd;
  bnFwd(prop: Prop, data: Md, eps: number, flags: number): Pd;
  bnBwd(diffData: Md, data: Md, eps: number, flags: number, hint: Pd): Pd;
  poolFwd(prop: Prop, src: Md, dst: Md, k: number, stride: number, padL: number[], padR: number[]): Pd;
  poolBwd(diffSrc: Md, diffDst: Md, k: number, stride: number, padL: number[], padR: number[], hint: Pd): Pd;
  reorder(src: Md, dst: Md): Pd;
  /** Row-major C = op(A)·op(B) + beta·C (oneDNN's own sgemm). */
  sgemm: Sgemm;
}

/**
 * A fused post-op: ReLU, or a per-channel multiply / add by a tensor of dims [1, C, 1, 1]
 * (passed at execution as postOpArg(index in the list)).
 */
export type PostOp = "relu" | { mul: Md } | { add: Md };
/** The execution argument of post-op i's second input. */
export const postOpArg = (i: number): Arg => (16384 * (i + 1)) | 2;

/** A primitive descriptor and its primitive; `run` executes it on the library's one stream. */
export interface Pd {
  pd: Ptr;
  /** The implementation oneDNN chose, e.g. "jit:avx2". */
  impl: string;
  query(q: Query): Md;
  /** Executes with the given arguments; pass the same object every time (its FFI array is cached). */
  run(args: [Arg, Mem][]): void;
}

let cached: { dnnl: Dnnl | null; reason: string } | undefined;

/** An environment variable, or undefined (also without --allow-env). */
export function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Loads oneDNN once (AVX2 pinned). `reason` says why it is null, or what was loaded. */
export function loadOnednn(): { dnnl: Dnnl | null; reason: string } {
  return cached ??= openOnednn(envGet("COMPUTE_ONEDNN") ?? "libdnnl.so.2");
}

/** Opens the library at `path` (uncached: for tests; use loadOnednn). */
export function openOnednn(path: string): { dnnl: Dnnl | null; reason: string } {
  try {
    Deno.env.set("ONEDNN_MAX_CPU_ISA", "AVX2"); // read once, at the first primitive
    const lib = Deno.dlopen(path, symbols);
    const dnnl = wrap(lib.symbols);
    return { dnnl, reason: dnnl.description };
  } catch (e) {
    const why = (e as Error).message.split("\n")[0].replace(/^(Could not open library: )+/, "");
    return { dnnl: null, reason: `oneDNN not loaded (${why}); install Debian's libdnnl2 for that path` };
  }
}

function check(status: number, what: string): void {
  if (status !== 0) throw new Error(`oneDNN: ${what} failed (status ${status})`);
}

/**
 * OpenMP's thread count in this process (libgomp, which oneDNN runs on): read, and set for
 * the parallel regions the calling (JS) thread starts from now on.
 */
function openmp(): { max: () => number; set: (n: number) => void } {
  try {
    const gomp = Deno.dlopen("libgomp.so.1", {
      omp_get_max_threads: { parameters: [], result: "i32" },
      omp_set_num_threads: { parameters: ["i32"], result: "void" },
    }).symbols;
    return { max: () => gomp.omp_get_max_threads(), set: (n) => gomp.omp_set_num_threads(n) };
  } catch {
    const n = Number(envGet("OMP_NUM_THREADS") || navigator.hardwareConcurrency);
    return { max: () => n, set: () => {} };
  }
}

function wrap(s: Lib): Dnnl {
  const v = new Deno.UnsafePointerView(s.dnnl_version()!);
  const version = `${v.getInt32(0)}.${v.getInt32(4)}.${v.getInt32(8)}`;
  // Refused once a primitive exists or when the CPU lacks AVX2; the effective ISA says what holds.
  s.dnnl_set_max_cpu_isa(ISA_AVX2);
  const isa = s.dnnl_get_effective_cpu_isa();
  const out = new BigUint64Array(1), outPtr = Deno.UnsafePointer.of(out);
  const take = (): Ptr => Deno.UnsafePointer.create(out[0]);
  check(s.dnnl_engine_create(outPtr, 1, 0n), "engine");
  const engine = take();
  check(s.dnnl_stream_create(outPtr, engine, 1), "stream");
  const stream = take();
  const keep: unknown[] = []; // buffers oneDNN points into, alive as long as the library
  const buf = (n: number) => {
    const b = new Uint8Array(n);
    keep.push(b);
    return Deno.UnsafePointer.of(b);
  };
  const dims = (d: number[]) => {
    const a = BigInt64Array.from(d.map(BigInt));
    keep.push(a);
    return Deno.UnsafePointer.of(a);
  };
  const md = (d: number[], tag: Tag): Md => {
    const m = buf(DESC_BYTES);
    check(s.dnnl_memory_desc_init_by_tag(m, d.length, dims(d), F32_TYPE, tag), `memory desc ${d} tag ${tag}`);
    return m;
  };
  const copyMd = (src: Md): Md => {
    const m = buf(DESC_BYTES);
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(m!, MD_BYTES)).set(
      new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(src!, MD_BYTES)),
    );
    return m;
  };
  const bytes = (m: Md) => Number(s.dnnl_memory_desc_get_size(m));

  const makePd = (desc: Ptr, what: string, hint: Pd | null = null, attr: Ptr = null): Pd => {
    const st = s.dnnl_primitive_desc_create(outPtr, desc, attr, engine, hint?.pd ?? null);
    check(st, `${what} primitive descriptor`);
    const pd = take();
    check(s.dnnl_primitive_create(outPtr, pd), `${what} primitive`);
    const prim = take();
    const str = new BigUint64Array(1);
    check(s.dnnl_primitive_desc_query(pd, Query.implInfo, 0, Deno.UnsafePointer.of(str)), "impl query");
    const impl = Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(str[0])!);
    if (envGet("ONEDNN_TRACE")) console.error(`oneDNN ${what}: ${impl}`);
    const argCache = new WeakMap<object, BigInt64Array>();
    return {
      pd,
      impl,
      query: (q) => s.dnnl_primitive_desc_query_md(pd, q, 0),
      run(args) {
        let a = argCache.get(args);
        if (!a) {
          a = new BigInt64Array(2 * args.length);
          args.forEach(([arg, m], i) => (a![2 * i] = BigInt(arg), a![2 * i + 1] = Deno.UnsafePointer.value(m.mem)));
          argCache.set(args, a);
        }
        check(s.dnnl_primitive_execute(prim, stream, args.length, Deno.UnsafePointer.of(a)), `${what} execute`);
      },
    };
  };
  const two = (x: number) => dims([x, x]);
  const postOps = (ops: PostOp[]): Ptr => {
    check(s.dnnl_primitive_attr_create(outPtr), "attr");
    const attr = take();
    check(s.dnnl_post_ops_create(outPtr), "post-ops");
    const list = take();
    for (const op of ops) {
      if (op === "relu") check(s.dnnl_post_ops_append_eltwise(list, 1, RELU, 0, 0), "relu post-op");
      else if ("mul" in op) check(s.dnnl_post_ops_append_binary(list, BINARY_MUL, op.mul), "mul post-op");
      else check(s.dnnl_post_ops_append_binary(list, BINARY_ADD, op.add), "add post-op");
    }
    check(s.dnnl_primitive_attr_set_post_ops(attr, list), "set post-ops");
    return attr;
  };
  const omp = openmp(), threads = omp.max();
  const isaName = isa === ISA_AVX2 ? "AVX2 pinned" : `ISA ${isa} (AVX2 unavailable: not pinned)`;
  return {
    description: `oneDNN ${version} (${isaName}, ${threads} thread${threads === 1 ? "" : "s"})`,
    version,
    threads,
    setThreads: (n) => omp.set(n),
    md,
    sub(parent, d, offsets) {
      const m = buf(DESC_BYTES);
      check(s.dnnl_memory_desc_init_submemory(m, parent, dims(d), dims(offsets)), "sub-memory desc");
      return m;
    },
    equal: (a, b) => s.dnnl_memory_desc_equal(a, b) === 1,
    bytes,
    mem(m, data) {
      const own = copyMd(m);
      const n = bytes(own) / 4;
      data ??= new Float32Array(n);
      if (data.length < n) throw new Error(`oneDNN: tensor needs ${n} floats, got ${data.length}`);
      check(
        s.dnnl_memory_create(outPtr, own, engine, Deno.UnsafePointer.of(data as Float32Array<ArrayBuffer>)),
        "memory",
      );
      return { md: own, mem: take(), data };
    },
    rebind(m, data) {
      check(s.dnnl_memory_set_data_handle(m.mem, Deno.UnsafePointer.of(data as Float32Array<ArrayBuffer>)), "rebind");
      m.data = data;
    },
    convFwd(prop, src, w, bias, dst, stride, pad, post = []) {
      const d = buf(DESC_BYTES);
      check(
        s.dnnl_convolution_forward_desc_init(d, prop, CONV_DIRECT, src, w, bias, dst, two(stride), two(pad), two(pad)),
        "conv forward desc",
      );
      return makePd(d, "conv forward", null, post.length ? postOps(post) : null);
    },
    convBwdData(diffSrc, w, diffDst, stride, pad, hint) {
      const d = buf(DESC_BYTES);
      check(
        s.dnnl_convolution_backward_data_desc_init(
          d,
          CONV_DIRECT,
          diffSrc,
          w,
          diffDst,
          two(stride),
          two(pad),
          two(pad),
        ),
        "conv backward-data desc",
      );
      return makePd(d, "conv backward data", hint);
    },
    convBwdWeights(src, dw, db, diffDst, stride, pad, hint) {
      const d = buf(DESC_BYTES);
      check(
        s.dnnl_convolution_backward_weights_desc_init(
          d,
          CONV_DIRECT,
          src,
          dw,
          db,
          diffDst,
          two(stride),
          two(pad),
          two(pad),
        ),
        "conv backward-weights desc",
      );
      return makePd(d, "conv backward weights", hint);
    },
    bnFwd(prop, data, eps, flags) {
      const d = buf(DESC_BYTES);
      check(s.dnnl_batch_normalization_forward_desc_init(d, prop, data, eps, flags), "batch norm forward desc");
      return makePd(d, "batch norm forward");
    },
    bnBwd(diffData, data, eps, flags, hint) {
      const d = buf(DESC_BYTES);
      check(s.dnnl_batch_normalization_backward_desc_init(d, Prop.backward, diffData, data, eps, flags), "bn bwd desc");
      return makePd(d, "batch norm backward", hint);
    },
    poolFwd(prop, src, dst, k, stride, padL, padR) {
      const d = buf(DESC_BYTES);
      check(
        s.dnnl_pooling_forward_desc_init(d, prop, POOL_MAX, src, dst, two(stride), two(k), dims(padL), dims(padR)),
        "pool forward desc",
      );
      return makePd(d, "pool forward");
    },
    poolBwd(diffSrc, diffDst, k, stride, padL, padR, hint) {
      const d = buf(DESC_BYTES);
      check(
        s.dnnl_pooling_backward_desc_init(d, POOL_MAX, diffSrc, diffDst, two(stride), two(k), dims(padL), dims(padR)),
        "pool backward desc",
      );
      return makePd(d, "pool backward", hint);
    },
    reorder(src, dst) {
      check(s.dnnl_reorder_primitive_desc_create(outPtr, src, engine, dst, engine, null), "reorder desc");
      const pd = take();
      check(s.dnnl_primitive_create(outPtr, pd), "reorder primitive");
      const prim = take();
      const argCache = new WeakMap<object, BigInt64Array>();
      return {
        pd,
        impl: "reorder",
        query: (q) => s.dnnl_primitive_desc_query_md(pd, q, 0),
        run(args) {
          let a = argCache.get(args);
          if (!a) {
            a = BigInt64Array.from(args.flatMap(([arg, m]) => [BigInt(arg), Deno.UnsafePointer.value(m.mem)]));
            argCache.set(args, a);
          }
          check(s.dnnl_primitive_execute(prim, stream, args.length, Deno.UnsafePointer.of(a)), "reorder execute");
        },
      };
    },
    sgemm(tA, tB, m, n, k, a, b, c, beta = 0) {
      const p = (x: Float32Array) => Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>);
      const T = 84, N = 78; // 'T', 'N'
      check(
        s.dnnl_sgemm(
          tA ? T : N,
          tB ? T : N,
          BigInt(m),
          BigInt(n),
          BigInt(k),
          1,
          p(a),
          BigInt(tA ? m : k),
          p(b),
          BigInt(tB ? k : n),
          beta,
          p(c),
          BigInt(n),
        ),
        "sgemm",
      );
    },
  };
}
