"""Simulation + conversion + writing speed of the firehose simulator.

Case 1 (the issue's target): simulate an LSST-like survey over the whole
southern sky, then write the last night's alerts (cutout triplets, up to ~30
history rows each) as per-visit Avro files. Reports alerts/s for the whole
run (simulation of every night included) and for the writing stage alone.

Case 2: alerts shaped like real Rubin ones (300+ history rows): the same
converter on a long-observed patch of sky, alerts of the last night.

Baseline, in the same process: fastavro writing the same alerts from dicts
(decoded back from the written files), to show what the columnar encoder saves.

Case 3 (issue 13, realism): the bundled sample night regenerated (time), then
measured beside the real Rubin alerts in ../shared/real-alerts (7 + 27, selected
by a broker's filters) with :func:`lsstuk_kit.simulate.realism.compare_with_real`:
one row per check, simulated and real figures with their sample sizes, target,
pass/fail. Skipped with a note where ../shared is absent.

    python benchmarks/bench_simulate.py [--scale 4] [--nights 7] [--out DIR] [--realism-only]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time

import fastavro
import numpy as np

from lsstuk_kit.simulate import simulate_survey, write_night


def run(out, label, **kw):
    alert_nights = kw.pop("alert_nights")
    t0 = time.perf_counter()
    tables = simulate_survey(**kw)
    t1 = time.perf_counter()
    index = write_night(tables, out, alert_nights=alert_nights, chunk=4000)
    t2 = time.perf_counter()
    n = int(index["n_alerts"].sum())
    size = sum(os.path.getsize(os.path.join(out, "alerts", f)) for f in index["file"])
    from lsstuk_kit import read_alerts

    hist = read_alerts(os.path.join(out, "alerts"), columns=["midpointMjdTai"], cutouts=False).history
    rows = hist[hist["kind"] != "detection"].groupby("_alert").size() if "_alert" in hist else hist.groupby(
        "diaObjectId").size()
    rows = rows.to_numpy()
    print(f"{label}: {n} alerts in {len(index)} visit files, {size / 2**20:.0f} MiB "
          f"({size / max(n, 1) / 1024:.0f} KB/alert); history rows per alert (detections + forced): "
          f"median {np.median(rows):.0f}, 90th percentile {np.percentile(rows, 90):.0f}, max {rows.max()}")
    print(f"  simulate {t1 - t0:6.1f} s   convert+write {t2 - t1:6.1f} s   "
          f"-> {n / (t2 - t0):7.0f} alerts/s overall, {n / (t2 - t1):7.0f} alerts/s writing")
    return n, t2 - t1, index


def fastavro_baseline(out, index, limit=2000):
    files = [os.path.join(out, "alerts", f) for f in index["file"]]
    recs, schema = [], None
    for f in files:
        with open(f, "rb") as fh:
            r = fastavro.reader(fh)
            schema = r.writer_schema
            recs.extend(r)
        if len(recs) >= limit:
            break
    recs = recs[:limit]
    parsed = fastavro.parse_schema(schema)
    t = time.perf_counter()
    buf = io.BytesIO()
    fastavro.writer(buf, parsed, recs)
    dt = time.perf_counter() - t
    return len(recs) / dt


def realism(tmp):
    from pathlib import Path

    import pandas as pd

    import lsstuk_kit as lk
    from lsstuk_kit.simulate import write_sample
    from lsstuk_kit.simulate.realism import compare_with_real

    out = os.path.join(tmp, "sample")
    t = time.perf_counter()
    index = write_sample(out)
    print(f"sample night regenerated: {int(index['n_alerts'].sum())} alerts in {time.perf_counter() - t:.1f} s")
    shared = Path(__file__).resolve().parents[2] / "shared" / "real-alerts"
    if not shared.is_dir():
        print(f"realism: {shared} is absent; skipped")
        return
    real = lk.AlertBatch.concat([lk.read_alerts(shared / "lsst" / "part-2-918301.avro"),
                                 lk.read_alerts(shared / "fink" / "fink_rubin_test_data_10_0.parquet")])
    sim = lk.read_alerts(os.path.join(out, "alerts"))
    truth = pd.read_parquet(os.path.join(out, "truth.parquet")).set_index("diaSourceId")
    t = time.perf_counter()
    table = compare_with_real(sim, real, truth=truth)
    print(f"realism checks in {time.perf_counter() - t:.1f} s (real Rubin alerts: {len(real)}, "
          f"selected by a broker's filters)")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.float_format", "{:.3g}".format):
        print(table.drop(columns=["note"]).to_string(index=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--nights", type=int, default=7)
    ap.add_argument("--out", default=None, help="keep the output here (default: a temporary folder)")
    ap.add_argument("--skip-heavy", action="store_true")
    ap.add_argument("--realism-only", action="store_true", help="only case 3 (the sample beside real alerts)")
    args = ap.parse_args(argv)
    tmp = args.out or tempfile.mkdtemp(prefix="bench_sim_")
    try:
        realism(tmp)
        if args.realism_only:
            return
        n, t_write, index = run(os.path.join(tmp, "wide"), "whole sky", nights=args.nights, seed=1, scale=args.scale,
                                alert_nights=1)
        base = fastavro_baseline(os.path.join(tmp, "wide"), index)
        print(f"  baseline: fastavro writing the same alerts from dicts: {base:7.0f} alerts/s "
              f"(columnar writer: {n / t_write / base:.1f}x)")
        if not args.skip_heavy:
            # a small patch observed every night for ~6 months: objects with hundreds of rows
            n, t_write, index = run(os.path.join(tmp, "heavy"), "real-shaped (long history)", nights=180, seed=2,
                                    fields=[1201, 15, 237], scale=20.0, revisit_nights=1, alert_nights=1,
                                    start_mjd=60920.0)
            base = fastavro_baseline(os.path.join(tmp, "heavy"), index)
            print(f"  baseline: fastavro writing the same alerts from dicts: {base:7.0f} alerts/s "
                  f"(columnar writer incl. cutouts and JOINs: {n / t_write / base:.1f}x)")
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
