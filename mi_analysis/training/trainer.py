"""One training loop for E2E, greedy local learning and context supply.

The loop only owns the optimizer, the schedule and the bookkeeping; what is back-propagated
where is the model's business (`LocalNet.training_step`), so K=1 (E2E) and K>1 share every line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # text bars: tqdm.auto needs ipywidgets in Jupyter and warns without it

from mi_analysis.training.config import CONFIG_EDITS, RunConfig
from mi_analysis.data import TensorLoader, dataset_info, load_splits
from mi_analysis.profiling.memory import SavedTensorMeter
from mi_analysis.models import LocalNet, builder
from mi_analysis.models.archs import FACTORY, arch_kind
from mi_analysis.models.external import recorded_config
from mi_analysis._util import files
from mi_analysis._util.device import resolve_device
from mi_analysis.training import checkpoints

FAILED_RECORD = "failed.json"  # in a run directory: why training stopped (the run is not a result)
DISTRIBUTED_RECORD = "distributed.json"  # in a run directory: each multi-process launch
# Files the trainer writes into a run directory (and checkpoints/): their temporary files left by a
# killed process are removed on resume.
RUN_FILES = ("config.yaml", "version.txt", "metrics.csv", "final.json", FAILED_RECORD, DISTRIBUTED_RECORD)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite: training stopped and the run is marked failed (failed.json)."""


def seed_everything(seed: int) -> None:
    """One seed reaches torch (CPU and CUDA) and numpy; data order has its own per-epoch generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def learning_rate(config: RunConfig, epoch: int) -> float:
    """Learning rate of a 0-based epoch: linear warm-up from warmup_start_lr, then cosine to 0."""
    t, peak = config.train, config.lr
    if epoch < t.warmup_epochs:
        return t.warmup_start_lr + (peak - t.warmup_start_lr) * epoch / t.warmup_epochs
    span = max(t.epochs - t.warmup_epochs, 1)
    return 0.5 * peak * (1.0 + math.cos(math.pi * (epoch - t.warmup_epochs) / span))


def build_model(config: RunConfig, info: Any, image_size: int) -> LocalNet:
    """The run's model: its ModelConfig plus what the data set fixes (classes, channels, size, statistics),
    initialised from the run's training seed (common random numbers across modes: models/init.py)."""
    return builder.build_model(config.model, num_classes=info.num_classes, in_channels=info.in_channels,
                               image_size=image_size, input_mean=info.mean, input_std=info.std,
                               dataset=info.name, seed=config.train.seed)


def check_out_dir(config: RunConfig) -> Path:
    """The folder that receives run directories: refused when it is a file."""
    root = Path(config.out_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_dir {root} is a file; expected a folder to hold run directories")
    return root


def with_recorded_model(config: RunConfig) -> RunConfig:
    """`config` with the model settings a run records: those of the LocalNet that a factory arch
    returns, when it returns one (it fixes its own K, context and heads; models/external.py)."""
    if arch_kind(config.model.arch) != FACTORY:  # only a factory may fix model settings itself
        return config
    info = dataset_info(config.data.dataset, image_size=config.data.image_size)
    model = recorded_config(config.model, num_classes=info.num_classes, in_channels=info.in_channels,
                            image_size=info.image_size)
    return dataclasses.replace(config, model=model)


def new_run_dir(config: RunConfig) -> Path:
    """A fresh directory named from the settings and a timestamp; never an existing one."""
    root = check_out_dir(config)
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{config.run_name()}-{datetime.now():%Y%m%d-%H%M%S}"
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        path = root / f"{stem}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory under {root}")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The config.yaml of a run directory (ValueError when `run_dir` is not one)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"resume directory {run_dir} has no config.yaml: not a run directory")
    return RunConfig.from_yaml(run_dir / "config.yaml")


