"""The model's settings: one frozen record, checked when it is made, that the builder takes.

Each field is one model option with its one default. Its metadata holds the help text and the
valid choices that the command line shows (`mi-analysis train/describe --help`) and the check
that ModelConfig and LocalNet.from_units both run. Settings that come from the data set (classes,
channels, image size, input mean/std, the data set's name) are not here: they go to
models.builder.build_model beside the record.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

from mi_analysis._util.checks import (boolean, int_at_least, is_iterable, is_number, one_of,
                                     positive_number)

from .archs import ARCH_HELP, check_arch
from .context import CONTEXT_MODES
from .heads import AUX_HEADS
from .losses import LOCAL_LOSSES
from .rules import LOCAL_RULES
from .splits import SPLITS

E2E = "E2E"  # the mode of a one-module (end-to-end) run


def run_mode(num_modules: int, context: str) -> str:
    """What a run is called in tables and plots: "E2E" for one module (end-to-end training,
    whose context is always R0), else its context mode: "R0" (plain greedy local learning) or a
    context supply mode ("E", "R1E", ...; ContSup, arXiv 2312.07636)."""
    return E2E if num_modules == 1 else context


def run_label(num_modules: int, context: str, rule: str = "gll") -> str:
    """run_mode, followed by "@<rule>" for a local-learning rule other than gll ("R0@auglocal",
    "E@man"): what tables, comparisons and figures tell runs apart by."""
    return label_of(run_mode(num_modules, context), rule)


def label_of(mode: str, rule: str | None) -> str:
    """The run label of a mode ("E2E", "R0", "E", ...) and a rule: "@<rule>" appended for a rule other
    than gll. E2E has no local heads, so no rule; an empty rule (tables before rules were recorded)
    is gll."""
    return mode if mode == E2E or rule in (None, "", "gll") else f"{mode}@{rule}"


def _lambdas(value: Any, what: str) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    values = tuple(value) if is_iterable(value) else ()
    if len(values) != 4 or not all(is_number(v) and math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"{what} must be 4 non-negative numbers (lambda_x1, lambda_y1, "
                         f"lambda_x2, lambda_y2), got {value!r}")
    return tuple(float(v) for v in values)


def _choice(valid: Sequence[str]) -> Callable[[Any, str], Any]:
    return lambda value, what: one_of(value, what, valid)


def _option(default: Any, help: str, check: Callable[[Any, str], Any], choices: Sequence[str] = ()):
    """A field: its default, help text, valid choices (shown in help) and check(value, name),
    which returns the value to keep (e.g. lambdas as a tuple of floats) or raises."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check, "choices": tuple(choices)})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str = _option("resnet32", ARCH_HELP, check_arch)  # ARCH_HELP names the choices
    num_modules: int = _option(1, "number of gradient-isolated modules K (1 = E2E)",
                               lambda value, what: int_at_least(value, what, 1))
    context: str = _option("R0", "context supply mode (R0 = plain greedy local learning)",
                           _choice(CONTEXT_MODES), CONTEXT_MODES)
    local_loss: str = _option("cross_entropy", "loss of the auxiliary heads (contrast = SupCon)",
                              _choice(LOCAL_LOSSES), LOCAL_LOSSES)
    aux_head: str = _option("1c2f", "auxiliary head: <convs>c<fully connected layers>f",
                            _choice(AUX_HEADS), AUX_HEADS)
    local_rule: str = _option("gll", "how local heads are built: gll (the aux_head), auglocal (AugLocal: copies "
                              "of later units + classifier), man (momentum auxiliary network)",
                              _choice(LOCAL_RULES), LOCAL_RULES)
    split: str = _option("equal", "where to cut: the paper's tables, else equal units or balanced "
                         "activation sizes", _choice(SPLITS), SPLITS)
    reconstruct: bool = _option(False, "add InfoPro's decoder (reconstruction) term to the local losses",
                                boolean)
    aux_widen: float = _option(1.0, "width factor of the auxiliary heads, decoders and context encoders",
                               positive_number)
    aux_feature_dim: int = _option(128, "hidden width of the heads' fully connected layers (the "
                                   "embedding size of contrast heads)",
                                   lambda value, what: int_at_least(value, what, 1))
    lambdas: tuple[float, float, float, float] | None = _option(
        None, "(lambda_x1, lambda_y1, lambda_x2, lambda_y2) weights of the reconstruction and local "
        "losses, interpolated over the modules; None = the paper's values", _lambdas)
    recompute_context: bool = _option(False, "recompute context encoders in backward (less memory, "
                                      "identical gradients)", boolean)
    lean_context_backward: bool = _option(True, "memory-lean backward of the context encoders "
                                          "(models/lean_encoder.py): same gradients up to float rounding, a "
                                          "fraction of the memory; off: plain autograd, faster on some CPUs",
                                          boolean)

    def __post_init__(self) -> None:
        # each field alone; combinations (K against the depth, the context mode against K) are
        # checked when the net is built, so a config may pass through such a state in an override
        for name, value in check_options(**dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    @property
    def mode(self) -> str:
        """run_mode of this model: "E2E", "R0", "E", ..."""
        return run_mode(self.num_modules, self.context)

    @property
    def label(self) -> str:
        """run_label of this model: the mode, with "@<rule>" for a rule other than gll."""
        return run_label(self.num_modules, self.context, self.local_rule)


OPTIONS = {field.name: field for field in dataclasses.fields(ModelConfig)}


def check_options(**values: Any) -> dict[str, Any]:
    """Each given ModelConfig option checked by its field's check (errors name the option);
    returns the values to keep."""
    return {name: OPTIONS[name].metadata["check"](value, name) for name, value in values.items()}
