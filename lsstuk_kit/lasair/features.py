"""Lasair's ``objects`` table, computed from a batch: one row per alert ("as of" that alert) or per object.

Column for column as Lasair's schema 11.0 (``objects.py``, fields and ``ext_fields``) defines it.
How each Lasair-computed ("origin lasair") column is made follows the feature groups of Lasair's
filter pipeline (``pipeline/filter/alert/features/`` of github.com/lsst-uk/lasair-lsst, read at
commit 308098e), re-implemented here vectorised over all alerts at once:

- counting: ``nPosDiaSources``, ``nSourcesGood`` (reliability > 0.5), ``nPosDiaSourcesNights``
  (distinct ``int(mjd + 0.5)`` with positive flux), ``n<band>Sources``, ``medianR``, ``latestR``,
  ``firstDiaSourceMjdTai``/``lastDiaSourceMjdTai`` (min/max time of the diaSources: Lasair
  overwrites the diaObject's values with these);
- latestFlux: ``<band>_psfFlux``, ``<band>_latestMJD``, ``latest_psfFlux``;
- jump: mean and standard deviation per band over the detections 10-70 days before the latest one
  (at least 5), and the largest ``|flux - mean| / sd`` over detections 0-10 days before it (the
  latest itself excluded, as Lasair's strict ``0 < delta`` does); ``jump1``/``jump2`` the two
  largest over bands (0 when none);
- pair: the latest and penultimate pairs of consecutive diaSources less than 40 minutes apart in
  different bands; colour ``-2.5 log10`` of the flux ratio (bluer over redder) and a blackbody
  temperature by Newton's method from 12 kK (extinction-corrected fluxes). As in Lasair, a pair
  whose *later* source is the bluer band gives no colour (Lasair's solver starts without a
  temperature on that branch and gives up), and the search still stops at that pair;
- sherlock: ``absMag``/``absMagMJD``, the brightest extinction-corrected magnitude minus the
  distance modulus, for Sherlock classes SN, NT and ORPHAN with ``best_distance`` (Mpc) or ``z``
  (K-corrected ``dmod(z) - 2.5 log10(1 + z)``; flat cosmology H0 = 70, Om = 0.3, OL = 0.7 with
  radiation, integrated numerically as Lasair's ``redshift.py`` does);
- bazinExpBlackBody: for the same classes and at least 5 diaSources (plus up to 4 forced points
  before the first), least-squares fits of ``A B(lambda, T) exp(k t)`` and of the Bazin rise/fall
  times a blackbody, the accepted one with the lower AIC (the acceptance limits, starting points and
  retry of Lasair's ``BBBCore``/``bazinExpBlackBody``); ``BBBPeakAbsMag`` uses Lasair's own formula
  (``+ 2.5 ln(1 + z)``);
- milkyWay: ``glat`` from the object position (NGP at 192.85948, 27.1283); ``ebv`` needs a dust
  map (see :data:`LEFT_OUT`);
- htm16: Hierarchical Triangular Mesh id at level 16 (``esutil.htm``).

The diaObject columns (origin ``lsst`` and the ``ext_fields``) come from the diaObject the alert
carried; where a batch has none (NULL columns) the position falls back to the alert's and
``nDiaSources`` to the count of diaSources. ``timestamp`` (Lasair: the wall-clock time its row was
written) is the alert's own time, in UTC.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

BANDS = ("u", "g", "r", "i", "z", "y")
#: Schlafly & Finkbeiner (2011) Table 6, R_V = 3.1: A_band / E(B-V), as Lasair uses them
EXTCOEF = {"u": 4.145, "g": 3.237, "r": 2.273, "i": 1.684, "z": 1.323, "y": 1.088}
#: band centres (micron) Lasair's colour temperatures and BBB fits use
WAVELENGTH = {"u": 0.380, "g": 0.500, "r": 0.620, "i": 0.740, "z": 0.880, "y": 1.000}
_HCK = 14.387  # h c / k in micron kK

_MAIN = (["diaObjectId", "ra", "decl", "lastDiaSourceMjdTai", "firstDiaSourceMjdTai", "latest_psfFlux"]
         + [f"{b}_{f}" for b in BANDS for f in ("psfFlux", "latestMJD", "psfFluxMean", "psfFluxMeanErr")]
         + ["medianR", "latestR", "nDiaSources", "nPosDiaSources", "nPosDiaSourcesNights", "nSourcesGood"]
         + [f"n{b}Sources" for b in BANDS]
         + ["tns_name", "absMag", "absMagMJD", "BBBRiseRate", "BBBFallRate", "BBBTemp", "BBBPeakFlux",
            "BBBPeakMJD", "BBBPeakAbsMag", "glat", "ebv", "jump1", "jump2"]
         + [f"{w}Pair{f}" for w in ("latest", "penultimate") for f in ("MJD", "ColourMag", "ColourBands",
                                                                       "ColourTemp")]
         + ["htm16", "timestamp"])
_EXT = (["validityStartMjdTai", "raErr", "decErr", "ra_dec_Cov"]
        + [f"{b}_{f}" for b in BANDS for f in ("psfFluxSigma", "psfFluxNdata", "fpFluxMean", "fpFluxMeanErr")]
        + [f"{b}_{f}" for b in BANDS for f in ("scienceFluxMean", "scienceFluxMeanErr")]
        + [f"{b}_{f}" for b in BANDS for f in ("psfFluxMin", "psfFluxMax", "psfFluxMaxSlope", "psfFluxErrMean")])
#: every column of Lasair's ``objects`` table (schema 11.0 ``fields`` then ``ext_fields``), in order
OBJECT_COLUMNS = tuple(_MAIN + _EXT)
#: the columns copied from the alert's diaObject (origin ``lsst`` and every ``ext_fields`` column)
DIAOBJECT_COLUMNS = tuple(["diaObjectId", "ra", "decl", "lastDiaSourceMjdTai", "firstDiaSourceMjdTai", "nDiaSources"]
                          + [f"{b}_{f}" for b in BANDS for f in ("psfFluxMean", "psfFluxMeanErr")] + _EXT)
_STRINGS = {"tns_name", "latestPairColourBands", "penultimatePairColourBands"}
_INTS = {"diaObjectId", "nDiaSources", "nPosDiaSources", "nPosDiaSourcesNights", "nSourcesGood", "htm16"} | {
    f"n{b}Sources" for b in BANDS} | {f"{b}_psfFluxNdata" for b in BANDS}

#: Columns of the schema this module does not compute (they are NULL), with the reason.
LEFT_OUT = {
    "ebv": "needs the Schlegel, Finkbeiner & Davis (1998) dust map (the `dustmaps` package and its data "
           "download), which the kit does not bundle: NULL unless `ebv=` gives E(B-V) (a number, an array per "
           "object or a function of ra, dec). The features that use it (absMag, pair temperatures, BBB) then "
           "take E(B-V) = 0, as Lasair does for an alert without `ebv`",
    "tns_name": "external (Lasair's TNS clone): NULL unless a TNS-like catalogue is given (`tns=`); then the "
                "name of the nearest entry within 3 arcsec (Lasair's TNS cone radius)",
}


# ---------------------------------------------------------------------------------------------- helpers
def _segments(lo, hi):
    """Flatten index ranges [lo, hi] (inclusive) into (segment number, row) arrays."""
    n = np.maximum(hi - lo + 1, 0)
    seg = np.repeat(np.arange(len(lo)), n)
    start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return seg, start + np.arange(n.sum())


def _last_true(mask):
    """For each i, the largest j <= i with mask[j], else -1."""
    return np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1)) if len(mask) else np.zeros(0, np.int64)


def _ranged_sum(x, lo, hi):
    """sum(x[lo:hi+1]) for each pair, by cumulative sums."""
    c = np.concatenate([[0], np.cumsum(x)])
    return c[hi + 1] - c[lo]


def distance_modulus(z):
    """Distance modulus for redshift ``z`` (flat-ish LCDM, H0=70, Om=0.3, OL=0.7, radiation), vectorised.

    The same cosmology and midpoint integration (1000 steps) as Lasair's ``redshift.py``.

    Examples
    --------
    >>> from lsstuk_kit.lasair.features import distance_modulus
    >>> round(float(distance_modulus(0.1)), 2)
    38.33
    """
    scalar = np.ndim(z) == 0
    z = np.atleast_1d(np.asarray(z, float))
    h0, wm, wv = 70.0, 0.3, 0.7
    wr = 4.165e-5 / (h0 / 100) ** 2
    wk = 1.0 - wm - wv - wr
    az = 1.0 / (1.0 + z)
    a = az[:, None] + (1.0 - az[:, None]) * (np.arange(1000) + 0.5)[None, :] / 1000
    adot = np.sqrt(wk + wm / a + wr / a**2 + wv * a**2)
    dcmr = (1.0 - az) * np.sum(1.0 / (a * adot), axis=1) / 1000
    x = np.sqrt(abs(wk)) * dcmr
    y = -x**2 if wk < 0 else x**2
    ratio = np.where(x > 0.1, np.sinh(x) / np.where(x > 0, x, 1) if wk > 0 else np.sin(x) / np.where(x > 0, x, 1),
                     1 + y / 6.0 + y**2 / 120.0)
    dl = az * ratio * dcmr / az**2 * (299792.458 / h0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dmod = 5 * np.log10(dl * 1e6) - 5
    return float(dmod[0]) if scalar else dmod


def galactic_latitude(ra, dec):
    """Galactic latitude (deg) of (ra, dec) in degrees, with Lasair's north galactic pole (192.85948, 27.1283).

    Parameters
    ----------
    ra, dec : float or array-like
        Equatorial coordinates (ICRS), in degrees.

    Returns
    -------
    numpy.ndarray
        Galactic latitude ``b`` in degrees, in [-90, 90], the shape of the broadcast inputs.

    Examples
    --------
    >>> from lsstuk_kit.lasair.features import galactic_latitude
    >>> galactic_latitude([192.85948, 266.405], [27.1283, -28.936]).round(3)   # the pole; the galactic centre
    array([90., 0.])
    """
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    dn, an = math.radians(27.1283), math.radians(192.85948)
    s = math.sin(dn) * np.sin(dec) + math.cos(dn) * np.cos(dec) * np.cos(ra - an)
    return np.degrees(np.arcsin(np.clip(s, -1, 1)))


def htm16(ra, dec):
    """HTM level-16 ids (``esutil.htm``); ``None`` when esutil is not installed.

    Parameters
    ----------
    ra, dec : float or array-like
        Equatorial coordinates, in degrees, of one shape.

    Returns
    -------
    numpy.ndarray, numpy.int64 or None
        One int64 trixel id per position, in the positions' shape (one id for scalars; level-16
        ids lie in ``[8 * 4**16, 16 * 4**16)``), as Lasair's ``htm16`` column; ``None`` when
        esutil is not installed.

    Examples
    --------
    >>> from lsstuk_kit.lasair.features import htm16
    >>> ids = htm16([10.0, 10.0, 200.0], [-5.0, -5.0, 30.0])
    >>> ids.dtype, len(ids)
    (dtype('int64'), 3)
    >>> bool(ids[0] == ids[1]), bool(ids[0] == ids[2])   # same position, same trixel
    (True, False)
    >>> bool(((ids >= 8 * 4**16) & (ids < 16 * 4**16)).all())
    True
    >>> bool(htm16(10.0, -5.0) == ids[0])                 # one position
    True
    >>> htm16([10.0, float("nan")], [0.0, 0.0])
    Traceback (most recent call last):
    ...
    ValueError: 1 positions are not finite or have |dec| > 90 (first at index (1,))
    """
    try:
        import esutil.htm
    except ImportError:  # pragma: no cover - esutil is a dependency of the kit's spatial module
        return None
    r, d = np.asarray(ra, float), np.asarray(dec, float)
    if r.shape != d.shape:
        raise ValueError(f"ra and dec differ in shape ({r.shape} and {d.shape})")
    bad = ~(np.isfinite(r) & np.isfinite(d) & (np.abs(d) <= 90))
    if bad.any():  # (esutil gives such positions the first trixel's id, silently)
        first = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), bad.shape) if bad.ndim else ()
        first = tuple(int(i) for i in first)
        raise ValueError(f"{int(bad.sum())} positions are not finite or have |dec| > 90 (first at index {first})")
    if r.size == 0:
        return np.zeros(r.shape, np.int64)
    ids = np.asarray(esutil.htm.HTM(16).lookup_id(r.reshape(-1), d.reshape(-1)), np.int64).reshape(r.shape)
    return ids[()] if ids.ndim == 0 else ids


def _htm16_or_missing(ra, dec):
    """:func:`htm16` of each row as a nullable ``Int64`` array, ``<NA>`` where there is none.

    None: the position is unusable (NaN, or |dec| > 90) or esutil is absent.
    """
    r, d = np.asarray(ra, float), np.asarray(dec, float)
    ok = np.isfinite(r) & np.isfinite(d) & (np.abs(d) <= 90)
    out = pd.array(np.zeros(len(r), np.int64), dtype="Int64")
    ids = htm16(r[ok], d[ok])
    if ids is None:
        ok[:] = False
    else:
        out[ok] = ids
    out[~ok] = pd.NA
    return out


def _blackbody(wl, t):
    return wl**-3.0 / (np.exp(_HCK / (wl * t)) - 1)


def _pair_colour(f_late, f_early, b_late, b_early):
    """Colour and temperature of pairs as Lasair's ``compute_revisit``: (mag, bands, temp), NaN/None where none."""
    n = len(f_late)
    idx = {b: i for i, b in enumerate(BANDS)}
    i_late = np.array([idx.get(b, -1) for b in b_late], int)
    i_early = np.array([idx.get(b, -1) for b in b_early], int)
    wl = np.array([WAVELENGTH[b] for b in BANDS])
    # only the branch where the earlier source is the bluer band has a starting temperature in Lasair
    ok = (i_early < i_late) & (i_early >= 0)
    with np.errstate(all="ignore"):
        rat = f_early / f_late
        ok &= rat > 0
        mag = np.where(ok, -2.5 * np.log10(np.where(ok, rat, 1.0)), np.nan)
        w1, w2 = wl[np.clip(i_early, 0, 5)], wl[np.clip(i_late, 0, 5)]
        temp = np.full(n, 12.0)
        done = np.zeros(n, bool)
        active = ok.copy()
        for _ in range(50):
            if not active.any():
                break
            t = temp
            q1, q2 = _HCK / (w1 * t), _HCK / (w2 * t)
            overflow = (q1 > 709.78) | (q2 > 709.78)  # math.exp raises there: Lasair gives up
            e1, e2 = np.exp(np.minimum(q1, 700)), np.exp(np.minimum(q2, 700))
            fr = w1**-3 / (e1 - 1) - rat * w2**-3 / (e2 - 1)
            dfr = w1**-3 * (q1 / t) * e1 / (e1 - 1) ** 2 - rat * w2**-3 * (q2 / t) * e2 / (e2 - 1) ** 2
            dt = fr / dfr
            bad = active & (overflow | ~np.isfinite(dt))
            active &= ~bad
            temp = np.where(active, t - dt, t)
            conv = active & (np.abs(dt) < 0.001)
            done |= conv
            active &= ~conv
            active &= ~(temp < 0)
    mag = np.where(done, mag, np.nan)
    bands = np.where(done, np.array([f"{BANDS[a]}-{BANDS[b]}" if a >= 0 and b >= 0 else "" for a, b in
                                     zip(i_early, i_late)], dtype=object), None)
    return mag, bands, np.where(done, temp, np.nan)


