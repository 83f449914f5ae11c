"""Realism and plumbing of the firehose simulator, the converter and replay."""

from __future__ import annotations

import fastavro
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

import lsstuk_kit as lk
from lsstuk_kit.convert import from_survey_tables, mapping_table, tables_to_alerts, to_survey_tables
from lsstuk_kit.replay import replay
from lsstuk_kit.schema import latest_schema_version, load_rubin_schema
from lsstuk_kit.simulate import association_radius, simulate_survey, write_night
from lsstuk_kit.simulate.cadence import (
    DEPTH,
    PAIR_GAP_MIN,
    SEEING_DEPTH_SLOPE,
    SEEING_MEDIAN,
    VISITS_PER_NIGHT,
    make_cadence,
)
from lsstuk_kit.simulate.population import _cosmo, difference_flux, make_population, stellar_density
from lsstuk_kit.simulate.stamps import BOGUS_TYPES

FIELDS = [1201, 15, 237, 300, 40]


@pytest.fixture(scope="module")
def survey():
    return simulate_survey(24, seed=5, fields=FIELDS, scale=1.5, revisit_nights=2, bogus_fraction=0.15)


@pytest.fixture(scope="module")
def night(survey, tmp_path_factory):
    out = tmp_path_factory.mktemp("night")
    index = write_night(survey, out, alert_nights=4)
    return out, index


def test_cadence_pairs_depths_and_revisits():
    exp = make_cadence(9, seed=1)
    assert (exp["dec"] <= 5.0).all()
    assert exp["mjd"].is_monotonic_increasing
    per_night = exp.groupby("night").size()
    assert (per_night <= 800).all() and per_night.min() > 100
    # most field-nights have 2-3 visits, separated by 3-150 minutes (real Rubin: 1-150), spread over that range
    per_fn = exp.groupby(["night", "fieldId"]).size()
    assert 0.7 < (per_fn >= 2).mean() < 0.9 and per_fn.max() == len(VISITS_PER_NIGHT)
    gaps = exp.sort_values("mjd").groupby(["night", "fieldId"])["mjd"].diff().dropna().to_numpy() * 1440
    assert (gaps >= PAIR_GAP_MIN[0] / 2 - 1e-6).all() and (gaps <= PAIR_GAP_MIN[1] + 1e-6).all()
    assert np.percentile(gaps, 10) < 15 and np.percentile(gaps, 90) > 60
    # fields come back on later nights
    nights_per_field = exp.groupby("fieldId")["night"].nunique()
    assert nights_per_field.max() >= 2
    # depths near the LSST single-visit values, shallower in bad seeing
    med = exp.groupby("band")["m5"].median()
    loss = SEEING_DEPTH_SLOPE * np.log10(SEEING_MEDIAN / 0.7)  # at the median seeing
    for b, depth in DEPTH.items():
        assert depth - loss - 0.25 < med[b] < depth - loss + 0.2, b
    depth = exp["band"].astype(str).map(DEPTH).to_numpy(float)
    assert np.corrcoef(exp["seeing"], exp["m5"].to_numpy() - depth)[0, 1] < -0.3


