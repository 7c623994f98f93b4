"""Holm's step-down adjustment of p-values for multiple comparisons (Holm 1979).

With the m p-values sorted, p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of
min(1, (m - j + 1) p_(j)). Rejecting where the adjusted p < alpha keeps the family-wise error rate
(the chance of any false rejection) at most alpha, under any dependence between the tests.
"""

from __future__ import annotations

import math
from typing import Sequence


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order; NaN stays NaN and does not count in m."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(finite)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
