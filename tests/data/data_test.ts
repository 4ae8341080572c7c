// The data stages and module: download (against a local HTTP server: clean,
// dropped and resumed, 5xx, bad checksums, truncated gzip, path traversal,
// HTML), preprocess, .npy, the seeded generator and the study's batch order.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeTestContext } from "../support/stage_context.ts";
import { PipelineError } from "../../pipeline/types.ts";
import { DIR, md5, OFFICIAL_FILE_MD5, RECORD, syntheticArchive, syntheticRecords, WANTED } from "../../data/cifar.ts";
import { BatchSampler, chunks, gather, loadSplits, makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { downloadCifar, type DownloadOptions } from "../../data/download.ts";
import { run as downloadRun } from "../../data/download_stage.ts";
import { npyHeader, parseNpy, readNpy, writeNpy } from "../../data/npy.ts";
import { run as preprocessRun } from "../../data/preprocess_stage.ts";
import { Rng } from "../../data/rng.ts";
import { gzip, tarBytes } from "../../data/tar.ts";

const REAL_ARCHIVE = fileURLToPath(new URL("../../../shared/data/cifar-10-binary.tar.gz", import.meta.url));

// ---- helpers ----

/** A small synthetic archive (2 images per training batch file, 3 test images) and its checksums. */
const small = await syntheticArchive(2, 3);

interface Served {
  url: string;
  /** The Range header of every request (undefined: none). */
  ranges: (string | undefined)[];
}

type Handler = (req: Request, i: number) => Response | Promise<Response>;

async function withServer(handler: Handler, fn: (s: Served) => Promise<void>): Promise<void> {
  const ranges: (string | undefined)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    ranges.push(req.headers.get("range") ?? undefined);
    return handler(req, ranges.length - 1);
  });
  try {
    await fn({ url: `http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`, ranges });
  } finally {
    await server.shutdown();
  }
}

/**
 * Serve `bytes` with Range support (206) unless `noRange`; `dropAfter` ends
 * the body early while the Content-Length promises all of it (a dropped connection).
 */
function serveBytes(bytes: Uint8Array, req: Request, o: { dropAfter?: number; noRange?: boolean } = {}): Response {
  const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
  const start = m && !o.noRange ? Number(m[1]) : 0;
  const body = bytes.subarray(start);
  const limit = o.dropAfter ?? body.length;
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= limit) return c.close();
      const end = Math.min(at + 4096, limit);
      c.enqueue(body.slice(at, end));
      at = end;
    },
  });
  const headers: Record<string, string> = {
    "content-type": "application/x-gzip",
    "content-length": String(body.length),
    "accept-ranges": o.noRange ? "none" : "bytes",
    etag: `"${md5(bytes)}"`,
  };
  if (m && !o.noRange) headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
  return new Response(stream, { status: m && !o.noRange ? 206 : 200, headers });
}

