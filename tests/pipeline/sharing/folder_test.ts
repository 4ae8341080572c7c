// The folder backend (the committed pipeline/remote/, file:// remotes) passes the remote contract.
import { dirname, join } from "node:path";
import { FolderBackend } from "../../../pipeline/sharing/folder.ts";
import { remoteContract } from "../../support/remote_contract.ts";

Deno.test("folder remote: the remote contract", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "folder-remote-" });
  try {
    await remoteContract(t, {
      place: (name) => {
        const dir = join(root, name);
        return Promise.resolve({
          backend: new FolderBackend(dir),
          damage: async (rel, bytes) => {
            await Deno.mkdir(dirname(join(dir, rel)), { recursive: true });
            await Deno.remove(join(dir, rel)).catch(() => {});
            await Deno.writeFile(join(dir, rel), bytes);
          },
        });
      },
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
