"""The distributed benchmark runs end to end on tiny settings and writes its table."""
import csv

from mi_analysis.training.distributed.benchmark import main


def test_benchmark_writes_one_row_per_setting(tmp_path, capsys):
    out = tmp_path / "distributed.csv"
    assert main(["--nprocs", "2", "--parallel", "data", "module", "--schedules", "async", "--arch", "resnet20",
                 "--modules", "2", "--image-size", "8", "--batch-size", "8", "--steps", "2", "--warmup", "1",
                 "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [(r["parallel"], r["schedule"], r["nproc"]) for r in rows] == [("data", "-", "2"), ("module", "async", "2")]
    assert all(float(r["images_per_s"]) > 0 and float(r["cores_used"]) > 0 for r in rows)
    assert "| data | - | 2 | 1 |" in capsys.readouterr().out
