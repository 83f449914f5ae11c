"""ALeRCE and ANTARES client responses read as alerts (formats alerce-json, antares-json).

The payloads are real responses kept under tests/data/alerce and tests/data/antares
(see the README.md there for where each came from).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit import formats
from lsstuk_kit.errors import AlertFormatError
from lsstuk_kit.formats import Sniff, Source, alerce_json, antares_json
from lsstuk_kit.io import _first_json
from lsstuk_kit.surveys.common import mag_to_flux

DATA = Path(__file__).parent / "data"
AAELULU = DATA / "alerce" / "ZTF20aaelulu_lightcurve.json"
BUNDLE = DATA / "alerce" / "ZTF18abbuksn_bundle.json"
LSST = DATA / "alerce" / "lsst_7912941781254157_lightcurve.json"
LOCUS = DATA / "antares" / "ZTF20aafqubg_locus_alerts.json"
LC_ROWS = DATA / "antares" / "ZTF20aafqubg_lightcurve_rows.json"
LASAIR = DATA / "lasair"


def load(path):
    return json.loads(Path(path).read_text())


def collect():
    """A fail callback that records (reason, record, field), as errors="skip" does."""
    seen = []

    def fail(reason, record=None, field=None):
        seen.append((reason, record, field))
    return fail, seen


# ----------------------------------------------------------------------------- ALeRCE
def test_alerce_lightcurve_real_ztf20aaelulu():
    raw = load(AAELULU)
    batch = lk.read_alerts(AAELULU, format="alerce-json", oid="ZTF20aaelulu")
    s = batch.sources
    assert len(batch) == len(raw["detections"]) == 58
    assert set(s["diaObjectId"]) == {"ZTF20aaelulu"}
    assert (s["survey"] == "ztf").all() and (s["broker"] == "alerce").all()
    # ids exact (19-digit candids sent as strings)
    assert sorted(s.index.tolist()) == sorted(int(d["candid"]) for d in raw["detections"])
    # bands from fid, magnitudes and fluxes consistent
    by_id = {int(d["candid"]): d for d in raw["detections"]}
    d0 = by_id[1105522281015015000]
    row = s.loc[1105522281015015000]
    assert row["band"] == {1: "g", 2: "r"}[d0["fid"]] == "g"
    assert row["mag"] == pytest.approx(d0["magpsf"])
    assert row["psfFlux"] == pytest.approx(10 ** ((31.4 - d0["magpsf"]) / 2.5))
    assert np.allclose(31.4 - 2.5 * np.log10(np.abs(s["psfFlux"])), s["mag"])
    # drb where ALeRCE served one (47 rows), rb where drb is null (11 rows)
    has_drb = np.array([by_id[i].get("drb") is not None for i in s.index])
    assert (s["reliabilitySource"][has_drb] == "drb").all() and (s["reliabilitySource"][~has_drb] == "rb").all()
    assert has_drb.sum() == 47 and np.allclose(s["reliability"][~has_drb], s["rb"][~has_drb])
    assert row["reliability"] == pytest.approx(d0["drb"]) and row["rb"] == pytest.approx(d0["rb"])
    assert s["has_stamp"].sum() == 1  # ALeRCE's own fields kept
    # history: every detection and non-detection once, upper limits as limits
    h = batch.history
    assert h["kind"].value_counts().to_dict() == {"detection": 58, "upper_limit": 17}
    ul = h[h["kind"] == "upper_limit"].sort_values("midpointMjdTai")
    nd = sorted(raw["non_detections"], key=lambda r: r["mjd"])
    assert np.allclose(ul["limitingMag"], [r["diffmaglim"] for r in nd])
    assert ul["psfFlux"].isna().all()
    assert np.allclose(ul["psfFluxErr"], mag_to_flux(ul["limitingMag"]) / 5)


def test_alerce_history_goes_with_each_alert_up_to_its_time():
    batch = lk.read_alerts(AAELULU, format="alerce-json", oid="ZTF20aaelulu")
    first = batch.sources["midpointMjdTai"].idxmin()
    early = batch[batch.sources.index == first]
    h = early.history
    # the earliest alert carries only what came before it (non-detections) and itself
    assert (h["midpointMjdTai"] <= batch.sources.loc[first, "midpointMjdTai"]).all()
    assert (h["kind"] == "detection").sum() == 1
    assert (h["kind"] == "upper_limit").sum() == sum(
        r["mjd"] <= batch.sources.loc[first, "midpointMjdTai"] for r in load(AAELULU)["non_detections"])
    # "latest": one copy of each row, all with the newest alert
    fr = alerce_json.read(Source(label="x", path=str(AAELULU), options={"oid": "ZTF20aaelulu", "history": "latest"}))[0]
    assert len(fr.history) == 58 + 17
    assert set(fr.history["_alert"]) == {int(np.argmax(fr.sources["midpointMjdTai"]))}


def test_alerce_bundle_objects_probabilities_and_negative_differences():
    raw = load(BUNDLE)
    batch = lk.read_alerts(BUNDLE)
    s = batch.sources
    assert len(s) == 7 and set(s["diaObjectId"]) == {"ZTF18abbuksn"}
    # isdiffpos -1 (ALeRCE's form): negative flux, same magnitude
    neg = s[s["isdiffpos"] == -1]
    assert len(neg) == 3 and (neg["psfFlux"] < 0).all()
    assert np.allclose(neg["mag"], 31.4 - 2.5 * np.log10(-neg["psfFlux"]))
    # drb = 0.0 without drbversion is ALeRCE's filler for pre-3.3 alerts: rb is used
    assert (s["reliabilitySource"] == "rb").all()
    assert np.allclose(s["reliability"], s["rb"])
    # probabilities: ranking-1 class of each classifier (the first listed version)
    assert (s["alerce_lc_classifier_periodic_class"] == "LPV").all()
    assert s["alerce_lc_classifier_bhrf_forced_phot_top_probability"].iloc[0] == pytest.approx(0.926)
    assert s["alerce_stamp_classifier_version"].iloc[0] == "1.0.1"
    # the object response: mean position and ALeRCE's counts in objects
    o = batch.objects.loc["ZTF18abbuksn"]
    assert o["ra"] == pytest.approx(raw["object"]["meanra"]) and o["ndet"] == 1044


def test_alerce_lsst_multisurvey_real():
    raw = load(LSST)
    batch = lk.read_alerts(LSST)
    s = batch.sources
    assert (s["survey"] == "lsst").all() and len(s) == 2
    assert s["diaObjectId"].tolist() == [7912941781254157] * 2
    assert sorted(s.index) == sorted(d["measurement_id"] for d in raw["detections"])
    assert (s["band"] == "r").all()  # ALeRCE band 2
    assert np.allclose(sorted(s["psfFlux"]), sorted(d["psfFlux"] for d in raw["detections"]))
    f = batch.history[batch.history["kind"] == "forced"]
    assert len(f) == 1 and f["psfFlux"].iloc[0] == pytest.approx(raw["forced_photometry"][0]["psfFlux"])


def test_alerce_detection_list_dict_of_objects_and_inputs():
    raw = load(AAELULU)
    dets = raw["detections"]
    for obj in (dets, json.dumps(dets), json.dumps(dets).encode()):
        b = lk.read_alerts(obj, format="alerce-json", oid="ZTF20aaelulu")
        assert len(b) == 58
    two = {"ZTF20aaelulu": raw, "ZTF18abbuksn": load(BUNDLE)}
    b = lk.read_alerts(two)  # identified without format=
    assert b.sources["diaObjectId"].value_counts().to_dict() == {"ZTF20aaelulu": 58, "ZTF18abbuksn": 7}
    assert set(b.history["diaObjectId"]) == {"ZTF20aaelulu", "ZTF18abbuksn"}


def test_alerce_bad_input():
    # no oid anywhere: every detection is reported, naming the field
    with pytest.raises(AlertFormatError, match="oid") as exc:
        lk.read_alerts(AAELULU, format="alerce-json")
    assert exc.value.field == "oid" and exc.value.record == 0
    # skip mode: accounting holds (alerts + skipped = detection rows)
    lc = copy.deepcopy(load(AAELULU))
    del lc["detections"][3]["magpsf"]
    lc["detections"][5]["candid"] = None
    b = lk.read_alerts(lc, format="alerce-json", oid="ZTF20aaelulu", errors="skip")
    assert len(b) + len(b.errors) == 58 and len(b.errors) == 2
    assert set(b.errors["field"]) == {"magpsf", "candid"}
    # truncated JSON
    text = AAELULU.read_bytes()[:5000]
    with pytest.raises(AlertFormatError, match="JSON"):
        lk.read_alerts(text, format="alerce-json")
    # responses without detections get a clear word
    with pytest.raises(AlertFormatError, match="objects="):
        alerce_json.read(Source(label="o", obj={"items": [load(BUNDLE)["object"]]}))
    with pytest.raises(AlertFormatError, match="probabilities="):
        alerce_json.read(Source(label="p", obj=load(BUNDLE)["probabilities"]))


@pytest.mark.parametrize("name", ["lasair_lsst_313637921267122191.json", "doc_lite.json"])
def test_lasair_message_given_to_alerce_and_antares(name):
    path = LASAIR / name
    if not path.exists():
        pytest.skip(f"{path} (the Lasair helper's fixture) is absent")
    for fmt in ("alerce-json", "antares-json"):
        with pytest.raises(AlertFormatError, match="not an (ALeRCE response|ANTARES locus)"):
            lk.read_alerts(path, format=fmt)


# ----------------------------------------------------------------------------- ANTARES
def test_antares_locus_with_alerts_real():
    raw = load(LOCUS)
    batch = lk.read_alerts(LOCUS)
    s = batch.sources
    assert len(s) == 1  # one candidate, two upper limits
    row = s.loc[1509161731415010004]
    cand = raw["alerts"][2]["properties"]
    assert row["diaObjectId"] == "ZTF20aafqubg" and row["antares_locus_id"] == "ANT2020nb5h6"
    assert row["band"] == "g" and row["mag"] == pytest.approx(cand["ant_mag"])
    assert row["psfFlux"] < 0  # ztf_isdiffpos "0": a negative difference
    assert row["psfFlux"] == pytest.approx(-10 ** ((31.4 - cand["ant_mag"]) / 2.5))
    assert row["reliabilitySource"] == "rb" and row["reliability"] == pytest.approx(cand["ztf_rb"])
    assert row["ztf_candid"] == 1509161731415010004  # exact, not through a float
    assert row["antares_tags"] == "dimmers,lc_feature_extractor"
    assert row["antares_num_mag_values"] == 56 and row["antares_ztf_object_id"] == "ZTF20aafqubg"
    assert row["antares_catalogs"].split(",")[0] == "allwise"
    h = batch.history
    assert h["kind"].value_counts().to_dict() == {"upper_limit": 2, "detection": 1}
    ul = h[h["kind"] == "upper_limit"].sort_values("midpointMjdTai")
    assert ul["band"].tolist() == ["r", "g"]  # ANTARES's "R" and ztf_fid 2
    assert np.allclose(ul["limitingMag"], [a["properties"]["ant_maglim"] for a in raw["alerts"][:2]])


def test_antares_lightcurve_rows_jsonapi_and_columns_dict():
    core = load(LOCUS)
    rows = load(LC_ROWS)
    del core["alerts"]
    as_rows = dict(core, lightcurve=rows)
    as_cols = dict(core, timeseries=pd.DataFrame(rows).to_dict("list"))
    attrs = {k: v for k, v in as_rows.items() if k != "locus_id"}
    jsonapi = {"data": {"type": "locus", "id": core["locus_id"], "attributes": attrs}}
    out = []
    for doc in (as_rows, as_cols, jsonapi):
        b = lk.read_alerts(doc)
        assert b.sources.index.tolist() == [1113163781415010010]
        assert b.sources["diaObjectId"].iloc[0] == "ZTF20aafqubg"
        assert b.sources["psfFlux"].iloc[0] > 0  # no isdiffpos in the lightcurve rows: taken as positive
        out.append(b.history.sort_values(["midpointMjdTai"])[["kind", "band", "limitingMag"]].reset_index(drop=True))
    pd.testing.assert_frame_equal(out[0], out[1])
    pd.testing.assert_frame_equal(out[0], out[2])
    # bare rows (no locus): object id only from oid=
    with pytest.raises(AlertFormatError) as exc:
        lk.read_alerts(LC_ROWS, format="antares-json")
    assert exc.value.field == "locus_id"
    b = lk.read_alerts(LC_ROWS, format="antares-json", oid="ZTF20aafqubg")
    assert len(b) == 1


def test_antares_bad_input_and_accounting():
    loc = load(LOCUS)
    empty = {k: v for k, v in loc.items() if k != "alerts"}
    fail, seen = collect()
    assert antares_json.read(Source(label="e", obj=[empty, loc], fail=fail))[0].records.tolist() == [1]
    assert seen == [(seen[0][0], 0, "alerts")] and "no alerts" in seen[0][0]
    broken = copy.deepcopy(loc)
    broken["alerts"][2]["alert_id"] = "ztf_candidate:oops"
    b = lk.read_alerts(broken, errors="skip")
    assert len(b) == 0 and b.errors["field"].tolist() == ["alert_id"]
    with pytest.raises(AlertFormatError, match="JSON"):
        lk.read_alerts(LOCUS.read_bytes()[:3000], format="antares-json")


# ----------------------------------------------------------------------------- both
def _sniffs(obj):
    text = json.dumps(obj).encode()
    return [Sniff(label="o", obj=_first_json(obj)), Sniff(label="t", head=text[:4096])]


def test_identify_is_exclusive():
    cases = {"alerce-json": [load(AAELULU), load(AAELULU)["detections"], load(BUNDLE), load(LSST)],
             "antares-json": [load(LOCUS), load(LC_ROWS)]}
    for want, docs in cases.items():
        for doc in docs:
            for sn in _sniffs(doc):
                assert formats.identify(sn).name == want
    for path in sorted(LASAIR.glob("*.json")):
        for sn in _sniffs(load(path)):
            assert not alerce_json.identify(sn), path.name
            assert not antares_json.identify(sn), path.name


def test_alerce_and_antares_land_in_the_same_columns():
    a = lk.read_alerts(BUNDLE)
    b = lk.read_alerts(LOCUS)
    both = lk.AlertBatch.concat([a, b])
    core = ["diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "mag", "magErr", "snr",
            "reliability", "reliabilitySource", "survey", "broker", "schemaVersion"]
    s = both.sources
    assert not s[core].isna().any().any()
    assert s["broker"].value_counts().to_dict() == {"alerce": 7, "antares": 1}
    assert (s["survey"] == "ztf").all()
    # the same conventions: flux sign from isdiffpos, |flux| from the magnitude
    assert np.allclose(s["mag"], 31.4 - 2.5 * np.log10(np.abs(s["psfFlux"])))
    assert set(both.history["kind"]) == {"detection", "upper_limit"}
