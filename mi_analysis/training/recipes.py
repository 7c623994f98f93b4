"""Training recipes and the paper experiments as lists of run configurations.

`recipe("paper", dataset)` is the recipe of InfoPro's and ContSup's code (docs/training.md): SGD
Nesterov, wd 1e-4, 160 epochs, 10-epoch warm-up + cosine, lr 0.1 per 128 examples;
`recipe("quick", dataset)` is a CPU-sized schedule for the small offline sets. `experiment(name)`
expands one table or figure of the ContSup paper (arXiv 2312.07636) into every run it needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mi_analysis._util.checks import one_of, seed_list
from mi_analysis.data import available_datasets
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig

PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "stl10")
RECIPES = ("paper", "quick")


def recipe(name: str, dataset: str) -> TrainConfig:
    if name == "paper":
        # CIFAR/SVHN: batch 1024 (lr 0.8); STL-10: batch 128 (lr 0.1). Both are 0.1 per 128 examples.
        return TrainConfig(epochs=160, batch_size=128 if dataset == "stl10" else 1024, base_lr=0.1, warmup_epochs=10)
    if name == "quick":
        return TrainConfig(epochs=12, batch_size=64, base_lr=0.1, warmup_epochs=1, weight_decay=5e-4)
    raise ValueError(f"recipe must be one of {RECIPES}, got {name!r}")


def default_recipe(dataset: str) -> str:
    """The paper recipe for the paper's datasets, the quick one for everything else."""
    return "paper" if dataset in PAPER_DATASETS else "quick"


def _runs(dataset: str, archs: tuple[str, ...], ks: tuple[int, ...], contexts: tuple[str, ...],
          losses: tuple[str, ...] = ("cross_entropy",), **model: Any) -> list[RunConfig]:
    return [
        RunConfig(
            model=ModelConfig(arch=arch, num_modules=k, context=context, local_loss=loss, **model),
            data=DataConfig(dataset=dataset),
            train=recipe("paper", dataset),
        )
        for arch in archs for k in ks for context in contexts for loss in losses
        if _mode_allowed(context, k)
    ]


def _mode_allowed(context: str, k: int) -> bool:
    """The reference runs Rn (n >= 2) only at K >= max(n, 4): R2/R4 at K in {4, 8, 16}, R8 at 8/16, R16 at 16."""
    n = int(context.strip("RE") or 0)
    return n < 2 or k >= max(n, 4)


def _table3() -> list[RunConfig]:
    return [run for dataset in ("cifar10", "svhn", "stl10")
            for run in _runs(dataset, ("resnet110",), (2, 4, 8, 16), ("R1E",), ("contrast",), reconstruct=True)]


def _figure4() -> list[RunConfig]:
    return (_runs("cifar10", ("resnet32",), (2, 4, 8, 16), ("E",), split="balanced")
            + _runs("cifar10", ("resnet110",), (2, 3, 4), ("E",), split="balanced"))


EXPERIMENTS: dict[str, tuple[str, Any]] = {
    "table1": ("ContSup Table 1: R0 / E / R1 / R1E at K=16, ResNet-32, CIFAR-10",
               lambda: _runs("cifar10", ("resnet32",), (16,), ("R0", "E", "R1", "R1E"))),
    "table2": ("ContSup Table 2: E and R1E, softmax and contrast, K=2/4/8/16, ResNet-32, CIFAR-10",
               lambda: _runs("cifar10", ("resnet32",), (2, 4, 8, 16), ("E", "R1E"), ("cross_entropy", "contrast"))),
    "table3": ("ContSup Table 3: R1E with decoder, ResNet-110 on CIFAR-10 / SVHN / STL-10, K=2/4/8/16", _table3),
    "figure4": ("ContSup Figure 4: memory-balanced E, ResNet-32 (K=2/4/8/16) and ResNet-110 (K=2/3/4)", _figure4),
    "table4": ("ContSup Table 4: modes R0, E, R1, R1E, R2, R4, R8, R16 at K=8/16, ResNet-32, CIFAR-10, with memory",
               lambda: _runs("cifar10", ("resnet32",), (8, 16), ("R0", "E", "R1", "R1E", "R2", "R4", "R8", "R16"))),
    "baseline": ("E2E baselines: ResNet-32 and ResNet-110 on CIFAR-10",
                 lambda: _runs("cifar10", ("resnet32", "resnet110"), (1,), ("R0",))),
}
SCALES = ("paper", "quick")


def experiment(name: str, *, scale: str = "paper", seeds: tuple[int, ...] = (0,), dataset: str | None = None,
               out_dir: str = "runs", root: str | None = None, download: bool = False,
               arch: str | None = None) -> list[RunConfig]:
    """Every run of a paper experiment. `scale="quick"` keeps the models and modes but shrinks
    epochs and data so the whole set runs on a CPU; `dataset` swaps the data set (e.g. "synthetic"
    offline) and `arch` the network (any ModelConfig arch, e.g. "torchvision:resnet18"), keeping
    everything else; `root` and `download` go to every run's data config.
    seeds: distinct integers >= 0, one run of every configuration per seed."""
    seeds = seed_list(seeds, "seeds")
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if dataset is not None:
        one_of(dataset, "dataset", available_datasets())
    configs = []
    for run in EXPERIMENTS[name][1]():
        data = dataclasses.replace(run.data, dataset=dataset or run.data.dataset, download=download,
                                   root=root or run.data.root)
        train = run.train
        model = run.model if arch is None else dataclasses.replace(run.model, arch=arch)
        if scale == "quick":
            data = dataclasses.replace(data, train_subset=512, test_subset=256)
            train = dataclasses.replace(train, epochs=2, batch_size=64, warmup_epochs=1, progress=False)
        for seed in seeds:
            configs.append(dataclasses.replace(run, model=model, data=data, out_dir=out_dir,
                                               train=dataclasses.replace(train, seed=seed)))
    return configs
