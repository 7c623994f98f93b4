"""Typed, frozen run configuration with a YAML round trip.

A run is fully described by a `RunConfig` (model + data + training); the resolved config is
written to every run directory as `config.yaml` and read back on `--resume`. Unknown keys are
errors, so a typo never silently falls back to a default.

Run folders carry a format version: config.yaml's top-level `format_version` (beside the
sections) and every checkpoint's "format_version" entry. Version 1 is the layout of config.yaml,
checkpoints/{last,epoch_NNN}.pt (state_dict keys of models.LocalNet), metrics.csv, final.json and
version.txt; folders written before versions were recorded have none and read as version 1.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from mi_analysis._util.config import flatten, from_dict, to_plain
from mi_analysis._util.version import check_format_version
from mi_analysis.data.config import DataConfig
from mi_analysis.models.archs import folder_label
from mi_analysis.models.config import ModelConfig


RUN_FORMAT_VERSION = 1  # the run folder layout this code writes and reads (see above)


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
        name = f"{d.dataset}-{folder_label(m.arch)}-K{m.num_modules}-{m.context}-{m.local_loss}"
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
        data = {"format_version": RUN_FORMAT_VERSION, **self.to_dict()}
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """The config in a YAML file: a run's config.yaml or a hand-written one (its format_version,
        when present, must be one this code reads; every other key must be a field)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {path} must hold a mapping, got {type(data).__name__}")
        check_format_version(data.pop("format_version", None), RUN_FORMAT_VERSION, f"config file {path}")
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
        a, b = flatten(self.to_dict()), flatten(other.to_dict())
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
