"""ATLAS: Avro alerts (three published layouts), .ddc detection tables, and .ddc -> Rubin alerts.

The .ddc tables are built by :func:`make_ddc` (see tests/data/atlas/README.md): a few
exposures of one ATLAS field with a header of the keywords ATLAS writes and rows formatted
as ATLAS's pipeline prints them. ``tests/data/atlas/02a59897o0104o.ddc`` is its output,
kept to show the format; a test checks it still regenerates byte for byte.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsstuk_kit.errors import AlertFormatError
from lsstuk_kit.formats import Sniff, Source, atlas_ddc
from lsstuk_kit.surveys import atlas
from lsstuk_kit.surveys.common import flux_to_mag

DATA = Path(__file__).parent / "data" / "atlas"
DDC_COLUMNS = "RA Dec mag dmag x y major minor phi det chi/N Pvr Ptr Pmv Pkn Pno Pbn Pcr Pxt Psc Dup WPflx dflx"
SCALE = 1.862  # arcsec / pixel


# ------------------------------------------------------------------------------------ fixtures
def make_ddc(n_exposures=4, n_objects=70, n_bogus=25, seed=7):
    """Realistic .ddc tables of one field: ``[(file name, text)]`` (see tests/data/atlas/README.md)."""
    rng = np.random.default_rng(seed)
    ra0, dec0 = 150.912, 2.381
    # objects: positions within the 5.4 deg field, a few negative (fading) differences
    ra = ra0 + rng.uniform(-2.5, 2.5, n_objects) / np.cos(np.radians(dec0))
    dec = dec0 + rng.uniform(-2.5, 2.5, n_objects)
    mag = rng.uniform(13.5, 19.3, n_objects)
    sign = np.where(rng.random(n_objects) < 0.15, -1, 1)
    plan = [("02a", 59897, 104, "o", 0.0), ("02a", 59897, 131, "o", 0.0104), ("02a", 59897, 158, "o", 0.0209),
            ("01a", 59899, 87, "c", 0.0)][:n_exposures]
    out = []
    for k, (tel, night, seq, filt, dt) in enumerate(plan):
        obs = f"{tel}{night}o{seq:04d}{filt}"
        mjd = night + 0.3921 + dt
        seen = rng.random(n_objects) < 0.85
        m5 = 19.4 - 0.1 * k
        n = int(seen.sum())
        # detections of real objects: 0.15 arcsec scatter, photometric noise
        r = ra[seen] + rng.normal(0, 0.15 / 3600, n) / np.cos(np.radians(dec0))
        d = dec[seen] + rng.normal(0, 0.15 / 3600, n)
        m = mag[seen] + (0.3 if filt == "c" else 0.0) + rng.normal(0, 0.03, n)
        dm = np.round(0.01 + 0.2 * 10 ** (0.4 * (m - m5)), 3)
        probs = np.column_stack([rng.integers(0, 700, n), rng.integers(100, 900, n), rng.integers(0, 40, (n, 2)),
                                 rng.integers(0, 60, (n, 5))])
        det = np.where(sign[seen] < 0, 5, rng.choice([0, 1], n))
        m = m * sign[seen]
        # bogus detections: random positions, high noise / cosmic-ray scores
        rb = ra0 + rng.uniform(-2.5, 2.5, n_bogus) / np.cos(np.radians(dec0))
        db = dec0 + rng.uniform(-2.5, 2.5, n_bogus)
        mb = rng.uniform(17.5, 19.5, n_bogus)
        pb = np.column_stack([rng.integers(0, 30, (n_bogus, 4)), rng.integers(300, 999, n_bogus),
                              rng.integers(0, 50, n_bogus), rng.integers(0, 600, n_bogus),
                              rng.integers(0, 20, (n_bogus, 2))])
        R, D = np.concatenate([r, rb]), np.concatenate([d, db])
        M = np.concatenate([m, mb])
        DM = np.concatenate([dm, np.round(0.1 + 0.1 * rng.random(n_bogus), 3)])
        P = np.vstack([probs, pb])
        DET = np.concatenate([det, rng.choice([0, 1], n_bogus)])
        order = np.argsort(D)  # ATLAS tables come sorted by the photometry pass, not by object
        x = 5280 + (R - ra0) * np.cos(np.radians(dec0)) * 3600 / SCALE
        y = 5280 + (D - dec0) * 3600 / SCALE
        header = {
            "OBS": obs, "OBJ": "TA150N02", "FILT": filt, "MJD": f"{mjd:.6f}", "TEXP": "30.0",
            "RA": f"{ra0:.5f}", "DEC": f"{dec0:.5f}", "PA": "179.562", "NX": "10560", "NY": "10560", "RAD": "7467",
            "FWMAJ": "2.28", "FWMIN": "2.04", "PSFPA": "41.0", "PSFPHI": "41.0", "SCALE": f"{SCALE}", "GAIN": "1.9",
            "BCKGND": "1629", "APFIT": "-0.412", "LONG": "-156.257", "LAT": "20.7075", "ELEV": "3062.66",
            "RARMS": "0.041", "DECRMS": "0.056", "MAGZPT": "22.225", "SKYMAG": "19.64", "CLOUD": "0.997",
            "MAG5SIG": f"{m5:.2f}", "AZ": "358.204", "ALT": "41.274", "LAMBDA": "147.771", "BETA": "-9.204",
            "SUNELONG": "108.738", "DDCVER": "2.1",
        }
        lines = [f"# {key:<8s}= {val}" for key, val in header.items()]
        lines.append("# " + DDC_COLUMNS)
        for i in order:
            p = P[i]
            lines.append(
                f"{R[i]:9.5f} {D[i]:9.5f} {M[i]:7.3f} {DM[i]:6.3f} {x[i]:8.2f} {y[i]:8.2f} {2.28:6.2f} {2.04:6.2f} "
                f"{41.0:6.2f} {DET[i]:2d} {rng.uniform(0.6, 2.5):6.2f} " + " ".join(f"{v:3d}" for v in p)
                + f" {0:2d} {rng.normal(0, 800):9.1f} {rng.uniform(1, 4):6.1f}")
        out.append((obs + ".ddc", "\n".join(lines) + "\n"))
    return out


@pytest.fixture(scope="module")
def ddc_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddc")
    paths = []
    for name, text in make_ddc():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths


def decode(path):
    """Decode an ATLAS container with the survey mapping's projection (compiled decoder), then map it."""
    from lsstuk_kit._decode import decode_container

    return atlas.to_frames(decode_container(open(path, "rb").read(), atlas.projection), None)