async function withDirs(fn: (d: { outDir: string; workDir: string }) => Promise<void>): Promise<void> {
  const base = await Deno.makeTempDir({ prefix: "data-test-" });
  const outDir = `${base}/out`, workDir = `${base}/work`;
  await Deno.mkdir(outDir);
  await Deno.mkdir(workDir);
  try {
    await fn({ outDir, workDir });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

const quick = { retries: 3, backoffMs: 5 };
const opts = (url: string, d: { outDir: string; workDir: string }, extra: Partial<DownloadOptions> = {}) => ({
  source: url,
  ...d,
  fileMd5: small.fileMd5,
  fetch: quick,
  ...extra,
});

const entries = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

async function assertExtracted(outDir: string, fileMd5 = small.fileMd5) {
  assert.deepEqual(entries(`${outDir}/${DIR}`), [...WANTED].sort());
  for (const [f, want] of Object.entries(fileMd5)) {
    assert.equal(md5(await Deno.readFile(`${outDir}/${DIR}/${f}`)), want);
  }
}

/** Expect a one-line PipelineError whose message matches `re`, and an empty outDir. */
async function assertFails(p: Promise<unknown>, re: RegExp, outDir: string) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof PipelineError, `not a PipelineError: ${e}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n") && e.fix.length > 0);
    return true;
  });
  assert.deepEqual(entries(outDir), []);
}

// ---- download ----

Deno.test("download: a clean HTTP download extracts and verifies the six batch files", async () => {
  await withServer((req) => serveBytes(small.archive, req), async (s) => {
    await withDirs(async (d) => {
      const logs: string[] = [];
      const progress: number[] = [];
      const r = await downloadCifar({
        ...opts(s.url, d),
        log: (m) => logs.push(m),
        progress: (_w, done) => progress.push(done),
      });
      await assertExtracted(d.outDir);
      assert.equal(r.archiveBytes, small.archive.length);
      assert.equal(r.officialArchive, false);
      assert.deepEqual(s.ranges, [undefined]);
      assert.ok(progress.length > 0 && progress.at(-1) === small.archive.length);
      assert.deepEqual(entries(d.workDir), [], "the downloaded archive is removed after success");
    });
  });
});

Deno.test("download: a connection dropped half-way is resumed with a Range request", async () => {
  const half = Math.floor(small.archive.length / 2);
  await withServer(
    (req, i) => serveBytes(small.archive, req, i === 0 ? { dropAfter: half } : {}),
    async (s) => {
      await withDirs(async (d) => {
        await downloadCifar(opts(s.url, d));
        await assertExtracted(d.outDir);
        assert.equal(s.ranges.length, 2);
        assert.equal(s.ranges[1], `bytes=${half}-`);
      });
    },
  );
});

Deno.test("download: a run killed mid-transfer resumes from the checkpoint folder", async () => {
  const half = Math.floor(small.archive.length / 2);
  await withDirs(async (d) => {
    // First run: every answer drops half-way and retries are exhausted.
    await withServer((req) => serveBytes(small.archive, req, { dropAfter: half }), async (s) => {
      await assertFails(downloadCifar(opts(s.url, d, { fetch: { retries: 0 } })), /failed 1 times/, d.outDir);
    });
    assert.ok(entries(d.workDir).includes("cifar-10-binary.tar.gz.part"));
    // Second run (a new server on another port: same file, so the same url is simulated by the meta file).
    await withServer((req) => serveBytes(small.archive, req), async (s) => {
      const meta = JSON.parse(await Deno.readTextFile(`${d.workDir}/cifar-10-binary.tar.gz.json`));
      meta.url = s.url;
      await Deno.writeTextFile(`${d.workDir}/cifar-10-binary.tar.gz.json`, JSON.stringify(meta));
      await downloadCifar(opts(s.url, d));
      assert.deepEqual(s.ranges, [`bytes=${half}-`]);
      await assertExtracted(d.outDir);
    });
  });
});

Deno.test("download: a server without Range support is read again from the start", async () => {
  const half = Math.floor(small.archive.length / 2);
  await withServer(
    (req, i) => serveBytes(small.archive, req, { noRange: true, dropAfter: i === 0 ? half : undefined }),
    async (s) => {
      await withDirs(async (d) => {
        await downloadCifar(opts(s.url, d));
        await assertExtracted(d.outDir);
        assert.equal(s.ranges.length, 2);
      });
    },
  );
});

Deno.test("download: a 500 is retried, then succeeds", async () => {
  await withServer(
    (req, i) => i === 0 ? new Response("oops", { status: 500 }) : serveBytes(small.archive, req),
    async (s) => {
      await withDirs(async (d) => {
        const logs: string[] = [];
        await downloadCifar({ ...opts(s.url, d), log: (m) => logs.push(m) });
        await assertExtracted(d.outDir);
        assert.equal(s.ranges.length, 2);
        assert.ok(logs.some((l) => /HTTP 500.*retrying/.test(l)), logs.join("\n"));
      });
    },
  );
});

Deno.test("download: persistent 503s give up with a one-line error", async () => {
  await withServer(() => new Response("busy", { status: 503 }), async (s) => {
    await withDirs(async (d) => {
      await assertFails(
        downloadCifar(opts(s.url, d, { fetch: { retries: 2, backoffMs: 1 } })),
        /failed 3 times.*503/,
        d.outDir,
      );
    });
  });
});

Deno.test("download: a 404 and an HTML page are refused at once", async () => {
  await withServer(
    (_req, i) =>
      i === 0
        ? new Response("not here", { status: 404 })
        : new Response("<!DOCTYPE html><p>error</p>", { headers: { "content-type": "text/html" } }),
    async (s) => {
      await withDirs(async (d) => {
        await assertFails(downloadCifar(opts(s.url, d)), /HTTP 404/, d.outDir);
        await assertFails(downloadCifar(opts(s.url, d)), /HTML page/, d.outDir);
        assert.deepEqual(entries(d.workDir), []);
      });
    },
  );
  // An error page sent as octet-stream is caught by the gzip magic check.
  await withServer(() => new Response("<html>error</html>"), async (s) => {
    await withDirs(async (d) => {
      await assertFails(downloadCifar(opts(s.url, d)), /not the archive.*gzip/, d.outDir);
    });
  });
});

Deno.test("download: wrong batch bytes fail naming the file and both checksums; nothing is kept", async () => {
  const wrong = { ...small.fileMd5, "data_batch_3.bin": "0123456789abcdef0123456789abcdef" };
  await withServer((req) => serveBytes(small.archive, req), async (s) => {
    await withDirs(async (d) => {
      await assertFails(
        downloadCifar(opts(s.url, d, { fileMd5: wrong })),
        new RegExp(`data_batch_3\\.bin has MD5 ${small.fileMd5["data_batch_3.bin"]}, expected 0123456789abcdef`),
        d.outDir,
      );
      assert.deepEqual(entries(d.workDir), [], "a bad download is not kept for a resume");
      // Without injected checksums the official ones apply: a synthetic archive is not CIFAR-10.
      await assertFails(
        downloadCifar({ source: s.url, ...d, fetch: quick }),
        new RegExp(`data_batch_1\\.bin has MD5 \\w+, expected ${OFFICIAL_FILE_MD5["data_batch_1.bin"]}`),
        d.outDir,
      );
    });
  });
});

Deno.test("download: a truncated gzip is rejected as truncated", async () => {
  for (const keep of [0.6, 0.999]) {
    const cut = small.archive.slice(0, Math.floor(small.archive.length * keep));
    await withServer((req) => serveBytes(cut, req), async (s) => {
      await withDirs(async (d) => {
        await assertFails(downloadCifar(opts(s.url, d)), /truncated or corrupt/, d.outDir);
      });
    });
  }
});

Deno.test("download: a tar entry named ../evil is rejected (path traversal)", async () => {
  const evil = await gzip(tarBytes([{ name: `${DIR}/` }, { name: "../evil", data: new Uint8Array([1, 2, 3]) }]));
  await withServer((req) => serveBytes(evil, req), async (s) => {
    await withDirs(async (d) => {
      await assertFails(downloadCifar(opts(s.url, d)), /"\.\.\/evil".*path traversal/, d.outDir);
      assert.deepEqual(entries(`${d.outDir}/..`), ["out", "work"]);
    });
  });
});

Deno.test("download: an archive missing a batch file, a missing local path, a wrong archive MD5", async () => {
  const tar = tarBytes([{ name: `${DIR}/data_batch_1.bin`, data: new Uint8Array(RECORD) }]);
  await withDirs(async (d) => {
    await Deno.writeFile(`${d.workDir}/a.tar.gz`, await gzip(tar));
    await assertFails(downloadCifar(opts(`${d.workDir}/a.tar.gz`, d)), /has no cifar-10-batches-bin\//, d.outDir);
    await assertFails(downloadCifar(opts(`${d.workDir}/nope.tar.gz`, d)), /does not exist/, d.outDir);
    await Deno.writeFile(`${d.workDir}/b.tar.gz`, small.archive);
    await assertFails(
      downloadCifar(opts(`${d.workDir}/b.tar.gz`, d, { archiveMd5: "0".repeat(32) })),
      /not the official/,
      d.outDir,
    );
    await downloadCifar(opts(`file://${d.workDir}/b.tar.gz`, d)); // a local copy works, as path or file: URL
    await assertExtracted(d.outDir);
    assert.ok(await Deno.stat(`${d.workDir}/b.tar.gz`), "a local source is left alone");
  });
});

