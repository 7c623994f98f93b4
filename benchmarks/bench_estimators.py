"""Benchmark every registered MI estimator against known answers.

Three suites:
- "Beyond Normal" (Czyz et al., NeurIPS 2023): the 40 tasks sampled in shared/data/bmi/
  (x (n, dx), y (n, dy) with ground-truth MI in index.json; n = 5000).
- Labels: I(h; y) for 10 classes, h a Gaussian mixture with known class means in 2..128
  dimensions, optionally pushed through a non-linear invertible map (which leaves I(h; y)
  unchanged). Ground truth by Monte Carlo: I = H(y) - E_h[H(y | h)] with the exact posterior
  p(y | h) of every one of `mc_samples` draws (stderr ~0.001 nats at 200,000 draws).
- Real activations (--real; benchmarks/real_activations.py): ReLU point masses, quantised values,
  heavy tails and huge ranges, discrete and mixed discrete-continuous columns, with exact or Monte
  Carlo truths; written to estimators_real.csv / .md.

    python benchmarks/bench_estimators.py --tasks ../shared/data/bmi --out benchmarks/results/

writes estimators_bmi.csv (task, dim_x, dim_y, true_mi, method, kind, estimate, ci_low, ci_high,
abs_error, seconds) and estimators_bmi.md (per-method summary, auto's target check per task).
A method runs on a task only if it takes that kind of y; a method whose time on a suite's tasks
so far exceeds --budget-s is skipped on that suite's remaining tasks; the neural estimators run on
NEURAL_TASKS only (seconds per fit; enough to show how they compare); methods in SUBSAMPLE run on
the first N samples of each task.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import math
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from mi_analysis.estimators import available, estimate, get
from mi_analysis.estimators.uncertainty import Z_95

CSV_COLUMNS = ("task", "dim_x", "dim_y", "true_mi", "method", "kind", "estimate", "ci_low", "ci_high", "abs_error", "seconds")
NEURAL = ("infonce", "nwj", "mine", "smile")
NEURAL_TASKS = (
    "1v1-normal-0.75", "1v1-additive-0.1", "multinormal-dense-5-5-0.5", "multinormal-sparse-5-5-2-2.0",
    "spiral-multinormal-sparse-3-3-2-2.0", "spiral-multinormal-sparse-5-5-2-2.0", "multinormal-dense-25-25-0.5",
    "student-identity-2-2-1", "labels-d32-identity",
)  # fmt: skip
SUBSAMPLE = {"renyi": 2000}  # methods with O(n^3) cost run on the first N samples of every task
KSG_REFERENCE = "ksg[k=5]"  # the benchmark paper's own KSG setting: our "ksg" with k=5, no extras
# Labels suite: (dimension, separation of the class means, map). Separations give I(h;y) ~ 0.7-1.3 nats.
LABEL_TASKS = tuple(
    (d, sep, m) for d, sep in ((2, 1.5), (8, 0.8), (32, 0.45), (128, 0.25)) for m in ("identity", "leaky", "tanh")
)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    x: np.ndarray  # (n, dim_x) float
    y: np.ndarray  # (n, dim_y) float, or (n,) int64 labels
    true_mi: float  # nats

    @property
    def labels(self) -> bool:
        return self.y.ndim == 1


def gaussian_mixture_task(
    dim: int, sep: float, map_name: str = "identity", *, n: int = 10_000, num_classes: int = 10,
    seed: int = 0, mc_samples: int = 200_000,
) -> tuple[np.ndarray, np.ndarray, float, float]:  # fmt: skip
    """(h (n, dim) float64, y (n,) int64, I(h; y) in nats, its Monte Carlo stderr).

    y uniform over num_classes; h | y ~ N(mu_y, I) with mu_c ~ N(0, sep^2/2 I) (so E||mu_a - mu_b||^2
    = sep^2 dim). map_name: "identity"; "leaky": h -> Q2 leaky_relu(Q1 h, slope 0.5) (an invertible
    leaky-ReLU layer between random rotations); "tanh": h -> tanh(Q1 h) (saturating, invertible).
    Invertible maps of h leave I(h; y) unchanged, so the Monte Carlo truth is computed before the map.
    """
    maps = ("identity", "leaky", "tanh")
    if map_name not in maps:
        raise ValueError(f"map_name must be one of {maps}, got {map_name!r}")
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    means = torch.randn(num_classes, dim, generator=gen, dtype=f64) * sep / math.sqrt(2.0)

    def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(num_classes, (m,), generator=gen)
        return means[y] + torch.randn(m, dim, generator=gen, dtype=f64), y

    h_mc, _ = draw(mc_samples)
    log_post = torch.log_softmax(-0.5 * torch.cdist(h_mc, means).square(), dim=1)  # uniform prior cancels
    cond_entropy = -(log_post.exp() * log_post).sum(dim=1)  # H(y | h) per draw
    mi = math.log(num_classes) - float(cond_entropy.mean())
    mc_stderr = float(cond_entropy.std()) / math.sqrt(mc_samples)

    h, y = draw(n)
    q1 = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=f64))[0]
    q2 = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=f64))[0]
    if map_name == "leaky":
        z = h @ q1
        h = torch.where(z > 0, z, 0.5 * z) @ q2
    elif map_name == "tanh":
        h = torch.tanh(h @ q1)
    return h.numpy(), y.numpy(), mi, mc_stderr


def bmi_tasks(tasks_dir: str | Path, max_n: int | None = None) -> list[Task]:
    """The Beyond Normal tasks in tasks_dir (index.json + <task>.npz), in index order."""
    tasks_dir = Path(tasks_dir)
    index = json.loads((tasks_dir / "index.json").read_text())
    tasks = []
    for name, info in index.items():
        data = np.load(tasks_dir / f"{name}.npz")
        x, y = data["x"], data["y"]
        tasks.append(Task(name, x[:max_n], y[:max_n], float(info["mi_nats"])))
    return tasks


def label_tasks(n: int = 10_000, seed: int = 0) -> list[Task]:
    tasks = []
    for i, (dim, sep, map_name) in enumerate(LABEL_TASKS):
        h, y, mi, _ = gaussian_mixture_task(dim, sep, map_name, n=n, seed=seed + i)
        tasks.append(Task(f"labels-d{dim}-{map_name}", h, y, mi))
    return tasks


def real_tasks(n: int = 2000, seed: int = 0) -> list[Task]:
    """The real-activations suite, from real_activations.py beside this file (loaded by path, so the
    suite works however this script is loaded: run directly, or through `mi-analysis bench`)."""
    spec = importlib.util.spec_from_file_location("real_activations", Path(__file__).with_name("real_activations.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [Task(name, x, y, mi) for name, x, y, mi in module.tasks(n, seed)]


def suite_of(task: str) -> str:
    return "labels" if task.startswith("labels-") else "real" if task.startswith("real-") else "bmi"


def sklearn_probe(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Reference: scikit-learn LogisticRegression (defaults) on 60%, H(y_train) - CE on the other 40%."""
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[: int(0.6 * len(y))], order[int(0.6 * len(y)) :]
    freq = np.bincount(y[train]) / len(train)
    h_y = -float((freq[freq > 0] * np.log(freq[freq > 0])).sum())
    model = LogisticRegression(max_iter=1000).fit(x[train], y[train])
    log_q = model.predict_log_proba(x[test])[np.arange(len(test)), np.searchsorted(model.classes_, y[test])]
    terms = h_y + log_q
    half = Z_95 * terms.std(ddof=1) / math.sqrt(len(terms))
    return float(terms.mean()), (float(terms.mean() - half), float(terms.mean() + half))


