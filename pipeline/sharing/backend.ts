// What a remote's storage must offer: a handful of operations on paths relative to the remote's
// root ("runs/<key>.json", "objects/ab/cdef…"), and what it cannot do (capabilities). The protocol
// on top (what to send, in which order, what to trust) is remote.ts's, written once for every backend.
// A new backend is one file implementing this and one line in registry.ts.
import type { LocalSettings } from "../engine/settings.ts";

export interface Backend {
  /** For messages: s3://bucket/prefix, https://host/prefix, pipeline/remote. */
  readonly url: string;
  /** Files above this many bytes are left out (the committed folder: git is no place for weights). */
  readonly maxBytes?: number;
  /** Pull only (a static web host): push is refused with one line. */
  readonly readOnly?: boolean;
  /** How many transfers at once (default 4). */
  readonly jobs?: number;
  /** A folder on this machine (the committed remote): gc keeps the runs it holds. */
  readonly dir?: string;
  /** One cheap call before the first transfer, so a wrong host or credentials is one error, not one per object. */
  open?(): Promise<void>;
  /** The size of rel, undefined if it is not there. */
  stat(rel: string): Promise<number | undefined>;
  /** Does rel hold exactly these bytes? Where checking is cheap (a local folder); otherwise the size is trusted. */
  holds?(rel: string, hash: string): Promise<boolean>;
  /** The text of rel (a run entry), undefined if it is not there. */
  read(rel: string): Promise<string | undefined>;
  /** Copy rel into the local file dest, reporting bytes as they come; false if rel is not there. */
  get(rel: string, dest: string, onBytes?: (n: number) => void): Promise<boolean>;
  /**
   * Store a local file (a path) or bytes at rel, replacing what is there; never visible half
   * written where the storage allows it (a temporary name, then a rename).
   */
  put?(rel: string, src: string | Uint8Array, onBytes?: (n: number) => void): Promise<void>;
  /** Release connections (a test or a command ends). */
  close?(): Promise<void> | void;
}

/** How a URL's backend is made: the URL and the machine's settings (credentials, keys). */
export type OpenBackend = (url: string, settings: LocalSettings) => Backend | Promise<Backend>;
