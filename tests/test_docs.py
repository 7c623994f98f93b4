"""The docs state the papers' facts, and they agree with the code: the tables of docs/models.md are
parsed and compared with mi_analysis.models, so a change on either side fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mi_analysis.models import LocalNet, build, splits
from mi_analysis.models.context import CONTEXT_MODES, context_mode
from mi_analysis.models.heads import paper_lambdas
from mi_analysis.models.resnet import available_archs, blocks_per_stage, resnet_units
from mi_analysis.models.rules import auglocal_depths, auglocal_units

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODELS_MD = (DOCS / "models.md").read_text()
PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "stl10")

# Notes kept outside the repository, which users do not have; spelled in pieces so this file
# does not match itself.
OUTSIDE_NOTES = re.compile("REFERENCE" + r"(\.md|\s+section)|" + "DESIGN" + r"\.md")


def repository_texts():
    """Every text file a user gets: the package, README, docs, notebooks, tests, benchmarks."""
    for folder in ("mi_analysis", "docs", "notebooks", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".md", ".ipynb", ".sh", ".txt", ".yaml"):
                yield path
    yield ROOT / "README.md"


def test_no_mention_of_notes_outside_the_repository():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in repository_texts()
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if OUTSIDE_NOTES.search(line)]
    assert not hits, "cite the papers or docs/ instead:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_should():
    assert OUTSIDE_NOTES.search("see " + "REFERENCE" + ".md section 3")
    assert OUTSIDE_NOTES.search("(" + "REFERENCE" + " section 7)")
    assert OUTSIDE_NOTES.search("DESIGN" + ".md")
    assert not OUTSIDE_NOTES.search("KSG_REFERENCE = 1.409")


def test_readme_links_every_docs_page_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"
    for source in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", source.read_text()):
            assert (source.parent / target).exists(), f"{source.name} links to missing {target}"


# ---------------------------------------------------------------- tables of docs/models.md
def table_after(heading: str, text: str = MODELS_MD) -> list[dict[str, str]]:
    """Rows of the first markdown table after the line `heading`, as dicts keyed by the header."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    header, rule, *body = rows
    assert set("".join(rule)) <= {"-", " "}, f"no table after {heading!r}"
    return [dict(zip(header, row)) for row in body]


def cut_pairs(cell: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(s), int(b)) for s, b in re.findall(r"\((\d+),(\d+)\)", cell))


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


PAPER_ROWS = table_after("### Paper tables")


def _documented_tables():
    """(arch, split, dataset, K) -> documented cuts; "any" stands for every paper data set."""
    tables = {}
    for row in PAPER_ROWS:
        datasets = PAPER_DATASETS if row["data sets"] == "any" else row["data sets"].split(", ")
        for dataset in datasets:
            tables[(row["arch"], row["split"], dataset, int(row["K"]))] = cut_pairs(row["cuts after (stage, block)"])
    return tables


DOCUMENTED = _documented_tables()


@pytest.mark.parametrize("key", sorted(DOCUMENTED), ids=lambda k: "-".join(map(str, k)))
def test_documented_paper_tables_are_the_code_tables(key):
    arch, split, dataset, k = key
    assert splits.paper_cuts(arch, k, split, dataset) == DOCUMENTED[key]


def test_every_paper_table_of_the_code_is_documented():
    in_code = {(arch, split, dataset, k)
               for arch in available_archs() for split in splits.SPLITS for dataset in PAPER_DATASETS
               for k in range(2, 17) if splits.paper_cuts(arch, k, split, dataset) is not None}
    assert in_code == set(DOCUMENTED)


@pytest.mark.parametrize("row", PAPER_ROWS + table_after("Examples (32x32 inputs), derived by the rules, not published:"),
                         ids=lambda r: f"{r['arch']}-{r['split']}-K{r['K']}")
def test_build_cuts_where_the_docs_say(row):
    """The builder uses the documented cuts: paper tables where listed, the rules elsewhere."""
    arch, split, k = row["arch"], row["split"], int(row["K"])
    dataset = row.get("data sets", "cifar10").split(", ")[0].replace("any", "cifar10")
    net = build(arch, k, split=split, dataset=dataset)
    per_stage = blocks_per_stage(arch)
    assert tuple(splits.stage_block(c, per_stage) for c in net.cuts) == cut_pairs(row["cuts after (stage, block)"])
    is_table = splits.paper_cuts(arch, k, split, dataset) is not None
    assert is_table == ("data sets" in row)