# ---------------------------------------------------------------------------------------------- BBB fits
def _bbb_fit(t, wl, f, *, z=None):
    """Lasair's Bazin/exponential x blackbody fit of one light curve: a dict of the BBB columns or None."""
    from scipy.optimize import leastsq

    t, wl, f = (np.asarray(v, float) for v in (t, wl, f))
    sst = np.sum((f - f.mean()) ** 2)
    npoint = len(t)
    wls = np.array(list(WAVELENGTH.values()))

    def bazin(p, tt, ll):
        a, temp, t0, kr, kf = p
        tau = tt - t0
        return a * _blackbody(ll, temp) * np.exp(-kf * tau) / (1 + np.exp(-kr * tau))

    def expit(p, tt, ll):
        a, temp, k = p
        return a * _blackbody(ll, temp) * np.exp(k * tt)

    def fit(model, p0, nfree, rsq_max):
        with np.errstate(all="ignore"):
            sol, cov, info, _, _ = leastsq(lambda p: f - model(p, t, wl), p0, full_output=True, maxfev=500)
            if info["nfev"] >= 500:
                return None
            sse = np.sum((f - model(sol, t, wl)) ** 2)
            if not (sse > 0 and np.isfinite(sse)) or sst <= 0:
                return None
            aic = 100 + npoint * math.log(sse / npoint) + 2 * nfree
        if sse / sst > rsq_max:
            return None
        return sol, cov, aic

    out = None
    for a0, t00 in ((100, 6), (1000, -5)):
        kr0, kf0 = (0.1, 0.01) if a0 == 100 else (0.01, 0.01)
        e = fit(expit, [a0, 4, kr0 - kf0], 3, 0.35)
        if e is not None:
            (a, temp, k), cov, aic = e
            err = np.sqrt(np.diag(cov))[2] * 10 if cov is not None else np.inf
            if not (0.0 <= k <= 2.0) or err > k:
                e = None
            else:
                e = {"T": temp, "k": k, "AIC": aic}
        b = fit(bazin, [a0, 4, t00, kr0, kf0], 5, 0.25)
        if b is not None:
            (a, temp, t0, kr, kf), _, aic = b
            if kr < 0 or kf < 0 or kr > 15 or kf > 2:
                b = None
            else:
                b = {"T": temp, "k": kr, "kf": kf, "AIC": aic}
                with np.errstate(all="ignore"):
                    maxwl = wls[np.argmax(_blackbody(wls, temp))]
                    if kr != kf and kf > 0 and kf / (kr - kf) > 0:
                        peak_t = t0 - math.log(kf / (kr - kf)) / kr
                        b["peakTime"] = peak_t
                        b["peakValue"] = float(bazin([a, temp, t0, kr, kf], peak_t, maxwl))
        out = (e if b is None or (e is not None and e["AIC"] < b["AIC"]) else b) if (e or b) else None
        if out:
            break
    if not out:
        return None
    res = {"BBBTemp": out["T"], "BBBRiseRate": out["k"], "BBBFallRate": out.get("kf"),
           "BBBPeakFlux": out.get("peakValue"), "BBBPeakMJD": None, "BBBPeakAbsMag": None}
    if "kf" in out:  # a Bazin fit: Lasair adds the discovery MJD to the peak time (0 when it has none)
        res["_peak_rel"] = out.get("peakTime", 0.0)
    peak = res["BBBPeakFlux"]
    if z and peak is not None and peak > 0:
        res["BBBPeakAbsMag"] = 31.4 - 2.5 * math.log10(peak) - distance_modulus(float(z)) + 2.5 * math.log(1 + z)
    return res


