// An S3 backend (s3://bucket/prefix): every run, whatever its size, through the official SDK.
// Endpoint, region and credentials come from the standard AWS variables and files
// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, …). The protocol is remote.ts's.
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createReadStream, createWriteStream } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Backend } from "./backend.ts";
import { PipelineError } from "../types.ts";

/** Files above this go in parts of this size (S3's minimum part is 5 MiB). */
export const PART_BYTES = 16 << 20;
const ATTEMPTS = 4;

export function open(url: string): S3Backend {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new PipelineError(`bad remote URL ${url}`, "write it as s3://bucket/prefix (a valid bucket name)");
  return new S3Backend(m[1], (m[2] ?? "").replace(/\/+$/, ""));
}

export class S3Backend implements Backend {
  readonly client: S3Client;
  readonly endpoint?: string;
  readonly jobs: number;

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
    this.jobs = Math.max(1, Number(Deno.env.get("PIPELINE_S3_JOBS") ?? 8) || 8);
  }

  get url() {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
  }
  private key(rel: string) {
    return this.prefix ? `${this.prefix}/${rel}` : rel;
  }

  async open() {
    await this.client
      .send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: this.key(""), MaxKeys: 1 }))
      .catch((e) => {
        throw this.explain(e, "list");
      });
  }

  async stat(rel: string): Promise<number | undefined> {
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

  async read(rel: string): Promise<string | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
      return await res.Body!.transformToString();
    } catch (e) {
      if (missing(e)) return undefined;
      throw this.explain(e, `read ${rel}`);
    }
  }

  async get(rel: string, dest: string, onBytes?: (n: number) => void): Promise<boolean> {
    let body: Readable;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
      body = res.Body as Readable;
    } catch (e) {
      if (missing(e)) return false;
      throw this.explain(e, `download ${rel}`);
    }
    const count = new Transform({
      transform(chunk, _enc, done) {
        onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, count, createWriteStream(dest));
    } catch (e) {
      if ((e as { code?: string })?.code === "ENOSPC") throw e; // remote.ts says so, with the fix
      throw this.explain(e, `download ${rel}`);
    }
    return true;
  }

  async put(rel: string, src: string | Uint8Array, onBytes?: (n: number) => void): Promise<void> {
    if (typeof src !== "string") {
      const type = rel.endsWith(".json") ? "application/json" : undefined;
      const put = new PutObjectCommand({ Bucket: this.bucket, Key: this.key(rel), Body: src, ContentType: type });
      await this.client.send(put).catch((e) => {
        throw this.explain(e, `upload ${rel}`);
      });
      return onBytes?.(src.length);
    }
    // Upload sends one PutObject below PART_BYTES, a multipart upload above (parts in parallel).
    const up = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(rel), Body: createReadStream(src) },
      partSize: PART_BYTES,
      queueSize: 2,
    });
    let sent = 0;
    up.on("httpUploadProgress", (p) => {
      const loaded = p.loaded ?? sent;
      onBytes?.(loaded - sent);
      sent = loaded;
    });
    try {
      await up.done();
    } catch (e) {
      throw this.explain(e, `upload ${rel}`);
    }
  }

  close() {
    this.client.destroy();
  }

  explain(e: unknown, doing: string): unknown {
    return explainS3Error(e, { url: this.url, bucket: this.bucket, endpoint: this.endpoint, doing });
  }
}

function missing(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === "NoSuchKey" || err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404;
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
