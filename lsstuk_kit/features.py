"""Light-curve features of alerts: the standard variability set, Bazin and Villar fits, colours, rates, periods.

:func:`extract_features` gives one row per alert, computed from the object's detections up to and
including that alert (what a broker knows when the alert arrives), or one row per object
(``per="object"``: as of its latest alert). Everything is grouped with arrays; the fits and the
variability set run in the `light-curve <https://pypi.org/project/light-curve/>`_ package
(Malanchev et al. 2021, MNRAS 502, 5147; MIT; used by the ALeRCE and Fink brokers) through its
batch call ``Extractor.many`` on an Arrow list array of all the light curves at once, so there is
no Python loop per alert; the only per-light-curve loop is the Lomb-Scargle periodogram
(``astropy.timeseries``), run only where a light curve has enough points.

Feature groups (columns):

- counts: ``nDetections`` (detections of the object so far), ``nPositive``, ``fracNegative`` (share of
  negative difference fluxes: variables go below their template, transients do not), ``nBands``,
  ``duration`` (days between first and last detection), ``age`` (days from the first detection to the
  alert);
- the standard variability set, per band ``b`` (columns ``{b}_<name>``), on the AB magnitudes of the
  positive detections: the 26 features Fink computes for ZTF (:data:`STANDARD`: amplitude, Stetson K,
  skew, kurtosis, linear fit and trend, percentiles, Anderson-Darling, ...), the same names as the
  ``light-curve`` package gives them;
- fits, per band, on the difference flux (nJy) of every detection: the Bazin et al. (2009) function
  (``{b}_bazin_fit_*``: amplitude, baseline, reference time, rise and fall time, reduced chi2) and the
  Villar et al. (2019) function (``{b}_villar_fit_*``, eight parameters), least squares (LMSDER). Reference
  times are in days relative to the alert (negative: before it);
- colours: per pair of adjacent bands (``u-g``, ``g-r``, ``r-i``, ``i-z``, ``z-y``) the difference of weighted
  mean magnitudes (``colour_gr_mean``), of the Bazin amplitudes (``colour_gr_bazin``) and of the latest
  detections in each band when they are less than a day apart (``colour_gr_latest``); and the colours
  Lasair computes from pairs of consecutive detections in different bands less than 40 minutes apart
  (``latestPairColourMag``, ``latestPairColourBands``, ``latestPairColourTemp``, ``latestPairMJD``, the same
  definitions and the same blackbody solver as :mod:`lsstuk_kit.lasair.features`, which it reuses);
- rates, per band and their mean over bands: ``{b}_riseRate`` (mag/day from the first detection to the
  brightest, positive when brightening) and ``{b}_declineRate`` (mag/day from the brightest to the last,
  positive when fading); ``riseRate`` and ``declineRate`` are the means over bands;
- the best band: ``bestBand``, the band with the most positive detections so far, and ``best_<feature>``,
  each per-band feature in that band (a band-free summary that travels between surveys: ZTF's ``g`` and ``r``,
  Rubin's six bands);
- periods: ``period`` (days) and ``periodSNR`` (the peak's S/N) of the highest peak of a Lomb-Scargle
  periodogram (VanderPlas 2018, ApJS 236, 16) of all bands together, each band's fluxes standardised (minus
  its median, over its scatter), between 0.1 and 100 days, for light curves with at least
  ``min_period_points`` detections; computed by the light-curve package in one batch call, or by
  ``astropy.timeseries.LombScargle`` (``period_method="astropy"``, the same peak, one call per light curve).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .lasair.features import _last_true, _pair_colour, _segments
from .surveys.common import AB_ZEROPOINT_NJY

__all__ = ["extract_features", "STANDARD", "FIT_FEATURES", "standard_extractor"]

BANDS = ("u", "g", "r", "i", "z", "y")
#: the standard variability set (Fink's ZTF ``lc_features``), by the names the light-curve package gives them
STANDARD = ("mean", "weighted_mean", "standard_deviation", "median", "amplitude", "beyond_1_std", "cusum",
            "inter_percentile_range_10", "kurtosis", "linear_trend", "linear_trend_sigma", "linear_trend_noise",
            "linear_fit_slope", "linear_fit_slope_sigma", "linear_fit_reduced_chi2",
            "magnitude_percentage_ratio_40_5", "magnitude_percentage_ratio_20_10", "maximum_slope",
            "median_absolute_deviation", "median_buffer_range_percentage_10", "percent_amplitude",
            "mean_variance", "anderson_darling_normal", "chi2", "skew", "stetson_K")
#: output names of each fit
FIT_FEATURES = {
    "bazin": ("bazin_fit_amplitude", "bazin_fit_baseline", "bazin_fit_reference_time", "bazin_fit_rise_time",
              "bazin_fit_fall_time", "bazin_fit_reduced_chi2"),
    "villar": ("villar_fit_amplitude", "villar_fit_baseline", "villar_fit_reference_time", "villar_fit_rise_time",
               "villar_fit_fall_time", "villar_fit_plateau_rel_amplitude", "villar_fit_plateau_duration",
               "villar_fit_reduced_chi2"),
}
_FIT_MIN = {"bazin": 6, "villar": 8}  # the package's minimum numbers of observations
_COLOUR_PAIRS = (("u", "g"), ("g", "r"), ("r", "i"), ("i", "z"), ("z", "y"))
_MIN_STANDARD = 4


def _lc():
    try:
        import light_curve
    except ImportError as exc:  # pragma: no cover - a dependency of the kit
        raise ImportError("extract_features needs the light-curve package: pip install light-curve") from exc
    return light_curve


def _standard_features(lc):
    return {
        "mean": lc.Mean(), "weighted_mean": lc.WeightedMean(), "standard_deviation": lc.StandardDeviation(),
        "median": lc.Median(), "amplitude": lc.Amplitude(), "beyond_1_std": lc.BeyondNStd(1.0),
        "cusum": lc.Cusum(), "inter_percentile_range_10": lc.InterPercentileRange(0.1),
        "kurtosis": lc.Kurtosis(), "linear_trend": lc.LinearTrend(), "linear_fit_slope": lc.LinearFit(),
        "magnitude_percentage_ratio_40_5": lc.MagnitudePercentageRatio(0.4, 0.05),
        "magnitude_percentage_ratio_20_10": lc.MagnitudePercentageRatio(0.2, 0.1),
        "maximum_slope": lc.MaximumSlope(), "median_absolute_deviation": lc.MedianAbsoluteDeviation(),
        "median_buffer_range_percentage_10": lc.MedianBufferRangePercentage(0.1),
        "percent_amplitude": lc.PercentAmplitude(), "mean_variance": lc.MeanVariance(),
        "anderson_darling_normal": lc.AndersonDarlingNormal(), "chi2": lc.ReducedChi2(),
        "skew": lc.Skew(), "stetson_K": lc.StetsonK(),
    }


def standard_extractor(features="standard"):
    """The ``light-curve`` Extractor of the variability features and the names of its outputs.

    Parameters
    ----------
    features : "standard" or list of str
        :data:`STANDARD` or a subset of it.

    Returns
    -------
    (light_curve.Extractor, list of str)
        The extractor and its output names (a multi-output feature such as the linear fit gives all its outputs).

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.features import standard_extractor
    >>> ext, names = standard_extractor(["amplitude", "skew"])
    >>> names
    ['amplitude', 'skew']
    >>> float(ext(np.arange(5.0), np.array([20.0, 19.0, 18.0, 19.0, 20.0]), np.full(5, 0.1))[0])
    1.0
    """
    lc = _lc()
    want = list(STANDARD) if isinstance(features, str) and features == "standard" else list(features)
    unknown = sorted(set(want) - set(STANDARD))
    if unknown:
        raise ValueError(f"unknown light-curve features {unknown}; choose from {list(STANDARD)}")
    objs = _standard_features(lc)
    # multi-output features: keep the ones whose outputs are wanted
    chosen, seen = [], set()
    for name in want:
        key = ("linear_trend" if name.startswith("linear_trend") else
               "linear_fit_slope" if name.startswith("linear_fit") else name)
        if key not in seen:
            seen.add(key)
            chosen.append(objs[key])
    ext = lc.Extractor(*chosen)
    return ext, [_std_name(x) for x in ext.names]


def _fit_extractor(fits):
    lc = _lc()
    objs = {"bazin": lambda: lc.BazinFit("lmsder"), "villar": lambda: lc.VillarFit("lmsder")}
    unknown = sorted(set(fits) - set(objs))
    if unknown:
        raise ValueError(f"unknown fits {unknown}; choose from ['bazin', 'villar']")
    return {f: objs[f]() for f in fits}


def _asof(code_pts, t_pts, code_q, t_q):
    """Index range [lo, hi] of the points (sorted by code, t) with each query's code, at or before its time.

    hi < lo when there are none.
    """
    n, m = len(code_pts), len(code_q)
    codes = np.concatenate([code_pts, code_q])
    ts = np.concatenate([t_pts, t_q])
    isq = np.concatenate([np.zeros(n, np.int8), np.ones(m, np.int8)])
    order = np.lexsort((isq, ts, codes))
    before = np.cumsum(isq[order] == 0)  # points at or before each position
    pos = np.empty(n + m, np.int64)
    pos[order] = np.arange(n + m)
    hi = before[pos[n:]] - 1
    lo = np.searchsorted(code_pts, code_q, side="left")
    return lo, hi


def _many(ext, t, m, e, lo, hi, min_n, n_jobs, t_offset=None):
    """Run an Extractor on the light curves [lo, hi] of (t, m, e) at once (one Arrow list array).

    NaN rows where a light curve has fewer than ``min_n`` points. ``t_offset`` (one per light curve) is taken
    from its times.
    """
    import pyarrow as pa

    out = np.full((len(lo), len(ext.names)), np.nan)
    cnt = hi - lo + 1
    use = np.flatnonzero(cnt >= min_n)
    if len(use) == 0:
        return out
    seg, row = _segments(lo[use], hi[use])
    offsets = np.concatenate([[0], np.cumsum(cnt[use])]).astype(np.int32)
    tt = t[row] if t_offset is None else t[row] - t_offset[use][seg]
    struct = pa.StructArray.from_arrays([pa.array(tt), pa.array(m[row]), pa.array(e[row])],
                                        names=["t", "m", "sigma"])
    arr = pa.ListArray.from_arrays(pa.array(offsets), struct)
    with np.errstate(all="ignore"):
        res = ext.many(arr, arrow_fields={"t": "t", "m": "m", "sigma": "sigma"}, fill_value=np.nan,
                       sorted=True, check=False, n_jobs=n_jobs)
    out[use] = np.asarray(res, float)
    return out


def _points(batch, forced):
    """Detections (and forced points) of the batch's objects, one row per exposure: object, time, band, flux."""
    s = batch.sources
    h = batch.history
    cols = ["diaObjectId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]
    kinds = ["detection"] + (["forced"] if forced else [])
    hh = h[h["kind"].astype(str).isin(kinds)] if "kind" in h else h
    frames = [s.reset_index().reindex(columns=cols).assign(_src=0), hh.reindex(columns=cols).assign(_src=1)]
    det = pd.concat(frames, ignore_index=True)
    det = det[det["diaObjectId"].notna()]
    flux = pd.to_numeric(det["psfFlux"], errors="coerce").to_numpy(float)
    err = pd.to_numeric(det["psfFluxErr"], errors="coerce").to_numpy(float)
    t = pd.to_numeric(det["midpointMjdTai"], errors="coerce").to_numpy(float)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0) & np.isfinite(t)
    det = det[ok].assign(psfFlux=flux[ok], psfFluxErr=err[ok], midpointMjdTai=t[ok],
                         band=det["band"][ok].astype(str).to_numpy())
    # the alert's own source also sits in its history: one row per (object, time, band)
    key = det["diaObjectId"].astype(str) + "|" + det["band"] + "|" + det["midpointMjdTai"].round(7).astype(str)
    return det[~key.duplicated()].drop(columns="_src").reset_index(drop=True)


