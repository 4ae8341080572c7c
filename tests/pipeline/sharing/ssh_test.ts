// The SSH (SFTP) backend against Debian's OpenSSH server, started here as root on 127.0.0.1 on a
// free port, with a throwaway host key and user key in a temporary folder (killed at the end):
// the remote contract; an unknown or changed host key and a refused key, one line each; a push
// and a pull through the CLI with the key named in pipeline/config.local.json, never printed.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { open, type SshBackend } from "../../../pipeline/sharing/ssh.ts";
import { remoteContract } from "../../support/remote_contract.ts";

const SSHD = "/usr/sbin/sshd";
const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;
const skip = !(await Deno.stat(SSHD).catch(() => undefined))
  ? "sshd not found: apt-get install openssh-server"
  : Deno.uid() !== 0
  ? "sshd must start as root"
  : !new Deno.Command("sh", { args: ["-c", "command -v ssh-keygen"], stdout: "null" }).outputSync().success
  ? "ssh-keygen not found"
  : undefined;

async function run(cmd: string, ...args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok(out.success, `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** sshd on 127.0.0.1 with its own host key, accepting the user key it makes; knownHosts lists its host key. */
async function startSshd(dir: string) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  for (const key of ["host_key", "user_key", "other_key"]) {
    await run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, key));
  }
  await Deno.copyFile(join(dir, "user_key.pub"), join(dir, "authorized_keys"));
  const hostKey = (await Deno.readTextFile(join(dir, "host_key.pub"))).split(" ").slice(0, 2).join(" ");
  await Deno.writeTextFile(join(dir, "known_hosts"), `[127.0.0.1]:${port} ${hostKey}\n`);
  await Deno.writeTextFile(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host_key")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "Subsystem sftp internal-sftp",
    ].join("\n") + "\n",
  );
  await Deno.mkdir("/run/sshd", { recursive: true }); // its privilege separation directory
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", join(dir, "sshd_config")],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (e) {
      if (i > 100) throw new Error(`sshd did not listen on ${port} within 10 s: ${e}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { port, child };
}

Deno.test({
  name: skip
    ? `ssh remote (skipped: ${skip})`
    : "ssh remote: the remote contract, host and user keys, the CLI (sshd on 127.0.0.1)",
  ignore: !!skip,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "ssh-remote-" });
    const data = join(dir, "remote");
    const { port, child } = await startSshd(dir);
    const base = `ssh://root@127.0.0.1:${port}${data}`;
    const options = (o: Record<string, string> = {}) => ({
      remoteOptions: { ssh: { identity: join(dir, "user_key"), knownHosts: join(dir, "known_hosts"), ...o } },
    });
    const opened: SshBackend[] = [];
    const backend = (url: string, o?: Record<string, string>) => (opened.push(open(url, options(o))), opened.at(-1)!);
    try {
      await remoteContract(t, {
        place: (name) =>
          Promise.resolve({
            backend: backend(`${base}/${name}`),
            damage: async (rel: string, bytes: Uint8Array) => {
              const path = join(data, name, rel); // the server's folder is on this machine
              await Deno.mkdir(dirname(path), { recursive: true });
              await Deno.remove(path).catch(() => {});
              await Deno.writeFile(path, bytes);
            },
          }),
      });

      await t.step("an unknown host key, a changed one, a refused user key: one line each", async () => {
        await Deno.writeTextFile(join(dir, "empty_hosts"), "");
        await assert.rejects(
          backend(base, { knownHosts: join(dir, "empty_hosts") }).open(),
          /the host key of 127\.0\.0\.1:\d+ is not in .*empty_hosts: not connecting to an unknown host/,
        );
        const other = (await Deno.readTextFile(join(dir, "other_key.pub"))).split(" ").slice(0, 2).join(" ");
        await Deno.writeTextFile(join(dir, "wrong_hosts"), `[127.0.0.1]:${port} ${other}\n`);
        await assert.rejects(
          backend(base, { knownHosts: join(dir, "wrong_hosts") }).open(),
          /the host key of 127\.0\.0\.1:\d+ does not match/,
        );
        await assert.rejects(
          backend(base, { identity: join(dir, "other_key") }).open(),
          (e: Error & { fix: string }) =>
            /^root@127\.0\.0\.1:\d+ refused the key .*other_key$/.test(e.message) && /authorized_keys/.test(e.fix),
        );
      });

      await t.step("push and pull through the CLI, the key from config.local.json, never printed", async () => {
        const settings = JSON.stringify({ remote: `${base}/cli`, ...options() });
        const project = async () => {
          const root = await Deno.makeTempDir({ prefix: "ssh-cli-" });
          await Deno.mkdir(join(root, "pipeline"));
          await Deno.writeTextFile(join(root, "pipeline/config.local.json"), settings);
          await Deno.writeTextFile(
            join(root, "stages.ts"),
            'export const STAGES = [{ name: "make", doc: "", deps: [], module: "make.ts", outputs: ["w.bin"], params: {} }];\n',
          );
          await Deno.writeTextFile(
            join(root, "make.ts"),
            'export async function run(ctx) { await Deno.writeFile(ctx.outDir + "/w.bin", new Uint8Array(300000).fill(7)); return {}; }\n',
          );
          return root;
        };
        const cli = async (root: string, ...args: string[]) => {
          const out = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
            env: { PIPELINE_PLAIN: "1", NO_COLOR: "1", SSH_AUTH_SOCK: "" },
            stdout: "piped",
            stderr: "piped",
          }).output();
          const stderr = new TextDecoder().decode(out.stderr);
          assert.equal(out.code, 0, stderr);
          assert.doesNotMatch(stderr, /PRIVATE KEY/);
          return stderr;
        };
        const a = await project();
        await cli(a, "reproduce");
        assert.match(await cli(a, "push"), /pushed to ssh:\/\/\S*127\.0\.0\.1:\d+\/.*\/cli: make/);
        const b = await project();
        await Deno.copyFile(join(a, "pipeline/lock.json"), join(b, "pipeline/lock.json"));
        assert.match(await cli(b, "pull"), /pulled from pipeline\/remote \+ ssh:\/\/.*: make/);
        assert.deepEqual(await Deno.readFile(join(b, "out/make/w.bin")), new Uint8Array(300000).fill(7));
      });
    } finally {
      for (const b of opened) b.close();
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
