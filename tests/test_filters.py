from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from lsstuk_kit import filters as F
from lsstuk_kit.sql import SQLError


def brute_detections(batch):
    """Reference: per alert, its object's detection times up to the alert (a plain loop)."""
    h = batch.history
    det = h[h["kind"] == "detection"]
    by_obj = {k: np.sort(g["midpointMjdTai"].to_numpy()) for k, g in det.groupby("diaObjectId")}
    out = {}
    for sid, row in batch.sources.iterrows():
        t = by_obj.get(row["diaObjectId"], np.zeros(0))
        out[sid] = t[t <= row["midpointMjdTai"] + 1e-9]
    return out


def test_observable_and_quality(batch, truth):
    m = F.observable(batch, max_mag=21.5, min_snr=8)
    s = batch.sources
    assert m.equals(((s["mag"] <= 21.5) & (s["snr"].abs() >= 8)).rename("observable"))
    q = F.quality(batch, min_reliability=0.6)
    t = truth.loc[s.index]
    # real detections pass far more often than bogus ones
    assert q[t["isReal"].to_numpy()].mean() > q[~t["isReal"].to_numpy()].mean() + 0.4
    assert not q[s["isDipole"].to_numpy(bool)].any()
    assert F.quality(batch, 0.6, allow_dipoles=True)[s["isDipole"].to_numpy(bool)].sum() >= 0


def test_history_and_recurring_match_a_plain_loop(batch):
    ref = brute_detections(batch)
    hh = F.has_history(batch, min_detections=3, min_baseline_days=5)
    rec = F.recurring(batch, days=20)
    for sid, times in ref.items():
        expect_h = len(times) >= 3 and (times.max() - times.min() if len(times) else 0) >= 5
        assert hh[sid] == expect_h, sid
        t_alert = batch.sources.loc[sid, "midpointMjdTai"]
        assert rec[sid] == bool(len(times) and times.min() < t_alert - 20), sid
    assert (F.new(batch, 20) == ~rec).all()
    assert 0 < rec.sum() < len(batch)


def test_recurring_separates_variables_from_supernovae(batch, truth):
    rec = F.recurring(batch, days=25)
    t = truth.loc[batch.sources.index]
    variable = t["cls"].isin(["VS", "AGN", "CV"]).to_numpy()
    sn = (t["cls"] == "SN").to_numpy()
    assert rec[variable].mean() > rec[sn].mean()


def test_galactic_latitude(batch):
    b = SkyCoord(batch.sources["ra"].to_numpy() * u.deg, batch.sources["dec"].to_numpy() * u.deg).galactic.b.deg
    m = F.galactic_latitude(batch, 30)
    assert (m.to_numpy() == (np.abs(b) >= 30)).all()
    band = F.galactic_latitude(batch, 10, 40)
    assert (band.to_numpy() == ((np.abs(b) >= 10) & (np.abs(b) <= 40))).all()


def test_rates_match_a_plain_loop(batch):
    r = F.rates(batch)
    h = batch.history
    det = h[(h["kind"] == "detection")]
    for sid, row in batch.sources.iterrows():
        prev = det[(det["diaObjectId"] == row["diaObjectId"]) & (det["band"] == row["band"])
                   & (det["midpointMjdTai"] < row["midpointMjdTai"] - 1e-6)]
        if len(prev) == 0:
            assert np.isnan(r.loc[sid, "rate"])
            continue
        last = prev.sort_values("midpointMjdTai").iloc[-1]
        dt = row["midpointMjdTai"] - last["midpointMjdTai"]
        assert r.loc[sid, "dt"] == pytest.approx(dt, abs=1e-6)
        assert r.loc[sid, "rate"] == pytest.approx((row["mag"] - last["mag"]) / dt, rel=1e-6, abs=1e-9)
    up, down = F.rising(batch, 0.02), F.fading(batch, 0.02)
    assert not (up & down).any()
    assert (r.loc[up, "rate"] <= -0.02).all() and (r.loc[down, "rate"] >= 0.02).all()


def test_filter_combines_masks(batch):
    a, b = F.observable(batch, max_mag=22), F.quality(batch, 0.7)
    sub = batch.filter(a, b)
    assert len(sub) == int((a & b).sum())
    assert len(batch.filter(a | ~a)) == len(batch)
    with pytest.raises(IndexError):
        batch.filter(np.ones(3, bool))


