from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

import lsstuk_kit as lk
from lsstuk_kit.catalogs import (
    associate_hosts,
    bright_star_radius,
    bright_star_veto,
    build_super_catalog,
    elliptical_distance,
    galaxy,
    in_galaxy,
    load_hipparcos,
    load_openngc,
)
from lsstuk_kit.context import catalogs_from_simulation, classify_context, context_accuracy


def offset(ra, dec, arcsec, pa_deg):
    c = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(pa_deg * u.deg, arcsec * u.arcsec)
    return c.ra.deg, c.dec.deg


def test_hipparcos_is_complete_and_right():
    hip = load_hipparcos()
    assert len(hip) == 117955
    sirius = hip[hip["HIP"] == 32349].iloc[0]
    assert sirius["Hpmag"] == pytest.approx(-1.09, abs=0.02)
    assert sirius["ra"] == pytest.approx(101.287, abs=0.01) and sirius["dec"] == pytest.approx(-16.716, abs=0.01)
    assert len(load_hipparcos(8.0)) < len(load_hipparcos(14.0))


def test_bright_star_veto_matches_brute_force():
    stars = load_hipparcos(6.0)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(stars), 300)
    sep = rng.uniform(0, 600, 300)
    ra, dec = offset(stars["ra"].to_numpy()[pick], stars["dec"].to_numpy()[pick], sep, rng.uniform(0, 360, 300))
    pts = pd.DataFrame({"ra": ra, "dec": dec})
    veto = bright_star_veto(pts, mag_limit=6.0)
    # brute force against every star brighter than 6
    c = SkyCoord(ra * u.deg, dec * u.deg)
    cs = SkyCoord(stars["ra"].to_numpy() * u.deg, stars["dec"].to_numpy() * u.deg)
    r = bright_star_radius(stars["Hpmag"].to_numpy())
    expected = np.array([(c[k].separation(cs).arcsec <= r).any() for k in range(len(c))])
    assert np.array_equal(veto["vetoed"].to_numpy(), expected)
    assert 20 < expected.sum() < 280
    assert (veto.loc[veto["vetoed"], "sep_arcsec"] <= veto.loc[veto["vetoed"], "radius_arcsec"]).all()
    # near Sirius: vetoed within its ~430" halo, not at 1 degree
    s = load_hipparcos()
    s = s[s["HIP"] == 32349].iloc[0]
    near = pd.DataFrame({"ra": [s["ra"], s["ra"]], "dec": [s["dec"] + 60 / 3600, s["dec"] + 1.0]})
    assert bright_star_veto(near)["vetoed"].tolist() == [True, False]


def test_openngc_lookup_and_ellipses():
    m31 = galaxy("M31")
    assert galaxy("NGC 224")["name"] == galaxy("ngc0224")["name"] == m31["name"] == "NGC0224"
    assert galaxy("Andromeda Galaxy")["name"] == "NGC0224"
    with pytest.raises(KeyError):
        galaxy("NGC 99999")
    gals = load_openngc()
    assert len(gals) > 10000 and gals["a_arcsec"].notna().mean() > 0.9
    g = galaxy("NGC 300")
    a, b, pa = g["a_arcsec"], g["b_arcsec"], g["pa"]
    assert a > b
    on_major = offset(g["ra"], g["dec"], 0.9 * a, pa)
    on_minor = offset(g["ra"], g["dec"], 0.9 * a, pa + 90)
    d = elliptical_distance([on_major[0], on_minor[0]], [on_major[1], on_minor[1]], g["ra"], g["dec"], a, b, pa)
    assert d[0] == pytest.approx(0.9, abs=0.01) and d[1] == pytest.approx(0.9 * a / b, rel=0.01)
    pts = pd.DataFrame({"ra": [on_major[0], on_minor[0]], "dec": [on_major[1], on_minor[1]]})
    assert in_galaxy(pts, g).tolist() == [True, False]


def test_host_association_uses_elliptical_distance():
    # a big galaxy 20" away (10 radii? no: 0.5 of its ellipse) and a small one 5" away (2.5 of its ellipse)
    gals = pd.DataFrame({"name": ["big", "small"], "ra": [0.0, 0.0], "dec": [20 / 3600, -5 / 3600],
                         "a_arcsec": [40.0, 2.0], "b_arcsec": [40.0, 2.0], "pa": [0.0, 0.0]})
    pts = pd.DataFrame({"ra": [0.0, 0.0, 1.0], "dec": [0.0, -5.5 / 3600, 0.0]})
    h = associate_hosts(pts, gals)
    assert h["host"].tolist() == ["big", "small", None]
    assert h.loc[0, "ellipse_distance"] == pytest.approx(0.5, abs=0.01)


def test_super_catalog_provenance():
    hip = load_hipparcos(3.0)
    sc = build_super_catalog(hipparcos=hip, ngc=load_openngc().head(50), mine=pd.DataFrame({"RA": [1.0], "DEC": [2.0]}))
    assert set(sc["catalog"]) == {"hipparcos", "ngc", "mine"}
    assert (sc.loc[sc["catalog"] == "hipparcos", "id"] == hip["HIP"].astype(str).to_numpy()).all()
    assert sc.loc[sc["catalog"] == "ngc", "id"].iloc[0].startswith(("NGC", "IC"))
    with pytest.raises(ValueError, match="ra/dec"):
        build_super_catalog(bad=pd.DataFrame({"x": [1]}))


def test_context_rules_each_fire():
    gal = pd.DataFrame({"id": ["G1"], "ra": [10.0], "dec": [-30.0], "a_arcsec": [10.0], "b_arcsec": [5.0], "pa": [0.0]})
    stars = pd.DataFrame({"id": ["S1", "S2"], "ra": [20.0, 10.0], "dec": [-30.0, -30.0 + 0.1 / 3600]})
    cvs = pd.DataFrame({"id": ["C1"], "ra": [30.0], "dec": [-30.0]})
    sirius = load_hipparcos().query("HIP == 32349").iloc[0]
    pts = pd.DataFrame({"ra": [20.0, 30.0, 10.0, 10.0, sirius["ra"], 50.0],
                        "dec": [-30.0, -30.0, -30.0 + 0.15 / 3600, -30.0 + 4 / 3600, sirius["dec"] + 0.01, 10.0]})
    c = classify_context(pts, stars=stars, galaxies=gal, cvs=cvs)
    assert c["rule"].tolist() == ["VS", "CV", "UN", "SN", "BS", "OR"]
    assert c.loc[0, "match_id"] == "S1" and c.loc[3, "match_id"] == "G1"


def test_context_accuracy_on_the_sample():
    batch = lk.load_sample()
    truth = lk.load_sample_truth()
    pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    ctx = classify_context(batch, **catalogs_from_simulation(pop, hosts))
    acc = context_accuracy(ctx, truth)["accuracy"]
    for cls in ["AGN", "VS", "CV", "SSO"]:
        assert acc[cls] >= 0.95, cls
    assert acc["SN"] >= 0.6
