// A read-only backend over HTTP(S) (https://host/prefix; http:// for a local server): a static web
// host or a public bucket serving a remote's layout (runs/<key>.json, objects/ab/cdef…) lets anyone
// pull a study's runs, weights included, without credentials. Written by another backend (a folder
// then published, an S3 bucket made public); pushing here is refused by remote.ts in one line.
// A private CA (a self-signed server): "remoteOptions": {"https": {"caCert": "ca.pem"}}.
import type { LocalSettings } from "../engine/settings.ts";
import { PipelineError } from "../types.ts";
import type { Backend } from "./backend.ts";

/** Answers that mean "not there": a public bucket without listing rights says 403 for a missing key. */
const ABSENT = new Set([403, 404, 410]);

export function open(url: string, settings: LocalSettings = {}): HttpBackend {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PipelineError(`bad remote URL ${url}`, "write it as https://host/prefix");
  }
  if (parsed.search || parsed.hash) {
    throw new PipelineError(`bad remote URL ${url}: no ?query or #fragment`, "write it as https://host/prefix");
  }
  const caCert = settings.remoteOptions?.https?.caCert;
  const client = caCert ? Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(caCert)] }) : undefined;
  return new HttpBackend(url.replace(/\/+$/, ""), client);
}

export class HttpBackend implements Backend {
  readonly readOnly = true;
  readonly jobs = 8;

  constructor(readonly url: string, private client?: Deno.HttpClient) {}

  /** The answer to method on rel; undefined when the server says it is not there. */
  private async request(method: "HEAD" | "GET", rel: string): Promise<Response | undefined> {
    let res: Response;
    try {
      res = await fetch(`${this.url}/${rel}`, { method, client: this.client, signal: AbortSignal.timeout(120_000) });
    } catch (e) {
      const why = String((e as Error)?.message ?? e).split("\n")[0];
      throw new PipelineError(
        `cannot reach ${this.url} (${why})`,
        "check the URL and that the server is up (a private CA: remoteOptions.https.caCert)",
      );
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (ABSENT.has(res.status)) return undefined;
    throw new PipelineError(
      `${this.url}/${rel}: the server answered ${res.status} ${res.statusText}`,
      "check the URL; rerun if the server had a passing fault",
    );
  }

  async stat(rel: string): Promise<number | undefined> {
    const res = await this.request("HEAD", rel);
    const length = res?.headers.get("content-length");
    return length === null || length === undefined ? undefined : Number(length);
  }

  async read(rel: string): Promise<string | undefined> {
    return await (await this.request("GET", rel))?.text();
  }

  async get(rel: string, dest: string, onBytes?: (n: number) => void): Promise<boolean> {
    const res = await this.request("GET", rel);
    if (!res?.body) return false;
    const file = await Deno.open(dest, { write: true, create: true, truncate: true });
    const count = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        onBytes?.(chunk.length);
        out.enqueue(chunk);
      },
    });
    await res.body.pipeThrough(count).pipeTo(file.writable); // closes the file, whatever happens
    return true;
  }

  close() {
    this.client?.close();
  }
}
