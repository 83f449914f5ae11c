"""Light-curve features (lsstuk_kit.features) on the sample night and on real ZTF alerts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

light_curve = pytest.importorskip("light_curve")

from lsstuk_kit.features import STANDARD, extract_features, standard_extractor  # noqa: E402


@pytest.fixture(scope="module")
def feats(batch):
    return extract_features(batch)


@pytest.fixture(scope="module")
def band(feats):
    """The band with the most light curves long enough for the variability set (the simulator decides)."""
    counts = {b: feats[f"{b}_amplitude"].notna().sum() for b in "ugrizy" if f"{b}_amplitude" in feats}
    return max(counts, key=counts.get)


@pytest.fixture(scope="module")
def long_survey(tmp_path_factory):
    """60 simulated nights whose last 5 make alerts: long histories for the fits and periods."""
    import lsstuk_kit as lk
    from lsstuk_kit.simulate import load_truth, simulate_survey, write_night

    out = tmp_path_factory.mktemp("long")
    tables = simulate_survey(60, seed=5, fields=[1201, 15, 237], start_mjd=61060.0, scale=4.0, revisit_nights=2)
    write_night(tables, out, alert_nights=5, cutouts=False)
    return lk.read_alerts(out / "alerts"), load_truth(out), tables.population.set_index("truthId")


def _detections(batch):
    s = batch.sources.reset_index()
    h = batch.history
    d = pd.concat([s[["diaObjectId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]],
                   h[h["kind"] == "detection"][["diaObjectId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]]])
    return d.drop_duplicates(["diaObjectId", "midpointMjdTai", "band"])


def test_one_row_per_alert_as_of_that_alert(batch, feats):
    assert list(feats.index) == list(batch.sources.index)
    det = _detections(batch)
    s = batch.sources
    # counted independently: detections of the object up to and including the alert
    for sid in s.index[::7]:
        o, t = s.at[sid, "diaObjectId"], s.at[sid, "midpointMjdTai"]
        want = int(((det["diaObjectId"] == o) & (det["midpointMjdTai"] <= t + 1e-7)).sum())
        assert feats.at[sid, "nDetections"] == want
    # two alerts of one object in a night: the later one knows more
    two = s.groupby("diaObjectId").filter(lambda g: len(g) > 1).sort_values("midpointMjdTai")
    assert len(two)
    by_object = two.reset_index().groupby("diaObjectId")["diaSourceId"]  # in time order within each object
    first, last = by_object.first(), by_object.last()  # aligned on the object
    n_last = feats.loc[last.to_numpy(), "nDetections"].to_numpy()
    assert (n_last > feats.loc[first.to_numpy(), "nDetections"].to_numpy()).all()


def test_standard_set_equals_the_package_on_each_light_curve(batch, feats, band):
    ext, names = standard_extractor()
    assert names == list(STANDARD)
    det = _detections(batch)
    s = batch.sources
    checked = 0
    for sid in s.index[feats[f"{band}_amplitude"].notna().to_numpy()][:15]:
        o, t = s.at[sid, "diaObjectId"], s.at[sid, "midpointMjdTai"]
        lc = det[(det["diaObjectId"] == o) & (det["band"] == band) & (det["psfFlux"] > 0)
                 & (det["midpointMjdTai"] <= t + 1e-7)].sort_values("midpointMjdTai")
        f, e = lc["psfFlux"].to_numpy(float), lc["psfFluxErr"].to_numpy(float)
        m = 31.4 - 2.5 * np.log10(f)
        got = ext(lc["midpointMjdTai"].to_numpy(float), m, 2.5 / np.log(10) * e / f, fill_value=np.nan)
        want = feats.loc[sid, [f"{band}_{n}" for n in names]].to_numpy(float)
        np.testing.assert_allclose(want, got, rtol=1e-6, equal_nan=True)
        checked += 1
    assert checked == 15


def test_bazin_fit_matches_a_direct_call_and_finds_the_rise_before_the_fall(long_survey):
    batch, truth, _ = long_survey
    feats = extract_features(batch, periods=False)
    det = _detections(batch)
    s = batch.sources
    counts = {b: feats[f"{b}_bazin_fit_rise_time"].notna().sum() for b in "ugrizy"}
    band = max(counts, key=counts.get)
    sid = feats.index[(feats[f"{band}_bazin_fit_rise_time"].notna()).to_numpy()][0]
    o, t = s.at[sid, "diaObjectId"], s.at[sid, "midpointMjdTai"]
    lc = det[(det["diaObjectId"] == o) & (det["band"] == band) & (det["midpointMjdTai"] <= t + 1e-7)]
    lc = lc.sort_values("midpointMjdTai")
    fit = light_curve.BazinFit("lmsder")
    got = fit(lc["midpointMjdTai"].to_numpy(float) - (t + 1e-7), lc["psfFlux"].to_numpy(float),
              lc["psfFluxErr"].to_numpy(float), fill_value=np.nan)
    want = feats.loc[sid, [f"{band}_{n}" for n in fit.names]].to_numpy(float)
    np.testing.assert_allclose(want, got, rtol=1e-5, atol=1e-6)
    # supernovae: the fitted rise is shorter than the fall
    sn = feats.join(truth[["cls"]])
    sn = sn[(sn["cls"] == "SN") & sn["best_bazin_fit_rise_time"].between(0.01, 500)
            & sn["best_bazin_fit_fall_time"].between(0.01, 500)]
    assert len(sn) >= 10
    assert (sn["best_bazin_fit_rise_time"] < sn["best_bazin_fit_fall_time"]).mean() > 0.6


def test_periods_find_the_pulsation_or_its_daily_alias(long_survey):
    batch, truth, pop = long_survey
    f = extract_features(batch, per="object", fits=(), features=None)
    vs = f.join(truth[["truthId", "subtype"]], on="diaSourceId")
    vs = vs[vs["subtype"].isin(["RRLyrae", "Cepheid"]) & (vs["nDetections"] >= 25)]
    assert len(vs) >= 5
    f_true = 1 / pop.loc[vs["truthId"], "period"].to_numpy()
    f_got = 1 / vs["period"].to_numpy()
    # the true frequency or its 1- and 2-day aliases (a cadence of nightly pairs), within 0.02 cycles/day:
    # by chance 5 x 0.04 / 10 = 2 % of a 0.01-10 cycles/day grid; with 25-35 detections spread over 5-6 bands
    # (the simulator of December 2026) about 4 in 10 are found
    alias = np.min(np.abs(f_got[:, None] - f_true[:, None] - np.array([-2, -1, 0, 1, 2])[None, :]), axis=1)
    assert (alias < 0.02).mean() >= 0.3, alias


def test_both_periodograms_find_a_clean_period():
    from lsstuk_kit.features import _periods

    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 80, 60))
    t = np.sort(np.r_[t, t + 0.023])
    b = np.where(np.arange(len(t)) % 2, "g", "r")
    f = 1000 * np.sin(2 * np.pi * t / 0.61) * np.where(b == "g", 1.3, 1.0) + rng.normal(0, 150, len(t))
    e = np.full(len(t), 150.0)
    c = np.zeros(len(t), np.int64)
    lo, hi = np.array([0]), np.array([len(t) - 1])
    for method in ("light-curve", "astropy"):
        p, snr = _periods(c, t, f, e, b, lo, hi, 12, method, 1)
        assert abs(p[0] - 0.61) < 0.005 and snr[0] > 5, (method, p, snr)
    # the light-curve package's periodogram is unweighted, astropy's weights by the errors: on short noisy
    # light curves their highest peaks can differ


def test_per_object_is_the_latest_alert_row(batch, feats):
    per = extract_features(batch, per="object")
    assert per.index.is_unique and len(per) == batch.sources["diaObjectId"].nunique()
    row = feats.loc[per["diaSourceId"]]
    np.testing.assert_array_equal(per["nDetections"].to_numpy(), row["nDetections"].to_numpy())
    a, b = per["best_stetson_K"].to_numpy(float), row["best_stetson_K"].to_numpy(float)
    np.testing.assert_allclose(a, b, equal_nan=True)


def test_lasair_pair_colours_are_lasairs(batch, feats):
    from lsstuk_kit.lasair import objects_per_alert

    las = objects_per_alert(batch, bbb=False).set_index("diaSourceId")
    both = las.index.intersection(feats.index)
    a = feats.loc[both, "latestPairColourMag"].to_numpy(float)
    b = las.loc[both, "latestPairColourMag"].to_numpy(float)
    assert np.isfinite(a).sum() >= 5
    np.testing.assert_allclose(a, b, equal_nan=True)


def test_rates_and_colours_have_the_right_sign(long_survey):
    batch, truth, _ = long_survey
    feats = extract_features(batch, fits=(), periods=False)
    j = feats.join(truth[["subtype"]])
    assert (j["riseRate"].dropna() >= 0).all() and (j["declineRate"].dropna() >= 0).all()
    ia = j[(j["subtype"] == "Ia") & (j["age"] > 40) & j["declineRate"].notna()]
    assert len(ia) and (ia["declineRate"] > 0).mean() > 0.8  # fading 40 days after the first detection
    ok = j["colour_ri_mean"].notna()
    assert ok.sum() >= 10
    np.testing.assert_allclose(j.loc[ok, "colour_ri_mean"], j.loc[ok, "r_weighted_mean"] - j.loc[ok, "i_weighted_mean"])


def test_bad_input_is_named(batch):
    with pytest.raises(ValueError, match="per must be"):
        extract_features(batch, per="night")
    with pytest.raises(ValueError, match="unknown light-curve features"):
        extract_features(batch, features=["amplitude", "flux_magic"])
    with pytest.raises(ValueError, match="unknown fits"):
        extract_features(batch, fits=("salt2",))


def test_real_ztf_alerts(real_alerts):
    import lsstuk_kit as lk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = lk.read_alerts(real_alerts / "fink" / "fink_ztf_iband_history_121.parquet")
    f = extract_features(b)
    assert len(f) == len(b) == 121
    # ZTF's bands, string object ids, long histories: the standard set and fits are filled for most alerts
    assert set(f["bestBand"].dropna()) <= {"g", "r", "i"}
    assert (f["nDetections"] >= 1).all() and f["nDetections"].median() >= 20
    # many of these alerts are negative differences (a star fading below its template): the magnitude-based
    # set needs >= 4 positive detections in a band, which 13 of the 121 have; fits use every detection
    assert f["fracNegative"].median() > 0.5
    assert f["best_stetson_K"].notna().sum() >= 10
    assert f["best_bazin_fit_reduced_chi2"].notna().sum() >= 10
