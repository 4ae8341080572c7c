// A training run whose loss stops being finite: a user input (usually the
// learning rate), not a bug, told as one line with what to lower. Shared by
// every trainer (numpy MLP, autograd MLP, CNN); the engine needs nothing of it
// beyond its being a PipelineError.
import { PipelineError } from "../pipeline/types.ts";

/**
 * A training loss that is no longer finite: a user input (usually the learning
 * rate), not a bug, so one line and no stack trace. `param` is what to lower.
 */
export class Diverged extends PipelineError {
  constructor(readonly step: number, loss: number, readonly param = "lr", value?: unknown) {
    super(
      `training diverged: the loss became ${loss} at step ${step}` +
        (value !== undefined ? ` with ${param}=${value}` : ""),
      `lower the learning rate (${param}; a learning rate too high is the usual cause), e.g. --set <stage>.${param}=…`,
    );
    this.name = "Diverged";
  }
}

/** Throw Diverged unless loss is finite. */
export function checkLoss(loss: number, step: number, lr?: number) {
  if (!Number.isFinite(loss)) throw new Diverged(step, loss, "lr", lr);
}
