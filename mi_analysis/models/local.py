"""LocalNet: any list of units, cut into K gradient-isolated modules, with local heads and context.

Module k runs units cuts[k-1]+1 .. cuts[k]. Modules 0..K-2 end in an auxiliary head
(and optionally a decoder) trained by a local loss; module K-1 ends in the network's
classifier trained by cross-entropy. The input of module k+1 is the detached output
of module k plus the context encoders' sum (context.py). K = 1 is end-to-end training,
through the same code.

Heads, decoders and context encoders get the papers' init (resnet.init_conv_bn_), each from its
own generator seeded by (seed, part name) (init.py: common random numbers across context modes);
the units and the classifier keep whatever init they came with.

Everything that depends on the configuration (unit slices per module, encoders per cut,
loss weights per module, taps) is fixed in __init__; a step only runs it.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import re
import warnings
from collections.abc import Mapping
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from mi_analysis._util.checks import int_at_least, is_iterable, is_number

from .losses import cross_entropy, supervised_contrastive

from . import heads, rules, splits
from .config import check_options, run_mode
from .context import ContextSupply
from .resnet import available_archs
from .init import DEFAULT_SEED, global_generator_kept, init_parts_
from .taps import Tap

USER_CUTS = "user cuts"  # split_rule of a LocalNet whose cuts were given as unit indices

_MODULE_INPUT = re.compile(r"m\d+\.in")


class LocalNet(nn.Module):
    """K-module network for end-to-end (K=1), greedy local (R0) and context-supply training.

    Build with `mi_analysis.models.build` (any arch string) or `LocalNet.from_units` (any units);
    build() also passes `arch` (the arch string), `split_rule` (how its cuts were chosen) and, for
    architectures from outside the package, `unit_rule` (how the units were made) and `adapted`
    (what was changed in the original model for the data), which describe() reports.
    """

    def __init__(self, units, cuts: Sequence[int] | int, head: nn.Module, *, input_shape: Sequence[int], num_classes: int,
                 context: str = "R0", local_loss: str = "cross_entropy", aux_head: str = "1c2f",
                 local_rule: str = "gll",
                 reconstruct: bool = False, aux_widen: float = 1, aux_feature_dim: int = 128,
                 lambdas: Sequence[float] | None = None, input_mean=None, input_std=None,
                 recompute_context: bool = False, lean_context_backward: bool = True,
                 split: str = "equal", dataset: str = "cifar10",
                 arch: str | None = None, split_rule: str | None = None, unit_rule: str | None = None,
                 adapted: Sequence[str] = (), seed: int = DEFAULT_SEED):
        super().__init__()
        seed = int_at_least(seed, "seed", 0)
        names, unit_list = _named_units(units)
        if not isinstance(head, nn.Module):
            raise TypeError(f"head must be an nn.Module mapping the last unit's output to logits, "
                            f"got {type(head).__name__}")
        input_shape = _check_shape(input_shape)
        num_classes = int_at_least(num_classes, "num_classes", 2)
        # the options a ModelConfig holds, checked by its fields' checks
        options = check_options(local_loss=local_loss, aux_head=aux_head, local_rule=local_rule,
                                reconstruct=reconstruct,
                                recompute_context=recompute_context,
                                lean_context_backward=lean_context_backward, aux_widen=aux_widen, split=split,
                                aux_feature_dim=aux_feature_dim, lambdas=lambdas)
        aux_feature_dim, lambdas = options["aux_feature_dim"], options["lambdas"]
        _check_data_settings(dataset=dataset, input_mean=input_mean, input_std=input_std)
        shapes = _unit_output_shapes(names, unit_list, head, input_shape, num_classes)
        if isinstance(cuts, numbers.Integral) and not isinstance(cuts, bool):
            cuts, split_rule = splits.rule_cuts([math.prod(s) for s in shapes], int(cuts), split)
        else:
            cuts, split_rule = _check_cuts(cuts, len(unit_list)), split_rule or USER_CUTS
        num_modules = len(cuts) + 1
        endpoints, self._lambdas_source = _resolve_lambdas(reconstruct, lambdas, arch, num_modules, dataset)

        self.arch = arch
        self.num_modules = num_modules
        self.cuts = cuts
        self.units = nn.ModuleList(unit_list)
        self.unit_names = names
        self.classifier = head
        ends = cuts + (len(unit_list) - 1,)
        self._unit_ranges = tuple(range(a, b + 1) for a, b in zip((0,) + tuple(c + 1 for c in cuts), ends))
        self.module_of_unit = tuple(k for k, r in enumerate(self._unit_ranges) for _ in r)
        cut_shapes = [shapes[c] for c in cuts]

        # local heads of modules 0..K-2 (the last module uses the classifier)
        out_features = num_classes if local_loss == "cross_entropy" else aux_feature_dim
        with global_generator_kept():  # the parts are initialised below, each from its own generator
            self.aux_heads = rules.local_heads(local_rule, units=unit_list, shapes=shapes, classifier=head,
                                               cuts=cuts, aux_head=aux_head,
                                               out_features=out_features, local_loss=local_loss, widen=aux_widen,
                                               feature_dim=aux_feature_dim)
        # (lambda_x, lambda_y) per local module; without decoder the aux loss alone
        self._lambdas = heads.module_lambdas(endpoints, num_modules) if reconstruct \
            else ((0.0, 1.0),) * len(cuts)
        # a decoder whose weight is 0 would take no part in training: not built
        self._decoder_keys = tuple(str(k) if lx != 0 else None for k, (lx, _) in enumerate(self._lambdas))
        with global_generator_kept():
            self.decoders = nn.ModuleDict({key: heads.Decoder(cut_shapes[k], input_shape, aux_widen)
                                           for k, key in enumerate(self._decoder_keys) if key})
            self.context = ContextSupply(context, input_shape, cut_shapes, widen=aux_widen,
                                         recompute=recompute_context, lean_backward=lean_context_backward)
        init_parts_(self._own_parts(), seed)
        if local_rule == "man":  # the momentum copies start as the units they follow
            self.follow_next_modules(momentum=0.0)
        if reconstruct:
            mean, std = _image_stats(input_mean, input_std, input_shape[0])
            self.register_buffer("image_mean", mean, persistent=False)
            self.register_buffer("image_std", std, persistent=False)

        self._final_loss = cross_entropy
        self._aux_loss = supervised_contrastive if local_loss == "contrast" else cross_entropy
        self._aux_has_classes = local_loss == "cross_entropy"
        self._taps = _taps(names, unit_list, self._unit_ranges, shapes)
        self._split_rule = split_rule
        self._unit_rule, self._adapted = unit_rule, tuple(adapted)
        self._input_shape = input_shape
        self._num_classes = num_classes
        self._options = {"context": context, "local_loss": local_loss, "aux_head": aux_head, "local_rule": local_rule,
                         "reconstruct": reconstruct, "aux_widen": aux_widen,
                         "aux_feature_dim": aux_feature_dim, "lambdas": _plain(lambdas),
                         "input_mean": _plain(input_mean), "input_std": _plain(input_std),
                         "recompute_context": recompute_context, "lean_context_backward": lean_context_backward,
                         "split": split, "dataset": dataset}

    def _own_parts(self) -> dict[str, nn.Module]:
        """The parts this class builds, by the name their generator is derived from (a part's
        state_dict prefix): aux heads, decoders, context encoders."""
        return {f"{group}.{key}": part
                for group, parts in (("aux_heads", self.aux_heads), ("decoders", self.decoders),
                                     ("context.encoders", self.context.encoders))
                for key, part in parts.named_children()}

    @classmethod
    def from_units(cls, units, cuts, head: nn.Module, *, input_shape: Sequence[int], num_classes: int,
                   context: str = "R0", split: str = "equal", **options) -> "LocalNet":
        """A LocalNet from any units.

        units: a sequence of nn.Module (named "u0", "u1", ...) or a mapping name -> nn.Module,
            applied in order. head: maps the last unit's output to logits (B, num_classes).
        cuts: unit indices after which a module ends (increasing), or an int K to cut into K
            modules by the `split` rule ("equal" units, or "balanced" activation sizes).
        input_shape: one sample's shape, (C, H, W) for images or (F,) for vectors.
        options: the keywords of build (local_loss, aux_head, reconstruct, aux_widen,
            aux_feature_dim, lambdas, input_mean, input_std, recompute_context,
            lean_context_backward, dataset, seed).
        seed: the heads, decoders and context encoders are initialised from (seed, part name)
            (models/init.py); the units and head keep the init they came with.
        Shapes at the cuts are found by one forward pass of a zero sample without gradient.
        `config` of such a net cannot rebuild it without the units (its "arch" is None).
        """
        return cls(units, cuts, head, input_shape=input_shape, num_classes=num_classes,
                   context=context, split=split, **options)

    # ---------------------------------------------------------------- running
    # One module at a time: the steps that _walk and training_step chain, public so that a
    # caller (e.g. mi_analysis.training.distributed, one rank per group of modules) can run a subset.
    def context_sources(self, x: Tensor) -> dict[int, Tensor]:
        """The context sources of a batch: the detached module inputs that later cuts read,
        starting with the image x (module 0's input) when a cut reads it. Pass the dict to
        next_input, which adds and drops entries as the cuts go by."""
        return self.context.start(x)

    def module_forward(self, k: int, inp: Tensor, autocast_dtype: torch.dtype | None = None) -> Tensor:
        """Output of module k (its units in order) for its input `inp` (the image for k = 0)."""
        with _autocast(inp, autocast_dtype):
            h = inp
            for i in self._unit_ranges[k]:
                h = self.units[i](h)
        return h

    def next_input(self, k: int, h: Tensor, sources: dict[int, Tensor],
                   autocast_dtype: torch.dtype | None = None) -> Tensor:
        """Input of module k+1: detach(h) (module k's output) plus the context encoders of cut k
        applied to `sources` (updated in place). Gradients reach only those encoders."""
        with _autocast(h, autocast_dtype):
            return self.context(k, h.detach(), sources)

    def module_loss(self, k: int, h: Tensor, y: Tensor, target: Tensor | None = None,
                    autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, accuracy, head output) of module k from its output h: the local loss and
        auxiliary head for k < K-1 (accuracy NaN for contrast heads), the classifier's
        cross-entropy and logits for the last module. target: reconstruction_target(x) when
        the net has decoders."""
        with _autocast(h, autocast_dtype):
            if k == self.num_modules - 1:
                logits = self.classifier(h)
                return self._final_loss(logits, y), _accuracy(logits, y), logits
            return self._local_loss(k, h, y, target)

    def module_parts(self, k: int) -> tuple[nn.Module, ...]:
        """The parts trained by module k's loss: its units, its auxiliary head and decoder (or
        the classifier for the last module) and the context encoders of cut k-1 that feed it."""
        parts = [self.units[i] for i in self._unit_ranges[k]]
        if k == self.num_modules - 1:
            parts.append(self.classifier)
        else:
            parts.append(self.aux_heads[k])
            if self._decoder_keys[k] is not None:
                parts.append(self.decoders[self._decoder_keys[k]])
        if k > 0:
            parts.extend(self.context.encoders_at(k - 1))
        return tuple(parts)

    def reconstruction_target(self, x: Tensor) -> Tensor | None:
        """The decoders' target for a batch x (None when the net has no decoder)."""
        return self._reconstruction_target(x) if self.decoders else None

    def _walk(self, x: Tensor, autocast_dtype: torch.dtype | None = None) -> Iterator[tuple[int, Tensor]]:
        """Yield (k, output of module k) in order. The caller may back-propagate module k's
        loss before resuming; the next module then starts from the detached output."""
        sources = self.context_sources(x)
        last = self.num_modules - 1
        inp = x
        for k in range(self.num_modules):
            h = self.module_forward(k, inp, autocast_dtype)
            yield k, h
            if k < last:
                inp = self.next_input(k, h, sources, autocast_dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes), context paths included."""
        for _, h in self._walk(x):
            pass
        return self.classifier(h)

    def training_step(self, x: Tensor, y: Tensor, *, autocast_dtype: torch.dtype | None = None) -> dict:
        """Forward all modules, back-propagating each module's loss right after its forward.

        Gradients accumulate in .grad (the caller owns zero_grad and step). Returns detached
        tensors: "loss" (K,) float32, "accuracy" (K,) float32 (NaN for contrast heads),
        "logits" (B, num_classes) float32.
        """
        if self._options["local_rule"] == "man":
            self.follow_next_modules()
        target = self.reconstruction_target(x)
        losses, accuracies = [], []
        for k, h in self._walk(x, autocast_dtype):
            loss, accuracy, logits = self.module_loss(k, h, y, target, autocast_dtype)
            if loss.requires_grad:
                loss.backward()
            losses.append(loss.detach().float())
            accuracies.append(accuracy)
        return {"loss": torch.stack(losses), "accuracy": torch.stack(accuracies),
                "logits": logits.detach().float()}

    def follow_next_modules(self, momentum: float = rules.MAN_MOMENTUM) -> None:
        """MAN: move each head's momentum copy towards the current weights of the unit after its cut
        (rules.py). training_step calls it first, so the copies follow the previous optimiser step."""
        for cut, head in zip(self.cuts, self.aux_heads):
            head.follow(self.units[cut + 1], momentum)

    def _local_loss(self, k: int, h: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(lambda_y * aux loss [+ lambda_x * reconstruction BCE], head accuracy, head output) of module k."""
        features = self.aux_heads[k](h)
        aux = self._aux_loss(features, y)
        if self._aux_has_classes:
            accuracy = _accuracy(features, y)
        else:  # contrast heads output embeddings, not class scores
            accuracy = torch.full((), float("nan"), device=h.device)
        lambda_x, lambda_y = self._lambdas[k]
        loss = lambda_y * aux
        if self._decoder_keys[k] is not None:
            loss = loss + lambda_x * self.decoders[self._decoder_keys[k]].loss(h, target)
        return loss, accuracy, features

    def _reconstruction_target(self, x: Tensor) -> Tensor:
        """The un-normalised image in [0, 1] (clamped: augmentation may step outside)."""
        return (x.detach().float() * self.image_std + self.image_mean).clamp(0.0, 1.0)

    # ---------------------------------------------------------------- inspection
    @property
    def mode(self) -> str:
        """run_mode of this net: "E2E" (one module), else its context mode ("R0", "E", ...)."""
        return run_mode(self.num_modules, self._options["context"])

    @property
    def local_rule(self) -> str:
        """How the local heads are built: "gll", "auglocal" or "man" (rules.py)."""
        return self._options["local_rule"]

    @property
    def taps(self) -> tuple[str, ...]:
        """Names of the places where activations can be read, in forward order."""
        return tuple(self._taps)

    def tap(self, name: str) -> Tap:
        if name not in self._taps:
            raise KeyError(f"tap {name!r} is unknown; valid names: {self.taps}")
        return self._taps[name]

    @property
    def probe_points(self) -> tuple[str, ...]:
        """Deprecated name of `taps`."""
        warnings.warn("LocalNet.probe_points is deprecated; use LocalNet.taps", DeprecationWarning, stacklevel=2)
        return self.taps

    def probe_point(self, name: str) -> Tap:
        """Deprecated name of `tap`."""
        warnings.warn("LocalNet.probe_point is deprecated; use LocalNet.tap", DeprecationWarning, stacklevel=2)
        return self.tap(name)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per group; MAN's momentum copies (frozen, rules.py) are counted apart from the
        heads' trained parameters, under "momentum_copies", present only for local_rule="man"."""
        def count(*parts, trained=(True, False)):
            return sum(p.numel() for part in parts for p in part.parameters() if p.requires_grad in trained)
        counts = {
            "backbone": count(self.units, self.classifier),
            "local_heads": count(self.aux_heads, trained=(True,)),
            "context": count(self.context),
            "decoders": count(self.decoders),
            "total": count(self),
        }
        if self.local_rule == "man":
            counts["momentum_copies"] = count(self.aux_heads, trained=(False,))
        return counts

    def describe(self) -> dict:
        """JSON-serialisable summary: configuration, cuts, units per module, parameter counts."""
        if self.arch in available_archs() and self._split_rule != USER_CUTS:
            per_stage = (len(self.units) - 1) // 3
            cut_labels = ["({},{})".format(*splits.stage_block(c, per_stage)) for c in self.cuts]
        else:
            cut_labels = [self.unit_names[c] for c in self.cuts]
        options = self._options
        return {
            "arch": self.arch or "custom",
            "num_modules": self.num_modules,
            "context": options["context"],
            "split": options["split"],
            "split_rule": self._split_rule,
            "unit_rule": self._unit_rule,
            "adapted": list(self._adapted),
            "dataset": options["dataset"],
            "cuts": list(self.cuts),
            "cut_labels": cut_labels,
            "unit_names": [[self.unit_names[i] for i in r] for r in self._unit_ranges],
            "input_shape": list(self._input_shape),
            "num_classes": self._num_classes,
            "local_loss": options["local_loss"],
            "aux_head": options["aux_head"],
            "local_rule": options["local_rule"],
            "aux_widen": options["aux_widen"],
            "aux_feature_dim": options["aux_feature_dim"],
            "reconstruct": options["reconstruct"],
            "lambdas": [list(w) for w in self._lambdas],  # (lambda_x, lambda_y) per local module
            "lambdas_source": self._lambdas_source,
            "decoders_at": [int(k) for k in self.decoders],
            "recompute_context": options["recompute_context"],
            "lean_context_backward": options["lean_context_backward"],
            "parameter_counts": self.parameter_counts(),
        }

    @property
    def config(self) -> dict:
        """The arguments that make this net again: build(**config) when config["arch"] is set,
        else LocalNet.from_units(units, head=..., **config) with the same units."""
        if self.arch is not None:
            return {"arch": self.arch, "num_modules": self.num_modules, "num_classes": self._num_classes,
                    "in_channels": self._input_shape[0], "image_size": self._input_shape[1],
                    **self._options}
        return {"arch": None, "cuts": list(self.cuts), "input_shape": list(self._input_shape),
                "num_classes": self._num_classes, **self._options}


# -------------------------------------------------------------------- helpers
def _autocast(x: Tensor, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype=dtype)


def _accuracy(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.argmax(1) == y).float().mean()


def _named_units(units) -> tuple[tuple[str, ...], list[nn.Module]]:
    if isinstance(units, (Mapping, nn.ModuleDict)):
        names, modules = tuple(units.keys()), list(units.values())
    elif isinstance(units, (Sequence, nn.ModuleList, nn.Sequential)):
        modules = list(units)
        names = tuple(f"u{i}" for i in range(len(modules)))
    else:
        raise TypeError(f"units must be a sequence of nn.Module or a mapping name -> nn.Module, "
                        f"got {type(units).__name__}")
    if not modules:
        raise ValueError("units is empty; a network needs at least one unit")
    for name, module in zip(names, modules):
        if not isinstance(module, nn.Module):
            raise TypeError(f"unit {name!r} must be an nn.Module, got {type(module).__name__}")
        if not isinstance(name, str) or _MODULE_INPUT.fullmatch(name):
            raise ValueError(f"unit name {name!r} must be a str other than 'm<k>.in' "
                             f"(reserved for module inputs)")
    if len(set(names)) != len(names):
        raise ValueError(f"unit names must be unique, got {names}")
    return names, modules


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else None
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be one sample's shape, e.g. (3, 32, 32) or (784,), "
                         f"got {input_shape!r}")
    return shape


def _check_data_settings(*, dataset, input_mean, input_std) -> None:
    """The settings that come from the data set (not ModelConfig options)."""
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a str (a hint for the paper tables), got {dataset!r}")
    for name, value in (("input_mean", input_mean), ("input_std", input_std)):
        if not (value is None or is_number(value)
                or (is_iterable(value) and all(is_number(v) for v in value))):
            raise ValueError(f"{name} must be None, a number or per-channel numbers, got {value!r}")


def _check_cuts(cuts, num_units: int) -> tuple[int, ...]:
    if isinstance(cuts, (str, bytes)) or not isinstance(cuts, Sequence):
        raise TypeError(f"cuts must be a sequence of unit indices or an int number of modules, "
                        f"got {cuts!r}")
    cuts = tuple(cuts)
    ok = all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cuts)
    if not ok or any(not 0 <= c < num_units - 1 for c in cuts) or list(cuts) != sorted(set(cuts)):
        raise ValueError(f"cuts must be strictly increasing unit indices in 0..{num_units - 2} "
                         f"(a module ends after each; the last unit ends the network), got {cuts}")
    return tuple(int(c) for c in cuts)