def failure_of(run_dir: str | Path) -> str | None:
    """Why training of a run stopped (its failed.json), None for a run that did not fail."""
    path = Path(run_dir) / FAILED_RECORD
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["reason"])
    except (ValueError, KeyError, TypeError):
        return f"{path} exists but is unreadable"


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files of the trainer's atomic writes that a killed process left in a run
    directory (nothing writes them while no trainer runs); returns what was removed."""
    stale = [tmp for name in RUN_FILES for tmp in files.temporaries_of(run_dir / name)]
    stale += sorted((run_dir / "checkpoints").glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_data_parallel_width(run_dir: Path, width: int, allow_change: bool) -> str | None:
    """Refuse to continue a run over another number of data parallel processes than its last launch
    (1 for a single process or module parallel, whose numbers are the single-process ones): each
    process normalises its own shard, so the batch-norm statistics and the results change. With
    `allow_change`, returns the note to record in the run (None when nothing changes)."""
    path = Path(run_dir) / DISTRIBUTED_RECORD
    launches = json.loads(path.read_text()).get("launches", []) if path.is_file() else []
    last = launches[-1] if launches else {"parallel": "data", "world_size": 1}
    before = last["world_size"] if last["parallel"] == "data" else 1
    if before == width:
        return None
    if not allow_change:
        raise ValueError(f"resume: run {run_dir} was trained data parallel over {before} process(es), now "
                         f"{width}: each process normalises its own shard, so batch-norm statistics and results "
                         f"would change; resume over {before} (--nproc {before} --parallel data, or 1 process), or "
                         f"pass --allow-world-size-change to continue anyway (recorded in {DISTRIBUTED_RECORD})")
    return f"data parallel width changed from {before} to {width} by --allow-world-size-change"


def record_override(run_dir: Path, note: str, first_epoch: int) -> None:
    """Add a note of a setting changed on resume to the run's distributed.json ("overrides")."""
    path = Path(run_dir) / DISTRIBUTED_RECORD
    record = json.loads(path.read_text()) if path.is_file() else {"launches": []}
    record.setdefault("overrides", []).append({"first_epoch": first_epoch, "note": note})
    files.write_json(path, record)


def _resume_advice(run_dir: Path) -> str:
    """What to do when last.pt cannot be used: continue from a kept epoch checkpoint, or start anew."""
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch_[0-9][0-9][0-9].pt"))
    if not kept:
        return "no epoch_XXX.pt checkpoint is kept (train.save_epochs): start a new run"
    return (f"to resume from a kept checkpoint, copy checkpoints/{kept[-1]} over checkpoints/last.pt "
            f"(later epochs are trained again); kept: {', '.join(kept)}")


