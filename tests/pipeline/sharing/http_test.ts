// The read-only HTTP(S) backend against a static file server started here (Deno.serve over a
// folder in the remote layout, written by the folder backend), on 127.0.0.1: the read half of the
// remote contract over http://, again over https:// with a self-signed certificate (where openssl
// is found), and a push through the CLI refused in one line.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { FolderBackend } from "../../../pipeline/sharing/folder.ts";
import { HttpBackend, open } from "../../../pipeline/sharing/http.ts";
import { remoteContract } from "../../support/remote_contract.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

/** A static file server over dir: GET and HEAD, 404 for what is not there. */
function serve(dir: string, tls?: { cert: string; key: string }) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {}, ...tls }, async (req) => {
    const path = join(dir, decodeURIComponent(new URL(req.url).pathname));
    if (!path.startsWith(dir + "/")) return new Response(null, { status: 403 });
    const file = await Deno.open(path).catch(() => undefined);
    if (!file || !(await file.stat()).isFile) {
      file?.close();
      return new Response(null, { status: 404 });
    }
    const headers = { "content-length": String((await file.stat()).size) };
    if (req.method === "HEAD") {
      file.close();
      return new Response(null, { headers });
    }
    return new Response(file.readable, { headers });
  });
}

/** The contract's places: a folder each, written by the folder backend, read over HTTP from base. */
function places(dir: string, base: string, backend: (url: string) => HttpBackend) {
  return {
    readOnly: true,
    place: (name: string) => {
      const folder = join(dir, name);
      return Promise.resolve({
        backend: backend(`${base}/${name}`),
        writer: new FolderBackend(folder),
        damage: async (rel: string, bytes: Uint8Array) => {
          await Deno.mkdir(dirname(join(folder, rel)), { recursive: true });
          await Deno.remove(join(folder, rel)).catch(() => {});
          await Deno.writeFile(join(folder, rel), bytes);
        },
      });
    },
  };
}

const hasOpenssl = new Deno.Command("sh", { args: ["-c", "command -v openssl"], stdout: "null", stderr: "null" })
  .outputSync().success;

Deno.test("http remote: the read half of the remote contract, and push refused", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "http-remote-" });
  const server = serve(dir);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    await remoteContract(t, places(dir, base, (url) => open(url)));

    await t.step("push through the CLI: one line, read-only, naming a writable scheme", async () => {
      const root = await Deno.makeTempDir({ prefix: "http-push-" });
      await Deno.writeTextFile(join(root, "stages.ts"), "export const STAGES = [];\n");
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), "push", "--remote", base],
        env: { PIPELINE_PLAIN: "1", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
      assert.match(
        stderr,
        /^error: http:\/\/127\.0\.0\.1:\d+ is read-only: .* — push to a writable remote \(.*s3:\/\//,
      );
      await Deno.remove(root, { recursive: true });
    });

    await t.step("a server that is not there: one line", async () => {
      const gone = open("http://127.0.0.1:9/x");
      await assert.rejects(gone.read("runs/a.json"), /cannot reach http:\/\/127\.0\.0\.1:9\/x/);
    });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: hasOpenssl
    ? "https remote: the same over TLS, a self-signed CA from remoteOptions"
    : "https (skipped: no openssl)",
  ignore: !hasOpenssl,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "https-remote-" });
    const tls = join(dir, ".tls");
    await Deno.mkdir(tls);
    // A throwaway CA and a certificate for 127.0.0.1 signed by it (a CA certificate cannot serve itself).
    const openssl = async (...args: string[]) => {
      const out = await new Deno.Command("openssl", { args, cwd: tls, stdout: "null", stderr: "piped" }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
    };
    const days = ["-days", "1"];
    await openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      ...days,
      "-subj",
      "/CN=test CA",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
    );
    await openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      "key.pem",
      "-out",
      "leaf.csr",
    );
    await Deno.writeTextFile(join(tls, "ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
    await openssl(
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      ...days,
      "-extfile",
      "ext",
      "-out",
      "cert.pem",
    );
    const cert = await Deno.readTextFile(join(tls, "cert.pem"));
    const server = serve(dir, { cert, key: await Deno.readTextFile(join(tls, "key.pem")) });
    const base = `https://127.0.0.1:${server.addr.port}`;
    const opened: HttpBackend[] = [];
    const settings = { remoteOptions: { https: { caCert: join(tls, "ca.pem") } } };
    try {
      await t.step("without the CA: refused in one line", async () => {
        await assert.rejects(open(`${base}/x`).read("runs/a.json"), /cannot reach https:\/\/127\.0\.0\.1/);
      });
      await remoteContract(t, places(dir, base, (url) => (opened.push(open(url, settings)), opened.at(-1)!)));
    } finally {
      for (const b of opened) b.close();
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
