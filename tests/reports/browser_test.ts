// index.html in headless Chromium, driven over the DevTools protocol (a
// WebSocket from Deno): the page opens from the file system, every chart
// renders an SVG with marks, nothing is logged as an error, and a full-page
// screenshot is saved to out/test-artifacts/report-index.png.
// Needs Chromium (Debian: `apt-get install -y chromium`; $CHROMIUM names another binary).
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { makeTestContext } from "../support/stage_context.ts";
import { run } from "../../reports/build/stage.ts";
import { fabricateInputs } from "../support/report_fixture.ts";

const SCREENSHOT = resolve("out/test-artifacts/report-index.png");

function findChromium(): string | undefined {
  const named = Deno.env.get("CHROMIUM");
  if (named) return named;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
      try {
        if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
      } catch { /* not here */ }
    }
  }
  return undefined;
}

/** A minimal DevTools-protocol client: commands by id, events by name. */
class Cdp {
  private id = 0;
  private pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  private listeners = new Map<string, ((params: Record<string, unknown>) => void)[]>();
  private constructor(private ws: WebSocket) {
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id)!;
        this.pending.delete(msg.id);
        if (msg.error) p.fail(new Error(`${msg.error.message} (${msg.error.code})`));
        else p.ok(msg.result);
      } else for (const fn of this.listeners.get(msg.method) ?? []) fn(msg.params);
    };
  }

  static connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    return new Promise((ok, fail) => {
      ws.onopen = () => ok(new Cdp(ws));
      ws.onerror = () => fail(new Error(`cannot connect to ${url}`));
    });
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((ok, fail) => this.pending.set(id, { ok: ok as (v: unknown) => void, fail }));
  }

  on(method: string, fn: (params: Record<string, unknown>) => void) {
    this.listeners.set(method, [...(this.listeners.get(method) ?? []), fn]);
  }

  once(method: string): Promise<Record<string, unknown>> {
    return new Promise((ok) => this.on(method, ok));
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value: T } }>("Runtime.evaluate", { expression, returnByValue: true });
    return r.result.value;
  }

  close(): Promise<void> {
    return new Promise((ok) => {
      this.ws.onclose = () => ok();
      this.ws.close();
    });
  }
}

/** Starts Chromium on about:blank; resolves with its DevTools port once it listens. */
async function launch(chromium: string, profile: string) {
  const child = new Deno.Command(chromium, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "--window-size=1300,900",
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const { promise: port, resolve: found } = Promise.withResolvers<number>();
  // Read stderr to the end (a full pipe would block Chromium); the DevTools line names the port.
  const drained = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(log);
      if (m) found(Number(m[1]));
    }
  })();
  const timeout = new Promise<never>((_, fail) => {
    const t = setTimeout(() => fail(new Error(`Chromium did not start within 30 s:\n${log}`)), 30_000);
    port.then(() => clearTimeout(t));
  });
  return { child, drained, port: await Promise.race([port, timeout]), log: () => log };
}

const chromium = findChromium();