def test_night_bands_set_a_nights_band_sequence():
    """``night_bands`` sets the bands (and visit count) of chosen nights; the other nights are unchanged."""
    base = make_cadence(12, seed=4, fields=[1201, 15, 237], revisit_nights=2)
    exp = make_cadence(12, seed=4, fields=[1201, 15, 237], revisit_nights=2, night_bands={-1: ["gr", "ri"]})
    last = exp[exp["night"] == 11].sort_values("mjd", kind="stable")
    seqs = last.groupby("fieldId")["band"].agg(lambda b: "".join(b.astype(str))).to_dict()
    assert seqs == {15: "gr", 237: "ri", 1201: "gr"}  # dealt in turn, in order of field id
    cols = ["mjd", "band", "fieldId", "seeing", "rotation"]
    pd.testing.assert_frame_equal(exp.loc[exp["night"] < 11, cols].reset_index(drop=True),
                                  base.loc[base["night"] < 11, cols].reset_index(drop=True))
    pd.testing.assert_frame_equal(base, make_cadence(12, seed=4, fields=[1201, 15, 237], revisit_nights=2))
    # the same-night pairs in two bands give colours: both visits within 150 minutes
    assert (last.groupby("fieldId")["mjd"].agg(np.ptp) * 1440 <= PAIR_GAP_MIN[1] + 1e-6).all()
    for bad in ({12: "gr"}, {-1: "grgr"}, {-1: "gx"}, {-1: []}):
        with pytest.raises(ValueError, match="night_bands"):
            make_cadence(12, seed=4, fields=[15], night_bands=bad)


def test_stellar_density_rises_toward_the_plane():
    d = stellar_density(np.array([266.4, 192.86]), np.array([-28.9, 27.1]))  # Galactic centre, north pole
    assert d[0] > 20 * d[1]
    r = association_radius(d)
    assert r[0] < 0.5 < 0.99 < r[1]


def test_magnitudes_against_depths(survey):
    det = survey.detections.merge(survey.truth[["detId", "isReal"]], on="detId")
    real = det[det["isReal"]]
    mag = 31.4 - 2.5 * np.log10(real["psfFlux"].abs())
    excess = mag - real["m5"]
    # detections stop at the 5-sigma depth: almost none fainter than m5 + 0.3
    assert (excess > 0.3).mean() < 0.02
    # and, number counts rising to faint magnitudes, they pile up toward it
    assert -2.0 < excess.median() < -0.5
    assert excess.between(-1, 0).sum() > 2 * excess.between(-4, -3).sum()
    assert (real["snr"].abs() >= 5).all()


def test_bogus_fraction_and_types(survey):
    t = survey.truth
    frac = 1 - t["isReal"].mean()
    assert 0.11 < frac < 0.19  # configured 0.15
    assert set(t.loc[~t["isReal"], "bogusType"]) <= set(BOGUS_TYPES)
    assert t.loc[~t["isReal"], "bogusType"].nunique() >= 5
    det = survey.detections.merge(t[["detId", "isReal"]], on="detId")
    assert det.loc[det["isReal"], "reliability"].median() > det.loc[~det["isReal"], "reliability"].median() + 0.4


def test_every_class_present(survey):
    subs = set(survey.truth["subtype"])
    for s in ["Ia", "IIP", "AGN", "RRLyrae", "Mdwarf", "asteroid"]:
        assert s in subs, s


def test_sn_ia_peaks_at_the_magnitude_of_its_redshift():
    from astropy.cosmology import Planck18

    fields = pd.DataFrame({"fieldId": [1], "ra": [10.0], "dec": [-30.0]})
    pop, hosts = make_population(fields, seed=3, scale=30.0, mjd_range=(61000, 61001))
    ia = pop[pop["subtype"] == "Ia"]
    assert len(ia) > 50
    t = np.linspace(60950, 61100, 3001)
    flux = difference_flux(ia, t, np.full(len(t), "r"), np.random.default_rng(0))
    peak = 31.4 - 2.5 * np.log10(flux.max(axis=1))
    z = ia["z"].to_numpy()
    expected = ia["absMag"].to_numpy() + Planck18.distmod(z).value + 0.1 + 0.3 * z
    assert np.allclose(peak, expected, atol=0.02)
    assert np.allclose(_cosmo(z, "distmod"), Planck18.distmod(z).value, atol=0.01)
    # time dilation: the observed rise lengthens with (1 + z)
    t_half = t[np.argmax(flux >= flux.max(axis=1, keepdims=True) / 2, axis=1)]
    rise = ia["peakMjd"].to_numpy() - t_half
    rest = rise / (1 + z) / ia["stretch"].to_numpy()
    assert rest.std() / rest.mean() < 0.05
    # hosts are offset from SNe, centred on AGN
    assert (pop.loc[pop["subtype"] == "Ia", "hostOffsetArcsec"] > 0).mean() > 0.95
    assert (pop.loc[pop["subtype"] == "AGN", "hostOffsetArcsec"] == 0).all()


