"""Lasair JSON: Kafka filter messages (three kinds), API responses, and the message writer.

Fixtures: tests/data/lasair (see its README for where each payload comes from).
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit import AlertBatch
from lsstuk_kit.errors import AlertFormatError
from lsstuk_kit.formats import Sniff, Source
from lsstuk_kit.formats import lasair_json as L

DATA = Path(__file__).parent / "data" / "lasair"
OID = 313637921267122191
UTC = "2026-02-14 13:41:02"


def _load(name):
    return json.loads((DATA / name).read_text())


def _read(obj=None, path=None, data=None, errors="skip", **options):
    """Read one source with the format's reader; returns (frames, failures)."""
    fails = []

    def fail(reason, record=None, field=None):
        if errors == "raise":
            raise AlertFormatError(reason, "<test>", record, field)
        fails.append((reason, record, field))

    frames = L.read_lasair(Source(label="<test>", path=None if path is None else str(path), data=data, obj=obj,
                                  fail=fail, options=options))
    return frames, fails


def _one(obj=None, **kw):
    frames, fails = _read(obj, **kw)
    assert len(frames) == 1, fails
    return frames[0], fails


def _batch(frames):
    """An AlertBatch from one Frames, as read_alerts assembles it (history dedup, latest object summary)."""
    f = frames
    return AlertBatch._from_parts(sources=f.sources, history=f.history, objects=f.objects, cutouts={},
                                  ref_ids=np.zeros(len(f.sources), np.int64), rec_ids=f.records, refs=[], errors=[])


def _real_alert():
    alert = _load("lasair_lsst_313637921267122191.json")
    alert.pop("annotations")  # Lasair's filter drops it before producing (pipeline/filter/util.py)
    return alert


def _envelope(alert):
    row = _load("lasair_lsst_313637921267122191_object.json")
    return {"diaObjectId": row["diaObjectId"], "ra": row["ra"], "decl": row["decl"], "UTC": UTC, "alert": alert}


@pytest.fixture(scope="module")
def real_batch(real_alerts):
    path = real_alerts / "lsst" / "part-2-918301.avro"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return lk.read_alerts(path)


# ----------------------------------------------------------------------------- the three kinds
def test_real_attributes_messages_jsonl():
    f, fails = _one(path=DATA / "kafka_attributes_real.jsonl")
    assert fails == []
    s = f.sources
    assert len(s) == 10 and f.records.tolist() == list(range(10))
    assert f.required == ("diaObjectId",)
    assert s["diaObjectId"].iloc[0] == 313637935709683761  # exact 64-bit id
    assert s["ra"].iloc[0] == pytest.approx(61.62227592104076) and s["dec"].iloc[0] == pytest.approx(-49.29512529953388)
    assert s["diaSourceId"].isna().all() and (s["lasair_kind"] == "attributes").all()
    assert (s["lasair_utc"] == "2026-02-14 13:41:02").all()
    assert s["classification"].tolist()[:4] == ["SN", "SN", "VS", "VS"]
    assert s["nDiaSources"].tolist()[-1] == 18 and (s["broker"] == "lasair").all() and (s["survey"] == "lsst").all()
    assert len(f.history) == 0
    o = f.objects
    assert len(o) == 10 and {"ra", "dec", "nDiaSources", "lastDiaSourceMjdTai"} <= set(o.columns)
    assert "decl" not in o.columns and o["_alert"].tolist() == list(range(10))


def test_doc_attributes_and_lite():
    f, fails = _one(_load("doc_attributes.json"))
    assert fails == [] and f.sources["diaObjectId"].tolist() == [169760235333878021]
    assert f.sources["dec"].iloc[0] == pytest.approx(-38.16173726666955)

    f, fails = _one(_load("doc_lite.json"))
    s = f.sources.iloc[0]
    assert fails == [] and f.required == ("diaObjectId",)
    assert s["lasair_kind"] == "lite" and pd.isna(s["diaSourceId"])
    assert s["midpointMjdTai"] == pytest.approx(61029.354114730224) and s["band"] == "z"
    assert s["mag"] == pytest.approx(31.4 - 2.5 * np.log10(13677.0458984375))
    assert s["snr"] == pytest.approx(13677.0458984375 / 1538.7562255859375)
    assert s["reliability"] == pytest.approx(0.4863438308238983) and s["reliabilitySource"] == "reliability"
    assert f.history["kind"].astype(str).tolist() == ["detection"]