// ---- the stages on synthetic data ----

Deno.test("download + preprocess stages: dataset=synthetic gives the full layout", async () => {
  const dl = await makeTestContext({
    stage: "download",
    params: { dataset: "synthetic" as const, url: "", mirrors: "", synthetic_train: 10, synthetic_test: 20 },
    quiet: true,
  });
  const pp = await makeTestContext({ stage: "preprocess", params: {}, inputs: { download: dl.outDir }, quiet: true });
  try {
    const m = await downloadRun(dl);
    assert.equal(m.source, "synthetic");
    for (let i = 1; i <= 5; i++) {
      const bytes = await Deno.readFile(`${dl.outDir}/${DIR}/data_batch_${i}.bin`);
      assert.equal(bytes.length, 10 * RECORD);
    }
    assert.deepEqual(entries(dl.checkpointDir), []);

    const pm = await preprocessRun(pp);
    assert.equal(pm.n_train, 50);
    assert.equal(pm.n_test, 20);
    assert.ok(Number(pm.peak_rss_mib) > 0);
    const { train, test } = await loadSplits(pp.outDir);
    assert.equal(train.n, 50);
    assert.equal(test.x.length, 20 * 3072);
    // Check one pixel by hand: record 0 of data_batch_1, row 2, col 5, green, minus the mean.
    const rec = (await Deno.readFile(`${dl.outDir}/${DIR}/data_batch_1.bin`)).subarray(0, RECORD);
    const mean = (await readNpy(`${pp.outDir}/mean.npy`)).data as Float32Array;
    const p = 2 * 32 + 5;
    assert.equal(train.y[0], rec[0]);
    assert.equal(train.x[3 * p + 1], Math.fround(rec[1 + 1024 + p] - mean[3 * p + 1]));
    // Centred: the training mean of every pixel is ~0.
    let s = 0;
    for (let i = 0; i < train.n; i++) s += train.x[i * 3072 + 100];
    assert.ok(Math.abs(s / train.n) < 1e-3);
    const summary = JSON.parse(await Deno.readTextFile(`${pp.outDir}/summary.json`));
    assert.equal(summary.train.class_counts.reduce((a: number, b: number) => a + b), 50);
    assert.equal(summary.channel_means_before_centring.train.length, 3);
  } finally {
    await dl.cleanup();
    await pp.cleanup();
  }
});

