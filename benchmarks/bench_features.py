"""Light-curve features, the light-curve classifier and the asteroid veto: rates and scores.

- feature-extraction rate (alerts/s, median of 3 runs) on the sample night and on a simulated survey's 20 alert
  nights (long histories), with and without the Bazin/Villar fits;
- the classifier trained on three simulated surveys (seeds 101-103), scored on two held-out ones (seeds 201,
  202): accuracy per class with bootstrap intervals that resample objects, and the confusion matrix;
- the same model on the real ZTF alerts whose class is known (BTS within 1.5", else Fink's SIMBAD cdsxmatch);
- the asteroid veto on the sample night (truth) and the real alerts (Fink's roid, Rubin's ssSource).

    python benchmarks/bench_features.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import lsstuk_kit as lk
from lsstuk_kit import lcclassify as L
from lsstuk_kit.asteroids import asteroid_veto
from lsstuk_kit.features import extract_features

SHARED = Path(__file__).resolve().parents[2] / "shared"
warnings.simplefilter("ignore")
pd.set_option("display.width", 200)


def rate(batch, **kw):
    times = []
    for _ in range(3):
        t = time.perf_counter()
        extract_features(batch, **kw)
        times.append(time.perf_counter() - t)
    return len(batch) / float(np.median(times))


def main():
    sample = lk.load_sample()
    extract_features(sample)  # warm-up (imports)
    print(f"sample night: {len(sample)} alerts")
    print(f"  all features:           {rate(sample):8.0f} alerts/s")
    print(f"  without fits:           {rate(sample, fits=()):8.0f} alerts/s")
    t = time.perf_counter()
    train = L.simulate_labelled([101, 102, 103])
    t_sim = time.perf_counter() - t
    test = L.simulate_labelled([201, 202])
    print(f"simulated training set: {len(train)} alerts from 3 surveys ({t_sim:.0f} s to simulate + extract)")
    t = time.perf_counter()
    model = L.fit_classifier(train)
    print(f"  classifier fit: {time.perf_counter() - t:.1f} s on {int(train['label'].notna().sum())} labelled alerts")
    k = test["label"].notna()
    pred = L.predict_classes(model, test[k])
    s = L.score_classes(pred["predicted"], test.loc[k, "label"], groups=test.loc[k, "object"])
    print("\nheld-out simulated surveys (seeds 201, 202):")
    print(s)
    print(s.confusion.to_string())
    k5 = k & (test["nDetections"] >= 5)
    s5 = L.score_classes(L.predict_classes(model, test[k5])["predicted"], test.loc[k5, "label"],
                         groups=test.loc[k5, "object"])
    print("\n  alerts with >= 5 detections:")
    print(s5)
    v = asteroid_veto(sample).join(lk.load_sample_truth()[["cls"]])
    sso = v["cls"] == "SSO"
    print(f"\nasteroid veto, sample night: {int(v.loc[sso, 'isAsteroid'].sum())}/{int(sso.sum())} simulated "
          f"asteroid alerts flagged; {int(v.loc[~sso, 'isAsteroid'].sum())}/{int((~sso).sum())} others "
          f"({int(v.loc[~sso & (v['cls'] != 'bogus'), 'isAsteroid'].sum())} real non-asteroids)")
    if not (SHARED / "real-alerts").is_dir():
        print("\n../shared is absent: real-alert figures skipped")
        return
    real = lk.read_alerts(SHARED / "real-alerts", errors="skip")
    z = real[(real.sources["survey"] == "ztf").to_numpy()]
    print(f"\nreal ZTF alerts: {len(z)}; features {rate(z):.0f} alerts/s")
    lab = L.real_labels(z, bts=SHARED / "catalogs" / "ZTFBTS_TransientTable.csv")
    pz = L.predict_classes(model, extract_features(z))
    sr = L.score_classes(pz["predicted"], lab["reference"], groups=z.sources["diaObjectId"])
    print(f"labelled: {lab['source'].value_counts().to_dict()} (selected by Fink's filters: blazar and i-band)")
    print(sr)
    print(sr.confusion.to_string())
    vr = asteroid_veto(real)
    s = real.sources
    roid = pd.to_numeric(s.get("roid"), errors="coerce")
    print("\nasteroid veto, real alerts:")
    print(f"  Rubin ssSource/pred_is_sso: {int(vr.loc[(s['survey'] == 'lsst').to_numpy(), 'knownSSO'].sum())} known "
          f"of {int((s['survey'] == 'lsst').sum())} Rubin alerts")
    for r in (3, 2, 1, 0):
        m = (roid == r).to_numpy()
        print(f"  ZTF roid={r}: {int(m.sum())} alerts, flagged {int(vr.loc[m, 'isAsteroid'].sum())}, "
              f"moving in the kit's own check {int(vr.loc[m, 'movedInNight'].sum())}")


if __name__ == "__main__":
    main()
