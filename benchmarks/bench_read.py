"""Read speed of real-shaped Rubin alerts: the compiled decoder against fastavro and against memory.

Cases (``--case``):

- ``real`` (default when ``../shared/real-alerts/lsst`` exists): the 7 real Rubin alerts of
  ``part-2-918301.avro`` replicated to ``--alerts`` records with new ids (~220 KB each: 300-400
  previous detections, as many forced-photometry rows, three FITS cutouts);
- ``synthetic``: simulated heavy alerts of the same shape (``simulate_packets``);
- ``lite``: the real alerts without history (the shape of Lasair's lite streams), cutouts kept.

Rows, all measured in this one process on the same file (best of ``--repeat``):

  fastavro to dicts                  the loop most broker clients start from (the baseline)
  fastavro dicts + pandas tables     the loop plus the tables a user wants (on the first 200 alerts)
  read_alerts, all columns           the kit (compiled decoder, 2 workers)
  read_alerts, DEFAULT_COLUMNS       the typical projection
  read_alerts, no cutouts            all columns but the stamps
  reading the file into memory       numpy.fromfile: the limit any decoder has
  container framing only             the block index the reader builds first

Prints alerts/s, the ratio to fastavro, the fraction of the memory-read rate, and peak extra
resident memory against the file's size; then what the all-columns batch itself holds (its
pandas history and sources, its cutouts) against the file's size, and the peak of the first
all-columns read in a fresh process (no memory freed by earlier reads to reuse). Then the
compiled decoder's first-call cost: a fresh process with an empty numba cache (compiling) and
one with the cache warm.

    python benchmarks/bench_read.py [--case real|synthetic|lite|all] [--alerts 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import fastavro

import lsstuk_kit as lk
from lsstuk_kit.simulate import simulate_packets


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the starting level while the block runs."""

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())
        self.extra_mb = (self.peak - self.start) / 2**20


def build(path, n_alerts, distinct, seed=7):
    schema, proto = simulate_packets(distinct, n_history=400, min_history=300, detect_all=True, seed=seed)
    parsed = fastavro.parse_schema(schema)

    def gen():
        for i in range(n_alerts):
            a = dict(proto[i % distinct])
            src = dict(a["diaSource"])
            src["diaSourceId"] = a["diaSourceId"] = 10**17 + i
            src["diaObjectId"] = 10**16 + i
            a["diaSource"] = src
            a["diaObject"] = {**a["diaObject"], "diaObjectId": 10**16 + i}
            yield a

    with open(path, "wb") as fh:
        fastavro.writer(fh, parsed, gen())
    return os.path.getsize(path)


REAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "real-alerts", "lsst", "part-2-918301.avro")


def build_real(path, n_alerts, lite=False):
    """Replicate the real Rubin alerts to ``n_alerts`` records with new ids (``lite``: no history)."""
    with open(REAL, "rb") as fh:
        reader = fastavro.reader(fh)
        schema = reader.writer_schema
        proto = list(reader)
    parsed = fastavro.parse_schema(schema)

    def gen():
        for i in range(n_alerts):
            a = dict(proto[i % len(proto)])
            src = dict(a["diaSource"])
            src["diaSourceId"] = a["diaSourceId"] = 10**17 + i
            src["diaObjectId"] = 10**16 + i
            a["diaSource"] = src
            if a.get("diaObject"):
                a["diaObject"] = {**a["diaObject"], "diaObjectId": 10**16 + i}
            if lite:
                a["prvDiaSources"] = a["prvDiaForcedSources"] = None
            yield a

    with open(path, "wb") as fh:
        fastavro.writer(fh, parsed, gen())
    return os.path.getsize(path)


def fastavro_tables(path, limit=200):
    """fastavro dicts, then the pandas tables a user wants (alerts, history): the plain-Python way."""
    import pandas as pd

    rows, hist = [], []
    with open(path, "rb") as fh:
        for i, alert in enumerate(fastavro.reader(fh)):
            if i == limit:
                break
            rows.append(alert["diaSource"])
            for key in ("prvDiaSources", "prvDiaForcedSources"):
                for h in alert.get(key) or ():
                    hist.append({**h, "kind": key})
    pd.DataFrame(rows), pd.DataFrame(hist)
    return min(limit, i + 1)


def memory_read(path):
    import numpy as np

    return len(np.fromfile(path, np.uint8))


def framing_only(path):
    from lsstuk_kit import _container

    with open(path, "rb") as fh:
        return _container.index_container(fh.read()).n_records


