"""The whole pipeline's rate: replay -> load -> filter -> cross-match -> real/bogus.

Two simulated nights, replayed visit by visit at full speed in time order and
processed in chunks of about ``--chunk`` alerts (consecutive visits, as a Kafka
consumer would hand them over):

1. real-shaped: alerts like real Rubin ones, with 100+ history rows (earlier
   detections and forced photometry; fields observed nightly for 180 nights)
   and three FITS cutouts each.
2. lite: the whole southern sky, alerts with cutouts but no history (the shape
   of Lasair's lite streams).

Per chunk:

    load         read_alerts(files of the chunk's visits)
    filter       observable(mag <= 22.5) & quality & galactic_latitude(10) & has_history, rising/fading rates
    cross-match  a 100,000-target watchlist (2"), a 431 deg^2 gravitational-wave MOC, and
                 classify_context (Hipparcos bright-star veto + simulated star, CV and galaxy catalogues)
    real/bogus   score_batch on the alerts that passed the filters (features from the
                 stamps + gradient-boosted trees)

The pipeline runs twice, side by side in one process (``--filters both``): with the filter stage
as the kit does it now (the history rows found by sorting integer keys; the history-based rules take only
the columns they use, and share one sort) and as it did before issue 14 (``batch.history`` built
with pandas ``drop_duplicates``/``sort_values`` over every column, each rule sorting again), the
reference kept below. Both give the same masks; each run checks it on its first chunk.

A loader thread decodes the next chunk (``read_alerts``, the compiled decoder)
while the main thread filters, cross-matches and scores the current one: two
threads for two cores. Sustained rate = alerts / wall time over the whole
replay, every stage included. Targets (issue 14): >= 3,000 alerts/s for real-shaped alerts (10x
LSST's whole average rate) and >= 20,000 alerts/s for lite ones, on a 2-core machine. The
baseline, in the same process: fastavro decoding the same files to dicts
(decode only, no work done), the loop most brokers start from.

    python benchmarks/bench_pipeline.py [--fields 8] [--chunk 2000] [--data DIR] [--filters both|new|old]
    python benchmarks/bench_pipeline.py --data DIR --stage-chunks 6   # the filter stage alone, before vs now
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import shutil
import tempfile
import time

import fastavro
import numpy as np
import pandas as pd

LSST_RATE = 10_000_000 / (9.3 * 3600)


def make_real_shaped(folder, n_fields, alert_nights):
    from lsstuk_kit.simulate import simulate_survey, write_night
    from lsstuk_kit.simulate.cadence import survey_fields

    fields = survey_fields()
    # fields spread in RA along dec -45..-15, observed every night they are up for 180 nights;
    # alerts from the last `alert_nights` nights, so each carries months of history
    band = fields[fields["dec"].between(-45, -15)].sort_values("ra")
    pick = band["fieldId"].to_numpy()[np.linspace(0, len(band) - 1, n_fields).astype(int)].tolist()
    t0 = time.perf_counter()
    tables = simulate_survey(180, seed=2, fields=pick, scale=20.0, revisit_nights=1, start_mjd=60920.0)
    write_night(tables, folder, alert_nights=alert_nights, chunk=4000)
    print(f"  made the real-shaped alerts in {time.perf_counter() - t0:.0f} s ({len(pick)} fields, 180 nights, "
          f"alerts of the last {alert_nights})")


def make_lite(folder, scale):
    from lsstuk_kit.simulate import simulate_survey, write_night

    t0 = time.perf_counter()
    tables = simulate_survey(7, seed=1, scale=scale)
    write_night(tables, folder, alert_nights=1, chunk=20000, history_days=0)
    print(f"  made the lite night in {time.perf_counter() - t0:.0f} s")


def chunks_of(folder, size):
    """Replay the night in time order, grouping consecutive visits into chunks of ~size alerts."""
    from lsstuk_kit.replay import replay

    files, n = [], 0
    counts = pd.read_csv(os.path.join(folder, "alerts", "index.csv")).set_index("file")["n_alerts"]
    for rb in replay(folder, load=False):
        files.extend(rb.files)
        n += int(sum(counts[os.path.basename(f)] for f in rb.files))
        if n >= size:
            yield files
            files, n = [], 0
    if files:
        yield files


# ---------------------------------------------------------------- the filter stage before issue 14 (reference)
def old_history(batch):
    """``batch.history`` as it was built before: pandas over every column of the history table."""
    from lsstuk_kit.batch import _HISTORY_KEY, _drop_idless_repeats

    st, pos = batch._store, batch._pos
    h = st.history
    if len(pos) != len(st.sources):
        keep = np.zeros(len(st.sources), bool)
        keep[pos] = True
        h = h[keep[h["_alert"].to_numpy()]]
    if pd.Series(st.sources["diaObjectId"].to_numpy()[pos]).duplicated().any():
        key = [c for c in _HISTORY_KEY if c in h]
        ids = [c for c in ("diaSourceId", "diaForcedSourceId") if c in h]
        no_id = h[ids].isna().all(axis=1).to_numpy()
        if no_id.any():
            h = h.assign(_flux_key=np.where(no_id, h["psfFlux"].to_numpy(float, na_value=np.nan), 0.0))
            key = key + ["_flux_key"]
        h = h.sort_values("_alert", kind="stable").drop_duplicates(key, keep="last")
        h = _drop_idless_repeats(h.drop(columns=["_flux_key"], errors="ignore"), ids)
    return h.sort_values(["diaObjectId", "midpointMjdTai", "kind"], kind="stable").drop(columns="_alert") \
        .reset_index(drop=True)


def old_history_rules(batch):
    """has_history(2), rising(0.05) | fading(0.05) as computed before (each from the whole table)."""
    from lsstuk_kit.filters import _time_key_scale

    s, h = batch.sources, old_history(batch)
    det = h[h["kind"] == "detection"]  # has_history
    codes, _ = pd.factorize(pd.concat([s["diaObjectId"], det["diaObjectId"]], ignore_index=True))
    a_code, d_code = codes[: len(s)], codes[len(s):]
    t_a, t_d = s["midpointMjdTai"].to_numpy(float), det["midpointMjdTai"].to_numpy(float)
    t0, big = _time_key_scale(t_a, t_d)
    dkey = np.sort(d_code * big + (t_d - t0), kind="stable")
    start = np.searchsorted(dkey, a_code * big)
    upto = np.searchsorted(dkey, a_code * big + (t_a - t0) + 1e-7, side="right")
    known = pd.Series(np.maximum(upto - start, 0) >= 2, index=s.index)
    det = h[h["kind"].isin(["detection"]) & h["psfFlux"].notna()]  # rates (same band), shared by rising/fading
    codes, _ = pd.factorize(pd.concat([s["diaObjectId"], det["diaObjectId"]], ignore_index=True))
    bands, _ = pd.factorize(pd.concat([s["band"], det["band"]], ignore_index=True))
    n_bands = int(bands.max()) + 2 if len(bands) else 2
    codes, _ = pd.factorize(codes.astype(np.int64) * n_bands + (bands + 1))
    a_code, d_code = codes[: len(s)], codes[len(s):]
    t_d = det["midpointMjdTai"].to_numpy(float)
    t0, big = _time_key_scale(t_a, t_d)
    dkey = d_code * big + (t_d - t0)
    order = np.argsort(dkey, kind="stable")
    dkey, mag_d = dkey[order], det["mag"].to_numpy(float)[order]
    akey = a_code * big + (t_a - t0)
    prev = np.searchsorted(dkey, akey - 1e-6, side="left") - 1
    same = np.zeros(len(s), bool)
    same[prev >= 0] = np.floor(dkey[prev[prev >= 0]] / big) == a_code[prev >= 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(same, s["mag"].to_numpy(float) - mag_d[np.maximum(prev, 0)], np.nan) \
            / np.where(same, akey - dkey[np.maximum(prev, 0)], np.nan)
    rate = np.nan_to_num(rate, nan=0.0)
    moving = pd.Series((rate <= -0.05) | (rate >= 0.05), index=s.index)
    return known, moving, len(h)


def new_history_rules(batch):
    """The same rules as the kit computes them now."""
    from lsstuk_kit import filters as F

    moving = F.rising(batch, 0.05) | F.fading(batch, 0.05)
    known = F.has_history(batch, 2)
    return known, moving, len(batch._history_rows())  # the row count without building the wide table


class Pipeline:
    def __init__(self, folder, watchlist, moc, catalogs, model, load_workers=None, old_filters=False):
        self.load_workers = load_workers
        self.history_rules = old_history_rules if old_filters else new_history_rules
        self.checked = False
        self.watchlist, self.moc, self.catalogs, self.model = watchlist, moc, catalogs, model
        self.times = dict.fromkeys(["load", "filter", "cross-match", "real/bogus"], 0.0)
        self.counts = dict.fromkeys(["alerts", "history rows", "pass filters", "in skymap", "watchlist hits",
                                     "scored real (> 0.5)", "interesting"], 0)

    def load(self, files):
        from lsstuk_kit import read_alerts

        t = time.perf_counter()
        batch = read_alerts(files, progress=False, workers=self.load_workers)
        return batch, time.perf_counter() - t

    def process(self, batch):
        from lsstuk_kit import filters as F
        from lsstuk_kit.context import classify_context
        from lsstuk_kit.crossmatch import match_watchlist
        from lsstuk_kit.realbogus import score_batch

        c, tm = self.counts, self.times
        t0 = time.perf_counter()
        keep = F.observable(batch, max_mag=22.5) & F.quality(batch) & F.galactic_latitude(batch, 10)
        known, moving, n_history = self.history_rules(batch)
        t1 = time.perf_counter()
        tm["filter"] += t1 - t0
        if not self.checked:  # the other way gives the same masks (on a fresh batch: no shared cache); not timed
            other = old_history_rules if self.history_rules is new_history_rules else new_history_rules
            k2, m2, n2 = other(type(batch)(batch._store, batch._pos))
            assert known.equals(k2) and moving.equals(m2) and n_history == n2, "old and new filters differ"
            self.checked = True
            t1 = time.perf_counter()
        in_area = self.moc.contains(batch)
        hits = match_watchlist(batch, self.watchlist, 2.0)
        ctx = classify_context(batch, **self.catalogs)
        t2 = time.perf_counter()
        candidates = batch.filter(keep)  # real/bogus on what passed the filters, as brokers do
        rb = score_batch(candidates, self.model).reindex(batch.sources.index, fill_value=0.0)
        t3 = time.perf_counter()
        interesting = keep & (rb > 0.5) & (moving | ~known | in_area) & (ctx["context"] != "variable star")
        tm["cross-match"] += t2 - t1
        tm["real/bogus"] += t3 - t2
        c["alerts"] += len(batch)
        c["history rows"] += n_history
        c["pass filters"] += int(keep.sum())
        c["in skymap"] += int(in_area.sum())
        c["watchlist hits"] += len(hits)
        c["scored real (> 0.5)"] += int((rb > 0.5).sum())
        c["interesting"] += int(interesting.sum())

    def run(self, folder, chunk, prefetch=2):
        """Replay and process; ``prefetch`` loader threads read the next chunks while this one is processed."""
        t0 = time.perf_counter()
        stream = chunks_of(folder, chunk)
        if not prefetch:
            for files in stream:
                batch, dt = self.load(files)
                self.times["load"] += dt
                self.process(batch)
            return time.perf_counter() - t0
        with cf.ThreadPoolExecutor(prefetch) as pool:
            pending = collections.deque()
            for files in stream:
                pending.append(pool.submit(self.load, files))
                if len(pending) > prefetch:
                    self._finish(pending.popleft())
            while pending:
                self._finish(pending.popleft())
        return time.perf_counter() - t0

    def _finish(self, future):
        batch, dt = future.result()
        self.times["load"] += dt
        self.process(batch)


def fastavro_rate(folder, limit):
    files = sorted(os.path.join(folder, "alerts", f) for f in os.listdir(os.path.join(folder, "alerts"))
                   if f.endswith(".avro"))
    n = 0
    t = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            for _ in fastavro.reader(fh):
                n += 1
        if n >= limit:
            break
    return n / (time.perf_counter() - t)


def setup(folder):
    from lsstuk_kit.context import catalogs_from_simulation
    from lsstuk_kit.realbogus import default_model
    from lsstuk_kit.skyareas import Watchmap, simulated_skymap

    rng = np.random.default_rng(5)
    idx = pd.read_csv(os.path.join(folder, "alerts", "index.csv"))
    from lsstuk_kit import read_alerts

    some = read_alerts([os.path.join(folder, "alerts", f) for f in idx["file"].iloc[:5]], columns=["ra", "dec"],
                       cutouts=False).sources.sample(100, random_state=1)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 0.1, 99_900)))
    watchlist = pd.DataFrame({"ra": np.r_[rng.uniform(0, 360, 99_900), some["ra"].to_numpy()],
                              "dec": np.r_[dec, some["dec"].to_numpy()]})
    watchlist["name"] = [f"wl{i}" for i in range(len(watchlist))]
    sky = simulated_skymap(os.path.join(folder, "skymap.fits"), ra=float(some["ra"].median()),
                           dec=float(some["dec"].median()))
    moc = Watchmap.from_skymap(sky, 0.9)
    cats = catalogs_from_simulation(pd.read_parquet(os.path.join(folder, "population.parquet")),
                                    pd.read_parquet(os.path.join(folder, "hosts.parquet")))
    model = default_model()
    return watchlist, moc, {"stars": cats["stars"], "cvs": cats["cvs"], "galaxies": cats["galaxies"]}, model


def bench(label, folder, chunk, target, prefetch=2, load_workers=1, old_filters=False):
    from lsstuk_kit.io import iter_files

    files = iter_files(os.path.join(folder, "alerts"))
    size = sum(os.path.getsize(f) for f in files)
    # A stream arrives from the network, not from disk: read every file once so that the timed
    # replay finds them in the OS cache (as a consumer finds its messages in memory).
    t = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(2**24):
                pass
    warm = time.perf_counter() - t
    watchlist, moc, cats, model = setup(folder)
    pipe = Pipeline(folder, watchlist, moc, cats, model, load_workers, old_filters)
    wall = pipe.run(folder, chunk, prefetch=prefetch)
    c, tm = pipe.counts, pipe.times
    n = c["alerts"]
    rate = n / wall
    base = fastavro_rate(folder, min(n, 3000))
    print(f"{label}: {n:,} alerts in {len(files)} visit files ({size / 2**20:,.0f} MiB, "
          f"{size / n / 1024:.0f} KB/alert, "
          f"{c['history rows'] / n:.0f} history rows/alert), chunks of ~{chunk}; "
          f"files read into the OS cache first in {warm:.1f} s ({size / 2**20 / warm:,.0f} MiB/s)")
    print(f"  filters: {'before issue 14 (reference)' if old_filters else 'now'}; stage seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in tm.items())
          + (f" ({prefetch} loader threads overlap the rest)" if prefetch else "")
          + f"; filter stage {n / max(tm['filter'], 1e-9):,.0f} alerts/s")
    print("  counts: " + ", ".join(f"{k} {v:,}" for k, v in c.items()))
    print(f"  wall {wall:.1f} s -> {rate:,.0f} alerts/s sustained (target {target:,}: "
          f"{'met' if rate >= target else 'NOT met'}); {rate / LSST_RATE:.1f}x LSST's average rate; "
          f"fastavro decode-only baseline {base:,.0f} alerts/s ({rate / base:.1f}x)")
    return rate, tm["filter"]


def both(label, folder, chunk, target, prefetch, load_workers, which):
    """Run the pipeline with the filters of now and/or of before, and compare (same process, same files)."""
    got = {}
    for old in {"both": (True, False), "old": (True,), "new": (False,)}[which]:
        got[old] = bench(label, folder, chunk, target, prefetch, load_workers, old_filters=old)
    if len(got) == 2:
        (r_old, f_old), (r_new, f_new) = got[True], got[False]
        print(f"  {label}, now vs before: filter stage {f_new:.1f} s vs {f_old:.1f} s ({f_old / max(f_new, 1e-9):.1f}x "
              f"faster); pipeline {r_new:,.0f} vs {r_old:,.0f} alerts/s ({r_new / r_old:.2f}x)")


def filter_stage(label, folder, chunk, n_chunks, repeat=3):
    """The filter stage alone, before vs now, on the same chunks in turn (best of ``repeat``): steady when busy."""
    from lsstuk_kit import AlertBatch, read_alerts
    from lsstuk_kit import filters as F

    def run(batch, rules, wide):
        b = AlertBatch(batch._store, batch._pos)  # nothing cached: every run starts from the table as read
        b._store.keys.clear()
        t = time.perf_counter()
        F.observable(b, max_mag=22.5) & F.quality(b) & F.galactic_latitude(b, 10)
        out = rules(b)
        if wide:
            assert len(b.history) == out[2]
        return time.perf_counter() - t, out

    ways = {"before": (old_history_rules, False), "now": (new_history_rules, False),
            "now, and batch.history built too": (new_history_rules, True)}
    took = dict.fromkeys(ways, 0.0)
    n = raw = rows = 0
    for _, files in zip(range(n_chunks), chunks_of(folder, chunk)):
        batch = read_alerts(files, progress=False, workers=1)
        F.galactic_latitude(batch, 10)  # astropy's first call, once
        results, times = {}, {way: [] for way in ways}
        for _ in range(repeat):
            for way, (rules, wide) in ways.items():
                dt, results[way] = run(batch, rules, wide)
                times[way].append(dt)
        for way in ways:
            took[way] += min(times[way])
        (k1, m1, n1), (k2, m2, n2) = results["before"], results["now"]
        assert k1.equals(k2) and m1.equals(m2) and n1 == n2, "old and new filters differ"
        n, raw, rows = n + len(batch), raw + len(batch._store.history), rows + n2
    print(f"{label}, filter stage alone on {n:,} alerts ({raw:,} history rows as read, {rows:,} after "
          f"dropping repeats), best of {repeat}, same chunks in turn:")
    for way, t in took.items():
        print(f"  {way:34s} {t:7.2f} s  {n / max(t, 1e-9):>9,.0f} alerts/s  ({took['before'] / max(t, 1e-9):.1f}x)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--alert-nights", type=int, default=30)
    ap.add_argument("--lite-scale", type=float, default=7.2)
    ap.add_argument("--chunk", type=int, default=2000)
    ap.add_argument("--prefetch", type=int, default=2, help="loader threads reading ahead (0: none)")
    ap.add_argument("--load-workers", type=int, default=1,
                    help="decoding threads of read_alerts in the loader thread (1: loader + main = 2 cores)")
    ap.add_argument("--data", default=None, help="use (or make) the nights in DIR/real and DIR/lite")
    ap.add_argument("--only", choices=["real", "lite"], default=None)
    ap.add_argument("--filters", choices=["both", "new", "old"], default="both",
                    help="time the filter stage as now, as before issue 14 (reference), or both in turn")
    ap.add_argument("--stage-chunks", type=int, default=0,
                    help="instead of the pipeline: time the filter stage alone (before, now) on the first N chunks")
    args = ap.parse_args(argv)
    root = args.data or tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        if args.only in (None, "real"):
            real = os.path.join(root, "real")
            if not os.path.isdir(os.path.join(real, "alerts")):
                make_real_shaped(real, args.fields, args.alert_nights)
            if args.stage_chunks:
                filter_stage("real-shaped", real, args.chunk, args.stage_chunks)
            else:
                both("real-shaped", real, args.chunk, 3000, args.prefetch, args.load_workers, args.filters)
        if args.only in (None, "lite"):
            lite = os.path.join(root, "lite")
            if not os.path.isdir(os.path.join(lite, "alerts")):
                make_lite(lite, args.lite_scale)
            if args.stage_chunks:
                filter_stage("lite", lite, args.chunk, args.stage_chunks)
            else:
                both("lite", lite, args.chunk, 20000, args.prefetch, args.load_workers, args.filters)
    finally:
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
