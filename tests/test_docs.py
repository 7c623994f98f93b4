"""The docs state the papers' facts the code relies on; these tests keep docs and code in step,
and keep the repository free of pointers to notes its users do not have."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mi_analysis.models import build
from mi_analysis.models.splits import paper_cuts

ROOT = Path(__file__).resolve().parents[1]
MODELS_DOC = (ROOT / "docs" / "models.md").read_text()


def _cut_rows() -> list[tuple[str, str, str, int, tuple[tuple[int, int], ...]]]:
    rows = []
    for line in MODELS_DOC.splitlines():
        match = re.fullmatch(r"\| (resnet\d+) \| (equal|balanced) \| ([^|]+) \| (\d+) \| ([^|]+) \|", line)
        if match:
            arch, split, datasets, k, cuts = match.groups()
            pairs = tuple((int(s), int(b)) for s, b in re.findall(r"\((\d+),(\d+)\)", cuts))
            rows.append((arch, split, datasets.strip(), int(k), pairs))
    return rows


def test_the_cut_tables_in_the_docs_are_the_code_tables():
    rows = _cut_rows()
    assert len(rows) == 20  # 10 equal (ResNet-32/110 x K in 2,3,4,8,16), 6 ResNet-110 balanced, 4 ResNet-32 balanced
    for arch, split, datasets, k, pairs in rows:
        dataset = "stl10" if datasets == "STL-10" else "cifar10"
        assert paper_cuts(arch, k, split, dataset) == pairs, (arch, split, datasets, k)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("arch", ["resnet32", "resnet110"])
def test_the_parameter_counts_in_the_docs_are_the_models(arch):
    label = {"resnet32": "ResNet-32", "resnet110": "ResNet-110"}[arch]
    rows = re.findall(rf"\| {label} \| (\d+) \| ([\d,]+) / ([\d,]+) \| ([\d,]+) / ([\d,]+) / ([\d,]+) \| ([\d,]+) \|", MODELS_DOC)
    assert [int(r[0]) for r in rows] == [2, 4, 8, 16]
    for k, heads_ce, heads_contrast, e, r1, r1e, decoders in rows:
        k = int(k)
        assert build(arch, k, "R0").parameter_counts()["local_heads"] == _number(heads_ce)
        assert build(arch, k, "R0", local_loss="contrast").parameter_counts()["local_heads"] == _number(heads_contrast)
        for context, expected in (("E", e), ("R1", r1), ("R1E", r1e)):
            assert build(arch, k, context).parameter_counts()["context"] == _number(expected)
        assert build(arch, k, "R0", reconstruct=True).parameter_counts()["decoders"] == _number(decoders)


def test_the_repository_does_not_point_at_notes_users_do_not_have():
    pattern = r"REFERENCE(\.md| section)|DESIGN\.md|shared/(REFERENCE|DESIGN)"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "mi_analysis", "README.md", "docs", "notebooks"],
                             capture_output=True, text=True)
    files = [ROOT / name for name in tracked.stdout.split()] if tracked.returncode == 0 else [
        *ROOT.glob("mi_analysis/**/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("notebooks/*.ipynb")]
    hits = [f"{path.relative_to(ROOT)}:{i}" for path in files if path.is_file()
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if re.search(pattern, line)]
    assert not hits, f"the repository points at notes outside it: {hits}"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name
