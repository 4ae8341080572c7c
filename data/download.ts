// Get the CIFAR-10 archive (http(s), local path, or synthetic), extract the
// batch files with a streaming gunzip + tar reader, and verify them against
// their known MD5s. On any failure nothing is left in the output folder.
import { createHash } from "node:crypto";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DiskFull, isDiskFull, writing } from "../pipeline/types.ts";
import { PipelineError } from "../pipeline/types.ts";
import { DIR, OFFICIAL_ARCHIVE_MD5, OFFICIAL_FILE_MD5, OFFICIAL_URL, syntheticArchive, WANTED } from "./cifar.ts";
import { type FetchOptions, fetchResumable } from "./fetch.ts";
import { readTar } from "./tar.ts";

export interface DownloadOptions {
  /** http(s) URL, file: URL, local path, or "synthetic". */
  source: string;
  outDir: string;
  /** Where the archive is downloaded (survives a killed run, so the transfer resumes). */
  workDir: string;
  /** Relative local paths are resolved against this. */
  root?: string;
  synthetic?: { perBatch: number; test: number };
  /** Expected MD5 of each batch file; default: the official ones (synthetic: its own). Tests inject theirs. */
  fileMd5?: Record<string, string>;
  /** Require this archive MD5; default: the official one when the source is the official URL. */
  archiveMd5?: string;
  fetch?: Omit<FetchOptions, "onProgress" | "log" | "checkStart">;
  progress?: (what: string, done: number, total: number | undefined, elapsedS: number) => void;
  log?: (message: string) => void;
}

export interface DownloadResult {
  source: "http" | "local" | "synthetic";
  archiveBytes: number;
  archiveMd5: string;
  officialArchive: boolean;
  downloadSeconds: number;
  extractSeconds: number;
}

const GZIP_MAGIC = (b: Uint8Array) =>
  b[0] === 0x1f && b[1] === 0x8b
    ? undefined
    : `it does not start like a gzip file (${JSON.stringify(new TextDecoder().decode(b.subarray(0, 24)))}…)`;

export async function downloadCifar(o: DownloadOptions): Promise<DownloadResult> {
  const log = o.log ?? (() => {});
  const progress = o.progress ?? (() => {});
  let archive: string;
  let source: DownloadResult["source"];
  let fileMd5 = o.fileMd5 ?? OFFICIAL_FILE_MD5;
  let archiveMd5 = o.archiveMd5;
  let fromWorkDir = false; // a bad archive there is deleted, so a rerun fetches it again
  const t0 = performance.now();

  if (o.source === "synthetic") {
    const { perBatch, test } = o.synthetic ?? { perBatch: 500, test: 500 };
    const synth = await syntheticArchive(perBatch, test);
    archive = join(o.workDir, "synthetic.tar.gz");
    await writing(archive, synth.archive.byteLength, () => Deno.writeFile(archive, synth.archive))
      .catch(async (e) => { // a half-written synthetic archive is worth nothing: give its space back
        await Deno.remove(archive).catch(() => {});
        throw e;
      });
    fileMd5 = o.fileMd5 ?? synth.fileMd5;
    source = "synthetic";
    log(`synthetic archive: ${perBatch} images per training batch file, ${test} test images`);
  } else if (/^https?:\/\//i.test(o.source)) {
    if (o.source === OFFICIAL_URL) archiveMd5 ??= OFFICIAL_ARCHIVE_MD5;
    archive = join(o.workDir, "cifar-10-binary.tar.gz");
    fromWorkDir = true;
    source = "http";
    log(`downloading ${o.source}`);
    await fetchResumable(o.source, archive, {
      ...o.fetch,
      checkStart: GZIP_MAGIC,
      log,
      onProgress: (got, total) => progress("download", got, total, (performance.now() - t0) / 1000),
    });
  } else {
    archive = o.source.startsWith("file:")
      ? fileURLToPath(o.source)
      : isAbsolute(o.source)
      ? o.source
      : resolve(o.root ?? Deno.cwd(), o.source);
    source = "local";
    try {
      if (!(await Deno.stat(archive)).isFile) throw new Error();
    } catch {
      throw new PipelineError(
        `the archive ${archive} does not exist`,
        "use --set download.url=<an http(s) URL or the path of cifar-10-binary.tar.gz> (or add " +
          '"download.url": "…" to pipeline/params.local.json), or --set download.dataset=synthetic',
      );
    }
    log(`reading the local archive ${archive}`);
  }
  const t1 = performance.now();
  const archiveBytes = (await Deno.stat(archive)).size;

  try {
    const md5 = await extract(archive, archiveBytes, o.outDir, fileMd5, progress, log);
    if (archiveMd5 && md5 !== archiveMd5) {
      throw new PipelineError(
        `the archive's MD5 is ${md5}, not the official ${archiveMd5}`,
        "the download is corrupt: rerun to fetch it again, or use a mirror / local copy " +
          "(--set download.url=<path of cifar-10-binary.tar.gz>)",
      );
    }
    const officialArchive = md5 === OFFICIAL_ARCHIVE_MD5;
    log(
      officialArchive
        ? "the archive is the official one (MD5 matches)"
        : `archive MD5 ${md5} (not the official archive); its six batch files match their known checksums`,
    );
    if (fromWorkDir) {
      await Deno.remove(`${archive}.json`).catch(() => {});
      await Deno.remove(archive).catch(() => {});
    } else if (source === "synthetic") await Deno.remove(archive);
    return {
      source,
      archiveBytes,
      archiveMd5: md5,
      officialArchive,
      downloadSeconds: (t1 - t0) / 1000,
      extractSeconds: (performance.now() - t1) / 1000,
    };
  } catch (e) {
    await Deno.remove(join(o.outDir, DIR), { recursive: true }).catch(() => {});
    if (fromWorkDir && e instanceof PipelineError && !(e instanceof DiskFull)) { // a full disk: keep the download
      await Deno.remove(archive).catch(() => {});
      await Deno.remove(`${archive}.json`).catch(() => {});
    }
    throw e;
  }
}

