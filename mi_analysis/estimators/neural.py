"""Neural variational estimators of I(x; y): InfoNCE, NWJ, MINE (lower bounds) and SMILE (an estimate).

A critic T(x, y) is trained on a training split to maximise a variational objective, the epoch
to keep is chosen on a validation split, and the number reported comes from a held-out split the
critic never saw, so a bound stays a bound (up to the sampling noise that the CI shows).

Scores of one batch of B pairs form a matrix S (B, B) with S[i, j] = T(x_i, y_j): the diagonal
holds samples of the joint p(x, y), the off-diagonal entries samples of p(x) p(y).

- "infonce" (van den Oord et al. 2018; Poole et al. 2019):
      I >= mean_i [S_ii - log (1/B) sum_j exp S_ij]   <= log B   (kind "lower_bound").
  Never above log(batch_size): a value close to that ceiling means "at least this much", not
  "about this much"; a warning says so.
- "nwj" (Nguyen, Wainwright & Jordan 2010): I >= E_p[T] - E_q[exp(T - 1)]   ("lower_bound";
  unbiased per batch but of high variance when I is large).
- "mine" (Belghazi et al. 2018): Donsker-Varadhan I >= E_p[T] - log E_q[exp T]   ("lower_bound").
  The gradient of log E_q[exp T] is biased on mini-batches; MINE replaces its denominator
  E_q[exp T] by a moving average (rate `ema_rate`), which is what training does here.
- "smile" (Song & Ermon 2020): E_p[T] - log E_q[clip(exp T, e^-tau, e^tau)], the critic trained
  with the Jensen-Shannon (logistic) objective. Clipping trades variance for bias in both
  directions, so it is NOT a bound: kind "estimate".

Held-out evaluation: the held-out split is cut into random batches of batch_size (the training
batch size, so InfoNCE keeps its log(batch_size) ceiling); every sample gets its per-sample
terms from its batch. NWJ and InfoNCE are means of those terms; the DV values (mine, smile) are
mean(S_ii) - log mean(exp S_ij) over all within-batch off-diagonal pairs, a ratio estimator that
is slightly biased at finite n (first order 1/n), like every DV estimate.

Critics: "separable" T = f(x)^T g(y) with two MLPs (one forward pass per sample, cheap) or
"concat" T = MLP([x, y]) evaluated on all B^2 pairs (more flexible, B times the cost).
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from mi_analysis._util.fitting import fit_with_early_stopping

from .interface import AnalysisParam, MIResult
from .registry import register
from .uncertainty import bootstrap

CRITICS: tuple[str, ...] = ("separable", "concat")
BOUNDS: tuple[str, ...] = ("infonce", "nwj", "mine", "smile")
CEILING_WARNING_FRACTION = 0.9  # warn when InfoNCE >= 90% of log(batch_size)
CRITIC_BATCH_SIZE = AnalysisParam("critic", "batch_size", "batch_size", 128,
                                  "critic batch (InfoNCE is capped at its log)")
CRITIC_MAX_EPOCHS = AnalysisParam("critic", "max_epochs", "max_epochs", 30, "critic training epochs (early stopped)")


def _mlp(d_in: int, hidden: int, layers: int, d_out: int) -> nn.Sequential:
    dims = [d_in] + [hidden] * layers
    blocks: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        blocks += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(dims[-1], d_out))


class SeparableCritic(nn.Module):
    """T(x, y) = f(x)^T g(y) / sqrt(embed_dim); scores of all pairs from B + B forward passes."""

    def __init__(self, dx: int, dy: int, hidden: int, layers: int, embed_dim: int):
        super().__init__()
        self.f = _mlp(dx, hidden, layers, embed_dim)
        self.g = _mlp(dy, hidden, layers, embed_dim)
        self.scale = embed_dim**-0.5

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.f(x) @ self.g(y).T * self.scale  # (B, B)


class ConcatCritic(nn.Module):
    """T(x, y) = MLP([x, y]); all B^2 pairs are passed through the MLP."""

    def __init__(self, dx: int, dy: int, hidden: int, layers: int):
        super().__init__()
        self.net = _mlp(dx + dy, hidden, layers, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pairs = torch.cat([x.unsqueeze(1).expand(b, b, -1), y.unsqueeze(0).expand(b, b, -1)], dim=2)
        return self.net(pairs).squeeze(2)  # (B, B)


def _offdiag_logmeanexp(scores: torch.Tensor) -> torch.Tensor:
    """Row-wise log mean_{j != i} exp S_ij, shape (B,)."""
    b = scores.shape[0]
    masked = scores.masked_fill(torch.eye(b, dtype=torch.bool, device=scores.device), -math.inf)
    return torch.logsumexp(masked, dim=1) - math.log(b - 1)


def _row_stats(scores: torch.Tensor, bound: str, tau: float) -> torch.Tensor:
    """Per-sample held-out statistics (B, 2) of one score matrix: [joint term, marginal term].

    infonce: [S_ii - log mean_j exp S_ij, 0]   -> value mean(col 0)
    nwj:     [S_ii - exp(lme_i - 1), 0]        -> value mean(col 0), lme_i = off-diagonal log-mean-exp
    mine:    [S_ii, lme_i]                     -> value mean(col 0) - log mean exp(col 1)
    smile:   [S_ii, lme_i of clip(S, -tau, tau)]
    """
    joint = scores.diagonal()
    if bound == "infonce":
        term = joint - torch.logsumexp(scores, dim=1) + math.log(scores.shape[0])
        return torch.stack([term, torch.zeros_like(term)], dim=1)
    if bound == "nwj":
        return torch.stack([joint - torch.exp(_offdiag_logmeanexp(scores) - 1), torch.zeros_like(joint)], dim=1)
    if bound == "smile":
        scores = scores.clamp(-tau, tau)
    return torch.stack([joint, _offdiag_logmeanexp(scores)], dim=1)


def _value_of_stats(bound: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """stats (m, 2) -> scalar value of the bound over those m samples."""
    if bound in ("infonce", "nwj"):
        return lambda s: s[:, 0].mean()
    return lambda s: s[:, 0].mean() - (torch.logsumexp(s[:, 1], dim=0) - math.log(s.shape[0]))


class _Objective:
    """Training loss of one batch for each bound (minimised by the optimiser)."""

    def __init__(self, bound: str, tau: float, ema_rate: float):
        self.bound, self.tau, self.ema_rate = bound, tau, ema_rate
        self.log_ema: torch.Tensor | None = None  # MINE: log of the moving average of E_q[exp T]

    def loss(self, scores: torch.Tensor) -> torch.Tensor:
        joint = scores.diagonal()
        if self.bound in ("infonce", "nwj"):
            return -_row_stats(scores, self.bound, self.tau)[:, 0].mean()
        if self.bound == "smile":
            # Jensen-Shannon (logistic) objective, balanced between the B joint and B(B-1) marginal pairs.
            b = scores.shape[0]
            marg = (F.softplus(scores).sum() - F.softplus(joint).sum()) / (b * (b - 1))
            return F.softplus(-joint).mean() + marg
        # MINE: d/dtheta log E_q[e^T] = E_q[e^T dT] / E_q[e^T]; the denominator is replaced by its moving
        # average. exp(lme - log_ema) has exactly that gradient (lme = log E_q[e^T] on this batch).
        lme = torch.logsumexp(_offdiag_logmeanexp(scores), dim=0) - math.log(scores.shape[0])
        new = lme.detach()
        if self.log_ema is None:
            self.log_ema = new
        else:
            self.log_ema = torch.logaddexp(
                self.log_ema + math.log(1 - self.ema_rate), new + math.log(self.ema_rate)
            )
        return -(joint.mean() - torch.exp(lme - self.log_ema))


def _heldout_stats(
    critic: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: str, batch_size: int, tau: float, gen: torch.Generator
) -> torch.Tensor:
    """Per-sample statistics (m, 2) of a held-out part, each sample scored inside a random batch.

    The last batch is filled up with samples from the start of the permutation, so every batch has
    exactly batch_size distinct samples (the InfoNCE ceiling stays log(batch_size)); the few samples
    scored twice get the mean of their two rows.
    """
    m = x.shape[0]
    perm = torch.randperm(m, generator=gen).to(x.device)
    perm = torch.cat([perm, perm[: (-m) % batch_size]])
    sums = torch.zeros(m, 2, dtype=torch.float64, device=x.device)
    counts = torch.zeros(m, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for idx in perm.split(batch_size):
            stats = _row_stats(critic(x[idx], y[idx]), bound, tau).double()
            sums.index_add_(0, idx, stats)
            counts.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    return sums / counts.unsqueeze(1)


def _check_params(n: int, critic: str, batch_size: int, val_fraction: float, test_fraction: float, **positive) -> None:
    if critic not in CRITICS:
        raise ValueError(f"critic must be one of {CRITICS}, got {critic!r}")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < frac < 1:
            raise ValueError(f"{name} must be in (0, 1), got {frac!r}")
    if positive["ema_rate"] >= 1:
        raise ValueError(f"ema_rate must be in (0, 1), got {positive['ema_rate']!r}")
    if val_fraction + test_fraction >= 0.9:
        raise ValueError(f"val_fraction + test_fraction must leave >= 10% for training, got {val_fraction + test_fraction}")
    smallest = int(n * min(val_fraction, test_fraction, 1 - val_fraction - test_fraction))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2 or smallest < batch_size:
        raise ValueError(
            f"batch_size must be an int >= 2 that fits in every split; got batch_size={batch_size!r} with n={n}, "
            f"smallest split {smallest} samples (val_fraction={val_fraction}, test_fraction={test_fraction})"
        )


def fit_variational(
    x: torch.Tensor,
    y: torch.Tensor,
    bound: str,
    *,
    critic: str = "separable",
    hidden: int = 128,
    layers: int = 2,
    embed_dim: int = 32,
    batch_size: int = 128,
    lr: float = 1e-3,
    max_epochs: int = 60,
    patience: int = 8,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    tau: float = 5.0,
    ema_rate: float = 0.01,
    seed: int = 0,
) -> MIResult:
    """Train a critic for `bound` on x (n, dx), y (n, dy) float or (n,) int64 labels; report held-out.

    hidden, layers: width and number of hidden layers of each MLP; embed_dim: separable critic's
    f, g output size. batch_size: pairs per step (InfoNCE ceiling log(batch_size)); lr: Adam step
    size; training stops after max_epochs or when the validation value has not improved for
    `patience` epochs, and the critic of the best validation epoch (the untrained critic included:
    _util.fitting) is evaluated on the test split; params best_epoch 0 means the untrained critic.
    tau: SMILE clip; ema_rate: MINE moving-average rate. Runs on the device of x, in float32.
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    n = x.shape[0]
    _check_params(
        n, critic, batch_size, val_fraction, test_fraction,
        hidden=hidden, layers=layers, embed_dim=embed_dim, lr=lr, max_epochs=max_epochs, patience=patience,
        tau=tau, ema_rate=ema_rate,
    )  # fmt: skip
    device = x.device
    x = x.float()
    y = F.one_hot(torch.unique(y, return_inverse=True)[1]).float() if y.dim() == 1 else y.float()  # labels -> one-hot

    gen = torch.Generator().manual_seed(seed)  # CPU generator: same splits and batches on every device
    perm = torch.randperm(n, generator=gen).to(device)
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    # Standardise with training statistics only (the held-out parts are transformed, never fitted).
    mx, sx = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
    my, sy = y[train].mean(0), y[train].std(0).clamp_min(1e-8)
    x, y = (x - mx) / sx, (y - my) / sy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if critic == "separable":
            net: nn.Module = SeparableCritic(x.shape[1], y.shape[1], hidden, layers, embed_dim)
        else:
            net = ConcatCritic(x.shape[1], y.shape[1], hidden, layers)
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    objective = _Objective(bound, tau, ema_rate)
    value_of = _value_of_stats(bound)

    def train_epoch() -> None:
        order = train[torch.randperm(len(train), generator=gen).to(device)]
        for idx in order.split(batch_size):
            if len(idx) < batch_size:  # a short last batch would change the bound's ceiling
                continue
            loss = objective.loss(net(x[idx], y[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def validation_loss() -> float:  # the negated bound on the validation split
        return -float(value_of(_heldout_stats(net, x[val], y[val], bound, batch_size, tau, gen)))

    fit = fit_with_early_stopping(net, train_epoch, validation_loss, max_epochs=max_epochs, patience=patience)

    stats = _heldout_stats(net, x[test], y[test], bound, batch_size, tau, gen)
    value = float(value_of(stats))
    stderr, ci = bootstrap(stats, value_of, seed=seed + 1)
    params = {
        "critic": critic, "hidden": hidden, "layers": layers, "embed_dim": embed_dim, "batch_size": batch_size,
        "lr": lr, "max_epochs": max_epochs, "patience": patience, "val_fraction": val_fraction,
        "test_fraction": test_fraction, "seed": seed, "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
        "n_train": len(train), "n_val": n_val, "n_test": n_test,
    }  # fmt: skip
    if bound == "smile":
        params["tau"] = tau
    if bound == "mine":
        params["ema_rate"] = ema_rate
    notes: tuple[str, ...] = (f"value on {n_test} held-out samples the critic was not trained or selected on",)
    ceiling = math.log(batch_size)
    if bound == "infonce" and value >= CEILING_WARNING_FRACTION * ceiling:
        note = (
            f"InfoNCE value {value:.3f} is within {100 * (1 - CEILING_WARNING_FRACTION):.0f}% of its ceiling "
            f"log(batch_size) = {ceiling:.3f} nats: the true MI may be much larger; raise batch_size or use another method"
        )
        warnings.warn(note, stacklevel=3)
        notes += (note,)
    if bound == "smile":
        notes += (f"SMILE clips exp(T) to [e^-{tau:g}, e^{tau:g}]: a biased estimate, not a bound",)
    kind = "estimate" if bound == "smile" else "lower_bound"
    return MIResult(value=value, stderr=stderr, ci=ci, kind=kind, method=bound, params=params, n=n, notes=notes)


def _register(bound: str, kind: str, description: str, summary: str, preference: dict[str, int] | None = None) -> None:
    """Register fit_variational(..., bound=bound) under `bound`, with its keyword signature (so that
    estimate() can reject unknown parameters and list the accepted ones)."""

    def fn(x: torch.Tensor, y: torch.Tensor, **params) -> MIResult:
        return fit_variational(x, y, bound, **params)

    sig = inspect.signature(fit_variational)
    fn.__signature__ = sig.replace(parameters=[p for name, p in sig.parameters.items() if name != "bound"])
    fn.__name__ = fn.__qualname__ = bound
    fn.__doc__ = description
    common = (
        " Critic 'separable' or 'concat'; trained on a training split, epoch chosen on a validation split, "
        "value on a held-out split; CI by bootstrap over held-out samples."
    )
    register(
        bound, kind=kind, y_type="any", description=description + common, summary=summary,
        analysis_params=(CRITIC_BATCH_SIZE, CRITIC_MAX_EPOCHS), preference=preference,
    )(fn)  # fmt: skip


_register(
    "infonce",
    "lower_bound",
    "InfoNCE lower bound; never above log(batch_size), warns near that ceiling.",
    "a lower bound from a trained critic (InfoNCE), capped at log(batch size)",
    {"I(h;x)": 2},
)
_register("nwj", "lower_bound", "NWJ lower bound E_p[T] - E_q[exp(T-1)]; high variance at large MI.",
          "a lower bound from a trained critic (NWJ); high variance at large MI")
_register(
    "mine",
    "lower_bound",
    "MINE: Donsker-Varadhan lower bound trained with the moving-average gradient correction (ema_rate).",
    "a lower bound from a trained critic (MINE, Donsker-Varadhan)",
)
_register(
    "smile",
    "estimate",
    "SMILE: Donsker-Varadhan with exp(T) clipped to [e^-tau, e^tau] (tau=5), critic trained with the "
    "Jensen-Shannon objective; biased either way, NOT a bound.",
    "an estimate from a trained critic (SMILE, clipped Donsker-Varadhan), not a bound",
)
