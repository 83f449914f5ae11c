"""Sky areas as MOCs (mocpy): gravitational-wave skymaps, error circles, polygons.

A :class:`Watchmap` wraps a ``mocpy.MOC`` and, when made from a skymap, the
map's probabilities, so each alert gets both "inside the 90 % region?" and its
credible level (the smallest credible region containing it)::

    wm = Watchmap.from_skymap("S250101a.multiorder.fits", credible_level=0.9)
    inside = batch[wm.contains(batch)]
    level = wm.credible_level(inside)          # 0.0 at the peak, 0.9 at the edge

HEALPix skymaps are read in both layouts the LIGO/Virgo/KAGRA alerts use: flat
(one ``PROB`` per pixel, ``NSIDE``, ``ORDERING`` NESTED or RING) and
multi-order (``UNIQ`` and ``PROBDENSITY`` per steradian). :func:`simulated_skymap`
writes realistic test maps (no download).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import Latitude, Longitude

from .scale import _is_lazy

__all__ = ["Watchmap", "simulated_skymap", "read_skymap"]

_SR_PER_DEG2 = (np.pi / 180) ** 2


def _order_ipix(uniq):
    uniq = np.asarray(uniq, np.int64)
    order = (np.floor(np.log2(uniq) / 2) - 1).astype(np.int64)
    ipix = uniq - 4 * (np.int64(4) ** order)
    return order, ipix


def _cell_area_sr(order):
    return 4 * np.pi / (12 * 4.0 ** np.asarray(order, float))


def read_skymap(path):
    """Read a HEALPix probability skymap (flat or multi-order) as cells.

    Returns
    -------
    DataFrame
        ``uniq`` (NUNIQ cell id), ``order``, ``ipix`` (nested), ``prob`` (probability
        in the cell), ``density`` (per steradian), sorted by decreasing density,
        with ``cumprob`` (probability of denser cells, i.e. the credible level at
        which the cell enters the region).
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdu = next((h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise ValueError(f"{path}: no binary table with a HEALPix map")
        names = [n.upper() for n in hdu.columns.names]
        data = hdu.data
        hdr = hdu.header
        if "UNIQ" in names:
            uniq = np.asarray(data[hdu.columns.names[names.index("UNIQ")]], np.int64)
            order, ipix = _order_ipix(uniq)
            col = "PROBDENSITY" if "PROBDENSITY" in names else None
            if col is None:
                raise ValueError(f"{path}: multi-order map without a PROBDENSITY column")
            density = np.asarray(data[hdu.columns.names[names.index(col)]], float).ravel()
            prob = density * _cell_area_sr(order)
        else:
            if "PROB" not in names:
                raise ValueError(f"{path}: flat map without a PROB column (columns {names})")
            prob = np.asarray(data[hdu.columns.names[names.index("PROB")]], float).ravel()
            npix = len(prob)
            nside = int(hdr.get("NSIDE", int(round(np.sqrt(npix / 12)))))
            if 12 * nside * nside != npix:
                raise ValueError(f"{path}: {npix} pixels is not 12 * NSIDE^2 for NSIDE={nside}")
            order_val = int(round(np.log2(nside)))
            ordering = str(hdr.get("ORDERING", "RING")).upper()
            ipix = np.arange(npix, dtype=np.int64)
            if ordering == "RING":
                from cdshealpix.nested import lonlat_to_healpix
                from cdshealpix.ring import healpix_to_lonlat

                lon, lat = healpix_to_lonlat(ipix, nside)
                nested = np.asarray(lonlat_to_healpix(lon, lat, order_val), np.int64)
                nested_prob = np.zeros(npix)
                nested_prob[nested] = prob
                prob = nested_prob
            elif ordering != "NESTED":
                raise ValueError(f"{path}: unknown ORDERING {ordering!r}")
            order = np.full(npix, order_val, np.int64)
            uniq = 4 * (np.int64(4) ** order) + ipix
            density = prob / _cell_area_sr(order)
    total = prob.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"{path}: probabilities do not sum to a positive number")
    prob = prob / total
    density = density / total
    cells = pd.DataFrame({"uniq": uniq, "order": order, "ipix": ipix, "prob": prob, "density": density})
    cells = cells.sort_values("density", ascending=False, kind="stable").reset_index(drop=True)
    cells["cumprob"] = np.concatenate([[0.0], np.cumsum(cells["prob"].to_numpy())[:-1]])
    return cells


class Watchmap:
    """An area of sky (a MOC), optionally with a probability map behind it.

    Parameters
    ----------
    moc : mocpy.MOC
    name : str, optional
    cells : DataFrame, optional
        Skymap cells (see :func:`read_skymap`) for :meth:`credible_level`.
    """

    def __init__(self, moc, name=None, cells=None):
        self.moc = moc
        self.name = name
        self.cells = cells

    def __repr__(self):
        return f"Watchmap({self.name or 'area'}, {self.area_deg2:.2f} deg^2, max order {self.moc.max_order})"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_skymap(cls, path, credible_level=0.9, name=None):
        """The smallest region holding ``credible_level`` of a skymap's probability.

        Cells are taken in order of decreasing probability density until their
        summed probability reaches the level.
        """
        from mocpy import MOC

        if not 0 < credible_level <= 1:
            raise ValueError("credible_level must be in (0, 1]")
        cells = read_skymap(path)
        keep = cells[cells["cumprob"] < credible_level]
        moc = MOC.from_healpix_cells(keep["ipix"].to_numpy(np.uint64), keep["order"].to_numpy(np.uint8),
                                     int(cells["order"].max()))
        return cls(moc, name or f"{credible_level:.0%} region of {getattr(path, 'name', path)}", cells)

    @classmethod
    def from_circle(cls, ra, dec, radius=40 * u.arcmin, max_depth=14, name=None):
        """A cone, e.g. a Fermi-GBM or IceCube error circle (default 40 arcmin)."""
        from mocpy import MOC

        rad = radius if hasattr(radius, "unit") else radius * u.deg
        moc = MOC.from_cone(Longitude(_deg(ra) * u.deg), Latitude(_deg(dec) * u.deg), radius=rad,
                            max_depth=max_depth)
        return cls(moc, name or f"circle r={rad.to(u.arcmin):.1f}")

    @classmethod
    def from_polygon(cls, ra, dec, max_depth=14, name=None):
        """A polygon through the given vertices (deg), e.g. a survey footprint."""
        from mocpy import MOC

        moc = MOC.from_polygon(Longitude(np.asarray(ra, float) * u.deg), Latitude(np.asarray(dec, float) * u.deg),
                               max_depth=max_depth)
        return cls(moc, name or "polygon")

    # ------------------------------------------------------------------ set operations
    def union(self, *others):
        """Union with other Watchmaps."""
        return Watchmap(self.moc.union(*[o.moc for o in others]), " | ".join([self.name or "?"] +
                                                                          [o.name or "?" for o in others]))

    def intersection(self, *others):
        """Intersection with other Watchmaps."""
        return Watchmap(self.moc.intersection(*[o.moc for o in others]), " & ".join([self.name or "?"] +
                                                                                  [o.name or "?" for o in others]))

    __or__ = union
    __and__ = intersection

    @property
    def area_deg2(self):
        """Area in square degrees."""
        return float(self.moc.sky_fraction * 4 * np.pi / _SR_PER_DEG2)

    # ------------------------------------------------------------------ queries
    def contains_lonlat(self, ra, dec):
        """Boolean array: which (ra, dec) (deg) lie inside."""
        ra = np.asarray(ra, float)
        dec = np.asarray(dec, float)
        if ra.size == 0:
            return np.zeros(0, bool)
        return np.asarray(self.moc.contains_lonlat(Longitude(ra * u.deg), Latitude(dec * u.deg)), bool)

    def contains(self, batch):
        """Mask over ``batch.sources``: alerts inside the area.

        Examples
        --------
        >>> import astropy.units as u
        >>> from lsstuk_kit import load_sample
        >>> from lsstuk_kit.skyareas import Watchmap
        >>> batch = load_sample()
        >>> row = batch.sources.iloc[0]
        >>> wm = Watchmap.from_circle(row["ra"], row["dec"], 40 * u.arcmin)
        >>> bool(wm.contains(batch).iloc[0])
        True
        """
        if _is_lazy(batch):
            return batch.map_batches(self.contains)
        s = batch.sources
        return pd.Series(self.contains_lonlat(s["ra"].to_numpy(), s["dec"].to_numpy()), index=s.index,
                         name="in_" + (self.name or "area"))

    def credible_level(self, batch_or_ra, dec=None):
        """Credible level of each position in the skymap behind this Watchmap.

        0 at the most probable cell, rising to 1; an alert at level 0.63 lies in
        the 70 % region but not in the 60 % one.
        """
        if self.cells is None:
            raise ValueError("this Watchmap has no probability map (make it with from_skymap)")
        if dec is None and _is_lazy(batch_or_ra):
            return batch_or_ra.map_batches(self.credible_level)
        if dec is None:
            s = batch_or_ra.sources
            ra, dec, index = s["ra"].to_numpy(), s["dec"].to_numpy(), s.index
        else:
            ra, dec, index = np.asarray(batch_or_ra, float), np.asarray(dec, float), None
        from cdshealpix.nested import lonlat_to_healpix

        cells = self.cells
        level = np.full(len(ra), np.nan)
        lookup = pd.Series(cells["cumprob"].to_numpy(), index=cells["uniq"].to_numpy())
        for order in np.unique(cells["order"]):
            todo = np.isnan(level)
            if not todo.any():
                break
            ipix = np.asarray(lonlat_to_healpix(Longitude(ra[todo] * u.deg), Latitude(dec[todo] * u.deg),
                                                int(order)), np.int64)
            uniq = 4 * (np.int64(4) ** int(order)) + ipix
            found = lookup.reindex(uniq).to_numpy()
            sub = np.flatnonzero(todo)
            level[sub] = found
        out = level if index is None else pd.Series(level, index=index, name="credible_level")
        return out


def _deg(x):
    return float(x.to_value(u.deg)) if hasattr(x, "to_value") else float(x)


def simulated_skymap(path, ra=180.0, dec=-30.0, *, kind="banana", width_deg=3.0, length_deg=40.0, nside=128,
                     multiorder=False, seed=0, position_angle=None):
    """Write a realistic simulated gravitational-wave skymap (HEALPix FITS) and return its path.

    ``kind="banana"``: probability along a great-circle arc of ``length_deg`` with
    a Gaussian cross-section of ``width_deg`` (typical of two-detector
    localisations); ``"blob"``: a Gaussian of ``width_deg`` (three detectors).
    Flat NESTED maps (``PROB``) or, with ``multiorder``, NUNIQ maps
    (``UNIQ``, ``PROBDENSITY``) coarsened where the probability is low.
    """
    from astropy.io import fits
    from cdshealpix.nested import healpix_to_lonlat

    rng = np.random.default_rng(seed)
    order = int(round(np.log2(nside)))
    npix = 12 * nside * nside
    lon, lat = healpix_to_lonlat(np.arange(npix, dtype=np.uint64), order)
    pra, pdec = lon.to_value(u.deg), lat.to_value(u.deg)
    from .crossmatch import angular_separation

    if kind == "blob":
        d = angular_separation(pra, pdec, ra, dec) / 3600.0
        density = np.exp(-0.5 * (d / width_deg) ** 2)
    elif kind == "banana":
        pa = np.radians(rng.uniform(0, 180) if position_angle is None else position_angle)
        t = np.linspace(-length_deg / 2, length_deg / 2, 41)
        # points along a great circle through (ra, dec) at position angle pa
        r0, d0 = np.radians(ra), np.radians(dec)
        tt = np.radians(t)
        arc_dec = np.arcsin(np.sin(d0) * np.cos(tt) + np.cos(d0) * np.sin(tt) * np.cos(pa))
        arc_ra = r0 + np.arctan2(np.sin(pa) * np.sin(tt) * np.cos(d0), np.cos(tt) - np.sin(d0) * np.sin(arc_dec))
        weight = np.exp(-0.5 * (t / (length_deg / 3)) ** 2)
        density = np.zeros(npix)
        for a_ra, a_dec, w in zip(np.degrees(arc_ra) % 360, np.degrees(arc_dec), weight):
            d = angular_separation(pra, pdec, a_ra, a_dec) / 3600.0
            near = d < 5 * width_deg
            density[near] += w * np.exp(-0.5 * (d[near] / width_deg) ** 2)
    else:
        raise ValueError("kind must be 'banana' or 'blob'")
    prob = density / density.sum()
    if not multiorder:
        col = fits.Column(name="PROB", format="D", array=prob)
        hdu = fits.BinTableHDU.from_columns([col])
        hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": nside, "INDXSCHM": "IMPLICIT",
                           "OBJECT": "SIMULATED", "COORDSYS": "C"})
    else:
        # coarsen by one order wherever all four children are below 1e-7
        parent = np.arange(npix) // 4
        pprob = np.bincount(parent, weights=prob, minlength=npix // 4)
        low = np.bincount(parent, weights=(prob < 1e-7).astype(float), minlength=npix // 4) == 4
        fine = ~low[parent]
        uniq = np.concatenate([4 * 4**order + np.arange(npix)[fine],
                               4 * 4 ** (order - 1) + np.flatnonzero(low)]).astype(np.int64)
        cell_prob = np.concatenate([prob[fine], pprob[low]])
        o = np.concatenate([np.full(fine.sum(), order), np.full(low.sum(), order - 1)])
        dens = cell_prob / _cell_area_sr(o)
        hdu = fits.BinTableHDU.from_columns([fits.Column(name="UNIQ", format="K", array=uniq),
                                             fits.Column(name="PROBDENSITY", format="D", array=dens, unit="sr-1")])
        hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "OBJECT": "SIMULATED", "COORDSYS": "C"})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    return path
