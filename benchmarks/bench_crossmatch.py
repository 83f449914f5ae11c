"""Cross-match and sky-area speed against astropy, in one process.

1. Nearest catalogue match within 2 arcsec: 1,000,000 alerts against a
   1,000,000-row catalogue; lsstuk_kit.crossmatch.nearest_within against
   astropy's SkyCoord.match_to_catalog_sky (then cut at 2 arcsec); the matches
   must be identical.
2. MOC containment of 1,000,000 positions (lsstuk_kit.skyareas.Watchmap.contains_lonlat).

    python benchmarks/bench_crossmatch.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from lsstuk_kit.crossmatch import nearest_within


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.n
    # a survey-like overlap: the catalogue covers the same 2000 deg^2 as the alerts
    dec_lo, dec_hi = -40.0, -10.0
    def draw(k):
        ra = rng.uniform(0, 70, k)
        dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(dec_lo)), np.sin(np.radians(dec_hi)), k)))
        return ra, dec
    cra, cdec = draw(n)
    # half the alerts sit on a catalogue source (0.3" scatter), half anywhere
    ara, adec = draw(n)
    on = rng.random(n) < 0.5
    pick = rng.integers(0, n, on.sum())
    ara[on] = (cra[pick] + rng.normal(0, 0.3 / 3600, on.sum()) / np.cos(np.radians(cdec[pick]))) % 360
    adec[on] = cdec[pick] + rng.normal(0, 0.3 / 3600, on.sum())

    t = time.perf_counter()
    ca, cc = SkyCoord(ara * u.deg, adec * u.deg), SkyCoord(cra * u.deg, cdec * u.deg)
    aidx, asep, _ = ca.match_to_catalog_sky(cc)
    hit = asep < 2 * u.arcsec
    t_astropy = time.perf_counter() - t

    t = time.perf_counter()
    idx, sep = nearest_within(ara, adec, cra, cdec, 2.0)
    t_ours = time.perf_counter() - t
    same = np.array_equal(idx >= 0, hit) and np.array_equal(idx[hit], aidx[hit])
    print(f"nearest within 2\": {n:,} alerts x {n:,} catalogue rows, {hit.sum():,} matched")
    print(f"  astropy match_to_catalog_sky  {t_astropy:7.2f} s")
    print(f"  lsstuk_kit nearest_within     {t_ours:7.2f} s   -> {t_astropy / t_ours:.1f}x faster; "
          f"matches identical: {same}")

    try:
        from lsstuk_kit.skyareas import Watchmap, simulated_skymap
    except ImportError as exc:  # pragma: no cover
        print(f"skyareas unavailable: {exc}")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = simulated_skymap(os.path.join(tmp, "gw.fits"), ra=35.0, dec=-25.0, seed=1)
        wm = Watchmap.from_skymap(path, 0.9)
        wm.contains_lonlat(ara[:1000], adec[:1000])
        t = time.perf_counter()
        inside = wm.contains_lonlat(ara, adec)
        dt = time.perf_counter() - t
        print(f"MOC containment: {n:,} positions in {dt:.3f} s -> {n / dt / 1e6:.1f} million positions/s "
              f"({inside.sum():,} inside the 90% region of {wm.area_deg2:.0f} deg^2)")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