Deno.test("synthetic archives are deterministic and in the CIFAR-10 record format", async () => {
  const again = await syntheticArchive(2, 3);
  assert.deepEqual(again.fileMd5, small.fileMd5);
  const r = syntheticRecords(50, 1);
  assert.equal(r.length, 50 * RECORD);
  for (let i = 0; i < 50; i++) assert.ok(r[i * RECORD] <= 9);
});

// ---- .npy ----

Deno.test("npy: the v1.0 header numpy writes, and a round trip of every dtype", async () => {
  const h = new TextDecoder().decode(npyHeader("<f4", [2, 3]).subarray(10));
  assert.match(h, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} +\n$/);
  assert.equal((10 + h.length) % 64, 0);
  assert.match(new TextDecoder().decode(npyHeader("|u1", [7])), /'shape': \(7,\)/);
  const dir = await Deno.makeTempDir();
  try {
    for (
      const a of [Float32Array.of(1.5, -2, 3), Float64Array.of(1e-300, 2), Uint8Array.of(0, 255), Int32Array.of(-7, 9)]
    ) {
      await writeNpy(`${dir}/a.npy`, a, [a.length]);
      const back = await readNpy(`${dir}/a.npy`);
      assert.deepEqual(back.data, a);
      assert.deepEqual(back.shape, [a.length]);
    }
    await assert.rejects(readNpy(`${dir}/missing.npy`), PipelineError);
    assert.throws(() => parseNpy(new Uint8Array(20)), PipelineError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- generator and batch order ----

Deno.test("rng: xoshiro128** matches the reference outputs; below() and shuffle()", () => {
  const r = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual(Array.from({ length: 6 }, () => r.nextU32()), [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  // Seeding by SplitMix32 (values from an independent Python implementation).
  const s = new Rng(42);
  assert.deepEqual([s.nextU32(), s.nextU32(), s.nextU32()], [2837322924, 544945897, 479756282]);
  const g = new Rng(1);
  const counts = new Array(3).fill(0);
  for (let i = 0; i < 3000; i++) counts[g.below(3)]++;
  assert.ok(counts.every((c) => c > 900 && c < 1100), String(counts));
  const perm = g.shuffle(Int32Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual([...perm].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
});

Deno.test("BatchSampler: first epoch in order, reshuffle at the epoch end, the remainder dropped", () => {
  const b = new BatchSampler(10, 4);
  assert.deepEqual([...b.next()], [0, 1, 2, 3]);
  assert.deepEqual([...b.next()], [4, 5, 6, 7]);
  assert.equal(b.epoch, 0);
  // 8 and 9 would make a short batch: the study reshuffles and starts again at index 0.
  const third = b.next();
  assert.equal(b.epoch, 1);
  assert.deepEqual([...third], [...b.order.subarray(0, 4)]);
  assert.deepEqual([...b.order].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual([...b.order], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // An epoch that divides evenly is served fully before the reshuffle.
  const e = new BatchSampler(8, 4);
  assert.deepEqual([...e.next(), ...e.next()], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(e.epoch, 0);
  const next = e.next();
  assert.equal(e.epoch, 1);
  assert.equal(new Set([...next, ...e.next()]).size, 8, "the second epoch is a permutation");
  assert.throws(() => new BatchSampler(5, 6), PipelineError);
});

Deno.test("BatchSampler: deterministic for a seed, different across seeds", () => {
  const seq = (seed?: number) => {
    const b = new BatchSampler(1000, 64, seed);
    return Array.from({ length: 40 }, () => [...b.next()]).flat();
  };
  assert.deepEqual(seq(), seq(42));
  assert.notDeepEqual(seq(42), seq(7));
});

Deno.test("gather, chunks, makeSyntheticSplits, writeSplits → loadSplits", async () => {
  const s = makeSyntheticSplits(30, 12, 5);
  assert.equal(s.train.n, 30);
  assert.deepEqual(makeSyntheticSplits(30, 12, 5).train.x, s.train.x);
  const g = gather(s.train, Int32Array.of(7, 2));
  assert.deepEqual(g.x.subarray(3072), s.train.x.subarray(2 * 3072, 3 * 3072));
  assert.deepEqual([...g.y], [s.train.y[7], s.train.y[2]]);
  const cs = [...chunks(s.test, 5)];
  assert.deepEqual(cs.map((c) => c.y.length), [5, 5, 2]);
  assert.equal(cs[2].x.length, 2 * 3072);
  const dir = await Deno.makeTempDir();
  try {
    await writeSplits(dir, s);
    const back = await loadSplits(dir);
    assert.deepEqual(back.train.x, s.train.x);
    assert.deepEqual(back.test.y, s.test.y);
    assert.equal(back.test.n, 12);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the real data, served on 127.0.0.1 ----

const realArchive = await Deno.stat(REAL_ARCHIVE).catch(() => undefined);
if (!realArchive) console.error(`skipping the real-data download test: ${REAL_ARCHIVE} is absent (see its README)`);

Deno.test({
  name: "download + preprocess on the real CIFAR-10 archive served over HTTP",
  ignore: !realArchive,
}, async () => {
  const stat = realArchive!;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    const file = await Deno.open(REAL_ARCHIVE);
    return new Response(file.readable, {
      headers: { "content-type": "application/gzip", "content-length": String(stat.size) },
    });
  });
  const url = `http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`;
  const dl = await makeTestContext({
    stage: "download",
    params: { url, dataset: "cifar-10" as const, mirrors: "", synthetic_train: 500, synthetic_test: 500 },
    quiet: true,
  });
  const pp = await makeTestContext({ stage: "preprocess", params: {}, inputs: { download: dl.outDir }, quiet: true });
  try {
    const dm = await downloadRun(dl);
    assert.equal(dm.official_archive, "no"); // the shared copy has its own tar wrapper
    await server.shutdown();
    const pm = await preprocessRun(pp);
    assert.equal(pm.n_train, 50000);
    assert.equal(pm.n_test, 10000);
    const summary = JSON.parse(await Deno.readTextFile(`${pp.outDir}/summary.json`));
    assert.deepEqual(summary.train.class_counts, new Array(10).fill(5000));
    assert.deepEqual(summary.test.class_counts, new Array(10).fill(1000));
    const [r, g, b] = summary.channel_means_before_centring.train;
    assert.ok(Math.abs(r - 125.3) < 0.05 && Math.abs(g - 123.0) < 0.05 && Math.abs(b - 113.9) < 0.05, `${r} ${g} ${b}`);
    const trainY = await readNpy(`${pp.outDir}/train_y.npy`);
    const testY = await readNpy(`${pp.outDir}/test_y.npy`);
    assert.equal(trainY.data[0], 6); // a frog
    assert.equal(testY.data[0], 3); // a cat
    const head = new Uint8Array(128);
    const f = await Deno.open(`${pp.outDir}/train_x.npy`);
    await f.read(head);
    f.close();
    assert.match(
      new TextDecoder().decode(head),
      /'descr': '<f4', 'fortran_order': False, 'shape': \(50000, 32, 32, 3\)/,
    );
    const mean = await readNpy(`${pp.outDir}/mean.npy`);
    assert.deepEqual(mean.shape, [32, 32, 3]);
  } finally {
    await server.shutdown().catch(() => {});
    await dl.cleanup();
    await pp.cleanup();
  }
});

Deno.test("download stage: url=synthetic is refused with a hint (the fake set is download.dataset, in the key)", async () => {
  const dl = await makeTestContext({
    stage: "download",
    params: { dataset: "cifar-10" as const, url: "synthetic", mirrors: "", synthetic_train: 500, synthetic_test: 500 },
    quiet: true,
  });
  try {
    await assert.rejects(
      () => downloadRun(dl),
      (e: PipelineError) => /download\.dataset/.test(e.message) && /--set download\.dataset=synthetic/.test(e.fix),
    );
  } finally {
    await dl.cleanup();
  }
});