def test_lambda_table_is_the_code_table():
    rows = table_after("## Decoder and the (lambda_x, lambda_y) schedule (`models/heads.py`)")
    documented = {(r["arch"], r["data set"], int(r["K"])):
                  tuple(number(r[c]) for c in ("lambda_x1", "lambda_y1", "lambda_x2", "lambda_y2")) for r in rows}
    in_code = {(arch, dataset, k): paper_lambdas(arch, k, dataset)
               for arch in available_archs() for dataset in PAPER_DATASETS for k in range(2, 17)
               if paper_lambdas(arch, k, dataset) is not None}
    assert documented == in_code


def test_context_mode_table_is_the_code_table():
    rows = table_after("## Context supply modes (`models/context.py`)")
    documented = {}
    for row in rows:
        names = row["mode"].split(", ")
        counts = [0] if row["residual encoders of earlier module inputs (Rn)"].startswith("none") else \
            [int(n) for n in re.findall(r"\d+", row["residual encoders of earlier module inputs (Rn)"])]
        assert len(counts) in (1, len(names)), row
        for name, n_res in zip(names, counts * len(names) if len(counts) == 1 else counts):
            documented[name] = (row["encoder of the raw input (E)"] == "yes", n_res)
    assert set(documented) == set(CONTEXT_MODES)
    for name, (has_e, n_res) in documented.items():
        mode = context_mode(name, 16)
        assert (mode.has_E, mode.n_res) == (has_e, n_res), name


COUNT_ROWS = table_after("## Parameter counts (`LocalNet.parameter_counts()`)")


@pytest.mark.parametrize("row", COUNT_ROWS, ids=lambda r: f"{r['arch']}-K{r['K']}-{r['context mode']}-{r['local loss']}-{r['decoder']}")
def test_documented_parameter_counts(row):
    net = build(row["arch"], int(row["K"]), row["context mode"], local_loss=row["local loss"],
                reconstruct=row["decoder"] == "yes")
    documented = {key: int(number(row[column])) for key, column in (
        ("backbone", "backbone"), ("local_heads", "local heads"), ("context", "context"),
        ("decoders", "decoders"), ("total", "total"))}
    assert net.parameter_counts() == documented


def test_where_the_rules_reproduce_the_paper_tables_as_the_docs_say():
    """docs/models.md: on 32x32 inputs the equal rule gives every ResNet-32 equal table and
    ResNet-110's at K = 2, 3; the balanced rule ResNet-32's at K = 2, 16 and ResNet-110's at K = 2."""
    said = {("resnet32", "equal", k) for k in (2, 3, 4, 8, 16)} | {("resnet110", "equal", 2), ("resnet110", "equal", 3),
            ("resnet32", "balanced", 2), ("resnet32", "balanced", 16), ("resnet110", "balanced", 2)}
    reproduced = set()
    for arch, split, dataset, k in DOCUMENTED:
        if dataset != "cifar10":
            continue
        units, classifier = resnet_units(arch)  # given as an int K, from_units cuts by the rule
        ruled = LocalNet.from_units(units, k, classifier, input_shape=(3, 32, 32), num_classes=10, split=split)
        if ruled.cuts == splits.paper_unit_cuts(arch, k, split, blocks_per_stage(arch)):
            reproduced.add((arch, split, k))
    assert reproduced == said


# ---------------------------------------------------------------- local-learning rules
@pytest.mark.parametrize("row", table_after("### AugLocal's heads on the CIFAR ResNets"),
                         ids=lambda r: f"{r['arch']}-K{r['K']}")
def test_documented_auglocal_heads(row):
    net = build(row["arch"], int(row["K"]), local_rule="auglocal")
    last = len(net.units) - 1
    depths = auglocal_depths(net.cuts, last)
    assert net.cuts == tuple(int(c) for c in row["cuts"].split(", "))
    assert depths == tuple(int(d) for d in row["depths"].split(", "))
    documented = [tuple(int(u) for u in head.split()) for head in row["units copied per head"].split("; ")]
    assert documented == [auglocal_units(c, last, d) for c, d in zip(net.cuts, depths)]


@pytest.mark.parametrize("row", table_after("### Parameters of the local heads per rule"),
                         ids=lambda r: f"{r['arch']}-K{r['K']}-{r['rule']}")
def test_documented_rule_head_counts(row):
    counts = build(row["arch"], int(row["K"]), local_rule=row["rule"]).parameter_counts()
    assert counts["local_heads"] == int(number(row["local heads (trained)"]))
    assert counts.get("momentum_copies", 0) == int(number(row["momentum copies (frozen)"]))
