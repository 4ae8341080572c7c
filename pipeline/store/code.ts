// What a TS/JS file does, for cache keys: the hash of its code with comments,
// formatting and types removed, and the specifiers it loads at run time. Both
// come from typescript's own transpiler and parser, so a comment, a `deno fmt`
// reflow or an `import type` keeps every key. typescript takes seconds to load:
// it is imported only on a miss of the per-content cache (.cache/code.json).
import { extname } from "node:path";
import { sha256, writeFileAtomic } from "./hash.ts";

export interface CodeInfo {
  /** SHA-256 of the normalised code. */
  hash: string;
  /** Run-time specifiers: imports, re-exports, import("…"), import.meta.resolve("…"), new URL("…", import.meta.url). */
  specifiers: string[];
}

type TS = typeof import("typescript");

let loading: Promise<TS> | undefined;
let loaded = false;

/** Whether this process has loaded typescript (a no-op reproduce must not). */
export function typescriptLoaded(): boolean {
  return loaded;
}

// Not a literal specifier: Deno would then prepare the package at every start-up (~0.2 s), used or not.
const TYPESCRIPT = "typescript";

function typescript(): Promise<TS> {
  return loading ??= import(TYPESCRIPT).then((m) => {
    loaded = true;
    return m.default as TS;
  });
}

/** Bump when the normalisation changes: entries of code.json made by another one are dropped. */
const FORMAT = 1;

export async function analyse(source: string, fileName: string): Promise<CodeInfo> {
  const ts = await typescript();
  // Types, interfaces, `import type` and imports used only as types go; nothing is down-levelled.
  const js = ts.transpileModule(source, {
    fileName,
    reportDiagnostics: false,
    compilerOptions: {
      target: ts.ScriptTarget.ESNext,
      module: ts.ModuleKind.ESNext,
      jsx: ts.JsxEmit.Preserve,
      removeComments: true,
    },
  }).outputText;
  const jsx = /x$/.test(extname(fileName));
  const file = ts.createSourceFile(
    "out.js",
    js,
    ts.ScriptTarget.ESNext,
    true,
    jsx ? ts.ScriptKind.JSX : ts.ScriptKind.JS,
  );

  // The parser's tokens, not a bare scan: regex and template literals stay whole, whitespace inside them counts.
  const tokens: string[] = [];
  const specifiers = new Set<string>();
  const visit = (node: import("typescript").Node) => {
    const spec = specifierOf(ts, node);
    if (spec !== undefined) specifiers.add(spec);
    const children = node.getChildren(file);
    if (children.length) {
      // `deno fmt` adds or drops the braces of `if (…) x;` as it wraps: a body is hashed braced, as parsed
      // (dropping braces instead would let `if (a) { if (b) x; } else y;` read as another program).
      const brace = !ts.isBlock(node) && isBody(ts, node);
      if (brace) tokens.push("{");
      children.forEach(visit);
      if (brace) tokens.push("}");
      return;
    }
    // Quote style is formatting; the string's value is not.
    const text = ts.isStringLiteral(node) ? JSON.stringify(node.text) : node.getText(file);
    if (!text) return;
    // A trailing comma comes and goes as `deno fmt` wraps a list.
    const trailing = tokens.at(-1) === "," && tokens.at(-2) !== "," && tokens.at(-2) !== "["; // not a hole: [a, ,]
    if ((text === ")" || text === "]" || text === "}") && trailing) tokens.pop();
    tokens.push(text);
  };
  visit(file);
  return { hash: sha256(tokens.join(" ")), specifiers: [...specifiers] };
}

/** The body of an if/else or a loop: braces around it are optional. */
function isBody(ts: TS, node: import("typescript").Node): boolean {
  const p = node.parent;
  if (!p) return false;
  if (ts.isIfStatement(p)) return p.thenStatement === node || p.elseStatement === node;
  return ts.isIterationStatement(p, false) && p.statement === node;
}

function specifierOf(ts: TS, node: import("typescript").Node): string | undefined {
  if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
    return ts.isStringLiteralLike(node.moduleSpecifier) ? node.moduleSpecifier.text : undefined;
  }
  if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
    const [arg] = node.arguments;
    return arg && ts.isStringLiteralLike(arg) ? arg.text : undefined;
  }
  // import.meta.resolve("x"): a module located (not loaded) at run time, e.g. to read a package's files.
  if (
    ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) &&
    ts.isMetaProperty(node.expression.expression) && node.expression.name.text === "resolve"
  ) {
    const [arg] = node.arguments;
    return arg && ts.isStringLiteralLike(arg) ? arg.text : undefined;
  }
  // new URL("./asset", import.meta.url): a file next to the code, read at run time.
  if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === "URL") {
    const [arg, base] = node.arguments ?? [];
    if (
      arg && ts.isStringLiteralLike(arg) && base && ts.isPropertyAccessExpression(base) &&
      ts.isMetaProperty(base.expression) && base.name.text === "url"
    ) return arg.text;
  }
  return undefined;
}

/**
 * Persistent map: file content (extension + byte hash) → CodeInfo. With the
 * stat cache in front, an unchanged file is neither read nor parsed.
 */
export class CodeCache {
  private entries: Record<string, CodeInfo> = {};
  private unsaved = 0;
  private pending = new Map<string, Promise<CodeInfo>>();
  /** On a read-only cache: computed, not saved. */
  readOnly = false;

  constructor(private readonly file: string) {}

  /** Which normaliser made the entries: a new typescript (pinned in deno.json) or FORMAT voids them. */
  private static tag(): string {
    try {
      const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
      return `${FORMAT} ${config.imports[TYPESCRIPT]}`;
    } catch {
      return `${FORMAT}`;
    }
  }

  private static async read(file: string): Promise<Record<string, CodeInfo>> {
    try {
      const data = JSON.parse(await Deno.readTextFile(file));
      return data.tag === CodeCache.tag() ? data.entries : {};
    } catch {
      return {}; // missing or unreadable: start empty (it is only an optimisation)
    }
  }

  static async open(file: string): Promise<CodeCache> {
    const cache = new CodeCache(file);
    cache.entries = await CodeCache.read(file);
    return cache;
  }

  /** `byteHash`: the file's hash from the stat cache; an unchanged file is not read. */
  info(path: string, byteHash: string): Promise<CodeInfo> {
    const known = this.entries[`${extname(path)}:${byteHash}`];
    if (known) return Promise.resolve(known);
    return this.analyse(path);
  }

  private async analyse(path: string): Promise<CodeInfo> {
    const bytes = await Deno.readFile(path);
    // Keyed by the bytes read, not the stat cache's hash: the file may have changed in between.
    const id = `${extname(path)}:${sha256(bytes)}`;
    if (this.entries[id]) return this.entries[id];
    if (!this.pending.has(id)) {
      this.pending.set(
        id,
        analyse(new TextDecoder().decode(bytes), path).then((info) => {
          this.unsaved++;
          return this.entries[id] = info;
        }),
      );
    }
    return this.pending.get(id)!;
  }

  async save() {
    const unsaved = this.unsaved;
    if (!unsaved || this.readOnly) return;
    // Merge with what other processes wrote meanwhile.
    const entries = { ...(await CodeCache.read(this.file)), ...this.entries };
    await writeFileAtomic(this.file, JSON.stringify({ tag: CodeCache.tag(), entries }));
    this.unsaved -= unsaved; // not 0: entries added while writing are saved next time
  }
}
