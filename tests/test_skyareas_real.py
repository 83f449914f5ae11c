"""Sky areas on a real event: the GW190814 LALInference map, and 3D matching against galaxies.

The real map (``../shared/skymaps/S190814bv_5_LALInference.v1.fits.gz``, LIGO/Virgo; a flat
NESTED nside-1024 map with PROB, DISTMU, DISTSIGMA, DISTNORM) is read by the kit's own FITS
reader; here it is checked against astropy's reader pixel by pixel, against the published
credible areas and against a hand computation of the distance ansatz (Singer et al. 2016,
ApJL 829, L15). The tests that need it skip where ``../shared`` is absent; the synthetic
tests (3D matching logic, the reader's other layouts) always run.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.io import fits

from lsstuk_kit.skyareas import Watchmap, match_galaxies_3d, read_skymap, simulated_skymap

SKYMAP = Path(__file__).resolve().parents[2] / "shared" / "skymaps" / "S190814bv_5_LALInference.v1.fits.gz"
PIX_SR = 4 * np.pi / (12 * 1024**2)  # one nside-1024 pixel
PIX_DEG2 = PIX_SR * (180 / np.pi) ** 2


@pytest.fixture(scope="module")
def real_cells():
    if not SKYMAP.is_file():
        pytest.skip(f"the GW190814 skymap {SKYMAP} is absent (it lives beside the project, see DESIGN.md)")
    return read_skymap(SKYMAP)


@pytest.fixture(scope="module")
def raw_map():
    """The real map's four columns as astropy reads them (an independent reader)."""
    if not SKYMAP.is_file():
        pytest.skip(f"the GW190814 skymap {SKYMAP} is absent (it lives beside the project, see DESIGN.md)")
    with fits.open(SKYMAP) as h:
        d = h[1].data
        return {k: np.asarray(d[k], float) for k in ("PROB", "DISTMU", "DISTSIGMA", "DISTNORM")}


def centres(ipix, order=10):
    from cdshealpix.nested import healpix_to_lonlat

    lon, lat = healpix_to_lonlat(np.asarray(ipix, np.uint64), order)
    return lon.to_value(u.deg), lat.to_value(u.deg)


# ---------------------------------------------------------------------------------------------- the real map
def test_gw190814_credible_areas_match_the_published_ones(real_cells):
    # LIGO/Virgo, GCN Circular 25324 (2019), for this very file (LALInference.v1.fits.gz):
    # 50 % region 5 deg^2, 90 % region 23 deg^2, quoted to the nearest square degree, so
    # the areas computed here must round to those integers (+-0.5 deg^2). (The final
    # localisation of Abbott et al. 2020, ApJL 896, L44, with later calibration and
    # waveforms, is 18.5 deg^2: a different map.)
    w90 = Watchmap.from_skymap(real_cells, 0.9)
    w50 = Watchmap.from_skymap(real_cells, 0.5)
    assert 22.5 <= w90.area_deg2 < 23.5
    assert 4.5 <= w50.area_deg2 < 5.5
    # and the MOC holds exactly the pixels the greedy algorithm takes (no resolution loss)
    n90 = int((real_cells["cumprob"] < 0.9).sum())
    assert (real_cells["order"][: n90 + 1] == 10).all()
    assert w90.area_deg2 == pytest.approx(n90 * PIX_DEG2, rel=1e-9)
    # the header's distance summary comes along (GCN 25324: 267 +- 52 Mpc)
    mean, std = w90.distance_mpc
    assert mean == pytest.approx(267.4, abs=0.1) and std == pytest.approx(51.6, abs=0.1)
    assert real_cells.attrs["nside"] == 1024


def test_fast_reader_equals_astropy_pixel_by_pixel(real_cells, raw_map):
    prob = raw_map["PROB"] / raw_map["PROB"].sum()
    fine = real_cells[real_cells["order"] == 10]
    ipix = fine["ipix"].to_numpy()
    assert np.array_equal(fine["prob"].to_numpy(), prob[ipix])
    for col in ("DISTMU", "DISTSIGMA", "DISTNORM"):
        assert np.array_equal(fine[col.lower()].to_numpy(), raw_map[col][ipix])
    # the greedy order: the 90 % region is the same set of pixels as a plain argsort of PROB
    srt = np.argsort(-prob, kind="stable")
    n90 = int(np.searchsorted(np.cumsum(prob[srt]), 0.9)) + 1
    assert set(srt[:n90]) == set(ipix[: n90])
    # merged cells hold at most the tail (1e-4) and cover the rest of the sky exactly once
    assert real_cells.loc[real_cells["order"] < 10, "prob"].sum() <= 1e-4
    covered = (4.0 ** (10 - real_cells["order"].to_numpy())).sum()
    assert covered == 12 * 1024**2
    assert len(real_cells) < 0.15 * 12 * 1024**2


