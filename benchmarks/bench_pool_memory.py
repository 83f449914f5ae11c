"""Memory of repeated reads: pooled DuckDB connections must not grow with reads or errors.

Reads a folder of good sample files (baseline) and then an error-heavy folder (the same files
plus damaged copies: flipped bytes in block data, strings that are not UTF-8, truncations)
N times each in this one process, printing the resident memory after every 50 reads, the
growth per 100 reads, and the pool's size. Issue 11 measured 220 -> 848 MB over 300 reads
of an error-heavy folder before the pool was bounded.

    python benchmarks/bench_pool_memory.py [--reads 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

import lsstuk_kit as lk
from lsstuk_kit import _duck
from lsstuk_kit._container import index_container


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def damaged_copies(src: Path, out: Path, rng):
    data = src.read_bytes()
    idx = index_container(data)
    start, end = int(idx.block_data_start[0]), int(idx.block_end[0]) - 16
    for k in range(4):
        d = bytearray(data)
        for pos in rng.integers(start, end, 3):
            d[pos] ^= 0xFF
        (out / f"{src.stem}_flip{k}.avro").write_bytes(bytes(d))
    (out / f"{src.stem}_cut.avro").write_bytes(data[: (start + end) // 2])


def run(folder, reads):
    marks = []
    for i in range(1, reads + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lk.read_alerts(folder, errors="skip", cutouts=False)
        if i % 50 == 0:
            marks.append((i, rss_mb(), len(_duck._POOL)))
    return marks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=300)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    files = sorted((lk.sample_path() / "alerts").glob("*.avro"))
    with tempfile.TemporaryDirectory(prefix="bench_pool_") as tmp:
        good, bad = Path(tmp, "good"), Path(tmp, "bad")
        good.mkdir()
        bad.mkdir()
        for f in files:
            shutil.copy(f, good / f.name)
            shutil.copy(f, bad / f.name)
            damaged_copies(f, bad, rng)
        n_err = len(lk.read_alerts(bad, errors="skip", cutouts=False).errors)
        print(f"error-heavy folder: {len(list(bad.iterdir()))} files, {n_err} records reported per read")
        start = rss_mb()
        print(f"RSS at start {start:.0f} MiB")
        for name, folder in (("good files (baseline)", good), ("error-heavy folder", bad)):
            first = rss_mb()
            marks = run(folder, args.reads)
            grow = (marks[-1][1] - marks[0][1]) / max(1, (marks[-1][0] - marks[0][0])) * 100
            print(f"{name}: " + ", ".join(f"{i} reads {m:.0f} MiB" for i, m, _ in marks)
                  + f"; from {first:.0f} MiB, {grow:+.1f} MiB per 100 reads after the first 50; "
                  f"pool {marks[-1][2]} connections (max {_duck._POOL_MAX})")
        print(f"release_connections() closed {lk.io.release_connections()}; RSS now {rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
