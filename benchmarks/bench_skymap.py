"""Loading a real 12.6-million-pixel skymap: before and after issue 13, and 3D-matching speed.

The map is GW190814's LALInference localisation (``../shared/skymaps``, LIGO/Virgo; flat NESTED
nside 1024, PROB + DISTMU + DISTSIGMA + DISTNORM, 1.5 MB gzip-compressed, 403 MB decompressed).

- before: the reader the kit had until issue 13 (kept verbatim below as ``read_skymap_before``):
  astropy.io.fits's FITS_rec, a pandas DataFrame of every pixel, ``sort_values`` on it, then
  the MOC of the 90 % region.
- after: ``lsstuk_kit.skyareas.Watchmap.from_skymap``: the columns straight from the FITS bytes
  with numpy, the flat map merged into a multi-order one where it holds < 1e-4 of the
  probability (exact below that level), one sort of ~1.3 million cells, the MOC from the
  region's cells at their own order. The distance layers come along (the old reader dropped them).
- floor: gzip decompression alone (zlib, one call).

Each variant runs in its own fresh process (``--one``), ``--repeat`` times; the table gives
the median wall-clock time, the median CPU time of the process (steadier on a shared machine)
and the peak resident memory. Then: credible levels and dP/dV for 1,000,000 positions, and
``match_galaxies_3d`` against OpenNGC's ~10,800 galaxies.

    python benchmarks/bench_skymap.py [--repeat 5] [--map PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_MAP = Path(__file__).resolve().parents[2] / "shared" / "skymaps" / "S190814bv_5_LALInference.v1.fits.gz"


def read_skymap_before(path):
    """lsstuk_kit.skyareas.read_skymap as it was before issue 13 (flat NESTED branch), for the baseline."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdu = next((h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)), None)
        names = [n.upper() for n in hdu.columns.names]
        prob = np.asarray(hdu.data[hdu.columns.names[names.index("PROB")]], float).ravel()
        npix = len(prob)
        nside = int(hdu.header.get("NSIDE", int(round(np.sqrt(npix / 12)))))
        order_val = int(round(np.log2(nside)))
        ipix = np.arange(npix, dtype=np.int64)
        order = np.full(npix, order_val, np.int64)
        uniq = 4 * (np.int64(4) ** order) + ipix
        density = prob / (4 * np.pi / (12 * 4.0 ** order))
    total = prob.sum()
    prob = prob / total
    density = density / total
    cells = pd.DataFrame({"uniq": uniq, "order": order, "ipix": ipix, "prob": prob, "density": density})
    cells = cells.sort_values("density", ascending=False, kind="stable").reset_index(drop=True)
    cells["cumprob"] = np.concatenate([[0.0], np.cumsum(cells["prob"].to_numpy())[:-1]])
    return cells


def from_skymap_before(path, level=0.9):
    from mocpy import MOC

    cells = read_skymap_before(path)
    keep = cells[cells["cumprob"] < level]
    moc = MOC.from_healpix_cells(keep["ipix"].to_numpy(np.uint64), keep["order"].to_numpy(np.uint8),
                                 int(cells["order"].max()))
    return moc, cells


def one(variant, path, repeat):
    """Run one variant ``repeat`` times in this process; print JSON."""
    walls, cpus, extra = [], [], {}
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        if variant == "before":
            moc, cells = from_skymap_before(path)
            extra = {"area90": float(moc.sky_fraction * 41252.96125), "cells": len(cells)}
        elif variant == "after":
            from lsstuk_kit.skyareas import Watchmap

            wm = Watchmap.from_skymap(path, 0.9)
            extra = {"area90": wm.area_deg2, "cells": len(wm.cells)}
        elif variant == "gunzip":
            import zlib

            with open(path, "rb") as fh:
                raw = zlib.decompress(fh.read(), 31)
            extra = {"bytes": len(raw)}
            del raw
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    print(json.dumps({"wall": statistics.median(walls), "cpu": statistics.median(cpus), "rss_mib": rss,
                      "walls": walls, **extra}))


