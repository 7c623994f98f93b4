"""InfoPro's reconstruction view of I(h; x): how well can x be rebuilt from frozen h?

A decoder is fitted on the fitting set (training split) from the pooled activation h to the
un-normalised input x (pixels on the 0..1 scale), then evaluated on the held-out set it never saw.
Two numbers come out, neither of them a bound on I(h; x):

- reconstruction_mse (kind "non_shannon"): the held-out mean squared error per input dimension,
  in squared input units (not nats). Lower means h keeps more of x. This is InfoPro's measure.
- reconstruction_gaussian (kind "proxy"): 0.5 * sum_d log(var_d(x) / mse_d) in nats, summed over
  the input dimensions d with var_d > 0, each term clipped to [0, 0.5 log(1e6)].

Why a proxy. With hdiff(.) the differential entropy, I(h; x) = hdiff(x) - hdiff(x | h). Given h, the
error x - decoder(h) has the same conditional entropy as x, and a Gaussian has the largest entropy
for a given second moment, so hdiff(x | h) <= sum_d 0.5 log(2 pi e mse_d) (Hadamard's inequality
drops the correlations). That would give a lower bound on I(h; x) if hdiff(x) were known; the
proxy replaces hdiff(x) by sum_d 0.5 log(2 pi e var_d), the entropy of a Gaussian with the same
per-dimension variances, which is an UPPER bound on hdiff(x). One bound minus another is neither:
the number is the mutual information of a Gaussian channel with the measured per-dimension
signal and error variances, exact only for independent Gaussian inputs and errors. It can exceed
log N (a finite-sample ceiling on any estimate of the Shannon I(h; x), docs/information.md), and
for a deterministic network and a continuous x the Shannon I(h; x) is infinite anyway; the proxy
is for comparing layers and training modes on one data set, not an absolute number. Each term
is clipped at 0 (a decoder worse than the mean is read as "no information") and at
0.5 log(1e6) (an error below a millionth of the variance counts as that), so that one perfectly
reconstructed dimension cannot dominate.

Uncertainty: both values come from per-sample squared errors of the held-out set; stderr and 95% CI
by disjoint subsampling (estimators.uncertainty.subsample_result). They cover the sampling of the
held-out set, not the randomness of the fitted decoder.

Per-sample terms (MIResult.terms, for paired comparisons): reconstruction_mse is the mean of the
per-sample errors mean_d e_id. reconstruction_gaussian is a smooth function of per-dimension means,
so its terms are linearised (influence-function) terms
    t_i = value + 0.5 sum_d [(x_id - mean_d)^2 / var_d - e_id / mse_d]
over the dimensions whose term is not clipped (a clipped term is locally constant). Their mean is
exactly the value, and a bootstrap of their mean is the delta-method bootstrap of the proxy. Two
runs measured on the same held-out inputs share the first part, which cancels in a difference.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mi_analysis._util.fitting import fit_with_early_stopping
from mi_analysis.estimators import MIResult
from mi_analysis.estimators.uncertainty import subsample_result

RIDGE_GRID = tuple(10.0 ** e for e in range(-6, 1))  # ridge penalty relative to the mean eigenvalue of Z^T Z
INNER_VAL_FRACTION = 0.2  # mlp decoder: early stopping split
MAX_TERM = 0.5 * math.log(1e6)  # nats per input dimension
MLP_HIDDEN, MLP_LR, MLP_BATCH, MLP_MAX_EPOCHS, MLP_PATIENCE = 512, 1e-3, 128, 100, 5


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """What a reconstruction row is, in the terms of an estimator's registry entry (EstimatorSpec):
    kind, one-line summary, per-sample terms, rank per quantity when figures pick one estimator."""

    kind: str
    summary: str
    per_sample: bool
    preference: Mapping[str, int]


# The rows the method "reconstruction" writes, in table order.
ROW_SPECS = {
    "reconstruction_gaussian": RowSpec(
        "proxy", "a proxy: the Gaussian-channel information implied by how well a decoder reconstructs x from h "
        "(I(h;x) of a deterministic network is infinite in theory)", True, {"I(h;x)": 0},
    ),
    "reconstruction_mse": RowSpec(
        "non_shannon", "not in nats: InfoPro's held-out reconstruction error (mean squared error per input "
        "dimension; lower means h keeps more of x)", True, {"I(h;x)": 3},
    ),
}  # fmt: skip


def fit_decoder(z: Tensor, x: Tensor, kind: str = "linear", *, seed: int = 0) -> Callable[[Tensor], Tensor]:
    """A decoder z (n, p) -> x (n, D) fitted on these pairs; returns predict(z_new) -> (m, D) float64.

    Inputs are standardised and targets centred with the fitting statistics. linear: ridge
    regression, its penalty chosen from RIDGE_GRID by generalised cross-validation (closed form,
    no data held out). mlp: the epoch is chosen on an inner validation split.
    """
    z_mean, z_std = z.double().mean(0), z.double().std(0).clamp_min(1e-8)
    x_mean = x.double().mean(0)
    zs, xc = (z.double() - z_mean) / z_std, x.double() - x_mean
    if kind == "linear":
        weights = _ridge_gcv(zs, xc)
        return lambda z_new: ((z_new.double() - z_mean) / z_std) @ weights + x_mean
    if kind == "mlp":
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(z), generator=gen).to(z.device)
        n_val = max(1, int(len(z) * INNER_VAL_FRACTION))
        val, train = perm[:n_val], perm[n_val:]
        net = _fit_mlp(zs[train].float(), xc[train].float(), zs[val].float(), xc[val].float(), gen, seed)
        return lambda z_new: net(((z_new.double() - z_mean) / z_std).float()).double() + x_mean
    raise ValueError(f"decoder kind must be 'linear' or 'mlp', got {kind!r}")


def _ridge_gcv(z: Tensor, x: Tensor) -> Tensor:
    """Ridge weights (p, D) for centred x (m, D) on standardised z (m, p), the penalty a chosen by GCV.

    With Z^T Z = V diag(s) V^T and P = V^T Z^T X: W(a) = V diag(1/(s + a)) P, the residual sum of
    squares RSS(a) = ||X||^2 - sum_j ||P_j||^2 (2 / (s_j + a) - s_j / (s_j + a)^2) and the effective
    number of parameters tr H(a) = sum_j s_j / (s_j + a); GCV(a) = m RSS(a) / (m - tr H(a))^2, an
    estimate of the held-out error, for every a from one eigendecomposition. When p > m the same
    holds in the dual: Z Z^T = U diag(s) U^T, P = U^T X, ||P_j||^2 scaled by s_j in RSS, and
    W(a) = Z^T U diag(1/(s + a)) P.
    """
    m, p = z.shape
    eigenvalues, vectors = torch.linalg.eigh(z.T @ z if p <= m else z @ z.T)
    s = eigenvalues.clamp_min(0)
    projected = vectors.T @ (z.T @ x if p <= m else x)  # P, (p or m, D)
    energy = projected.square().sum(1)  # ||P_j||^2; in the dual ||Z^T U_j||^2 = s_j scales it
    if p > m:
        energy = energy * s
    total = float(x.square().sum())
    scale = float(s.sum()) / p or 1.0  # mean eigenvalue of Z^T Z (the nonzero ones are shared with Z Z^T)

    def gcv(relative: float) -> float:
        a = relative * scale
        rss = total - float((energy * (2 / (s + a) - s / (s + a) ** 2)).sum())
        dof = float((s / (s + a)).sum())
        return m * max(rss, 0.0) / max(m - dof, 1e-12) ** 2

    a = min(RIDGE_GRID, key=gcv) * scale
    weights = vectors @ (projected / (s + a)[:, None])
    return weights if p <= m else z.T @ weights


def _fit_mlp(z: Tensor, x: Tensor, z_val: Tensor, x_val: Tensor, gen: torch.Generator, seed: int) -> nn.Module:
    """One-hidden-layer ReLU MLP trained with Adam on the MSE; the epoch of lowest validation MSE is kept
    (the untrained net included, see fit_with_early_stopping)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(z.shape[1], MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, x.shape[1]))
    net = net.to(z.device)
    opt = torch.optim.Adam(net.parameters(), lr=MLP_LR)

    def train_epoch() -> None:
        for idx in torch.randperm(len(z), generator=gen).to(z.device).split(MLP_BATCH):
            loss = F.mse_loss(net(z[idx]), x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    fit_with_early_stopping(
        net, train_epoch, lambda: F.mse_loss(net(z_val), x_val), max_epochs=MLP_MAX_EPOCHS, patience=MLP_PATIENCE
    )
    return net.eval().requires_grad_(False)


def gaussian_proxy_terms(squared_errors: Tensor, x: Tensor) -> Tensor:
    """Linearised per-sample terms (n,) float64 of gaussian_proxy (module docstring); mean = the proxy."""
    x = x.double()
    variance = x.var(0, unbiased=False)
    informative = variance > 0
    mse = squared_errors.mean(0)[informative].clamp_min(1e-300)
    raw = 0.5 * (variance[informative].log() - mse.log())
    free = (raw > 0) & (raw < MAX_TERM)  # dimensions whose term is not clipped
    spread = (x[:, informative] - x[:, informative].mean(0)).square() / variance[informative]
    influence = 0.5 * (spread[:, free] - squared_errors[:, informative][:, free] / mse[free]).sum(1)
    return gaussian_proxy(squared_errors, x) + influence


def gaussian_proxy(squared_errors: Tensor, x: Tensor) -> float:
    """0.5 * sum_d clip(log(var_d(x) / mse_d), 0, 2 MAX_TERM) over dims with var_d > 0; (n, D) inputs."""
    variance = x.var(0, unbiased=False)
    informative = variance > 0
    mse = squared_errors.mean(0)[informative]
    terms = 0.5 * (variance[informative].log() - mse.clamp_min(1e-300).log())
    return float(terms.clamp(0.0, MAX_TERM).sum())


def reconstruction_results(
    z_fit: Tensor, x_fit: Tensor, z_probe: Tensor, x_probe: Tensor, *, kind: str = "linear", seed: int = 0
) -> dict[str, MIResult]:
    """Fit a decoder on (z_fit, x_fit), evaluate on the held-out pairs; {"reconstruction_gaussian": proxy
    result in nats, "reconstruction_mse": held-out MSE per input dimension}. x_* are (n, D)."""
    decoder = fit_decoder(z_fit, x_fit.flatten(1), kind, seed=seed)
    x_probe = x_probe.flatten(1).double()
    with torch.no_grad():
        squared = (decoder(z_probe) - x_probe).square()  # (n, D)
    n = len(x_probe)

    def proxy_of(rows: Tensor | None) -> float:
        return gaussian_proxy(squared, x_probe) if rows is None else gaussian_proxy(squared[rows], x_probe[rows])

    per_sample = squared.mean(1)

    def mse_of(rows: Tensor | None) -> float:
        return float(per_sample.mean() if rows is None else per_sample[rows].mean())

    params = {"decoder": kind, "seed": seed, "input_dims": x_probe.shape[1], "fit_samples": len(z_fit)}
    proxy = subsample_result(proxy_of, n, kind="proxy", method="reconstruction_gaussian", params=params, seed=seed)
    mse = subsample_result(mse_of, n, kind="non_shannon", method="reconstruction_mse", params=params, seed=seed)
    return {
        "reconstruction_gaussian": dataclasses.replace(proxy, terms=gaussian_proxy_terms(squared, x_probe).cpu()),
        "reconstruction_mse": dataclasses.replace(mse, terms=per_sample.cpu()),
    }
