from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main, summarize

from .conftest import write


def test_summary_of_sample(capsys):
    assert main(["summary", str(lk.sample_path())]) == EXIT_OK == 0
    out = capsys.readouterr().out
    n = len(pd.read_parquet(lk.sample_path() / "truth.parquet"))
    for text in [f"alerts         {n}", "objects", "time span      MJD 61099.", "bands", "sky extent",
                 f"schemas        lsst.v11_1: {n}", "skipped        0 records"]:
        assert text in out, text
    assert " h)" in out  # one night: its span in hours


def test_summary_reports_errors_per_file(tmp_path, capsys):
    for f in sorted((lk.sample_path() / "alerts").glob("*.avro")):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01garbage")
    assert main(["summary", str(tmp_path), "--progress"]) == EXIT_SKIPPED == 3
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


def test_skipped_records_exit_3_and_print_integer_record_numbers(tmp_path, capsys):
    from lsstuk_kit.simulate import simulate_packets

    schema, alerts = simulate_packets(8, n_history=2, seed=4, cutouts=False)
    alerts[5]["diaSource"]["ra"] = 400.0  # record 5 is refused
    path = write(tmp_path / "night.avro", schema, alerts)
    # a whole-file error too: the error table's record column then holds None beside 5
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01garbage")
    assert main(["summary", str(tmp_path)]) == EXIT_SKIPPED
    out = capsys.readouterr().out
    assert "record 5 field 'ra'" in out and "record 5." not in out
    assert "broken.avro: 1 skipped" in out and "alerts         7" in out
    with open(tmp_path / "report.txt", "w") as fh:
        assert summarize(path, out=fh) == EXIT_SKIPPED


def test_exit_codes_are_distinct_and_documented(capsys):
    codes = [EXIT_OK, EXIT_USAGE, EXIT_SKIPPED, EXIT_INTERNAL, EXIT_INTERRUPTED]
    assert len(set(codes)) == len(codes) and 1 not in codes  # 1 is what a Python crash exits with
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for code in codes:
        assert f"\n  {code} " in out, code
    assert "LSSTUK_DEBUG=1" in out and "internal error" in out
    with pytest.raises(SystemExit):
        main(["summary", "--help"])
    assert "exit status" in capsys.readouterr().out
    import lsstuk_kit.cli as cli

    for code in codes:
        assert f"\n{code} " in cli.__doc__, code


def test_unreadable_input_exits_2_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LSSTUK_DEBUG", raising=False)
    bad = tmp_path / "broken.avro"
    bad.write_bytes(b"Obj\x01garbage")
    assert main(["digest", str(bad), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "broken.avro" in err and "Traceback" not in err and err.count("\n") == 1
    # --debug shows where the refusal came from
    assert main(["digest", str(bad), "--out", str(tmp_path / "out"), "--debug"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("lsstuk-kit digest: ") and "broken.avro" in err and "Traceback" in err


def _boom(*args, **kwargs):
    raise RuntimeError("simulated bug\nwith a second line")


@pytest.mark.parametrize("command", [["summary"], ["digest", "--out", "/tmp/lsstuk-never"]])
def test_internal_error_exits_70_without_traceback(command, monkeypatch, capsys):
    import lsstuk_kit.io

    monkeypatch.delenv("LSSTUK_DEBUG", raising=False)
    monkeypatch.setattr(lsstuk_kit.io, "read_alerts", _boom)
    argv = [command[0], str(lk.sample_path()), *command[1:]]
    assert main(argv) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error" in err and "RuntimeError" in err and "simulated bug with a second line" in err
    assert "please report" in err and "LSSTUK_DEBUG=1" in err


@pytest.mark.parametrize("how", ["env", "flag-before", "flag-after"])
def test_debug_shows_the_traceback(how, monkeypatch, capsys):
    import lsstuk_kit.io

    monkeypatch.delenv("LSSTUK_DEBUG", raising=False)
    monkeypatch.setattr(lsstuk_kit.io, "read_alerts", _boom)
    argv = ["summary", str(lk.sample_path())]
    if how == "env":
        monkeypatch.setenv("LSSTUK_DEBUG", "1")
    elif how == "flag-before":
        argv = ["--debug", *argv]
    else:
        argv = [*argv, "--debug"]
    assert main(argv) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "_boom" in err and "RuntimeError: simulated bug" in err


def test_interrupt_exits_130(monkeypatch, capsys):
    import lsstuk_kit.io

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lsstuk_kit.io, "read_alerts", interrupted)
    try:
        code = main(["summary", str(lk.sample_path())])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")
    assert code == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_console_script_internal_error_exit_status(tmp_path):
    """The installed command returns main()'s code to the shell, not Python's 1."""
    code = ("import sys, lsstuk_kit.io as io\n"
            "def boom(*a, **k):\n    raise RuntimeError('simulated bug')\n"
            "io.read_alerts = boom\n"
            "from lsstuk_kit.cli import main\n"
            f"sys.exit(main(['summary', {str(lk.sample_path())!r}]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in __import__("os").environ.items() if k != "LSSTUK_DEBUG"})
    assert res.returncode == 70 and "Traceback" not in res.stderr and "RuntimeError" in res.stderr


def test_long_time_span_in_days_with_utc_dates(tmp_path, capsys):
    from astropy.time import Time

    from lsstuk_kit.simulate import simulate_packets

    for k, mjd in enumerate((60000.0, 60400.0)):
        schema, alerts = simulate_packets(3, n_history=1, seed=k, mjd=mjd, cutouts=False)
        write(tmp_path / f"night{k}.avro", schema, alerts)
    assert main(["summary", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    s = lk.read_alerts(tmp_path).summary()
    start, end = Time([s["mjd_min"], s["mjd_max"]], format="mjd", scale="tai").utc.to_value("iso", subfmt="date_hms")
    days = s["mjd_max"] - s["mjd_min"]
    assert 400 < days < 401
    assert f"({days:.2f} d, {start[:19]} to {end[:19]} UTC)" in out  # calendar dates in UTC (MJDs are TAI)
    assert start.startswith("2023-02-25") and end.startswith("2024-03-31")
    assert " h)" not in out