def _read_or_skip(source, **kw):
    """``read_alerts`` of ATLAS input (the name stays from when the reader was being wired)."""
    import lsstuk_kit as lk

    return lk.read_alerts(source, **kw)


# ------------------------------------------------------------------------------------ ids
def test_atlas_ids_match_real_ones():
    # real ids: QUB's example alert (genghisken/avro_atlas_ps1) and ALeRCE's test alert (atlas_realtime)
    assert atlas.atlas_object_id([77.1832, 15.66676], [70.47569, -4.90289], [0, 32]).tolist() == [
        1050843961702832400, 1010240020045410432]
    with pytest.raises(ValueError, match="0..99"):
        atlas.atlas_object_id(10.0, 10.0, 100)


def test_detection_ids_are_stable_and_distinct():
    a = atlas.detection_id("01a59897o0020c", np.arange(1, 1001))
    assert len(set(a.tolist())) == 1000 and a.dtype == np.int64
    # the same detection from its .ddc row and from ALeRCE's candid string
    s = atlas._candid_to_id(pd.Series(["01a59897o0020c_000002", "12345"], dtype=object))
    assert s.tolist() == [int(atlas.detection_id("01a59897o0020c", 2)[0]), 12345]
    # other exposures never collide; odd names get a hashed code above every real one
    codes = atlas.exposure_code(["01a59897o0020c", "01a59897o0021c", "02a59897o0020c", "mine.ddc", "mine2"])
    assert len(set(codes.tolist())) == 5 and codes[3] >= 9_200_000_000_000 and codes[3] != codes[4]
    assert codes.max() * 10**6 + 999_999 < np.iinfo(np.int64).max
    with pytest.raises(ValueError, match="row numbers"):
        atlas.detection_id("01a59897o0020c", 10**6)


def test_ml_reliability_is_the_real_share():
    s = pd.DataFrame({k: [0, 0, 100] for k in atlas.ML_SCORES})
    s.loc[0, "ptr"] = 900
    s.loc[0, "pno"] = 100
    r = atlas.ml_reliability(s)
    assert r[0] == pytest.approx(0.9) and np.isnan(r[1]) and r[2] == pytest.approx(4 / 9)


