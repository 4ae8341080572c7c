// A training run whose loss stops being finite, or explodes past any sensible
// value: a user input (usually the learning rate), not a bug, told as one line with what to lower. Shared by
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
      `training diverged: the loss ${Number.isFinite(loss) ? "reached" : "became"} ${loss} at step ${step}` +
        (value !== undefined ? ` with ${param}=${value}` : ""),
      `lower the learning rate (${param}; a learning rate too high is the usual cause), e.g. --set <stage>.${param}=…`,
    );
    this.name = "Diverged";
  }
}

/**
 * A cross-entropy loss (nats per image) past this is a run whose logits have left any
 * sensible range (a uniform guess over 10 classes is 2.3): with batch norm it can stay
 * finite (e.g. 3e30 at lr=1e30) while the network is lost.
 */
export const LOSS_LIMIT = 1e6;

/** Throw Diverged unless loss is finite and below LOSS_LIMIT. */
export function checkLoss(loss: number, step: number, lr?: number) {
  if (!Number.isFinite(loss) || loss > LOSS_LIMIT) throw new Diverged(step, loss, "lr", lr);
}
