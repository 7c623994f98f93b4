"""Legacy information-plane binning (Shwartz-Ziv & Tishby 2017): plug-in MI of discretised activations.

Every coordinate of x (n, d) is put into a bin: `bins` equal-width bins spanning the global
[min, max] of x (all units share one grid, as in the paper's 30 bins over the tanh range), or a
fixed `bin_width` anchored at 0. The discrete variable T is the tuple of bin indices of a row.
y is discrete too: integer labels as given; a continuous y by its distinct rows (so distinct
inputs make Y the sample index and I(T; X) = H(T)) or, with bin_y=True, binned like x.
The value is the plug-in I(T; Y) = H(T) + H(Y) - H(T, Y) from empirical frequencies.

Why "proxy": for a deterministic network and distinct inputs the true I(T; X) is infinite (or log n
on n samples); the binned number is whatever the bin width lets through: log n for fine bins, 0
for one bin. It tracks compression of the activations at a chosen resolution, not Shannon MI.
"""

from __future__ import annotations

import math

import torch

from .interface import MIResult
from .registry import register
from .uncertainty import subsample_result


def bin_indices(x: torch.Tensor, bins: int | None, bin_width: float | None) -> torch.Tensor:
    """int64 bin index per coordinate (n, d): fixed bin_width anchored at 0, or `bins` over x's global range."""
    if bin_width is not None:
        return torch.floor(x / bin_width).to(torch.int64)
    low, high = float(x.min()), float(x.max())
    if high == low:
        return torch.zeros_like(x, dtype=torch.int64)
    return torch.floor((x - low) / (high - low) * bins).clamp_(max=bins - 1).to(torch.int64)


def row_codes(a: torch.Tensor) -> torch.Tensor:
    """int64 code (n,) that is equal for equal rows of a (n, d) or equal values of a (n,)."""
    return torch.unique(a, dim=0, return_inverse=True)[1].reshape(-1)


def plugin_entropy(codes: torch.Tensor) -> float:
    """Plug-in entropy in nats of a discrete variable given as codes (n,)."""
    p = torch.unique(codes, return_counts=True)[1].to(torch.float64) / codes.numel()
    return float(-(p * p.log()).sum())


def plugin_mi(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plug-in I(A; B) = H(A) + H(B) - H(A, B) in nats for codes a, b (n,)."""
    joint = row_codes(torch.stack([a, b], dim=1))
    return plugin_entropy(a) + plugin_entropy(b) - plugin_entropy(joint)


@register(
    "binning",
    kind="proxy",
    y_type="any",
    description=(
        "Shwartz-Ziv & Tishby information-plane binning: plug-in I(T;Y) of x discretised into bins (equal-width over "
        "x's range, or a fixed bin_width). y labels as given; continuous y by distinct rows (I(T;X) = H(T), X the "
        "sample index) or binned with bin_y=True. A proxy: the value is set by the bin width (fine bins give log n, "
        "one bin 0), and the plug-in is biased up by about (#cells)/(2n). stderr/CI by disjoint subsampling."
    ),
    summary="a proxy: plug-in MI of binned activations (information-plane binning; set by the bin width)",
)
def binning(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bins: int = 30,
    bin_width: float | None = None,
    bin_y: bool = False,
    num_subsets: int = 10,
    seed: int = 0,
) -> MIResult:
    """bins: equal-width bins over x's global range (ignored when bin_width is set);
    bin_width: fixed width in the units of x; bin_y: bin a continuous y the same way instead of using its rows."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if bin_width is not None and not (bin_width > 0 and math.isfinite(bin_width)):
        raise ValueError(f"bin_width must be a positive finite number or None, got {bin_width!r}")
    t_codes = row_codes(bin_indices(x, bins, bin_width))
    if y.dtype == torch.int64 and y.dim() == 1:
        y_codes = row_codes(y)
    else:
        y_codes = row_codes(bin_indices(y, bins, bin_width) if bin_y else y)

    def value_of(rows: torch.Tensor | None) -> float:
        if rows is None:
            return plugin_mi(t_codes, y_codes)
        rows = rows.to(t_codes.device)
        return plugin_mi(t_codes[rows], y_codes[rows])

    params = {"bins": None if bin_width is not None else bins, "bin_width": bin_width, "bin_y": bin_y, "seed": seed}
    notes = (f"{int(t_codes.max()) + 1} occupied cells of T for n={x.shape[0]} samples",)
    return subsample_result(value_of, x.shape[0], kind="proxy", method="binning", params=params, seed=seed,
                            num_subsets=num_subsets, notes=notes)