# ---------------------------------------------------------------------------------------------- the table
def _ebv_per_alert(ebv, ra, dec):
    if ebv is None:
        return None
    if callable(ebv):
        return np.asarray(ebv(ra, dec), float)
    return np.broadcast_to(np.asarray(ebv, float), ra.shape).astype(float)


def _diaobject_rows(batch, alert_pos):
    """The diaObject row each alert carried (NaN rows where none), aligned with ``alert_pos`` (batch positions)."""
    cols = [c for c in DIAOBJECT_COLUMNS if c != "decl"] + ["dec"]
    rows = batch.alert_objects().iloc[np.asarray(alert_pos, np.int64)].reset_index(drop=True)
    return rows.reindex(columns=[c for c in cols if c in rows.columns])


def objects_per_alert(batch, *, sherlock=None, tns_hits=None, ebv=None, bbb=True) -> pd.DataFrame:
    """Lasair's ``objects`` row of each alert's object, as of that alert, one row per alert in time order.

    Parameters
    ----------
    batch : AlertBatch
    sherlock : DataFrame, optional
        A ``sherlock_classifications`` table (see :func:`lsstuk_kit.lasair.sherlock_classifications`); its
        classification and distance drive ``absMag`` and the BBB fits. Without it those are NULL.
    tns_hits : DataFrame, optional
        ``diaObjectId``, ``name``, ``arcsec`` of TNS matches (fills ``tns_name``).
    ebv : float, array or callable, optional
        E(B-V) per alert position; see :data:`LEFT_OUT`.
    bbb : bool
        Run the Bazin/exponential blackbody fits (one small least-squares fit per eligible alert).

    Returns
    -------
    DataFrame
        The columns of :data:`OBJECT_COLUMNS` plus ``diaSourceId`` (the alert), ``alertMjdTai`` (its time) and
        ``alertRow`` (its position in the batch). Alerts without a diaObject (solar-system sources, which
        Lasair keeps out of ``objects``) are left out.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lasair import objects_per_alert
    >>> per = objects_per_alert(load_sample(), bbb=False)
    >>> bool(per["alertMjdTai"].is_monotonic_increasing)
    True
    >>> bool((per["lastDiaSourceMjdTai"] <= per["alertMjdTai"]).all())
    True
    """
    s = batch.sources
    oid = pd.to_numeric(s["diaObjectId"], errors="coerce").to_numpy()
    keep = np.flatnonzero(np.isfinite(oid) & (oid != 0))
    src = s.iloc[keep]
    t_alert = src["midpointMjdTai"].to_numpy(float)
    order = np.lexsort((src.index.to_numpy(), t_alert))
    pos = keep[order]  # batch positions of the alerts, in time order
    src = src.iloc[order]
    n = len(src)
    a_oid = src["diaObjectId"].to_numpy(np.int64)
    a_t = src["midpointMjdTai"].to_numpy(float)

    # every detection of these objects: history detections and the alerts' own sources
    cols = ["diaObjectId", "diaSourceId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "reliability"]
    h = batch.history
    det = h[h["kind"].astype(str) == "detection"] if "kind" in h else h.iloc[:0]
    det = pd.concat([src.reset_index().reindex(columns=cols), det.reindex(columns=cols)], ignore_index=True)
    det = det[det["diaObjectId"].isin(a_oid) & det["psfFlux"].notna()]
    det = det.drop_duplicates("diaSourceId", keep="first") if det["diaSourceId"].notna().all() else det
    det = det.sort_values(["diaObjectId", "midpointMjdTai"], kind="stable").reset_index(drop=True)
    d_oid = det["diaObjectId"].to_numpy(np.int64)
    d_t = det["midpointMjdTai"].to_numpy(float)
    d_f = det["psfFlux"].to_numpy(float)
    d_r = det["reliability"].to_numpy(float)
    d_b = det["band"].astype(str).to_numpy()
    m = len(det)

    # the last detection at or before each alert (k), and the first of its object (lo)
    look = pd.DataFrame({"t": a_t, "diaObjectId": a_oid, "a": np.arange(n)}).sort_values("t", kind="stable")
    dd = pd.DataFrame({"t": d_t, "diaObjectId": d_oid, "k": np.arange(m)}).sort_values("t", kind="stable")
    k = pd.merge_asof(look, dd, on="t", by="diaObjectId", direction="backward").sort_values("a")["k"]
    has = k.notna().to_numpy()
    k = k.fillna(0).to_numpy(np.int64)
    first_of = np.searchsorted(d_oid, a_oid, side="left") if m else np.zeros(n, np.int64)
    lo = np.where(has, first_of, 0)
    hi = np.where(has, k, -1)

    out = {}
    dia = _diaobject_rows(batch, pos)
    ra = dia["ra"].to_numpy(float) if "ra" in dia else np.full(n, np.nan)
    dec = dia["dec"].to_numpy(float) if "dec" in dia else np.full(n, np.nan)
    ra = np.where(np.isfinite(ra), ra, src["ra"].to_numpy(float))
    dec = np.where(np.isfinite(dec), dec, src["dec"].to_numpy(float))
    for c in DIAOBJECT_COLUMNS:
        out[c] = dia[c].to_numpy() if c in dia else np.full(n, np.nan)
    out["diaObjectId"], out["ra"], out["decl"] = a_oid, ra, dec

    cnt = np.where(has, hi - lo + 1, 0)
    pos_f = d_f > 0
    out["nPosDiaSources"] = np.where(has, _ranged_sum(pos_f, lo, hi), 0)
    out["nSourcesGood"] = np.where(has, _ranged_sum(np.nan_to_num(d_r) > 0.5, lo, hi), 0)
    night = np.floor(d_t + 0.5).astype(np.int64)
    new_night = pos_f.copy()
    new_night[pos_f] = ~pd.DataFrame({"o": d_oid[pos_f], "n": night[pos_f]}).duplicated().to_numpy()
    out["nPosDiaSourcesNights"] = np.where(has, _ranged_sum(new_night, lo, hi), 0)
    nd = np.asarray(out["nDiaSources"], float)
    out["nDiaSources"] = np.where(np.isfinite(nd), nd, cnt)
    kk = np.clip(hi, 0, None)
    out["firstDiaSourceMjdTai"] = np.where(has, d_t[np.clip(lo, 0, max(m - 1, 0))] if m else np.nan, np.nan)
    out["lastDiaSourceMjdTai"] = np.where(has, d_t[kk] if m else np.nan, np.nan)
    out["latest_psfFlux"] = np.where(has, d_f[kk] if m else np.nan, np.nan)
    out["latestR"] = np.where(has, d_r[kk] if m else np.nan, np.nan)
    for b in BANDS:
        isb = d_b == b
        out[f"n{b}Sources"] = np.where(has, _ranged_sum(isb, lo, hi), 0)
        j = _last_true(isb)[kk] if m else np.full(n, -1)
        ok = has & (j >= lo)
        out[f"{b}_psfFlux"] = np.where(ok, d_f[np.clip(j, 0, None)] if m else np.nan, np.nan)
        out[f"{b}_latestMJD"] = np.where(ok, d_t[np.clip(j, 0, None)] if m else np.nan, np.nan)

    # medianR and jump over each alert's history segment
    seg, row = _segments(lo, hi)
    out["medianR"] = pd.Series(d_r[row]).groupby(seg).median().reindex(np.arange(n)).to_numpy()
    delta = d_t[kk][seg] - d_t[row]  # time before the latest detection
    bi = pd.Series(d_b[row]).map({b: i for i, b in enumerate(BANDS)}).fillna(-1).to_numpy(int)
    key = seg * 6 + bi
    samp = (delta > 10) & (delta < 70) & (bi >= 0)
    nn = np.bincount(key[samp], minlength=6 * n).astype(float)
    s1 = np.bincount(key[samp], d_f[row][samp], minlength=6 * n)
    s2 = np.bincount(key[samp], d_f[row][samp] ** 2, minlength=6 * n)
    with np.errstate(all="ignore"):
        mean = s1 / nn
        sd = np.sqrt((s2 - nn * mean**2) / (nn - 1))
        test = (delta > 0) & (delta < 10) & (bi >= 0)
        test &= nn[key] >= 5
        jmp = np.abs(d_f[row] - mean[key]) / sd[key]
    best = np.zeros(6 * n)
    np.maximum.at(best, key[test], np.nan_to_num(jmp[test], nan=0.0))
    jumps = np.sort(best.reshape(n, 6), axis=1)
    out["jump1"], out["jump2"] = jumps[:, -1], jumps[:, -2]

    # extinction per alert (0 without a dust map) and extinction-corrected fluxes of the segment rows
    e = _ebv_per_alert(ebv, ra, dec)
    out["ebv"] = e if e is not None else np.full(n, np.nan)
    e0 = np.nan_to_num(e) if e is not None else np.zeros(n)
    ext = pd.Series(d_b).map(EXTCOEF).fillna(0).to_numpy(float)

    # pairs: consecutive detections < 40 min apart in different bands, per object
    same = np.zeros(m, bool)
    same[1:] = d_oid[1:] == d_oid[:-1]
    flag = same.copy()
    flag[1:] &= (d_t[1:] - d_t[:-1] < 40.0 / 1440) & (d_b[1:] != d_b[:-1])
    last_pair = _last_true(flag)
    p1 = np.where(has & (m > 0), last_pair[kk] if m else -1, -1)
    p1 = np.where(p1 >= lo, p1, -1)
    p2 = np.where(p1 > 0, last_pair[np.clip(p1 - 1, 0, None)] if m else -1, -1)
    p2 = np.where((p1 > 0) & (p2 >= lo), p2, -1)
    for name, p in (("latest", p1), ("penultimate", p2)):
        ok = p > 0
        i = p[ok]
        corr = 10 ** (e0[ok][:, None] * np.stack([ext[i], ext[i - 1]], 1) / 2.5)
        mag, bands, temp = _pair_colour(d_f[i] * corr[:, 0], d_f[i - 1] * corr[:, 1], d_b[i], d_b[i - 1])
        mjd = np.full(n, np.nan)
        mjd[ok] = np.where(np.isfinite(temp), d_t[i], np.nan)
        out[f"{name}PairMJD"] = mjd
        for col, val, fill in (("ColourMag", mag, np.nan), ("ColourTemp", temp, np.nan), ("ColourBands", bands, None)):
            arr = np.full(n, fill, dtype=object if fill is None else float)
            arr[ok] = val
            out[f"{name}Pair{col}"] = arr

    # absMag from the Sherlock context, and the BBB fits
    for c in ("absMag", "absMagMJD", "BBBRiseRate", "BBBFallRate", "BBBTemp", "BBBPeakFlux", "BBBPeakMJD",
              "BBBPeakAbsMag"):
        out[c] = np.full(n, np.nan)
    if sherlock is not None and len(sherlock) and n:
        sh = sherlock.drop_duplicates("diaObjectId").set_index("diaObjectId").reindex(a_oid)
        cls = sh["classification"].astype(object).to_numpy()
        eligible = np.isin(cls, ["SN", "NT", "ORPHAN"])
        best = pd.to_numeric(sh.get("best_distance"), errors="coerce").to_numpy(float) if "best_distance" in sh \
            else np.full(n, np.nan)
        zz = pd.to_numeric(sh.get("z"), errors="coerce").to_numpy(float) if "z" in sh else np.full(n, np.nan)
        with np.errstate(all="ignore"):
            dm = np.where(np.isfinite(best), 5 * np.log10(best * 1e6) - 5, np.nan)
            use_z = ~np.isfinite(best) & np.isfinite(zz) & (zz != 0)
            if use_z.any():
                dm[use_z] = distance_modulus(zz[use_z]) - 2.5 * np.log10(1 + zz[use_z])
            dm = np.where(eligible, dm, np.nan)
            ecf = d_f[row] * 10 ** (e0[seg] * ext[row] / 2.5)
            ecmag = np.where(ecf > 0, 31.4 - 2.5 * np.log10(np.where(ecf > 0, ecf, 1)), np.inf)
        # first brightest point of each segment
        frame = pd.DataFrame({"seg": seg, "mag": ecmag, "t": d_t[row]})
        frame = frame[np.isfinite(frame["mag"])].sort_values(["seg", "mag"], kind="stable")
        peak = frame.drop_duplicates("seg").set_index("seg").reindex(np.arange(n))
        ok = np.isfinite(dm)
        out["absMag"] = np.where(ok, peak["mag"].to_numpy(float) - dm, np.nan)
        out["absMagMJD"] = np.where(ok & np.isfinite(out["absMag"]), peak["t"].to_numpy(float), np.nan)
        if bbb:
            _fill_bbb(out, batch, det, lo, hi, cnt, eligible, zz, e0, a_t)

    out["glat"] = galactic_latitude(ra, dec)
    out["htm16"] = _htm16_or_missing(ra, dec)
    out["tns_name"] = np.full(n, None, dtype=object)
    if tns_hits is not None and len(tns_hits):
        near = tns_hits.sort_values("arcsec", kind="stable").drop_duplicates("diaObjectId")
        out["tns_name"] = near.set_index("diaObjectId")["name"].reindex(a_oid).astype(object).where(
            lambda x: x.notna(), None).to_numpy()
    from astropy.time import Time

    out["timestamp"] = (pd.to_datetime(Time(a_t, format="mjd", scale="tai").utc.to_datetime()) if n
                        else pd.to_datetime([]))
    df = pd.DataFrame({c: out[c] for c in OBJECT_COLUMNS})
    for c in _INTS:
        df[c] = pd.to_numeric(df[c], errors="coerce").round().astype("Int64")
    for c in _STRINGS:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    for c in OBJECT_COLUMNS:
        if c not in _INTS and c not in _STRINGS and c != "timestamp":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return pd.concat([df, pd.DataFrame({"diaSourceId": src.index.to_numpy(), "alertMjdTai": a_t, "alertRow": pos})],
                     axis=1)


def _fill_bbb(out, batch, det, lo, hi, cnt, eligible, zz, e0, a_t):
    """Run the BBB fit for each eligible alert (at least 5 diaSources and a Sherlock SN/NT/ORPHAN class)."""
    h = batch.history
    forced = h[h["kind"].astype(str) == "forced"] if "kind" in h else h.iloc[:0]
    forced = forced[forced["psfFlux"].notna()].sort_values(["diaObjectId", "midpointMjdTai"], kind="stable")
    f_groups = {o: g for o, g in forced.groupby("diaObjectId", sort=False)} if len(forced) else {}
    t, f, b = (det[c].to_numpy() for c in ("midpointMjdTai", "psfFlux", "band"))
    oid = det["diaObjectId"].to_numpy()
    for a in np.flatnonzero(eligible & (cnt >= 5)):
        sl = slice(lo[a], hi[a] + 1)
        tt, ff, bb = t[sl].astype(float), f[sl].astype(float), b[sl].astype(str)
        t0 = tt[0]
        fo = f_groups.get(oid[lo[a]])
        if fo is not None:
            fo = fo[fo["midpointMjdTai"].to_numpy() < t0].tail(4)
            tt = np.concatenate([fo["midpointMjdTai"].to_numpy(float), tt])
            ff = np.concatenate([fo["psfFlux"].to_numpy(float), ff])
            bb = np.concatenate([fo["band"].astype(str).to_numpy(), bb])
        ff = ff * 10 ** (e0[a] * np.array([EXTCOEF.get(x, 0.0) for x in bb]) / 2.5)
        wl = np.array([WAVELENGTH.get(x, np.nan) for x in bb])
        z = zz[a] if np.isfinite(zz[a]) and zz[a] else None
        res = _bbb_fit(tt - t0, wl, ff, z=z)
        if not res:
            continue
        for c in ("BBBRiseRate", "BBBFallRate", "BBBTemp", "BBBPeakFlux", "BBBPeakAbsMag"):
            out[c][a] = np.nan if res[c] is None else res[c]
        if "_peak_rel" in res and np.isfinite(res["_peak_rel"]):
            out["BBBPeakMJD"][a] = res["_peak_rel"] + t0


def lasair_objects(batch, *, as_of=None, sherlock=None, tns_hits=None, ebv=None, bbb=True) -> pd.DataFrame:
    """Lasair's ``objects`` table for a batch: one row per object, as of its latest alert (or ``as_of``).

    Parameters
    ----------
    batch : AlertBatch
    as_of : float, optional
        MJD (TAI): each object as of its latest alert at or before this time (objects with no alert by
        then are left out). Default: after the whole batch.
    sherlock, tns_hits, ebv, bbb
        See :func:`objects_per_alert`.

    Returns
    -------
    DataFrame
        Indexed by ``diaObjectId``; the columns of :data:`OBJECT_COLUMNS` (``diaObjectId`` as the index)
        with Lasair's names and units (fluxes in nJy, times MJD TAI); the columns of :data:`LEFT_OUT` are NULL.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lasair import lasair_objects
    >>> batch = load_sample()
    >>> obj = lasair_objects(batch, bbb=False)
    >>> len(obj) == batch.sources["diaObjectId"].nunique()
    True
    >>> int((obj["g_psfFlux"] > 200000).sum()) >= 0
    True
    """
    per = objects_per_alert(batch, sherlock=sherlock, tns_hits=tns_hits, ebv=ebv, bbb=bbb)
    if as_of is not None:
        per = per[per["alertMjdTai"] <= float(as_of)]
    last = per.drop_duplicates("diaObjectId", keep="last")
    return last.drop(columns=["diaSourceId", "alertMjdTai", "alertRow"]).set_index("diaObjectId").sort_index()
