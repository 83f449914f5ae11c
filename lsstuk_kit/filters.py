"""Vectorised alert filters: each returns a boolean Series over ``batch.sources``.

Combine them with ``&``, ``|`` and ``~`` and pass the result to
``batch.filter(...)`` (several masks are ANDed)::

    from lsstuk_kit import filters as F
    keep = batch.filter(F.observable(batch, max_mag=21), F.quality(batch), ~F.recurring(batch, days=100))

Every rule is evaluated per alert, at the alert's own time: history that
comes later (from another alert of the same object in the batch) is ignored.

The history-based rules (:func:`has_history`, :func:`recurring`, :func:`new`,
:func:`rates`, :func:`rising`, :func:`fading`) work on sorted arrays: the batch's
history is sorted by object and time, so an object's detections up to an alert
are one ``searchsorted`` away. They read only the history columns they use (the
wide ``batch.history`` table is not built for them) and share their work through
the batch's cache: ``has_history``, ``recurring`` and ``new`` one lookup, ``rising``
and ``fading`` one set of rates.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ._lazy import dask_aware

__all__ = [
    "observable", "quality", "has_history", "recurring", "new", "galactic_latitude", "galactic",
    "rates", "rising", "fading", "QUALITY_FLAGS",
]

#: Rubin diaSource flags that mark a measurement as unreliable (used where present).
QUALITY_FLAGS = (
    "pixelFlags_bad", "pixelFlags_cr", "pixelFlags_saturatedCenter", "pixelFlags_suspectCenter",
    "pixelFlags_edge", "pixelFlags_interpolatedCenter", "psfFlux_flag", "centroid_flag",
    "shape_flag", "forced_PsfFlux_flag",
)


def _series(batch, values, name):
    return pd.Series(np.asarray(values, bool), index=batch.sources.index, name=name)


@dask_aware
def observable(batch, max_mag=None, min_snr=None):
    """Alerts bright enough to follow up.

    Rule: ``mag <= max_mag`` (magnitude of ``|psfFlux|``) and ``|snr| >= min_snr``;
    a limit left as ``None`` is not applied.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> bright = batch.filter(F.observable(batch, max_mag=21))
    >>> bool((bright.sources["mag"] <= 21).all())
    True
    """
    s = batch.sources
    ok = np.ones(len(s), bool)
    if max_mag is not None:
        ok &= (s["mag"] <= max_mag).to_numpy()
    if min_snr is not None:
        ok &= (s["snr"].abs() >= min_snr).to_numpy()
    return _series(batch, ok, "observable")


@dask_aware
def quality(batch, min_reliability=0.5, allow_dipoles=False, flags=QUALITY_FLAGS):
    """Alerts whose detection looks real.

    Rule: ``reliability >= min_reliability`` (alerts without a score pass), not
    a dipole (``isDipole``) unless ``allow_dipoles``, and none of ``flags`` set
    (only the flag columns present are used; ZTF: ``nbad == 0``).

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> good = batch.filter(F.quality(batch, min_reliability=0.8))
    >>> bool((good.sources["reliability"] >= 0.8).all())
    True
    """
    s = batch.sources
    rel = s["reliability"].to_numpy(float) if "reliability" in s else np.full(len(s), np.nan)
    ok = np.isnan(rel) | (rel >= min_reliability)
    if not allow_dipoles and "isDipole" in s:
        ok &= ~s["isDipole"].fillna(False).to_numpy(bool)
    for f in flags:
        if f in s:
            ok &= ~s[f].fillna(False).to_numpy(bool)
    if "nbad" in s:
        ok &= ~(s["nbad"].fillna(0).to_numpy(float) > 0)
    return _series(batch, ok, "quality")


def _time_key_scale(t_a, t_d):
    """Offset and spacing for the sort keys ``code * big + (t - t0)``: times fall in [1, big - 1].

    ``big`` is the batch's time span (not a fixed large number), so the keys stay
    small and float64 keeps sub-second precision even for 10^6 objects.
    """
    if len(t_a) + len(t_d) == 0:
        return 0.0, 2.0
    lo = min(t.min() for t in (t_a, t_d) if len(t))
    hi = max(t.max() for t in (t_a, t_d) if len(t))
    return float(lo) - 1.0, float(hi - lo) + 2.0


def _history_column(batch, name):
    """A column of ``batch.history`` as a Series; an AlertBatch gives it without building the whole table."""
    get = getattr(batch, "_history_column", None)
    return get(name) if get is not None else batch.history[name].reset_index(drop=True)


def _history_codes(batch, name):
    """Integer codes of ``batch.history[name]`` and ``batch.sources[name]`` in one coding (see AlertBatch)."""
    get = getattr(batch, "_history_codes", None)
    if get is not None:
        return get(name)
    h, s = batch.history[name], batch.sources[name]  # any object with .sources and .history
    codes, _ = pd.factorize(pd.concat([h, s], ignore_index=True))
    codes = codes.astype(np.int64)
    codes[codes < 0] = codes.max(initial=-1) + 1  # missing values: one code, as pandas' drop_duplicates sees them
    return codes[: len(h)], codes[len(h):]


def _of_kind(batch, kinds):
    """Boolean mask of the history rows whose ``kind`` is one of ``kinds``."""
    kind = _history_column(batch, "kind")
    if isinstance(kind.dtype, pd.CategoricalDtype):  # compare the small codes, not the strings
        codes = kind.cat.codes.to_numpy()
        out = np.zeros(len(codes), bool)
        for k in kinds:
            if k in kind.cat.categories:
                out |= codes == kind.cat.categories.get_loc(k)
        return out
    return kind.isin(kinds).to_numpy(bool)


def _cached(batch, key, compute):
    """``compute()`` once per batch (kept in its cache, where it has one)."""
    cache = getattr(batch, "_cache", None)
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def _sorted_keys(code, t, t0, big):
    """Sort keys ``code * big + (t - t0)`` and the order that sorts them (``None``: already sorted).

    The history is sorted by object and time, so detections of an object come sorted: the sort
    is then skipped (a stable sort of sorted keys is the identity).
    """
    key = code * big + (t - t0)
    if len(key) < 2 or (key[1:] >= key[:-1]).all():
        return key, None
    order = np.argsort(key, kind="stable")
    return key[order], order


def _detections_before(batch):
    """Per alert: its object's detections up to the alert (the alert's own included).

    Returns ``(start, upto, t_det)``: the alert's object's detections up to its time are
    ``t_det[start:upto]``, times sorted. Computed once per batch (has_history, recurring and
    new share it).
    """
    return _cached(batch, ("detections_before",), lambda: _detections_before_uncached(batch))


def _detections_before_uncached(batch):
    s = batch.sources
    h_code, a_code = _history_codes(batch, "diaObjectId")
    det = _of_kind(batch, ("detection",))
    t_d = _history_column(batch, "midpointMjdTai").to_numpy(float)[det]
    t_a = s["midpointMjdTai"].to_numpy(float)
    t0, big = _time_key_scale(t_a, t_d)
    dkey, order = _sorted_keys(h_code[det], t_d, t0, big)
    if order is not None:
        t_d = t_d[order]
    akey = a_code * big + (t_a - t0)
    start = np.searchsorted(dkey, a_code * big)
    upto = np.searchsorted(dkey, akey + 1e-7, side="right")  # the alert's own detection included
    return start, np.maximum(upto, start), t_d


@dask_aware
def has_history(batch, min_detections=2, min_baseline_days=0.0):
    """Alerts whose object has a history.

    Rule: the object has at least ``min_detections`` detections up to and
    including this alert, spanning at least ``min_baseline_days`` days.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> m = F.has_history(batch, min_detections=3, min_baseline_days=5)
    >>> int(m.sum()) < len(batch)
    True
    """
    start, upto, t_d = _detections_before(batch)
    count = upto - start
    t_a = batch.sources["midpointMjdTai"].to_numpy(float)
    first = t_d[np.minimum(start, len(t_d) - 1)] if len(t_d) else np.full(len(t_a), np.nan)
    baseline = np.where(count > 0, t_a - first, 0.0)
    ok = (count >= min_detections) & (np.nan_to_num(baseline, nan=0.0) >= min_baseline_days)
    return _series(batch, ok, "has_history")


@dask_aware
def recurring(batch, days=100.0):
    """Alerts of objects already detected more than ``days`` before this alert.

    Rule: some detection of the object is earlier than ``alert time - days``.
    Such an object flared before: a recurring transient (a variable star, CV or
    AGN), not a new supernova. ``~recurring(...)`` (or :func:`new`) keeps the new ones.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> bool((F.recurring(batch, 30) | F.new(batch, 30)).all())
    True
    """
    start, upto, t_d = _detections_before(batch)
    t_a = batch.sources["midpointMjdTai"].to_numpy(float)
    if len(t_d) == 0:
        return _series(batch, np.zeros(len(t_a), bool), "recurring")
    first = t_d[np.minimum(start, len(t_d) - 1)]
    ok = (start < upto) & (first < t_a - days)
    return _series(batch, ok, "recurring")


@dask_aware
def new(batch, days=100.0):
    """Alerts of objects not detected more than ``days`` before (the complement of :func:`recurring`).

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> fresh = F.new(batch, days=20)
    >>> bool((fresh ^ F.recurring(batch, days=20)).all())   # each alert is one or the other
    True
    """
    return _series(batch, ~recurring(batch, days).to_numpy(), "new")


@functools.lru_cache(maxsize=1)
def _icrs_to_galactic():
    """The 3x3 rotation from ICRS to galactic unit vectors (from astropy, once)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    # the ICRS x, y and z axes point at (ra, dec) = (0, 0), (90, 0) and (0, 90)
    axes = SkyCoord([0.0, 90.0, 0.0] * u.deg, [0.0, 0.0, 90.0] * u.deg, frame="icrs").galactic
    return np.asarray(axes.cartesian.xyz.value)  # column k: the galactic unit vector of ICRS axis k