Deno.test({
  name: "report: index.html renders every chart in headless Chromium, without errors",
  // Skipped where Chromium is missing, except on CI (CI=…), where that is a setup failure.
  ignore: !chromium && !Deno.env.get("CI"),
  async fn() {
    if (!chromium) throw new Error("Chromium not found: `apt-get install -y chromium`, or set $CHROMIUM");
    const base = await Deno.makeTempDir({ prefix: "report-browser-" });
    const ctx = await makeTestContext({
      stage: "report",
      params: {},
      inputs: await fabricateInputs(join(base, "inputs"), {
        provenance: true,
        search: true,
        seeds: true,
        predictions: true,
      }),
      quiet: true,
    });
    const browser = await launch(chromium!, join(base, "profile"));
    try {
      await run(ctx);
      const expected: string[] = [];
      for await (const e of Deno.readDir(join(ctx.outDir, "figures"))) {
        if (e.name.endsWith(".vl.json")) expected.push(e.name.replace(".vl.json", ""));
      }

      const targets = await (await fetch(`http://127.0.0.1:${browser.port}/json/list`)).json();
      const page = targets.find((t: { type: string }) => t.type === "page");
      const cdp = await Cdp.connect(page.webSocketDebuggerUrl);
      const errors: string[] = [];
      cdp.on("Runtime.exceptionThrown", (p) => errors.push(`exception: ${JSON.stringify(p.exceptionDetails)}`));
      cdp.on("Runtime.consoleAPICalled", (p) => {
        if (p.type === "error" || p.type === "assert") errors.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
      });
      cdp.on("Log.entryAdded", (p) => {
        const e = p.entry as { level: string; text: string; url?: string };
        if (e.level === "error") errors.push(`log: ${e.text} ${e.url ?? ""}`);
      });
      await cdp.send("Runtime.enable");
      await cdp.send("Log.enable");
      await cdp.send("Page.enable");
      const loaded = cdp.once("Page.loadEventFired");
      await cdp.send("Page.navigate", { url: pathToFileURL(join(ctx.outDir, "index.html")).href });
      await loaded;

      // The page sets body[data-charts] once every vegaEmbed promise has settled.
      let state: string | undefined;
      for (let i = 0; i < 300 && !state; i++) {
        state = await cdp.evaluate<string | undefined>("document.body.dataset.charts");
        if (!state) await new Promise((r) => setTimeout(r, 100));
      }
      // Read as a first-time reader would: a 1300 px wide window.
      await cdp.send("Emulation.setDeviceMetricsOverride", {
        width: 1300,
        height: 900,
        deviceScaleFactor: 1,
        mobile: false,
      });
      const layout = await cdp.evaluate<{
        contents: { text: string; target: boolean }[];
        sections: string[];
        overflowing: string[];
        figures: number[];
        pageOverflow: boolean;
      }>(`(() => {
        const toc = [...document.querySelectorAll("#contents + ul a")];
        return {
          contents: toc.map((a) => ({ text: a.textContent, target: !!document.getElementById(a.hash.slice(1)) })),
          sections: [...document.querySelectorAll("h2")].map((h) => h.textContent).filter((t) => t !== "Contents"),
          overflowing: [...document.querySelectorAll("table")]
            .filter((t) => t.scrollWidth > t.clientWidth + 1 || t.getBoundingClientRect().right > window.innerWidth)
            .map((t) => t.querySelector("th")?.textContent + " (" + t.scrollWidth + " > " + t.clientWidth + " px)"),
          figures: [...document.querySelectorAll("figcaption")].map((c) => Number(/^Figure (\\d+):/.exec(c.textContent)?.[1])),
          pageOverflow: document.documentElement.scrollWidth > window.innerWidth,
        };
      })()`);
      const charts = await cdp.evaluate<
        { id: string; svg: number; canvas: number; marks: number; rules: number; cells: number; bands: number }[]
      >(`
        [...document.querySelectorAll(".chart")].map((el) => ({
          id: el.dataset.figure,
          svg: el.querySelectorAll("svg").length,
          canvas: el.querySelectorAll("canvas").length,
          marks: el.querySelectorAll(".role-mark > path, .role-mark > line, .role-mark > text").length,
          rules: el.querySelectorAll(".mark-rule.role-mark > line").length,
          cells: el.querySelectorAll(".mark-rect.role-mark > path").length,
          bands: el.querySelectorAll(".mark-area.role-mark > path").length,
        }))`);

      await cdp.send("Emulation.setDeviceMetricsOverride", {
        width: 1300,
        height: 900,
        deviceScaleFactor: 1,
        mobile: false,
      });
      const metrics = await cdp.send<{ cssContentSize: { width: number; height: number } }>("Page.getLayoutMetrics");
      const shot = await cdp.send<{ data: string }>("Page.captureScreenshot", {
        format: "png",
        captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: 1300, height: metrics.cssContentSize.height, scale: 1 },
      });
      await Deno.mkdir(resolve("out/test-artifacts"), { recursive: true });
      const png = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
      await Deno.writeFile(SCREENSHOT, png);
      await cdp.close();

      assert.equal(state, "done", `charts did not all render (${state ?? "timed out"}); errors: ${errors.join("\n")}`);
      assert.deepEqual(errors, []);
      assert.deepEqual(charts.map((c) => c.id).sort(), expected.sort());
      for (const c of charts) {
        assert.ok(c.svg + c.canvas >= 1, `chart ${c.id} has no SVG or canvas`);
        assert.ok(c.marks >= 1, `chart ${c.id} has no marks`);
      }
      // The new charts: the study's final numbers as rules, the confusion matrix's 100 cells.
      const chart = (id: string) => charts.find((c) => c.id === id)!;
      assert.equal(chart("fig1-numpy-mlp-accuracy").rules, 1);
      assert.equal(chart("fig3-torch-mlp-default-accuracy").rules, 2);
      assert.equal(chart("fig11-confusion-cnn").cells, 100);
      // The Default row has 3 seeds: its curves are means with a band (one per split); GA3's (the best) one seed.
      assert.ok(chart("fig3-torch-mlp-default-accuracy").bands >= 1, "no band over seeds in figure 3");
      assert.equal(chart("fig5-torch-mlp-best-accuracy").bands, 0);
      // A table of contents naming every section, each link landing on its heading.
      assert.deepEqual(layout.contents.map((c) => c.text), layout.sections);
      assert.ok(
        layout.contents.length >= 10 && layout.contents.every((c) => c.target),
        JSON.stringify(layout.contents),
      );
      // Figures numbered 1, 2, 3, … in the order they appear.
      assert.deepEqual(layout.figures, layout.figures.map((_, i) => i + 1));
      assert.equal(layout.figures.length, charts.length);
      // At 1300 px no table is cut or scrolls, and the page does not scroll sideways.
      assert.deepEqual(layout.overflowing, []);
      assert.equal(layout.pageOverflow, false);
      assert.ok(png.length > 50_000, "the screenshot is suspiciously small");
    } finally {
      browser.child.kill("SIGTERM");
      await browser.child.status;
      await browser.drained;
      await ctx.cleanup();
      await Deno.remove(base, { recursive: true });
    }
  },
});
