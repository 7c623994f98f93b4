"""Mutual-information estimators behind one entry point.

    from mi_analysis.estimators import estimate, available
    r = estimate(x, y, method="ksg", k=5)    # r.value nats, r.stderr, r.ci, r.kind
    r = estimate(x, labels, method="mixed_knn", permutation_test=200)   # r.p_value

Every method says what its number is (`MIResult.kind`: estimate, lower_bound, upper_bound, proxy,
non_shannon) and how sure it is (stderr and a 95% CI). `available()` lists the method names;
`get(name).description` says what each one measures, `get(name).summary` the same in one line; the
entry also declares what a per-layer analysis needs (EstimatorSpec, AnalysisParam).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

from mi_analysis._util.threads import AUTO as AUTO_THREADS, intra_op_threads

from .interface import KINDS, AnalysisParam, EstimatorSpec, MIResult
from .registry import available, get, register
from .uncertainty import permutation_pvalue
from .validation import as_labels, as_samples, check_same_n, is_labels

# Importing the family modules registers their estimators.
from . import auto, binning, gaussian, kde, ksg, mixed, neural, probe, renyi  # noqa: F401

__all__ = ["estimate", "available", "get", "register", "MIResult", "EstimatorSpec", "AnalysisParam", "KINDS"]


def _accepted_params(spec: EstimatorSpec) -> tuple[set[str], bool]:
    """(keyword names fn accepts after x and y, whether it takes **kwargs)."""
    sig = inspect.signature(spec.fn)
    names = list(sig.parameters.values())[2:]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in names)
    return {p.name for p in names if p.kind is not inspect.Parameter.VAR_KEYWORD}, var_kw


def _prepare_y(y: Any, y_type: str):
    """y validated for an estimator taking `y_type` ("labels", "continuous" or "any")."""
    if y_type == "labels" or (y_type == "any" and is_labels(y)):
        return as_labels(y)
    return as_samples(y, "y")


def _with_threads(fn):
    """Adds the keyword `threads` ("auto" or an int >= 1): the CPU intra-op threads of the call,
    set for the call only (mi_analysis._util.threads documents the policy)."""
    @functools.wraps(fn)
    def call(*args: Any, threads: int | str = AUTO_THREADS, **kwargs: Any):
        with intra_op_threads(threads):
            return fn(*args, **kwargs)
    return call


@_with_threads
def estimate(
    x: Any, y: Any, method: str = "auto", *, permutation_test: int = 0, seed: int = 0, **params: Any
) -> MIResult:
    """Estimate I(x; y) in nats with the registered `method`.

    x: float array (n, dx) or (n,); numpy, torch (any device; computation stays there) or list.
    y: float array (n, dy) / (n,), or integer class labels (n,) for methods that take labels.
    method: a name from `available()`; "auto" picks one and the result's `method` says which.
    permutation_test: number of permutations of y for a p-value of independence (0: none). Each
        permutation re-runs the estimator, so this multiplies the cost by (1 + permutation_test).
    seed: seeds every random choice (jitter, subsamples, training, permutations).
    threads: CPU intra-op threads of the call: "auto" (default: the cores that other processes
        leave free now, at least 1, at most torch.get_num_threads()) or an int >= 1; set for the
        call only, so a neighbour's load slows it by about its fair share, not by waiting threads.
    params: method parameters (e.g. k=5); unknown names raise TypeError listing the accepted ones.
    """
    spec = get(method)
    accepted, var_kw = _accepted_params(spec)
    # seed is estimate()'s own keyword, so it never arrives inside params
    unknown = sorted(set(params) - accepted) if not var_kw else []
    if unknown:
        valid = sorted(accepted - {"seed"})
        raise TypeError(f"method {method!r} got unknown parameter(s) {unknown}; accepted: {valid}")
    if isinstance(permutation_test, bool) or not isinstance(permutation_test, int) or permutation_test < 0:
        raise ValueError(
            f"permutation_test must be a non-negative int (number of permutations), got {permutation_test!r}"
        )

    x_t = as_samples(x, "x")
    y_t = _prepare_y(y, spec.y_type).to(x_t.device)
    n = check_same_n(x_t, y_t)
    call_params = {**params, **({"seed": seed} if "seed" in accepted or var_kw else {})}

    result = spec.fn(x_t, y_t, **call_params)
    if not isinstance(result, MIResult):
        raise TypeError(f"estimator {method!r} returned {type(result).__name__}, expected MIResult")
    if permutation_test:
        def permuted_value(perm):
            return spec.fn(x_t, y_t[perm.to(y_t.device)], **call_params).value

        # offset: a random stream apart from the ones the estimator draws from `seed`
        p = permutation_pvalue(permuted_value, n, result.value, permutation_test, seed + 7919)
        result = dataclasses.replace(result, p_value=p, params={**result.params, "permutation_test": permutation_test})
    return result
