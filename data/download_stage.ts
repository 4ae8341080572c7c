// Stage "download": fetch (or generate) the CIFAR-10 binary archive, verify it
// and extract cifar-10-batches-bin/ into ctx.outDir. The archive is downloaded
// into ctx.checkpointDir so that a killed run resumes the transfer.
import { join } from "node:path";
import { DiskFull } from "../pipeline/types.ts";
import type { DownloadParams } from "../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../pipeline/types.ts";
import { downloadCifar } from "./download.ts";

export async function run(ctx: StageContext<DownloadParams>): Promise<Record<string, number | string>> {
  // The url first, then each mirror: any source is accepted only if its batch files match the official checksums.
  // What the data is (dataset) is in the cache key; where it comes from (url, mirrors) is not.
  if (ctx.params.url === "synthetic") {
    throw new PipelineError(
      "download.url=synthetic: the fake data set is chosen by download.dataset, not by the url",
      "use --set download.dataset=synthetic",
    );
  }
  const sources = ctx.params.dataset === "synthetic" ? ["synthetic"] : [
    String(ctx.params.url),
    ...String(ctx.params.mirrors ?? "").split(",").map((s) => s.trim()).filter(Boolean),
  ];
  const res = await firstThatWorks(
    sources,
    // With a fallback left, give up on a source sooner (3 tries, ~3 s) than on the last one.
    (source, i) => fetchFrom(ctx, source, i, i < sources.length - 1 ? { retries: 3 } : {}),
    (source, e) => ctx.log(`could not use ${source} (${e.message}); trying the next source`),
  );
  ctx.log(
    `${(res.archiveBytes / MiB).toFixed(1)} MiB archive: fetched in ${res.downloadSeconds.toFixed(1)} s, ` +
      `extracted and verified in ${res.extractSeconds.toFixed(1)} s`,
  );
  return {
    source: res.source,
    archive_mib: +(res.archiveBytes / MiB).toFixed(1),
    official_archive: res.officialArchive ? "yes" : "no",
    download_s: +res.downloadSeconds.toFixed(2),
    extract_s: +res.extractSeconds.toFixed(2),
  };
}

async function firstThatWorks<T>(
  sources: string[],
  attempt: (source: string, i: number) => Promise<T>,
  onFailure: (source: string, e: PipelineError) => void,
): Promise<T> {
  const failures: string[] = [];
  for (const [i, source] of sources.entries()) {
    try {
      return await attempt(source, i);
    } catch (e) {
      if (!(e instanceof PipelineError) || e instanceof DiskFull) throw e; // a full disk: no other source helps
      if (i === sources.length - 1) {
        if (!failures.length) throw e;
        throw new PipelineError([...failures, `${source}: ${e.message}`].join("; "), e.fix);
      }
      failures.push(`${source}: ${e.message}`);
      onFailure(source, e);
    }
  }
  throw new PipelineError("no source to download CIFAR-10 from", "set download.url");
}

const MiB = 1 << 20;

function fetchFrom(ctx: StageContext<DownloadParams>, source: string, i: number, fetch: { retries?: number }) {
  let lastStep = -1;
  return downloadCifar({
    source,
    outDir: ctx.outDir,
    // One folder per source, so a partial transfer is only ever resumed from where it came from.
    workDir: i === 0 ? ctx.checkpointDir : join(ctx.checkpointDir, `mirror-${i}`),
    fetch,
    root: ctx.root,
    synthetic: { perBatch: Number(ctx.params.synthetic_train), test: Number(ctx.params.synthetic_test) },
    log: (m) => ctx.log(m),
    progress(what, done, total, elapsed) {
      // One report per MiB: step/total in MiB, with the rate and time left.
      const step = done === total ? Math.ceil(done / MiB) : Math.floor(done / MiB);
      if (step === lastStep && done !== total) return;
      lastStep = step;
      const rate = done / MiB / Math.max(elapsed, 1e-3);
      const extra: Record<string, string> = {
        [what]: `${(done / MiB).toFixed(1)} MiB`,
        rate: `${rate.toFixed(1)} MiB/s`,
      };
      if (total) extra.left = `${Math.max(0, (total - done) / MiB / rate).toFixed(0)}s`;
      ctx.progress({ step, total: Math.ceil((total ?? done) / MiB), extra });
      if (done === total) lastStep = -1;
    },
  });
}
