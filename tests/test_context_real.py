"""Context on real alerts: real catalogues (files the user supplies), proper motions, survey context, scoring
against Fink's SIMBAD classes and the ZTF Bright Transient Survey, known and recurring transients."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from lsstuk_kit.catalogs import (
    load_bts,
    load_gaia_csv,
    load_galaxy_list,
    load_hipparcos,
    load_openngc,
    load_tns,
    load_vsx,
    mjd_to_jyear,
    propagate_to_epoch,
)
from lsstuk_kit.context import (
    bts_reference,
    classify_context,
    known_transients,
    score_context,
    simbad_reference,
)

#: Barnard's star in Gaia DR3 (epoch 2016.0): source_id, ra, dec (deg), pmra, pmdec (mas/yr), parallax, G
BARNARD_GAIA = (4472832130942575872, 269.44850252543, 4.73942005111, -801.551, 10362.394, 546.976, 8.1940)


def jyear_mjd(year):
    return (year - 2000.0) * 365.25 + 51544.5


def sep_arcsec(ra1, dec1, ra2, dec2):
    return SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec


# ---------------------------------------------------------------------------------------------- proper motions


def test_hipparcos_moved_to_2016_lands_on_gaia():
    barnard = load_hipparcos().query("HIP == 87937")
    assert barnard["pmdec"].iloc[0] == pytest.approx(10328.12, abs=0.01)  # I/311 pmDE
    moved = propagate_to_epoch(barnard, jyear_mjd(2016.0))
    # 24.75 years at 10.3"/yr = 256" of motion; Hipparcos carried forward lands within 1" of Gaia DR3
    # (the residual ~0.4" is Barnard's perspective acceleration, which a linear proper motion leaves out)
    assert sep_arcsec(barnard["ra"].iloc[0], barnard["dec"].iloc[0], BARNARD_GAIA[1], BARNARD_GAIA[2]) > 250
    assert sep_arcsec(moved["ra"].iloc[0], moved["dec"].iloc[0], BARNARD_GAIA[1], BARNARD_GAIA[2]) < 1.0
    assert moved["ref_epoch"].iloc[0] == pytest.approx(2016.0)


def test_propagate_matches_astropy_and_takes_per_row_epochs():
    rng = np.random.default_rng(1)
    n = 200
    cat = pd.DataFrame({"ra": rng.uniform(0, 360, n), "dec": rng.uniform(-89, 89, n),
                        "pmra": rng.normal(0, 2000, n), "pmdec": rng.normal(0, 2000, n), "ref_epoch": 2016.0})
    mjd = jyear_mjd(rng.uniform(1990, 2040, n))
    got = propagate_to_epoch(cat, mjd)
    from astropy.time import Time

    c = SkyCoord(cat["ra"].to_numpy() * u.deg, cat["dec"].to_numpy() * u.deg,
                 pm_ra_cosdec=cat["pmra"].to_numpy() * u.mas / u.yr, pm_dec=cat["pmdec"].to_numpy() * u.mas / u.yr,
                 obstime=Time(2016.0, format="jyear"), frame="icrs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the missing distance
        ref = c.apply_space_motion(new_obstime=Time(mjd, format="mjd"))
    d = sep_arcsec(got["ra"].to_numpy(), got["dec"].to_numpy(), ref.ra.deg, ref.dec.deg)
    assert np.median(d) < 0.01 and d.max() < 0.1  # astropy's fake distance adds a little
    still = propagate_to_epoch(cat.assign(pmra=0.0, pmdec=np.nan), mjd)  # no motion (NaN counts as 0): no move
    assert np.allclose(still["ra"], cat["ra"], atol=1e-9) and np.allclose(still["dec"], cat["dec"], atol=1e-9)
    with pytest.raises(ValueError, match="ref_epoch"):
        propagate_to_epoch(cat.drop(columns="ref_epoch"), 60000.0)
    with pytest.raises(ValueError, match="rows"):
        propagate_to_epoch(cat, np.full(3, 60000.0))
    with pytest.raises(ValueError, match="pmra"):
        propagate_to_epoch(cat.drop(columns="pmra"), 60000.0)
    assert float(mjd_to_jyear(51544.5)) == 2000.0


def test_context_moves_stars_to_the_alert_epoch(tmp_path):
    sid, ra, dec, pmra, pmdec, plx, g = BARNARD_GAIA
    csv = tmp_path / "gaia.csv"
    csv.write_text("source_id,ra,dec,parallax,pmra,pmdec,phot_g_mean_mag,ref_epoch\n"
                   f"{sid},{ra},{dec},{plx},{pmra},{pmdec},{g},2016.0\n"
                   "4472832130942575999,269.5,4.8,0.5,-1.2,3.4,15.1,2016.0\n")
    stars = load_gaia_csv(csv)
    t = jyear_mjd(2025.5)
    where = propagate_to_epoch(stars.iloc[[0]], t)
    alerts = pd.DataFrame({"ra": [where["ra"].iloc[0] + 0.2 / 3600, ra], "dec": [where["dec"].iloc[0], dec],
                           "midpointMjdTai": [t, t]})
    moved = classify_context(alerts, stars=stars, bright_stars=False)
    fixed = classify_context(alerts, stars=stars, bright_stars=False, proper_motion=False)
    # the alert on the star's 2025 position is on the star only once the star is moved; the 2016 position is empty
    assert moved["rule"].tolist() == ["VS", "OR"] and moved["match_id"].iloc[0] == str(sid)
    assert fixed["rule"].tolist() == ["OR", "VS"]
    # Hipparcos moves too: the bright-star halo (23" at Hp 9.5) follows Barnard's star (moved 6' since 1991.25)
    veto_moved = classify_context(alerts.iloc[[0]], bright_mag_limit=10.0)
    veto_fixed = classify_context(alerts.iloc[[0]], bright_mag_limit=10.0, proper_motion=False)
    assert veto_moved["rule"].tolist() == ["BS"] and veto_moved["match_id"].iloc[0] == "87937"
    assert veto_fixed["rule"].tolist() == ["OR"]


def test_pairs_at_epoch_reuses_one_moved_catalogue_and_matches_brute_force():
    """Chunks of a stream share the catalogue moved to the quarter-year near their epoch; every pair
    still equals moving each star exactly to each alert's own epoch, years away included."""
    from lsstuk_kit import catalogs as C
    from lsstuk_kit.crossmatch import angular_separation

    stars = load_hipparcos(9.0)
    fast = stars.nlargest(300, "pmdec").reset_index(drop=True)  # high proper motions (Barnard's: 10"/yr)
    rng = np.random.default_rng(3)
    k = rng.integers(0, len(fast), 400)
    mjd = rng.uniform(jyear_mjd(2024.0), jyear_mjd(2031.0), 400)
    at = propagate_to_epoch(fast.iloc[k], mjd)
    ra = at["ra"].to_numpy() + rng.normal(0, 3, 400) / 3600
    dec = at["dec"].to_numpy() + rng.normal(0, 3, 400) / 3600
    C._MOVED.clear()
    i, j, sep = C.pairs_at_epoch(ra, dec, mjd, fast, 6.0)
    # brute force: every star moved to every alert's epoch
    want = []
    for a in range(400):
        moved = propagate_to_epoch(fast, np.full(len(fast), mjd[a]))
        d = angular_separation(ra[a], dec[a], moved["ra"].to_numpy(), moved["dec"].to_numpy())
        want += [(a, int(b)) for b in np.flatnonzero(d <= 6.0)]
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(want) and len(want) >= 350
    assert (sep <= 6.0).all()
    assert len(C._MOVED) == 1
    # two chunks of one night: the moved catalogue is made once
    night = np.full(400, jyear_mjd(2030.1))  # (the first call moved it to near 2027.5)
    C.pairs_at_epoch(ra, dec, night, fast, 6.0)
    C.pairs_at_epoch(ra, dec, night + 0.4, fast, 6.0)
    assert len(C._MOVED) == 2
    # an edited catalogue is moved again, never taken from the cache
    edited = fast.copy()
    edited.loc[0, "pmra"] += 1.0
    C.pairs_at_epoch(ra, dec, night, edited, 6.0)
    assert len(C._MOVED) == 3


