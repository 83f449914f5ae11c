"""The ``lsstuk-kit`` command line.

Exit status
-----------
Each outcome has its own code, and a crash never shares one with a meaningful
outcome:

====  =====================================================================
code  meaning
====  =====================================================================
0     done: everything was read (``summary``) or written
2     refused: bad arguments, a missing or unreadable path, a path with no
      alerts (``summary``, ``digest``), input the kit cannot read
      (``AlertFormatError`` and other ``ValueError``), or a missing optional
      dependency; one line on stderr says why
3     ``summary`` ran but skipped some records (listed in its report)
70    internal error: an unexpected exception, i.e. a bug in the kit; one line
      on stderr names the exception type and asks you to report it. Set
      ``LSSTUK_DEBUG=1`` (or pass ``--debug``) for the traceback
130   interrupted (Ctrl-C)
====  =====================================================================

Python itself exits 1 if it fails before the kit is running (for example a
broken installation); the kit never returns 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SKIPPED", "EXIT_USAGE", "main", "summarize"]

#: Everything was read or written.
EXIT_OK = 0
#: The command was refused: arguments, path, unreadable input, missing dependency.
EXIT_USAGE = 2
#: ``summary`` ran, but some records were skipped.
EXIT_SKIPPED = 3
#: An unexpected exception: a bug in the kit (``EX_SOFTWARE`` of sysexits.h).
EXIT_INTERNAL = 70
#: Interrupted by the user (128 + SIGINT).
EXIT_INTERRUPTED = 130

_EPILOG = """exit status:
  0    done: everything was read (summary) or written
  2    refused: bad arguments, missing or unreadable path, no alerts found,
       input the kit cannot read, or a missing optional dependency (one line
       on stderr says why)
  3    summary ran but skipped some records (listed in its report)
  70   internal error: a bug in lsstuk_kit (one line names the exception; set
       LSSTUK_DEBUG=1 or pass --debug for the traceback, and please report it)
  130  interrupted (Ctrl-C)
