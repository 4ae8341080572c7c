// A resumable HTTP download to a file: streams to `<dest>.part`, retries
// transient failures (network errors, dropped connections, 408/429/5xx) with
// exponential backoff, resumes with a Range request (guarded by If-Range) where
// the server supports it, and refuses answers that are not the file (HTML
// pages, bodies longer or shorter than announced). `<dest>.json` remembers
// the url and validators, so a killed run resumes the transfer.
import { DiskFull, writing } from "../pipeline/types.ts";
import { PipelineError } from "../pipeline/types.ts";

export interface FetchOptions {
  /** Failed attempts in a row before giving up (an attempt that got bytes resets the count). */
  retries?: number;
  /** First backoff; doubles per failed attempt, capped at 30 s. */
  backoffMs?: number;
  /** Abort an attempt when no byte arrives for this long. */
  idleTimeoutMs?: number;
  /**
   * Give up when the server has kept us waiting for an answer (no response headers) this long in
   * all, over every attempt: it accepts connections and never answers. One line, no more retries.
   */
  answerTimeoutMs?: number;
  /** Check the first bytes of the body (e.g. the gzip magic); return a reason to refuse it. */
  checkStart?: (first: Uint8Array) => string | undefined;
  onProgress?: (got: number, total: number | undefined) => void;
  log?: (message: string) => void;
}

interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
  complete?: boolean;
}

class Transient extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