def extract_features(batch, *, bands=None, features="standard", fits=("bazin", "villar"), per="alert",
                     periods=True, period_method="light-curve", min_period_points=12, forced=False,
                     n_jobs=-1) -> pd.DataFrame:
    """Light-curve features of each alert (as of that alert) or each object (as of its latest alert).

    Parameters
    ----------
    batch : AlertBatch
        Alerts with their history (``batch.history``: detections, and forced photometry when ``forced``).
    bands : list of str, optional
        Bands of the per-band features (default: the Rubin bands ``ugrizy`` present in the batch; ZTF has ``g``,
        ``r``, ``i``).
    features : "standard", list of str or None
        The variability set (:data:`STANDARD`), a subset of it, or None for none.
    fits : tuple of {"bazin", "villar"}
        Parametric fits per band (empty: none).
    per : {"alert", "object"}
        One row per alert (indexed by ``diaSourceId``, in the order of ``batch.sources``) or per object (indexed by
        ``diaObjectId``, from its latest alert).
    periods : bool
        Lomb-Scargle period of light curves with at least ``min_period_points`` detections.
    period_method : {"light-curve", "astropy"}
        The light-curve package's periodogram (direct sum on a fixed grid, all light curves in one batch call) or
        ``astropy.timeseries.LombScargle`` (one call per light curve); both give the same peak on the same grid.
    forced : bool
        Add forced photometry to the flux fits and the periodogram (Rubin; ZTF alerts carry upper limits).
    n_jobs : int
        Threads of the light-curve package (-1: all cores).

    Returns
    -------
    DataFrame
        The columns described in the module docstring, plus ``diaObjectId`` and ``midpointMjdTai`` (the alert's).
        Alerts without an object (e.g. solar-system sources) get a row of counts 0 and NaN.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.features import extract_features
    >>> batch = load_sample()
    >>> f = extract_features(batch, fits=("bazin",), periods=False)
    >>> len(f) == len(batch)
    True
    >>> bool((f["nDetections"] >= 1).sum() > 100)
    True
    >>> bool((f["r_amplitude"].dropna() >= 0).all())
    True
    """
    if per not in ("alert", "object"):
        raise ValueError(f"per must be 'alert' or 'object', not {per!r}")
    s = batch.sources
    if "midpointMjdTai" not in s or "diaObjectId" not in s:
        raise ValueError("extract_features needs an AlertBatch whose sources have diaObjectId and midpointMjdTai")
    fits = tuple(fits or ())
    fit_ext = _fit_extractor(fits)
    if features is not None:
        std_ext, std_names = standard_extractor(features)
        want = list(STANDARD) if isinstance(features, str) else list(features)
    det = _points(batch, forced=False)
    if bands is None:
        present = set(det["band"]) | set(s["band"].dropna().astype(str))
        bands = [b for b in BANDS if b in present]
    bands = list(bands)

    # the alerts (rows) and their objects, as integer codes shared with the points
    a_oid = s["diaObjectId"]
    a_t = pd.to_numeric(s["midpointMjdTai"], errors="coerce").to_numpy(float)
    rows = np.arange(len(s))
    if per == "object":
        ok = a_oid.notna().to_numpy()
        last = pd.DataFrame({"o": a_oid.astype(str).to_numpy()[ok], "t": a_t[ok], "r": rows[ok]})
        last = last.sort_values(["t", "r"], kind="stable").drop_duplicates("o", keep="last")
        rows = np.sort(last["r"].to_numpy())
    n = len(rows)
    codes, uniq = pd.factorize(pd.concat([a_oid.iloc[rows].astype(str), det["diaObjectId"].astype(str)],
                                         ignore_index=True))
    qcode = np.where(a_oid.iloc[rows].notna().to_numpy(), codes[:n], -1).astype(np.int64)
    qt = a_t[rows] + 1e-7
    out = {"diaObjectId": a_oid.iloc[rows].to_numpy(), "midpointMjdTai": a_t[rows]}
    dcode = codes[n:].astype(np.int64)
    bidx = {b: i for i, b in enumerate(bands)}
    dband = pd.Series(det["band"].to_numpy()).map(bidx).fillna(-1).to_numpy(int)
    t = det["midpointMjdTai"].to_numpy(float)
    f = det["psfFlux"].to_numpy(float)
    e = det["psfFluxErr"].to_numpy(float)

    # ---- all bands together: counts, Lasair pairs, periods
    o1 = np.lexsort((t, dcode))
    c1, t1, f1, e1, b1 = dcode[o1], t[o1], f[o1], e[o1], det["band"].to_numpy()[o1]
    lo, hi = _asof(c1, t1, qcode, qt)
    has = hi >= lo
    cnt = np.where(has, hi - lo + 1, 0)
    cpos = np.concatenate([[0], np.cumsum(f1 > 0)])
    npos = np.where(has, cpos[np.clip(hi + 1, 0, None)] - cpos[np.clip(lo, 0, len(c1))], 0)
    out["nDetections"] = cnt
    out["nPositive"] = npos
    with np.errstate(all="ignore"):
        out["fracNegative"] = np.where(cnt > 0, 1 - npos / np.maximum(cnt, 1), np.nan)
    seg, row = _segments(np.where(has, lo, 0), np.where(has, hi, -1))
    out["nBands"] = pd.DataFrame({"s": seg, "b": b1[row]}).drop_duplicates().groupby("s").size().reindex(
        np.arange(n)).fillna(0).to_numpy(int)
    first = np.where(has, t1[np.clip(lo, 0, max(len(t1) - 1, 0))] if len(t1) else np.nan, np.nan)
    lastt = np.where(has, t1[np.clip(hi, 0, None)] if len(t1) else np.nan, np.nan)
    out["duration"] = lastt - first
    out["age"] = np.where(has, a_t[rows] - first, np.nan)
    _lasair_pairs(out, c1, t1, f1, b1, lo, hi, has)
    if periods:
        out["period"], out["periodSNR"] = _periods(c1, t1, f1, e1, b1, lo, hi, min_period_points, period_method,
                                                   n_jobs)

    # ---- per band: magnitudes of the positive detections, fluxes of all detections
    ob = np.lexsort((t, dband, dcode))
    keep = dband[ob] >= 0
    ob = ob[keep]
    cb = dcode[ob] * len(bands) + dband[ob]
    tb, fb, eb = t[ob], f[ob], e[ob]
    with np.errstate(all="ignore"):
        mag = AB_ZEROPOINT_NJY - 2.5 * np.log10(np.where(fb > 0, fb, np.nan))
        magerr = 2.5 / np.log(10) * eb / np.abs(fb)
    pos = fb > 0
    cm, tm, mm, em = cb[pos], tb[pos], mag[pos], magerr[pos]
    qb = (qcode[:, None] * len(bands) + np.arange(len(bands))[None, :]).ravel()
    qb = np.where(np.repeat(qcode, len(bands)) >= 0, qb, -1)
    qtb = np.repeat(qt, len(bands))
    lo_m, hi_m = _asof(cm, tm, qb, qtb)
    lo_f, hi_f = _asof(cb, tb, qb, qtb)
    nb = len(bands)
    if features is not None:
        vals = _many(std_ext, tm, mm, em, lo_m, hi_m, _MIN_STANDARD, n_jobs)
        for j, name in enumerate(std_names):
            if name in want:
                for i, b in enumerate(bands):
                    out[f"{b}_{name}"] = vals[i::nb, j]
    for fit, ext in fit_ext.items():
        vals = _many(ext, tb, fb, eb, lo_f, hi_f, _FIT_MIN[fit], n_jobs, t_offset=qtb)  # times from the alert
        for j, name in enumerate(ext.names):
            for i, b in enumerate(bands):
                out[f"{b}_{name}"] = vals[i::nb, j]
    _rates(out, bands, cm, tm, mm, lo_m, hi_m, n)
    _colours(out, bands, tm, mm, lo_m, hi_m, n)
    _best_band(out, bands, np.clip(hi_m - lo_m + 1, 0, None).reshape(n, nb))
    df = pd.DataFrame(out, index=s.index[rows])
    if per == "object":
        df = df.set_index("diaObjectId", drop=False).rename_axis("diaObjectId").drop(columns="diaObjectId")
        df.insert(0, "diaSourceId", s.index[rows])
    return df