def queries(path):
    from lsstuk_kit.catalogs import load_openngc
    from lsstuk_kit.skyareas import Watchmap, match_galaxies_3d, read_skymap

    cells = read_skymap(path)
    wm = Watchmap.from_skymap(cells, 0.9)
    rng = np.random.default_rng(0)
    n = 1_000_000
    # half near the region (within ~5 deg of the peak), half anywhere on the sky
    ra = np.concatenate([12.8 + rng.normal(0, 3, n // 2), rng.uniform(0, 360, n // 2)]) % 360
    dec = np.concatenate([-24.5 + rng.normal(0, 3, n // 2), np.degrees(np.arcsin(rng.uniform(-1, 1, n // 2)))])
    r = rng.uniform(50, 500, n)
    out = {}
    for label, fn in [("credible_level", lambda: wm.credible_level(ra, dec)),
                      ("contains_lonlat (MOC)", lambda: wm.contains_lonlat(ra, dec)),
                      ("distance_probability (dP/dV)", lambda: wm.distance_probability(ra, dec, r))]:
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        out[label] = statistics.median(ts)
    g = load_openngc()
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        ranked = match_galaxies_3d(wm, g)
        ts.append(time.perf_counter() - t)
    return n, out, len(g), statistics.median(ts), ranked


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--map", type=Path, default=DEFAULT_MAP)
    ap.add_argument("--one", choices=["before", "after", "gunzip"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.map.is_file():
        sys.exit(f"skymap {args.map} is absent (the GW190814 map lives in ../shared/skymaps, see DESIGN.md)")
    if args.one:
        one(args.one, args.map, args.repeat)
        return
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    print(f"map: {args.map.name} ({args.map.stat().st_size / 1e6:.1f} MB); {args.repeat} runs per variant, "
          f"each variant in a fresh process; load average at start {' '.join(load)}")
    res = {}
    for variant in ("before", "after", "gunzip"):
        p = subprocess.run([sys.executable, __file__, "--one", variant, "--repeat", str(args.repeat),
                            "--map", str(args.map)], capture_output=True, text=True, check=True)
        res[variant] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"{'variant':46s} {'wall (median)':>14s} {'CPU (median)':>13s} {'peak RSS':>10s}  result")
    labels = {"before": "before: astropy FITS_rec + pandas sort, every pixel",
              "after": "after: Watchmap.from_skymap (numpy, multi-order)",
              "gunzip": "floor: zlib decompression of the file alone"}
    for v, r in res.items():
        what = (f"90 % area {r['area90']:.2f} deg^2 from {r['cells']:,} cells" if "area90" in r
                else f"{r['bytes'] / 1e6:.0f} MB")
        print(f"{labels[v]:46s} {r['wall']:12.2f} s {r['cpu']:11.2f} s {r['rss_mib']:7.0f} MiB  {what}")
    b, a = res["before"], res["after"]
    print(f"-> {b['wall'] / a['wall']:.1f}x faster wall-clock, {b['cpu'] / a['cpu']:.1f}x less CPU; "
          f"areas identical: {abs(a['area90'] - b['area90']) < 1e-9}")

    n, q, ngal, t_match, ranked = queries(args.map)
    print(f"\nqueries on the loaded map, {n:,} positions (median of 3):")
    for label, t in q.items():
        print(f"  {label:30s} {t:6.3f} s  ({n / t / 1e6:.1f} M positions/s)")
    print(f"  match_galaxies_3d, OpenNGC {ngal:,} galaxies -> {len(ranked)} in the 90 % region: {t_match:.3f} s")
    cols = ["name", "ra", "dec", "redshift", "distance_mpc", "credible_level", "dp_dv", "host_prob", "rank"]
    print(ranked[cols].head(8).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