/** Download `url` to `dest` (complete files only appear under that name). Returns the byte count. */
export async function fetchResumable(url: string, dest: string, opts: FetchOptions = {}): Promise<number> {
  const { retries = 6, backoffMs = 1000, idleTimeoutMs = 60_000, log = () => {} } = opts;
  const answerTimeoutMs = opts.answerTimeoutMs ?? 2 * idleTimeoutMs;
  let unanswered = 0; // ms spent waiting for answers that never came, over all attempts
  let silentTries = 0;
  const part = `${dest}.part`, metaPath = `${dest}.json`;
  let meta = await readMeta(metaPath);
  if (meta?.url !== url) {
    meta = { url };
    await Deno.remove(part).catch(() => {});
    await Deno.remove(dest).catch(() => {});
  } else if (meta.complete && (await fileSize(dest)) === meta.total) {
    log(`reusing the archive downloaded before (${dest})`);
    return meta.total!;
  }
  const saveMeta = () => Deno.writeTextFile(metaPath, JSON.stringify(meta));

  let failures = 0;
  for (;;) {
    const have = await fileSize(part);
    let got = have;
    try {
      if (meta.total !== undefined && have === meta.total) break; // finished before a kill
      const headers: Record<string, string> = {};
      if (have > 0) {
        headers["Range"] = `bytes=${have}-`;
        const validator = meta.etag ?? meta.lastModified;
        if (validator) headers["If-Range"] = validator;
      }
      const abort = new AbortController();
      let timer = setTimeout(() => abort.abort(), idleTimeoutMs);
      const poke = () => {
        clearTimeout(timer);
        timer = setTimeout(() => abort.abort(), idleTimeoutMs);
      };
      try {
        let res: Response;
        const asked = performance.now();
        try {
          res = await fetch(url, { headers, signal: abort.signal });
        } catch (e) {
          if (!abort.signal.aborted) throw new Transient(e instanceof Error ? e.message : String(e));
          unanswered += performance.now() - asked;
          silentTries++;
          if (unanswered >= answerTimeoutMs) {
            throw new PipelineError(
              `${url} accepted the connection but never answered (no reply in ${seconds(unanswered)} over ` +
                `${silentTries} ${silentTries > 1 ? "tries" : "try"})`,
              "check the server or the proxy, or use a mirror or a local copy " +
                "(--set download.url=<path of cifar-10-binary.tar.gz>)",
            );
          }
          throw new Transient(`${url} accepted the connection but sent no answer in ${seconds(idleTimeoutMs)}`);
        }
        if (res.status === 408 || res.status === 429 || res.status >= 500) {
          await res.body?.cancel();
          throw new Transient(`HTTP ${res.status} ${res.statusText}`);
        }
        if (res.status === 416 && have > 0) { // our part no longer fits the file: start over
          await res.body?.cancel();
          log("the server refused the resume range; starting over");
          await Deno.remove(part);
          meta = { url };
          continue;
        }
        if (!res.ok) {
          await res.body?.cancel();
          throw new PipelineError(
            `${url} answered HTTP ${res.status} ${res.statusText}`,
            "check the url parameter (a mirror URL or a local path of the archive works too)",
          );
        }
        if (/text\/html/i.test(res.headers.get("content-type") ?? "")) {
          await res.body?.cancel();
          throw new PipelineError(
            `${url} answered with an HTML page, not the archive`,
            "check the url parameter: it must point at the .tar.gz file itself",
          );
        }
        const length = Number(res.headers.get("content-length") ?? NaN);
        let append = false;
        if (res.status === 206) {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
          const total = m && m[3] !== "*" ? Number(m[3]) : undefined;
          if (!m || Number(m[1]) !== have || (meta.total !== undefined && total !== meta.total)) {
            await res.body?.cancel();
            log("the server answered an unexpected range; starting over");
            await Deno.remove(part).catch(() => {});
            meta = { url };
            continue;
          }
          append = true;
          log(`resuming at byte ${have} of ${total ?? "?"}`);
        } else {
          if (have > 0) log("the server ignored the resume request; starting over");
          got = 0;
          meta = {
            url,
            etag: res.headers.get("etag") ?? undefined,
            lastModified: res.headers.get("last-modified") ?? undefined,
            total: Number.isFinite(length) ? length : undefined,
          };
          await saveMeta();
        }
        const file = await Deno.open(part, { write: true, create: true, append, truncate: !append });
        try {
          const reader = res.body!.getReader();
          let first = !append;
          for (;;) {
            let chunk: ReadableStreamReadResult<Uint8Array>;
            try {
              chunk = await reader.read();
            } catch (e) {
              const why = abort.signal.aborted
                ? `no byte for ${seconds(idleTimeoutMs)}`
                : e instanceof Error
                ? e.message
                : String(e);
              throw new Transient(`connection lost after ${got} bytes (${why})`);
            }
            if (chunk.done) break;
            poke();
            if (first) {
              first = false;
              const why = opts.checkStart?.(chunk.value);
              if (why) {
                await reader.cancel();
                throw new PipelineError(`${url} is not the archive: ${why}`, "check the url parameter");
              }
            }
            const need = (meta.total ?? got + chunk.value.length) - got;
            await writing(part, need, async () => {
              for (let off = 0; off < chunk.value.length;) off += await file.write(chunk.value.subarray(off));
            });
            got += chunk.value.length;
            if (meta.total !== undefined && got > meta.total) {
              await reader.cancel();
              throw new PipelineError(
                `${url} sent more bytes (${got}) than it announced (${meta.total})`,
                "the server or a proxy is misbehaving: try again later or use a mirror / local copy",
              );
            }
            opts.onProgress?.(got, meta.total);
          }
        } finally {
          file.close();
        }
        if (meta.total !== undefined && got < meta.total) {
          throw new Transient(`connection closed after ${got} of ${meta.total} bytes`);
        }
        meta.total = got;
        break;
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      if (!(e instanceof Transient)) {
        // A refused answer: do not resume from it. A full disk is no fault of the answer: keep the part.
        if (e instanceof PipelineError && !(e instanceof DiskFull)) {
          await Deno.remove(part).catch(() => {});
          await Deno.remove(metaPath).catch(() => {});
        }
        throw e;
      }
      failures = got > have ? 1 : failures + 1;
      if (failures > retries) {
        throw new PipelineError(
          `downloading ${url} failed ${failures} times in a row (last: ${e.message})`,
          "check the network and rerun (the transfer resumes), or use --set download.url=<local path of the archive>",
        );
      }
      const wait = Math.min(backoffMs * 2 ** (failures - 1), 30_000);
      log(`${e.message}; retrying in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait);
    }
  }
  await Deno.rename(part, dest);
  meta.complete = true;
  await saveMeta();
  return meta.total!;
}