def test_merging_the_tail_changes_nothing_below_it(real_cells):
    exact = read_skymap(SKYMAP, tail=0)
    rng = np.random.default_rng(4)
    # positions inside the 99.9 % region, plus some anywhere on the sky
    ra0, dec0 = centres(exact["ipix"].to_numpy()[:200_000][rng.integers(0, 200_000, 3000)])
    ra = np.concatenate([ra0 + rng.normal(0, 0.02, ra0.size), rng.uniform(0, 360, 3000)])
    dec = np.concatenate([np.clip(dec0 + rng.normal(0, 0.02, dec0.size), -90, 90),
                          np.degrees(np.arcsin(rng.uniform(-1, 1, 3000)))])
    a, b = Watchmap.from_skymap(real_cells, 0.9), Watchmap.from_skymap(exact, 0.9)
    la, lb = a.credible_level(ra, dec), b.credible_level(ra, dec)
    below = lb < 1 - 1e-4
    assert below.sum() > 3000
    assert np.array_equal(la[below], lb[below])
    assert (la[~below] >= 1 - 1e-4 - 1e-12).all()
    r = np.full(ra.size, 250.0)
    assert np.array_equal(a.distance_probability(ra, dec, r)[below], b.distance_probability(ra, dec, r)[below])
    assert np.array_equal(a.moc.to_string(), b.moc.to_string())