# ------------------------------------------------------------------------------------ Avro alerts
@pytest.mark.parametrize("variant", ["atlas", "alerce", "qub2018"])
def test_avro_alerts_map_to_rubin_columns(tmp_path, variant):
    alerts = atlas.example_alerts(24, seed=5, variant=variant)
    path = atlas.write_atlas_alerts(tmp_path / "a.avro", alerts, variant=variant)
    sources, history, objects, cut = decode(path)
    assert len(sources) == 24
    cand = [a["candidate"] for a in alerts]
    lower = [{atlas.ALERCE_NAMES.get(k, k): v for k, v in c.items()} for c in cand]
    raw_mag = np.array([c["mag"] for c in lower], float)
    # ids: integers, unique, equal to the .ddc-style id of the exposure and row
    exp_ids = [int(atlas.detection_id(c["obs"] if "obs" in c else c["candid"].split("_")[0],
                                      c["det_id"] if "det_id" in c else int(c["candid"].split("_")[1]))[0])
               for c in lower]
    assert sources["diaSourceId"].tolist() == exp_ids
    want_oid = [str(a.get("objectId", a.get("atlas_object_id"))) for a in alerts]
    assert sources["diaObjectId"].tolist() == want_oid
    assert set(sources["band"]) == {"c", "o"}
    assert np.allclose(sources["ra"], [c["ra"] for c in lower])
    assert np.allclose(sources["midpointMjdTai"], [c["mjd"] for c in lower])
    # fluxes: nJy, sign from the signed ATLAS magnitude, and back to the same magnitude
    assert np.array_equal(np.sign(sources["psfFlux"]), np.sign(raw_mag))
    assert np.allclose(flux_to_mag(sources["psfFlux"]), np.abs(raw_mag), atol=1e-6)
    assert np.allclose(sources["mag"], np.abs(raw_mag), atol=1e-6)
    assert np.allclose(sources["snr"], sources["psfFlux"].abs() / sources["psfFluxErr"])
    assert ((sources["isdiffpos"] == "f") == (raw_mag < 0)).all()
    # ML scores kept as integers 0-999
    for k in atlas.ML_SCORES:
        assert pd.api.types.is_integer_dtype(sources[k].dtype)
        assert sources[k].tolist() == [c[k] for c in lower]
    # reliability: QUB's realbogus_factor; ALeRCE's filler rb = 0.0 is no score
    if variant == "alerce":
        assert sources["reliability"].isna().all()
        assert sources["reliabilitySource"].isna().all()
    else:
        rbf = pd.Series([c["realbogus_factor"] for c in lower], dtype=float)
        assert np.allclose(sources["reliability"], rbf, equal_nan=True, atol=1e-6)
        assert (sources["reliabilitySource"][rbf.notna()] == "realbogus_factor").all()
        assert sources["limitingMag"].notna().all()
    assert (sources["survey"] == "atlas").all()
    assert sources["schemaVersion"].iloc[0] == ("atlas" if variant == "qub2018" else "atlas.v0_1")
    # history: each alert's own detection (ATLAS alerts carry no earlier ones)
    h = history.to_pandas()
    assert len(h) == 24 and (h["kind"] == "detection").all()
    assert h["_alert"].tolist() == list(range(24))
    assert np.allclose(h["psfFlux"], sources["psfFlux"])
    assert objects["diaObjectId"].tolist() == want_oid
    # cutouts: gzip-compressed 61x61 FITS stamps; ATLAS makes no template
    from astropy.io import fits

    assert {"science", "difference"} <= set(cut)
    for name in ("science", "difference"):
        raw = cut[name].to_pylist()[3]
        img = fits.getdata(io.BytesIO(gzip.decompress(raw)))
        assert img.shape == (61, 61)
    if "template" in cut:
        assert cut["template"].null_count == 24


def test_qub2018_previous_detections_become_history(tmp_path):
    alerts = atlas.example_alerts(4, seed=2, variant="qub2018", cutouts=False)
    prev = [dict(alerts[1]["candidate"], mjd=alerts[1]["candidate"]["mjd"] - d, db_det_id=7000 + i)
            for i, d in enumerate((1.0, 2.0))]
    alerts[2]["prv_candidates"] = prev
    sources, history, _, cut = decode(atlas.write_atlas_alerts(tmp_path / "q.avro", alerts, variant="qub2018"))
    h = history.to_pandas()
    assert len(h) == 6 and all(c.null_count == 4 for c in cut.values())
    old = h[h["diaSourceId"].isin([7000, 7001])]
    assert old["_alert"].tolist() == [2, 2]
    assert (old["diaObjectId"] == sources["diaObjectId"].iloc[2]).all()
    assert np.allclose(old["midpointMjdTai"], [p["mjd"] for p in prev])


