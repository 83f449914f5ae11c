from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

import lsstuk_kit as lk
from lsstuk_kit.crossmatch import (
    angular_separation,
    match_catalog,
    match_cone,
    match_watchlist,
    nearest_within,
    pairs_within,
    read_watchlist,
)


def random_sky(rng, n, ra0, dec0, width_deg):
    """Points in a box around (ra0, dec0), wrapping RA and folding over the pole."""
    ra = (ra0 + rng.uniform(-width_deg, width_deg, n)) % 360
    dec = dec0 + rng.uniform(-width_deg, width_deg, n)
    over = np.abs(dec) > 90
    dec = np.where(over, np.sign(dec) * 180 - dec, dec)
    ra = np.where(over, (ra + 180) % 360, ra)
    return ra, dec


@pytest.mark.parametrize("ball", [False, True], ids=["dual-tree", "ball-per-position"])
@pytest.mark.parametrize("ra0,dec0", [(0.0, 0.0), (359.99, -30.0), (123.0, 89.99), (300.0, -89.99)])
def test_pairs_equal_astropy_search_around_sky(ra0, dec0, ball, monkeypatch):
    from lsstuk_kit import crossmatch as X

    # both ways of pairs_within: a walk of two trees, or a ball query per position (large catalogues)
    monkeypatch.setattr(X, "_BALL_QUERY_RATIO", 0 if ball else 10**9)
    rng = np.random.default_rng(int(abs(dec0) * 100) + int(ra0))
    a_ra, a_dec = random_sky(rng, 3000, ra0, dec0, 0.02)
    b_ra, b_dec = random_sky(rng, 3000, ra0, dec0, 0.02)
    radius = 5.0
    i, j, sep = pairs_within(a_ra, a_dec, b_ra, b_dec, radius)
    ca, cb = SkyCoord(a_ra * u.deg, a_dec * u.deg), SkyCoord(b_ra * u.deg, b_dec * u.deg)
    ai, bj, asep, _ = search_around_sky(ca, cb, radius * u.arcsec)
    assert len(ai) > 50
    ours = set(zip(i.tolist(), j.tolist()))
    theirs = set(zip(ai.tolist(), bj.tolist()))
    assert ours == theirs
    order = np.lexsort((bj, ai))
    assert np.allclose(np.sort(sep), np.sort(asep.arcsec[order]), atol=1e-6)
    # across RA 0/360 and over the pole, pairs straddling the wrap are found
    if ra0 > 359 or abs(dec0) > 89:
        assert any(abs(a_ra[p] - b_ra[q]) > 180 for p, q in ours)


@pytest.mark.parametrize("ra0,dec0", [(0.0, 10.0), (180.0, 89.99), (90.0, -89.99)])
def test_nearest_equals_astropy_match_to_catalog_sky(ra0, dec0):
    rng = np.random.default_rng(7)
    a_ra, a_dec = random_sky(rng, 5000, ra0, dec0, 0.05)
    b_ra, b_dec = random_sky(rng, 5000, ra0, dec0, 0.05)
    idx, sep = nearest_within(a_ra, a_dec, b_ra, b_dec, 3.0)
    ca, cb = SkyCoord(a_ra * u.deg, a_dec * u.deg), SkyCoord(b_ra * u.deg, b_dec * u.deg)
    aidx, asep, _ = ca.match_to_catalog_sky(cb)
    within = asep.arcsec <= 3.0
    assert within.sum() > 100
    assert np.array_equal(idx >= 0, within)
    assert np.array_equal(idx[within], aidx[within])
    assert np.allclose(sep[within], asep.arcsec[within], atol=1e-6)


def test_angular_separation_matches_astropy():
    rng = np.random.default_rng(1)
    ra1, dec1 = rng.uniform(0, 360, 1000), rng.uniform(-90, 90, 1000)
    ra2, dec2 = (ra1 + rng.normal(0, 0.01, 1000)) % 360, np.clip(dec1 + rng.normal(0, 0.01, 1000), -90, 90)
    ref = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).arcsec
    assert np.allclose(angular_separation(ra1, dec1, ra2, dec2), ref, atol=1e-6)


def test_match_cone_on_the_sample():
    batch = lk.load_sample()
    row = batch.sources.iloc[10]
    near = match_cone(batch, row["ra"] * u.deg, row["dec"] * u.deg, 10 * u.arcmin)
    sep = SkyCoord(near.sources["ra"].to_numpy() * u.deg, near.sources["dec"].to_numpy() * u.deg).separation(
        SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg))
    assert (sep <= 10 * u.arcmin).all() and batch.sources.index[10] in near.sources.index
    all_sep = SkyCoord(batch.sources["ra"].to_numpy() * u.deg, batch.sources["dec"].to_numpy() * u.deg).separation(
        SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg))
    assert len(near) == int((all_sep <= 10 * u.arcmin).sum())