def test_sql_tables_joins_and_errors(batch):
    df = batch.sql("SELECT kind, count(*) AS n FROM history GROUP BY kind ORDER BY kind")
    assert dict(zip(df["kind"], df["n"])) == batch.history["kind"].value_counts().to_dict()
    hits = pd.DataFrame({"diaSourceId": batch.sources.index[:5], "name": list("abcde")})
    j = batch.sql("SELECT s.diaSourceId, s.mag, h.name FROM sources s JOIN hits h USING (diaSourceId)", hits=hits)
    assert sorted(j["name"]) == list("abcde")
    sub = batch.sql("SELECT diaSourceId FROM sources s JOIN objects o USING (diaObjectId) WHERE o.nDiaSources >= 3",
                    as_batch=True)
    assert len(sub) > 0 and set(sub.sources.index) <= set(batch.sources.index)
    with pytest.raises(SQLError, match="(?i)syntax"):
        batch.sql("SELEC * FROM sources")
    with pytest.raises(SQLError, match="no_such_column") as err:
        batch.sql("SELECT no_such_column FROM sources")
    # DuckDB's own "Binder Error:" prefix is dropped: the kind is said once (issue 15)
    first = str(err.value).splitlines()[0]
    assert first.startswith("SQL error (binder): ") and first.lower().count("binder") == 1, first
    with pytest.raises(SQLError, match="Tables: sources"):
        batch.sql("SELECT * FROM nowhere")
    with pytest.raises(SQLError, match="diaSourceId"):
        batch.sql("SELECT mag FROM sources", as_batch=True)
    with pytest.raises(SQLError, match="empty"):
        batch.sql("   ")


def test_galactic_equals_astropy_over_the_whole_sky():
    rng = np.random.default_rng(11)
    ra = np.r_[rng.uniform(0, 360, 20_000), 0.0, 359.9999, 192.85948, 266.40499]
    dec = np.r_[np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000))), -89.9999, 89.9999, 27.12825, -28.93617]

    class Positions:
        sources = pd.DataFrame({"ra": ra, "dec": dec})

    g = F.galactic(Positions())
    ref = SkyCoord(ra * u.deg, dec * u.deg).galactic
    assert np.abs(g["galLat"] - ref.b.deg).max() * 3600 < 1e-6
    dlon = (g["galLon"] - ref.l.deg + 180) % 360 - 180
    assert (np.abs(dlon) * np.cos(np.radians(ref.b.deg))).max() * 3600 < 1e-6
    assert g["galLat"].iloc[-2] == pytest.approx(90, abs=1e-3)  # the north galactic pole
    assert abs(g["galLat"].iloc[-1]) < 0.1  # Sgr A*, in the plane


def test_every_rule_and_match_takes_an_empty_batch(batch):
    from lsstuk_kit.catalogs import bright_star_veto
    from lsstuk_kit.context import classify_context
    from lsstuk_kit.crossmatch import match_catalog, match_watchlist

    empty = batch[batch.sources["mag"] < 0]  # a filter that kept nothing
    targets = batch.sources[["ra", "dec"]].head(3).reset_index(drop=True)
    for rule in (F.observable, F.quality, F.has_history, F.recurring, F.new, F.galactic_latitude, F.rising,
                 F.fading):
        assert len(rule(empty)) == 0, rule.__name__
    assert len(F.rates(empty)) == 0 and list(F.rates(empty).columns) == ["rate", "dt", "dmag"]
    assert len(match_watchlist(empty, targets)) == len(match_catalog(empty, targets)) == 0
    assert len(bright_star_veto(empty)) == len(classify_context(empty)) == 0
    assert len(empty.filter(F.quality(empty))) == 0