def test_avro_alerts_through_read_alerts(tmp_path):
    path = atlas.write_atlas_alerts(tmp_path / "a.avro", atlas.example_alerts(10, seed=1))
    batch = _read_or_skip(path)
    s = batch.sources
    assert len(s) == 10 and set(s["survey"]) == {"atlas"} and set(s["band"]) == {"c", "o"}
    cut = batch.cutouts(s.index[0])
    assert cut.science.shape == (61, 61) and cut.difference.shape == (61, 61) and cut.template is None


# ------------------------------------------------------------------------------------ .ddc tables
def test_fixture_regenerates():
    name, text = make_ddc()[0]
    assert (DATA / name).read_text() == text


def test_read_ddc_header_and_rows():
    header, det = atlas_ddc.read_ddc(DATA / "02a59897o0104o.ddc")
    assert header["OBS"] == "02a59897o0104o" and header["FILT"] == "o" and header["OBJ"] == "TA150N02"
    assert header["MJD"] == pytest.approx(59897.3921) and isinstance(header["NX"], int)
    assert header["MAG5SIG"] == pytest.approx(19.4) and header["MAGZPT"] == pytest.approx(22.225)
    text = (DATA / "02a59897o0104o.ddc").read_text()
    n_rows = sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))
    assert len(det) == n_rows > 50
    assert list(det.columns) == list(atlas_ddc.COLUMNS.values())
    for c in atlas.INT_COLUMNS:
        assert det[c].dtype == np.int64
    first = text.splitlines()[len(header) + 1].split()
    assert det["ra"].iloc[0] == float(first[0]) and det["mag"].iloc[0] == float(first[2])
    assert det["pvr"].iloc[0] == int(first[11])
    # the same from bytes and from text
    assert atlas_ddc.read_ddc(text.encode())[1].equals(det)


def _bad(text, line_no, new):
    lines = text.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def test_read_ddc_names_bad_lines():
    _, text = make_ddc(n_exposures=1)[0]
    head = sum(1 for line in text.splitlines() if line.startswith("#"))
    good = text.splitlines()[head + 4]
    # a value that is not a number: line number, column and value named
    bad = _bad(text, head + 5, good.replace(good.split()[13], "x1x", 1))
    with pytest.raises(AlertFormatError, match=rf"line {head + 5}, column 'Pmv': 'x1x' is not a number") as exc:
        atlas_ddc.read_ddc(bad)
    assert exc.value.record == 4 and exc.value.field == "Pmv"
    # a short row
    bad = _bad(text, head + 9, " ".join(good.split()[:20]))
    with pytest.raises(AlertFormatError, match=rf"line {head + 9}: 20 fields where the column line names 23"):
        atlas_ddc.read_ddc(bad)
    # a long row
    with pytest.raises(AlertFormatError, match=rf"line {head + 2}: 24 fields"):
        atlas_ddc.read_ddc(_bad(text, head + 2, good + " 7"))
    # a huge garbage token is quoted briefly
    with pytest.raises(AlertFormatError) as exc:
        atlas_ddc.read_ddc(_bad(text, head + 3, good.replace(good.split()[0], "z" * 5000, 1)))
    assert len(str(exc.value)) < 300
    # no column line; binary; no MJD
    with pytest.raises(AlertFormatError, match="no column line"):
        atlas_ddc.read_ddc("# MJD= 1\n1 2 3\n")
    with pytest.raises(AlertFormatError, match="binary"):
        atlas_ddc.read_ddc(b"\x00\x01\x02" * 10)
    no_mjd = "\n".join(line for line in text.splitlines() if not line.startswith("# MJD")) + "\n"
    with pytest.raises(AlertFormatError, match="MJD"):
        atlas_ddc.SPEC.read(Source(label="x.ddc", data=no_mjd.encode(), fail=_raise("x.ddc")))