# ---------------------------------------------------------------------------------------------- file loaders


def test_gaia_csv_loader(tmp_path):
    csv = tmp_path / "gaia.csv"
    csv.write_text("source_id,ra,dec,pmra,pmdec\n1,10.0,-5.0,,\n2,11.0,-6.0,3.5,-2.0\n")
    g = load_gaia_csv(csv)
    assert g["ref_epoch"].tolist() == [2016.0, 2016.0] and np.isnan(g["pmra"].iloc[0])
    assert g["id"].tolist() == ["1", "2"]
    (tmp_path / "bad.csv").write_text("source_id,ra\n1,10.0\n")
    with pytest.raises(ValueError, match="bad.csv.*dec"):
        load_gaia_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("source_id,ra,dec\n1,10.0,95.0\n")
    with pytest.raises(ValueError, match="bad coordinates"):
        load_gaia_csv(tmp_path / "bad2.csv")
    with pytest.raises(FileNotFoundError):
        load_gaia_csv(tmp_path / "nope.csv")


def test_vsx_loader_flags_cvs(tmp_path):
    # VizieR B/vsx CSV columns (a few real VSX entries)
    csv = tmp_path / "vsx.csv"
    csv.write_text('"OID","Name","V","RAdeg","DEdeg","Type","max","min","Period"\n'
                   '8375,"SS Cyg",0,325.67850,43.58620,"UGSS+E",7.7,12.4,0.27512973\n'
                   '24434,"RR Lyr",0,291.36630,42.78440,"RRAB/BL",7.06,8.12,0.5668378\n'
                   '29089,"GK Per",0,52.79950,43.90440,"NA+EP+XP",0.2,14.0,1.996803\n'
                   '33422,"AM Her",0,274.05530,49.86800,"AM/XBR",12.3,15.7,0.128927\n'
                   '4233,"Z And",0,355.91200,48.81900,"ZAND+SR",7.7,11.3,\n')
    v = load_vsx(csv)
    assert v["is_cv"].tolist() == [True, False, True, True, False]  # Z And is symbiotic, not a CV
    assert v["period"].iloc[1] == pytest.approx(0.5668378) and v["id"].iloc[0] == "SS Cyg"
    pts = pd.DataFrame({"ra": [325.67850, 291.36630 + 0.3 / 3600], "dec": [43.58620, 42.78440]})
    c = classify_context(pts, stars=v, cvs=v[v["is_cv"]], bright_stars=False)
    assert c["context"].tolist() == ["CV", "variable star"] and c["match_id"].tolist() == ["SS Cyg", "RR Lyr"]


