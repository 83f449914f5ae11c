"""The ``lsstuk-kit`` command line.

Exit status
-----------
Each outcome has its own code, and a crash never shares one with a meaningful
outcome:

====  =====================================================================
code  meaning
====  =====================================================================
0     done: everything was read (``summary``) or written
2     refused: bad arguments, a missing or unreadable path, input the kit
      cannot read (``AlertFormatError`` and other ``ValueError``), or a
      missing optional dependency; one line on stderr says why
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
  2    refused: bad arguments, missing or unreadable path, input the kit cannot
       read, or a missing optional dependency (one line on stderr says why)
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


def summarize(path, *, progress=None, out=None) -> int:
    """Print a summary of the alerts under ``path``, file by file errors included.

    Returns
    -------
    int
        Exit status: :data:`EXIT_OK` (0) when every record was read,
        :data:`EXIT_SKIPPED` (3) when some were skipped.
    """
    import pandas as pd

    from .io import iter_files, read_alerts

    out = out or sys.stdout
    files = iter_files(path)
    if progress is None:
        progress = len(files) >= 20
    # the path itself, not the file list: paths under it that cannot be read are reported too
    batch = read_alerts(path, errors="skip", cutouts=False, progress=progress, columns=["snr", "reliability"])
    s = batch.summary()
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"lsstuk-kit summary of {path}")
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
    errors = batch.errors
    p(f"  skipped        {len(errors)} records")
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


def main(argv=None) -> int:
    """Entry point of ``lsstuk-kit``; returns the exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="lsstuk-kit", description="Rubin/ZTF alert stream kit",
                                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal error (as LSSTUK_DEBUG=1 does)")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the traceback of an internal error (as LSSTUK_DEBUG=1 does)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, **kw):
        return sub.add_parser(name, parents=[debug], epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

    ps = add("summary", help="counts, time span, bands, sky extent, schemas, errors")
    ps.add_argument("path", help="Avro file, folder (recursive) or glob")
    ps.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="show a progress bar (default: on for 20+ files)")
    sim = add("simulate", help="simulate nights of an LSST-like survey: tables, alerts, truth")
    sim.add_argument("--nights", type=_positive_int, default=1)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--fields", type=int, nargs="*", default=None,
                     help="field ids to observe (default: every visible field)")
    sim.add_argument("--scale", type=float, default=1.0, help="population density multiplier")
    sim.add_argument("--alert-nights", type=int, default=None, help="only the last N nights make alerts")
    sim.add_argument("--visits-per-night", type=int, default=None)
    sim.add_argument("--style", choices=["atlas", "panstarrs"], default="atlas")
    sim.add_argument("--no-cutouts", action="store_true")
    rep = add("replay", help="replay per-visit alert files in time order")
    rep.add_argument("path", help="simulation folder or folder of per-visit .avro files")
    rep.add_argument("--speed", type=float, default=None, help="real-time factor (default: full speed)")
    rep.add_argument("--to", default=None, help="copy each batch's files into this folder")
    rep.add_argument("--mode", choices=["visit", "daily", "twice-daily"], default="visit")
    dg = add("digest", help="a self-contained HTML page of the interesting alerts")
    dg.add_argument("path", help="Avro file, folder or glob")
    dg.add_argument("--out", required=True, help="output folder (index.html is written there)")
    dg.add_argument("--max", type=int, default=50, help="at most this many alerts")
    dg.add_argument("--min-reliability", type=float, default=0.5)
    dg.add_argument("--min-snr", type=float, default=5.0)
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


def _run(args) -> int:
    if args.command == "digest":
        from .digest import to_html
        from .io import read_alerts

        batch = read_alerts(args.path)
        page = to_html(batch, Path(args.out) / "index.html", max_alerts=args.max, min_reliability=args.min_reliability,
                       min_snr=args.min_snr, title=f"lsstuk_kit digest of {args.path}")
        print(f"wrote {page}")
        return EXIT_OK
    if args.command == "simulate":
        from .simulate.night import simulate_to_folder

        idx = simulate_to_folder(args.out, nights=args.nights, seed=args.seed, alert_nights=args.alert_nights,
                                 progress=True, style=args.style, cutouts=not args.no_cutouts,
                                 fields=args.fields, scale=args.scale, visits_per_night=args.visits_per_night)
        print(f"wrote {int(idx['n_alerts'].sum())} alerts in {len(idx)} visit files to {args.out}/alerts, "
              f"survey tables to {args.out}/tables, truth to {args.out}/truth.parquet")
        return EXIT_OK
    if args.command == "replay":
        from .replay import replay

        total = 0
        for rb in replay(args.path, speed=args.speed, mode=args.mode, to=args.to):
            total += len(rb)
            print(f"MJD {rb.mjd:.5f}  {args.mode} {rb.key}: {len(rb)} alerts ({len(rb.files)} files)")
        print(f"replayed {total} alerts" + (f" into {args.to}" if args.to else ""))
        return EXIT_OK
    if args.command == "summary":
        return summarize(args.path, progress=args.progress)
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