def test_read_ddc_empty_table():
    header, det = atlas_ddc.read_ddc("# FILT= c\n# MJD= 59000.5\n# " + DDC_COLUMNS + "\n")
    assert header["FILT"] == "c" and len(det) == 0 and "pvr" in det


def _raise(label):
    def fail(reason, record=None, field=None):
        raise AlertFormatError(reason, label, record, field)

    return fail


def test_ddc_spec_read_and_accounting(ddc_files):
    path = ddc_files[0]
    text = path.read_text()
    frames = atlas_ddc.SPEC.read(Source(label=str(path), path=str(path), fail=_raise(str(path))))
    assert len(frames) == 1
    f = frames[0]
    header, det = atlas_ddc.read_ddc(path)
    s = f.sources
    assert len(s) == len(det) and f.records.tolist() == list(range(len(det)))
    assert s["diaSourceId"].tolist() == atlas.detection_id(header["OBS"], np.arange(1, len(det) + 1)).tolist()
    assert s["diaSourceId"].is_unique and s["diaObjectId"].isna().all()
    assert (s["midpointMjdTai"] == header["MJD"]).all() and set(s["band"]) == {"o"}
    assert (s["limitingMag"] == header["MAG5SIG"]).all() and (s["magzpt"] == header["MAGZPT"]).all()
    assert (s["ra_pointing"] == header["RA"]).all() and np.allclose(s["ra"], det["ra"])
    assert np.allclose(flux_to_mag(s["psfFlux"]), det["mag"].abs(), atol=1e-6)
    assert ((s["psfFlux"] < 0) == (det["mag"] < 0)).all() and (det["mag"] < 0).any()
    assert s["schemaVersion"].iloc[0] == "atlas.ddc.v2_1" and (s["survey"] == "atlas").all()
    assert set(f.history["kind"]) == {"detection"} and len(f.history) == len(s)
    assert f.required == ("ra", "dec", "midpointMjdTai") and f.cutouts == {}
    # skip mode: bad rows reported once each, the rest read: alerts + reported = rows
    lines = text.splitlines()
    head = sum(1 for line in lines if line.startswith("#"))
    lines[head + 2] = lines[head + 2].replace(lines[head + 2].split()[3], "nope", 1)
    lines[head + 6] = "1 2 3"
    reported = []
    f2 = atlas_ddc.SPEC.read(Source(label="b.ddc", data=("\n".join(lines) + "\n").encode(),
                                    fail=lambda reason, record=None, field=None: reported.append((record, field))))[0]
    assert reported == [(2, "dmag"), (6, None)]
    assert len(f2.sources) + len(reported) == len(det)
    assert 2 not in f2.records and 6 not in f2.records
    kept = f.sources.set_index("diaSourceId").loc[f2.sources["diaSourceId"]]
    assert np.array_equal(kept["ra"].to_numpy(), f2.sources["ra"].to_numpy())


def test_ddc_identify():
    assert atlas_ddc.identify(Sniff(label="a.ddc", suffix=".ddc"))
    _, text = make_ddc(n_exposures=1)[0]
    assert atlas_ddc.identify(Sniff(label="<bytes>", head=text.encode()[:4096]))
    assert not atlas_ddc.identify(Sniff(label="x.csv", suffix=".csv", head=b"a,b,c\n1,2,3\n"))
    assert not atlas_ddc.identify(Sniff(label="<obj>", obj={"a": 1}))


def test_read_alerts_reads_ddc(ddc_files, tmp_path):
    _, det = atlas_ddc.read_ddc(ddc_files[0])
    batch = _read_or_skip(str(ddc_files[0]))
    assert len(batch.sources) == len(det) and set(batch.sources["survey"]) == {"atlas"}
    assert np.allclose(np.sort(batch.sources["ra"].to_numpy()), np.sort(det["ra"].to_numpy()))
    # named format, bytes in memory, and a bad line in skip mode (alerts + errors = rows)
    text = ddc_files[0].read_text().splitlines()
    head = sum(1 for line in text if line.startswith("#"))
    text[head + 3] = "1 2 3"
    bad = tmp_path / "02a59897o0104o.ddc"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(AlertFormatError, match=rf"line {head + 4}: 3 fields"):
        _read_or_skip(str(bad))
    skipped = _read_or_skip(str(bad), errors="skip")
    assert len(skipped.sources) == len(det) - 1 and len(skipped.errors) == 1
    assert _read_or_skip(bad.read_bytes(), format="atlas-ddc", errors="skip").sources.index.equals(
        skipped.sources.index)