def _best_band(out, bands, counts):
    """``best_<feature>``: each per-band feature in the band with the most positive detections (ties: bluer)."""
    n, nb = counts.shape
    best = np.argmax(counts, axis=1) if nb else np.zeros(n, int)
    none = counts.max(axis=1) == 0 if nb else np.ones(n, bool)
    out["bestBand"] = np.where(none, None, np.array(bands, dtype=object)[best] if nb else None)
    prefix = f"{bands[0]}_" if nb else None
    names = [c[len(prefix):] for c in list(out) if prefix and c.startswith(prefix)]
    rows = np.arange(n)
    for name in names:
        stack = np.column_stack([np.asarray(out[f"{b}_{name}"], float) for b in bands])
        out[f"best_{name}"] = np.where(none, np.nan, stack[rows, best])


def _std_name(name):
    return {"reduced_chi2": "chi2"}.get(name, name)


def _lasair_pairs(out, c, t, f, b, lo, hi, has):
    """Lasair's latest pair colour: consecutive detections < 40 min apart in different bands (as of each alert)."""
    m = len(c)
    n = len(lo)
    flag = np.zeros(m, bool)
    if m > 1:
        flag[1:] = (c[1:] == c[:-1]) & (t[1:] - t[:-1] < 40.0 / 1440) & (b[1:] != b[:-1])
    last_pair = _last_true(flag)
    p = np.where(has & (m > 0), last_pair[np.clip(hi, 0, max(m - 1, 0))] if m else -1, -1)
    p = np.where((p > lo) & has, p, -1)
    ok = p > 0
    i = p[ok]
    mag, bands, temp = _pair_colour(f[i], f[i - 1], b[i], b[i - 1])
    for col, val, fill in (("latestPairColourMag", mag, np.nan), ("latestPairColourTemp", temp, np.nan),
                           ("latestPairColourBands", bands, None)):
        arr = np.full(n, fill, dtype=object if fill is None else float)
        arr[ok] = val
        out[col] = arr
    mjd = np.full(n, np.nan)
    mjd[ok] = np.where(np.isfinite(temp), t[i], np.nan)
    out["latestPairMJD"] = mjd


