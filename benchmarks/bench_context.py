"""Context classification scored on real alerts, beside the simulated score, and its speed.

Real: the ZTF alerts under ``../shared/real-alerts`` (584 rows: Fink Parquet and Avro; they were
selected by brokers' filters, Fink's CTAO-blazar and i-band-history test sets, so AGN and variable
stars are over-represented and supernovae rare). References:

- Fink's SIMBAD class (``cdsxmatch``, SIMBAD within 1.5") mapped to contexts by
  :data:`lsstuk_kit.context.SIMBAD_CONTEXT`;
- the ZTF Bright Transient Survey table (alerts within 1.5" of an entry, spectroscopic types mapped
  by :func:`lsstuk_kit.context.bts_reference`), and Fink's own TNS cross-match (``tns`` column).

Two kit configurations: the offline catalogues alone (Hipparcos bright-star veto, OpenNGC galaxies)
and with ``survey_context=True`` (the alert's own Pan-STARRS1 neighbour and star/galaxy score).
Accuracy per class with the number of alerts and objects and a 95 % bootstrap interval that
resamples objects (2,000 resamples). Simulated: the bundled sample night against its truth.
Speed: ``classify_context`` alerts/s (median of 5) on the sample, on the real ZTF alerts and on
100,000 positions spread over 5 years (the proper-motion path at work).

    python benchmarks/bench_context.py
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import lsstuk_kit as lk
from lsstuk_kit.catalogs import load_bts, load_openngc
from lsstuk_kit.context import (
    EXPECTED,
    bts_reference,
    catalogs_from_simulation,
    classify_context,
    context_accuracy,
    known_transients,
    score_context,
    simbad_reference,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"


def rate(fn, n, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def show(title, score):
    lo, hi = score.interval
    print(f"\n### {title}\noverall accuracy {score.accuracy:.3f} [{lo:.3f}, {hi:.3f}] on n = {score.n} alerts "
          f"({score.n_objects} objects; {score.n_excluded} alerts without a reference class left out)")
    t = score.per_class.copy()
    t["accuracy (95% CI)"] = [f"{a:.2f} [{lo_:.2f}, {hi_:.2f}]" for a, lo_, hi_ in zip(t["accuracy"], t["lo"], t["hi"])]
    print(t[["n", "objects", "correct", "accuracy (95% CI)", "most_common"]].to_string())
    print("confusion (rows: reference, columns: kit context):")
    print(score.confusion.to_string())


def real_part():
    if not (SHARED / "real-alerts").is_dir():
        print(f"(real alerts absent at {SHARED / 'real-alerts'}: real part skipped)")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = lk.read_alerts(SHARED / "real-alerts", errors="skip")
    s = batch.sources
    z = s[s["survey"] == "ztf"]
    groups = z["diaObjectId"].to_numpy()
    gals = load_openngc()
    print(f"real ZTF alerts: {len(z)} ({z['diaObjectId'].nunique()} objects); "
          f"with a Fink SIMBAD class: {int(z['cdsxmatch'].notna().sum())}")
    ref = simbad_reference(z["cdsxmatch"].to_numpy()).to_numpy()
    ctx = {"offline catalogues (Hipparcos + OpenNGC)": classify_context(z, galaxies=gals),
           "offline catalogues + survey_context (PS1 fields of the alert)":
               classify_context(z, galaxies=gals, survey_context=True)}
    for name, c in ctx.items():
        show(f"SIMBAD (Fink cdsxmatch) vs {name}", score_context(c, ref, groups=groups))
        no_unknown = np.where(ref == "orphan", None, ref)
        sc = score_context(c, no_unknown, groups=groups)
        print(f"without SIMBAD 'Unknown' (no counterpart) rows: accuracy {sc.accuracy:.3f} "
              f"[{sc.interval[0]:.3f}, {sc.interval[1]:.3f}], n = {sc.n}")
    print("\nsurvey_context: sensitivity to the PS1 star-score threshold (SIMBAD reference)")
    for thr in (0.5, 0.76, 0.9):
        sc = score_context(classify_context(z, galaxies=gals, survey_context=True, star_score=thr), ref,
                           groups=groups)
        pc = sc.per_class
        print(f"  star_score {thr:4.2f}: overall {sc.accuracy:.3f} [{sc.interval[0]:.3f}, {sc.interval[1]:.3f}]; "
              f"variable star {pc.loc['variable star', 'accuracy']:.2f} (n {pc.loc['variable star', 'n']}); "
              f"nuclear transient {pc.loc['nuclear transient', 'accuracy']:.2f} "
              f"(n {pc.loc['nuclear transient', 'n']}); n = {sc.n}")

    bts_path = SHARED / "catalogs" / "ZTFBTS_TransientTable.csv"
    if bts_path.is_file():
        bts = load_bts(bts_path)
        kt = known_transients(z, bts)
        hits = kt[kt["known"]]
        print(f"\nBTS ({len(bts)} transients): {len(hits)} of {len(z)} real ZTF alerts within 1.5\"; "
              f"recurring (> 365 d from the BTS peak): {int(kt['recurring'].sum())}")
        for i, row in hits.iterrows():
            print(f"  {z.loc[i, 'diaObjectId']}: {row['note']}; sep {row['sep_arcsec']:.2f}\"")
        bref = bts_reference(kt["known_type"].to_numpy()).to_numpy()
        for name, c in ctx.items():
            show(f"BTS types vs {name}", score_context(c, bref, groups=groups))
            print(pd.DataFrame({"object": z.loc[hits.index, "diaObjectId"], "BTS type": hits["known_type"],
                                "kit": c.loc[hits.index, "context"],
                                "distpsnr1": z.loc[hits.index, "distpsnr1"].round(2),
                                "sgscore1": z.loc[hits.index, "sgscore1"].round(2)}).to_string(index=False))
    tns = z["tns"].replace("", None) if "tns" in z else pd.Series(None, index=z.index)
    tref = bts_reference(tns.to_numpy()).to_numpy()
    for name, c in ctx.items():
        show(f"Fink's TNS cross-match (`tns`) vs {name}", score_context(c, tref, groups=groups))
    return z


def sim_part():
    batch = lk.load_sample()
    truth = lk.load_sample_truth()
    pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    cats = catalogs_from_simulation(pop, hosts)
    ctx = classify_context(batch, **cats)
    acc = context_accuracy(ctx, truth)
    ref = truth.loc[ctx.index, "cls"].astype(str).map(EXPECTED).to_numpy(dtype=object)
    strict = {v: {v} for v in EXPECTED.values()}
    sc = score_context(ctx, ref, groups=batch.sources["diaObjectId"].to_numpy(), accept=strict)
    print(f"\nsimulated sample night: {len(batch.sources)} alerts; catalogues implied by the simulation "
          f"(every star, every host, all CVs)")
    print(acc[["expected", "alerts", "accuracy", "most_common_error"]].to_string())
    show("simulated sample vs truth (strict: the expected context only)", sc)
    return batch, cats


def speed(batch, cats, z):
    n = len(batch.sources)
    print("\nclassify_context speed (median of 5):")
    r = rate(lambda: classify_context(batch, **cats), n)
    print(f"  sample night, simulated catalogues + Hipparcos veto: {r:,.0f} alerts/s (n = {n})")
    if z is not None:
        gals = load_openngc()
        classify_context(z.iloc[:5], galaxies=gals)  # warm the catalogue caches
        for sc in (False, True):
            r = rate(lambda sc=sc: classify_context(z, galaxies=gals, survey_context=sc), len(z))
            print(f"  real ZTF, OpenNGC + Hipparcos, survey_context={sc}: {r:,.0f} alerts/s (n = {len(z)})")
    rng = np.random.default_rng(0)
    m = 100_000
    pts = pd.DataFrame({"ra": rng.uniform(0, 360, m), "dec": np.degrees(np.arcsin(rng.uniform(-1, 0.5, m))),
                        "midpointMjdTai": rng.uniform(59000, 59000 + 5 * 365.25, m)})
    gals = load_openngc()
    r = rate(lambda: classify_context(pts, galaxies=gals), m, repeat=3)
    print(f"  100,000 random positions over 5 years, OpenNGC + Hipparcos moved per alert: {r:,.0f} alerts/s "
          f"(median of 3)")
    print(f"cores: {os.cpu_count()}")


def main():
    z = real_part()
    batch, cats = sim_part()
    speed(batch, cats, z)


if __name__ == "__main__":
    main()
