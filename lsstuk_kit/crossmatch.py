"""Cross-matching on the sphere: cones, watchlists and catalogues.

Positions become unit vectors; a k-d tree (scipy) finds neighbours within the
chord ``2 sin(radius / 2)``, so matching is exact across RA 0/360 and at the
poles, and the separation is computed from the chord. Results equal astropy's
``search_around_sky`` / ``match_to_catalog_sky`` (tests check it) and come
several times faster (``benchmarks/bench_crossmatch.py``).

Radii are astropy Quantities (plain numbers are arcseconds).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from ._lazy import _is_lazy, dask_aware

__all__ = ["match_cone", "cone_mask", "match_catalog", "match_watchlist", "read_watchlist", "pairs_within",
           "nearest_within", "angular_separation"]


def _arcsec(radius):
    if radius is None:
        return None
    if hasattr(radius, "to_value"):
        return np.asarray(radius.to_value("arcsec"), float)
    return np.asarray(radius, float)


def _deg(x):
    return np.asarray(x.to_value("deg") if hasattr(x, "to_value") else x, float)


def xyz(ra_deg, dec_deg):
    """Unit vectors (n, 3) for positions in degrees."""
    ra = np.radians(np.asarray(ra_deg, float))
    dec = np.radians(np.asarray(dec_deg, float))
    c = np.cos(dec)
    return np.column_stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)])


def _chord(arcsec):
    return 2.0 * np.sin(np.radians(np.asarray(arcsec, float) / 3600.0) / 2.0)


def _sep_from_chord(d):
    return np.degrees(2.0 * np.arcsin(np.clip(np.asarray(d) / 2.0, 0, 1))) * 3600.0


def angular_separation(ra1, dec1, ra2, dec2):
    """Angular separation in arcsec (vectorised, stable at small angles: the haversine form).

    Examples
    --------
    >>> from lsstuk_kit.crossmatch import angular_separation
    >>> float(angular_separation(359.9999, 0.0, 0.0001, 0.0).round(3))
    0.72
    """
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0


def _positions(obj, ra="ra", dec="dec"):
    """(frame, ra, dec) from an AlertBatch, DataFrame or astropy Table."""
    if hasattr(obj, "sources") and hasattr(obj, "history"):
        df = obj.sources
    elif isinstance(obj, pd.DataFrame):
        df = obj
    elif hasattr(obj, "to_pandas"):
        df = obj.to_pandas()
    else:
        raise TypeError(f"expected an AlertBatch, DataFrame or astropy Table, not {type(obj).__name__}")
    for col in (ra, dec):
        if col not in df.columns:
            raise KeyError(f"no {col!r} column (columns: {list(df.columns)[:10]}...)")
    r, d = df[ra].to_numpy(float), df[dec].to_numpy(float)
    bad = ~np.isfinite(r) | ~np.isfinite(d) | (d < -90) | (d > 90)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{int(bad.sum())} rows have NaN or out-of-range coordinates (first row {first})")
    return df, r, d


_TREES: OrderedDict = OrderedDict()  # fingerprint of the positions -> k-d tree of a large catalogue
_TREES_LOCK = threading.Lock()
_TREE_CACHE_MIN = 20_000  # smaller sets are rebuilt each time (cheaper than fingerprinting them)
_TREE_CACHE_SIZE = 8  # a watchlist, bright stars, stars, CVs, galaxies... of one pipeline
_BALL_QUERY_RATIO = 64  # catalogue rows per position above which pairs_within queries a ball per position
_WEIGHTS = np.zeros(0, np.uint64)  # random odd 64-bit multipliers of _fingerprint()


def _fingerprint(*arrays) -> tuple:
    """A key that changes whenever any value of the (numeric) arrays does: for caches of catalogues.

    Each array's 8-byte words ``v`` are summed as ``sum(v[i] * w[i]) mod 2**64`` with fixed
    random odd multipliers ``w``: a change of any one value always changes the sum, and
    changes of several collide with odds of about 2**-64. It reads each array once with
    vectorised integer arithmetic, several times faster than a cryptographic hash of the
    bytes (which a chunk-by-chunk stream paid for every catalogue on every chunk).

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.crossmatch import _fingerprint
    >>> ra = np.array([10.0, 20.0, 30.0])
    >>> _fingerprint(ra) == _fingerprint(ra.copy()), _fingerprint(ra) == _fingerprint(ra + [0, 1e-12, 0])
    (True, False)
    """
    global _WEIGHTS
    key = []
    for a in arrays:
        v = np.ascontiguousarray(a)
        if v.dtype.itemsize != 8:
            v = v.astype(np.float64 if v.dtype.kind == "f" else np.int64)
        v = v.reshape(-1).view(np.uint64)
        with _TREES_LOCK:
            if len(_WEIGHTS) < len(v):
                rng = np.random.default_rng(20260814)
                _WEIGHTS = rng.integers(0, 2**63, max(len(v), 1024), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            w = _WEIGHTS[: len(v)]
        key.append((str(v.dtype), a.dtype.str if hasattr(a, "dtype") else "", len(v),
                    int(np.multiply(v, w).sum(dtype=np.uint64))))
    return tuple(key)


def _catalog_tree(ra, dec):
    """A k-d tree of a (catalogue) position set, reused while the same positions come back.

    Matching a stream chunk by chunk against the same watchlist or catalogue would
    otherwise rebuild its tree for every chunk. The cache key is a :func:`_fingerprint`
    of the coordinates themselves, so an edited catalogue never reuses a stale tree.
    """
    from scipy.spatial import cKDTree

    ra = np.ascontiguousarray(ra, float)
    dec = np.ascontiguousarray(dec, float)
    if len(ra) < _TREE_CACHE_MIN:
        return cKDTree(xyz(ra, dec))
    return _cached(_TREES, _fingerprint(ra, dec), lambda: cKDTree(xyz(ra, dec)), _TREE_CACHE_SIZE)


def _cached(cache: OrderedDict, key, make, size: int):
    """``cache[key]``, made by ``make()`` if absent; the ``size`` most recently used entries are kept.

    Thread-safe (one lock for the kit's caches); ``make`` runs outside the lock, so two threads
    may make the same entry at once, and the second one stored wins.
    """
    with _TREES_LOCK:
        got = cache.get(key)
        if got is not None:
            cache.move_to_end(key)
            return got
    got = make()
    with _TREES_LOCK:
        cache[key] = got
        while len(cache) > size:
            cache.popitem(last=False)
    return got


def pairs_within(ra1, dec1, ra2, dec2, radius_arcsec):
    """All pairs (i, j) with separation <= radius; ``radius_arcsec`` scalar or per ``j`` (second set).

    Returns
    -------
    i, j : ndarray of int
    sep : ndarray of float (arcsec)

    Examples
    --------
    >>> from lsstuk_kit.crossmatch import pairs_within
    >>> i, j, sep = pairs_within([10.0], [0.0], [10.0, 10.001, 11.0], [0.0, 0.0, 0.0], 5.0)
    >>> i.tolist(), j.tolist(), sep.round(1).tolist()
    ([0, 0], [0, 1], [0.0, 3.6])
    """
    from scipy.spatial import cKDTree

    r = np.broadcast_to(np.asarray(radius_arcsec, float), (len(ra2),))
    if len(ra1) == 0 or len(ra2) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    t2 = _catalog_tree(ra2, dec2)
    x1 = xyz(ra1, dec1)
    reach = float(_chord(r.max()))
    if len(ra2) >= _BALL_QUERY_RATIO * len(ra1):
        # a few positions against a large catalogue: one ball query each beats a dual-tree walk
        # (3x on 2,000 alerts against 345,000 galaxies)
        lists = t2.query_ball_point(x1, reach, return_sorted=False)
        counts = np.fromiter(map(len, lists), np.int64, len(lists))
        i = np.repeat(np.arange(len(ra1), dtype=np.int64), counts)
        j = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(counts.sum()))
        d = np.sqrt(((x1[i] - t2.data[j]) ** 2).sum(axis=1))
    else:
        m = cKDTree(x1).sparse_distance_matrix(t2, reach, output_type="ndarray")
        i, j, d = m["i"].astype(np.int64), m["j"].astype(np.int64), m["v"]
    sep = _sep_from_chord(d)
    keep = sep <= r[j]
    order = np.lexsort((sep[keep], j[keep], i[keep]))
    return i[keep][order], j[keep][order], sep[keep][order]


def nearest_within(ra1, dec1, ra2, dec2, radius_arcsec, workers=-1):
    """For each first-set position, the nearest second-set position within the radius.

    Returns
    -------
    idx : ndarray of int
        Index into the second set, -1 where none lies within the radius.
    sep : ndarray of float
        Separation in arcsec (NaN where none).

    Examples
    --------
    >>> from lsstuk_kit.crossmatch import nearest_within
    >>> idx, sep = nearest_within([10.0, 50.0], [0.0, 0.0], [10.0, 10.001], [0.0, 0.0], 5.0)
    >>> idx.tolist(), sep.round(2).tolist()
    ([0, -1], [0.0, nan])
    """
    n = len(ra1)
    if n == 0 or len(ra2) == 0:
        return np.full(n, -1, np.int64), np.full(n, np.nan)
    tree = _catalog_tree(ra2, dec2)
    if workers == -1 and n < 50_000:  # (threads for a small query cost more than they give)
        workers = 1
    d, k = tree.query(xyz(ra1, dec1), k=1, distance_upper_bound=float(_chord(radius_arcsec)) * (1 + 1e-12),
                      workers=workers)
    found = np.isfinite(d)
    idx = np.where(found, k, -1).astype(np.int64)
    sep = np.where(found, _sep_from_chord(np.where(found, d, 0)), np.nan)
    return idx, sep


@dask_aware
def cone_mask(batch, ra, dec, radius):
    """Boolean mask of alerts within ``radius`` of (ra, dec).

    Examples
    --------
    >>> import astropy.units as u
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.crossmatch import cone_mask
    >>> batch = load_sample()
    >>> first = batch.sources.iloc[0]
    >>> mask = cone_mask(batch, first["ra"] * u.deg, first["dec"] * u.deg, 1 * u.arcsec)
    >>> bool(mask.iloc[0]), len(mask) == len(batch)
    (True, True)
    """
    s = batch.sources
    sep = angular_separation(s["ra"].to_numpy(), s["dec"].to_numpy(), _deg(ra), _deg(dec))
    return pd.Series(sep <= _arcsec(radius), index=s.index, name="cone")


def match_cone(batch, ra, dec, radius):
    """Alerts within ``radius`` of (ra, dec), as a new AlertBatch.

    Examples
    --------
    >>> import astropy.units as u
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.crossmatch import match_cone
    >>> batch = load_sample()
    >>> row = batch.sources.iloc[0]
    >>> len(match_cone(batch, row["ra"], row["dec"], 1 * u.arcsec)) >= 1
    True
    """
    if _is_lazy(batch):
        return batch.filter(cone_mask(batch, ra, dec, radius))
    return batch[cone_mask(batch, ra, dec, radius).to_numpy()]


@dask_aware
def match_catalog(left, catalog, radius=2.0, *, nearest=True, ra="ra", dec="dec", cat_ra="ra", cat_dec="dec",
                  columns=None, suffix="_cat"):
    """Match alerts (or any table) against a catalogue.

    Parameters
    ----------
    left : AlertBatch, DataFrame or Table
    catalog : DataFrame or astropy Table
    radius : Quantity or float (arcsec)
    nearest : bool
        ``True``: the nearest catalogue row within the radius, one per matched
        left row. ``False``: every pair within the radius (many-to-many).
    columns : list, optional
        Catalogue columns to carry into the result (default: all).

    Returns
    -------
    DataFrame
        One row per match: the left index (``diaSourceId`` for a batch), the
        catalogue row number ``cat_index``, ``sep_arcsec`` and the catalogue columns.

    Examples
    --------
    >>> import pandas as pd, astropy.units as u
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.crossmatch import match_catalog
    >>> batch = load_sample()
    >>> cat = batch.sources[["ra", "dec"]].iloc[:3].reset_index(drop=True).assign(name=["a", "b", "c"])
    >>> m = match_catalog(batch, cat, 0.1 * u.arcsec)
    >>> sorted(set(m["name"]))
    ['a', 'b', 'c']
    """
    ldf, lra, ldec = _positions(left, ra, dec)
    cdf, cra, cdec = _positions(catalog, cat_ra, cat_dec)
    r = float(_arcsec(radius))
    if nearest:
        idx, sep = nearest_within(lra, ldec, cra, cdec, r)
        i = np.flatnonzero(idx >= 0)
        j, s = idx[i], sep[i]
    else:
        i, j, s = pairs_within(lra, ldec, cra, cdec, r)
    out = pd.DataFrame({"cat_index": j, "sep_arcsec": s}, index=ldf.index[i])
    cols = list(cdf.columns) if columns is None else list(columns)
    carried = cdf.iloc[j][cols].reset_index(drop=True)
    carried.columns = [c if c not in out.columns and c not in (ldf.index.name,) else c + suffix for c in cols]
    carried.index = out.index
    return pd.concat([out, carried], axis=1)


def read_watchlist(source) -> pd.DataFrame:
    """A watchlist from a CSV file or DataFrame: columns ``name``, ``ra``, ``dec`` and optional ``radius`` (arcsec).

    Column names are matched case-insensitively; ``RA``/``Dec``/``RAJ2000`` etc. are accepted.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.crossmatch import read_watchlist
    >>> read_watchlist(pd.DataFrame({"Name": ["SN 2026a"], "RA": [150.0], "Dec": [2.2]})).columns.tolist()
    ['name', 'ra', 'dec']
    """
    df = pd.read_csv(source) if isinstance(source, (str, Path)) else pd.DataFrame(source).copy()
    lower = {c.lower(): c for c in df.columns}
    ren = {}
    for want, options in {"name": ("name", "id", "object", "target"),
                          "ra": ("ra", "raj2000", "ra_deg", "radeg"),
                          "dec": ("dec", "decj2000", "dec_deg", "decdeg", "de"),
                          "radius": ("radius", "radius_arcsec", "r")}.items():
        for o in options:
            if o in lower:
                ren[lower[o]] = want
                break
    df = df.rename(columns=ren)
    missing = [c for c in ("ra", "dec") if c not in df.columns]
    if missing:
        raise ValueError(f"watchlist lacks {missing} columns (has {list(df.columns)})")
    if "name" not in df.columns:
        df["name"] = [f"target{i}" for i in range(len(df))]
    return df.reset_index(drop=True)


@dask_aware
def match_watchlist(batch, watchlist, radius=2.0, *, nearest=False):
    """Alerts within each watchlist target's radius (per-row ``radius`` column, else ``radius``).

    Parameters
    ----------
    batch : AlertBatch
    watchlist : str, path or DataFrame
        See :func:`read_watchlist`.
    radius : Quantity or float (arcsec)
        Default radius for rows without their own.
    nearest : bool
        Keep only the nearest target per alert.

    Returns
    -------
    DataFrame
        One row per (alert, target) hit, many-to-many: ``diaSourceId`` (index),
        ``diaObjectId``, ``name``, ``sep_arcsec``, ``radius_arcsec`` and the
        target's other columns.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.crossmatch import match_watchlist
    >>> batch = load_sample()
    >>> first = batch.sources.iloc[0]
    >>> mine = pd.DataFrame({"name": ["mine"], "ra": [first["ra"]], "dec": [first["dec"]], "radius": [1.0]})
    >>> hits = match_watchlist(batch, mine)
    >>> bool((hits["diaObjectId"] == first["diaObjectId"]).all()), bool((hits["sep_arcsec"] <= 1.0).all())
    (True, True)
    """
    wl = read_watchlist(watchlist)
    default = float(_arcsec(radius))
    r = wl["radius"].fillna(default).to_numpy(float) if "radius" in wl else np.full(len(wl), default)
    s = batch.sources
    i, j, sep = pairs_within(s["ra"].to_numpy(), s["dec"].to_numpy(), wl["ra"].to_numpy(float),
                             wl["dec"].to_numpy(float), r)
    hits = pd.DataFrame({"diaObjectId": s["diaObjectId"].to_numpy()[i], "name": wl["name"].take(j).to_numpy(),
                         "sep_arcsec": sep, "radius_arcsec": r[j], "target_index": j}, index=s.index[i])
    extra = wl.drop(columns=[c for c in ("name", "radius") if c in wl]).iloc[j].reset_index(drop=True)
    extra.columns = [f"target_{c}" for c in extra.columns]
    hits = pd.concat([hits, extra.set_axis(hits.index)], axis=1)
    hits.index.name = "diaSourceId"
    if nearest:
        hits = hits.sort_values("sep_arcsec", kind="stable")
        hits = hits[~hits.index.duplicated(keep="first")].sort_index(kind="stable")
    return hits
