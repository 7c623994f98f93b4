"""Typed, frozen run configuration with a YAML round trip.

A run is fully described by a `RunConfig` (model + data + training); the resolved config is
written to every run directory as `config.yaml` and read back on `--resume`. Unknown keys are
errors, so a typo never silently falls back to a default.

Run folders carry a format version: config.yaml's top-level `format_version` (beside the
sections) and every checkpoint's "format_version" entry. Version 1 is the layout of config.yaml,
checkpoints/{last,epoch_NNN}.pt (state_dict keys of models.LocalNet), metrics.csv, final.json and
version.txt; folders written before versions were recorded have none and read as version 1.
Version 2 writes each checkpoint behind a header with its SHA-256 and the config's hash
(training/checkpoints.py) and may hold failed.json (a run stopped by a non-finite loss); version-1
checkpoints still load and resume (without an integrity check).

Every field is checked when a config is made (ranges, names), so a run folder is never created for
a config that cannot train.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from mi_analysis._util.checks import finite_at_least, int_at_least, positive_number
from mi_analysis._util.config import flatten, from_dict, to_plain
from mi_analysis._util.device import check_device_name
from mi_analysis._util.version import check_format_version
from mi_analysis.data.config import DataConfig
from mi_analysis.models.archs import folder_label
from mi_analysis.models.config import ModelConfig


RUN_FORMAT_VERSION = 2  # the run folder layout this code writes and reads (see above)
# Fields that never change a number (how training is shown): they may differ on --resume.
RUNTIME_FIELDS = ("train.progress",)
# Edits of a run's config.yaml that resume accepts against its checkpoint: train longer, keep
# other epochs' checkpoints (the schedule then differs from a run planned that long). Any other
# change between the checkpoint and config.yaml is refused with the differences.
CONFIG_EDITS = ("train.epochs", "train.save_epochs")


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

    def __post_init__(self) -> None:
        int_at_least(self.epochs, "train.epochs", 1)
        int_at_least(self.batch_size, "train.batch_size", 1)
        positive_number(self.base_lr, "train.base_lr")
        finite_at_least(self.momentum, "train.momentum", 0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("train.nesterov needs train.momentum > 0, got momentum 0")
        finite_at_least(self.weight_decay, "train.weight_decay", 0)
        int_at_least(self.warmup_epochs, "train.warmup_epochs", 0)
        finite_at_least(self.warmup_start_lr, "train.warmup_start_lr", 0)
        int_at_least(self.seed, "train.seed", 0)
        check_device_name(self.device, "train.device")
        int_at_least(self.eval_every, "train.eval_every", 1)
        outside = [e for e in self.save_epochs if not isinstance(e, int) or isinstance(e, bool)
                   or not 1 <= e <= self.epochs]
        if outside:
            raise ValueError(f"train.save_epochs must be epochs in 1..{self.epochs} (train.epochs), got {outside}")


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
        if m.local_rule != "gll":
            name += f"-{m.local_rule}"
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
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} is not a file" + (" (a folder)" if path.is_dir() else ""))
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise ValueError(f"config file {path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
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

    def differences(self, other: "RunConfig", ignore: tuple[str, ...] = ()) -> list[str]:
        """Human-readable list of fields that differ (for resume checks), except those in `ignore`."""
        a, b = flatten(self.to_dict()), flatten(other.to_dict())
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k) and k not in ignore]

    def resumed_with(self, given: "RunConfig | None", run_dir: str | Path) -> "RunConfig":
        """This (a run's own) config, continued under `given` (e.g. from command-line flags): equal
        but for RUNTIME_FIELDS, which `given` sets; any other difference is a ValueError listing it."""
        if given is None:
            return self
        diff = self.differences(given, ignore=RUNTIME_FIELDS)
        if diff:
            raise ValueError(f"resume: the flags differ from the config of {run_dir}: {'; '.join(diff)} "
                             f"(only {', '.join(RUNTIME_FIELDS)} may change on resume)")
        return self.override({key: flatten(given.to_dict())[key] for key in RUNTIME_FIELDS})
