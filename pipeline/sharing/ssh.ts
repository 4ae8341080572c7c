// An SSH backend (ssh://user@host[:port]/absolute/path): a remote's layout in a folder on any host
// one can log in to, over SFTP (the npm package ssh2, loaded only when such a remote is used).
// The key: "remoteOptions": {"ssh": {"identity": "~/.ssh/id_ed25519"}} in pipeline/config.local.json,
// else ssh-agent ($SSH_AUTH_SOCK), else ~/.ssh/id_ed25519, id_ecdsa, id_rsa; never printed. The host's
// key must be in known_hosts ("knownHosts": a file, default ~/.ssh/known_hosts), as ssh checks it.
// Files are written under a temporary name and renamed into place, so none is seen half written.
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { homedir } from "node:os";
import { join } from "node:path";
import type { LocalSettings } from "../engine/settings.ts";
import { PipelineError } from "../types.ts";
import type { Backend } from "./backend.ts";

const FIX_URL = "write it as ssh://user@host[:port]/absolute/path";
const home = (p: string) => p.replace(/^~(?=\/|$)/, homedir());

export function open(url: string, settings: LocalSettings = {}): SshBackend {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PipelineError(`bad remote URL ${url}`, FIX_URL);
  }
  if (!u.hostname || !u.pathname.startsWith("/") || u.search || u.hash) {
    throw new PipelineError(`bad remote URL ${url}`, FIX_URL);
  }
  const options = settings.remoteOptions?.ssh ?? {};
  return new SshBackend({
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || 22),
    user: decodeURIComponent(u.username) || Deno.env.get("USER") || "root",
    path: decodeURIComponent(u.pathname).replace(/\/+$/, "") || "/",
    identity: options.identity ? home(options.identity) : undefined,
    knownHosts: home(options.knownHosts ?? "~/.ssh/known_hosts"),
  });
}

interface Target {
  host: string;
  port: number;
  user: string;
  path: string;
  identity?: string;
  knownHosts: string;
}

export class SshBackend implements Backend {
  readonly jobs = 4;
  private client?: Client;
  private sftp?: SFTPWrapper;
  private made = new Set<string>();

  constructor(readonly target: Target) {}

  get url() {
    const { user, host, port, path } = this.target;
    return `ssh://${user}@${host.includes(":") ? `[${host}]` : host}${port === 22 ? "" : `:${port}`}${path}`;
  }
  private abs(rel: string) {
    return `${this.target.path}/${rel}`;
  }

