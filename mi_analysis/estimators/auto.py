"""method="auto": pick a sound estimator from the data, and say which.

Labels y (n,) -> "probe": the probe lower bound (probe.py) with the probe family, linear or
    2-layer MLP, chosen per fold on the inner validation split of the training part (never on
    the held-out part), so the number stays a lower bound. The mixed k-NN estimate (Ross 2014) is
    not combined with it: it is an estimate, biased low in high dimension, and max(bound,
    estimate) is neither. (A max over several held-out lower bounds would be a bound only up to
    the selection noise, which is why the choice is made on the inner split instead.)

Continuous y (n, dy) -> an estimate built from two facts:
    1. MI is invariant under strictly monotone maps of single coordinates, so every column of x and
       y is replaced by its normal scores Phi^-1(rank / (n + 1)) (the empirical copula with Gaussian
       marginals). Monotone distortions (CDFs, cubes, asinh, heavy tails) are then undone.
    2. KSG is biased low when the MI is large relative to the dimension; its bias on a Gaussian
       with the same correlation matrix R as the normal scores can be measured by running KSG on
       a Gaussian surrogate sample N(0, R) of the same size, whose MI I(R) is known in closed form.
   Then:
    - if KSG cannot tell the data from that surrogate (|KSG(data) - KSG(surrogate)| within
      `tolerance` and 3 combined stderrs), the copula is consistent with a Gaussian copula, for
      which the closed form is the efficient estimator: "gaussian_copula" = the "gaussian"
      estimator on the normal scores;
    - otherwise "ksg_copula_corrected" = KSG(data) - [KSG(surrogate) - I(R)], KSG on the normal
      scores with its Gaussian-reference bias subtracted (for independent or weakly correlated
      data the correction is ~0 and this is plain KSG on normal scores).
   Both are estimates (kind "estimate"), not bounds. Known weak spot: dependence that is strong
   but far from a Gaussian copula in several dimensions (e.g. the "spiral" tasks of the Beyond
   Normal benchmark), where KSG's bias is larger than on the surrogate and remains.

The result's `method` is "auto->NAME" and params["picked_by"] == "auto" with params["reason"].
"""

from __future__ import annotations

import dataclasses
import math

import torch

from . import gaussian as _gaussian  # noqa: F401  (registers "gaussian")
from . import ksg as _ksg  # noqa: F401  (registers "ksg")
from .interface import MIResult
from .probe import fit_probe
from .registry import get, register
from .uncertainty import ci_from_stderr

KSG_K = 5
MIN_SAMPLES_PER_DIM = 4  # n >= 4 (dx + dy): the joint correlation matrix must be well estimated