def test_flares_rise_within_minutes():
    obj = pd.DataFrame({"truthId": [1], "cls": ["Flare"], "subtype": ["Mdwarf"], "mag0": [19.0],
                        "amp": [5.0], "tau": [10 / 1440], "phase": [0.0]})
    for c in ["z", "peakMjd", "absMag", "stretch", "period", "sigma", "riseDays", "fallDays", "distmod"]:
        obj[c] = np.nan
    t = 61000 + np.arange(0, 2, 1 / 1440)  # one-minute sampling over two days
    f = difference_flux(obj, t, np.full(len(t), "u"), np.random.default_rng(4))[0]
    assert f.max() > 0
    start = np.flatnonzero(np.diff((f > 0).astype(int)) == 1)[0] + 1
    peak = start + np.argmax(f[start:start + 60])
    assert (peak - start) <= 4  # minutes


def test_asteroids_do_not_associate_across_nights(survey):
    det = survey.detections.merge(survey.truth[["detId", "subtype"]], on="detId")
    ast = det[det["subtype"] == "asteroid"]
    assert len(ast) > 5
    assert (ast.groupby("objectId")["night"].nunique() == 1).all()
    # while a supernova keeps its object across nights
    sn = det[det["subtype"].isin(["Ia", "IIP", "IIn", "Ibc"])]
    assert (sn.groupby("objectId")["night"].nunique() > 1).any()


def test_alerts_read_back_and_validate_against_official_schema(night):
    out, index = night
    official = load_rubin_schema(*latest_schema_version())
    n = 0
    for f in index["file"]:
        with open(out / "alerts" / f, "rb") as fh:
            recs = list(fastavro.reader(fh, reader_schema=official))
        assert fastavro.validation.validate_many(recs, official, raise_errors=True)
        n += len(recs)
    assert n == index["n_alerts"].sum()
    batch = lk.read_alerts(out / "alerts")
    assert len(batch) == n
    assert (batch.sources["schemaVersion"] == "lsst.v{}_{}".format(*latest_schema_version())).all()


