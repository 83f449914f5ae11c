"""The ``lsstuk-kit`` command line."""

from __future__ import annotations

import argparse
import sys

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


def main(argv=None) -> int:
    """Entry point of ``lsstuk-kit``."""
    parser = argparse.ArgumentParser(prog="lsstuk-kit", description="Rubin/ZTF alert stream kit")
    sub = parser.add_subparsers(dest="command", required=True)
    ps = sub.add_parser("summary", help="counts, time span, bands, sky extent, schemas, errors")
    ps.add_argument("path", help="Avro file, folder (recursive) or glob")
    ps.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="show a progress bar (default: on for 20+ files)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        try:
            return summarize(args.path, progress=args.progress)
        except FileNotFoundError as exc:
            print(f"lsstuk-kit: {exc}", file=sys.stderr)
            return 2
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
