"""Each `mi-analysis bench` command at a tiny size: the structure of its table, exact E2E ratios,
and local learning below E2E in memory. No timing is asserted."""

import json
import sys

import pytest
import torch

from mi_analysis import bench, cli
from mi_analysis.bench.common import markdown, ratio, target


def _run(tmp_path, *argv):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 1 and files[0].with_suffix(".md").is_file()
    return json.loads(files[0].read_text())


def _columns_present(result):
    keys = [key for key, _, _ in result["columns"]]
    assert all(key in row for row in result["rows"] for key in keys)
    table = markdown(result)
    assert table.count("\n| ") >= len(result["rows"]) + 1  # header + one line per row


def test_bench_memory_tiny(tmp_path):
    result = _run(tmp_path, "memory", "--archs", "resnet32", "--batch-size", "2", "--image-size", "8")
    assert result["name"] == "memory-cpu"
    _columns_present(result)
    rows = {row["label"]: row for row in result["rows"]}
    assert rows["resnet32 E2E"]["saved_ratio"] == 1.0 and rows["resnet32 E2E"]["live_ratio"] == 1.0
    for label, row in rows.items():
        if row["num_modules"] > 1:
            assert row["saved_ratio"] < 1.0, label
        if row["context"] == "R0":  # plain GLL keeps nothing saved across a cut
            assert row["retained_saved_bytes"] == 0, label
    saved = {k: rows[f"resnet32 R0 K={k}"]["saved_ratio"] for k in (4, 8, 16)}
    assert saved[16] < saved[8] < saved[4]
    assert rows["resnet32 E K=16 +recompute"]["peak_saved_bytes"] < rows["resnet32 E K=16"]["peak_saved_bytes"]
    assert {t["what"].split(":")[0] for t in result["targets"]} >= {"resnet32 R0 K=4", "resnet32 E K=16 +recompute"}
    assert all(row["cuda_peak_bytes"] is None for row in rows.values())  # CPU run


def test_bench_train_tiny(tmp_path):
    result = _run(tmp_path, "train", "--arch", "resnet20", "--modules", "2", "4", "--batch-size", "2",
                  "--image-size", "8", "--steps", "1", "--warmup", "0")
    assert result["name"] == "train-cpu"
    _columns_present(result)
    labels = [row["label"] for row in result["rows"]]
    assert labels == ["E2E", "R0 K=2", "R0 K=4", "E K=2", "E K=4"]
    e2e = result["rows"][0]
    assert e2e["time_per_flop_ratio"] == 1.0 and e2e["images_per_s_ratio"] == 1.0 and e2e["saved_ratio"] == 1.0
    for row in result["rows"][1:]:
        assert row["saved_ratio"] < 1.0
        assert row["forward_mflops_per_image"] > e2e["forward_mflops_per_image"]  # heads (and encoders) add work
        assert row["step_mflops_per_image"] > row["forward_mflops_per_image"]
        assert len(row["step_times_s"]) == 1
    assert [t["what"] for t in result["targets"]] == ["E K=4: time per forward FLOP / E2E"]


def test_bench_train_flags_name_the_output(tmp_path):
    result = _run(tmp_path, "train", "--arch", "resnet20", "--modules", "2", "--contexts", "R0",
                  "--batch-size", "2", "--image-size", "8", "--steps", "1", "--warmup", "0", "--bf16",
                  "--channels-last", "--parts")
    assert result["name"] == "train-cpu-bf16-channels_last"
    assert result["settings"]["bf16"] and result["settings"]["channels_last"]
    assert result["targets"] == []  # no E configuration, no time-per-FLOP target
    e2e_parts, gll_parts = (section["rows"] for section in result["sections"])
    assert [row["kind"] for row in e2e_parts] == ["unit", "classifier"]
    assert [row["kind"] for row in gll_parts] == ["unit", "head", "classifier"]
    assert sum(row["time_share"] for row in gll_parts) == pytest.approx(1.0)
    assert "parts of R0 K=2" in (tmp_path / "train-cpu-bf16-channels_last.md").read_text()


def test_bench_ksg_tiny(tmp_path):
    result = _run(tmp_path, "ksg", "--n", "300", "--repeats", "1")
    _columns_present(result)
    values = [row["value"] for row in result["rows"]]
    assert values[0] == pytest.approx(values[2], abs=1e-9)  # torch tiles and scipy k-d tree agree
    assert result["rows"][2]["speedup"] == 1.0
    agreement = next(t for t in result["targets"] if t["what"].startswith("|torch - scipy|"))
    assert agreement["met"] is True


def test_bench_estimators_forwards_to_the_suite(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["estimators", "--help"])
    assert exit_info.value.code == 0
    assert "--budget-s" in capsys.readouterr().out  # the suite's own options


def test_unknown_benchmark_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="expected one of"):
        bench.main(["nope"])
    assert cli.main(["bench", "nope"]) == 2
    assert "memory" in capsys.readouterr().err


def test_bench_help_lists_the_benchmarks(capsys):
    assert bench.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in bench.BENCHMARKS)