def test_doc_full_without_times_is_reported_naming_the_field():
    frames, fails = _read(_load("doc_full_partial.json"))
    assert frames == []
    assert [(r, fld) for _, r, fld in fails] == [(0, "alert.diaSourcesList.midpointMjdTai")]
    with pytest.raises(AlertFormatError, match="midpointMjdTai"):
        _read(_load("doc_full_partial.json"), errors="raise")


def test_real_full_message():
    msg = _envelope(_real_alert())
    f, fails = _one([json.dumps(msg).encode()])  # as a Kafka consumer gets it
    assert fails == [] and f.required == L._SOURCE_REQUIRED
    s = f.sources.iloc[0]
    # the triggering detection is the latest diaSource (Lasair lists newest first)
    assert s["diaSourceId"] == 313673107864813598 and s["midpointMjdTai"] == pytest.approx(60983.20685446523)
    assert s["diaObjectId"] == OID and s["lasair_kind"] == "full" and s["lasair_utc"] == UTC
    assert s["dec"] == pytest.approx(-44.11797603727419)  # the diaSource's decl, read as dec
    assert s["lasair_ra"] == pytest.approx(msg["ra"]) and s["lasair_decl"] == pytest.approx(msg["decl"])
    assert s["psfFlux"] == pytest.approx(24162.1953125) and s["band"] == "i"
    h = f.history
    assert len(h) == 8 and set(h["kind"].astype(str)) == {"detection"} and "decl" not in h.columns
    assert h["diaSourceId"].tolist()[-1] == OID  # exact ids through the nullable integer path
    assert (h["diaObjectId"] == OID).all() and (h["_alert"] == 0).all()
    o = f.objects
    assert len(o) == 1 and o["nDiaSources"].iloc[0] == msg["alert"]["diaObject"]["nDiaSources"]
    assert o["dec"].iloc[0] == pytest.approx(msg["alert"]["diaObject"]["decl"])


def test_real_lite_message_keeps_the_light_curve():
    lite = _load("lasair_lsst_313637921267122191_lite.json")
    f, fails = _one(_envelope(lite))
    assert fails == [] and f.required == ("diaObjectId",)
    s = f.sources.iloc[0]
    assert pd.isna(s["diaSourceId"]) and s["psfFlux"] == pytest.approx(24162.1953125)
    assert s["ra"] == pytest.approx(9.05705) and s["dec"] == pytest.approx(-44.117974)  # the selected ra, decl
    h = f.history
    assert len(h) == 8
    assert sorted(h["midpointMjdTai"]) == sorted(x["midpointMjdTai"] for x in lite["diaSourcesList"])
    assert h["mag"].notna().all() and (h["reliabilitySource"] == "reliability").all()


def test_stored_lasair_alert_is_read_directly():
    f, fails = _one(_load("lasair_lsst_313637921267122191.json"))
    assert fails == [] and f.sources["lasair_kind"].tolist() == ["alert"]
    assert f.sources["diaObjectId"].tolist() == [OID]  # from its diaObject
    assert f.sources["ebv"].iloc[0] == pytest.approx(0.007206862)


