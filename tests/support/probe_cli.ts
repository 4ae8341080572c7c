// The CLI with the test-only probe executor registered first: how a plug-in from outside
// pipeline/executors/ is used with no edit of the engine or the CLI.
import { registerExecutor } from "../../pipeline/executors/registry.ts";
import { probeExecutor } from "./probe_executor.ts";

registerExecutor(probeExecutor);
const { cli } = await import("../../pipeline/cli.ts"); // after registering: its options list the probe's
await cli(Deno.args);
