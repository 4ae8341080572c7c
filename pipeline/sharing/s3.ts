// An S3 remote (s3://bucket/prefix): every run, whatever its size, through the
// official SDK. Endpoint, region and credentials come from the standard AWS
// variables and files (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, …).
// Layout: <prefix>/objects/ab/cdef… (the cache's own SHA-256) and
// <prefix>/runs/<key>.json, each entry put after all its objects.
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createReadStream, createWriteStream } from "node:fs";
import { dirname } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { RunEntry } from "../store/cache.ts";
import { type EntryRead, parseEntry } from "../store/entry.ts";
import { formatBytes, Limiter, objectKey, type Remote, type TransferProgress } from "./remote.ts";
import { PipelineError } from "../types.ts";

/** Files above this go in parts of this size (S3's minimum part is 5 MiB). */
export const PART_BYTES = 16 << 20;
const ATTEMPTS = 4;

export class S3Remote implements Remote {
  readonly client: S3Client;
  readonly endpoint?: string;
  /** Set by push/pull to show a progress line. */
  progress?: TransferProgress;
  private limiter: Limiter;
  private ready?: Promise<unknown>;

  static fromUrl(url: string): S3Remote {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
    if (!m) throw new PipelineError(`bad remote URL ${url}`, "write it as s3://bucket/prefix (a valid bucket name)");
    return new S3Remote(m[1], (m[2] ?? "").replace(/\/+$/, ""));
  }

  constructor(readonly bucket: string, readonly prefix: string) {
    this.endpoint = Deno.env.get("AWS_ENDPOINT_URL_S3") || Deno.env.get("AWS_ENDPOINT_URL") || undefined;
    this.client = new S3Client({
      endpoint: this.endpoint,
      forcePathStyle: Boolean(this.endpoint), // S3-compatible servers (MinIO, s3rver) have no bucket subdomains
      // The default (checksums always) sends streamed bodies aws-chunked; some S3-compatible servers store the
      // framing as the object's bytes, silently (../shared/NOTES-slurm-s3.md). We verify hashes ourselves.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: ATTEMPTS,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
    });
    this.limiter = new Limiter(Math.max(1, Number(Deno.env.get("PIPELINE_S3_JOBS") ?? 8) || 8));
  }

  get url() {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
  }
  where(hash: string) {
    return `${this.url}/${objectKey(hash)}`;
  }
  private key(rel: string) {
    return this.prefix ? `${this.prefix}/${rel}` : rel;
  }

  /** One cheap call first, so a wrong bucket, endpoint or credentials is one clear error, not one per object. */
  private check(): Promise<unknown> {
    return this.ready ??= this.client
      .send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: this.key(""), MaxKeys: 1 }))
      .catch((e) => {
        throw this.explain(e, "list");
      });
  }

  /** The size of an object, or undefined if it is not there (whole). */
  private async size(rel: string): Promise<number | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
      return head.ContentLength;
    } catch (e) {
      // A server killed mid-write may fail to describe the leftover (s3rver: 500): sending it again replaces it.
      if (missing(e) || ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0) >= 500) {
        return undefined;
      }
      throw this.explain(e, `read ${rel}`);
    }
  }

  async has(hash: string, size: number): Promise<boolean> {
    await this.check();
    return await this.limiter.run(async () => (await this.size(objectKey(hash))) === size);
  }

  async readEntry(key: string): Promise<EntryRead> {
    await this.check();
    const rel = `runs/${key}.json`;
    return await this.limiter.run(async () => {
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
        return parseEntry(await res.Body!.transformToString(), key);
      } catch (e) {
        if (missing(e)) return undefined;
        throw this.explain(e, `read ${rel}`);
      }
    });
  }

  async download(hash: string, size: number, dest: string): Promise<boolean> {
    await this.check();
    this.progress?.plan(1, size);
    return await this.limiter.run(async () => {
      let body: Readable;
      try {
        const res = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.key(objectKey(hash)) }),
        );
        body = res.Body as Readable;
      } catch (e) {
        if (missing(e)) return false;
        throw this.explain(e, `download ${objectKey(hash)}`);
      }
      const progress = this.progress;
      const count = new Transform({
        transform(chunk, _enc, done) {
          progress?.add(0, chunk.length);
          done(null, chunk);
        },
      });
      try {
        await pipeline(body, count, createWriteStream(dest));
      } catch (e) {
        if (diskFull(e)) {
          throw new PipelineError(
            `disk full while pulling ${this.where(hash)} (${formatBytes(size)}) into ${dirname(dest)}`,
            "free space (or point PIPELINE_CACHE at a larger disk) and pull again: runs already pulled are kept",
          );
        }
        throw this.explain(e, `download ${objectKey(hash)}`);
      }
      progress?.add(1, 0);
      return true;
    });
  }

  async push(entries: RunEntry[], objectPath: (hash: string) => string): Promise<Set<string>> {
    await this.check();
    const held = new Set<string>();
    const todo: RunEntry[] = [];
    // A thin run (restored without its big files) is not whole here: it cannot be pushed.
    entries = entries.filter((e) => !e.absent?.length);
    await Promise.all(entries.map((e) =>
      this.limiter.run(async () => {
        if ((await this.size(`runs/${e.key}.json`)) !== undefined) held.add(e.key);
        else todo.push(e);
      })
    ));
    const objects = new Map<string, number>();
    for (const e of todo) for (const o of Object.values(e.outputs)) objects.set(o.hash, o.size);
    const send: Array<[string, number]> = [];
    await Promise.all([...objects].map(([hash, size]) =>
      this.limiter.run(async () => {
        // An object of the wrong size (a leftover of a killed upload on a server that writes in place) is replaced.
        if ((await this.size(objectKey(hash))) !== size) send.push([hash, size]);
      })
    ));
    const bytes = send.reduce((s, [, n]) => s + n, 0);
    this.progress?.out(
      `push ${this.url}: ${held.size} runs already there; ${send.length} objects to send (${formatBytes(bytes)}), ` +
        `${objects.size - send.length} already there`,
    );
    this.progress?.plan(send.length, bytes);
    await Promise.all(send.map(([hash]) => this.limiter.run(() => this.upload(hash, objectPath(hash)))));
    // Entries last: a run becomes visible only once every object it names is there whole.
    await Promise.all(todo.map((e) =>
      this.limiter.run(async () => {
        const rel = `runs/${e.key}.json`;
        await this.client
          .send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: this.key(rel),
              Body: new TextEncoder().encode(JSON.stringify({ ...e, absent: undefined }, null, 1) + "\n"),
              ContentType: "application/json",
            }),
          )
          .catch((err) => {
            throw this.explain(err, `upload ${rel}`);
          });
        held.add(e.key);
      })
    ));
    return held;
  }

  private async upload(hash: string, path: string) {
    const rel = objectKey(hash);
    // Upload sends one PutObject below PART_BYTES, a multipart upload above (parts in parallel).
    const up = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(rel), Body: createReadStream(path) },
      partSize: PART_BYTES,
      queueSize: 2,
    });
    let sent = 0;
    up.on("httpUploadProgress", (p) => {
      const loaded = p.loaded ?? sent;
      this.progress?.add(0, loaded - sent);
      sent = loaded;
    });
    try {
      await up.done();
    } catch (e) {
      throw this.explain(e, `upload ${rel}`);
    }
    this.progress?.add(1, 0);
  }

  explain(e: unknown, doing: string): unknown {
    return explainS3Error(e, { url: this.url, bucket: this.bucket, endpoint: this.endpoint, doing });
  }
}