def _rates(out, bands, c, t, m, lo, hi, n):
    """Rise and decline rates (mag/day) per band, and their means over bands."""
    nb = len(bands)
    has = hi >= lo
    seg, row = _segments(np.where(has, lo, 0), np.where(has, hi, -1))
    rise = np.full(n * nb, np.nan)
    fall = np.full(n * nb, np.nan)
    if len(row):
        frame = pd.DataFrame({"s": seg, "m": m[row], "r": row})
        peak = frame.loc[frame.groupby("s")["m"].idxmin().to_numpy()]
        sidx = peak["s"].to_numpy()
        pr = peak["r"].to_numpy()
        f0, f1 = lo[sidx], hi[sidx]
        with np.errstate(all="ignore"):
            dtr = t[pr] - t[f0]
            dtf = t[f1] - t[pr]
            rise[sidx] = np.where(dtr > 0, (m[f0] - m[pr]) / dtr, np.nan)
            fall[sidx] = np.where(dtf > 0, (m[f1] - m[pr]) / dtf, np.nan)
    for i, b in enumerate(bands):
        out[f"{b}_riseRate"] = rise[i::nb]
        out[f"{b}_declineRate"] = fall[i::nb]
    with np.errstate(all="ignore"), _quiet():
        out["riseRate"] = np.nanmean(rise.reshape(n, nb), axis=1) if nb else np.full(n, np.nan)
        out["declineRate"] = np.nanmean(fall.reshape(n, nb), axis=1) if nb else np.full(n, np.nan)


