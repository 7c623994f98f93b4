"""`mi-analysis demo`: how greedy local learning loses information and context supply recovers it.

Offline, on a CPU: trains the same ResNet end-to-end (E2E), greedily (GLL, R0) and with context
supply (E, R1E) at one K, once per seed (`seeds`), on Fashion-MNIST (data set
fashion_mnist_subset: the first 6,000 training and 2,000 test images, bundled with the package,
read from the full IDX files instead when /usr/share/datasets/fashion-mnist or `root` holds them;
the summary names the source); analyses every module boundary of every run into one mi.csv,
draws the figures and writes comparisons.csv (paired differences of the modes,
analysis/comparisons.py) and summary.md: per boundary, what GLL lost against E2E and what ContSup
recovered, with paired 95% CIs, Holm-adjusted p-values and the recovered fraction where the loss
is significant; then I(h;y) and I(h;x) of each mode. `rules` adds greedy runs under other
local-learning rules (models/rules.py: R0@auglocal, R0@man), compared with GLL and E2E the same way.

The default setting (ResNet-32 cut into K=8 modules, linear 0c1f local heads, images at 16x16,
a stratified draw of 3,000 training images, 4 epochs of the quick recipe) was chosen so that
the effect shows in I(h;y) at this scale: many modules with linear heads make each greedy module
keep only what a linear read-out of its pooled features needs, and Fashion-MNIST, unlike the
digits, leaves the label information below H(y). Every run of one seed starts from the same
weights wherever the modes share a part (common random numbers, models/init.py), and all runs
are analysed on the same held-out samples, so mode differences can be paired.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from mi_analysis.analysis import AnalysisConfig, analyze_run
from mi_analysis.analysis.comparisons import compare
from mi_analysis.analysis.figures import make_figures
from mi_analysis.analysis.measure import preference_rank, row_spec
from mi_analysis.analysis.report import SUMMARY_QUANTITIES, render_comparisons
from mi_analysis.data.fashion_mnist_subset import BUNDLED_DIR, SUBSET_TEST_SIZE, SUBSET_TRAIN_SIZE, subset_source
from mi_analysis.models import E2E
from mi_analysis.models.config import run_label
from mi_analysis.models.rules import LOCAL_RULES
from mi_analysis.training import Trainer, load_run
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig
from mi_analysis.training.recipes import recipe
from mi_analysis._util.checks import seed_list
from mi_analysis._util.files import write_text

DEMO_MODES = (E2E, "R0", "E", "R1E")


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    dataset: str = "fashion_mnist_subset"
    root: str | None = None  # None: DataConfig's default (fashion_mnist_subset: see data_source)
    arch: str = "resnet32"
    num_modules: int = 8
    aux_head: str = "0c1f"
    epochs: int = 4
    seeds: tuple[int, ...] = (0,)  # every mode is trained once per seed, all into one mi.csv
    image_size: int | None = 16  # None: the data set's own size
    held_out_size: int | None = None  # None: the whole test split (2,000 Fashion-MNIST images)
    train_subset: int | None = 3000  # a stratified draw of the training images (per seed)
    rules: tuple[str, ...] = ()  # local-learning rules other than gll, each trained as R0@rule beside the modes

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", seed_list(self.seeds, "seeds"))
        rules = tuple(self.rules) if isinstance(self.rules, (list, tuple)) else None
        others = LOCAL_RULES[1:]  # gll is the R0 run itself
        if rules is None or len(set(rules)) != len(rules) or any(r not in others for r in rules):
            raise ValueError(f"rules must be distinct names from {others}, got {self.rules!r}")
        object.__setattr__(self, "rules", rules)

    @property
    def labels(self) -> tuple[str, ...]:
        """The run labels trained per seed: the modes, then R0@rule per rule."""
        return DEMO_MODES + tuple(run_label(self.num_modules, "R0", rule) for rule in self.rules)


def data_source(settings: DemoSettings) -> str:
    """Which data the demo reads, in words (the summary states it)."""
    root = settings.root if settings.root is not None else DataConfig().root
    if settings.dataset != "fashion_mnist_subset":
        return f"{settings.dataset} (root {root})"
    folder = subset_source(root)
    where = "the copy bundled with mi_analysis" if folder == BUNDLED_DIR else f"the full IDX files in {folder}"
    return (f"Fashion-MNIST, the first {SUBSET_TRAIN_SIZE:,} training and {SUBSET_TEST_SIZE:,} test images "
            f"in the official order, read from {where}")


def demo_configs(settings: DemoSettings, out_dir: Path) -> dict[tuple[str, int], RunConfig]:
    """One run config per (label, seed); everything but the model's K, context and local rule and the
    seed is shared."""
    s = settings
    base = recipe("quick", s.dataset)
    data = DataConfig(dataset=s.dataset, train_subset=s.train_subset, image_size=s.image_size,
                      **({} if s.root is None else {"root": s.root}))
    models = {mode: ModelConfig(arch=s.arch, num_modules=1 if mode == E2E else s.num_modules,
                                context="R0" if mode == E2E else mode, aux_head=s.aux_head) for mode in DEMO_MODES}
    models |= {m.label: m for m in (dataclasses.replace(models["R0"], local_rule=rule) for rule in s.rules)}
    return {
        (label, seed): RunConfig(
            model=model, data=data, train=dataclasses.replace(base, seed=seed, progress=False, epochs=s.epochs),
            out_dir=str(out_dir / "runs"),
        )
        for seed in s.seeds
        for label, model in models.items()
    }


def run_demo(settings: DemoSettings = DemoSettings(), out_dir: Path = Path("runs/demo")) -> str:
    """Train, analyse, plot and summarise; returns the summary (markdown), also in out_dir/summary.md."""

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        # a second demo in the same folder would mix its runs into the first one's table and figures
        raise ValueError(f"out_dir {out_dir} already holds files (an earlier demo?); "
                         f"pass another --out-dir or remove it")
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summaries: dict[tuple[str, int], dict[str, Any]] = {}  # (label, seed) -> the run's summary
    for (label, seed), config in demo_configs(settings, out_dir).items():
        start = time.perf_counter()
        trainer = Trainer.start(config)
        print(f"[demo] training {label} (K={config.model.num_modules}, seed {seed}) -> {trainer.run_dir}", flush=True)
        summaries[label, seed] = trainer.run()
        timings[f"train {_stage(label, seed, settings)}"] = time.perf_counter() - start

    # one analysis seed (AnalysisConfig's) for every run: all are measured on the same held-out samples and folds
    analysis = AnalysisConfig(held_out_size=settings.held_out_size)
    mi_rows = []
    for (label, seed), summary in summaries.items():
        start = time.perf_counter()
        print(f"[demo] analysing {label} (seed {seed})", flush=True)
        mi_rows += analyze_run(summary["run_dir"], analysis, out=out_dir / "mi.csv")
        timings[f"analyse {_stage(label, seed, settings)}"] = time.perf_counter() - start

    start = time.perf_counter()
    comparisons = compare([out_dir / "mi.csv"], out=out_dir / "comparisons.csv")
    timings["compare"] = time.perf_counter() - start

    start = time.perf_counter()
    inputs = [out_dir / "mi.csv", out_dir / "runs", out_dir / "comparisons.csv"]
    figures = [p.relative_to(out_dir) for p in make_figures(inputs, out_dir / "figures")]
    timings["figures"] = time.perf_counter() - start

    boundaries = _boundary_units(summaries["R0", settings.seeds[0]]["run_dir"])
    summary = render_summary(settings, summaries, mi_rows, boundaries, timings, figures, comparisons)
    write_text(out_dir / "summary.md", summary)
    print(summary)
    return summary


def _stage(label: str, seed: int, settings: DemoSettings) -> str:
    """A run's name in the wall-time table: its label, and its seed when there are several."""
    return label if len(settings.seeds) == 1 else f"{label} seed {seed}"