def normal_scores(a: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each column of a (n, d) replaced by Phi^-1(rank / (n + 1)), ranks 1..n.

    Ties (repeated values, ReLU zeros) are broken in a random order drawn from `generator`, a new
    one per call: breaking them by row index in both x and y would invent dependence between them.
    """
    n = a.shape[0]
    perm = torch.randperm(n, generator=generator).to(a.device)
    order = perm[torch.argsort(a[perm], dim=0, stable=True)]  # (n, d) row indices in ascending order
    ranks = torch.empty_like(order)
    ranks.scatter_(0, order, torch.arange(1, n + 1, device=a.device).unsqueeze(1).expand_as(order).contiguous())
    return math.sqrt(2.0) * torch.erfinv(2.0 * ranks.double() / (n + 1) - 1.0)


def gaussian_mi_of_correlation(r: torch.Tensor, dx: int) -> float:
    """I(x; y) in nats of N(0, r) for a joint correlation matrix r ((dx+dy), (dx+dy))."""
    logdet = torch.linalg.slogdet
    return 0.5 * float(logdet(r[:dx, :dx]).logabsdet + logdet(r[dx:, dx:]).logabsdet - logdet(r).logabsdet)


def wishart_bias(n: int, dx: int, dy: int) -> float:
    """Expected excess of the plug-in Gaussian MI over the true one for n samples: E[I(R_hat)] - I(R).

    For a sample covariance S_hat of n Gaussian samples, E[log det S_hat] = log det S + c(d) with
    c(d) = sum_{i=1..d} psi((n - i) / 2) + d log(2 / (n - 1)) (exact; e.g. Misra, Singh & Demchuk
    2005), so the plug-in MI 1/2 [log det S_xx + log det S_yy - log det S] is off by
    1/2 [c(dx) + c(dy) - c(dx + dy)] on average (about dx dy / (2n) nats: 0.25 at 50 x 50, n = 5000).
    Correlation instead of covariance matrices give the same MI (the variances cancel).
    """

    def c(d: int) -> float:
        i = torch.arange(1, d + 1, dtype=torch.float64)
        return float(torch.special.digamma((n - i) / 2).sum()) + d * math.log(2.0 / (n - 1))

    return 0.5 * (c(dx) + c(dy) - c(dx + dy))


def _auto_labels(x: torch.Tensor, y: torch.Tensor, seed: int) -> MIResult:
    r = fit_probe(x, y, models=("linear", "mlp"), seed=seed, method="probe")
    reason = "labels: probe lower bound, linear vs MLP chosen per fold on an inner validation split"
    return dataclasses.replace(r, method="auto->probe", params={**r.params, "picked_by": "auto", "reason": reason})


def _auto_continuous(x: torch.Tensor, y: torch.Tensor, seed: int, tolerance: float) -> MIResult:
    n, dx = x.shape[0], x.shape[1]
    if n < MIN_SAMPLES_PER_DIM * (dx + y.shape[1]):
        raise ValueError(
            f"method='auto' with continuous y needs n >= {MIN_SAMPLES_PER_DIM} * (dx + dy) samples to estimate the "
            f"joint correlation, got n={n}, dx={x.shape[1]}, dy={y.shape[1]}; reduce the dimension first or use a "
            f"bound that needs no such estimate (method='infonce')"
        )
    gen = torch.Generator().manual_seed(seed)
    xs, ys = normal_scores(x, gen), normal_scores(y, gen)
    z = torch.cat([xs, ys], dim=1)
    r = z.T @ z / n
    d = torch.sqrt(torch.diagonal(r))
    r = r / d[:, None] / d[None, :]

    ksg = get("ksg").fn
    data = ksg(xs, ys, k=KSG_K, seed=seed)
    # Surrogate: same n, same correlation, Gaussian copula; its true MI is I(R) exactly.
    chol = torch.linalg.cholesky(r + 1e-10 * torch.eye(r.shape[0], dtype=r.dtype, device=r.device))
    noise = torch.randn(n, r.shape[0], generator=gen, dtype=torch.float64).to(r.device)
    sur = noise @ chol.T
    surrogate = ksg(sur[:, :dx], sur[:, dx:], k=KSG_K, seed=seed + 1)
    i_r = gaussian_mi_of_correlation(r, dx)
    bias = surrogate.value - i_r
    gap = data.value - surrogate.value
    gap_se = math.hypot(data.stderr, surrogate.stderr)
    common = {"picked_by": "auto", "seed": seed, "ksg_k": KSG_K, "ksg_data": data.value, "ksg_surrogate": surrogate.value,
              "surrogate_mi": i_r, "tolerance": tolerance}  # fmt: skip

    if abs(gap) <= max(tolerance, 3.0 * gap_se):
        # No shrinkage (it pulls sparse dependence towards 0); the plug-in's own bias is removed instead.
        g = get("gaussian").fn(xs, ys, shrinkage=0.0, seed=seed)
        plugin_bias = wishart_bias(n, dx, y.shape[1])
        value = g.value - plugin_bias
        reason = (f"KSG on normal scores matches KSG on a Gaussian surrogate with the same correlation "
                  f"(gap {gap:+.3f} nats): Gaussian copula, closed form on normal scores minus the "
                  f"plug-in bias {plugin_bias:.3f}")  # fmt: skip
        return dataclasses.replace(
            g, value=value, ci=(g.ci[0] - plugin_bias, g.ci[1] - plugin_bias), method="auto->gaussian_copula",
            params={**g.params, **common, "wishart_bias": plugin_bias, "reason": reason}, notes=g.notes + (reason,),
        )

    value = data.value - bias
    stderr = math.hypot(data.stderr, surrogate.stderr)
    reason = (f"KSG on normal scores differs from its Gaussian surrogate (gap {gap:+.3f} nats): not a Gaussian "
              f"copula; KSG(k={KSG_K}) on normal scores minus its bias on the surrogate ({bias:+.3f} nats)")  # fmt: skip
    return MIResult(value=value, stderr=stderr, ci=ci_from_stderr(value, stderr), kind="estimate",
                    method="auto->ksg_copula_corrected", params={**common, "surrogate_bias": bias, "reason": reason},
                    n=n, notes=data.notes + (reason,))  # fmt: skip


@register(
    "auto",
    kind="estimate",
    y_type="any",
    description=(
        "Picks a method from the data and says which in result.method ('auto->NAME'): labels -> probe lower bound "
        "(linear or MLP chosen on an inner validation split; kind lower_bound); continuous -> on per-coordinate "
        "normal scores, the Gaussian-copula closed form when KSG cannot tell the data from a Gaussian surrogate "
        "with the same correlation, else KSG minus its bias on that surrogate (kind estimate)."
    ),
    summary="a method picked from the data: a probe lower bound for labels, a bias-corrected estimate otherwise",
)
def auto(x: torch.Tensor, y: torch.Tensor, *, tolerance: float = 0.05, seed: int = 0) -> MIResult:
    """tolerance: nats by which KSG on the data may differ from KSG on the Gaussian surrogate and
    still be called a Gaussian copula (the test also allows 3 combined stderrs). Unused for labels."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number of nats, got {tolerance!r}")
    if y.dim() == 1:
        return _auto_labels(x, y, seed)
    return _auto_continuous(x, y, seed, float(tolerance))