def test_history_is_the_join_of_earlier_detections_and_forced(survey, night):
    out, _ = night
    batch = lk.read_alerts(out / "alerts")
    det = survey.detections
    for sid in batch.sources.index[:: max(1, len(batch) // 25)]:
        one = batch[[sid]]
        raw = next(iter(one))
        row = det[det["detId"] == sid].iloc[0]
        mine = det[(det["objectId"] == row["objectId"]) & (det["mjd"] < row["mjd"]) & (det["mjd"] >= row["mjd"] - 365)]
        assert sorted(p["diaSourceId"] for p in raw["prvDiaSources"]) == sorted(mine["detId"])
        fc = survey.forced
        fmine = fc[(fc["objectId"] == row["objectId"]) & (fc["mjd"] < row["mjd"])]
        assert len(raw["prvDiaForcedSources"]) == len(fmine)
        assert raw["diaObject"]["nDiaSources"] == len(mine) + 1


def test_real_difference_peaks_at_the_centre(survey, night):
    out, _ = night
    batch = lk.read_alerts(out / "alerts")
    truth = lk.simulate.load_truth(out)
    real = batch.sources.index[truth.loc[batch.sources.index, "isReal"].to_numpy()
                               & (batch.sources["snr"].abs() > 10).to_numpy()]
    assert len(real) > 10
    for sid in real[:40]:
        c = batch.cutouts(sid)
        sign = np.sign(batch.sources.loc[sid, "psfFlux"])
        p = c.psf / c.psf.sum()
        yy, xx = np.mgrid[:p.shape[0], :p.shape[1]]
        psf_sigma = np.sqrt((p * ((yy - (p * yy).sum()) ** 2 + (xx - (p * xx).sum()) ** 2)).sum() / 2)
        smooth = gaussian_filter(sign * c.difference, psf_sigma)  # matched to the alert's PSF, as detection does
        y, x = np.unravel_index(np.argmax(smooth), smooth.shape)
        assert abs(x - 14.5) <= 1.0 and abs(y - 14.5) <= 1.0, sid
        assert c.science.shape == c.template.shape == (30, 30)


def test_truth_table_beside_the_alerts(night):
    out, index = night
    truth = lk.simulate.load_truth(out)
    assert len(truth) == index["n_alerts"].sum()
    for col in ["cls", "subtype", "isReal", "bogusType", "hostId", "z", "trueFlux", "truthId"]:
        assert col in truth.columns
    sn = truth[truth["cls"] == "SN"]
    assert (sn["hostId"] > 0).all() and sn["z"].notna().all()


def test_panstarrs_style_and_own_mapping_give_the_same_alerts(survey):
    visits = survey.exposures["expId"].to_numpy()[-3:]
    atlas = tables_to_alerts(to_survey_tables(survey, "atlas"), mapping="atlas", visits=visits)
    ps = to_survey_tables(survey, "panstarrs")
    assert "psfFlux" in ps["detections"] and "uJy" not in ps["detections"]
    assert np.allclose(ps["detections"]["psfFlux"] * 1e9, survey.detections["psfFlux"])
    ps_alerts = tables_to_alerts(ps, mapping="panstarrs", visits=visits)
    a = lk.read_alerts([d for _, _, d in atlas])
    b = lk.read_alerts([d for _, _, d in ps_alerts])
    pd.testing.assert_frame_equal(a.sources, b.sources, check_exact=False, rtol=1e-9)
    # a user's own column names: edit the mapping table
    mine = mapping_table("atlas")
    mine.loc[mine["survey_column"] == "uJy", "survey_column"] = "flux_microjansky"
    db = to_survey_tables(survey, mine)
    assert "flux_microjansky" in db["detections"]
    c = lk.read_alerts([d for _, _, d in tables_to_alerts(db, mapping=mine, visits=visits)])
    pd.testing.assert_frame_equal(a.sources, c.sources)
    with pytest.raises(ValueError, match="lacks mapped columns"):
        from_survey_tables({"detections": db["detections"].drop(columns=["flux_microjansky"])}, mine)
    with pytest.raises(ValueError, match="unknown mapping"):
        mapping_table("sdss")


def test_replay_modes_order_speed_and_copy(night, tmp_path):
    out, index = night
    visits = list(replay(out))
    assert [v.key for v in visits] == index.sort_values("mjd")["visit"].tolist()
    assert all(a.mjd <= b.mjd for a, b in zip(visits, visits[1:]))
    assert sum(len(v) for v in visits) == index["n_alerts"].sum()
    daily = list(replay(out, mode="daily", load=False))
    assert len(daily) == index["mjd"].astype(int).nunique() >= 3  # nights with alerts of the last 4
    twice = list(replay(out, mode="twice-daily", load=False))
    assert len(daily) < len(twice) <= 2 * len(daily)
    waits = []
    list(replay(out, speed=60, load=False, sleep=waits.append))
    span = (index["mjd"].max() - index["mjd"].min()) * 86400 / 60
    assert sum(waits) == pytest.approx(span, rel=1e-6)
    list(replay(out, to=tmp_path / "copy", load=False))
    assert sorted(p.name for p in (tmp_path / "copy").glob("*.avro")) == sorted(index["file"])
    with pytest.raises(ValueError):
        list(replay(out, mode="hourly"))


def test_cli_simulate_and_replay(tmp_path, capsys):
    from lsstuk_kit.cli import main

    assert main(["simulate", "--nights", "3", "--seed", "2", "--out", str(tmp_path / "s"), "--fields", "15",
                 "--scale", "2"]) == 0
    out = capsys.readouterr()
    assert "alerts in" in out.out
    assert (tmp_path / "s" / "truth.parquet").is_file()
    assert main(["replay", str(tmp_path / "s"), "--to", str(tmp_path / "r"), "--mode", "daily"]) == 0
    assert "replayed" in capsys.readouterr().out
    assert len(lk.read_alerts(tmp_path / "r")) == len(lk.simulate.load_truth(tmp_path / "s"))


def test_cutouts_laid_out_like_real_rubin_ones(night, real_alerts):
    import io

    from astropy.io import fits

    out, _ = night
    sim = next(iter(lk.read_alerts(out / "alerts")[:1]))
    real = next(iter(lk.read_alerts(real_alerts / "lsst" / "part-2-918301.avro")[:1]))
    for key in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        s_hdul = fits.open(io.BytesIO(sim[key]))
        r_hdul = fits.open(io.BytesIO(real[key]))
        assert [h.name for h in s_hdul] == [h.name for h in r_hdul] == ["PRIMARY", "UNCERT", "PSFIMAGE"]
        assert s_hdul[0].data.shape == r_hdul[0].data.shape == (30, 30)
        assert s_hdul[0].header["BUNIT"] == r_hdul[0].header["BUNIT"] == "nJy"
        missing = set(r_hdul[0].header) - set(s_hdul[0].header)
        assert not missing, missing
        assert s_hdul[1].header["UTYPE"] == r_hdul[1].header["UTYPE"]


def test_convert_associates_rows_without_object_ids(survey):
    db = to_survey_tables(survey, "atlas")
    bare = {"detections": db["detections"].drop(columns=["atlas_object_id"])}
    visits = survey.exposures["expId"].to_numpy()[-4:]
    with_ids = lk.read_alerts([d for _, _, d in tables_to_alerts(db, mapping="atlas", visits=visits)])
    without = lk.read_alerts([d for _, _, d in tables_to_alerts(bare, mapping="atlas", visits=visits)])
    assert len(with_ids) == len(without)
    # the same detections end up grouped the same way (ids may differ)
    a = with_ids.sources.groupby("diaObjectId").size().sort_values().to_numpy()
    b = without.sources.groupby("diaObjectId").size().sort_values().to_numpy()
    assert np.array_equal(a, b)
    assert (without.sources.index == with_ids.sources.index).all()


def test_history_days_sets_the_reach_of_the_history(survey):
    visits = survey.exposures["expId"].to_numpy()[-6:]
    db = to_survey_tables(survey, "atlas")
    full = lk.read_alerts([d for _, _, d in tables_to_alerts(db, visits=visits)])
    lite = lk.read_alerts([d for _, _, d in tables_to_alerts(db, visits=visits, history_days=0)])
    short = lk.read_alerts([d for _, _, d in tables_to_alerts(db, visits=visits, history_days=5)])
    pd.testing.assert_frame_equal(lite.sources, full.sources)  # same alerts and object summaries
    # lite: each alert's history is its own detection only
    assert len(lite.history) == len(lite) and (lite.history["kind"] == "detection").all()
    assert len(full.history) > 2 * len(full)
    # 5 days: exactly the rows of the full history within 5 days before each alert
    for sid in full.sources.index[:: max(1, len(full) // 20)]:
        t = full.sources.loc[sid, "midpointMjdTai"]
        want = full[[sid]].history
        want = want[want["midpointMjdTai"] >= t - 5]
        got = short[[sid]].history
        assert len(got) == len(want)
        assert sorted(got["midpointMjdTai"]) == pytest.approx(sorted(want["midpointMjdTai"]))
    with pytest.raises(ValueError, match="history_days"):
        tables_to_alerts(db, visits=visits, history_days=-1)
