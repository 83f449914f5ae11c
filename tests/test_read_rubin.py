from __future__ import annotations

from importlib import resources

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord

import lsstuk_kit as lk
from lsstuk_kit.schema import available_schema_versions

from .conftest import raw_records

VERSIONS = available_schema_versions()


def fake_alert(major, minor):
    return resources.files("lsst.alert.packet").joinpath(
        "schema", str(major), str(minor), "sample_data", "fakeAlert.avro")


def test_every_shipped_version_is_found():
    assert (7, 0) in VERSIONS and (11, 0) in VERSIONS and len(VERSIONS) >= 12


@pytest.mark.parametrize("version", VERSIONS, ids=[f"v{a}_{b}" for a, b in VERSIONS])
def test_fake_alert_of_every_schema_version(version):
    path = fake_alert(*version)
    if not path.is_file():
        pytest.skip(f"lsst-alert-packet ships no fakeAlert.avro for {version}")
    raw = raw_records(str(path))
    batch = lk.read_alerts(str(path))
    assert len(batch) == len(raw) == 1
    src = raw[0]["diaSource"]
    row = batch.sources.iloc[0]
    assert batch.sources.index[0] == src["diaSourceId"]
    assert row["ra"] == pytest.approx(src["ra"])
    assert row["dec"] == pytest.approx(src.get("dec", src.get("decl")))
    assert row["midpointMjdTai"] == pytest.approx(src.get("midpointMjdTai", src.get("midPointTai")))
    assert row["schemaVersion"] == f"lsst.v{version[0]}_{version[1]}"
    n_prv = len(raw[0]["prvDiaSources"] or [])
    assert (batch.history["kind"] == "detection").sum() == n_prv + 1


def test_real_rubin_alerts(real_alerts):
    path = real_alerts / "lsst" / "part-2-918301.avro"
    raw = raw_records(path)
    batch = lk.read_alerts(path)
    assert len(batch) == len(raw) == 7
    s = batch.sources
    for rec in raw:
        src = rec["diaSource"]
        row = s.loc[src["diaSourceId"]]
        assert row["diaObjectId"] == src["diaObjectId"]
        assert row["ra"] == src["ra"] and row["dec"] == src["dec"]
        assert row["band"] == src["band"]
        assert row["psfFlux"] == pytest.approx(src["psfFlux"])
        assert row["reliability"] == pytest.approx(src["reliability"])
        assert row["mag"] == pytest.approx(31.4 - 2.5 * np.log10(abs(src["psfFlux"])))
        assert row["schemaVersion"] == "lsst.v10_0"
        # broker additions are kept as columns
        assert row["publisher"] == rec["publisher"]
        dr3 = rec["xm"]["gaiadr3_DR3Name"]
        assert row["xm_gaiadr3_DR3Name"] == dr3 if dr3 is not None else pd.isna(row["xm_gaiadr3_DR3Name"])
        # object summary rides along
        n = rec["diaObject"]["nDiaSources"]
        assert row["nDiaSources"] == n if n is not None else pd.isna(row["nDiaSources"])
    # history: every previous detection and forced point, deduplicated per object
    h = batch.history
    expected_det = {(r["diaSource"]["diaObjectId"], p["diaSourceId"]) for r in raw
                    for p in (r["prvDiaSources"] or [])}
    expected_det |= {(r["diaSource"]["diaObjectId"], r["diaSourceId"]) for r in raw}
    det = h[h["kind"] == "detection"]
    assert set(zip(det["diaObjectId"], det["diaSourceId"].astype("int64"))) == expected_det
    assert len(det) == len(expected_det)
    expected_forced = {p["diaForcedSourceId"] for r in raw for p in (r["prvDiaForcedSources"] or [])}
    assert (h["kind"] == "forced").sum() == len(expected_forced)
    assert h.groupby("diaObjectId")["midpointMjdTai"].apply(lambda t: t.is_monotonic_increasing).all()
    # objects: one row per diaObjectId
    # solar-system sources (diaObjectId 0, no diaObject) have no object summary
    with_obj = [r["diaObject"] for r in raw if r["diaObject"] and r["diaObject"]["diaObjectId"] is not None]
    assert set(batch.objects.index) == {o["diaObjectId"] for o in with_obj}


