"""The ``lsstuk-kit`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "summarize"]


def summarize(path, *, progress=None, out=None) -> int:
    """Print a summary of the alerts under ``path``, file by file errors included.

    Returns
    -------
    int
        Exit status: 0 when every record was read, 1 when some were skipped.
    """
    from .io import iter_files, read_alerts

    out = out or sys.stdout
    files = iter_files(path)
    if progress is None:
        progress = len(files) >= 20
    batch = read_alerts(files if files else path, errors="skip", cutouts=False, progress=progress,
                        columns=["snr", "reliability"])
    s = batch.summary()
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"lsstuk-kit summary of {path}")
    p(f"  files          {len(files)}")
    p(f"  alerts         {s['alerts']}")
    p(f"  objects        {s['objects']}")
    p(f"  history rows   {s['history_rows']}")
    if s["alerts"]:
        p(f"  time span      MJD {s['mjd_min']:.5f} - {s['mjd_max']:.5f} "
          f"({(s['mjd_max'] - s['mjd_min']) * 24:.2f} h)")
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
                where = f"record {row.record}" if row.record is not None and row.record == row.record else "file"
                fld = f" field {row.field!r}" if isinstance(row.field, str) else ""
                p(f"      {where}{fld}: {row.reason}")
    return 1 if len(errors) else 0


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv=None) -> int:
    """Entry point of ``lsstuk-kit``."""
    parser = argparse.ArgumentParser(prog="lsstuk-kit", description="Rubin/ZTF alert stream kit")
    sub = parser.add_subparsers(dest="command", required=True)
    ps = sub.add_parser("summary", help="counts, time span, bands, sky extent, schemas, errors")
    ps.add_argument("path", help="Avro file, folder (recursive) or glob")
    ps.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="show a progress bar (default: on for 20+ files)")
    sim = sub.add_parser("simulate", help="simulate nights of an LSST-like survey: tables, alerts, truth")
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
    rep = sub.add_parser("replay", help="replay per-visit alert files in time order")
    rep.add_argument("path", help="simulation folder or folder of per-visit .avro files")
    rep.add_argument("--speed", type=float, default=None, help="real-time factor (default: full speed)")
    rep.add_argument("--to", default=None, help="copy each batch's files into this folder")
    rep.add_argument("--mode", choices=["visit", "daily", "twice-daily"], default="visit")
    dg = sub.add_parser("digest", help="a self-contained HTML page of the interesting alerts")
    dg.add_argument("path", help="Avro file, folder or glob")
    dg.add_argument("--out", required=True, help="output folder (index.html is written there)")
    dg.add_argument("--max", type=int, default=50, help="at most this many alerts")
    dg.add_argument("--min-reliability", type=float, default=0.5)
    dg.add_argument("--min-snr", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:  # AlertFormatError is a ValueError
        print(f"lsstuk-kit {args.command}: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "digest":
        from .digest import to_html
        from .io import read_alerts

        batch = read_alerts(args.path)
        page = to_html(batch, Path(args.out) / "index.html", max_alerts=args.max, min_reliability=args.min_reliability,
                       min_snr=args.min_snr, title=f"lsstuk_kit digest of {args.path}")
        print(f"wrote {page}")
        return 0
    if args.command == "simulate":
        from .simulate.night import simulate_to_folder

        idx = simulate_to_folder(args.out, nights=args.nights, seed=args.seed, alert_nights=args.alert_nights,
                                 progress=True, style=args.style, cutouts=not args.no_cutouts,
                                 fields=args.fields, scale=args.scale, visits_per_night=args.visits_per_night)
        print(f"wrote {int(idx['n_alerts'].sum())} alerts in {len(idx)} visit files to {args.out}/alerts, "
              f"survey tables to {args.out}/tables, truth to {args.out}/truth.parquet")
        return 0
    if args.command == "replay":
        from .replay import replay

        total = 0
        for rb in replay(args.path, speed=args.speed, mode=args.mode, to=args.to):
            total += len(rb)
            print(f"MJD {rb.mjd:.5f}  {args.mode} {rb.key}: {len(rb)} alerts ({len(rb.files)} files)")
        print(f"replayed {total} alerts" + (f" into {args.to}" if args.to else ""))
        return 0
    if args.command == "summary":
        return summarize(args.path, progress=args.progress)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
