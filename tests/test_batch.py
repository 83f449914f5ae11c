from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk

from .test_inputs import N_SAMPLE, tables_equal


def test_len_and_index(batch):
    assert len(batch) == len(batch.sources) == N_SAMPLE
    assert batch.sources.index.name == "diaSourceId"
    assert batch.sources.index.is_unique


def test_history_deduplicated_and_keyed(batch):
    h = batch.history
    key = h[["diaObjectId", "kind", "midpointMjdTai", "band"]]
    assert not key.duplicated().any()
    assert h.groupby("diaObjectId")["midpointMjdTai"].apply(lambda t: t.is_monotonic_increasing).all()
    # every alert's own detection is in the history
    det = h[h["kind"] == "detection"]
    assert set(batch.sources.index) <= set(det["diaSourceId"].dropna().astype("int64"))


def test_objects_latest_summary(batch):
    o = batch.objects
    assert o.index.is_unique
    assert set(o.index) == set(batch.sources["diaObjectId"])
    latest = batch.sources.sort_values("midpointMjdTai").groupby("diaObjectId").tail(1)
    for _, row in latest.iterrows():
        assert o.loc[row["diaObjectId"], "lastDiaSourceMjdTai"] == pytest.approx(row["midpointMjdTai"])


def test_subset_by_mask_and_query_is_consistent(batch):
    mask = (batch.sources["band"] == "z").to_numpy()
    sub = batch[mask]
    q = batch.query("band == 'z'")
    assert len(sub) == mask.sum() == len(q)
    tables_equal(sub, q)
    assert set(sub.history["diaObjectId"]) == set(sub.sources["diaObjectId"])
    assert set(sub.objects.index) == set(sub.sources["diaObjectId"])
    # a subset's history is what its own alerts carried
    one = batch[batch.sources.index[:1]]
    raw = next(iter(one))
    n = len(raw["prvDiaSources"]) + 1 + len(raw["prvDiaForcedSources"])
    assert len(one.history) == n


def test_subset_errors(batch):
    with pytest.raises(IndexError):
        batch[np.ones(3, bool)]
    with pytest.raises(KeyError):
        batch[[123]]
    with pytest.raises(ValueError):
        batch.query("ra + 1")


def test_iteration_gives_raw_dicts_in_order(batch):
    sub = batch[batch.sources["snr"] > 10]
    raws = list(sub)
    assert [r["diaSourceId"] for r in raws] == list(sub.sources.index)
    assert all(isinstance(r["diaSource"], dict) for r in raws)


def test_round_trip(tmp_path, batch):
    out = tmp_path / "rt.avro"
    assert batch.to_avro(out) == len(batch)
    again = lk.read_alerts(out)
    tables_equal(batch, again)
    rare = batch.sources["band"].astype(str).value_counts().index[-1]  # the sample's least common band
    sub = batch.query(f"band == '{rare}'")
    assert 0 < len(sub) < len(batch)
    sub.to_avro(tmp_path / "g.avro")
    tables_equal(sub, lk.read_alerts(tmp_path / "g.avro"))
    c1, c2 = batch.cutouts(batch.sources.index[5]), again.cutouts(batch.sources.index[5])
    assert np.array_equal(c1.difference, c2.difference)


def test_round_trip_real(tmp_path, real_alerts):
    for rel in ["lsst/part-2-918301.avro", "ztf/part-3-305711.avro"]:
        b = lk.read_alerts(real_alerts / rel)
        b.to_avro(tmp_path / "x.avro")
        tables_equal(b, lk.read_alerts(tmp_path / "x.avro"))


def test_mixed_schema_to_avro_refuses(real_alerts, tmp_path):
    b = lk.read_alerts(real_alerts)
    with pytest.raises(ValueError, match="mixes"):
        b.to_avro(tmp_path / "mixed.avro")


def test_cutouts_lazy_without_bytes_in_memory():
    b = lk.load_sample(cutouts=False)
    full = lk.load_sample()
    sid = b.sources.index[7]
    assert np.array_equal(b.cutouts(sid).science, full.cutouts(sid).science)


def test_cutouts_unknown_id(batch):
    with pytest.raises(KeyError, match="not in this batch"):
        batch.cutouts(42)


def test_summary_and_repr(batch):
    s = batch.summary()
    assert s["alerts"] == N_SAMPLE and s["schema_versions"] == {"lsst.v11_1": N_SAMPLE}
    assert f"{N_SAMPLE} alerts" in repr(batch)


