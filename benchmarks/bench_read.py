"""Read speed of heavy, real-shaped Rubin alerts: read_alerts against a fastavro dict loop.

Builds a container of at least 2,000 Rubin-schema alerts shaped like the real
ones in ../shared/real-alerts/lsst (300-400 previous detections, as many forced
photometry rows, three FITS cutouts, ~230 KB each), then measures, in this one
process and on the same file:

  (a) fastavro decode-to-dicts loop (what most broker clients and tutorials do)
  (b) read_alerts(path)                        -> sources + history, all columns
  (c) read_alerts(path, columns=DEFAULT_COLUMNS) -> the typical projection
  (d) as (b) with verify=True: every block's records walked (here each block holds one heavy
      alert, which the default verify="auto" leaves to the decoder)
  (e) as (b) with verify=False: no walk and no codec check

Prints alerts/s, the ratio to (a) and peak extra memory (RSS sampled every 5 ms).

    python benchmarks/bench_read.py [--alerts 2000] [--distinct 24] [--repeat 2]
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


def fastavro_loop(path):
    n = 0
    with open(path, "rb") as fh:
        for _alert in fastavro.reader(fh):
            n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--distinct", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per case")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        path = os.path.join(tmp, "heavy.avro")
        t0 = time.perf_counter()
        size = build(path, args.alerts, args.distinct)
        probe = lk.read_alerts(path, cutouts=False)
        hist = probe.history["kind"].value_counts()
        print(f"built {args.alerts} alerts, {size / 2**20:.0f} MiB ({size / args.alerts / 1024:.0f} KB/alert), "
              f"{hist.get('detection', 0) / args.alerts:.0f} detections + {hist.get('forced', 0) / args.alerts:.0f} "
              f"forced rows per alert, in {time.perf_counter() - t0:.1f} s; cores: {os.cpu_count()}")
        del probe
        cases = [
            ("(a) fastavro dict loop (baseline)", lambda: fastavro_loop(path)),
            ("(b) read_alerts, all columns", lambda: len(lk.read_alerts(path))),
            ("(c) read_alerts, typical projection", lambda: len(lk.read_alerts(path, columns=lk.DEFAULT_COLUMNS))),
            ("(d) as (b), verify=True", lambda: len(lk.read_alerts(path, verify=True))),
            ("(e) as (b), verify=False", lambda: len(lk.read_alerts(path, verify=False))),
        ]
        results = []
        for name, fn in cases:
            best, mem = float("inf"), 0.0
            for _ in range(args.repeat):
                with PeakRSS() as m:
                    t = time.perf_counter()
                    n = fn()
                    dt = time.perf_counter() - t
                assert n == args.alerts, (name, n)
                best, mem = min(best, dt), max(mem, m.extra_mb)
            results.append((name, args.alerts / best, mem))
        base = results[0][1]
        print(f"{'case':40s} {'alerts/s':>10s} {'x (a)':>7s} {'peak MiB':>9s}")
        for name, rate, mem in results:
            print(f"{name:40s} {rate:10.0f} {rate / base:7.2f} {mem:9.0f}")


if __name__ == "__main__":
    main()