"""


def _time_span(mjd_min: float, mjd_max: float) -> str:
    """The span of a summary: hours up to a day, else days and the first and last dates (UTC calendar).

    The MJDs are TAI (``midpointMjdTai``); the dates are converted to UTC.
    """
    days = mjd_max - mjd_min
    if days <= 1.0:
        return f"{days * 24:.2f} h"
    try:
        import warnings

        from astropy.time import Time

        with warnings.catch_warnings():  # dates beyond the leap-second table: "dubious year", still a date
            warnings.simplefilter("ignore")
            start, end = Time([mjd_min, mjd_max], format="mjd", scale="tai").utc.to_value("iso", subfmt="date_hms")
    except Exception:  # noqa: BLE001 - dates beyond astropy's range: the span alone
        return f"{days:.2f} d"
    return f"{days:.2f} d, {start.split('.')[0]} to {end.split('.')[0]} UTC"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless the count is one.

    >>> _plural(1, "record"), _plural(0, "record"), _plural(2, "visit file")
    ('1 record', '0 records', '2 visit files')
    """
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _paths(path) -> list:
    """One path (str or Path) or several (a list or tuple), as a list without repeats, order kept."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return list(dict.fromkeys(str(p) for p in paths))


def _describe(paths: list) -> str:
    """The paths a command read, for a title or message: all of them when few, else the first, last and count."""
    if len(paths) <= 3:
        return ", ".join(paths)
    return f"{paths[0]} ... {paths[-1]} ({len(paths)} paths)"


def _read_quietly(paths, **kwargs):
    """:func:`~lsstuk_kit.io.read_alerts` of ``paths`` (one path alone), its "no alerts found" warning silenced.

    The CLI refuses alert-less input itself, in one line (see :func:`_no_alerts`).
    """
    import warnings

    from .io import read_alerts

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no alerts found")
        return read_alerts(paths[0] if len(paths) == 1 else paths, **kwargs)


def _no_alerts(paths: list, n_files: int | None = None) -> ValueError:
    """The refusal of input that holds no alert: ``ValueError`` (exit status 2)."""
    what = {None: "", 0: " (no alert files there)"}.get(n_files, f" (its {_plural(n_files, 'Avro file')} hold none)")
    return ValueError(f"no alerts found in {_describe(paths)}{what}; give a file, folder or glob of alert files")


def summarize(path, *, progress=None, out=None) -> int:
    """Print a summary of the alerts under ``path`` (one path or a list), file by file errors included.

    Returns
    -------
    int
        Exit status: :data:`EXIT_OK` (0) when every record was read,
        :data:`EXIT_SKIPPED` (3) when some were skipped.

    Raises
    ------
    FileNotFoundError
        A path that names no file, folder or glob match.
    ValueError
        When the paths hold no alert and no record was skipped (an empty folder,
        a folder of other files): nothing to summarize (the CLI exits 2).

    Examples
    --------
    >>> from lsstuk_kit import sample_path
    >>> from lsstuk_kit.cli import summarize
    >>> summarize(sample_path() / "alerts")
    lsstuk-kit summary of ...alerts
      files          6
      alerts         679
      objects        536
      history rows   15494
      time span      MJD 61099.00079 - 61099.15104 (3.61 h)
      bands          g: 190, i: 105, r: 384
      sky extent     RA 9.9013 - 90.8742 deg, Dec -29.7923 - 6.1655 deg
      surveys        lsst: 679
      schemas        lsst.v11_1: 679
      skipped        0 records
    0
    >>> summarize("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such file, folder or glob match: no/such/folder
    """
    import pandas as pd

    from .io import iter_files

    out = out or sys.stdout
    paths = _paths(path)
    files = [f for p in paths for f in iter_files(p)]
    if progress is None:
        progress = len(files) >= 20
    # the paths themselves, not the file list: paths under them that cannot be read are reported too
    batch = _read_quietly(paths, errors="skip", cutouts=False, progress=progress, columns=["snr", "reliability"])
    s = batch.summary()
    errors = batch.errors
    if not s["alerts"] and not len(errors):
        raise _no_alerts(paths, len(files))
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"lsstuk-kit summary of {_describe(paths)}")
    p(f"  files          {len(files)}")
    p(f"  alerts         {s['alerts']}")
    p(f"  objects        {s['objects']}")
    p(f"  history rows   {s['history_rows']}")
    if s["alerts"]:
        p(f"  time span      MJD {s['mjd_min']:.5f} - {s['mjd_max']:.5f} "
          f"({_time_span(s['mjd_min'], s['mjd_max'])})")
        p("  bands          " + ", ".join(f"{b}: {n}" for b, n in s["bands"].items()))
        p(f"  sky extent     RA {s['ra_min']:.4f} - {s['ra_max']:.4f} deg, "
          f"Dec {s['dec_min']:.4f} - {s['dec_max']:.4f} deg")
        p("  surveys        " + ", ".join(f"{k}: {n}" for k, n in s["surveys"].items()))
        p("  schemas        " + ", ".join(f"{k}: {n}" for k, n in s["schema_versions"].items()))
    p(f"  skipped        {_plural(len(errors), 'record')}")
    if len(errors):
        for file, grp in errors.groupby("file", sort=True):
            p(f"    {file}: {len(grp)} skipped")
            for row in grp.head(5).itertuples():
                where = f"record {int(row.record)}" if pd.notna(row.record) else "file"
                fld = f" field {row.field!r}" if isinstance(row.field, str) else ""
                p(f"      {where}{fld}: {row.reason}")
    return EXIT_SKIPPED if len(errors) else EXIT_OK


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _speed(text):
    """``--speed``: a positive real-time factor; the message names the option and what it means."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(
            f"must be a positive number (alerts replay that many times faster than real time), "
            f"not {text!r}; or omit it for full speed (no waiting between batches)")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The epilog as written, and every option's default shown, except where the help text states it.

    Switches (``--no-cutouts``) and options whose default is ``None`` show none: their
    help says what leaving them out does.
    """

    def _get_help_string(self, action):
        help_text = action.help or ""
        if ("%(default)" in help_text or "default:" in help_text or not action.option_strings or action.required
                or any(action.default is v for v in (None, False, argparse.SUPPRESS))):  # `is`: 0 is a default
            return help_text
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    """The ``lsstuk-kit`` argument parser."""
    parser = argparse.ArgumentParser(prog="lsstuk-kit", description="Rubin/ZTF alert stream kit",
                                     epilog=_EPILOG, formatter_class=_HelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal error (as LSSTUK_DEBUG=1 does)")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the traceback of an internal error (as LSSTUK_DEBUG=1 does)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{summary,simulate,replay,digest}",
                                help="the command to run (each has its own --help)")

    def add(name, **kw):
        return sub.add_parser(name, parents=[debug], epilog=_EPILOG, formatter_class=_HelpFormatter,
                              description=kw.get("help"), **kw)

    ps = add("summary", help="counts, time span, bands, sky extent, schemas, errors")
    ps.add_argument("path", nargs="+", help="Avro files, folders (searched recursively) or globs, read together")
    ps.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="show a progress bar on stderr (default: on for 20 or more files)")
    sim = add("simulate", help="simulate nights of an LSST-like survey: tables, alerts, truth")
    sim.add_argument("--nights", type=_positive_int, default=1, help="number of nights to simulate")
    sim.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same survey)")
    sim.add_argument("--out", required=True,
                     help="output folder (alerts/, tables/ and truth.parquet are written there)")
    sim.add_argument("--fields", type=int, nargs="+", default=None, metavar="ID",
                     help="observe only these field ids (default: every field visible in the night)")
    sim.add_argument("--scale", type=float, default=1.0, help="population density multiplier")
    sim.add_argument("--alert-nights", type=_positive_int, default=None, metavar="N",
                     help="only the last N nights make alerts; earlier nights still make their history "
                          "(default: every night)")
    sim.add_argument("--visits-per-night", type=_positive_int, default=None, metavar="N",
                     help="cap on visits per night (default: 800, about an LSST night)")
    sim.add_argument("--style", choices=["atlas", "panstarrs"], default="atlas",
                     help="column naming of the survey database tables")
    sim.add_argument("--no-cutouts", action="store_true",
                     help="write alerts without cutout stamps (smaller and faster; default: with cutouts)")
    rep = add("replay", help="replay per-visit alert files in time order")
    rep.add_argument("path", help="simulation folder or folder of per-visit .avro files")
    rep.add_argument("--speed", type=_speed, default=None,
                     help="real-time factor: 60 replays an hour of survey time per minute "
                          "(default: full speed, no waiting)")
    rep.add_argument("--to", default=None, metavar="FOLDER",
                     help="copy each batch's files into this folder as it is replayed (default: copy nothing)")
    rep.add_argument("--mode", choices=["visit", "daily", "twice-daily"], default="visit",
                     help="one batch per visit, per night or per half night")
    dg = add("digest", help="a self-contained HTML page of the interesting alerts")
    dg.add_argument("path", nargs="+", help="Avro files, folders (searched recursively) or globs, read together")
    dg.add_argument("--out", required=True, help="output folder (index.html is written there)")
    dg.add_argument("--max", type=_positive_int, default=50, help="at most this many alerts on the page")
    dg.add_argument("--min-reliability", type=float, default=0.5,
                    help="leave out alerts whose reliability score is below this")
    dg.add_argument("--min-snr", type=float, default=5.0, help="leave out alerts whose |S/N| is below this")
    return parser


def main(argv=None) -> int:
    """Entry point of ``lsstuk-kit``; returns the exit status (see the module docstring).

    Examples
    --------
    ``lsstuk-kit summary <folder>``, from Python:

    >>> from lsstuk_kit import sample_path
    >>> from lsstuk_kit.cli import main
    >>> main(["summary", str(sample_path() / "alerts")])
    lsstuk-kit summary of ...alerts
      files          6
      alerts         679
    ...
      skipped        0 records
    0

    A path that does not exist is refused with one line on stderr and exit status 2:

    >>> main(["summary", "no/such/folder"])
    2
    """
    parser = _parser()
    args = parser.parse_args(argv)
    show_traceback = args.debug or os.environ.get("LSSTUK_DEBUG", "") not in ("", "0")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"lsstuk-kit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    # bad input or arguments: AlertFormatError and the kit's other ValueErrors, missing or
    # unreadable paths (OSError), a missing optional dependency (ImportError, which names the install)
    except (ValueError, OSError, ImportError) as exc:
        print(f"lsstuk-kit {args.command}: {_one_line(exc)}", file=sys.stderr)
        if show_traceback:
            import traceback

            traceback.print_exc()
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, in one line
        kind = type(exc).__qualname__
        if type(exc).__module__ != "builtins":
            kind = f"{type(exc).__module__}.{kind}"
        print(f"lsstuk-kit {args.command}: internal error ({kind}: {_one_line(exc)}); "
              "this is a bug in lsstuk_kit, please report it with the command "
              "and the traceback that LSSTUK_DEBUG=1 (or --debug) prints", file=sys.stderr)
        if show_traceback:
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's message on one line, shortened to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_fields(fields) -> None:
    """Refuse ``--fields`` ids that name no survey field, naming the option and the valid range."""
    from .simulate.cadence import survey_fields

    ids = survey_fields()["fieldId"]
    lo, hi = int(ids.min()), int(ids.max())
    bad = sorted({f for f in fields if not lo <= f <= hi})
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(f"--fields: no survey field {shown}; field ids run from {lo} to {hi}")


def _run(args) -> int:
    if args.command == "digest":
        from .digest import interesting, to_html

        paths = _paths(args.path)
        batch = _read_quietly(paths)
        if not len(batch):
            raise _no_alerts(paths)
        shown = len(interesting(batch, args.min_reliability, args.min_snr, args.max))
        page = to_html(batch, Path(args.out) / "index.html", max_alerts=args.max, min_reliability=args.min_reliability,
                       min_snr=args.min_snr, title=f"lsstuk_kit digest of {_describe(paths)}")
        print(f"wrote {page}: {shown} of {_plural(len(batch), 'alert')}"
              + ("" if shown else f" pass --min-reliability {args.min_reliability} and --min-snr {args.min_snr}"))
        return EXIT_OK
    if args.command == "simulate":
        from .simulate.night import simulate_to_folder

        if args.fields is not None:
            _check_fields(args.fields)
        try:
            idx = simulate_to_folder(args.out, nights=args.nights, seed=args.seed, alert_nights=args.alert_nights,
                                     progress=True, style=args.style, cutouts=not args.no_cutouts,
                                     fields=args.fields, scale=args.scale, visits_per_night=args.visits_per_night)
        except ValueError as exc:  # the API's argument names, as the CLI's options
            text = str(exc)
            for name in ("fields", "nights", "alert_nights", "visits_per_night", "scale", "seed", "style"):
                text = text.replace(f"`{name}`", "--" + name.replace("_", "-"))
            if text == str(exc):
                raise
            raise ValueError(text) from exc
        print(f"wrote {_plural(int(idx['n_alerts'].sum()), 'alert')} in {_plural(len(idx), 'visit file')} "
              f"to {args.out}/alerts, survey tables to {args.out}/tables, truth to {args.out}/truth.parquet")
        return EXIT_OK
    if args.command == "replay":
        from .replay import replay

        folder = Path(args.path).expanduser()
        if not folder.exists():
            raise FileNotFoundError(f"no such folder: {args.path}")
        if not folder.is_dir():
            raise ValueError(f"needs a folder of per-visit .avro files (or a simulation folder), "
                             f"not a file: {args.path}")
        total = 0
        for rb in replay(folder, speed=args.speed, mode=args.mode, to=args.to):
            total += len(rb)
            print(f"MJD {rb.mjd:.5f}  {args.mode} {rb.key}: {_plural(len(rb), 'alert')} "
                  f"({_plural(len(rb.files), 'file')})")
        print(f"replayed {_plural(total, 'alert')}" + (f" into {args.to}" if args.to else ""))
        return EXIT_OK
    if args.command == "summary":
        return summarize(args.path, progress=args.progress)
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