class Trainer:
    """Trains one run; `Trainer.start(config)` for a new run, `Trainer.resume(run_dir)` to continue.

    Multi-process training (mi_analysis.training.distributed) subclasses it through the hooks marked
    "hook": `_gradients` (one batch's gradients), `_reduce_epoch` and `_reduce_counts` (sums over
    processes), `_create_run_dir` and `is_main_process` (only one process writes files).
    """

    is_main_process = True  # hook: the process that writes the run directory

    def __init__(self, config: RunConfig, run_dir: Path | None) -> None:
        """run_dir None: set by start() once data and model are made (no folder for a config that fails)."""
        self.config, self.run_dir = config, None if run_dir is None else Path(run_dir)
        self.device = resolve_device(config.train.device)
        t, d = config.train, config.data
        seed_everything(t.seed)
        splits = load_splits(
            d.dataset, d.root, download=d.download, val_fraction=d.val_fraction, seed=t.seed,
            train_subset=d.train_subset, test_subset=d.test_subset, image_size=d.image_size,
        )
        self.info = splits.info
        loader_args = dict(info=self.info, device=self.device, seed=t.seed, channels_last=t.channels_last)
        self.train_loader = TensorLoader(
            splits.train, batch_size=t.batch_size, shuffle=True, augment=d.augment, **loader_args
        )
        self.eval_loaders = {
            name: TensorLoader(split, batch_size=max(t.batch_size, 256), shuffle=False, augment=False, **loader_args)
            for name, split in (("val", splits.val), ("test", splits.test))
            if split is not None
        }
        self.model = build_model(config, self.info, splits.train.images.shape[-1]).to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=t.momentum,
            nesterov=t.nesterov, weight_decay=t.weight_decay,
        )
        if t.compile:
            for unit in self.model.units:
                unit.compile()
        self.autocast_dtype = torch.bfloat16 if t.bf16 else None
        self.start_epoch = 0
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def start(cls, config: RunConfig, **options: Any) -> "Trainer":
        """A trainer and a new run directory for it; `options` go to the constructor (subclasses).
        The directory is made after the data are loaded and the model is built, so a config that
        cannot train leaves no folder behind."""
        check_out_dir(config)
        config = with_recorded_model(config)
        trainer = cls(config, None, **options)
        trainer.run_dir = cls._create_run_dir(config)
        return trainer

    @classmethod
    def _create_run_dir(cls, config: RunConfig) -> Path:  # hook
        run_dir = new_run_dir(config)
        config.to_yaml(run_dir / "config.yaml")
        files.write_text(run_dir / "version.txt", checkpoints.code_version() + "\n")
        (run_dir / "checkpoints").mkdir()
        return run_dir

    @classmethod
    def data_parallel_width(cls) -> int:  # hook
        """How many processes share each batch (batch norm per process): 1 here."""
        return 1

    @classmethod
    def resume(cls, run_dir: str | Path, config: RunConfig | None = None, *, allow_world_size_change: bool = False,
               **options: Any) -> "Trainer":
        """Continue a run from its last complete checkpoint. `config`, when given (e.g. from
        command-line flags), must equal the run's own config but for RUNTIME_FIELDS; `options` go
        to the constructor. A run that failed, a damaged or missing last.pt of a run that has
        metrics, a checkpoint of another config than config.yaml, and another data parallel width
        than the last launch's (unless allowed, then recorded) are ValueErrors saying what to do."""
        run_dir = Path(run_dir)
        if config is not None:
            config = with_recorded_model(config)
        saved = read_run_config(run_dir).resumed_with(config, run_dir)
        failure = failure_of(run_dir)
        if failure is not None:
            raise ValueError(f"run {run_dir} failed and cannot be resumed: {failure}; start a new run")
        override = check_data_parallel_width(run_dir, cls.data_parallel_width(), allow_world_size_change)
        checkpoint_path = run_dir / "checkpoints" / "last.pt"
        if not checkpoint_path.is_file() and (run_dir / "metrics.csv").is_file():
            raise checkpoints.CheckpointError(
                f"checkpoint {checkpoint_path} is missing, but {run_dir / 'metrics.csv'} records trained epochs; "
                f"{_resume_advice(run_dir)}")
        state = None
        if checkpoint_path.is_file():
            try:
                state = checkpoints.load_checkpoint(checkpoint_path, "cpu", config=saved)
            except checkpoints.ConfigMismatch as err:
                raise checkpoints.ConfigMismatch(
                    f"{err}; undo the edit of {run_dir / 'config.yaml'} (only {', '.join(CONFIG_EDITS)} may change "
                    "between launches) or start a new run") from None
            except checkpoints.CheckpointError as err:
                raise checkpoints.CheckpointError(f"{err}; {_resume_advice(run_dir)}") from None
        trainer = cls(saved, run_dir, **options)
        if state is not None:
            trainer.model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"]["torch"])
            trainer.start_epoch, trainer.rows = state["epoch"], state["metrics"]
        if trainer.is_main_process:
            remove_stale_temporaries(run_dir)
            if override is not None:
                record_override(run_dir, override, trainer.start_epoch + 1)
        return trainer

    def run(self) -> dict[str, Any]:
        t = self.config.train
        if self.start_epoch >= t.epochs and (self.run_dir / "final.json").is_file():
            raise ValueError(f"run {self.run_dir} is already complete ({t.epochs} epochs)")
        for epoch in range(self.start_epoch, t.epochs):
            row = self.train_epoch(epoch)
            if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
                row.update({f"{name}_acc": self.evaluate(loader) for name, loader in self.eval_loaders.items()})
            self.rows.append(row)
            self._save(epoch + 1)
            if t.progress and self.is_main_process:
                shown = {k: row[k] for k in ("lr", "train_loss", "train_acc", "val_acc", "test_acc") if k in row}
                tqdm.write(f"epoch {epoch + 1}/{t.epochs} " + " ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        summary = self.summary()
        if self.is_main_process:  # metrics.csv again: a kill after last.pt may have left it an epoch short
            files.write_csv(self.run_dir / "metrics.csv", self.rows)
            files.write_json(self.run_dir / "final.json", summary)
        return summary

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        lr = learning_rate(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.train_loader.set_epoch(epoch)
        K = self.model.num_modules
        loss_sum = torch.zeros(K, device=self.device, dtype=torch.float64)
        correct_sum = torch.zeros(K, device=self.device, dtype=torch.float64)
        seen, meter = 0, None
        first_bad_step = torch.full((K,), -1, device=self.device)  # per module; kept on the device (no sync per step)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        batches = tqdm(self.train_loader, desc=f"epoch {epoch + 1}", leave=False,
                       disable=not (self.config.train.progress and self.is_main_process))
        for step, (x, y) in enumerate(batches):
            self.optimizer.zero_grad(set_to_none=True)
            # The first step of every epoch is measured: peak bytes saved for backward, parameters excluded.
            if step == 0:
                meter = SavedTensorMeter(exclude=[*self.model.parameters(), *self.model.buffers()])
            with meter if step == 0 else contextlib.nullcontext():
                out = self._gradients(x, y)
            self.optimizer.step()
            bad = ~torch.isfinite(out["loss"].detach())
            first_bad_step = torch.where(bad & (first_bad_step < 0), step, first_bad_step)
            loss_sum += out["loss"].double() * len(y)
            correct_sum += out["accuracy"].double() * len(y)
            seen += len(y)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        totals = self._reduce_epoch({
            "loss_sum": loss_sum, "correct_sum": correct_sum, "seen": seen, "time_s": time.perf_counter() - start,
            "peak_memory_bytes": meter.peak_bytes if meter else float("nan"),
            "cuda_peak_bytes": torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else float("nan"),
        })
        if not torch.isfinite(totals["loss_sum"]).all():
            self._diverged(epoch, totals["loss_sum"], first_bad_step, lr)
        seen, elapsed = totals["seen"], totals["time_s"]
        losses, accs = (totals["loss_sum"] / seen).tolist(), (totals["correct_sum"] / seen).tolist()
        row: dict[str, Any] = {
            "epoch": epoch + 1, "lr": lr, "time_s": elapsed, "images_per_s": seen / elapsed,
            "peak_memory_bytes": totals["peak_memory_bytes"], "cuda_peak_bytes": totals["cuda_peak_bytes"],
            "train_loss": losses[-1], "train_acc": accs[-1],
        }
        row.update({f"loss_m{k}": v for k, v in enumerate(losses)})
        row.update({f"acc_m{k}": v for k, v in enumerate(accs)})
        return row

    def _diverged(self, epoch: int, loss_sum: torch.Tensor, first_bad_step: torch.Tensor, lr: float) -> None:
        """Stop: mark the run failed (failed.json) and raise TrainingDiverged naming module, epoch, step."""
        # the module whose loss went bad first (a bad module makes the later ones bad too), else the first bad one
        bad = [(int(first_bad_step[k]) if first_bad_step[k] >= 0 else math.inf, k)
               for k in (~torch.isfinite(loss_sum)).nonzero().flatten().tolist()]
        module = min(bad)[1]
        step = int(first_bad_step[module])
        where = f"step {step + 1} of {len(self.train_loader)}" if step >= 0 else "a step of another process"
        reason = (f"training diverged: the loss of module {module} (of {len(loss_sum)}, counted from 0) became "
                  f"{float(loss_sum[module])} in epoch {epoch + 1}, {where}, at learning rate {lr:.4g}; lower "
                  f"train.base_lr (--base-lr) or check the data")
        if self.is_main_process:
            files.write_json(self.run_dir / FAILED_RECORD,
                             {"reason": reason, "epoch": epoch + 1, "module": module, "step": step + 1, "lr": lr})
        raise TrainingDiverged(f"{reason} (run {self.run_dir} marked failed in {FAILED_RECORD})")

    def _gradients(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # hook
        """Gradients of one batch into .grad; "loss" and "accuracy" (K,) as in LocalNet.training_step."""
        return self.model.training_step(x, y, autocast_dtype=self.autocast_dtype)

    def _reduce_epoch(self, totals: dict[str, Any]) -> dict[str, Any]:  # hook
        """One epoch's loss_sum, correct_sum (K,), seen, time_s and peaks over every process."""
        return totals

    def _reduce_counts(self, counts: torch.Tensor) -> torch.Tensor:  # hook
        """Evaluation counts (correct, total) summed over every process."""
        return counts

    @torch.no_grad()
    def evaluate(self, loader: TensorLoader) -> float:
        self.model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        total = 0
        for x, y in loader:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None):
                logits = self.model(x)
            correct += (logits.argmax(dim=1) == y).sum()
            total += len(y)
        correct, total = self._reduce_counts(torch.stack([correct, torch.tensor(total, device=self.device)])).tolist()
        return correct / total

    def _save(self, epochs_done: int) -> None:
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "epoch": epochs_done, "config": self.config.to_dict(), "metrics": self.rows,
            "rng": {"torch": torch.get_rng_state()},
        }
        folder = self.run_dir / "checkpoints"
        if epochs_done in self.config.train.save_epochs:
            checkpoints.save_checkpoint(folder / f"epoch_{epochs_done:03d}.pt", state)
        checkpoints.save_checkpoint(folder / "last.pt", state)
        files.write_csv(self.run_dir / "metrics.csv", self.rows)

    def summary(self) -> dict[str, Any]:
        """Final and best accuracies. The best epoch is chosen on validation, never on test;
        the best test accuracy is listed separately (and labelled) only for comparison with papers."""
        last = self.rows[-1]
        evaluated = [r for r in self.rows if "test_acc" in r]
        summary: dict[str, Any] = {
            "run_dir": str(self.run_dir), "epochs": last["epoch"],
            "final_train_acc": last["train_acc"], "final_val_acc": last.get("val_acc"),
            "final_test_acc": last.get("test_acc"),
            "best_test_acc_selected_on_test": max(r["test_acc"] for r in evaluated),
            "parameters": self.model.parameter_counts(),
            "peak_memory_bytes": max(r["peak_memory_bytes"] for r in self.rows),
            "local_acc": [last[f"acc_m{k}"] for k in range(self.model.num_modules)],
        }
        with_val = [r for r in evaluated if "val_acc" in r]
        if with_val:
            best = max(with_val, key=lambda r: r["val_acc"])
            summary.update(best_val_acc=best["val_acc"], best_val_epoch=best["epoch"], test_acc_at_best_val=best["test_acc"])
        return summary


def train(config: RunConfig) -> Path:
    """Train a new run and return its directory."""
    trainer = Trainer.start(config)
    trainer.run()
    return trainer.run_dir


def load_run(run_dir: str | Path, epoch: int | None = None, device: str = "cpu") -> tuple[LocalNet, RunConfig]:
    """The trained model of a run (eval mode) and its config; `epoch` picks a saved epoch checkpoint."""
    run_dir = Path(run_dir)
    name = "last.pt" if epoch is None else f"epoch_{epoch:03d}.pt"
    path = run_dir / "checkpoints" / name
    if not path.is_file():
        available = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").is_dir() else []
        raise FileNotFoundError(f"no checkpoint {name} in {run_dir}; available: {available or 'none'}")
    state = checkpoints.load_checkpoint(path, device)
    config = RunConfig.from_dict(state["config"])
    info = dataset_info(config.data.dataset, image_size=config.data.image_size)
    model = build_model(config, info, info.image_size).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), config
