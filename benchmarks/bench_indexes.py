"""Cone searches through HEALPix, HTM, S2 and Q3C (PostgreSQL) against brute force.

A catalogue of --n positions uniform on the sky (default 1,000,000); --cones
cone centres at random, plus cones at the poles (dec +-89.99) and across
RA 0/360; radii 2 arcsec, 1 arcmin and 30 arcmin. For each index: build time,
mean query time per radius, and whether every hit set equals brute force.

    python benchmarks/bench_indexes.py [--n 1000000] [--cones 200]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lsstuk_kit.spatial import INDEXES, BruteForce, LocalPostgres, Q3CIndex


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--cones", type=int, default=200)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    ra = rng.uniform(0, 360, args.n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.n)))
    cones = list(zip(rng.uniform(0, 360, args.cones), np.degrees(np.arcsin(rng.uniform(-1, 1, args.cones)))))
    special = [(0.0, 89.99), (90.0, -89.99), (359.9999, 10.0), (0.0001, -10.0)]
    radii = [2.0, 60.0, 1800.0]
    bf = BruteForce(ra, dec)
    reference = {(c, r): bf.query(c[0], c[1], r) for c in cones[:20] + special for r in radii}
    t = time.perf_counter()
    for c in cones[:20]:
        bf.query(c[0], c[1], 60.0)
    brute_ms = (time.perf_counter() - t) / 20 * 1e3
    indexes = {name: cls(ra, dec) for name, cls in INDEXES.items()}
    pg = None
    if LocalPostgres.find_bindir() and LocalPostgres.has_q3c():
        pg = LocalPostgres().__enter__()
        indexes["Q3C"] = Q3CIndex(ra, dec, pg.conninfo)
    else:
        print("Q3C skipped: PostgreSQL or postgresql-15-q3c not installed")
    print(f"catalogue {args.n:,} rows; {len(cones)} random cones + {len(special)} at the poles / RA wrap; "
          f"brute force {brute_ms:.1f} ms per cone")
    print(f"{'index':18s} {'build s':>8s} " + " ".join(f"{'ms/cone r=' + str(int(r)) + 'as':>16s}" for r in radii)
          + f" {'poles ms':>9s} {'identical':>9s}")
    try:
        for name, idx in indexes.items():
            same = all(np.array_equal(idx.query(c[0], c[1], r), ref) for (c, r), ref in reference.items())
            per = []
            for r in radii:
                t = time.perf_counter()
                for c in cones:
                    idx.query(c[0], c[1], r)
                per.append((time.perf_counter() - t) / len(cones) * 1e3)
            t = time.perf_counter()
            for c in special:
                idx.query(c[0], c[1], 60.0)
            poles = (time.perf_counter() - t) / len(special) * 1e3
            print(f"{name:18s} {idx.build_seconds:8.2f} " + " ".join(f"{p:16.3f}" for p in per)
                  + f" {poles:9.3f} {str(same):>9s}")
    finally:
        if pg is not None:
            indexes["Q3C"].close()
            pg.__exit__(None, None, None)
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