def _colours(out, bands, t, m, lo, hi, n):
    """Colours of adjacent bands: weighted-mean, Bazin-amplitude and latest-detection differences."""
    nb = len(bands)
    has = hi >= lo
    last_t = np.where(has, t[np.clip(hi, 0, None)] if len(t) else np.nan, np.nan).reshape(n, nb)
    last_m = np.where(has, m[np.clip(hi, 0, None)] if len(m) else np.nan, np.nan).reshape(n, nb)
    for b1, b2 in _COLOUR_PAIRS:
        if b1 not in bands or b2 not in bands:
            continue
        i1, i2 = bands.index(b1), bands.index(b2)
        name = f"colour_{b1}{b2}"
        if f"{b1}_weighted_mean" in out:
            out[f"{name}_mean"] = out[f"{b1}_weighted_mean"] - out[f"{b2}_weighted_mean"]
        if f"{b1}_bazin_fit_amplitude" in out:
            with np.errstate(all="ignore"):
                a1, a2 = out[f"{b1}_bazin_fit_amplitude"], out[f"{b2}_bazin_fit_amplitude"]
                out[f"{name}_bazin"] = np.where((a1 > 0) & (a2 > 0), -2.5 * np.log10(np.abs(a1 / a2)), np.nan)
        close = np.abs(last_t[:, i1] - last_t[:, i2]) < 1.0
        out[f"{name}_latest"] = np.where(close, last_m[:, i1] - last_m[:, i2], np.nan)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


