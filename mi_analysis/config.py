"""Typed, frozen run configuration with a YAML round trip.

A run is fully described by a `RunConfig` (model + data + training); the resolved config is
written to every run directory as `config.yaml` and read back on `--resume`. Unknown keys are
errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet32"
    num_modules: int = 1  # K; 1 = end-to-end
    context: str = "R0"  # R0 = plain greedy local learning
    local_loss: str = "cross_entropy"  # or "contrast"
    aux_head: str = "1c2f"
    split: str = "equal"  # or "balanced"
    reconstruct: bool = False  # InfoPro's decoder term in the local loss
    aux_widen: float = 1.0
    aux_feature_dim: int = 128
    lambdas: tuple[float, float, float, float] | None = None  # (lx1, ly1, lx2, ly2); None = paper default
    recompute_context: bool = False  # recompute context encoders in backward (less memory, same grads)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    root: str = "~/.cache/mi_analysis/data"
    download: bool = False
    val_fraction: float = 0.1  # held out of the training set; model selection happens here, never on test
    train_subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None  # None = the dataset's native size
    augment: bool = True


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 160
    batch_size: int = 1024
    base_lr: float = 0.1  # per 128 examples: lr = base_lr * batch_size / 128 (paper: 0.8 at 1024)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    warmup_epochs: int = 10  # linear warm-up from warmup_start_lr, then cosine to 0; lr set per epoch
    warmup_start_lr: float = 0.01
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    bf16: bool = False  # bfloat16 autocast for forward passes
    channels_last: bool = False
    compile: bool = False  # torch.compile the backbone units and heads
    eval_every: int = 1  # epochs between validation/test evaluations (the last epoch always evaluates)
    save_epochs: tuple[int, ...] = ()  # epochs whose checkpoints are kept for analysis across training
    progress: bool = True  # tqdm progress bars


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    out_dir: str = "runs"

    @property
    def lr(self) -> float:
        """Peak learning rate for this batch size."""
        return self.train.base_lr * self.train.batch_size / 128

    def run_name(self) -> str:
        """Settings part of the run directory name (a timestamp is appended by the trainer)."""
        m, d, t = self.model, self.data, self.train
        name = f"{d.dataset}-{m.arch}-K{m.num_modules}-{m.context}-{m.local_loss}"
        if m.reconstruct:
            name += "-rec"
        if m.split != "equal":
            name += f"-{m.split}"
        return f"{name}-s{t.seed}"

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        return from_dict(cls, data, "config")

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {path} must hold a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    def override(self, assignments: dict[str, Any]) -> "RunConfig":
        """Return a copy with dotted keys replaced, e.g. {"train.epochs": 5, "model.context": "E"}."""
        data = self.to_dict()
        for dotted, value in assignments.items():
            section, _, key = dotted.partition(".")
            if key and isinstance(data.get(section), dict):
                data[section][key] = value
            elif not key and section in data and not isinstance(data[section], dict):
                data[section] = value
            else:
                raise ValueError(
                    f"override key {dotted!r} must be <section>.<field> with section in "
                    f"['model', 'data', 'train'], or 'out_dir'"
                )
        return RunConfig.from_dict(data)

    def differences(self, other: "RunConfig") -> list[str]:
        """Human-readable list of fields that differ (for resume checks)."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check and convert a YAML value to the annotated type (int -> float allowed, lists -> tuples)."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(option, value, where)
            except ValueError:
                pass
        raise ValueError(f"{where}: {value!r} does not match {hint}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported config type {hint}")


def parse_value(text: str) -> Any:
    """Parse a command-line override value with YAML rules ("5" -> 5, "true" -> True, "[1,2]" -> list)."""
    return yaml.safe_load(text)
