// Vega-Lite → SVG (vega's headless View) → PNG (resvg, compiled to wasm), and
// the browser builds of vega / vega-lite / vega-embed for index.html, read
// from the npm packages pinned in deno.json.
import { join } from "node:path";
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { EmbedOptions } from "vega-embed";
import { PipelineError } from "../../pipeline/types.ts";
import { FONT_FAMILY } from "./charts.ts";

// index.html inlines vega-embed's browser build, which no import loads: resolving it is what puts the package
// in this stage's key (a type-only import is no edge).
import.meta.resolve("vega-embed");

const FONT = new URL("./fonts/DejaVuSans.ttf", import.meta.url);

export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let wasmReady: Promise<void> | undefined;
let font: Uint8Array | undefined;

/** PNG at twice the SVG's size, white background, with the project's font (no system fonts: same on every machine). */
export async function toPng(svg: string, root: string): Promise<Uint8Array> {
  wasmReady ??= npmFile(root, "@resvg/resvg-wasm", "index_bg.wasm").then(async (p) => {
    await initWasm(await Deno.readFile(p));
  });
  await wasmReady;
  font ??= await Deno.readFile(FONT);
  const resvg = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: 2 },
    font: { fontBuffers: [font], defaultFontFamily: FONT_FAMILY, loadSystemFonts: false },
  });
  try {
    const image = resvg.render();
    const png = image.asPng();
    image.free();
    return png;
  } finally {
    resvg.free();
  }
}

/** The UMD builds index.html inlines, in load order. */
export async function browserScripts(root: string): Promise<{ name: string; code: string }[]> {
  const files: [string, string][] = [
    ["vega", "build/vega.min.js"],
    ["vega-lite", "build/vega-lite.min.js"],
    ["vega-embed", "build/vega-embed.min.js"],
  ];
  return await Promise.all(files.map(async ([pkg, sub]) => {
    const { version } = pinned(await importMap(root), pkg);
    return { name: `${pkg}@${version}`, code: await Deno.readTextFile(await npmFile(root, pkg, sub)) };
  }));
}

export const EMBED_OPTIONS: EmbedOptions = { renderer: "svg", actions: { export: true, source: true, editor: true } };

async function importMap(root: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).imports ?? {};
  } catch {
    return {};
  }
}

function pinned(map: Record<string, string>, pkg: string): { name: string; version: string } {
  const m = /^npm:\/?((?:@[^/]+\/)?[^@/]+)@([^/]+)$/.exec(map[pkg] ?? "");
  if (!m) {
    throw new PipelineError(
      `deno.json does not pin ${pkg} (imports["${pkg}"] should be "npm:${pkg}@<version>")`,
      `add it to the imports of deno.json with an exact version`,
    );
  }
  return { name: m[1], version: m[2] };
}

let npmCache: Promise<string> | undefined;

/**
 * A file of an npm package pinned in deno.json, found where Deno keeps it:
 * node_modules/ when the project has one, else Deno's npm cache. (Package
 * "exports" hide the browser builds from import, so they are read as files.)
 */
export async function npmFile(root: string, pkg: string, sub: string): Promise<string> {
  const { name, version } = pinned(await importMap(root), pkg);
  const local = join(root, "node_modules", name);
  try {
    if (JSON.parse(await Deno.readTextFile(join(local, "package.json"))).version === version) {
      return join(local, sub);
    }
  } catch { /* no node_modules copy: use Deno's cache */ }
  npmCache ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).npmCache as string;
  })();
  const cache = await npmCache;
  const candidates = [join(cache, "registry.npmjs.org", name, version, sub)];
  try {
    for await (const e of Deno.readDir(cache)) {
      if (e.isDirectory) candidates.push(join(cache, e.name, name, version, sub)); // another registry's mirror
    }
  } catch { /* no cache dir at all */ }
  for (const path of candidates) {
    try {
      await Deno.stat(path);
      return path;
    } catch { /* next */ }
  }
  throw new PipelineError(
    `${name}@${version}/${sub} is not in Deno's npm cache (${cache})`,
    "run `deno install` in the project root to fetch the packages pinned in deno.json",
  );
}
