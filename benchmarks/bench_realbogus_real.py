"""Real/bogus on real stamps (issue 13): three models on real ZTF and Rubin alerts, beside the simulated figures.

Real sets: every alert in ``../shared/real-alerts`` (ZTF Avro and Fink ZTF Parquet, Rubin Avro and Fink Rubin
Parquet), labelled by the survey's own score (ZTF ``drb``, Rubin ``reliability``; :func:`real_stamp_set`).
They are small and were selected by brokers' filters (Fink keeps alerts that passed the survey's real/bogus
cut), so they hold few bogus alerts: every figure is printed with its counts (alerts and objects) and a 95 %
bootstrap interval that resamples objects.

Models (:func:`compare_models`): (a) the simulation-trained default model (``default_model()``, 20,000 simulated
triplets); (b) trained on real stamps only; (c) 20,000 simulated + real. (b) and (c) are scored out of fold,
by 5-fold cross-validation grouped by object. Then the threshold sensitivity, and the simulated benchmark
(``bench_realbogus.py``'s held-out figures, on 20,000 simulated triplets, computed here at a smaller size).

    python benchmarks/bench_realbogus_real.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import lsstuk_kit as lk
from lsstuk_kit import realbogus as rb

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-alerts"


def simulated_figures(n_train=20_000, n_test=20_000, n_boot=200):
    """The simulated benchmark's figures for the default learner, with intervals (alerts are independent here)."""
    X, lab = rb.make_training_set(n_train, seed=0)
    Xt, lt = rb.make_training_set(n_test, seed=1)
    model = rb.make_model("features", seed=0).fit(X, lab["real"].to_numpy())
    y = lt["real"].to_numpy()
    r = rb.evaluate_with_intervals(y, model.predict_proba(Xt)[:, 1], np.arange(len(y)), n_boot=n_boot)
    r.update(model="sim", name=f"(a) on simulated held-out ({n_train:,} train)", note="")
    return pd.DataFrame([r]).set_index("model")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer bootstrap draws and a smaller simulated test")
    args = ap.parse_args(argv)
    n_boot = 200 if args.quick else 1000
    if not REAL.is_dir():
        print(f"real alerts folder {REAL} is absent: nothing to compare (see DESIGN.md)")
        return 0
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Fink ZTF file's lossy prv_candidates ids are reported, not needed here
        batch = lk.read_alerts(REAL, errors="skip")
    t = time.perf_counter()
    stamps = rb.batch_stamps(batch)
    print(f"{len(batch)} real alerts read; stamps decoded in {time.perf_counter() - t:.1f} s "
          f"({len(batch) / (time.perf_counter() - t):,.0f} alerts/s, gzip FITS one by one)")
    sim_model = rb.default_model()
    for survey, thresholds in (("ztf", (0.9, 0.1)), ("lsst", (0.9, 0.1)), ("lsst", (0.8, 0.2))):
        rs = rb.real_stamp_set(batch, survey=survey, real_at=thresholds[0], bogus_at=thresholds[1], stamps=stamps)
        print(f"\n== {survey.upper()}: {rs!r}; left out: {rs.meta.attrs['left_out']}")
        t = time.perf_counter()
        table = rb.compare_models(rs, sim_model=sim_model, n_boot=n_boot)
        print(rb.format_table(table).to_string(index=False))
        print(f"  ({time.perf_counter() - t:.1f} s)")
    print("\n== Threshold sensitivity, ZTF (drb), all three models")
    sens = rb.threshold_sensitivity(batch, rb.THRESHOLDS + ((0.5, 0.5),), survey="ztf", stamps=stamps,
                                    models=("sim", "real", "sim+real"), sim_model=sim_model, n_boot=n_boot)
    print(rb.format_table(sens).to_string(index=False))
    print("\n== Threshold sensitivity, Rubin (reliability)")
    sens = rb.threshold_sensitivity(batch, rb.THRESHOLDS + ((0.5, 0.5),), survey="lsst", stamps=stamps,
                                    models=("sim", "real"), sim_model=sim_model, n_boot=n_boot)
    print(rb.format_table(sens).to_string(index=False))
    print("\n== Rank correlation of the simulation-trained score with the survey's score, every alert (Spearman)")
    from scipy.stats import spearmanr

    score = sim_model.predict_proba(stamps)[:, 1]
    for survey, col in (("ztf", "drb"), ("lsst", "reliability")):
        k = ((batch.sources["survey"] == survey) & batch.sources[col].notna()).to_numpy()
        rho = spearmanr(score[k], batch.sources[col].to_numpy(float)[k])[0]
        print(f"  {survey}: rho = {rho:.2f} on {k.sum()} alerts")
    print("\n== Simulated benchmark (same learner, simulated held-out triplets; alerts independent)")
    sim = simulated_figures(n_test=5_000 if args.quick else 20_000, n_boot=200)
    print(rb.format_table(sim).to_string(index=False))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
