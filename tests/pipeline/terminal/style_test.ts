// Credentials in URLs never reach the console; an ssh login name is not a credential.
import assert from "node:assert/strict";
import { maskCredentials } from "../../../pipeline/terminal/style.ts";

Deno.test("maskCredentials: passwords and bare tokens masked, ssh login names kept", () => {
  assert.equal(maskCredentials("from https://me:s3cret@host/x"), "from https://me:***@host/x");
  assert.equal(maskCredentials("https://ghp_TOKEN@github.com/a"), "https://***@github.com/a");
  assert.equal(maskCredentials("push to ssh://lab@10.0.0.2:2222/runs"), "push to ssh://lab@10.0.0.2:2222/runs");
  assert.equal(maskCredentials("ssh://lab:pw@host/runs"), "ssh://lab:***@host/runs");
  assert.equal(maskCredentials("mail me@example.org"), "mail me@example.org");
});