_FREQ = np.arange(1 / 100.0, 10.0, 0.002)  # cycles per day: periods 0.1-100 d on a regular grid


def _periods(c, t, f, e, b, lo, hi, min_points, method, n_jobs):
    """Lomb-Scargle period and peak S/N of each light curve [lo, hi] with >= min_points points.

    Each band of each object is standardised first (minus its median, over 1.4826 x its median absolute
    deviation), so that bands of different amplitude share one periodogram. The peak S/N is
    (P_peak - mean P) / std P, as the light-curve package defines it.
    """
    n = len(lo)
    cnt = hi - lo + 1
    use = np.flatnonzero(cnt >= min_points)
    period = np.full(n, np.nan)
    snr = np.full(n, np.nan)
    if len(use) == 0:
        return period, snr
    key = pd.DataFrame({"c": c, "b": b, "f": f})
    med = key.groupby(["c", "b"])["f"].transform("median").to_numpy(float)
    mad = key.assign(d=np.abs(f - med)).groupby(["c", "b"])["d"].transform("median").to_numpy(float) * 1.4826
    scale = np.where(mad > 0, mad, np.maximum(e, 1e-9))
    y, dy = (f - med) / scale, e / scale
    if method == "light-curve":
        ext = _lc().Periodogram(peaks=1, freqs=2 * np.pi * _FREQ, fast=False)
        vals = _many(ext, t, y, dy, lo, hi, min_points, n_jobs)
        return vals[:, 0], vals[:, 1]
    if method != "astropy":
        raise ValueError(f"period_method must be 'light-curve' or 'astropy', not {method!r}")
    from astropy.timeseries import LombScargle

    for a in use:  # one periodogram per light curve: astropy has no batch call
        sl = slice(lo[a], hi[a] + 1)
        with np.errstate(all="ignore"):
            p = LombScargle(t[sl], y[sl], dy[sl]).power(_FREQ, method="cython")
        if np.all(np.isfinite(p)) and p.std() > 0:
            k = int(np.argmax(p))
            period[a], snr[a] = 1 / _FREQ[k], (p[k] - p.mean()) / p.std()
    return period, snr
