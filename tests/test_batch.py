from __future__ import annotations

import numpy as np
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