@dask_aware
def galactic(batch) -> pd.DataFrame:
    """Galactic longitude and latitude of each alert (deg): columns ``galLon``, ``galLat``.

    One fixed rotation of the unit vectors (astropy's ICRS -> Galactic matrix), vectorised.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> gal = F.galactic(load_sample())
    >>> gal.columns.tolist(), bool(gal["galLat"].between(-90, 90).all())
    (['galLon', 'galLat'], True)
    """
    from .crossmatch import xyz

    s = batch.sources
    g = _icrs_to_galactic() @ xyz(s["ra"].to_numpy(float), s["dec"].to_numpy(float)).T
    lon = np.degrees(np.arctan2(g[1], g[0])) % 360.0
    lat = np.degrees(np.arctan2(g[2], np.hypot(g[0], g[1])))  # precise at the poles too
    return pd.DataFrame({"galLon": lon, "galLat": lat}, index=s.index)


@dask_aware
def galactic_latitude(batch, min_abs_b=20.0, max_abs_b=None):
    """Alerts away from (or near) the galactic plane.

    Rule: ``|b| >= min_abs_b`` (and ``|b| <= max_abs_b`` when given). Bright
    sources at high latitude are more likely extragalactic.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> m = F.galactic_latitude(batch, 30)
    >>> bool((F.galactic(batch[m])["galLat"].abs() >= 30).all())
    True
    """
    b = galactic(batch)["galLat"].abs().to_numpy()
    ok = b >= min_abs_b
    if max_abs_b is not None:
        ok &= b <= max_abs_b
    return _series(batch, ok, "galactic_latitude")