def test_ratio_and_target_rules():
    assert ratio(3.0, 3.0) == 1.0 and ratio(1.0, 4.0) == 0.25 and ratio(None, 1.0) is None
    assert target("a", "<=", 0.40, 0.4049)["met"] is True  # judged as written: 0.40
    assert target("a", "<=", 0.40, 0.406)["met"] is False
    assert target("a", ">=", 10, 9.996)["met"] is True
    assert target("a", "<=", 1e-9, 1e-6, decimals=None)["met"] is False
    assert target("a", "<=", 1.0, None)["met"] is None


def test_bench_analysis_tiny(tmp_path):
    result = _run(tmp_path, "analysis", "--quick")
    _columns_present(result)
    epoch, analysis = result["rows"]
    assert epoch["ratio"] == 1.0 and analysis["ratio"] == pytest.approx(analysis["seconds"] / epoch["seconds"])
    assert "4 points" in analysis["task"] and "(12 mi.csv rows)" in analysis["task"]  # 4 x (1 I(h;y) + 2 I(h;x))


def test_bench_ksg_load_times_alone_and_beside_busy_processes(tmp_path):
    result = _run(tmp_path, "ksg", "--load", "1", "--n", "300", "--repeats", "1")
    assert result["name"] == "ksg-cpu-load1"
    _columns_present(result)
    assert [row["threads_setting"] for row in result["rows"]][0] == "auto"
    assert all(row["loaded_ratio"] == row["seconds_loaded"] / row["seconds_alone"] for row in result["rows"])
    assert result["targets"][0]["what"].startswith("KSG n=300, threads='auto': beside 1 busy")


def test_busy_neighbours_are_gone_after_the_block():
    from mi_analysis.bench.load import busy_neighbours

    with busy_neighbours(1, settle_s=0.1) as procs:
        assert procs[0].poll() is None
    assert procs[0].poll() is not None


def test_bench_memory_grid_covers_every_valid_mode_and_k(tmp_path):
    from mi_analysis.bench.memory import grid

    labels = [case.label for case in grid("resnet32", ("R0", "R2E"), (2, 4))]
    assert labels == ["resnet32 E2E", "resnet32 R0 K=2", "resnet32 R0 K=4", "resnet32 R2E K=2",
                      "resnet32 R2E K=2 +recompute", "resnet32 R2E K=4", "resnet32 R2E K=4 +recompute"]
    assert [case.label for case in grid("resnet32", ("R4",), (2, 4))] == [
        "resnet32 E2E", "resnet32 R4 K=4", "resnet32 R4 K=4 +recompute"]   # R4 needs K >= 4
    result = _run(tmp_path, "memory", "--grid", "--modes", "E", "--modules", "2", "--batch-size", "2",
                  "--image-size", "8")
    assert result["name"] == "memory-cpu-grid"
    assert [row["live_ratio"] for row in result["rows"]][0] == 1.0
    assert len(result["rows"]) == 3


def test_bench_train_encoder_variants_are_extra_rows(tmp_path):
    result = _run(tmp_path, "train", "--arch", "resnet20", "--modules", "2", "--contexts", "E",
                  "--batch-size", "2", "--image-size", "8", "--steps", "1", "--warmup", "0", "--encoder-variants")
    assert [row["label"] for row in result["rows"]] == [
        "E2E", "E K=2", "E K=2 +recompute", "E K=2 (plain autograd encoders)",
        "E K=2 +recompute (plain autograd encoders)"]
    assert result["targets"][0]["what"].startswith("E K=2:")


FAKE_REFERENCE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.fc = nn.Linear(3 * 8 * 8, 10)
        self.mean = torch.zeros(1).cuda()   # as the reference does; must be a no-op on the CPU

    def forward(self, img, target=None):
        loss = nn.functional.cross_entropy(self.fc(img.flatten(1)), target)
        loss.backward()
        return None, loss


def resnet32(**kwargs):
    return Net(**kwargs)
'''


def test_reference_runner_builds_the_papers_settings_and_steps(tmp_path):
    from mi_analysis.bench.reference import ReferenceNet

    (tmp_path / "networks_dev").mkdir()
    (tmp_path / "networks_dev" / "__init__.py").write_text("")
    (tmp_path / "networks_dev" / "resnet.py").write_text(FAKE_REFERENCE)
    net = ReferenceNet(tmp_path, "resnet32", 16, "E", 4, 8, torch.device("cpu"))
    assert net.net.kwargs["local_module_num"] == 16 and net.net.kwargs["context_mode"] == "E"
    assert net.net.kwargs["local_loss_mode"] == "cross_entropy" and net.net.kwargs["aux_net_config"] == "1c2f"
    net.training_step(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    assert net.net.fc.weight.grad is not None
    with pytest.raises(ValueError, match="--reference .* no networks_dev/resnet.py"):
        ReferenceNet(tmp_path / "missing", "resnet32", 16, "E", 4, 8, torch.device("cpu"))
    sys.modules.pop("networks_dev.resnet"), sys.modules.pop("networks_dev")