  /** Connect and open the SFTP session: a wrong host, key or host key is one line here. */
  async open() {
    const { Client } = (await import("ssh2")) as unknown as { Client: new () => Client };
    const { host, port, user } = this.target;
    const where = `${user}@${host}:${port}`;
    const auth = await credentials(this.target.identity);
    const expected = knownKeys(this.target.knownHosts, host, port);
    let refusedHost: PipelineError | undefined;
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.on("ready", resolve).on("error", reject).connect({
        host,
        port,
        username: user,
        ...auth,
        readyTimeout: 20_000,
        hostVerifier: (key: Uint8Array) => {
          const got = btoa(String.fromCharCode(...key));
          if (expected.includes(got)) return true;
          refusedHost = expected.length
            ? new PipelineError(
              `the host key of ${host}:${port} does not match ${this.target.knownHosts}: not connecting`,
              "if the host was reinstalled, check its new key and replace the line (ssh-keygen -R); else ask its admin",
            )
            : new PipelineError(
              `the host key of ${host}:${port} is not in ${this.target.knownHosts}: not connecting to an unknown host`,
              `check it and add it: ssh-keyscan -p ${port} ${host} >> ${this.target.knownHosts}`,
            );
          return false;
        },
      });
    }).catch((e) => {
      client.end();
      if (refusedHost) throw refusedHost;
      const why = String((e as Error)?.message ?? e).split("\n")[0];
      if (/passphrase/i.test(why)) {
        throw new PipelineError(`the key ${auth.name} has a passphrase`, "load it into ssh-agent (ssh-add)");
      }
      if (/authentication methods failed/i.test(why)) {
        throw new PipelineError(
          `${where} refused the key ${auth.name}`,
          `add its public key to ~${user}/.ssh/authorized_keys there, or set remoteOptions.ssh.identity`,
        );
      }
      throw new PipelineError(`cannot reach ${where} over SSH (${why})`, "check the host, the port and that sshd runs");
    });
    this.client = client;
    this.sftp = await new Promise<SFTPWrapper>((resolve, reject) =>
      client.sftp((err, sftp) => err ? reject(err) : resolve(sftp))
    ).catch((e) => {
      client.end();
      throw new PipelineError(`${where} offers no SFTP (${(e as Error).message})`, "enable the sftp subsystem in sshd");
    });
  }

  private call<T>(
    doing: string,
    rel: string,
    f: (sftp: SFTPWrapper, done: (err?: Error | null, v?: T) => void) => void,
  ) {
    return new Promise<T | undefined>((resolve, reject) =>
      f(this.sftp!, (err, v) => {
        if (!err) return resolve(v);
        if ((err as { code?: number }).code === 2) return resolve(undefined); // SSH_FX_NO_SUCH_FILE
        reject(
          new PipelineError(`${this.url}: ${doing} ${rel} failed (${err.message})`, "rerun; check the path and rights"),
        );
      })
    );
  }

  async stat(rel: string): Promise<number | undefined> {
    return (await this.call<{ size: number }>("stat", rel, (s, done) => s.stat(this.abs(rel), done)))?.size;
  }

  async read(rel: string): Promise<string | undefined> {
    return await this.call<string>(
      "read",
      rel,
      (s, done) => s.readFile(this.abs(rel), (err, buf) => done(err, buf && new TextDecoder().decode(buf))),
    );
  }

  async get(rel: string, dest: string, onBytes?: (n: number) => void): Promise<boolean> {
    if ((await this.stat(rel)) === undefined) return false;
    let last = 0;
    const step = (total: number) => (onBytes?.(total - last), last = total);
    await this.call("download", rel, (s, done) => s.fastGet(this.abs(rel), dest, { step }, done));
    return true;
  }

  async put(rel: string, src: string | Uint8Array, onBytes?: (n: number) => void): Promise<void> {
    const dest = this.abs(rel);
    await this.mkdirs(dest.slice(0, dest.lastIndexOf("/")));
    const tmp = `${dest}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    let last = 0;
    const step = (total: number) => (onBytes?.(total - last), last = total);
    try {
      if (typeof src === "string") await this.call("upload", rel, (s, done) => s.fastPut(src, tmp, { step }, done));
      else {
        await this.call("upload", rel, (s, done) => s.writeFile(tmp, Buffer.from(src), done));
        onBytes?.(src.length);
      }
      // posix-rename replaces what is there in one step (plain SFTP rename refuses an existing target).
      await this.call("rename", rel, (s, done) => s.ext_openssh_rename(tmp, dest, done));
    } catch (e) {
      await this.call("remove", rel, (s, done) => s.unlink(tmp, done)).catch(() => {});
      throw e;
    }
  }

  private async mkdirs(dir: string) {
    if (this.made.has(dir) || dir === "" || dir === "/") return;
    await this.mkdirs(dir.slice(0, dir.lastIndexOf("/")));
    const there = await this.call("stat", dir, (s, done) => s.stat(dir, done));
    if (!there) {
      await this.call("mkdir", dir, (s, done) => s.mkdir(dir, done)).catch(async (e) => {
        if (!(await this.call("stat", dir, (s, done) => s.stat(dir, done)))) throw e; // made meanwhile: fine
      });
    }
    this.made.add(dir);
  }

  close() {
    this.client?.end();
  }
}

// The part of ssh2's API used here (its @types package would pin an old @types/node for the whole project).
type Done<T = unknown> = (err: Error | null | undefined, value?: T) => void;
type Step = { step: (total: number) => void };
interface Client {
  on(event: "ready", f: () => void): Client;
  on(event: "error", f: (e: Error) => void): Client;
  connect(options: Record<string, unknown>): void;
  sftp(f: (err: Error | undefined, sftp: SFTPWrapper) => void): void;
  end(): void;
}
interface SFTPWrapper {
  stat(path: string, done: Done<{ size: number }>): void;
  readFile(path: string, done: Done<Uint8Array>): void;
  writeFile(path: string, data: Uint8Array, done: Done): void;
  fastGet(remote: string, local: string, options: Step, done: Done): void;
  fastPut(local: string, remote: string, options: Step, done: Done): void;
  ext_openssh_rename(from: string, to: string, done: Done): void;
  unlink(path: string, done: Done): void;
  mkdir(path: string, done: Done): void;
}

/** The key to log in with (its name for messages, never its bytes). */
async function credentials(identity?: string): Promise<{ name: string; privateKey?: string; agent?: string }> {
  const agent = Deno.env.get("SSH_AUTH_SOCK");
  if (!identity && agent) return { name: "of ssh-agent", agent };
  const files = identity ? [identity] : ["id_ed25519", "id_ecdsa", "id_rsa"].map((f) => join(homedir(), ".ssh", f));
  for (const file of files) {
    const privateKey = await Deno.readTextFile(file).catch(() => undefined);
    if (privateKey === undefined) continue;
    return { name: file, privateKey };
  }
  throw new PipelineError(
    identity ? `the key ${identity} is not readable` : "no SSH key found (~/.ssh/id_ed25519, id_ecdsa, id_rsa)",
    'set "remoteOptions": {"ssh": {"identity": "path/to/key"}} in pipeline/config.local.json, or run ssh-agent',
  );
}

/** The base64 keys known_hosts lists for host:port (plain or hashed names, as ssh writes them). */
function knownKeys(file: string, host: string, port: number): string[] {
  const name = port === 22 ? host : `[${host}]:${port}`;
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch { /* none: every host is unknown */ }
  const keys: string[] = [];
  for (const line of text.split("\n")) {
    const [hosts, , key] = line.trim().split(/\s+/);
    if (!hosts || !key || hosts.startsWith("#") || hosts.startsWith("@")) continue;
    const matches = hosts.split(",").some((h) => {
      if (!h.startsWith("|1|")) return h === name;
      const [salt, hash] = h.slice(3).split("|");
      return createHmac("sha1", Uint8Array.from(atob(salt), (c) => c.charCodeAt(0))).update(name).digest("base64") ===
        hash;
    });
    if (matches) keys.push(key);
  }
  return keys;
}
