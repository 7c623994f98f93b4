"""The one early-stopping loop: train epoch by epoch, keep the state of the best validation score.

Used by the probe's residual MLP (estimators.probe), the variational critics (estimators.neural)
and the MLP decoder of the reconstruction analysis (analysis.reconstruction).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class EarlyStopped:
    """What the loop did: best_loss (validation loss of the kept state), best_epoch (0 = the model as
    given, e = after e training epochs) and epochs_run (training epochs done)."""

    best_loss: float
    best_epoch: int
    epochs_run: int


def fit_with_early_stopping(
    model: nn.Module,
    train_epoch: Callable[[], None],
    validation_loss: Callable[[], float],
    *,
    max_epochs: int,
    patience: int,
) -> EarlyStopped:
    """Run up to max_epochs of `train_epoch` (model in train mode), score each epoch by
    `validation_loss` (model in eval mode, no gradients; lower is better), stop once `patience`
    epochs in a row brought no improvement, and leave `model` at the best state, in eval mode.

    The model as given is scored first and is a candidate (epoch 0): the kept state is the best of
    every state seen, so training can only improve the validation loss. This matters where the
    start is meaningful (the probe's residual MLP starts as the fitted linear probe) and makes the
    loop total: with a NaN loss on every epoch the start is kept instead of no state at all.
    A NaN loss never counts as an improvement.
    """
    best = EarlyStopped(_score(model, validation_loss), 0, 0)
    best_state = _copy_state(model)
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        train_epoch()
        loss = _score(model, validation_loss)
        if loss < best.best_loss or math.isnan(best.best_loss) and not math.isnan(loss):
            best = EarlyStopped(loss, epoch, epoch)
            best_state = _copy_state(model)
        elif epoch - best.best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return dataclasses.replace(best, epochs_run=epoch)


def _score(model: nn.Module, validation_loss: Callable[[], float]) -> float:
    model.eval()
    with torch.no_grad():
        return float(validation_loss())


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
