// The remote URL schemes, each with its backend module (loaded only when a remote of its scheme is
// used: the S3 SDK, ssh2), an example and a help line. The CLI's help, the settings' validation
// and openRemotes all read this list: a new backend is one file exporting `open` (backend.ts's
// OpenBackend) and one line here.
import type { OpenBackend } from "./backend.ts";

export interface Scheme {
  /** URL schemes it serves ("https", "http"). */
  schemes: string[];
  example: string;
  help: string;
  /** Pull only. */
  readOnly?: boolean;
  load: () => Promise<{ open: OpenBackend }>;
}

const scheme = (schemes: string, example: string, help: string, load: Scheme["load"], readOnly?: "read-only") => ({
  schemes: schemes.split("|"),
  example,
  help,
  load,
  readOnly: readOnly === "read-only",
});

export const SCHEMES: Scheme[] = [
  scheme("file", "file:///mnt/shared/study", "a folder on a shared disk (every file)", () => import("./folder.ts")),
  scheme("s3", "s3://bucket/prefix", "S3 or compatible (AWS_ENDPOINT_URL, AWS_* credentials)", () => import("./s3.ts")),
  scheme("https|http", "https://host/prefix", "a web host or public bucket", () => import("./http.ts"), "read-only"),
  scheme("ssh", "ssh://user@host[:port]/path", "a folder over SFTP (key: remoteOptions.ssh)", () => import("./ssh.ts")),
];

/** The scheme a URL uses, if it is one of SCHEMES. */
export function findScheme(url: string): (Scheme & { open: OpenBackend }) | undefined {
  const name = /^([a-z][a-z0-9+.-]*):\/\//.exec(url)?.[1];
  const scheme = SCHEMES.find((s) => name && s.schemes.includes(name));
  return scheme && { ...scheme, open: async (u, settings) => (await scheme.load()).open(u, settings) };
}

/** Examples of the remotes push can write to (all of them with `all`), for messages. */
export function writableExamples(all = false): string[] {
  return SCHEMES.filter((s) => all || !s.readOnly).map((s) => s.example);
}

/** The --remote help: one line per scheme, each after indent. */
export function schemesHelp(indent: string): string {
  return SCHEMES.map((s) => `${indent}${s.example}: ${s.help}${s.readOnly ? " (pull only)" : ""}`).join("\n");
}