def test_galaxy_list_loaders(tmp_path):
    ned = tmp_path / "ned.csv"  # NED-style export: sexagesimal positions, diameters in arcmin
    ned.write_text("Object Name,RA,DEC,Type,Redshift,Diameter Major,Diameter Minor\n"
                   "NGC 4993,13h09m47.7s,-23d23m02s,G,0.009727,1.2,1.0\n"
                   "WISEA J000000.00+000000.0,00:00:00.0,+00:00:00.0,G,0.10,,\n")
    g = load_galaxy_list(ned)
    assert g["ra"].iloc[0] == pytest.approx(197.44875, abs=1e-4) and g["dec"].iloc[0] == pytest.approx(-23.38389,
                                                                                                         abs=1e-4)
    assert g["a_arcsec"].tolist() == [36.0, 3.0] and g["z"].iloc[0] == pytest.approx(0.009727)
    glade = tmp_path / "glade.csv"  # GLADE+-style columns (no sizes, luminosity distance in Mpc)
    glade.write_text("GLADE_no,ra,dec,z_cmb,d_L\n1,197.4488,-23.3839,0.0098,40.4\n")
    gl = load_galaxy_list(glade, default_radius_arcsec=10.0)
    assert gl["distance_mpc"].iloc[0] == pytest.approx(40.4) and gl["a_arcsec"].iloc[0] == 10.0
    # AT2017gfo lay 10.6" from NGC 4993's centre: a supernova-like (off-nucleus) context with either list
    at = pd.DataFrame({"ra": [197.450374], "dec": [-23.381497]})
    assert classify_context(at, galaxies=g, bright_stars=False)["rule"].tolist() == ["SN"]
    assert classify_context(at, galaxies=gl, bright_stars=False)["match_id"].tolist() == ["1"]
    (tmp_path / "nopos.csv").write_text("name,z\nx,0.1\n")
    with pytest.raises(ValueError, match="no RA column"):
        load_galaxy_list(tmp_path / "nopos.csv")