def first_call_cost(path):
    """Seconds of a fresh process's first read: numba cache empty (compiling), then warm."""
    import subprocess
    import sys

    code = (f"import time, lsstuk_kit as lk; t = time.perf_counter(); lk.read_alerts({path!r}, workers=1); "
            "print(time.perf_counter() - t)")
    out = []
    with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def fresh_peak(path, small):
    """Peak extra resident memory of a fresh process's first all-columns read of ``path`` (x its size).

    The rows above are measured in this process after earlier reads, whose freed memory the
    allocators may hand out again; a user's first read in a new notebook has none to reuse.
    (Imports and the compiled decoder are warmed on ``small`` first.)
    """
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            "import lsstuk_kit as lk, bench_read as b; "
            f"lk.read_alerts({small!r}); "
            f"m = b.PeakRSS().__enter__(); batch = lk.read_alerts({path!r}, workers=2); m.__exit__(None, None, None); "
            "print(m.extra_mb)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1]) * 2**20 / os.path.getsize(path)


def fastavro_loop(path):
    n = 0
    with open(path, "rb") as fh:
        for _alert in fastavro.reader(fh):
            n += 1
    return n


def measure(label, path, size, n_alerts, repeat, lite=False):
    probe = lk.read_alerts(path, cutouts=False)
    hist = probe.history["kind"].value_counts()
    del probe
    print(f"\n{label}: {n_alerts} alerts, {size / 2**20:.0f} MiB ({size / n_alerts / 1024:.0f} KB/alert), "
          f"{hist.get('detection', 0) / n_alerts - 1:.0f} previous detections + {hist.get('forced', 0) / n_alerts:.0f} "
          f"forced rows per alert; cores: {os.cpu_count()}")
    cases = [
        ("fastavro to dicts (baseline)", lambda: fastavro_loop(path), n_alerts),
        ("fastavro dicts + pandas tables", lambda: fastavro_tables(path), min(200, n_alerts)),
        ("read_alerts, all columns", lambda: len(lk.read_alerts(path, workers=2)), n_alerts),
        ("read_alerts, DEFAULT_COLUMNS", lambda: len(lk.read_alerts(path, columns=lk.DEFAULT_COLUMNS, workers=2)),
         n_alerts),
        ("read_alerts, no cutouts", lambda: len(lk.read_alerts(path, cutouts=False, workers=2)), n_alerts),
        ("reading the file into memory", lambda: memory_read(path) and n_alerts, n_alerts),
        ("container framing only", lambda: framing_only(path), n_alerts),
    ]
    results = []
    for name, fn, expect in cases:
        best, mem = float("inf"), 0.0
        for _ in range(repeat):
            with PeakRSS() as m:
                t = time.perf_counter()
                n = fn()
                dt = time.perf_counter() - t
            assert n == expect, (name, n)
            best, mem = min(best, dt), max(mem, m.extra_mb)
        results.append((name, expect / best, mem))
    batch = lk.read_alerts(path, workers=2)
    st = batch._store
    held = {"history": st.history.memory_usage(deep=False).sum(), "sources": st.sources.memory_usage(deep=False).sum(),
            "cutouts": sum(c.nbytes for c in st.cutouts.values())}
    del batch, st
    base = results[0][1]
    limit = results[5][1]
    print(f"{'path':34s} {'alerts/s':>10s} {'x fastavro':>11s} {'of memory':>10s} {'peak MiB':>9s} {'x file':>7s}")
    for name, rate, mem in results:
        print(f"{name:34s} {rate:10.0f} {rate / base:11.1f} {rate / limit:10.2f} {mem:9.0f} "
              f"{mem * 2**20 / size:7.2f}")
    print("the batch itself (all columns): " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in held.items())
          + f" = {sum(held.values()) / size:.2f} x the file")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="all", choices=["real", "synthetic", "lite", "all"])
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--distinct", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per case")
    args = ap.parse_args(argv)
    have_real = os.path.exists(REAL)
    cases = ["real", "lite", "synthetic"] if args.case == "all" else [args.case]
    if not have_real and any(c in ("real", "lite") for c in cases):
        print(f"{REAL} is absent: real-shaped cases skipped, synthetic measured")
        cases = ["synthetic"]
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        small = None
        for case in cases:
            path = os.path.join(tmp, f"{case}.avro")
            n = args.alerts * (10 if case == "lite" else 1)
            if case == "synthetic":
                size = build(path, n, args.distinct)
            else:
                size = build_real(path, n, lite=case == "lite")
            measure(case, path, size, n, args.repeat)
            if small is None:
                small = os.path.join(tmp, "small.avro")
                build_real(small, 50) if have_real else build(small, 50, 5)
            print(f"first all-columns read in a fresh process: peak {fresh_peak(path, small):.2f} x the file")
            os.remove(path)
        cold, warm = first_call_cost(small)
        print(f"\nfirst read in a fresh process (50 alerts): {cold:.1f} s with an empty numba cache (compiling), "
              f"{warm:.2f} s with the cache warm")



if __name__ == "__main__":
    main()
