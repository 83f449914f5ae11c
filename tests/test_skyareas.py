from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

import lsstuk_kit as lk
from lsstuk_kit.crossmatch import angular_separation
from lsstuk_kit.skyareas import Watchmap, read_skymap, simulated_skymap


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    d = tmp_path_factory.mktemp("maps")
    flat = simulated_skymap(d / "flat.fits", 35.0, -25.0, seed=1)
    moc = simulated_skymap(d / "moc.fits", 35.0, -25.0, seed=1, multiorder=True)
    # the same map in RING ordering
    from cdshealpix.nested import healpix_to_lonlat
    from cdshealpix.ring import lonlat_to_healpix

    with fits.open(flat) as h:
        prob = np.asarray(h[1].data["PROB"], float)
        nside = h[1].header["NSIDE"]
    lon, lat = healpix_to_lonlat(np.arange(len(prob), dtype=np.uint64), int(np.log2(nside)))
    ring_idx = np.asarray(lonlat_to_healpix(lon, lat, nside), np.int64)
    ring = np.zeros_like(prob)
    ring[ring_idx] = prob
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="PROB", format="D", array=ring)])
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": nside})
    ring_path = d / "ring.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(ring_path)
    return flat, moc, ring_path


def sample_from_map(path, n, seed=0):
    """Positions drawn from a skymap's probability (cell centres plus a small jitter)."""
    from astropy.coordinates import Latitude, Longitude  # noqa: F401
    from cdshealpix.nested import healpix_to_lonlat

    cells = read_skymap(path)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cells), n, p=cells["prob"].to_numpy())
    c = cells.iloc[pick]
    ra = np.empty(n)
    dec = np.empty(n)
    for o in np.unique(c["order"]):
        m = (c["order"] == o).to_numpy()
        lon, lat = healpix_to_lonlat(c["ipix"].to_numpy()[m].astype(np.uint64), int(o))
        ra[m], dec[m] = lon.to_value(u.deg), lat.to_value(u.deg)
    return ra, dec


def test_flat_multiorder_and_ring_agree(maps):
    flat, moc, ring = maps
    a, b, c = (Watchmap.from_skymap(p, 0.9) for p in (flat, moc, ring))
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 70, 50000), rng.uniform(-60, 10, 50000)
    ia, ib, ic = (w.contains_lonlat(ra, dec) for w in (a, b, c))
    assert ia.sum() > 1000
    assert np.array_equal(ia, ib) and np.array_equal(ia, ic)
    assert a.area_deg2 == pytest.approx(b.area_deg2) == pytest.approx(c.area_deg2)


def test_credible_region_holds_its_probability(maps):
    flat, moc, _ = maps
    for path in (flat, moc):
        cells = read_skymap(path)
        for level in (0.5, 0.9):
            inside = cells[cells["cumprob"] < level]
            assert level <= inside["prob"].sum() < level + cells["prob"].max() + 1e-12
        # events drawn from the map fall in the 90% region 90% of the time
        w = Watchmap.from_skymap(path, 0.9)
        ra, dec = sample_from_map(path, 20000, seed=5)
        frac = w.contains_lonlat(ra, dec).mean()
        assert frac == pytest.approx(0.9, abs=0.01)
        lv = w.credible_level(ra, dec)
        assert np.histogram(lv, bins=5, range=(0, 1))[0].min() > 3500  # ~uniform
        assert np.array_equal(lv < 0.9, w.contains_lonlat(ra, dec))


def test_circle_polygon_union_intersection():
    c = Watchmap.from_circle(0.1, 0.0, 40 * u.arcmin)
    rng = np.random.default_rng(2)
    ra = (0.1 + rng.uniform(-1.2, 1.2, 20000)) % 360
    dec = rng.uniform(-1.2, 1.2, 20000)
    sep = angular_separation(ra, dec, 0.1, 0.0) / 60
    inside = c.contains_lonlat(ra, dec)
    # exact up to the MOC resolution (13 arcsec cells at depth 14), across RA 0/360 too
    assert inside[sep < 39.75].all() and not inside[sep > 40.25].any()
    assert c.area_deg2 == pytest.approx(np.pi * (40 / 60) ** 2, rel=0.01)
    square = Watchmap.from_polygon([359.5, 0.5, 0.5, 359.5], [-0.5, -0.5, 0.5, 0.5])
    assert square.area_deg2 == pytest.approx(1.0, rel=0.02)
    both, either = c & square, c | square
    assert either.area_deg2 == pytest.approx(c.area_deg2 + square.area_deg2 - both.area_deg2, rel=1e-6)
    assert np.array_equal((c & square).contains_lonlat(ra, dec), inside & square.contains_lonlat(ra, dec))


def test_contains_and_credible_level_on_a_batch(tmp_path):
    batch = lk.load_sample()
    s = batch.sources
    path = simulated_skymap(tmp_path / "on_sample.fits", float(s["ra"].iloc[0]), float(s["dec"].iloc[0]),
                            kind="blob", width_deg=2.0)
    w = Watchmap.from_skymap(path, 0.9)
    mask = w.contains(batch)
    lv = w.credible_level(batch)
    assert mask.iloc[0] and lv.iloc[0] < 0.2
    assert (mask == (lv < 0.9)).all()
    assert 0 < mask.sum() < len(batch)


def test_bad_skymaps(tmp_path):
    p = tmp_path / "bad.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="X", format="D", array=np.ones(12))])]).writeto(p)
    with pytest.raises(ValueError, match="PROB"):
        Watchmap.from_skymap(p)
    with pytest.raises(ValueError, match="no probability map"):
        Watchmap.from_circle(10, 10).credible_level([10.0], [10.0])
    with pytest.raises(ValueError, match="credible_level"):
        Watchmap.from_skymap(p, 1.5)