def _runs(method: str, task: Task) -> bool:
    if method == "sklearn_logreg":
        return task.labels
    if method in NEURAL:
        return task.name in NEURAL_TASKS
    name = KSG_REFERENCE.split("[")[0] if method == KSG_REFERENCE else method
    y_type = get(name).y_type
    return y_type == "any" or (y_type == "labels") == task.labels


def _run_one(method: str, task: Task, seed: int) -> dict:
    start = time.perf_counter()
    if method == "sklearn_logreg":
        value, ci = sklearn_probe(task.x, task.y, seed)
        kind, name = "lower_bound", method
    else:
        params = {"k": 5} if method == KSG_REFERENCE else {}
        rows = slice(SUBSAMPLE.get(method))
        r = estimate(task.x[rows], task.y[rows], method=method.split("[")[0], seed=seed, **params)
        value, ci, kind = r.value, r.ci, r.kind
        name = method if method == KSG_REFERENCE else r.method  # "auto->NAME" says what auto picked
    seconds = time.perf_counter() - start
    return {
        "task": task.name, "dim_x": task.x.shape[1], "dim_y": 1 if task.labels else task.y.shape[1],
        "true_mi": task.true_mi, "method": name, "kind": kind, "estimate": value, "ci_low": ci[0], "ci_high": ci[1],
        "abs_error": abs(value - task.true_mi), "seconds": seconds,
    }  # fmt: skip