def test_real_rubin_cutouts_and_wcs(real_alerts):
    batch = lk.read_alerts(real_alerts / "lsst" / "part-2-918301.avro")
    for sid, row in batch.sources.iterrows():
        c = batch.cutouts(sid)
        for name in ("science", "template", "difference"):
            assert c[name].shape == (30, 30)
            assert np.isfinite(c[name]).any()
        assert c.variance["science"].shape == (30, 30)
        assert c.psf.ndim == 2
        crpix = (c.headers["science"]["CRPIX1"] - 1, c.headers["science"]["CRPIX2"] - 1)
        world = c.wcs.pixel_to_world(*crpix)
        sep = world.separation(SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg))
        assert sep < 1 * u.arcsec


def test_elasticc_gz(real_alerts):
    path = real_alerts / "lsst" / "elasticc_alert_mjd60674.0512_obj747_src1494043.avro.gz"
    raw = raw_records(path)
    batch = lk.read_alerts(path)
    assert len(batch) == 1
    row = batch.sources.iloc[0]
    assert row["midpointMjdTai"] == pytest.approx(raw[0]["diaSource"]["midPointTai"])
    assert row["band"] == raw[0]["diaSource"]["filterName"].lower()
    assert row["schemaVersion"] == "elasticc.v0_9"
    c = batch.cutouts(batch.sources.index[0])
    assert c.science is None  # ELAsTiCC alerts carry no science cutout: None, not an error


def test_sample(tmp_path):
    batch = lk.load_sample()
    truth = lk.load_sample_truth()
    assert len(batch) == len(truth) > 100
    assert set(batch.sources["band"]) <= set("ugrizy")
    assert batch.sources["reliability"].between(0, 1).all()
    assert (batch.sources["snr"].abs() >= 4.99).all()
    c = batch.cutouts(batch.sources.index[3])
    assert c.science.shape == (30, 30)


def test_sample_regenerates_byte_identically(tmp_path):
    from lsstuk_kit.simulate import write_sample

    write_sample(tmp_path)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(lk.sample_path()) for p in lk.sample_path().rglob("*") if p.is_file())
    assert made == shipped
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (lk.sample_path() / rel).read_bytes(), rel
    assert sum((tmp_path / rel).stat().st_size for rel in made) <= 15 * 2**20


def test_real_rubin_history_flags_are_nullable_booleans(real_alerts, tmp_path):
    """Detection flags are pandas ``boolean``: the alert's values on detections, <NA> on forced rows."""
    path = real_alerts / "lsst" / "part-2-918301.avro"
    raw = raw_records(path)
    h = lk.read_alerts(path).history
    flags = [c for c in h.columns if h[c].dtype == "boolean"]
    assert len(flags) >= 30, flags  # Rubin's diaSource carries ~40 flags
    assert not any(h[c].dtype == object for c in flags)
    forced = (h["kind"] == "forced").to_numpy()
    assert forced.any() and (~forced).any()
    assert all(h.loc[forced, c].isna().all() for c in flags)
    # every detection's flags are the alert's own, value for value (None stays missing)
    by_id = {p["diaSourceId"]: p for r in raw for p in (r["prvDiaSources"] or []) + [r["diaSource"]]}
    det = h[~forced]
    for c in flags:
        want = pd.array([by_id[int(i)].get(c) for i in det["diaSourceId"]], dtype="boolean")
        got = det[c].array
        assert (got.isna() == want.isna()).all(), c
        assert (got[~got.isna()] == want[~want.isna()]).all(), c
    # and they survive a round trip through Avro
    out = tmp_path / "again.avro"
    lk.read_alerts(path).to_avro(out)
    again = lk.read_alerts(out).history
    for c in flags:
        assert again[c].dtype == "boolean"
        pd.testing.assert_series_equal(again[c].reset_index(drop=True), h[c].reset_index(drop=True))