# ----------------------------------------------------------------------------- bad input, per message
def test_mixed_list_of_messages_with_bad_ones():
    real = [json.loads(x) for x in (DATA / "kafka_attributes_real.jsonl").read_text().splitlines()]
    lite = _envelope(_load("lasair_lsst_313637921267122191_lite.json"))
    full = json.dumps(_envelope(_real_alert())).encode()
    msgs = [
        json.dumps(real[0]).encode(),  # 0 attributes (bytes)
        lite,  # 1 lite (dict)
        full,  # 2 full (bytes)
        full[:300],  # 3 truncated
        {"oid": "ZTF20abcdefg", "detections": [], "non_detections": []},  # 4 an ALeRCE response
        b"[1, 2, 3]",  # 5 a JSON list of numbers
        {"ra": 1.0, "decl": 2.0, "UTC": UTC},  # 6 no diaObjectId
        {"diaObjectId": 5, "UTC": UTC, "alert": {"diaSourcesList": [1, 2]}},  # 7 list of non-records
        real[1],  # 8 attributes
    ]
    f, fails = _one(msgs)
    assert f.records.tolist() == [0, 1, 2, 8]
    assert f.sources["lasair_kind"].tolist() == ["attributes", "lite", "full", "attributes"]
    assert f.required == ("diaObjectId",)  # some rows carry no diaSourceId
    assert [(r, fld) for _, r, fld in fails] == [(3, None), (4, "diaObjectId"), (5, None), (6, "diaObjectId"),
                                                 (7, "alert.diaSourcesList")]
    assert "not valid JSON" in fails[0][0] and "list of numbers" in fails[2][0]
    assert len(f.sources) + len(fails) == len(msgs)  # accounting
    # the history belongs to the right rows: lite (row 1) and full (row 2), 8 detections each
    assert f.history.groupby("_alert").size().to_dict() == {1: 8, 2: 8}
    with pytest.raises(AlertFormatError) as err:
        _read(msgs, errors="raise")
    assert err.value.record == 3


def test_jsonl_file_with_a_truncated_line(tmp_path):
    lines = (DATA / "kafka_attributes_real.jsonl").read_text().splitlines()
    lines[4] = lines[4][:40]
    path = tmp_path / "msgs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    f, fails = _one(path=path)
    assert len(f.sources) == 9 and [r for _, r, _ in fails] == [4]
    assert 4 not in f.records.tolist()


def test_truncated_json_document_is_a_source_error(tmp_path):
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(_envelope(_real_alert()), indent=2)[:5000])
    with pytest.raises(AlertFormatError, match="not valid JSON"):
        _read(path=path)


def test_gzip_json_array(tmp_path):
    msgs = [json.loads(x) for x in (DATA / "kafka_attributes_real.jsonl").read_text().splitlines()]
    path = tmp_path / "msgs.json.gz"
    path.write_bytes(gzip.compress(json.dumps(msgs).encode()))
    f, fails = _one(path=path)
    assert fails == [] and len(f.sources) == 10


