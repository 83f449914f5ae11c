"""Each survey schema version lands in the same columns, with no filler read as a measurement.

ZTF: the real alerts of every schema version present in ``../shared/real-alerts/ztf``, and
alerts of schemas 3.0-3.2 as an archive re-serves them in the 3.3 layout (``drb = 0.0``, empty
``drbversion``: ZTF's deep real/bogus score exists only from 3.3). Rubin: one simulated alert
of every schema version shipped by ``lsst-alert-packet``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.schema import available_schema_versions

from .conftest import REAL, raw_records, write

ZTF_DIR = REAL / "ztf"
#: ZTF fields whose -999 means "none" (ZTF docs: "set to -999.0 if none", "if exists within N arcsec").
MINUS_999 = ("ssdistnr", "ssmagnr", "distnr", "magnr", "sigmagnr", "chinr", "sharpnr", "neargaia",
             "neargaiabright", "maggaia", "maggaiabright",
             *(f"{p}{k}" for k in (1, 2, 3)
               for p in ("objectidps", "sgmag", "srmag", "simag", "szmag", "sgscore", "distpsnr")))


def _ztf_by_version():
    """{schemavsn: [file, ...]} of the real ZTF alerts, or {} where the folder is absent."""
    found: dict = {}
    if ZTF_DIR.is_dir():
        for path in sorted(ZTF_DIR.glob("*.avro")):
            for vsn in sorted({r["schemavsn"] for r in raw_records(path)}):
                found.setdefault(vsn, []).append(path)
    return found


ZTF_VERSIONS = _ztf_by_version()


def _vkey(vsn):
    major, minor = vsn.split(".")
    return int(major), int(minor)


def _expected_score(rec):
    """The score (and its name) a ZTF alert carries, following the documented rules."""
    c = rec["candidate"]
    drb_ok = (_vkey(rec["schemavsn"]) >= (3, 3) and c.get("drb") is not None
              and (c.get("drbversion") or "").strip() != "")
    if drb_ok:
        return c["drb"], "drb"
    if c.get("rb") is not None:
        return c["rb"], "rb"
    return math.nan, None


def _check_ztf(batch, raw):
    s = batch.sources
    assert "reliabilitySource" in s
    for rec in raw:
        c = rec["candidate"]
        row = s.loc[c["candid"]]
        value, source = _expected_score(rec)
        if source is None:
            assert pd.isna(row["reliability"]) and pd.isna(row["reliabilitySource"])
        else:
            assert row["reliability"] == pytest.approx(value)
            assert row["reliabilitySource"] == source
        for name in MINUS_999:
            if name in c and c[name] == -999:
                assert pd.isna(row[name]), name
            elif name in c and c[name] is not None:
                assert row[name] == pytest.approx(c[name]), name
        if c.get("ssnamenr") == "null":
            assert pd.isna(row["ssnamenr"])
    # previous detections carry no drb in any ZTF schema: their score is rb
    h = batch.history
    det = h[(h["kind"] == "detection") & ~h["diaSourceId"].isin(s.index)]
    assert (det["reliabilitySource"].dropna() == "rb").all()
    assert det["reliabilitySource"].notna().sum() == det["reliability"].notna().sum()
    lim = h[h["kind"] == "upper_limit"]
    assert lim["reliabilitySource"].isna().all()


@pytest.mark.parametrize("vsn", sorted(ZTF_VERSIONS) or ["absent"])
def test_real_ztf_alerts_of_each_schema_version(vsn):
    if vsn == "absent":
        pytest.skip(f"real ZTF alerts folder {ZTF_DIR} is absent (it lives beside the project, see DESIGN.md)")
    for path in ZTF_VERSIONS[vsn]:
        raw = [r for r in raw_records(path) if r["schemavsn"] == vsn]
        batch = lk.read_alerts(path)
        _check_ztf(batch, raw)
        mine = batch.sources[batch.sources["schemaVersion"] == "ztf.v" + vsn.replace(".", "_")]
        assert len(mine) == len(raw)
        if _vkey(vsn) >= (3, 3):  # every real 3.3+ alert here has its drb
            assert (mine["reliabilitySource"] == "drb").all()
            assert (mine["drbversion"] != "").all()
    # the -999 "none" values really occur in these files, and none survive
    if vsn in ("3.3", "4.02"):
        s = lk.read_alerts(ZTF_VERSIONS[vsn]).sources
        cols = [c for c in MINUS_999 if c in s]
        assert not (s[cols].astype(float) == -999).any().any()


def _reserved(vsn, drbversion=""):
    """Real 3.3 alerts as an archive re-serves alerts of schema ``vsn``: drb filled with 0.0."""
    path = ZTF_DIR / "avro_multi_alerts.avro"
    if not path.is_file():
        pytest.skip(f"real ZTF alerts {path} are absent (they live beside the project, see DESIGN.md)")
    import fastavro

    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        schema = reader.writer_schema
        raw = list(reader)
    for rec in raw:
        rec["schemavsn"] = vsn
        rec["candidate"]["drb"] = 0.0
        rec["candidate"]["drbversion"] = drbversion
    return schema, raw


@pytest.mark.parametrize("vsn", ["3.0", "3.1", "3.2"])
def test_old_ztf_alerts_reserved_in_33_layout_fall_back_to_rb(vsn, tmp_path):
    schema, raw = _reserved(vsn)
    batch = lk.read_alerts(write(tmp_path / "old.avro", schema, raw))
    _check_ztf(batch, raw)
    s = batch.sources
    assert (s["reliabilitySource"] == "rb").all()
    np.testing.assert_allclose(s["reliability"], [r["candidate"]["rb"] for r in raw], rtol=1e-6)
    assert s["drb"].isna().all() and s["drbversion"].isna().all()
    # the symptom: a reliability cut no longer drops every old alert
    expected = sum(r["candidate"]["rb"] > 0.5 for r in raw)
    assert expected > 0 and (s["reliability"] > 0.5).sum() == expected
    # fields added after the alert's schema are fillers too
    if _vkey(vsn) < (3, 1):
        assert s["exptime"].isna().all()
    else:
        np.testing.assert_allclose(s["exptime"], [r["candidate"]["exptime"] for r in raw])
    assert (batch.history["reliabilitySource"].dropna() == "rb").all()


def test_ztf_33_alert_without_drbversion_has_no_drb(tmp_path):
    """drb was not computed (empty drbversion) although the schema has it: rb, row by row."""
    schema, _ = _reserved("3.3")
    raw = raw_records(ZTF_DIR / "avro_multi_alerts.avro")  # genuine 3.3 alerts, drb with its version
    for k in range(1, len(raw), 2):
        raw[k]["candidate"]["drb"] = 0.0
        raw[k]["candidate"]["drbversion"] = ""
    batch = lk.read_alerts(write(tmp_path / "mixed.avro", schema, raw))
    _check_ztf(batch, raw)
    src = batch.sources.loc[[r["candidate"]["candid"] for r in raw], "reliabilitySource"].tolist()
    assert src == ["drb" if k % 2 == 0 else "rb" for k in range(len(raw))]


def test_ztf_schemas_mixed_in_one_file_decided_per_row(tmp_path):
    schema, raw = _reserved("3.2")
    real = raw_records(ZTF_DIR / "avro_multi_alerts.avro")
    for k in range(1, len(raw), 2):
        raw[k] = real[k]  # genuine 3.3 alerts between the re-served 3.2 ones
    batch = lk.read_alerts(write(tmp_path / "mixed.avro", schema, raw))
    _check_ztf(batch, raw)
    src = batch.sources.loc[[r["candidate"]["candid"] for r in raw], "reliabilitySource"].tolist()
    assert src == ["rb" if k % 2 == 0 else "drb" for k in range(len(raw))]


# ----------------------------------------------------------------------------- Rubin
RUBIN_VERSIONS = available_schema_versions()


@pytest.mark.parametrize("version", RUBIN_VERSIONS, ids=[f"v{a}_{b}" for a, b in RUBIN_VERSIONS])
def test_rubin_alert_of_each_schema_version(version, tmp_path):
    from lsstuk_kit.simulate import simulate_packets

    schema, alerts = simulate_packets(3, n_history=3, min_history=3, detect_all=True, seed=11,
                                      version=version, cutouts=False)
    legacy = version < (5, 0)
    has_reliability = not legacy
    if has_reliability:
        alerts[1]["diaSource"]["reliability"] = None  # no score computed for this one
    else:
        for a in alerts:
            a["diaSource"]["spuriousness"] = 0.125
    path = write(tmp_path / "alerts.avro", schema, alerts)
    batch = lk.read_alerts(path)
    s = batch.sources
    assert len(s) == 3
    for a in alerts:
        src = a["diaSource"]
        row = s.loc[src["diaSourceId"]]
        assert row["ra"] == pytest.approx(src["ra"])
        assert row["dec"] == pytest.approx(src["decl" if legacy else "dec"])
        assert row["midpointMjdTai"] == pytest.approx(src["midPointTai" if legacy else "midpointMjdTai"])
        assert row["band"] == src["filterName" if legacy else "band"].lower()
        assert row["psfFlux"] == pytest.approx(src["psFlux" if legacy else "psfFlux"], rel=1e-6)
        assert row["psfFluxErr"] == pytest.approx(src["psFluxErr" if legacy else "psfFluxErr"], rel=1e-6)
        assert row["snr"] == pytest.approx(src["snr"], rel=1e-6)
        assert row["schemaVersion"] == f"lsst.v{version[0]}_{version[1]}"
        score = src.get("reliability")
        if score is None:
            assert pd.isna(row["reliability"]) and pd.isna(row["reliabilitySource"])
        else:
            assert row["reliability"] == pytest.approx(score, rel=1e-6)
            assert row["reliabilitySource"] == "reliability"
        if legacy:  # a spuriousness is kept, never taken for a reliability
            assert row["spuriousness"] == 0.125 and pd.isna(row["reliability"])
    h = batch.history
    det = h[h["kind"] == "detection"]
    assert det["reliabilitySource"].notna().sum() == det["reliability"].notna().sum() if has_reliability \
        else det["reliabilitySource"].isna().all()
    assert h.loc[h["kind"] != "detection", "reliabilitySource"].isna().all()
    # a column projection keeps the survey's own score and snr (not NaN, not recomputed)
    small = lk.read_alerts(path, columns=["psfFlux"]).sources
    for col in ("reliability", "reliabilitySource", "snr"):
        pd.testing.assert_series_equal(small[col], s[col], check_dtype=False)


def test_real_rubin_and_elasticc_provenance():
    if not REAL.is_dir():
        pytest.skip(f"real alerts folder {REAL} is absent (it lives beside the project, see DESIGN.md)")
    s = lk.read_alerts(REAL / "lsst").sources
    rubin = s[s["schemaVersion"] == "lsst.v10_0"]
    assert len(rubin) == 7 and (rubin["reliabilitySource"] == "reliability").all()
    elasticc = s[s["schemaVersion"] == "elasticc.v0_9"]
    assert len(elasticc) == 1 and elasticc["reliability"].isna().all()
    assert elasticc["reliabilitySource"].isna().all()
