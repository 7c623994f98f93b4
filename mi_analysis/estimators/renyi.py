"""Matrix-based Renyi alpha-order mutual information (Giraldo, Rao & Principe 2014).

From a Gram matrix K (n, n) with unit diagonal, A = K / tr(K) has eigenvalues that sum to 1 and
    S_alpha(A) = 1/(1 - alpha) * log sum_i lambda_i(A)^alpha            (nats)
    I_alpha(x; y) = S_alpha(A) + S_alpha(B) - S_alpha(A o B / tr(A o B))  (o: Hadamard product)
with 0 <= I_alpha <= min(S_alpha(A), S_alpha(B)) <= log n. Kernels: Gaussian
exp(-|u - v|^2 / (2 sigma^2)) on standardised data, sigma by Silverman's rule
(4 / (d + 2))^(1 / (d + 4)) * n^(-1 / (d + 4)) unless given; integer labels use the delta kernel
[y_i == y_j]. It is a functional of the kernel matrices, not Shannon MI, even as alpha -> 1:
the number depends on the kernel width. With a narrow kernel the joint entropy saturates near
log n, so independent data sit on a positive floor (about 2 nats for 2 + 2 dims, n = 300, Silverman
width): compare values only at equal n and width. Cost: O(n^3) eigendecompositions, so n is capped.
"""

from __future__ import annotations

import math

import torch

from .interface import MIResult
from .registry import register
from .uncertainty import subsample_result
from .validation import standardize


def silverman_width(n: int, d: int) -> float:
    """Silverman's rule-of-thumb Gaussian kernel width for unit-variance data in d dimensions."""
    return (4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (d + 4))


def gaussian_gram(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-|z_i - z_j|^2 / (2 sigma^2)) for z (n, d), float64 (n, n)."""
    sq = (z * z).sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_(min=0.0)
    dist2.diagonal().zero_()
    return torch.exp(-dist2 / (2.0 * sigma**2))


def matrix_renyi_entropy(gram: torch.Tensor, alpha: float) -> float:
    """S_alpha of gram / trace(gram), nats."""
    eig = torch.linalg.eigvalsh(gram / torch.trace(gram)).clamp_(min=0.0)
    return float(torch.log((eig**alpha).sum()) / (1.0 - alpha))


def renyi_value(x: torch.Tensor, y: torch.Tensor, alpha: float, sigma_x: float, sigma_y: float) -> float:
    """I_alpha in nats. Float inputs get a Gaussian kernel of the given width (std units), int64 labels a
    delta kernel."""

    def gram(v: torch.Tensor, sigma: float) -> torch.Tensor:
        if v.dtype == torch.int64:
            return (v[:, None] == v[None, :]).to(torch.float64)
        return gaussian_gram(standardize(v.to(torch.float64)), sigma)

    kx, ky = gram(x, sigma_x), gram(y, sigma_y)
    value = matrix_renyi_entropy(kx, alpha) + matrix_renyi_entropy(ky, alpha) - matrix_renyi_entropy(kx * ky, alpha)
    return max(0.0, value)  # rounding only: I_alpha >= 0 by subadditivity


@register(
    "renyi",
    kind="non_shannon",
    y_type="any",
    description=(
        "Matrix-based Renyi alpha-order MI (Giraldo, Rao & Principe 2014) from Gaussian Gram matrices on standardised "
        "data (width by Silverman's rule unless sigma_x/sigma_y given; delta kernel for labels). Between 0 and log n, "
        "depends on the kernel width (narrow kernels put independent data on a positive floor), not Shannon MI. "
        "O(n^3): n <= max_n. stderr/CI by disjoint subsampling."
    ),
    summary="not Shannon MI: matrix-based Renyi alpha-order MI from Gram matrices (depends on the kernel width)",
)
def renyi(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 1.01,
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    max_n: int = 4000,
    num_subsets: int = 10,
    seed: int = 0,
) -> MIResult:
    """alpha: Renyi order (> 0, != 1); sigma_x, sigma_y: kernel widths in std units (None: Silverman);
    max_n: largest n accepted (each n x n eigendecomposition is O(n^3))."""
    if not (alpha > 0 and alpha != 1 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive number other than 1, got {alpha!r}")
    for name, s in (("sigma_x", sigma_x), ("sigma_y", sigma_y)):
        if s is not None and not (s > 0 and math.isfinite(s)):
            raise ValueError(f"{name} must be a positive number or None (Silverman's rule), got {s!r}")
    n = x.shape[0]
    if n > max_n:
        raise ValueError(
            f"renyi needs n x n eigendecompositions: n={n} > max_n={max_n}; pass a subsample or raise max_n"
        )

    # One kernel for the full data and its subsamples: widths fixed from the full n.
    width_x = sigma_x if sigma_x is not None else silverman_width(n, x.shape[1])
    width_y = sigma_y if sigma_y is not None else silverman_width(n, 1 if y.dim() == 1 else y.shape[1])

    def value_of(rows: torch.Tensor | None) -> float:
        if rows is None:
            return renyi_value(x, y, alpha, width_x, width_y)
        rows = rows.to(x.device)
        return renyi_value(x[rows], y[rows], alpha, width_x, width_y)

    params = {"alpha": alpha, "sigma_x": width_x, "sigma_y": None if y.dtype == torch.int64 else width_y,
              "seed": seed}
    return subsample_result(value_of, n, kind="non_shannon", method="renyi", params=params, seed=seed,
                            num_subsets=num_subsets)