@dask_aware
def rates(batch, same_band=True, include_forced=False) -> pd.DataFrame:
    """Magnitude change rate of each alert against the object's previous detection.

    Columns: ``rate`` (mag/day, negative when brightening), ``dt`` (days) and
    ``dmag``. With ``same_band`` the previous detection in the alert's band is
    used. NaN where there is none. Computed once per batch and options
    (:func:`rising` and :func:`fading` share it).

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> r = F.rates(load_sample())
    >>> r.columns.tolist()
    ['rate', 'dt', 'dmag']
    >>> bool((r["dt"].dropna() > 0).all())
    True
    """
    cache = getattr(batch, "_cache", None)
    key = ("rates", bool(same_band), bool(include_forced))
    if cache is not None and key in cache:
        return cache[key].copy()
    out = _rates(batch, same_band, include_forced)
    if cache is not None:
        cache[key] = out
    return out.copy()


def _rates(batch, same_band, include_forced):
    s = batch.sources
    kinds = ("detection", "forced") if include_forced else ("detection",)
    det = _of_kind(batch, kinds) & _history_column(batch, "psfFlux").notna().to_numpy()
    h_code, a_code = _history_codes(batch, "diaObjectId")
    d_code = h_code[det]
    if same_band:  # one integer per (object, band); -1 (a value no detection has) stays unmatched
        h_band, a_band = _history_codes(batch, "band")
        n_bands = int(max(h_band.max(initial=0), a_band.max(initial=0))) + 2
        d_code = d_code * n_bands + (h_band[det] + 1)
        a_code = np.where((a_code < 0) | (a_band < 0), -1, a_code * n_bands + (a_band + 1))
    t_a = s["midpointMjdTai"].to_numpy(float)
    t_d = _history_column(batch, "midpointMjdTai").to_numpy(float)[det]
    mag_d = _history_column(batch, "mag").to_numpy(float)[det]
    t0, big = _time_key_scale(t_a, t_d)
    dkey, order = _sorted_keys(d_code, t_d, t0, big)
    if order is not None:
        d_code, t_d, mag_d = d_code[order], t_d[order], mag_d[order]
    akey = a_code * big + (t_a - t0)
    prev = np.searchsorted(dkey, akey - 1e-6, side="left") - 1  # strictly earlier
    prev_ok = np.maximum(prev, 0)
    same = (prev >= 0) & (a_code >= 0)
    same[same] = d_code[prev_ok[same]] == a_code[same]
    dt = np.where(same, t_a - t_d[prev_ok] if len(t_d) else np.nan, np.nan)
    dmag = np.where(same, s["mag"].to_numpy(float) - mag_d[prev_ok] if len(t_d) else np.nan, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = dmag / dt
    return pd.DataFrame({"rate": rate, "dt": dt, "dmag": dmag}, index=s.index)


@dask_aware
def rising(batch, faster_than=0.1, same_band=True):
    """Alerts brightening faster than ``faster_than`` mag/day since the previous detection.

    Rule: ``rate <= -faster_than`` (see :func:`rates`); alerts without a previous detection fail.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> r = F.rates(batch)
    >>> bool((r.loc[F.rising(batch, 0.05), "rate"] <= -0.05).all())
    True
    """
    r = rates(batch, same_band)["rate"].to_numpy()
    return _series(batch, np.nan_to_num(r, nan=0.0) <= -faster_than, "rising")


@dask_aware
def fading(batch, faster_than=0.1, same_band=True):
    """Alerts fading faster than ``faster_than`` mag/day since the previous detection (``rate >= faster_than``).

    Examples
    --------
    >>> from lsstuk_kit import load_sample, filters as F
    >>> batch = load_sample()
    >>> mask = F.fading(batch, faster_than=0.1)
    >>> bool((F.rates(batch).loc[mask[mask].index, "rate"] >= 0.1).all())
    True
    """
    r = rates(batch, same_band)["rate"].to_numpy()
    return _series(batch, np.nan_to_num(r, nan=0.0) >= faster_than, "fading")
