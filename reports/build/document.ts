// The report as a list of blocks, written out twice: REPORT.md (figures as
// SVG images) and index.html (figures as live vega-embed charts). Inline text
// uses a small Markdown subset: `code`, **bold**, *italic*, [text](href).
import type { Figure } from "./charts.ts";

export type Block =
  | { kind: "heading"; level: 1 | 2 | 3; text: string; id?: string }
  | { kind: "para"; text: string }
  | { kind: "note"; text: string }
  | { kind: "list"; items: string[] }
  | { kind: "table"; head: string[]; rows: string[][]; right?: number[] }
  | { kind: "figure"; figure: Figure };

export const figureFiles = (f: Figure) => ({
  svg: `figures/${f.id}.svg`,
  png: `figures/${f.id}.png`,
  vl: `figures/${f.id}.vl.json`,
});

// ---------------------------------------------------------------- Markdown

/** The id GitHub gives a heading. */
export const slug = (text: string) => text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").trim().replace(/\s/g, "-");

export function toMarkdown(blocks: Block[]): string {
  const out: string[] = [];
  for (const b of blocks) {
    switch (b.kind) {
      case "heading":
        // An explicit anchor only where GitHub's own heading id would differ.
        out.push(`${"#".repeat(b.level)} ${b.id && b.id !== slug(b.text) ? `<a id="${b.id}"></a>` : ""}${b.text}`);
        break;
      case "para":
        out.push(b.text);
        break;
      case "note":
        out.push(`> **Note.** ${b.text}`);
        break;
      case "list":
        out.push(b.items.map((i) => `- ${i}`).join("\n"));
        break;
      case "table": {
        const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
        const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
        const rule = b.head.map((_, i) => (b.right?.includes(i) ? "---:" : "---"));
        out.push([line(b.head), `|${rule.join("|")}|`, ...b.rows.map(line)].join("\n"));
        break;
      }
      case "figure": {
        const f = figureFiles(b.figure);
        out.push(
          `![Figure ${b.figure.number}: ${b.figure.caption}](${f.svg})\n\n` +
            `*Figure ${b.figure.number}: ${b.figure.caption}* ([PNG](${f.png}) · [Vega-Lite](${f.vl}))`,
        );
        break;
      }
    }
  }
  return out.join("\n\n") + "\n";
}

// ---------------------------------------------------------------- HTML

const esc = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** Inline Markdown subset → HTML: links first (their text may hold code), then code spans, then emphasis. */
export function inlineHtml(text: string): string {
  return text.split(/(\[[^\]]+\]\([^)\s]+\))/).map((part) => {
    const link = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(part);
    return link ? `<a href="${esc(link[2])}">${spans(link[1])}</a>` : spans(part);
  }).join("");
}

function spans(text: string): string {
  return text.split(/(`[^`]*`)/).map((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) return `<code>${esc(part.slice(1, -1))}</code>`;
    return esc(part)
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  }).join("");
}

export function toHtmlBody(blocks: Block[]): string {
  const out: string[] = [];
  for (const b of blocks) {
    switch (b.kind) {
      case "heading":
        out.push(`<h${b.level} id="${b.id ?? slug(b.text)}">${inlineHtml(b.text)}</h${b.level}>`);
        break;
      case "para":
        out.push(`<p>${inlineHtml(b.text)}</p>`);
        break;
      case "note":
        out.push(`<p class="note"><strong>Note.</strong> ${inlineHtml(b.text)}</p>`);
        break;
      case "list":
        out.push(`<ul>\n${b.items.map((i) => `<li>${inlineHtml(i)}</li>`).join("\n")}\n</ul>`);
        break;
      case "table": {
        const td = (tag: string, s: string, i: number) =>
          `<${tag}${b.right?.includes(i) ? ' class="num"' : ""}>${inlineHtml(s)}</${tag}>`;
        out.push(
          `<table>\n<thead><tr>${b.head.map((h, i) => td("th", h, i)).join("")}</tr></thead>\n<tbody>\n` +
            b.rows.map((r) => `<tr>${r.map((c, i) => td("td", c, i)).join("")}</tr>`).join("\n") +
            `\n</tbody>\n</table>`,
        );
        break;
      }
      case "figure": {
        const f = figureFiles(b.figure);
        out.push(
          `<figure id="${b.figure.id}">\n<div class="chart" data-figure="${b.figure.id}"></div>\n` +
            `<figcaption>Figure ${b.figure.number}: ${inlineHtml(b.figure.caption)} ` +
            `(<a href="${f.svg}">SVG</a> · <a href="${f.png}">PNG</a> · <a href="${f.vl}">Vega-Lite</a>)</figcaption>\n` +
            `</figure>`,
        );
        break;
      }
    }
  }
  return out.join("\n");
}

/**
 * A page that opens from the file system: the vega builds are inlined (no CDN),
 * the specs are inlined, and body[data-charts] turns "done" (or "failed: n")
 * once every chart has rendered, for the browser test.
 */
export function toHtml(
  title: string,
  blocks: Block[],
  figures: Figure[],
  scripts: { name: string; code: string }[],
  embedOptions: unknown,
): string {
  // "</script" inside inlined code would end the element early; "<\/" means the same in JS.
  const inline = (code: string) => code.replaceAll("</script", "<\\/script").replaceAll("<!--", "<\\!--");
  const specs = JSON.stringify(Object.fromEntries(figures.map((f) => [f.id, f.spec])));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
  color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.2em; border-radius: 3px; font-size: 0.9em; word-break: break-all; }
figure { margin: 1.5em 0; } figcaption { font-size: 0.9em; color: #444; }
.note { background: #fff6dd; border-left: 4px solid #e0b000; padding: 0.5em 0.8em; }
.chart-error { color: #b00; }
</style>
${scripts.map((s) => `<script data-lib="${esc(s.name)}">\n${inline(s.code)}\n</script>`).join("\n")}
</head>
<body>
${toHtmlBody(blocks)}
<script>
const specs = ${inline(specs)};
const options = ${JSON.stringify(embedOptions)};
const charts = [...document.querySelectorAll(".chart")].map((el) =>
  vegaEmbed(el, specs[el.dataset.figure], options).catch((e) => {
    el.classList.add("chart-error");
    el.textContent = "This chart failed to render: " + e;
    console.error(e);
    throw e;
  })
);
Promise.allSettled(charts).then((r) => {
  const failed = r.filter((x) => x.status === "rejected").length;
  document.body.dataset.charts = failed ? "failed: " + failed : "done";
});
</script>
</body>
</html>
`;
}
