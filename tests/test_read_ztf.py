from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk

from .conftest import raw_records

ZTF_FILES = ["ZTF19acihgng.avro", "ZTF19acxxwrs.avro", "ZTF19acyfkzd.avro", "ZTF19acyjzeo.avro",
             "avro_multi_alerts.avro", "avro_multi_alerts_other.avro", "part-3-305711.avro"]


@pytest.mark.parametrize("name", ZTF_FILES)
def test_real_ztf_file(real_alerts, name):
    path = real_alerts / "ztf" / name
    raw = raw_records(path)
    batch = lk.read_alerts(path)
    assert len(batch) == len(raw)
    s = batch.sources
    for rec in raw:
        c = rec["candidate"]
        row = s.loc[c["candid"]]
        assert row["diaObjectId"] == rec["objectId"]
        assert row["midpointMjdTai"] == pytest.approx(c["jd"] - 2400000.5)
        assert row["band"] == {1: "g", 2: "r", 3: "i"}[c["fid"]]
        sign = -1 if c["isdiffpos"] in ("f", "0") else 1
        assert row["psfFlux"] == pytest.approx(sign * 10 ** ((31.4 - c["magpsf"]) / 2.5), rel=1e-6)
        assert row["mag"] == pytest.approx(c["magpsf"])
        # drb only where computed (schema 3.3 on, with its model version), else rb
        vsn = tuple(int(x) for x in rec["schemavsn"].split("."))
        has_drb = vsn >= (3, 3) and c.get("drb") is not None and bool(c.get("drbversion"))
        assert row["reliability"] == pytest.approx(c["drb"] if has_drb else c["rb"])
        assert row["reliabilitySource"] == ("drb" if has_drb else "rb")
        # documented "none" values are missing, not numbers
        for name in ("ssdistnr", "ssmagnr", "distpsnr1", "sgscore1", "neargaia"):
            assert pd.isna(row[name]) if c[name] == -999 else row[name] == pytest.approx(c[name])
        assert pd.isna(row["ssnamenr"]) if c["ssnamenr"] == "null" else row["ssnamenr"] == c["ssnamenr"]
        assert row["survey"] == "ztf"
        assert row["schemaVersion"] == "ztf.v" + rec["schemavsn"].replace(".", "_")
    # history: previous detections and upper limits of each object, plus the trigger
    h = batch.history
    for rec in raw:
        prv = rec["prv_candidates"] or []
        mine = h[h["diaObjectId"] == rec["objectId"]]
        n_lim = sum(p["candid"] is None for p in prv)
        assert (mine["kind"] == "upper_limit").sum() >= min(n_lim, 1) if n_lim else True
        lim = mine[mine["kind"] == "upper_limit"]
        assert lim["limitingMag"].notna().all()
    if len({r["objectId"] for r in raw}) == len(raw):
        n_det = sum(sum(p["candid"] is not None for p in (r["prv_candidates"] or [])) + 1 for r in raw)
        n_lim = sum(sum(p["candid"] is None for p in (r["prv_candidates"] or [])) for r in raw)
        assert (h["kind"] == "detection").sum() == n_det
        assert (h["kind"] == "upper_limit").sum() == n_lim
    cut = batch.cutouts(s.index[0])
    for name in ("science", "template", "difference"):
        assert cut[name].shape == (63, 63)


def test_mixed_surveys_land_in_same_columns(real_alerts):
    batch = lk.read_alerts(real_alerts)
    s = batch.sources
    assert set(s["survey"]) == {"lsst", "ztf"}
    for col in ["diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "mag",
                "magErr", "snr", "reliability", "survey", "schemaVersion"]:
        assert s[col].notna().sum() >= len(s) - 1, col  # ELAsTiCC carries no reliability
    assert np.isfinite(s["psfFlux"]).all()
    # every score says where it came from, and only a score does
    assert (s["reliabilitySource"].notna() == s["reliability"].notna()).all()
    assert set(s["reliabilitySource"].dropna()) <= {"reliability", "drb", "rb"}
    assert (s.loc[s["survey"] == "lsst", "reliabilitySource"].dropna() == "reliability").all()