# ---------------------------------------------------------------- the history builder against pandas itself
def reference_history(batch):
    """``batch.history`` spelled out with pandas: drop_duplicates over the key, then a stable sort."""
    from lsstuk_kit.batch import _HISTORY_KEY, _drop_idless_repeats

    st, pos = batch._store, batch._pos
    h = st.history
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
    h = h.sort_values(["diaObjectId", "midpointMjdTai", "kind"], kind="stable")
    return h.drop(columns="_alert").reset_index(drop=True)


def no_reference_path(monkeypatch):
    """Make the pandas fallback of the history builder fail, so a test proves the fast path ran."""
    import lsstuk_kit.batch as mod

    def fail(*args):
        raise AssertionError("the history builder fell back to the pandas path")

    monkeypatch.setattr(mod, "_history_rows_reference", fail)


def fresh(batch):
    """The same alerts with nothing cached (history, codes)."""
    batch._store.keys.clear()
    return lk.AlertBatch(batch._store, batch._pos)


def test_history_equals_pandas_reference_on_the_sample(batch, monkeypatch):
    no_reference_path(monkeypatch)
    assert batch.sources["diaObjectId"].duplicated().any()  # objects with several alerts: rows repeat
    raw = batch._store.history
    shuffled = batch.sources.index[np.random.default_rng(3).permutation(len(batch))]
    subsets = {
        "all": batch, "reversed": batch[::-1], "band r": batch.query("band == 'r'"), "one": batch[:1],
        "none": batch[:0], "shuffled": batch[list(shuffled)],
    }
    for name, sub in subsets.items():
        got = fresh(sub).history
        pd.testing.assert_frame_equal(got, reference_history(sub), obj=name)  # rows, order, dtypes
        assert "_alert" not in got
    assert len(batch.history) < len(raw)  # repeats were dropped
    # the filters' own view of a column equals the table's column without building the table
    b = fresh(batch)
    t = b._history_column("midpointMjdTai")
    assert "history" not in b._cache
    pd.testing.assert_series_equal(t, batch.history["midpointMjdTai"])


def test_history_keeps_the_latest_alerts_copy_of_a_repeated_row(batch, monkeypatch):
    no_reference_path(monkeypatch)
    # alerts 0-99 and 50-149 of the sample: the second copies of 50-99 repeat every one of their rows
    both = lk.AlertBatch.concat([batch[:100], batch[50:150]])
    st = both._store
    assert len(both) == 150 + 50
    # the later alerts' copies carry a changed (e.g. reprocessed) flux: those must be the ones kept
    later = st.history["_alert"].to_numpy() >= 100
    st.history.loc[later, "psfFlux"] = st.history.loc[later, "psfFlux"] + 1.0
    got = fresh(both).history
    pd.testing.assert_frame_equal(got, reference_history(both))
    again = batch[:150].history  # the same measurements, each once, with the fluxes as read
    key = ["diaObjectId", "kind", "midpointMjdTai", "diaSourceId", "diaForcedSourceId"]
    pd.testing.assert_frame_equal(got[key], again[key])

    def keys(frame):
        return pd.MultiIndex.from_frame(frame[["kind", "diaSourceId", "diaForcedSourceId"]].astype({"kind": str}))

    from_later = keys(got).isin(keys(st.history[later]))
    assert from_later.any() and not from_later.all()
    assert np.allclose(got["psfFlux"], again["psfFlux"] + from_later, rtol=1e-6, equal_nan=True)


def test_history_odd_rows_take_the_pandas_path_and_agree(batch):
    # rows with no id (told apart by flux), and two different rows at one object, time and kind
    both = lk.AlertBatch.concat([batch[:120], batch[60:180]])
    h = both._store.history
    rng = np.random.default_rng(8)
    no_id = rng.random(len(h)) < 0.2
    h.loc[no_id, ["diaSourceId", "diaForcedSourceId"]] = pd.NA
    pd.testing.assert_frame_equal(fresh(both).history, reference_history(both))
    both = lk.AlertBatch.concat([batch[:120], batch[60:180]])
    h = both._store.history
    h.loc[h.index[::7], "band"] = "u"  # same object, time and kind, another band
    h.loc[h.index[::11], "midpointMjdTai"] = np.nan
    pd.testing.assert_frame_equal(fresh(both).history, reference_history(both))
