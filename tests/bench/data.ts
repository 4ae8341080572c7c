// The data stages on the real archive (../shared/data): download over HTTP on
// 127.0.0.1, gunzip + untar + MD5, and preprocess in its own process (as the
// engine runs it), so its peak RSS is its own.
import { fileURLToPath } from "node:url";
import { makeTestContext } from "../support/stage_context.ts";
import { run as downloadRun } from "../../data/download_stage.ts";

const ARCHIVE = fileURLToPath(new URL("../../../shared/data/cifar-10-binary.tar.gz", import.meta.url));

export async function bench() {
  const stat = await Deno.stat(ARCHIVE).catch(() => undefined);
  if (!stat) return console.log(`skipped: ${ARCHIVE} is missing`);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    const file = await Deno.open(ARCHIVE);
    return new Response(file.readable, { headers: { "content-length": String(stat.size) } });
  });
  const dl = await makeTestContext({
    stage: "download",
    params: {
      url: `http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`,
      dataset: "cifar-10" as const,
      mirrors: "",
      synthetic_train: 500,
      synthetic_test: 500,
    },
    quiet: true,
  });
  try {
    const m = await downloadRun(dl);
    await server.shutdown();
    const mib = Number(m.archive_mib);
    console.log(`download (HTTP, 127.0.0.1): ${m.download_s} s, ${(mib / Number(m.download_s)).toFixed(0)} MiB/s`);
    console.log(`extract + verify: ${m.extract_s} s, ${(mib / Number(m.extract_s)).toFixed(0)} MiB/s of archive`);

    const script = `
      import { makeTestContext } from ${JSON.stringify(new URL("../support/stage_context.ts", import.meta.url).href)};
      import { run } from ${JSON.stringify(new URL("../../data/preprocess_stage.ts", import.meta.url).href)};
      const ctx = await makeTestContext({ stage: "preprocess", params: {}, inputs: { download: ${
      JSON.stringify(dl.outDir)
    } }, quiet: true });
      try { console.log(JSON.stringify(await run(ctx))); } finally { await ctx.cleanup(); }`;
    const out = await new Deno.Command(Deno.execPath(), { args: ["eval", script], stderr: "inherit" }).output();
    if (!out.success) throw new Error("preprocess failed");
    const p = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    const images = Number(p.n_train) + Number(p.n_test);
    console.log(
      `preprocess: ${p.seconds} s, ${(images / Number(p.seconds)).toFixed(0)} images/s, peak RSS ${p.peak_rss_mib} MiB`,
    );
  } finally {
    await server.shutdown().catch(() => {});
    await dl.cleanup();
  }
}

if (import.meta.main) await bench();
