"""The divergence policy: when a run stops because its numbers are no longer numbers.

A run stops (TrainingDiverged; ``fdaref train`` exits with status 3) when
- the loss of a step is NaN or infinite (the step is not applied), or
- a parameter or buffer is NaN or infinite when a checkpoint is about to be written (at every epoch end
  and before an interrupted run saves). Such a state is never saved, so the last good checkpoint stays;
- the validation or test loss of an epoch's evaluation is NaN or infinite (finite weights can still give
  infinite logits); that epoch's record and checkpoint are not written either.

Checking the state only at checkpoints costs one reduction over the model per epoch and no host sync per
step; a model that went bad mid-epoch is caught at the epoch's end, before it can replace anything. The step
engine's ``all_finite()`` (on its device, over parameters, buffers and the accumulated loss) decides; the
per-tensor report is computed only once that says something is wrong.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss, a parameter or a buffer became NaN or infinite; the last good checkpoint is kept."""


def non_finite_tensors(state: Mapping[str, Any]) -> dict[str, int]:
    """{name: number of NaN / infinite values} of every tensor of a state dict that has any."""
    bad = {}
    for name, value in state.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "fc":
            count = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if count:
                bad[name] = count
    return bad


def check_finite_losses(losses: Mapping[str, float | None]) -> str | None:
    """None if every measured loss (None: not measured) is finite, else which is not: "the test loss is nan"."""
    for name, value in losses.items():
        if value is not None and not math.isfinite(value):
            return f"the {name} is {value}"
    return None


def check_finite_state(engine: Any) -> str | None:
    """None if the step engine's parameters, buffers and accumulated loss are finite, else a short description
    of what is not. The engine's own ``all_finite()`` (one on-device reduction, no per-step sync) decides; only
    when it says False is the state read back to name the tensors."""
    if engine.all_finite():
        return None
    bad = non_finite_tensors(engine.model_state())
    if not bad:
        return "the accumulated training loss is not finite"
    total = sum(bad.values())
    listed = ", ".join(f"{name} ({count})" for name, count in list(bad.items())[:4])
    more = f" and {len(bad) - 4} more tensors" if len(bad) > 4 else ""
    return f"{total} non-finite values in the model's parameters / buffers: {listed}{more}"


def divergence_message(what: str, *, epoch: int, epochs: int, batch: int | None, steps_per_epoch: int,
                       checked_every: int, lr: float | None, last_good_epoch: int | None, checkpoint: Any,
                       have_checkpoint: bool) -> str:
    """The one-line explanation printed when a run stops: what went wrong, where (``batch``: the step at which
    the loss was read, every ``checked_every`` steps; None: at the epoch's end), and what is kept."""
    where = f"epoch {epoch + 1}/{epochs}"
    if batch is not None:
        where += f", batch {batch}/{steps_per_epoch}" + (f" (checked every {checked_every} steps)"
                                                        if checked_every > 1 else "")
    if not have_checkpoint:
        kept = "no checkpoint had been written yet"
    elif last_good_epoch is None:
        kept = f"the last good checkpoint {checkpoint} (saved during epoch 1) is kept"
    else:
        kept = f"the last good checkpoint {checkpoint} (after epoch {last_good_epoch + 1}) is kept"
    lr_text = f" (lr {lr:.4g})" if lr is not None else ""
    return f"training stopped: {what} at {where}{lr_text}; {kept}. Try a lower --lr."
