"""Probe lower bound on I(h; y) for class labels y: a classifier's held-out cross-entropy.

For any classifier q(y | h), Gibbs' inequality gives E[-log q(y|h)] >= H(y | h), so

    I(h; y) = H(y) - H(y | h) >= H(y) - CE(q),   CE measured on data q was not fitted on.

Procedure (every choice is made away from the data the number is computed on):
- Cross-fitting: the n samples are cut into `folds` parts; each part is held out once while the
  probe is fitted on the others (its training part). Every sample thus gets one held-out term
  and the value is their mean (the mean of `folds` valid bounds is a valid bound).
- Inside a training part, an inner validation split (inner_val_fraction) chooses the weight
  decay (from `weight_decays`), the early-stopping epoch (MLP) and, when several models are
  asked for (method="auto"), linear vs MLP (the MLP only if its gain is significant there).
  The held-out part plays no role in these choices.
- Inputs go through a per-column map fitted on the training part: standardisation, or normal
  scores (a monotone map per column that undoes saturating / heavy-tailed coordinates, e.g. tanh
  units); the inner validation split picks which, with the linear probe.
- The MLP probe is residual: logits = linear probe + MLP, started at the chosen linear probe with
  the MLP's last layer at zero, so epoch 0 IS the linear probe and early stopping keeps the MLP
  only where it improves the inner-validation CE.
- H(y) is the plug-in entropy of the label frequencies of the TRAINING part, not of the held-out
  part. Why: the plug-in entropy is biased low (concavity; by about (C-1)/(2 n_train) nats) and
  the held-out CE of a fitted q is at least H(y|h) in expectation, so E[value] <= I(h; y): the
  bound stays a bound in expectation. Frequencies counted on the held-out labels would reuse
  the evaluation data, and the held-out cross-entropy of the training frequencies,
  -mean log r_train(y_i), is biased HIGH by KL(p || r_train). With 10 classes and a few thousand
  training samples all of these differ by < 0.002 nats; the choice matters for small n.
- Per-sample held-out terms t_i = H_train(y) + log q(y_i | h_i); stderr and 95% CI by bootstrap
  over them. The CI covers held-out sampling noise, not the randomness of the fitted probes.

A probe measures the information a classifier of its family can read out: a linear probe can
miss information that is there (a loose bound), never invent it (up to the CI).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mi_analysis._util.fitting import fit_with_early_stopping

from .interface import AnalysisParam, MIResult
from .registry import register
from .uncertainty import bootstrap

MODELS: tuple[str, ...] = ("linear", "mlp")
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)  # L2 penalty per sample-mean CE
DEFAULT_MLP_WEIGHT_DECAYS: tuple[float, ...] = (1e-4, 1e-2)  # AdamW decoupled decay
INPUT_MAPS: tuple[str, ...] = ("standardize", "normal_scores")
PROBE_FOLDS = AnalysisParam("probe", "folds", "folds", 3, "cross-fitting folds (each part is held out once)", minimum=2)
PROBE_WEIGHT_DECAYS = AnalysisParam(
    "probe", "weight_decays", "weight_decays", (1e-3,),
    "L2 grid of the linear probe (per sample-mean cross-entropy on standardised h); every choice gives a valid "
    "bound, a grid such as (1e-2, 1e-3, 1e-4) tightens it a little at about 2.5 times the cost",
    value_type="numbers",
)  # fmt: skip


def _entropy(labels: torch.Tensor, num_classes: int) -> float:
    """Plug-in entropy in nats of the label frequencies."""
    p = torch.bincount(labels, minlength=num_classes).double() / labels.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _fit_linear(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, init: nn.Linear | None
) -> nn.Linear:
    """Multinomial logistic regression: min mean CE + weight_decay/2 ||W||^2 (bias free), full-batch L-BFGS."""
    model = nn.Linear(x.shape[1], num_classes).to(x.device, x.dtype)
    with torch.no_grad():
        if init is None:
            model.weight.zero_()
            model.bias.zero_()
        else:  # warm start along the weight-decay path
            model.load_state_dict(init.state_dict())
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + 0.5 * weight_decay * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


class InputMap:
    """Per-column input map fitted on a training part, applied unchanged to any other rows.

    "standardize": (x - mean) / std. "normal_scores": Phi^-1 of the mid-rank of x among the
    training values, (#less + #equal / 2 + 1/2) / (n_train + 1); a monotone map per column that
    undoes saturating or heavy-tailed coordinates (tied values, e.g. ReLU zeros, share one score).
    """

    def __init__(self, kind: str, x_train: torch.Tensor):
        self.kind = kind
        if kind == "standardize":
            self.mean, self.std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
        else:
            self.sorted = x_train.sort(dim=0).values.T.contiguous()  # (d, n_train)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "standardize":
            return (x - self.mean) / self.std
        cols = x.T.contiguous()  # (d, m)
        below = torch.searchsorted(self.sorted, cols, side="left")
        not_above = torch.searchsorted(self.sorted, cols, side="right")
        p = ((below + not_above).to(x.dtype) / 2 + 0.5) / (self.sorted.shape[1] + 1)
        return (math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)).T


class _ResidualMLP(nn.Module):
    """logits = linear(x) + MLP(x): starts as a given linear probe (last MLP layer zero) and can only
    add a non-linear correction; 2 hidden ReLU layers of width `hidden`."""

    def __init__(self, linear: nn.Linear, hidden: int):
        super().__init__()
        d, c = linear.in_features, linear.out_features
        self.linear = nn.Linear(d, c).to(linear.weight.device, linear.weight.dtype)
        self.linear.load_state_dict(linear.state_dict())
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, c))
        self.mlp.to(linear.weight.device, linear.weight.dtype)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


def _fit_mlp(
    linear: nn.Linear, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, *,
    weight_decay: float, hidden: int, lr: float, batch_size: int, max_epochs: int, patience: int, gen: torch.Generator,
) -> tuple[nn.Module, float]:
    """Residual MLP started at `linear`, trained with AdamW; returns the epoch (0 = the linear start)
    with the lowest CE on (xv, yv), and that CE."""
    model = _ResidualMLP(linear, hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def train_epoch() -> None:
        for idx in torch.randperm(len(x), generator=gen).to(x.device).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    fit = fit_with_early_stopping(
        model, train_epoch, lambda: F.cross_entropy(model(xv), yv), max_epochs=max_epochs, patience=patience
    )
    return model, fit.best_loss


def _select_and_fit(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, models: Sequence[str], *, inner_val_fraction: float,
    weight_decays: Sequence[float], mlp_weight_decays: Sequence[float], hidden: int, lr: float, batch_size: int,
    max_epochs: int, patience: int, gen: torch.Generator,
) -> tuple[InputMap, nn.Module, dict]:
    """Choose and fit a probe on the training part (x, y), every choice by CE on an inner validation split:
    1. input map (INPUT_MAPS) and L2 weight decay (weight_decays) of the linear probe;
    2. if "mlp" in models: the residual MLP started at that linear probe (weight decay from
       mlp_weight_decays, early stopping); with "linear" also in models it is kept only if its
       per-sample CE gain over the linear probe on the inner split is significant (mean > 2 stderr):
       an MLP trained on the inner split alone must pay for not being refitted on the whole part.
    A chosen linear probe is refitted on the whole training part; an MLP keeps its inner-split fit.
    Returns (input map, model, what was chosen)."""
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    n_val = max(1, int(len(x) * inner_val_fraction))
    vi, ti = perm[:n_val], perm[n_val:]
    best = (math.inf, "", 0.0, None, None)  # (inner val CE, input map kind, weight decay, linear model, map)
    for kind in INPUT_MAPS:
        input_map = InputMap(kind, x[ti])
        xt, xv = input_map(x[ti]), input_map(x[vi])
        model = None
        for wd in sorted(weight_decays, reverse=True):  # strong -> weak penalty, warm-started
            model = _fit_linear(xt, y[ti], num_classes, wd, model)
            with torch.no_grad():
                ce = float(F.cross_entropy(model(xv), y[vi]))
            if ce < best[0]:
                best = (ce, kind, wd, copy.deepcopy(model), input_map)
    ce, kind, wd, linear, input_map = best
    if "mlp" in models:
        xt, xv = input_map(x[ti]), input_map(x[vi])
        fits = [
            (*_fit_mlp(linear, xt, y[ti], xv, y[vi], weight_decay=mlp_wd, hidden=hidden, lr=lr, batch_size=batch_size,
                       max_epochs=max_epochs, patience=patience, gen=gen), mlp_wd)
            for mlp_wd in mlp_weight_decays
        ]  # fmt: skip
        mlp, mlp_ce, mlp_wd = min(fits, key=lambda fit: fit[1])
        with torch.no_grad():  # per-sample CE gain of the MLP over the linear probe on the inner split
            gain = F.cross_entropy(linear(xv), y[vi], reduction="none") - F.cross_entropy(mlp(xv), y[vi], reduction="none")
        if "linear" not in models or float(gain.mean()) > 2.0 * float(gain.std()) / math.sqrt(len(vi)):
            return input_map, mlp, {"model": "mlp", "inputs": kind, "weight_decay": mlp_wd, "inner_val_ce": mlp_ce}
    input_map = InputMap(kind, x)  # linear: convex and cheap, refit on the whole training part
    chosen = {"model": "linear", "inputs": kind, "weight_decay": wd, "inner_val_ce": ce}
    return input_map, _fit_linear(input_map(x), y, num_classes, wd, None), chosen


def _check_params(n: int, folds: int, inner_val_fraction: float, models: Sequence[str], **positive) -> None:
    if not models or any(m not in MODELS for m in models):
        raise ValueError(f"models must be a non-empty subset of {MODELS}, got {models!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2 (each part is held out once), got {folds!r}")
    if n < 10 * folds:
        raise ValueError(f"need at least 10 samples per fold: n={n} with folds={folds}")
    if not 0 < inner_val_fraction < 1:
        raise ValueError(f"inner_val_fraction must be in (0, 1), got {inner_val_fraction!r}")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def fit_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    models: Sequence[str] = ("linear",),
    folds: int = 5,
    inner_val_fraction: float = 0.2,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    mlp_weight_decays: Sequence[float] = DEFAULT_MLP_WEIGHT_DECAYS,
    hidden: int = 128,
    lr: float = 1e-3,
    batch_size: int = 256,
    max_epochs: int = 200,
    patience: int = 10,
    seed: int = 0,
    method: str = "probe_linear",
) -> MIResult:
    """Probe lower bound on I(x; y) for x (n, d) float, y (n,) int64 labels (see the module docstring).

    models: which probe families to try; with several, the inner validation split picks per fold.
    weight_decays: L2 grid of the linear probe; mlp_weight_decays: AdamW decoupled decay grid of the MLP.
    hidden, lr, batch_size, max_epochs, patience: MLP width (2 hidden layers), Adam step, batch,
    epoch limit and early-stopping patience (epochs without inner-validation improvement).
    Runs on the device of x, in float32.
    """
    n = x.shape[0]
    models = tuple(models)
    _check_params(
        n, folds, inner_val_fraction, models, hidden=hidden, lr=lr, batch_size=batch_size, max_epochs=max_epochs,
        patience=patience, **{f"weight_decays[{i}]": w for i, w in enumerate(weight_decays)},
    )  # fmt: skip
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in mlp_weight_decays):
        raise ValueError(f"mlp_weight_decays must be non-negative numbers, got {mlp_weight_decays!r}")
    classes, y = torch.unique(y, return_inverse=True)
    num_classes = len(classes)
    x = x.float()
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same folds on every device

    fold_of = torch.randperm(n, generator=gen).to(x.device) % folds  # balanced fold sizes
    terms = torch.empty(n, dtype=torch.float64, device=x.device)
    choices = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # MLP initialisation
        for k in range(folds):
            held, train = fold_of == k, fold_of != k
            input_map, model, chosen = _select_and_fit(
                x[train], y[train], num_classes, models, inner_val_fraction=inner_val_fraction,
                weight_decays=weight_decays, mlp_weight_decays=mlp_weight_decays, hidden=hidden, lr=lr,
                batch_size=batch_size, max_epochs=max_epochs, patience=patience, gen=gen,
            )  # fmt: skip
            with torch.no_grad():
                log_q = F.log_softmax(model(input_map(x[held])).double(), dim=1).gather(1, y[held].unsqueeze(1)).squeeze(1)
            terms[held] = _entropy(y[train], num_classes) + log_q
            choices.append(chosen)

    value = float(terms.mean())
    stderr, ci = bootstrap(terms, seed=seed + 1)
    params = {
        "models": list(models), "folds": folds, "inner_val_fraction": inner_val_fraction,
        "weight_decays": list(weight_decays), "seed": seed, "num_classes": num_classes,
        "chosen": [c["model"] for c in choices], "chosen_inputs": [c["inputs"] for c in choices],
        "chosen_weight_decay": [c["weight_decay"] for c in choices],
    }  # fmt: skip
    if "mlp" in models:
        params.update(mlp_weight_decays=list(mlp_weight_decays), hidden=hidden, lr=lr, batch_size=batch_size,
                      max_epochs=max_epochs, patience=patience)  # fmt: skip
    h_y = _entropy(y, num_classes)
    notes = (
        f"held-out cross-entropy bound by {folds}-fold cross-fitting; H(y) from training-part label frequencies",
        f"I(h;y) <= H(y) = {h_y:.3f} nats (label frequencies of all n samples)",
    )
    return MIResult(value=value, stderr=stderr, ci=ci, kind="lower_bound", method=method, params=params, n=n, notes=notes,
                    terms=terms.cpu())


_COMMON = (
    " Cross-fitted over `folds` parts (each sample held out once); weight decay / early stopping chosen on an "
    "inner validation split of each training part; H(y) from training-part label frequencies; CI by bootstrap "
    "over held-out samples."
)


@register(
    "probe_linear",
    kind="lower_bound",
    y_type="labels",
    description="Lower bound H(y) - held-out cross-entropy of a multinomial logistic-regression probe." + _COMMON,
    summary="a lower bound: H(y) minus the held-out cross-entropy of a linear probe",
    per_sample=True,
    analysis_params=(PROBE_FOLDS, PROBE_WEIGHT_DECAYS),
    preference={"I(h;y)": 0},
)
def probe_linear(
    x: torch.Tensor, y: torch.Tensor, *, folds: int = 5, inner_val_fraction: float = 0.2,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS, seed: int = 0,
) -> MIResult:  # fmt: skip
    return fit_probe(x, y, models=("linear",), folds=folds, inner_val_fraction=inner_val_fraction,
                     weight_decays=weight_decays, seed=seed, method="probe_linear")  # fmt: skip


@register(
    "probe_mlp",
    kind="lower_bound",
    y_type="labels",
    description="Lower bound H(y) - held-out cross-entropy of a residual MLP probe (linear probe + 2-hidden-layer "
    "ReLU MLP started at zero, so it starts as the linear probe)." + _COMMON,
    summary="a lower bound: H(y) minus the held-out cross-entropy of a residual MLP probe",
    per_sample=True,
    analysis_params=(PROBE_FOLDS,),
    preference={"I(h;y)": 1},
)
def probe_mlp(
    x: torch.Tensor, y: torch.Tensor, *, folds: int = 5, inner_val_fraction: float = 0.2,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS, mlp_weight_decays: Sequence[float] = DEFAULT_MLP_WEIGHT_DECAYS, hidden: int = 128, lr: float = 1e-3, batch_size: int = 256,
    max_epochs: int = 200, patience: int = 10, seed: int = 0,
) -> MIResult:  # fmt: skip
    return fit_probe(x, y, models=("mlp",), folds=folds, inner_val_fraction=inner_val_fraction,
                     weight_decays=weight_decays, mlp_weight_decays=mlp_weight_decays, hidden=hidden, lr=lr, batch_size=batch_size,
                     max_epochs=max_epochs, patience=patience, seed=seed, method="probe_mlp")  # fmt: skip
