"""`mi-analysis bench memory|train --arch` with architectures from outside the package."""

import json

from mi_analysis import bench

ARCH = "torchvision:mobilenet_v3_small"


def _run(tmp_path, *argv):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    return json.loads(path.read_text())


def test_bench_memory_of_a_torchvision_model_against_k(tmp_path):
    result = _run(tmp_path, "memory", "--arch", ARCH, "--modules", "2", "4", "--batch-size", "2", "--image-size", "16")
    rows = {row["label"]: row for row in result["rows"]}
    assert list(rows) == [f"{ARCH} E2E", *(f"{ARCH} {c} K={k}" for c in ("R0", "E") for k in (2, 4))]
    assert rows[f"{ARCH} E2E"]["saved_ratio"] == 1.0
    assert rows[f"{ARCH} R0 K=4"]["saved_ratio"] < rows[f"{ARCH} R0 K=2"]["saved_ratio"] < 1.0
    assert rows[f"{ARCH} R0 K=4"]["retained_saved_bytes"] == 0 < rows[f"{ARCH} E K=4"]["retained_saved_bytes"]


def test_bench_train_of_a_torchvision_model(tmp_path):
    result = _run(tmp_path, "train", "--arch", ARCH, "--modules", "2", "--contexts", "E", "--batch-size", "2",
                  "--image-size", "16", "--steps", "1", "--warmup", "0")
    assert [row["label"] for row in result["rows"]] == ["E2E", "E K=2"]
    assert result["settings"]["arch"] == ARCH and result["rows"][1]["saved_ratio"] < 1.0


def test_bench_memory_and_train_of_a_token_model_from_a_factory(tmp_path, tiny_vit):
    """(B, T, C) units: R0 keeps fewer saved bytes as K grows; E's patch-embedding encoder is what
    is kept across cuts; the step benchmark trains it."""
    result = _run(tmp_path / "memory", "memory", "--arch", tiny_vit, "--modules", "2", "4", "--batch-size", "2",
                  "--image-size", "16")
    rows = {row["label"]: row for row in result["rows"]}
    assert list(rows) == [f"{tiny_vit} E2E", *(f"{tiny_vit} {c} K={k}" for c in ("R0", "E") for k in (2, 4))]
    assert rows[f"{tiny_vit} R0 K=4"]["saved_ratio"] < rows[f"{tiny_vit} R0 K=2"]["saved_ratio"] < 1.0
    assert rows[f"{tiny_vit} R0 K=4"]["retained_saved_bytes"] == 0 < rows[f"{tiny_vit} E K=4"]["retained_saved_bytes"]
    result = _run(tmp_path / "train", "train", "--arch", tiny_vit, "--modules", "2", "--contexts", "E",
                  "--batch-size", "2", "--image-size", "16", "--steps", "1", "--warmup", "0")
    assert [row["label"] for row in result["rows"]] == ["E2E", "E K=2"]
