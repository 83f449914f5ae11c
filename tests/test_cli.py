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
    (["replay", "/no/such/folder"], "no such folder: /no/such/folder"),
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


# --- a user's natural mistakes (issue 15)

def test_summary_and_digest_take_several_paths(tmp_path, capsys):
    files = sorted(str(f) for f in (lk.sample_path() / "alerts").glob("*.avro"))
    assert len(files) > 1  # as the shell expands `alerts/*.avro`
    assert main(["summary", *files]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"alerts         {len(lk.load_sample())}" in out and f"files          {len(files)}" in out
    assert f"({len(files)} paths)" in out.splitlines()[0]
    assert main(["digest", *files[:2], "--out", str(tmp_path), "--max", "2"]) == EXIT_OK
    n = len(lk.read_alerts(files[:2], cutouts=False))
    assert f"of {n} alerts" in capsys.readouterr().out and (tmp_path / "index.html").is_file()


@pytest.mark.parametrize("command", [["summary"], ["digest", "--out", "OUT"]])
@pytest.mark.parametrize("content", ["empty", "other files"])
def test_alertless_input_is_refused(command, content, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    if content == "other files":
        (folder / "notes.txt").write_text("no alerts here")
    argv = [command[0], str(folder), *(str(tmp_path / "out") if a == "OUT" else a for a in command[1:])]
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "files          0" not in captured.out
    assert captured.err.startswith(f"lsstuk-kit {command[0]}: no alerts found in {folder}")
    assert captured.err.count("\n") == 1
    assert not (tmp_path / "out" / "index.html").exists()


def test_replay_names_what_is_wrong_with_the_path(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nonexistent")]) == EXIT_USAGE
    assert f"no such folder: {tmp_path / 'nonexistent'}" in capsys.readouterr().err
    (tmp_path / "one.avro").write_bytes(b"")
    assert main(["replay", str(tmp_path / "one.avro")]) == EXIT_USAGE
    assert "needs a folder" in capsys.readouterr().err


@pytest.mark.parametrize("speed", ["-1", "0", "nan", "fast"])
def test_replay_speed_must_be_positive(speed, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(lk.sample_path()), "--speed", speed])
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--speed" in err and "must be a positive number" in err and "faster than real time" in err
    assert "None" not in err and "omit it" in err


def test_simulate_names_the_option_not_the_api_argument(tmp_path, capsys, monkeypatch):
    assert main(["simulate", "--fields", "99999", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--fields" in err and "99999" in err and "`fields`" not in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())
    import lsstuk_kit.simulate.night

    def refuse(*args, **kwargs):
        raise ValueError("no field was observable: widen `fields` or add nights")

    monkeypatch.setattr(lsstuk_kit.simulate.night, "simulate_to_folder", refuse)
    assert main(["simulate", "--fields", "3", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "widen --fields or add nights" in err and "`" not in err
    with pytest.raises(SystemExit):  # --fields with no id is a usage error, not "observe nothing"
        main(["simulate", "--fields", "--out", str(tmp_path)])


def test_every_option_has_help_and_its_default_shown(capsys):
    import argparse

    from lsstuk_kit.cli import _parser

    parser = _parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in [("", parser), *subs.items()]:
        for action in sub._actions:
            assert action.help, (name, action.dest)
        with pytest.raises(SystemExit):
            main([name, "--help"] if name else ["--help"])
        out = capsys.readouterr().out
        assert "(default: None)" not in out and "(default: False)" not in out
        for action in sub._actions:  # an option left at None says what leaving it out does
            if action.option_strings and action.default is None and not action.required:
                assert "default:" in action.help, (name, action.dest)
        for action in sub._actions:
            unset = any(action.default is v for v in (None, False, argparse.SUPPRESS))  # `is`: 0 is a default
            if action.option_strings and not unset and not action.required:
                options = out[out.index("options:"):]
                shown = options[options.index(action.option_strings[-1]):]
                assert f"default: {action.default}" in " ".join(shown[:300].split()), (name, action.dest)
    assert "--seed SEED" in subs["simulate"].format_help() and "(default: 0)" in subs["simulate"].format_help()


def test_counts_of_one_are_singular(tmp_path, capsys):
    from lsstuk_kit.simulate import simulate_packets

    schema, alerts = simulate_packets(3, n_history=1, seed=2, cutouts=False)
    alerts[1]["diaSource"]["ra"] = 400.0  # one record refused
    write(tmp_path / "night.avro", schema, alerts)
    assert main(["summary", str(tmp_path)]) == EXIT_SKIPPED
    out = capsys.readouterr().out
    assert "skipped        1 record\n" in out and "1 records" not in out
    # replay: one alert per visit file
    visits = tmp_path / "visits"
    visits.mkdir()
    for k in range(2):
        schema, alerts = simulate_packets(1, n_history=1, seed=10 + k, mjd=60000.0 + k, cutouts=False)
        write(visits / f"visit{k}.avro", schema, alerts)
    assert main(["replay", str(visits)]) == EXIT_OK
    out = capsys.readouterr().out
    assert ": 1 alert (1 file)" in out and "replayed 2 alerts" in out
    assert "1 alerts" not in out and "1 files" not in out