/** Stream archive → MD5 → gunzip → tar → files; verify each batch file. Returns the archive MD5. */
async function extract(
  archive: string,
  archiveBytes: number,
  outDir: string,
  fileMd5: Record<string, string>,
  progress: NonNullable<DownloadOptions["progress"]>,
  log: (m: string) => void,
): Promise<string> {
  const t0 = performance.now();
  const archiveHash = createHash("md5");
  let read = 0;
  const file = await Deno.open(archive);
  const tee = new TransformStream<Uint8Array, Uint8Array<ArrayBuffer>>({
    transform(chunk, ctl) {
      archiveHash.update(chunk);
      read += chunk.length;
      progress("extract", read, archiveBytes, (performance.now() - t0) / 1000);
      ctl.enqueue(chunk as Uint8Array<ArrayBuffer>);
    },
  });
  const tarStream = file.readable.pipeThrough(tee).pipeThrough(new DecompressionStream("gzip"));
  await Deno.mkdir(join(outDir, DIR), { recursive: true });
  const got: Record<string, string> = {};
  const open: Deno.FsFile[] = [];
  const skipped: string[] = [];
  try {
    await readTar(tarStream, async (e) => {
      const base = e.name.startsWith(`${DIR}/`) ? e.name.slice(DIR.length + 1) : "";
      if (e.type !== "file" || !WANTED.includes(base)) {
        if (e.type === "file") skipped.push(e.name);
        return undefined;
      }
      const path = join(outDir, DIR, base);
      const f = await Deno.open(path, { write: true, create: true, truncate: true });
      open.push(f);
      const h = createHash("md5");
      let done = 0;
      return {
        async write(c: Uint8Array) {
          h.update(c);
          await writing(path, e.size - done, async () => {
            for (let off = 0; off < c.length;) off += await f.write(c.subarray(off));
          });
          done += c.length;
        },
        close() {
          got[base] = h.digest("hex");
          f.close();
          open.splice(open.indexOf(f), 1);
        },
      };
    });
    // Read past the end-of-archive marker: the archive MD5 covers every byte, and gunzip checks its CRC at the end.
    await tarStream.pipeTo(new WritableStream()).catch((e) => {
      if (isDiskFull(e)) throw e instanceof DiskFull ? e : new DiskFull(join(outDir, DIR));
      throw new PipelineError(
        `the archive is truncated or corrupt (${e instanceof Error ? e.message : e})`,
        "delete the partial file / download again, or check the url parameter",
      );
    });
  } catch (e) {
    await tarStream.cancel().catch(() => {}); // closes the archive file
    throw e;
  } finally {
    for (const f of open) f.close();
  }
  if (skipped.length) log(`skipped ${skipped.length} other file(s): ${skipped.slice(0, 3).join(", ")}`);
  for (const name of WANTED) {
    if (!(name in got)) {
      throw new PipelineError(
        `the archive has no ${DIR}/${name}`,
        "this is not the CIFAR-10 binary archive: check the url parameter (cifar-10-binary.tar.gz)",
      );
    }
  }
  for (const [name, want] of Object.entries(fileMd5)) {
    if (got[name] !== want) {
      throw new PipelineError(
        `${DIR}/${name} has MD5 ${got[name]}, expected ${want}`,
        "the archive is corrupt or not the real CIFAR-10: download it again (or from another mirror)",
      );
    }
  }
  return archiveHash.digest("hex");
}
