"""A night larger than memory, filtered and cross-matched with the Dask engine.

Simulates an LSST-like survey over the whole southern sky and writes the last
night's alerts without cutouts (history kept: earlier detections and forced
photometry within 365 days), at least 1,000,000 alerts by default. Then runs,
with ``read_alerts(folder, engine="dask")``:

    filters   observable(mag <= 22) & quality & new(100 d) & |b| >= 15 deg
    matches   a 100,000-target watchlist (2") and a 431 deg^2 gravitational-wave MOC
    result    the surviving alerts' sources, the watchlist hits and the counts per band

and prints the sustained rate in alerts/s against LSST's average rate (10
million alerts a night, about 300 alerts/s), with the peak memory. The
baseline, run in the same process: the in-memory pandas engine on the same
work for the first files of the night (as much as comfortably fits).

A whole LSST night (``--copies 10``): the simulated night's files repeated as
hard links in ``copy_NN/`` folders (the same bytes, so ids repeat between
copies; the per-alert job does not depend on it), ten times a million alerts.
``--workers 0,1,2`` runs the job on the threaded scheduler of this process (0)
and on a ``dask.distributed`` LocalCluster of 1 and 2 worker processes (one
thread each), reporting alerts/s, the peak memory of each worker and the
scaling ratio 2 workers / 1 worker. Each worker process is given ``--worker-memory`` (4 GiB, a
cluster's usual allocation per core): Dask spills what a worker holds to disk past 60 % of it.

    python benchmarks/bench_scale.py [--scale 72] [--data DIR] [--keep] [--copies 10] [--workers 0,1,2]
                                     [--worker-memory 4GiB]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import pandas as pd

LSST_RATE = 10_000_000 / (9.3 * 3600)  # ~300 alerts/s over a 9.3-hour night


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.peak, self.start, self._stop = 0, self.now(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def now():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.now())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())

    @property
    def gib(self):
        return self.peak / 2**30


def make_night(folder, scale, nights, seed):
    from lsstuk_kit.simulate import simulate_survey, write_night

    t0 = time.perf_counter()
    tables = simulate_survey(nights, seed=seed, scale=scale)
    t1 = time.perf_counter()
    index = write_night(tables, folder, alert_nights=1, cutouts=False, chunk=50_000)
    t2 = time.perf_counter()
    n = int(index["n_alerts"].sum())
    print(f"simulated {nights} nights at scale {scale}: {len(tables.detections):,} detections in {t1 - t0:.0f} s; "
          f"wrote {n:,} alerts of the last night in {t2 - t1:.0f} s ({n / (t2 - t1):,.0f} alerts/s)")
    del tables


def work(alerts, watchlist, moc):
    """The per-night job; works on an AlertBatch and on a DaskAlerts alike."""
    from lsstuk_kit import filters as F
    from lsstuk_kit.crossmatch import match_watchlist

    keep = alerts.filter(F.observable(alerts, max_mag=22), F.quality(alerts), F.new(alerts, 100),
                         F.galactic_latitude(alerts, 15))
    in_area = moc.contains(alerts)
    hits = match_watchlist(alerts, watchlist, 2.0)
    return keep.sources, in_area, hits


def replicate(alerts_dir, copies):
    """``alerts_dir`` as ``copies`` hard-linked copies (``copy_NN/``) in a sibling folder; its path."""
    if copies <= 1:
        return alerts_dir
    out = f"{alerts_dir}_x{copies}"
    if not os.path.isdir(out):
        tmp = out + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        for k in range(copies):
            sub = os.path.join(tmp, f"copy_{k:02d}")
            os.makedirs(sub)
            for name in sorted(os.listdir(alerts_dir)):
                if name.endswith(".avro"):
                    os.link(os.path.join(alerts_dir, name), os.path.join(sub, name))
        os.rename(tmp, out)
    return out


class WorkerPeaks:
    """Peak resident memory of each worker process of a dask.distributed client (polled every 0.5 s)."""

    def __init__(self, client):
        self.client, self.peaks, self._stop = client, {}, threading.Event()

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop.wait(0.5):
            try:
                for w, rss in self.client.run(WorkerPeaks._rss).items():
                    self.peaks[w] = max(self.peaks.get(w, 0), rss)
            except Exception:  # a worker restarting: skip this poll
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def max_gib(self):
        return max(self.peaks.values(), default=0) / 2**30


def _warm(path):
    """Import the kit and load its compiled decoder in this (worker) process."""
    from lsstuk_kit import read_alerts

    return len(read_alerts(path, progress=False))


def run_job(alerts_dir, watchlist, moc, partition_size, workers, repeats="drop", memory_limit="4GiB"):
    """The whole night on ``workers`` processes (0: this process's threads); (alerts, seconds, results, peak).

    ``repeats="keep"`` for the hard-linked copies (their ids repeat by construction; see
    :func:`lsstuk_kit.scale.read_alerts_dask`). ``memory_limit``: each worker's (Dask spills what
    it holds to disk past 60 % of it, pauses at 80 % and restarts a worker at 95 %).
    """
    import dask

    from lsstuk_kit.io import iter_files
    from lsstuk_kit.scale import read_alerts_dask

    def job():
        t0 = time.perf_counter()
        night = read_alerts_dask(alerts_dir, partition_size=partition_size, repeats=repeats)
        keep, in_area, hits = work(night, watchlist, moc)
        n, kept, n_area, hit_rows = dask.compute(night.sources.map_partitions(len).sum(), keep.index.size,
                                                 in_area.sum(), hits.index.size)
        return int(n), time.perf_counter() - t0, (int(kept), int(n_area), int(hit_rows)), night.npartitions

    if workers == 0:
        with PeakRSS() as mem, dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
            n, dt, res, nparts = job()
        return n, dt, res, nparts, {"this process": mem.gib}
    from dask.distributed import Client, LocalCluster

    # one core per worker: Arrow, BLAS and numba size their thread pools from these (else a single
    # "one-thread" worker already uses every core, and 2 workers / 1 worker measures nothing)
    one_core = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=memory_limit, silence_logs=40, env=one_core) as cluster, Client(cluster) as client:
        first = iter_files(alerts_dir)[0]
        client.run(_warm, first)  # imports and the decoder's compiled code, on every worker, outside the timing
        with WorkerPeaks(client) as peaks:
            n, dt, res, nparts = job()
        moved = sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())
        print(f"  ({workers} worker{'s' * (workers > 1)}: {moved / 2**20:,.0f} MiB moved between workers)", flush=True)
        return n, dt, res, nparts, {w: v / 2**30 for w, v in peaks.peaks.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=72.0, help="population density (72: ~1 million alerts)")
    ap.add_argument("--nights", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=None, help="use (or make, if absent) the night in this folder")
    ap.add_argument("--keep", action="store_true", help="keep the simulated night")
    ap.add_argument("--baseline-files", type=int, default=80)
    ap.add_argument("--partition-size", default="64MB")
    ap.add_argument("--copies", type=int, default=1, help="repeat the night's files this many times (hard links)")
    ap.add_argument("--worker-memory", default="4GiB",
                    help="each worker process's memory limit (a cluster's allocation per core; default 4GiB)")
    ap.add_argument("--workers", default=None,
                    help="comma-separated worker-process counts, 0 = threads of this process (e.g. 0,1,2); "
                         "default: the original threaded run only")
    args = ap.parse_args(argv)

    import dask

    from lsstuk_kit import read_alerts
    from lsstuk_kit.io import iter_files
    from lsstuk_kit.skyareas import Watchmap, simulated_skymap

    folder = args.data or tempfile.mkdtemp(prefix="bench_scale_")
    alerts_dir = os.path.join(folder, "alerts")
    try:
        if not os.path.isdir(alerts_dir):  # in a child process, so its memory is not counted below
            child = multiprocessing.get_context("spawn").Process(
                target=make_night, args=(folder, args.scale, args.nights, args.seed))
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"simulating the night failed (exit {child.exitcode})")
        files = iter_files(alerts_dir)
        size = sum(os.path.getsize(f) for f in files)
        n_total = int(pd.read_csv(os.path.join(alerts_dir, "index.csv"))["n_alerts"].sum())
        print(f"night: {n_total:,} alerts in {len(files)} visit files, {size / 2**30:.2f} GiB of Avro "
              f"({size / n_total / 1024:.1f} KB/alert, no cutouts)")

        rng = np.random.default_rng(5)
        first = read_alerts(files[:3], columns=["ra", "dec"]).sources
        pick = first.sample(min(200, len(first)), random_state=1)  # some targets that will be hit
        watchlist = pd.DataFrame({"ra": np.r_[rng.uniform(0, 360, 99_800), pick["ra"].to_numpy()],
                                  "dec": np.r_[np.degrees(np.arcsin(rng.uniform(-1, 0.1, 99_800))),
                                               pick["dec"].to_numpy()]})
        watchlist["name"] = [f"wl{i}" for i in range(len(watchlist))]
        sky = simulated_skymap(os.path.join(folder, "skymap.fits"), ra=60.0, dec=-30.0)
        moc = Watchmap.from_skymap(sky, 0.9)
        print(f"watchlist {len(watchlist):,} targets; skymap 90 % area {moc.area_deg2:.0f} deg2")

        # ---- baseline: the pandas engine, in memory, on the first files (after a warm-up:
        # imports, the decoder's extension, the watchlist's k-d tree)
        work(read_alerts(files[-1], progress=False), watchlist, moc)
        sub = files[: args.baseline_files]
        with PeakRSS() as mem_base:
            t0 = time.perf_counter()
            batch = read_alerts(sub, progress=False)
            keep, in_area, hits = work(batch, watchlist, moc)
            n_sub = len(batch)
            t_base = time.perf_counter() - t0
        base_rate = n_sub / t_base
        print(f"baseline, pandas engine in memory: {n_sub:,} alerts ({len(sub)} files) in {t_base:.1f} s "
              f"-> {base_rate:,.0f} alerts/s; {len(keep):,} pass, {int(in_area.sum()):,} in the skymap, "
              f"{len(hits):,} watchlist hits; peak RSS {mem_base.gib:.2f} GiB "
              f"(~{mem_base.gib * n_total / n_sub:.0f} GiB for the whole night in memory)")
        del batch, keep, in_area, hits

        # ---- Dask, the whole night
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            night = read_alerts(alerts_dir, engine="dask", partition_size=args.partition_size)
            keep, in_area, hits = work(night, watchlist, moc)
            with dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
                n_night, kept, n_area, hit_rows, bands = dask.compute(
                    night.sources.map_partitions(len).sum(), keep, in_area.sum(), hits,
                    keep["band"].value_counts())
            t_dask = time.perf_counter() - t0
        rate = n_night / t_dask
        print(f"dask engine, whole night ({night.npartitions} partitions of ~{args.partition_size}): "
              f"{n_night:,} alerts in {t_dask:.1f} s -> {rate:,.0f} alerts/s sustained")
        print(f"  {len(kept):,} pass the filters ({dict(sorted(bands.items()))}), {int(n_area):,} in the skymap, "
              f"{len(hit_rows):,} watchlist hits")
        print(f"  = {rate / LSST_RATE:.1f}x LSST's average rate ({LSST_RATE:.0f} alerts/s); "
              f"{rate / base_rate:.2f}x the in-memory engine's rate; peak RSS {mem.gib:.2f} GiB "
              f"for {size / 2**30:.2f} GiB of Avro")
        assert n_night == n_total, (n_night, n_total)
        n_pass = len(kept)
        del night, keep, in_area, hits, kept, hit_rows

        # ---- the night-wide check for alerts read twice: with it ("drop", the default) and without
        # ("keep"), taking turns on the threaded scheduler, best of 2 each
        best = {"keep": [], "drop": []}
        for _ in range(2):
            for rep in ("keep", "drop"):
                n, dt, res, _, _ = run_job(alerts_dir, watchlist, moc, args.partition_size, 0, rep)
                assert n == n_total and res[0] == n_pass, (rep, n, res)
                best[rep].append(dt)
        t_keep, t_drop = min(best["keep"]), min(best["drop"])
        print(f"  the repeat check (one read of each partition's ids): {t_drop:.1f} s with it, {t_keep:.1f} s "
              f"without (repeats='keep'), best of 2 taking turns: it costs {t_drop / t_keep - 1:+.0%} of the job")

        if args.workers is not None:
            big = replicate(alerts_dir, args.copies)
            n_big = n_total * max(args.copies, 1)
            print(f"\nthe whole job on {n_big:,} alerts ({args.copies} hard-linked copies of the night, same bytes"
                  f"{', repeats=keep' if args.copies > 1 else ''}), partitions of {args.partition_size}:")
            print("| engine | alerts | time | alerts/s | x LSST's 300/s | peak memory per worker | results |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
            rates = {}
            for w in [int(x) for x in args.workers.split(",")]:
                n, dt, res, nparts, peaks = run_job(big, watchlist, moc, args.partition_size, w,
                                                    repeats="keep" if args.copies > 1 else "drop",
                                                    memory_limit=args.worker_memory)
                assert n == n_big, (n, n_big)
                rates[w] = n / dt
                name = "threads of one process (2)" if w == 0 else f"LocalCluster, {w} worker process{'es' * (w > 1)}"
                print(f"| {name} | {n:,} | {dt:.0f} s | {n / dt:,.0f} | {n / dt / LSST_RATE:.0f}x | "
                      f"{max(peaks.values()):.2f} GiB | {res[0]:,} pass, {res[1]:,} in the skymap, {res[2]:,} hits |",
                      flush=True)
            if 1 in rates and 2 in rates:
                print(f"scaling, 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
    finally:
        if args.data is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"cores: {os.cpu_count()}, dask {dask.__version__}")


if __name__ == "__main__":
    main()