function missing(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === "NoSuchKey" || err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404;
}

function diskFull(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === "ENOSPC" || /No space left on device|os error 28/.test(err?.message ?? "");
}

const NETWORK =
  /ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|EAI_AGAIN|socket hang up|TimeoutError|connect|Connection refused|network/i;

/** An SDK error → one line saying what is wrong and how to fix it (other errors pass through). */
export function explainS3Error(
  e: unknown,
  r: { url: string; bucket: string; endpoint?: string; doing: string },
): unknown {
  if (e instanceof PipelineError) return e;
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = err?.name ?? "";
  const status = err?.$metadata?.httpStatusCode;
  const message = String(err?.message ?? e).split("\n")[0];
  const server = r.endpoint ?? "AWS S3";
  const setting = `(--remote, or "remote" in pipeline/config.local.json)`;
  if (name === "NoSuchBucket") {
    return new PipelineError(
      `bucket ${r.bucket} does not exist on ${server}`,
      `create it (aws s3 mb s3://${r.bucket}) or fix the remote URL ${setting}`,
    );
  }
  if (
    /InvalidAccessKeyId|SignatureDoesNotMatch|InvalidToken|ExpiredToken|InvalidClientTokenId|AuthorizationHeaderMalformed/
      .test(name)
  ) {
    return new PipelineError(
      `${server} refused the credentials for ${r.url} (${name})`,
      "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials)",
    );
  }
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test(message)) {
    return new PipelineError(
      `no AWS credentials found for ${r.url}`,
      "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write ~/.aws/credentials",
    );
  }
  if (/Region is missing/i.test(message)) {
    return new PipelineError(`no AWS region set for ${r.url}`, "set AWS_REGION (e.g. us-east-1) or ~/.aws/config");
  }
  if (name === "AccessDenied" || status === 403) {
    return new PipelineError(
      `no permission to ${r.doing} in ${r.url} (${name || status})`,
      "grant these credentials s3:ListBucket, and s3:GetObject (pull) or s3:PutObject (push), on the bucket",
    );
  }
  if (NETWORK.test(`${err?.code ?? ""} ${name} ${message}`) && status === undefined) {
    return new PipelineError(
      `cannot reach ${server} (${err?.code || name}: ${message}) to ${r.doing}, after ${ATTEMPTS} attempts`,
      "check that the server is up and AWS_ENDPOINT_URL, then rerun: what was transferred is kept",
    );
  }
  return new PipelineError(
    `${r.url}: ${r.doing} failed (${name || "error"}${status ? ` ${status}` : ""}: ${message})`,
    "rerun; if it persists, check the server",
  );
}