def test_watchlist_many_to_many_per_row_radius(tmp_path):
    batch = lk.load_sample()
    s = batch.sources
    # targets: two on the same alert (different radii), one far from everything
    ra0, dec0 = s["ra"].iloc[0], s["dec"].iloc[0]
    t = pd.DataFrame({"Name": ["A", "B", "far"], "RA": [ra0, ra0 + 1.5 / 3600 / np.cos(np.radians(dec0)), 0.0],
                      "Dec": [s["dec"].iloc[0], s["dec"].iloc[0], 89.0], "radius": [1.0, 2.0, 60.0]})
    path = tmp_path / "targets.csv"
    t.to_csv(path, index=False)
    wl = read_watchlist(path)
    assert list(wl.columns[:3]) == ["name", "ra", "dec"]
    hits = match_watchlist(batch, path)
    mine = hits.loc[[s.index[0]]]
    assert set(mine["name"]) == {"A", "B"}  # B is 1.5" away, inside its own 2" radius
    nearest = match_watchlist(batch, path, nearest=True)
    assert nearest.loc[s.index[0], "name"] == "A"
    assert "far" not in set(hits["name"])
    with pytest.raises(ValueError, match="lacks"):
        read_watchlist(pd.DataFrame({"x": [1]}))


def test_match_catalog_nearest_and_all_with_table():
    from astropy.table import Table

    batch = lk.load_sample()
    s = batch.sources
    cat = Table({"ra": s["ra"].to_numpy()[:20] + 0.5 / 3600, "dec": s["dec"].to_numpy()[:20],
                 "id": np.arange(20)})
    m = match_catalog(batch, cat, 2 * u.arcsec)
    assert m.index.is_unique and set(m["id"]) == set(range(20))
    exact = angular_separation(s.loc[m.index, "ra"], s.loc[m.index, "dec"], cat["ra"][m["id"]], cat["dec"][m["id"]])
    assert np.allclose(m["sep_arcsec"], exact, atol=1e-6)
    assert (m["sep_arcsec"] <= 2).all()
    allm = match_catalog(batch, cat, 2 * u.arcsec, nearest=False)
    assert len(allm) >= len(m)
    with pytest.raises(ValueError, match="out-of-range"):
        match_catalog(batch, pd.DataFrame({"ra": [1.0], "dec": [95.0]}))


def test_catalogue_trees_are_reused_but_never_stale():
    from lsstuk_kit import crossmatch as X

    rng = np.random.default_rng(4)
    n = 50_000
    cra, cdec = rng.uniform(0, 10, n), rng.uniform(-5, 5, n)
    ra, dec = cra[:500] + 0.1 / 3600, cdec[:500]
    X._TREES.clear()
    i1, s1 = X.nearest_within(ra, dec, cra, cdec, 2.0)
    tree = next(iter(X._TREES.values()))
    i2, s2 = X.nearest_within(ra, dec, cra.copy(), cdec.copy(), 2.0)  # equal positions, another array
    assert len(X._TREES) == 1 and next(iter(X._TREES.values())) is tree
    np.testing.assert_array_equal(i1, i2)
    assert (i1 == np.arange(500)).all()
    # swap two catalogue rows: same sums, another order; the cached tree must not be used
    cra2, cdec2 = cra.copy(), cdec.copy()
    cra2[[0, 1]], cdec2[[0, 1]] = cra[[1, 0]], cdec[[1, 0]]
    i3, _ = X.nearest_within(ra, dec, cra2, cdec2, 2.0)
    assert i3[0] == 1 and i3[1] == 0 and len(X._TREES) == 2
    pi, pj, _ = X.pairs_within(ra, dec, cra2, cdec2, 2.0)
    assert dict(zip(pi[:2].tolist(), pj[:2].tolist())) == {0: 1, 1: 0}
    assert len(X._TREES) == 2  # pairs_within reused the swapped catalogue's tree
    # one value edited in place, in the array the tree was made from: a new tree, the right answer
    cra2[5] += 1.0
    i4, _ = X.nearest_within(ra, dec, cra2, cdec2, 2.0)
    assert i4[5] == -1 and len(X._TREES) == 3
    assert X._fingerprint(cra2) != X._fingerprint(cra) and X._fingerprint(cra) == X._fingerprint(cra.copy())