def test_tns_exports(tmp_path):
    search = tmp_path / "tns_search.csv"  # the TNS search page's CSV
    search.write_text('"ID","Name","RA","DEC","Obj. Type","Redshift","Host Name","Discovery Date (UT)"\n'
                      '"36467","SN 2019ein","13:53:29.110","+40:16:31.33","SN Ia","0.00776","NGC 5353",'
                      '"2019-05-01 11:07:28.000"\n'
                      '"40000","AT 2019xyz","01:00:00.000","-10:30:00.00","","","",'
                      '"2019-08-01 00:00:00.000"\n')
    t = load_tns(search)
    assert t["name"].tolist() == ["SN 2019ein", "AT 2019xyz"] and t["type"].tolist() == ["SN Ia", ""]
    assert t["dec"].iloc[1] == pytest.approx(-10.5) and t["mjd"].iloc[1] == pytest.approx(58696.0)
    public = tmp_path / "tns_public_objects.csv"  # the public objects file: a date line, then the header
    public.write_text('"2026-01-01 00:00:00"\n'
                      '"objid","name_prefix","name","ra","declination","redshift","typeid","type","discoverydate"\n'
                      '36467,"SN","2019ein",208.3712917,40.2753694,0.00776,3,"SN Ia","2019-05-01 11:07:28.000"\n')
    p = load_tns(public)
    assert p["name"].tolist() == ["SN 2019ein"] and p["mjd"].iloc[0] == pytest.approx(t["mjd"].iloc[0])
    assert sep_arcsec(p["ra"].iloc[0], p["dec"].iloc[0], t["ra"].iloc[0], t["dec"].iloc[0]) < 0.1


# ---------------------------------------------------------------------------------------------- survey context


def test_survey_context_rules():
    base = {"ra": [10.0] * 7, "dec": [np.linspace(-10, -9, 7)][0]}
    z = pd.DataFrame({**base, "distpsnr1": [0.2, 0.2, 2.5, 0.3, -999.0, 0.1, 12.0],
                      "sgscore1": [0.98, 0.05, 0.05, 0.99, -999.0, 0.99, 0.1],
                      "objectidps1": [1.0e11, 2.0e11, 3.0e11, 4.0e11, np.nan, 5.0e11, 6.0e11],
                      "ssdistnr": [-999.0, -999.0, -999.0, 0.5, -999.0, -999.0, -999.0],
                      "ssnamenr": [None, None, None, "4371", "null", None, None]})
    c = classify_context(z, bright_stars=False, survey_context=True)
    assert c["rule"].tolist() == ["VS", "NT", "SN", "SS", "OR", "VS", "OR"]
    assert c["match_catalog"].iloc[0] == "PS1 (alert)" and c["match_id"].iloc[0] == "100000000000"
    assert c["match_id"].iloc[3] == "4371"
    # without survey context the same alerts have no catalogue neighbour at all
    assert set(classify_context(z, bright_stars=False)["rule"]) == {"OR"}
    # a higher star threshold turns the 0.98 source into a galaxy core
    assert classify_context(z, bright_stars=False, survey_context=True, star_score=0.985)["rule"].iloc[0] == "NT"