def _boundary_units(run_dir: str) -> list[str]:
    """Names of the last unit of every local module (where the cuts fall)."""
    model, _ = load_run(run_dir)
    return [model.unit_names[c] for c in model.cuts]


def _value(rows: Sequence[dict[str, Any]], label: str, point: str, quantity: str, estimator: str) -> dict | None:
    for row in rows:
        row_label = run_label(int(row["K"]), row["mode"], row.get("rule") or "gll")
        if (row_label, row["point"], row["quantity"], row["estimator"]) == (label, point, quantity, estimator):
            return row
    return None


def _fmt(row: dict | None) -> str:
    if row is None:
        return "-"
    return f"{float(row['value']):.3f} [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}]"


def boundary_table(rows: Sequence[dict[str, Any]], boundaries: Sequence[str], quantity: str, estimator: str,
                   labels: Sequence[str] = DEMO_MODES) -> str:
    """Markdown table: per module boundary, each run label's value [CI] (the differences, paired, are
    in the comparisons section)."""
    head = ["boundary", "unit", *labels]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for k, unit in enumerate(boundaries):
        cells = [_boundary_label(k), unit, *(_fmt(_value(rows, label, unit, quantity, estimator)) for label in labels)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _boundary_label(k: int) -> str:
    return f"after module {k}"


def accuracy_table(summaries: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Markdown: per (run label, seed), final test accuracy and each module's local-head accuracy (last
    epoch, training data)."""
    width = max(len(s["local_acc"]) for s in summaries.values())
    head = ["mode", "seed", "K", "test acc", "val acc", *(f"head m{k}" for k in range(width))]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (label, seed), s in summaries.items():
        heads = [f"{a:.3f}" for a in s["local_acc"]] + [""] * (width - len(s["local_acc"]))
        lines.append("| " + " | ".join([label, str(seed), str(len(s["local_acc"])), f"{s['final_test_acc']:.3f}",
                                        f"{s['final_val_acc']:.3f}", *heads]) + " |")
    return "\n".join(lines)


def _kind(rows: Sequence[dict[str, Any]], estimator: str) -> str:
    return next((str(r["kind"]) for r in rows if r["estimator"] == estimator), "?")


def _summary_estimators(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(quantity, estimator) of the summary's tables: every estimator in the rows whose values are in
    nats (kind not non_shannon), by quantity, in figure preference order."""
    present = {(str(r["quantity"]), str(r["estimator"])) for r in rows if r["kind"] != "non_shannon"}
    return [
        (quantity, estimator)
        for quantity in SUMMARY_QUANTITIES
        for estimator in sorted(
            (e for q, e in present if q == quantity), key=lambda e: (preference_rank(quantity, e), e)
        )
    ]  # fmt: skip


def render_summary(settings: DemoSettings, summaries: dict[tuple[str, int], dict[str, Any]],
                   rows: Sequence[dict[str, Any]], boundaries: Sequence[str], timings: dict[str, float],
                   figures: Sequence[Path], comparisons: Sequence[dict[str, Any]]) -> str:  # fmt: skip
    s = settings
    labels = {unit: _boundary_label(k) for k, unit in enumerate(boundaries)}
    parts = [
        "# mi-analysis demo",
        "",
        f"{s.arch} on {s.dataset}, K={s.num_modules} modules, {s.aux_head} local heads, "
        f"seed{'s' if len(s.seeds) > 1 else ''} {', '.join(map(str, s.seeds))}; "
        "E2E vs greedy local learning (GLL = R0) vs context supply (E, R1E)"
        + "".join(f" vs {label}" for label in s.labels[len(DEMO_MODES):]) + ". All values in nats; "
        "brackets are 95% confidence intervals. Differences between modes (comparisons.csv) are paired by "
        "held-out sample where the estimator allows it, and marked unpaired otherwise.",
        "",
        "## Paired comparisons",
        "",
        render_comparisons(comparisons, points=boundaries, labels=labels).rstrip("\n"),
        "",
        f"Data: {data_source(s)}; {s.image_size or 'native'} px, {s.epochs} epochs, "
        f"{'all' if s.train_subset is None else f'{s.train_subset:,}'} training images (before the validation split).",
        "",
        "## Accuracy",
        "",
        accuracy_table(summaries),
    ]
    seed_rows = [r for r in rows if r["seed"] == s.seeds[0]]
    if len(s.seeds) > 1:
        parts += ["", f"The per-boundary tables below are seed {s.seeds[0]}'s; mi.csv holds every seed's rows."]
    for quantity, estimator in _summary_estimators(rows):
        spec = row_spec(estimator)
        why = spec.summary if spec is not None else "not described by this version of mi_analysis"
        parts += ["", f"## {quantity}, {estimator} ({_kind(rows, estimator)})", "", f"Kind: {why}.", "",
                  boundary_table(seed_rows, boundaries, quantity, estimator, s.labels)]
    parts += ["", "## Wall time (seconds)", "", "| stage | s |", "| --- | --- |"]
    parts += [f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()]
    parts += ["", "## Figures", ""] + [f"- {p}" for p in figures if p.suffix == ".png"]
    return "\n".join(parts) + "\n"