# ---------------------------------------------------------------- the rules as they were computed before issue 14
def old_rules(sources, history):
    """has_history, recurring and rates as computed before (keys factorized from the whole history table)."""
    s, h = sources, history

    def keys(det, by_band):
        codes, _ = pd.factorize(pd.concat([s["diaObjectId"], det["diaObjectId"]], ignore_index=True))
        if by_band:
            bands, _ = pd.factorize(pd.concat([s["band"], det["band"]], ignore_index=True))
            n_bands = int(bands.max()) + 2 if len(bands) else 2
            codes, _ = pd.factorize(codes.astype(np.int64) * n_bands + (bands + 1))
        a_code, d_code = codes[: len(s)], codes[len(s):]
        t_a, t_d = s["midpointMjdTai"].to_numpy(float), det["midpointMjdTai"].to_numpy(float)
        t0, big = F._time_key_scale(t_a, t_d)
        dkey = d_code * big + (t_d - t0)
        order = np.argsort(dkey, kind="stable")
        return dkey[order], order, a_code * big + (t_a - t0), a_code, big

    out = {}
    dkey, _, akey, a_code, big = keys(h[h["kind"] == "detection"], False)
    start = np.searchsorted(dkey, a_code * big)
    upto = np.searchsorted(dkey, akey + 1e-7, side="right")
    count = np.maximum(upto - start, 0)
    first = dkey[np.minimum(start, len(dkey) - 1)] if len(dkey) else np.full(len(s), np.nan)
    baseline = np.nan_to_num(np.where(count > 0, (akey - a_code * big) - (first - a_code * big), np.nan), nan=0.0)
    out["has_history(2)"] = count >= 2
    out["has_history(3, 5)"] = (count >= 3) & (baseline >= 5)
    out["recurring(20)"] = (start < upto) & (first < akey - 20) if len(dkey) else np.zeros(len(s), bool)
    for band, forced in ((True, False), (False, True)):
        det = h[h["kind"].isin(["detection", "forced"] if forced else ["detection"]) & h["psfFlux"].notna()]
        dkey, order, akey, a_code, big = keys(det, band)
        mag_d = det["mag"].to_numpy(float)[order]
        prev = np.searchsorted(dkey, akey - 1e-6, side="left") - 1
        same = np.zeros(len(s), bool)
        same[prev >= 0] = np.floor(dkey[prev[prev >= 0]] / big) == a_code[prev >= 0]
        p = np.maximum(prev, 0)
        dt = np.where(same, akey - dkey[p], np.nan) if len(dkey) else np.full(len(s), np.nan)
        dmag = np.where(same, s["mag"].to_numpy(float) - mag_d[p], np.nan) if len(dkey) else dt
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"rates({band}, {forced})"] = pd.DataFrame({"rate": dmag / dt, "dt": dt, "dmag": dmag}, index=s.index)
    return out


def new_rules(batch):
    return {
        "has_history(2)": F.has_history(batch, 2).to_numpy(),
        "has_history(3, 5)": F.has_history(batch, 3, 5).to_numpy(),
        "recurring(20)": F.recurring(batch, 20).to_numpy(),
        "rates(True, False)": F.rates(batch),
        "rates(False, True)": F.rates(batch, same_band=False, include_forced=True),
    }


def assert_same_rules(old, new, label):
    for name, want in old.items():
        got = new[name]
        if isinstance(want, pd.DataFrame):  # the same previous detection, so the same values (up to rounding)
            pd.testing.assert_frame_equal(got, want, rtol=1e-6, atol=1e-9, obj=f"{label}: {name}")
            assert (got["rate"].isna() == want["rate"].isna()).all()
            for up in (0.02, 0.1):  # rising / fading masks
                assert ((got["rate"] <= -up) == (want["rate"] <= -up)).all(), (label, name)
                assert ((got["rate"] >= up) == (want["rate"] >= up)).all(), (label, name)
        else:
            assert np.array_equal(got, want), f"{label}: {name}"


def test_history_rules_unchanged(batch):
    from lsstuk_kit import AlertBatch

    class Plain:  # an object with only .sources and .history (the path for anything but an AlertBatch)
        def __init__(self, b):
            self.sources, self.history = b.sources, b.history

    repeated = AlertBatch.concat([batch[:200], batch[100:300]])  # every row of alerts 100-199 twice
    shuffled = batch.sources.index[np.random.default_rng(4).permutation(len(batch))]
    cases = {"sample": batch, "repeated": repeated, "band z": batch.query("band == 'z'"),
             "shuffled": batch[list(shuffled)], "empty": batch[:0]}
    for label, b in cases.items():
        fresh = AlertBatch(b._store, b._pos)  # nothing cached
        old = old_rules(b.sources, b.history)
        assert_same_rules(old, new_rules(fresh), label)
        assert "history" not in fresh._cache  # the rules did not build the wide table
        assert_same_rules(old, new_rules(Plain(b)), label + " (plain)")
    assert new_rules(batch)["has_history(2)"].sum() > 0