# ---------------------------------------------------------------------------------------------- scoring


def test_simbad_and_bts_references():
    ref = simbad_reference(["QSO", "Seyfert_1", "RRLyr", "Candidate_LP*", "Nova", "SN", "GinPair", "IR", "Fail",
                            "Unknown", np.nan])
    assert ref.tolist()[:7] == ["nuclear transient", "nuclear transient", "variable star", "variable star", "CV",
                                "supernova", "galaxy"]
    assert ref.iloc[9] == "orphan" and pd.isna(ref.iloc[7]) and pd.isna(ref.iloc[8]) and pd.isna(ref.iloc[10])
    assert bts_reference(["SN IIn", "SN Ia-91T", "TDE", "ILRT", None]).tolist()[:4] == [
        "supernova", "supernova", "nuclear transient", "supernova"]


def test_score_context_counts_and_resamples_objects():
    got = pd.Series(["variable star"] * 6 + ["orphan"] * 4 + ["supernova", "nuclear transient"])
    ref = pd.Series(["variable star"] * 10 + ["galaxy", None])
    s = score_context(got, ref, n_boot=500)
    assert s.n == 11 and s.n_excluded == 1
    assert s.per_class.loc["variable star", "accuracy"] == pytest.approx(0.6)
    assert s.per_class.loc["galaxy", "accuracy"] == 1.0  # supernova counts for a galaxy reference
    assert s.confusion.loc["variable star", "orphan"] == 4
    lo, hi = s.per_class.loc["variable star", ["lo", "hi"]]
    assert 0.2 <= lo < 0.6 < hi <= 1.0
    # two objects (6 right, 4 wrong): resampling objects can only give 0, 0.6 or 1 ... interval spans 0..1
    grp = ["a"] * 6 + ["b"] * 4 + ["c", "d"]
    s2 = score_context(got, ref, groups=grp, n_boot=500)
    assert s2.per_class.loc["variable star", "objects"] == 2
    assert s2.per_class.loc["variable star", "lo"] == 0.0 and s2.per_class.loc["variable star", "hi"] == 1.0
    with pytest.raises(ValueError, match="rows"):
        score_context(got, ref[:3])


@pytest.fixture(scope="module")
def ztf(real_alerts):
    import lsstuk_kit as lk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = lk.read_alerts(real_alerts, errors="skip")
    s = batch.sources
    return s[s["survey"] == "ztf"], s[s["survey"] == "lsst"]


@pytest.fixture(scope="module")
def bts(real_alerts):
    path = real_alerts.parent / "catalogs" / "ZTFBTS_TransientTable.csv"
    if not path.is_file():
        pytest.skip(f"the BTS table {path} is absent (it lives beside the project, see DESIGN.md)")
    return load_bts(path)


def test_context_on_real_ztf_against_simbad(ztf):
    z, _ = ztf
    assert len(z) >= 580
    ref = simbad_reference(z["cdsxmatch"].to_numpy()).to_numpy()
    groups = z["diaObjectId"].to_numpy()
    offline = classify_context(z, galaxies=load_openngc())
    survey = classify_context(z, galaxies=load_openngc(), survey_context=True)
    s_off = score_context(offline, ref, groups=groups, n_boot=300)
    s_sur = score_context(survey, ref, groups=groups, n_boot=300)
    assert s_off.n >= 400 and s_off.n == s_sur.n
    # what the offline catalogues cannot see: the stars of these alerts are far fainter than Hipparcos
    assert (offline["context"] == "orphan").mean() > 0.9
    assert s_off.per_class.loc["variable star", "accuracy"] < 0.1
    # the alert's own PS1 neighbour sees them: most SIMBAD stars come out as variable stars
    vs = s_sur.per_class.loc["variable star"]
    assert vs["n"] >= 150 and vs["accuracy"] >= 0.75 and vs["lo"] > s_off.per_class.loc["variable star", "hi"]
    assert s_sur.accuracy > s_off.accuracy + 0.2
    # and the limit, stated: quasars and blazars are point-like in PS1, so most AGN look like stars
    agn = s_sur.per_class.loc["nuclear transient"]
    assert agn["n"] >= 100 and agn["most_common"] == "variable star" and agn["accuracy"] < 0.5
    assert s_sur.confusion.to_numpy().sum() == s_sur.n


