"""Every bad input of the issue "nothing lost, nothing silent" gets one line `error: ...` naming the
argument or file and what was expected, exit code 2, and no run folder is left behind."""

import gzip
import re

import numpy as np
import pytest

from mi_analysis import cli

TINY = ["--dataset", "synthetic", "--arch", "resnet20", "--image-size", "16", "--train-subset", "64",
        "--test-subset", "32", "--epochs", "1", "--batch-size", "32", "--no-progress"]


def _one_error_line(capsys, command, pattern):
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"mi-analysis {command}: error: "), err
    assert re.search(pattern, lines[0]), err
    return lines[0]


BAD_TRAIN_FLAGS = [
    (["--base-lr", "nan"], r"train.base_lr must be a positive number, got nan"),
    (["--base-lr", "-1"], r"train.base_lr must be a positive number"),
    (["--epochs", "0"], r"train.epochs must be an int >= 1, got 0"),
    (["--save-epochs", "5"], r"train.save_epochs must be epochs in 1..1 \(train.epochs\), got \[5\]"),
    (["--set", "train.warmup_epochs=-1"], r"train.warmup_epochs must be an int >= 0, got -1"),
    (["--set", "train.eval_every=0"], r"train.eval_every must be an int >= 1, got 0"),
    (["--seed", "-1"], r"train.seed must be an int >= 0, got -1"),
    (["--device", "tpu"], r"train.device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    (["--set", "train.momentum=0"], r"train.nesterov needs train.momentum > 0"),
    (["--val-fraction", "1.5"], r"data.val_fraction must be a number in \[0, 1\), got 1.5"),
    (["--train-subset", "0"], r"data.train_subset must be an int >= 1, got 0"),
    (["--nproc", "0"], r"nproc must be an int >= 1, got 0"),
    (["--modules", "40"], r"(?i)module"),  # K larger than the net's units: found when the net is built
    (["--set", "train.epochs"], r"--set expects SECTION.KEY=VALUE, got 'train.epochs'"),
]


@pytest.mark.parametrize("flags, pattern", BAD_TRAIN_FLAGS, ids=[" ".join(f) for f, _ in BAD_TRAIN_FLAGS])
def test_bad_train_settings_are_refused_before_a_run_folder_exists(tmp_path, capsys, flags, pattern):
    out = tmp_path / "runs"
    assert cli.main(["train", *TINY, "--out-dir", str(out), *flags]) == 2
    _one_error_line(capsys, "train", pattern)
    assert not out.exists() or not any(out.iterdir())


def test_bad_config_files_name_the_file(tmp_path, capsys):
    malformed = tmp_path / "bad.yaml"
    malformed.write_text("train: [\n")
    assert cli.main(["train", "--config", str(malformed)]) == 2
    _one_error_line(capsys, "train", rf"config file {malformed} is not valid YAML at line 2")
    assert cli.main(["train", "--config", str(tmp_path)]) == 2
    _one_error_line(capsys, "train", rf"config file {tmp_path} is not a file \(a folder\)")


def test_an_out_dir_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("")
    assert cli.main(["train", *TINY, "--out-dir", str(path)]) == 2
    _one_error_line(capsys, "train", rf"out_dir {path} is a file; expected a folder")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_gz_file_of_a_data_folder_is_named(tmp_path, capsys, damage):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion"
    folder.mkdir()
    for split, n in (("train", 20), ("t10k", 8)):
        for kind, array in (("images", rng.integers(0, 256, (n, 28, 28))), ("labels", np.arange(n) % 10)):
            header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
            with gzip.open(folder / f"{split}-{kind}-idx{array.ndim}-ubyte.gz", "wb") as f:
                f.write(header + array.astype(np.uint8).tobytes())
    bad = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(bad.read_bytes())
    if damage == "flip":
        data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    else:
        data = data[: len(data) // 2]
    bad.write_bytes(bytes(data))
    out = tmp_path / "runs"
    argv = ["train", "--dataset", "fashion_mnist", "--root", str(folder), "--arch", "resnet20", "--epochs", "1",
            "--out-dir", str(out), "--no-progress"]
    assert cli.main(argv) == 2
    _one_error_line(capsys, "train", rf"{bad} cannot be read, it is corrupt or truncated .*replace it")
    assert not out.exists() or not any(out.iterdir())


def test_describe_and_reproduce_refuse_nonsense(tmp_path, capsys):
    assert cli.main(["describe", "-K", "0"]) == 2
    _one_error_line(capsys, "describe", r"num_modules must be an int >= 1, got 0")
    assert cli.main(["describe", "--arch", "resnet20", "--memory-batch", "-1"]) == 2
    _one_error_line(capsys, "describe", r"batch_size must be an int >= 1, got -1")
    assert cli.main(["reproduce", "table1", "--dataset", "foo", "--dry-run", "--out-dir", str(tmp_path)]) == 2
    _one_error_line(capsys, "reproduce", r"dataset='foo' is unknown; expected one of .*'cifar10'")
    assert cli.main(["reproduce", "table1", "--seeds", "-1", "--dry-run", "--out-dir", str(tmp_path)]) == 2
    _one_error_line(capsys, "reproduce", r"seeds must be an int >= 0, got -1")


def test_plot_names_bad_files_and_folders(tmp_path, capsys):
    binary = tmp_path / "table.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    assert cli.main(["plot", str(binary), "--out", str(tmp_path / "figures")]) == 2
    _one_error_line(capsys, "plot", rf"{binary} is not a UTF-8 csv table")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert cli.main(["plot", str(tmp_path), "--out", str(afile)]) == 2
    _one_error_line(capsys, "plot", rf"the figure folder {afile} is a file; expected a folder")


def test_an_internal_error_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_describe", broken)
    parser = cli.make_parser()
    monkeypatch.setattr(cli, "make_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["describe"].set_defaults(func=broken)
    assert cli.main(["describe"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert "internal error (a bug in mi_analysis, not in your input); please report it" in err
