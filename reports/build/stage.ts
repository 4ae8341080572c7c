// Stage `report`: the study's figures as Vega-Lite specs (saved as .vl.json,
// rendered to SVG and PNG), REPORT.md and index.html (interactive charts,
// opening from the file system), all from the training stages' outputs.
import { join } from "node:path";
import type { ReportParams } from "../../pipeline/stages.ts";
import type { StageContext } from "../../pipeline/types.ts";
import { buildReport } from "./content.ts";
import { figureFiles, toHtml, toMarkdown } from "./document.ts";
import { readInputs } from "./inputs.ts";
import { TITLE } from "./report.ts";
import { browserScripts, EMBED_OPTIONS, toPng, toSvg } from "./render.ts";

export async function run(ctx: StageContext<ReportParams>): Promise<Record<string, number | string>> {
  const inputs = await readInputs(ctx.inputs, ctx.notRun);
  const { blocks, figures, metrics } = buildReport(inputs);

  await Deno.mkdir(join(ctx.outDir, "figures"), { recursive: true });
  for (const [i, f] of figures.entries()) {
    ctx.progress({ step: i, total: figures.length });
    const files = figureFiles(f);
    const svg = await toSvg(f.spec);
    await Deno.writeTextFile(join(ctx.outDir, files.vl), JSON.stringify(f.spec, null, 2) + "\n");
    await Deno.writeTextFile(join(ctx.outDir, files.svg), svg);
    await Deno.writeFile(join(ctx.outDir, files.png), await toPng(svg, ctx.root));
  }
  ctx.progress({ step: figures.length, total: figures.length });

  await Deno.writeTextFile(join(ctx.outDir, "REPORT.md"), toMarkdown(blocks));
  const scripts = await browserScripts(ctx.root);
  await Deno.writeTextFile(join(ctx.outDir, "index.html"), toHtml(TITLE, blocks, figures, scripts, EMBED_OPTIONS));
  const partial = metrics.missing_runs ? ` (partial: ${metrics.missing_runs} runs not finished yet)` : "";
  ctx.log(`${figures.length} figures, REPORT.md and index.html written${partial}`);
  return metrics;
}