def test_real_ztf_and_rubin_known_asteroids(ztf):
    z, rubin = ztf
    c = classify_context(z, bright_stars=False, survey_context=True)
    named = z["ssnamenr"].notna().to_numpy()
    assert named.sum() >= 5 and (c["rule"].to_numpy()[named] == "SS").all() and (c["rule"] == "SS").sum() == named.sum()
    r = classify_context(rubin, bright_stars=False, survey_context=True)
    sso = pd.to_numeric(rubin["ssObjectId"], errors="coerce").fillna(0).to_numpy() > 0
    assert sso.sum() >= 3 and np.array_equal(r["rule"].to_numpy() == "SS", sso)
    assert "K02JE6P" in set(r["match_id"])  # the MPC designation the alert carries


def test_known_transients_on_real_bts_and_ztf(ztf, bts):
    z, _ = ztf
    assert len(bts) == 5273 and bts["ra"].between(0, 360).all() and bts["dec"].between(-90, 90).all()
    assert bts["mjd"].between(58000, 60500).all()  # peaks 2018-2023
    kt = known_transients(z, bts)
    hits = kt[kt["known"]]
    # the two BTS objects among the real alerts are found under their own ZTF names, at their own epoch
    ztf_ids = dict(zip(bts["name"], bts["ztf_id"]))
    assert len(hits) >= 2
    assert all(ztf_ids[n] == o for n, o in zip(hits["known_name"], z.loc[hits.index, "diaObjectId"]))
    assert (hits["sep_arcsec"] < 1.0).all() and not hits["recurring"].any()
    assert (hits["days_since"].abs() < 100).all()
    ref = bts_reference(kt["known_type"].to_numpy())
    s = score_context(classify_context(z, survey_context=True, bright_stars=False), ref.to_numpy(), n_boot=200)
    assert s.n == len(hits) and s.n_excluded == len(z) - len(hits)


def test_recurring_transient_planted_at_a_real_bts_position(ztf, bts):
    z, _ = ztf
    sn = bts[bts["type"] == "SN Ia"].iloc[0]
    alerts = z.iloc[:3][["ra", "dec", "midpointMjdTai"]].copy()
    alerts.iloc[0] = [sn["ra"], sn["dec"] + 0.5 / 3600, sn["mjd"] + 3 * 365.25]  # the same place, 3 years on
    alerts.iloc[1] = [sn["ra"], sn["dec"], sn["mjd"] + 20]  # the supernova itself, after peak
    kt = known_transients(alerts, bts)
    assert kt["known"].tolist()[:2] == [True, True] and kt["recurring"].tolist()[:2] == [True, False]
    assert kt["known_name"].iloc[0] == sn["name"] and kt["known_type"].iloc[0] == "SN Ia"
    assert kt["days_since"].iloc[0] == pytest.approx(3 * 365.25)
    assert kt["note"].iloc[0].startswith("recurring: SN Ia") and "not that SN Ia now" in kt["note"].iloc[0]
    assert kt["note"].iloc[1].startswith("known: SN Ia")
    # the radius is a real cut: 2" away is not the catalogued transient
    far = alerts.assign(dec=alerts["dec"] + 2.0 / 3600)
    assert not known_transients(far, bts, radius_arcsec=1.5)["known"].iloc[1]
    with pytest.raises(ValueError, match="midpointMjdTai"):
        known_transients(alerts.drop(columns="midpointMjdTai"), bts)
    with pytest.raises(ValueError, match="'mjd'"):
        known_transients(alerts, bts.drop(columns="mjd"))