def _resolve_lambdas(reconstruct, lambdas, arch, num_modules, dataset):
    """(lambda endpoints, where they came from); endpoints only matter with reconstruct.
    lambdas: None or 4 floats, as ModelConfig's check leaves them."""
    if not reconstruct:
        return None, "none (no decoder)"
    if lambdas is not None:
        return lambdas, "user"
    row = heads.paper_lambdas(arch, num_modules, dataset)
    return (row, "paper table") if row is not None else (heads.DEFAULT_LAMBDAS, "default")


def _image_stats(mean, std, channels: int) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std as (C, 1, 1) tensors; default 0 and 1 (x already in [0, 1])."""
    def per_channel(name, value, default, positive):
        values = [default] * channels if value is None else (
            [value] * channels if is_number(value) else list(value))
        if len(values) != channels or not all(is_number(v) and math.isfinite(v)
                                              and (v > 0 or not positive) for v in values):
            raise ValueError(f"{name} must be a number or {channels} per-channel numbers"
                             f"{' > 0' if positive else ''}, got {value!r}")
        return torch.tensor([float(v) for v in values], dtype=torch.float32).view(channels, 1, 1)
    return per_channel("input_mean", mean, 0.0, False), per_channel("input_std", std, 1.0, True)


def _plain(value):
    """Numbers and sequences of numbers (numpy included) as Python floats and lists, for YAML."""
    if value is None or isinstance(value, (bool, str)):
        return value
    return float(value) if is_number(value) else [float(v) for v in value]


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module):
    flags = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, training in flags:
            m.training = training


def _unit_output_shapes(names: Sequence[str], units: list[nn.Module], head: nn.Module,
                        input_shape: tuple[int, ...], num_classes: int) -> list[tuple[int, ...]]:
    """Per-sample output shape of every unit, from one eval-mode forward of a zero sample."""
    reference = next((t for m in (*units, head) for t in (*m.parameters(), *m.buffers())
                      if t.is_floating_point()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    h = torch.zeros((1, *input_shape), device=device, dtype=dtype)
    shapes = []
    with torch.no_grad(), _eval_mode(*units, head):
        for name, unit in zip(names, units):
            h = unit(h)
            if not isinstance(h, Tensor):
                raise TypeError(f"unit {name!r} must return one tensor, got {type(h).__name__}")
            shapes.append(tuple(h.shape[1:]))
        logits = head(h)
    if tuple(logits.shape) != (1, num_classes):
        raise ValueError(f"head must map the last unit's output to (batch, num_classes) = "
                         f"(1, {num_classes}) logits, got shape {tuple(logits.shape)}")
    return shapes


def _taps(names, units, unit_ranges, shapes) -> dict[str, Tap]:
    taps: list[Tap] = []
    for k, unit_range in enumerate(unit_ranges):
        if k > 0:
            first = unit_range[0]  # module k's input has the shape of the previous unit's output
            taps.append(Tap(f"m{k}.in", len(taps), k, first, "input", units[first], shapes[first - 1]))
        for i in unit_range:
            taps.append(Tap(names[i], len(taps), k, i, "output", units[i], shapes[i]))
    return {t.name: t for t in taps}