def run_benchmark(
    tasks_dir: str | Path | None,
    methods: Sequence[str] | None = None,
    *,
    max_n: int | None = None,
    budget_s: float = 300.0,
    labels_suite: bool = True,
    labels_n: int = 10_000,
    real_suite: bool = False,
    real_n: int = 2000,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> tuple[list[dict], list[tuple[str, str]], list[str]]:
    """Run `methods` (default: every registered one, plus "ksg[k=5]" and "sklearn_logreg") on the tasks.

    tasks_dir: folder of the Beyond Normal samples (None: skip that suite); max_n: use the first max_n
    samples of each of its tasks; budget_s: a method whose total time so far in a suite exceeds this
    is skipped on the remaining tasks of that suite; labels_suite / labels_n: run the 10-class I(h; y) suite with n samples.
    Returns (CSV rows, [(task, method) skipped for the budget], error messages of failed runs).
    """
    if methods is None:
        methods = [*available(), KSG_REFERENCE, "sklearn_logreg"]
    known = {*available(), KSG_REFERENCE, "sklearn_logreg"}
    unknown = sorted(set(methods) - known)
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid names: {sorted(known)}")
    tasks: list[Task] = []
    if tasks_dir is not None:
        tasks += bmi_tasks(tasks_dir, max_n)
    if labels_suite:
        tasks += label_tasks(labels_n, seed)
    if real_suite:
        tasks += real_tasks(real_n, seed)
    rows: list[dict] = []
    spent = {(suite, m): 0.0 for suite in ("bmi", "labels", "real") for m in methods}  # per (suite, method)
    skipped: list[tuple[str, str]] = []
    errors: list[str] = []
    for task in tasks:
        for method in methods:
            if not _runs(method, task):
                continue
            if spent[suite_of(task.name), method] > budget_s:
                skipped.append((task.name, method))
                continue
            try:
                row = _run_one(method, task, seed)
            except ValueError as err:  # e.g. --max-n too small for a method's splits: report, go on
                errors.append(f"{method} on {task.name}: {err}")
                progress(f"{task.name:48s} {method:30s} ERROR {err}")
                continue
            spent[suite_of(task.name), method] += row["seconds"]
            rows.append(row)
            progress(f"{task.name:48s} {row['method']:30s} {row['estimate']:8.3f} (true {task.true_mi:.3f}) {row['seconds']:6.1f}s")
    return rows, skipped, errors


def write_csv(rows: Iterable[dict], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _family(method: str) -> str:
    return method.split("->")[0]


def auto_target(task: str, dim_x: int, dim_y: int, abs_error: float, true_mi: float) -> tuple[str, bool] | None:
    """(target text, met) of the issue's targets for auto on one Beyond Normal task; None when untargeted."""
    if task.startswith("labels-"):
        return None
    if max(dim_x, dim_y) <= 5 and "student" not in task:
        return "<= 0.1 nats or <= 10%", abs_error <= 0.1 or abs_error <= 0.1 * true_mi
    if task.startswith("multinormal-") and max(dim_x, dim_y) in (25, 50):
        return "<= 0.25 nats", abs_error <= 0.25
    return None


def summarize(rows: Sequence[dict], skipped: Sequence[tuple[str, str]] = (), errors: Sequence[str] = ()) -> str:
    """Markdown summary: per method, auto's per-task targets, the labels suite."""
    bmi = [r for r in rows if suite_of(r["task"]) == "bmi"]
    lab = [r for r in rows if suite_of(r["task"]) == "labels"]
    real = [r for r in rows if suite_of(r["task"]) == "real"]
    out = ["# MI estimators on known-answer tasks", ""]

    def table(suite: list[dict], title: str) -> None:
        out.extend([f"## {title}", "", "| method | kind | tasks | median abs error | mean abs error | within 0.1 nats or 10% | total s | skipped (budget) |",
                    "|---|---|---|---|---|---|---|---|"])  # fmt: skip
        for fam in sorted({_family(r["method"]) for r in suite}):
            rs = [r for r in suite if _family(r["method"]) == fam]
            errs = [r["abs_error"] for r in rs]
            ok = sum(r["abs_error"] <= max(0.1, 0.1 * r["true_mi"]) for r in rs)
            kinds = "/".join(sorted({r["kind"] for r in rs}))
            tasks = {r["task"] for r in suite}
            n_skipped = sum(task in tasks and method == fam for task, method in skipped)
            out.append(f"| {fam} | {kinds} | {len(rs)} | {statistics.median(errs):.3f} | {statistics.fmean(errs):.3f} | "
                       f"{ok}/{len(rs)} | {sum(r['seconds'] for r in rs):.1f} | {n_skipped} |")  # fmt: skip
        out.append("")

    if bmi:
        table(bmi, f"Beyond Normal ({len({r['task'] for r in bmi})} tasks)")
        auto = [r for r in bmi if _family(r["method"]) == "auto"]
        ref = [r for r in bmi if r["method"] == KSG_REFERENCE]
        if auto and ref:
            ma, mr = statistics.median(r["abs_error"] for r in auto), statistics.median(r["abs_error"] for r in ref)
            out.append(f"**auto vs {KSG_REFERENCE}: median abs error {ma:.3f} vs {mr:.3f} nats -> "
                       f"{'met' if ma < mr else 'NOT met'}** (target: auto below the benchmark's KSG k=5)\n")  # fmt: skip
        if auto:
            out.extend(["### auto, per task", "", "| task | dims | true MI | picked | estimate | 95% CI | abs error | target | met |",
                        "|---|---|---|---|---|---|---|---|---|"])  # fmt: skip
            met = total = 0
            for r in auto:
                target = auto_target(r["task"], r["dim_x"], r["dim_y"], r["abs_error"], r["true_mi"])
                text, ok = target if target else ("-", None)
                if ok is not None:
                    total, met = total + 1, met + ok
                out.append(f"| {r['task']} | {r['dim_x']}x{r['dim_y']} | {r['true_mi']:.3f} | {r['method'].split('->')[-1]} | "
                           f"{r['estimate']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['abs_error']:.3f} | {text} | "
                           f"{'-' if ok is None else ('yes' if ok else 'NO')} |")  # fmt: skip
            out.append(f"\nauto meets {met} of {total} per-task targets.\n")
    if lab:
        table(lab, "Labels: I(h; y), 10 classes, Gaussian mixture (+ invertible maps), n = 10000")
        out.extend(["| task | true MI | " + " | ".join(sorted({_family(r['method']) for r in lab})) + " |",
                    "|---|---|" + "---|" * len({_family(r['method']) for r in lab})])  # fmt: skip
        for task in dict.fromkeys(r["task"] for r in lab):
            rs = {_family(r["method"]): r for r in lab if r["task"] == task}
            cells = [f"{rs[f]['estimate'] - rs[f]['true_mi']:+.3f}" if f in rs else "-" for f in sorted({_family(r['method']) for r in lab})]
            out.append(f"| {task} | {next(iter(rs.values()))['true_mi']:.3f} | " + " | ".join(cells) + " |")
        auto = [r["abs_error"] for r in lab if _family(r["method"]) == "auto"]
        if auto:
            mae = statistics.fmean(auto)
            out.append(f"\n(cells: estimate - truth). **auto mean abs error {mae:.3f} nats -> target <= 0.05 "
                       f"{'met' if mae <= 0.05 else 'NOT met'}**\n")  # fmt: skip
    if real:
        families = sorted({_family(r["method"]) for r in real})
        table(real, f"Real activations ({len({r['task'] for r in real})} tasks: ReLU, quantised, heavy-tailed, discrete)")
        out.extend(["| task | true MI | " + " | ".join(families) + " |", "|---|---|" + "---|" * len(families)])
        failed = {(e.split(" on ")[1].split(":")[0], e.split(" on ")[0]) for e in errors}
        for task in dict.fromkeys(r["task"] for r in real):
            rs = {_family(r["method"]): r for r in real if r["task"] == task}
            cells = [f"{rs[f]['estimate'] - rs[f]['true_mi']:+.3f}" if f in rs else ("refused" if (task, f) in failed else "-")
                     for f in families]  # fmt: skip
            out.append(f"| {task} | {next(iter(rs.values()))['true_mi']:.3f} | " + " | ".join(cells) + " |")
        out.append("\n(cells: estimate - truth; refused: the method raised a ValueError that says why, listed below)\n")
    if errors:
        out.extend(["## Runs that failed", ""] + [f"- {e}" for e in errors] + [""])
    out.append("Errors of non_shannon methods are against the Shannon MI and only show how far apart the two are.")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "bmi"),
                        help="folder with the Beyond Normal samples (index.json + *.npz)")  # fmt: skip
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="output folder")
    parser.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    parser.add_argument("--max-n", type=int, default=None, help="use the first N samples of each Beyond Normal task")
    parser.add_argument("--budget-s", type=float, default=300.0, help="per-method time budget per suite, seconds")
    parser.add_argument("--no-labels", action="store_true", help="skip the 10-class I(h; y) suite")
    parser.add_argument("--no-bmi", action="store_true", help="skip the Beyond Normal suite")
    parser.add_argument("--real", action="store_true", help="run the real-activations suite (estimators_real.*)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: no thread contention on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",") if args.methods else None
    rows, skipped, errors = run_benchmark(None if args.no_bmi else args.tasks, methods, max_n=args.max_n, budget_s=args.budget_s,
                                  labels_suite=not args.no_labels, real_suite=args.real, seed=args.seed)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stem, suites in (("estimators_bmi", ("bmi", "labels")), ("estimators_real", ("real",))):
        part = [r for r in rows if suite_of(r["task"]) in suites]
        if part:  # a run of one suite never overwrites the other's files
            mine = [e for e in errors if suite_of(e.split(" on ")[1].split(":")[0]) in suites]
            write_csv(part, out / f"{stem}.csv")
            (out / f"{stem}.md").write_text(summarize(part, skipped, mine))
            print(f"wrote {out / f'{stem}.csv'} and {out / f'{stem}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