# ----------------------------------------------------------------------------- API responses
def test_api_object_lsst_full_and_lite():
    alert = _real_alert()
    # ObjectSerializer with lasair_added=False, lite=False: the Cassandra rows
    full = {"diaObjectId": OID, "diaObject": alert["diaObject"], "diaSourcesList": alert["diaSourcesList"],
            "diaForcedSourcesList": []}
    f, fails = _one(full)
    assert fails == [] and f.sources["lasair_kind"].tolist() == ["object"]
    assert f.sources["diaSourceId"].tolist() == [313673107864813598]
    # lite: 6 fields per diaSource, in no particular order (Cassandra's)
    keys = ("diaSourceId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "reliability")
    lite = [{k: d[k] for k in keys} for d in alert["diaSourcesList"][::-1]]
    f, fails = _one({"diaObjectId": OID, "diaSourcesList": lite, "diaForcedSourcesList": []})
    assert fails == [] and f.sources["diaSourceId"].tolist() == [313673107864813598]
    # lasair_added=True: lasairData (features, Sherlock) and a 4-field diaObject
    obj_row = _load("lasair_lsst_313637921267122191_object.json")
    lasair = {k: v for k, v in obj_row.items() if k not in ("ra", "decl")}
    lasair["sherlock"] = {"classification": "ORPHAN", "separationArcsec": None}
    lasair["annotations"] = []
    added = {"diaObjectId": OID, "lasairData": lasair,
             "diaObject": {"ra": obj_row["ra"], "decl": obj_row["decl"], "firstDiaSourceMjdTai": 60975.15,
                           "lastDiaSourceMjdTai": 60983.21},
             "diaSourcesList": lite, "diaForcedSourcesList": []}
    sniff = Sniff(label="<api>", obj=added)
    assert L.identify_lasair(sniff) == "lasair-api"
    f, fails = _one(added)
    s = f.sources.iloc[0]
    assert fails == [] and s["sherlock_classification"] == "ORPHAN"
    assert s["ra"] == pytest.approx(obj_row["ra"])  # the diaObject's (the lite diaSources carry none)
    assert f.objects["dec"].iloc[0] == pytest.approx(obj_row["decl"])


def test_api_query_rows():
    row = _load("lasair_lsst_313637921267122191_object.json")
    assert L.identify_lasair(Sniff(label="q", obj=row)) == "lasair-api"
    f, fails = _one([row])
    assert fails == [] and f.sources["diaObjectId"].tolist() == [OID]
    assert f.sources["dec"].iloc[0] == pytest.approx(row["decl"]) and f.sources["lasair_kind"].iloc[0] == "query"
    assert f.objects["nDiaSources"].iloc[0] == row["nDiaSources"]


def test_api_cone_search():
    f, fails = _one(_load("api_cone_all.json"))
    assert fails == [] and len(f.sources) == 4 and f.required == ("diaObjectId",)
    assert f.sources["diaObjectId"].tolist()[0] == 170019716254926219
    assert f.sources["separation"].tolist() == [0.24, 32.94, 36.03, 37.75]
    assert len(f.objects) == 0  # a cone search carries no object summary
    f, fails = _one(_load("api_cone_nearest.json"))
    assert f.sources["diaObjectId"].tolist() == [170019716254926219]
    f, fails = _one([{"object": "12345678901234", "separation": 2.39}])  # the docs' list form, id as a string
    assert f.sources["diaObjectId"].tolist() == [12345678901234]
    frames, fails = _read(_load("api_cone_count.json"))
    assert frames == [] and fails[0][1:] == (None, "count") and "count=104" in fails[0][0]


def test_api_ztf_objects():
    f, fails = _one(_load("api_objects_ztf_ZTF23aabplmy.json"))
    s = f.sources.iloc[0]
    assert fails == [] and s["survey"] == "ztf" and s["diaObjectId"] == "ZTF23aabplmy"
    assert s["diaSourceId"] == 2240410792515015000
    assert s["midpointMjdTai"] == pytest.approx(2459994.9107986 - 2400000.5)
    assert s["band"] == "g" and s["mag"] == pytest.approx(16.821149826049805)
    assert s["psfFlux"] == pytest.approx(10 ** ((31.4 - 16.821149826049805) / 2.5))
    h = f.history.sort_values("kind")
    assert h["kind"].astype(str).tolist() == ["detection", "upper_limit"]
    assert h["limitingMag"].iloc[1] == pytest.approx(20.46820068359375)
    o = f.objects.iloc[0]
    assert o["ra"] == pytest.approx(179.977605775) and o["TNS_tns_name"] == "2023bip"
    assert o["sherlock_classification"] == "SN"


def test_api_ztf_lightcurves_need_the_object_ids():
    doc = _load("api_lightcurves_ztf_ZTF22aaaozss.json")
    frames, fails = _read(doc)
    assert frames == [] and fails[0][1:] == (0, "objectId")
    f, fails = _one(doc, objectIds=["ZTF22aaaozss"])
    cands = doc[0]
    last = max(cands, key=lambda c: c["jd"])
    assert fails == [] and f.sources["diaObjectId"].tolist() == ["ZTF22aaaozss"]
    assert f.sources["diaSourceId"].tolist() == [last["candid"]]
    assert len(f.history) == len(cands)
    drb = [c["drb"] for c in cands if c.get("drb") is not None]  # non-detections carry no drb
    assert f.history["reliability"].dropna().tolist() == pytest.approx(drb)


# ----------------------------------------------------------------------------- identification
def test_identification_is_exclusive():
    from lsstuk_kit import formats

    expect = {
        "kafka_attributes_real.jsonl": "lasair-json", "doc_attributes.json": "lasair-json",
        "doc_lite.json": "lasair-json", "doc_full_partial.json": "lasair-json",
        "lasair_lsst_313637921267122191.json": "lasair-json",
        "lasair_lsst_313637921267122191_object.json": "lasair-api", "api_cone_all.json": "lasair-api",
        "api_cone_nearest.json": "lasair-api", "api_objects_ztf_ZTF23aabplmy.json": "lasair-api",
        "api_lightcurves_ztf_ZTF22aaaozss.json": "lasair-api",
    }
    for name, fmt in expect.items():
        raw = (DATA / name).read_bytes()
        sniff = Sniff(label=name, suffix=Path(name).suffix, head=raw[:4096])
        assert L.identify_lasair(sniff) == fmt, name
        assert formats.identify(sniff).name == fmt, name  # no other registered format claims it
        if not name.endswith(".jsonl"):
            assert L.identify_lasair(Sniff(label=name, obj=json.loads(raw))) == fmt, name
    others = [
        {"oid": "ZTF20abcdefg", "detections": [{"candid": 1, "mjd": 59000.0, "magpsf": 18.0}]},  # ALeRCE
        {"locus_id": "ANT2020abc", "ra": 1.0, "dec": 2.0, "properties": {}},  # ANTARES
        {"alertId": 1, "diaSource": {"diaSourceId": 1}, "diaObject": {"diaObjectId": 2}},  # a Rubin alert
        [1, 2, 3], {"count": 3}, {}, "text",
    ]
    for obj in others:
        assert L.identify_lasair(Sniff(label="x", obj=obj)) is None, obj
    assert L.identify_lasair(Sniff(label="x", head=b"\x00\x01binary")) is None


# ----------------------------------------------------------------------------- the writer
def test_writer_kinds(batch):
    sub = batch[:20]
    src = sub.sources.reset_index()
    for kind in L.KINDS:
        msgs = L.to_lasair_messages(sub, kind=kind, utc=UTC)
        assert len(msgs) == 20
        json.dumps(msgs, allow_nan=False)  # JSON-safe: no NaN, no numpy scalars
        assert [m["diaObjectId"] for m in msgs] == src["diaObjectId"].tolist()
        assert all(m["UTC"] == UTC for m in msgs)
        assert list(msgs[0])[:4] == ["diaObjectId", "ra", "decl", "UTC"]
        if kind == "attributes":
            assert "alert" not in msgs[0]
            continue
        for m, (_, row) in zip(msgs, src.iterrows()):
            dets = m["alert"]["diaSourcesList"]
            times = [d["midpointMjdTai"] for d in dets]
            assert times == sorted(times, reverse=True)  # newest first, as Lasair sends them
            assert times[0] == row["midpointMjdTai"]  # up to and including the alert's own time
            lc = sub.lightcurve(row["diaObjectId"])
            n_upto = ((lc["kind"] == "detection") & (lc["midpointMjdTai"] <= row["midpointMjdTai"])).sum()
            assert len(dets) == n_upto
        if kind == "lite":
            assert set(msgs[0]["alert"]) == {"diaSourcesList", "diaForcedSourcesList"}
            assert tuple(msgs[0]["alert"]["diaSourcesList"][0]) == L.LITE_SOURCE_FIELDS
            forced = next(m["alert"]["diaForcedSourcesList"] for m in msgs if m["alert"]["diaForcedSourcesList"])
            assert tuple(forced[0]) == L.LITE_FORCED_FIELDS
        else:
            a = msgs[0]["alert"]
            assert a["diaObject"]["diaObjectId"] == msgs[0]["diaObjectId"]
            assert "decl" in a["diaObject"] and "dec" not in a["diaObject"]
            assert "decl" in a["diaSourcesList"][0] and a["diaSourcesList"][0]["diaSourceId"] == src["diaSourceId"][0]
            assert "mag" not in a["diaSourcesList"][0] and "kind" not in a["diaSourcesList"][0]
            assert a["diaNondetectionLimitsList"] == []


def test_writer_attributes_and_utc(batch):
    sub = batch[:3]
    attrs = pd.DataFrame({"diaObjectId": sub.sources["diaObjectId"].to_numpy(), "gmag": [20.5, np.nan, 21.0],
                          "n": np.array([1, 2, 3], np.int64), "flag": [True, False, True], "cls": ["SN", None, "VS"]})
    msgs = L.to_lasair_messages(sub, kind="attributes", attributes=attrs, utc=["a", "b", "c"])
    assert msgs[1] == {"diaObjectId": int(attrs["diaObjectId"][1]), "gmag": None, "n": 2, "flag": False, "cls": None,
                       "UTC": "b"}
    assert type(msgs[0]["n"]) is int and type(msgs[0]["diaObjectId"]) is int
    with pytest.raises(ValueError, match="rows"):
        L.to_lasair_messages(sub, attributes=attrs.iloc[:2])
    with pytest.raises(ValueError, match="kind"):
        L.to_lasair_messages(sub, kind="everything")
    default = L.to_lasair_messages(sub, utc=UTC)[0]
    obj = sub.objects.loc[default["diaObjectId"]]
    assert default["ra"] == pytest.approx(obj["ra"]) and default["decl"] == pytest.approx(obj["dec"])


def _compare_round_trip(orig, back, lite=False):
    s1, s2 = orig.sources.reset_index(), back.sources.reset_index()
    assert s2["diaObjectId"].tolist() == s1["diaObjectId"].tolist()
    assert np.array_equal(s2["midpointMjdTai"].to_numpy(float), s1["midpointMjdTai"].to_numpy(float))
    if not lite:
        assert s2["diaSourceId"].tolist() == s1["diaSourceId"].tolist()
        np.testing.assert_array_equal(s2["ra"].to_numpy(float), s1["ra"].to_numpy(float))
        np.testing.assert_array_equal(s2["dec"].to_numpy(float), s1["dec"].to_numpy(float))
        o1, o2 = orig.objects, back.objects
        assert o2.index.tolist() == o1.index.tolist()
        num = [c for c in o1.columns if o1[c].dtype.kind in "fi" and c in o2]
        assert len(num) > 10
        np.testing.assert_allclose(o2[num].to_numpy(float), o1[num].to_numpy(float), rtol=0, atol=0)
    key = ["diaObjectId", "kind", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]
    ids = [] if lite else ["diaSourceId", "diaForcedSourceId", "ra", "dec", "visit"]
    h1 = orig.history[key + ids].astype({"kind": str}).astype(object)
    h2 = back.history[key + ids].astype({"kind": str}).astype(object)
    if lite:
        # without ids, the batch keeps one row per (object, kind, time, band): two detections of one object in
        # one exposure (the real file has two such pairs) cannot be told apart; compare the others
        same = ["diaObjectId", "kind", "midpointMjdTai", "band"]
        amb = pd.MultiIndex.from_frame(h1.loc[h1.duplicated(same, keep=False), same])
        h1 = h1[~pd.MultiIndex.from_frame(h1[same]).isin(amb)]
        h2 = h2[~pd.MultiIndex.from_frame(h2[same]).isin(amb)]
        assert len(orig.history) - len(h1) <= 4
    h1 = h1.sort_values(key + ids).reset_index(drop=True).astype(str)
    h2 = h2.sort_values(key + ids).reset_index(drop=True).astype(str)
    pd.testing.assert_frame_equal(h2, h1)
    assert set(back.history["kind"].astype(str)) == {"detection", "forced"}


@pytest.mark.parametrize("which", ["sample", "real"])
def test_round_trip_full_and_lite(which, batch, request):
    orig = batch if which == "sample" else request.getfixturevalue("real_batch")
    for kind in ("full", "lite"):
        msgs = [json.dumps(m, allow_nan=False).encode() for m in L.to_lasair_messages(orig, kind=kind, utc=UTC)]
        f, fails = _one(msgs)
        assert fails == [] and len(f.sources) == len(orig)
        _compare_round_trip(orig, _batch(f), lite=kind == "lite")


def test_write_lasair_json_files(batch, tmp_path):
    sub = batch[:15]
    for name in ("m.json", "m.jsonl.gz"):
        n = L.write_lasair_json(sub, tmp_path / name, kind="full", utc=UTC)
        assert n == 15
        f, fails = _one(path=tmp_path / name)
        assert fails == [] and f.sources["diaSourceId"].tolist() == sub.sources.index.tolist()
    assert (tmp_path / "m.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    with pytest.raises(ValueError, match="json"):
        L.write_lasair_json(sub, tmp_path / "m.txt")


def test_writer_puts_the_alerts_own_detection_first_among_equal_times(real_batch):
    # two solar-system alerts of the real file share diaObjectId 0 and their exposure time
    msgs = L.to_lasair_messages(real_batch, kind="full", utc=UTC)
    for m, sid in zip(msgs, real_batch.sources.index):
        assert m["alert"]["diaSourcesList"][0]["diaSourceId"] == sid
    zero = [m for m in msgs if m["diaObjectId"] == 0]
    assert len(zero) == 2 and all(m["alert"]["diaObject"] is None for m in zero)
    f, _ = _one(copy.deepcopy(msgs))
    assert f.sources["diaSourceId"].tolist() == real_batch.sources.index.tolist()
    assert len(f.objects) == 5  # no object row for the solar-system alerts


# ----------------------------------------------------------------------------- through read_alerts
def test_through_read_alerts(batch):
    msgs = [json.dumps(m).encode() for m in L.to_lasair_messages(batch[:10], kind="full", utc=UTC)]
    try:
        got = lk.read_alerts(msgs, format="lasair-json")
    except TypeError as exc:  # the dispatch to formats is not there yet
        pytest.skip(f"read_alerts(format=) is not available: {exc}")
    assert got.sources.index.tolist() == batch[:10].sources.index.tolist()
    auto = lk.read_alerts(DATA / "kafka_attributes_real.jsonl")
    assert len(auto) == 10 and auto.sources["diaObjectId"].nunique() == 10


def test_full_messages_carry_each_alerts_own_diaobject():
    """An earlier alert of an object is sent with the diaObject as it stood then, never a later one."""
    import lsstuk_kit as lk
    from lsstuk_kit.formats.lasair_json import to_lasair_messages

    batch = lk.load_sample()
    counts = batch.sources["diaObjectId"].value_counts()
    oid = counts.index[counts >= 2][0]
    alerts = batch[batch.sources["diaObjectId"] == oid]
    msgs = to_lasair_messages(alerts, kind="full")
    own = alerts.alert_objects()
    n_sent = [m["alert"]["diaObject"]["nDiaSources"] for m in msgs]
    assert n_sent == own["nDiaSources"].astype(int).tolist()
    assert len(set(n_sent)) > 1  # the object grew between its alerts
    for m, t in zip(msgs, alerts.sources["midpointMjdTai"]):
        assert m["alert"]["diaObject"]["validityStartMjdTai"] <= t + 1e-9


def test_lite_and_full_messages_of_one_object_give_one_light_curve():
    import lsstuk_kit as lk
    from lsstuk_kit.formats.lasair_json import to_lasair_messages

    batch = lk.load_sample()
    counts = batch.sources["diaObjectId"].value_counts()
    oid = counts.index[counts >= 2][0]
    alerts = batch[batch.sources["diaObjectId"] == oid]
    full = to_lasair_messages(alerts, kind="full")
    lite = to_lasair_messages(alerts, kind="lite")
    both = lk.read_alerts(lite[:1] + full[1:])
    lc = both.lightcurve(oid)
    ref = alerts.lightcurve(oid)
    ref = ref[ref["kind"].isin(["detection", "forced"])]
    assert len(lc) == len(ref)
    np.testing.assert_allclose(np.sort(lc["psfFlux"].to_numpy(float)), np.sort(ref["psfFlux"].to_numpy(float)),
                               rtol=1e-6)
