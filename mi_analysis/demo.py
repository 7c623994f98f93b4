"""`mi-analysis demo`: E2E vs greedy local learning vs context supply, offline, on a CPU.

Trains the same ResNet end-to-end, greedily (R0) and with context supply (E, R1E) at one K on a
small real data set (scikit-learn's digits by default) with the quick recipe, and writes a table
of final accuracy and local-head accuracy per module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mi_analysis.config import DataConfig, ModelConfig, RunConfig
from mi_analysis.recipes import recipe
from mi_analysis.training.io import write_text

DEMO_MODES = ("E2E", "R0", "E", "R1E")


def demo_configs(out_dir: Path, dataset: str = "digits", num_modules: int = 4, epochs: int | None = None,
                 arch: str = "resnet32", seed: int = 0) -> dict[str, RunConfig]:
    train = recipe("quick", dataset)
    train = dataclasses.replace(train, seed=seed, progress=False, epochs=epochs or train.epochs)
    configs = {}
    for mode in DEMO_MODES:
        model = ModelConfig(arch=arch, num_modules=1 if mode == "E2E" else num_modules,
                            context="R0" if mode == "E2E" else mode)
        configs[mode] = RunConfig(model=model, data=DataConfig(dataset=dataset), train=train, out_dir=str(out_dir))
    return configs


def accuracy_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown: final test accuracy and each module's local-head accuracy (last epoch, training data)."""
    width = max(len(s["local_acc"]) for s in summaries.values())
    header = "| mode | K | test acc | val acc | " + " | ".join(f"head m{k}" for k in range(width)) + " |"
    lines = [header, "|" + " --- |" * (4 + width)]
    for mode, s in summaries.items():
        heads = [f"{a:.3f}" for a in s["local_acc"]] + [""] * (width - len(s["local_acc"]))
        lines.append(f"| {mode} | {len(s['local_acc'])} | {s['final_test_acc']:.3f} | {s['final_val_acc']:.3f} | "
                     + " | ".join(heads) + " |")
    return "\n".join(lines) + "\n"


def run_demo(out_dir: Path, dataset: str = "digits", epochs: int | None = None, num_modules: int = 4) -> str:
    from mi_analysis.training import Trainer

    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for mode, config in demo_configs(out_dir, dataset, num_modules, epochs).items():
        trainer = Trainer.start(config)
        print(f"[demo] training {mode} (K={config.model.num_modules}) -> {trainer.run_dir}", flush=True)
        summaries[mode] = trainer.run()
    table = accuracy_table(summaries)
    write_text(out_dir / "accuracy.md", table)
    print(table)
    return table
