import math

import pytest
import torch
from torch import nn

from mi_analysis._util.fitting import fit_with_early_stopping


class Scalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))


def _run(losses: list[float], *, max_epochs: int, patience: int, start: float = 0.0):
    """A model whose weight counts the epochs; the validation loss of epoch e is losses[e]."""
    model = Scalar(start)
    modes = []

    def train_epoch() -> None:
        modes.append(model.training)
        with torch.no_grad():
            model.w += 1

    fit = fit_with_early_stopping(
        model, train_epoch, lambda: losses[int(model.w.item())], max_epochs=max_epochs, patience=patience
    )
    return model, fit, modes


def test_keeps_best_epoch_and_stops_after_patience():
    model, fit, modes = _run([5.0, 4.0, 2.0, 3.0, 3.0, 1.0, 0.0], max_epochs=6, patience=2)
    assert (fit.best_loss, fit.best_epoch, fit.epochs_run) == (2.0, 2, 4)
    assert model.w.item() == 2.0 and not model.training
    assert modes == [True] * 4


def test_start_is_a_candidate():
    model, fit, _ = _run([1.0, 2.0, 3.0, 4.0], max_epochs=3, patience=5)
    assert (fit.best_loss, fit.best_epoch, fit.epochs_run) == (1.0, 0, 3)
    assert model.w.item() == 0.0


def test_nan_never_improves_and_start_is_kept():
    model, fit, _ = _run([math.nan, math.nan, 0.5, math.nan], max_epochs=3, patience=5)
    assert (fit.best_loss, fit.best_epoch) == (0.5, 2)
    model, fit, _ = _run([1.0, math.nan, math.nan], max_epochs=2, patience=5)
    assert (fit.best_loss, fit.best_epoch, fit.epochs_run) == (1.0, 0, 2) and model.w.item() == 0.0


def test_zero_epochs_returns_the_start():
    model, fit, modes = _run([3.0], max_epochs=0, patience=1)
    assert (fit.best_loss, fit.best_epoch, fit.epochs_run) == (3.0, 0, 0) and modes == []
