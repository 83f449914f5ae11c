"""Vectorised alert filters: each returns a boolean Series over ``batch.sources``.

Combine them with ``&``, ``|`` and ``~`` and pass the result to
``batch.filter(...)`` (several masks are ANDed)::

    from lsstuk_kit import filters as F
    keep = batch.filter(F.observable(batch, max_mag=21), F.quality(batch), ~F.recurring(batch, days=100))

Every rule is evaluated per alert, at the alert's own time: history that
comes later (from another alert of the same object in the batch) is ignored.
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

    Rule: ``mag <= max_mag`` (magnitude of |psfFlux|) and ``|snr| >= min_snr``;
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


def _detections_before(batch):
    """Per alert: count, first time and times of its object's detections up to the alert."""
    s = batch.sources
    h = batch.history
    det = h[h["kind"] == "detection"]
    codes, uniq = pd.factorize(pd.concat([s["diaObjectId"], det["diaObjectId"]], ignore_index=True))
    a_code, d_code = codes[: len(s)], codes[len(s):]
    t_a, t_d = s["midpointMjdTai"].to_numpy(float), det["midpointMjdTai"].to_numpy(float)
    t0, big = _time_key_scale(t_a, t_d)
    dkey = d_code * big + (t_d - t0)
    order = np.argsort(dkey, kind="stable")
    dkey = dkey[order]
    akey = a_code * big + (t_a - t0)
    start = np.searchsorted(dkey, a_code * big)
    upto = np.searchsorted(dkey, akey + 1e-7, side="right")  # the alert's own detection included
    return dkey, start, upto, akey, a_code, big


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
    dkey, start, upto, akey, a_code, big = _detections_before(batch)
    count = np.maximum(upto - start, 0)
    first = np.where(count > 0, dkey[np.minimum(start, len(dkey) - 1)] - a_code * big, np.nan) if len(dkey) \
        else np.full(len(akey), np.nan)
    baseline = (akey - a_code * big) - first
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
    dkey, start, upto, akey, a_code, big = _detections_before(batch)
    if len(dkey) == 0:
        return _series(batch, np.zeros(len(akey), bool), "recurring")
    first = dkey[np.minimum(start, len(dkey) - 1)]
    has = start < upto
    ok = has & (first < akey - days)
    return _series(batch, ok, "recurring")


@dask_aware
def new(batch, days=100.0):
    """Alerts of objects not detected more than ``days`` before (the complement of :func:`recurring`)."""
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
    h = batch.history
    kinds = ["detection", "forced"] if include_forced else ["detection"]
    det = h[h["kind"].isin(kinds) & h["psfFlux"].notna()]
    codes, _ = pd.factorize(pd.concat([s["diaObjectId"], det["diaObjectId"]], ignore_index=True))
    if same_band:  # one integer per (object, band)
        bands, _ = pd.factorize(pd.concat([s["band"], det["band"]], ignore_index=True))
        n_bands = int(bands.max()) + 2 if len(bands) else 2
        codes, _ = pd.factorize(codes.astype(np.int64) * n_bands + (bands + 1))  # dense again
    a_code, d_code = codes[: len(s)], codes[len(s):]
    t_a = s["midpointMjdTai"].to_numpy(float)
    t_d = det["midpointMjdTai"].to_numpy(float)
    t0, big = _time_key_scale(t_a, t_d)
    dkey = d_code * big + (t_d - t0)
    order = np.argsort(dkey, kind="stable")
    dkey = dkey[order]
    mag_d = det["mag"].to_numpy(float)[order]
    akey = a_code * big + (t_a - t0)
    prev = np.searchsorted(dkey, akey - 1e-6, side="left") - 1  # strictly earlier
    valid = prev >= 0
    same = np.zeros(len(s), bool)
    same[valid] = np.floor(dkey[prev[valid]] / big) == a_code[valid]
    dt = np.where(same, (akey - dkey[np.maximum(prev, 0)]), np.nan)
    dmag = np.where(same, s["mag"].to_numpy(float) - mag_d[np.maximum(prev, 0)], np.nan)
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
    """Alerts fading faster than ``faster_than`` mag/day since the previous detection (``rate >= faster_than``)."""
    r = rates(batch, same_band)["rate"].to_numpy()
    return _series(batch, np.nan_to_num(r, nan=0.0) >= faster_than, "fading")
