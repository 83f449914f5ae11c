from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.cli import main


def test_summary_of_sample(capsys):
    assert main(["summary", str(lk.sample_path())]) == 0
    out = capsys.readouterr().out
    n = len(pd.read_parquet(lk.sample_path() / "truth.parquet"))
    for text in [f"alerts         {n}", "objects", "time span      MJD 61099.", "bands", "sky extent",
                 f"schemas        lsst.v11_1: {n}", "skipped        0 records"]:
        assert text in out, text


def test_summary_reports_errors_per_file(tmp_path, capsys):
    for f in sorted((lk.sample_path() / "alerts").glob("*.avro")):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01garbage")
    assert main(["summary", str(tmp_path), "--progress"]) == 1
    captured = capsys.readouterr()
    assert f"alerts         {len(lk.load_sample())}" in captured.out
    assert "broken.avro: 1 skipped" in captured.out
    assert "decoding" in captured.err  # the progress bar


def test_console_script_runs():
    exe = shutil.which("lsstuk-kit") or f"{sys.executable} -m lsstuk_kit.cli"
    res = subprocess.run(exe.split() + ["summary", "/no/such/folder"], capture_output=True, text=True)
    assert res.returncode == 2 and "no such file" in res.stderr


@pytest.mark.parametrize("argv,expect", [
    (["replay", "/no/such/folder"], "no per-visit .avro files"),
    (["digest", "/no/such/folder", "--out", "/tmp/lsstuk-never"], "no such file"),
    (["summary", "/no/such/folder"], "no such file"),
])
def test_bad_paths_give_one_line_errors(argv, expect, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err and err.count("\n") == 1


def test_simulate_rejects_zero_nights(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--nights", "0", "--out", "/tmp/lsstuk-never"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err