def test_3d_density_against_a_hand_computation(real_cells, raw_map):
    wm = Watchmap.from_skymap(real_cells, 0.9)
    prob = raw_map["PROB"] / raw_map["PROB"].sum()
    # the densest pixel, pixels at credible levels ~0.3, ~0.6, ~0.89, and one at 0.99
    picks = [0] + [int(np.searchsorted(real_cells["cumprob"], lv)) for lv in (0.3, 0.6, 0.89, 0.99)]
    ipix = real_cells["ipix"].to_numpy()[picks]
    assert (real_cells["order"].to_numpy()[picks] == 10).all()
    ra, dec = centres(ipix)
    for k, (p, r_a, d_a) in enumerate(zip(ipix, ra, dec)):
        mu, sigma, norm = raw_map["DISTMU"][p], raw_map["DISTSIGMA"][p], raw_map["DISTNORM"][p]
        for r in (0.5 * mu, mu, mu + sigma, 2 * mu):
            gauss = np.exp(-0.5 * ((r - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
            hand_pdf = norm * r**2 * gauss  # p(r | n), Mpc^-1
            hand_dpdv = prob[p] / PIX_SR * norm * gauss  # dP/dV, Mpc^-3
            assert wm.distance_pdf([r_a], [d_a], [r])[0] == pytest.approx(hand_pdf, rel=1e-12)
            assert wm.distance_probability([r_a], [d_a], [r])[0] == pytest.approx(hand_dpdv, rel=1e-12)
        # the file's DISTNORM normalises the conditional distance density: integral p(r|n) dr = 1
        grid = np.linspace(0, mu + 10 * sigma, 20001)
        pdf = wm.distance_pdf(np.full(grid.size, r_a), np.full(grid.size, d_a), grid)
        assert np.trapezoid(pdf, grid) == pytest.approx(1.0, abs=2e-3), k
    # with a Quantity, the same numbers
    assert wm.distance_probability(ra, dec, 0.25 * u.Gpc) == pytest.approx(wm.distance_probability(ra, dec, 250.0))


def test_galaxies_at_the_map_distance_outrank_those_in_front_and_behind(real_cells):
    wm = Watchmap.from_skymap(real_cells, 0.9)
    top = real_cells.iloc[:60]
    ra, dec = centres(top["ipix"].to_numpy())
    mu, sigma = top["distmu"].to_numpy(), top["distsigma"].to_numpy()
    # the conditional mean distance in each pixel, from its own ansatz
    grid = np.linspace(1, 1000, 4000)
    pdf = top["distnorm"].to_numpy()[:, None] * grid**2 * np.exp(-0.5 * ((grid - mu[:, None]) / sigma[:, None]) ** 2)
    mean = (pdf * grid).sum(1) / pdf.sum(1)
    assert mean.min() > 200 and mean.max() < 330  # DISTMEAN in the header is 267 Mpc
    gals = pd.DataFrame({"name": [f"{w}{i}" for w in ("at", "front", "behind") for i in range(60)],
                         "ra": np.tile(ra, 3), "dec": np.tile(dec, 3),
                         "distance": np.concatenate([mean, 0.3 * mean, 2.5 * mean])})
    ranked = match_galaxies_3d(wm, gals)
    assert len(ranked) == 180
    assert ranked["name"].str.startswith("at").iloc[:60].all()  # all 60 at the right distance come first
    assert ranked["host_prob"].sum() == pytest.approx(1.0)
    assert ranked["host_prob"].iloc[:60].sum() > 0.99
    assert (ranked["rank"].to_numpy() == np.arange(1, 181)).all()
    assert ranked["credible_level"].max() < 0.05


def test_openngc_galaxies_in_the_gw190814_region(real_cells):
    """A real case: OpenNGC galaxies with redshifts in the 90 % region (OpenNGC is far from complete at 250 Mpc)."""
    from lsstuk_kit.catalogs import load_openngc

    wm = Watchmap.from_skymap(real_cells, 0.9)
    g = load_openngc()
    assert g["redshift"].notna().mean() > 0.8
    ranked = match_galaxies_3d(wm, g)
    assert 10 <= len(ranked) <= 40  # 19 with OpenNGC 2023's table
    assert (ranked["credible_level"] < 0.9).all()
    best = ranked.iloc[:3]
    # the best-ranked hosts sit at the map's distance (267 +- 52 Mpc), not merely inside the area
    assert ((best["distance_mpc"] > 200) & (best["distance_mpc"] < 330)).all()
    assert ranked["dp_dv"].iloc[0] > 10 * ranked["dp_dv"].min()
    near = ranked[ranked["distance_mpc"] < 100]
    if len(near):
        assert near["rank"].min() > 3


# ---------------------------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def map3d(tmp_path_factory):
    d = tmp_path_factory.mktemp("map3d")
    return simulated_skymap(d / "gw3d.fits", 35.0, -25.0, kind="banana", width_deg=1.5, length_deg=20, seed=2,
                            distance_mpc=150.0, distance_sigma_mpc=30.0, distance_gradient=0.2, nside=256)


def test_simulated_3d_map_round_trips_in_every_layout(map3d, tmp_path):
    flat = read_skymap(map3d, tail=0)
    assert {"distmu", "distsigma", "distnorm"} <= set(flat.columns)
    assert flat.attrs["distmean"] == pytest.approx(150, rel=0.1)
    # gzip, healpy-style rows of 1024 pixels, RING ordering and a multi-order file all read the same
    with fits.open(map3d) as h:
        cols = {k: np.asarray(h[1].data[k], float) for k in ("PROB", "DISTMU", "DISTSIGMA", "DISTNORM")}
        hdr = h[1].header
    gz = tmp_path / "gw3d.fits.gz"
    gz.write_bytes(gzip.compress(Path(map3d).read_bytes(), compresslevel=1))
    rows = tmp_path / "rows.fits"
    hdu = fits.BinTableHDU.from_columns([fits.Column(name=k, format="1024E", array=v.astype(np.float32).reshape(
        -1, 1024)) for k, v in cols.items()])
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": hdr["NSIDE"]})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(rows)
    from cdshealpix.nested import healpix_to_lonlat
    from cdshealpix.ring import lonlat_to_healpix

    npix = len(cols["PROB"])
    lon, lat = healpix_to_lonlat(np.arange(npix, dtype=np.uint64), 8)
    ring_idx = np.asarray(lonlat_to_healpix(lon, lat, 256), np.int64)
    ring_cols = {}
    for k, v in cols.items():
        ring_cols[k] = np.empty_like(v)
        ring_cols[k][ring_idx] = v
    ring = tmp_path / "ring.fits"
    hdu = fits.BinTableHDU.from_columns([fits.Column(name=k, format="D", array=v) for k, v in ring_cols.items()])
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": 256})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(ring)
    moc_file = simulated_skymap(tmp_path / "moc.fits", 35.0, -25.0, kind="banana", width_deg=1.5, length_deg=20,
                                seed=2, distance_mpc=150.0, distance_sigma_mpc=30.0, distance_gradient=0.2,
                                nside=256, multiorder=True)
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(20, 50, 20000), rng.uniform(-40, -10, 20000)
    r = rng.uniform(50, 300, 20000)
    ref = Watchmap.from_skymap(flat, 0.9)
    for path, rel in ((gz, 0), (rows, 1e-6), (ring, 0), (moc_file, 0)):
        w = Watchmap.from_skymap(path, 0.9)
        assert np.array_equal(w.contains_lonlat(ra, dec), ref.contains_lonlat(ra, dec)), path
        inside = ref.contains_lonlat(ra, dec)
        assert inside.sum() > 500
        got, want = w.distance_probability(ra, dec, r)[inside], ref.distance_probability(ra, dec, r)[inside]
        assert got == pytest.approx(want, rel=max(rel, 1e-12)), path


def test_match_galaxies_3d_with_redshifts_weights_and_bad_input(map3d):
    from astropy.cosmology import Planck18

    wm = Watchmap.from_skymap(map3d, 0.9)
    z_at = 0.0333  # ~150 Mpc with Planck18
    assert Planck18.luminosity_distance(z_at).to_value(u.Mpc) == pytest.approx(150, rel=0.03)
    gals = pd.DataFrame({"name": ["right", "near", "far", "no z", "blue", "outside"],
                         "ra": [35.0] * 5 + [200.0], "dec": [-25.0] * 5 + [40.0],
                         "redshift": [z_at, 0.005, 0.2, np.nan, -0.001, z_at], "lum": [1.0, 50.0, 1, 1, 1, 1]})
    ranked = match_galaxies_3d(wm, gals)
    assert ranked["name"].tolist() == ["right", "near", "far", "no z", "blue"]  # the outsider is dropped
    assert ranked["score"].iloc[3:].isna().all()
    every = match_galaxies_3d(wm, gals, within_area=False)
    assert len(every) == 6 and every.set_index("name").loc["outside", "dp_dv"] == 0
    # a luminosity weight can lift a nearby bright galaxy above a faint one at the right distance
    weighted = match_galaxies_3d(wm, gals, weight="lum")
    ratio = ranked.set_index("name")["dp_dv"]
    assert (weighted["name"].iloc[0] == "near") == (50 * ratio["near"] > ratio["right"])
    # an explicit distance column wins over the redshift
    gals["distance"] = [150.0, 150.0, 150.0, 150.0, 150.0, 150.0]
    same = match_galaxies_3d(wm, gals)
    assert same["dp_dv"].nunique() == 1
    with pytest.raises(ValueError, match="redshift"):
        match_galaxies_3d(wm, gals.drop(columns=["distance", "redshift"]))
    with pytest.raises(ValueError, match="position"):
        match_galaxies_3d(wm, gals.drop(columns=["ra"]))
    with pytest.raises(ValueError, match="distance layers"):
        match_galaxies_3d(Watchmap.from_circle(35.0, -25.0), gals)


def test_2d_maps_have_no_distance_and_bad_files_say_why(tmp_path):
    flat2d = simulated_skymap(tmp_path / "flat.fits", 35.0, -25.0, kind="blob", seed=1)
    wm = Watchmap.from_skymap(flat2d)
    with pytest.raises(ValueError, match="no distance layers"):
        wm.distance_probability([35.0], [-25.0], [100.0])
    assert wm.distance_mpc == (None, None)
    nan_map = tmp_path / "nan.fits"
    p = np.full(12 * 16**2, 1.0)
    p[7] = np.nan
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="PROB", format="D", array=p)])
    hdu.header.update({"ORDERING": "NESTED", "NSIDE": 16})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(nan_map)
    with pytest.raises(ValueError, match="non-finite values in PROB .*row 7"):
        read_skymap(nan_map)
    half = tmp_path / "half.fits"
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="PROB", format="D", array=np.ones(12 * 16**2)),
                                         fits.Column(name="DISTMU", format="D", array=np.ones(12 * 16**2))])
    hdu.header.update({"ORDERING": "NESTED", "NSIDE": 16})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(half)
    with pytest.raises(ValueError, match="DISTMU, DISTSIGMA and DISTNORM"):
        read_skymap(half)
    trunc = tmp_path / "trunc.fits.gz"
    trunc.write_bytes(gzip.compress(Path(flat2d).read_bytes())[:5000])
    with pytest.raises((ValueError, EOFError)):
        read_skymap(trunc)
    with pytest.raises(ValueError, match="tail"):
        read_skymap(flat2d, tail=1.0)