# ------------------------------------------------------------------------------------ convert
def test_from_ddc_tables(ddc_files):
    from lsstuk_kit.convert import from_ddc, mapping_table

    db = from_ddc(ddc_files)
    d, e, o = db["detections"], db["exposures"], db["objects"]
    need = mapping_table("atlas").query("table == 'detections'")["survey_column"]
    assert set(need) <= set(d.columns)
    n = sum(len(atlas_ddc.read_ddc(p)[1]) for p in ddc_files)
    assert len(d) == n and d["det_id"].is_unique and len(e) == 4
    assert set(d["filter"]) == {"c", "o"} and d["mjd"].is_monotonic_increasing
    # uJy from the signed magnitude; the ML share as rb_pix
    assert np.allclose(23.9 - 2.5 * np.log10(d["uJy"].abs()), d["mag"].abs())
    assert ((d["uJy"] < 0) == (d["mag"] < 0)).all()
    assert d["rb_pix"].between(0, 1).all()
    # association: the generator's 70 objects come back (each detected in most exposures), bogus ones alone
    multi = o[o["ndet"] > 1]
    assert 60 <= len(multi) <= 70
    assert o["atlas_object_id"].is_unique and d["atlas_object_id"].isin(o["atlas_object_id"]).all()
    sep = d.groupby("atlas_object_id")["dec"].agg(lambda v: v.max() - v.min()) * 3600
    assert sep.max() < 2.0
    assert (e["mag5sig"] > 19).all() and np.allclose(e["fwhm"], np.sqrt(2.28 * 2.04) * SCALE)
    # a query keeps rows before association
    few = from_ddc(ddc_files, query="pno < 300")["detections"]
    assert 0 < len(few) < len(d) and (few["pno"] < 300).all()
    with pytest.raises(ValueError, match="twice"):
        from_ddc([ddc_files[0], ddc_files[0]])


def test_ddc_to_rubin_alerts_round_trip(ddc_files, tmp_path):
    import lsstuk_kit as lk
    from lsstuk_kit.convert import from_ddc, tables_to_alerts

    db = from_ddc(ddc_files)
    index = tables_to_alerts(db, out=tmp_path / "alerts")
    assert len(index) == 4 and index["n_alerts"].sum() == len(db["detections"])
    batch = lk.read_alerts(tmp_path / "alerts")
    s = batch.sources.sort_index()  # indexed by diaSourceId
    d = db["detections"].set_index("det_id").sort_index()
    assert s.index.equals(d.index)
    assert np.allclose(s["ra"], d["ra"], atol=1e-9) and np.allclose(s["dec"], d["dec"], atol=1e-9)
    assert np.allclose(s["midpointMjdTai"], d["mjd"])
    assert np.allclose(s["mag"], d["mag"].abs(), atol=2e-6)  # float32 fluxes in the Rubin schema
    assert (np.sign(s["psfFlux"]) == np.sign(d["mag"])).all()
    assert (s["band"] == d["filter"]).all()
    assert (s["diaObjectId"] == d["atlas_object_id"]).all()
    assert np.allclose(s["reliability"], d["rb_pix"], atol=1e-6)
    # light curves: an object seen in every exposure has its earlier detections in its last alert
    o = db["objects"]
    best = int(o["ndet"].to_numpy().argmax())
    oid, ndet = int(o["atlas_object_id"].to_numpy()[best]), int(o["ndet"].to_numpy()[best])
    lc = batch.lightcurve(oid)
    assert ndet == 4 and len(lc[lc["kind"] == "detection"]) == ndet


def test_atlas_light_curve_plots_its_own_bands(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from lsstuk_kit.lightcurves import plot_lightcurve
    from lsstuk_kit.surveys.common import BAND_COLORS

    alerts = atlas.example_alerts(6, seed=4, cutouts=False)
    for a in alerts:  # one object seen in both filters
        a["objectId"] = alerts[0]["objectId"]
    batch = _read_or_skip(atlas.write_atlas_alerts(tmp_path / "lc.avro", alerts))
    oid = batch.sources["diaObjectId"].iloc[0]
    ax = plot_lightcurve(batch, oid, unit="flux")
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
    wanted = {BAND_COLORS[b] for b in set(batch.sources["band"])}
    assert wanted <= colours and len(wanted) == 2
