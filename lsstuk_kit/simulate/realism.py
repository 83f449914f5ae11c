"""How close is a simulated night to real alerts? Measured, check by check.

:func:`compare_with_real` measures a simulated :class:`~lsstuk_kit.batch.AlertBatch` (with its truth
table) and a real one (real Rubin alerts, e.g. those redistributed by Fink in ``../shared/real-alerts``)
the same way and returns one row per check, with the target of issue 13 and whether it passes.
:func:`plot_sim_vs_real` draws the distributions side by side.

The real reference sets are small (7 + 27 real Rubin alerts) and were selected by brokers' filters
(Fink's test extracts), so every real figure carries its ``n_real``; read them as indications, not
as survey statistics.

Checks (``check`` column):

================================  ==================================================  ======================
check                             measure                                             target
================================  ==================================================  ======================
reliability_auc_vs_truth          ROC AUC of ``reliability`` against the truth label  <= 0.95
reliability_ks_real               KS D, sim real-object vs real Rubin reliability     < 0.2
reliability_below_0.5             share of real objects' alerts scoring < 0.5         (reported)
isDipole_equals_label             share of alerts with isDipole == (dipole bogus)     < 1
fields_filled                     share of fields real Rubin fills (in >= 50 % of     1.0
                                  real alerts) that the simulation fills in >= 85 %
bogus_fwhm_arcsec                 median FWHM of bogus difference stamps              within 20 % of real
no_history_fraction               share of alerts with no earlier detection           >= 0.30
within_night_gap_p05_min          5th percentile of same-night gaps (minutes)         <= 15
within_night_gap_p95_min          95th percentile of same-night gaps (minutes)        60 - 150
night_gap_p95_days                95th percentile of gaps between nights (days)       >= 6
snr_median                        median ``snr``                                      within 25 % of real
snr_below_7                       share of alerts with ``snr`` < 7                    >= 0.40
snr_negative_fraction             share of alerts with ``snr`` < 0                    0 (Rubin: always > 0)
isNegative_equals_flux_negative   share with isNegative == (psfFlux < 0)              >= 0.9 and < 1
flux_negative_fraction            share of alerts with psfFlux < 0                    within 0.05 of real
template_noise_ratio              median template / science pixel noise               0.24 +- 0.05
psf_fwhm_arcsec                   median FWHM of the PSFIMAGE (arcsec)                within 15 % of real
stamp_noise_<band>                median over visits of science-stamp pixel noise     within 20 % of real
                                  (nJy)
================================  ==================================================  ======================

Examples
--------
>>> import lsstuk_kit as lk
>>> from lsstuk_kit.simulate.realism import compare_with_real
>>> sim = lk.load_sample()
>>> table = compare_with_real(sim, sim, truth=lk.load_sample_truth(), stamps=False)  # the sample against itself
>>> bool(table.set_index("check").loc["snr_median", "passed"])
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["compare_with_real", "plot_sim_vs_real", "field_fill", "alert_gaps", "stamp_measures",
           "PIXEL_SCALE", "TARGETS"]

PIXEL_SCALE = 0.2  # arcsec per pixel, Rubin cutouts

#: Targets of issue 13, as text (the ``target`` column).
TARGETS = {
    "reliability_auc_vs_truth": "<= 0.95",
    "reliability_ks_real": "< 0.2",
    "reliability_below_0.5": "reported",
    "isDipole_equals_label": "< 1",
    "fields_filled": "1.0 (each >= 85 %)",
    "bogus_fwhm_arcsec": "within 20 % of real",
    "no_history_fraction": ">= 0.30",
    "within_night_gap_p05_min": "<= 15",
    "within_night_gap_p95_min": "60 - 150",
    "night_gap_p95_days": ">= 6",
    "snr_median": "within 25 % of real",
    "snr_below_7": ">= 0.40",
    "snr_negative_fraction": "0",
    "isNegative_equals_flux_negative": ">= 0.9 and < 1",
    "flux_negative_fraction": "within 0.05 of real",
    "template_noise_ratio": "0.24 +- 0.05",
    "psf_fwhm_arcsec": "within 15 % of real",
    "stamp_noise": "within 20 % of real",
}


def _auc(y, score):
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, bool)
    if y.all() or not y.any():
        return np.nan
    return float(roc_auc_score(y, np.asarray(score, float)))


def _ks(a, b):
    from scipy.stats import ks_2samp

    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return np.nan
    return float(ks_2samp(a, b).statistic)


def _diasource_fields():
    from ..schema import latest_schema_version, load_rubin_schema
    from ..surveys._avrotypes import collect_names, record_fields

    schema = load_rubin_schema(*latest_schema_version())
    names = collect_names(schema)
    for f in schema["fields"]:
        if f["name"] == "diaSource":
            return [s["name"] for s in record_fields(f["type"], names)]
    return []


def field_fill(sim_sources, real_sources, min_real=0.5):
    """Fill fraction, per diaSource field, in real and simulated alerts.

    Parameters
    ----------
    sim_sources, real_sources : DataFrame
        ``batch.sources`` of each.
    min_real : float
        A field counts as "filled by real Rubin" when it is non-null in at least this share of real alerts
        (most of them: the trail fields, moments and extendedness are filled in 76 % of the 34 real ones).

    Returns
    -------
    DataFrame
        Index: field; columns ``real``, ``sim`` (fractions non-null) and ``realFills``.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.simulate.realism import field_fill
    >>> s = lk.load_sample().sources
    >>> bool(field_fill(s, s).loc["psfFlux", "sim"] == 1.0)
    True
    """
    rows = {}
    for f in _diasource_fields():
        if f == "diaSourceId":
            continue
        r = real_sources[f].notna().mean() if f in real_sources and len(real_sources) else 0.0
        s = sim_sources[f].notna().mean() if f in sim_sources and len(sim_sources) else 0.0
        rows[f] = (float(r), float(s))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["real", "sim"])
    out["realFills"] = out["real"] >= min_real
    return out


def alert_gaps(batch):
    """Per alert, earlier detections of its object; and the gaps between an object's detections.

    Returns
    -------
    n_prev : Series
        Earlier detections of each alert's object in the batch's light curves (by ``diaSourceId``).
    within_min : ndarray
        Gaps shorter than half a day between consecutive detections of an object, in minutes.
    between_days : ndarray
        Gaps of half a day or longer, in days.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.simulate.realism import alert_gaps
    >>> batch = lk.load_sample()
    >>> n_prev, within_min, between_days = alert_gaps(batch)
    >>> len(n_prev) == len(batch)
    True
    >>> round(float((n_prev == 0).mean()), 2)  # share of alerts without an earlier detection
    0.52
    >>> bool((within_min < 720).all() and (between_days >= 0.5).all())
    True
    """
    s = batch.sources
    h = batch.history
    if len(h) and "kind" in h:
        h = h[h["kind"].astype(str) == "detection"]
    rows = pd.concat([h[["diaObjectId", "midpointMjdTai"]],
                      s.reset_index()[["diaObjectId", "midpointMjdTai"]]], ignore_index=True)
    rows = rows.dropna().drop_duplicates()
    rows["diaObjectId"] = rows["diaObjectId"].astype(np.int64)
    rows["midpointMjdTai"] = rows["midpointMjdTai"].astype(float).round(7)
    rows = rows.drop_duplicates().sort_values(["diaObjectId", "midpointMjdTai"], kind="stable")
    # earlier detections of each alert: rows of its object before its time
    obj = rows["diaObjectId"].to_numpy()
    t = rows["midpointMjdTai"].to_numpy()
    key = pd.Index(np.unique(obj)).get_indexer(obj).astype(float) * 1e6 + (t - t.min() if len(t) else t)
    so = s["diaObjectId"].to_numpy(np.int64)
    st = s["midpointMjdTai"].to_numpy(float).round(7)
    skey = pd.Index(np.unique(obj)).get_indexer(so).astype(float) * 1e6 + (st - t.min() if len(t) else st)
    first = np.searchsorted(key, pd.Index(np.unique(obj)).get_indexer(so).astype(float) * 1e6 - 1e5)
    n_prev = pd.Series(np.searchsorted(key, skey - 1e-6) - first, index=s.index)
    same = obj[1:] == obj[:-1]
    dt = np.diff(t)[same]
    return n_prev.clip(lower=0), dt[dt < 0.5] * 1440.0, dt[dt >= 0.5]


def stamp_measures(batch):
    """Per alert: pixel noise of science and template stamps (nJy), difference-stamp FWHM and PSF FWHM (arcsec).

    Noise is the clipped standard deviation of the stamp's outer 4 pixels
    (:func:`lsstuk_kit.cutouts._noise`); FWHM of the difference stamp from second
    moments (:func:`lsstuk_kit.cutouts.shape_measures`); PSF FWHM from the
    second moments of the ``PSFIMAGE`` extension.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.simulate.realism import stamp_measures
    >>> m = stamp_measures(lk.load_sample()[:3])
    >>> m.columns.tolist()
    ['scienceNoise', 'templateNoise', 'diffFwhmArcsec', 'psfFwhmArcsec', 'nanFraction']
    >>> round(float((m["templateNoise"] / m["scienceNoise"]).median()), 1)  # deep templates: 0.24
    0.2
    """
    from ..cutouts import _noise, shape_measures, stack_cutouts

    ids, sci, psfs = stack_cutouts(batch, "science")
    _, tmpl, _ = stack_cutouts(batch, "template")
    _, diff, _ = stack_cutouts(batch, "difference")

    def noise(st):
        st = np.asarray(st, float)
        bad = ~np.isfinite(st)
        # masked (NaN) edges: measure on the finite pixels only
        filled = np.where(bad, np.nanmedian(st, axis=(1, 2), keepdims=True), st)
        return _noise(np.nan_to_num(filled))[1]

    sign = np.sign(batch.sources["psfFlux"].to_numpy(float))
    sign[sign == 0] = 1
    shape = shape_measures(np.nan_to_num(diff), psfs, sign)
    psf_fwhm = np.full(len(ids), np.nan)
    for k, p in enumerate(psfs):
        if p is None:
            continue
        p = np.asarray(p, float)
        if not np.isfinite(p).all() or p.sum() <= 0:
            continue
        yy, xx = np.mgrid[:p.shape[0], :p.shape[1]]
        w = np.clip(p, 0, None)
        w = w / w.sum()
        mx, my = (w * xx).sum(), (w * yy).sum()
        var = ((w * (xx - mx) ** 2).sum() + (w * (yy - my) ** 2).sum()) / 2
        psf_fwhm[k] = 2.3548 * np.sqrt(var) * PIXEL_SCALE
    return pd.DataFrame({"scienceNoise": noise(sci), "templateNoise": noise(tmpl),
                         "diffFwhmArcsec": shape["fwhm"].to_numpy() * PIXEL_SCALE, "psfFwhmArcsec": psf_fwhm,
                         "nanFraction": np.isnan(diff).mean(axis=(1, 2))}, index=ids)


def _row(check, sim, real, n_sim, n_real, passed, note=""):
    key = "stamp_noise" if check.startswith("stamp_noise") else check
    return {"check": check, "sim": sim, "real": real, "n_sim": int(n_sim), "n_real": int(n_real),
            "target": TARGETS[key], "passed": bool(passed), "note": note}


def _within(sim, real, tol):
    return bool(np.isfinite(sim) and np.isfinite(real) and abs(sim - real) <= tol * abs(real))


def compare_with_real(sim_batch, real_batch, *, truth=None, stamps=True):
    """Measure a simulated batch beside real alerts, one row per check (see the module docstring).

    Parameters
    ----------
    sim_batch : AlertBatch
        Simulated alerts (e.g. :func:`lsstuk_kit.load_sample`).
    real_batch : AlertBatch
        Real Rubin alerts (e.g. ``read_alerts`` of ``../shared/real-alerts/lsst`` and the Fink Rubin Parquet).
    truth : DataFrame, optional
        The simulation's truth by ``diaSourceId`` (``isReal``, ``bogusType``); without it the checks
        against the truth are NaN.
    stamps : bool
        Also measure the cutouts (slower: every stamp is decoded).

    Returns
    -------
    DataFrame
        Columns ``check``, ``sim``, ``real``, ``n_sim``, ``n_real``, ``target``, ``passed``, ``note``.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.simulate.realism import compare_with_real
    >>> t = compare_with_real(lk.load_sample(), lk.load_sample(), truth=lk.load_sample_truth(), stamps=False)
    >>> "no_history_fraction" in set(t["check"])
    True
    """
    s, r = sim_batch.sources, real_batch.sources
    ns, nr = len(s), len(r)
    if ns == 0 or nr == 0:
        raise ValueError(f"compare_with_real needs alerts in both batches (sim: {ns}, real: {nr})")
    rows = []
    if truth is not None:
        tr = truth.reindex(s.index)
        is_real = tr["isReal"].to_numpy(bool)
        is_dip = (tr["bogusType"].astype(str) == "dipole").to_numpy()
    else:
        is_real = np.ones(ns, bool)
        is_dip = np.zeros(ns, bool)
    rel = s["reliability"].to_numpy(float)
    rrel = r["reliability"].to_numpy(float)
    auc = _auc(is_real, rel) if truth is not None else np.nan
    rows.append(_row("reliability_auc_vs_truth", auc, np.nan, ns, 0, np.isfinite(auc) and auc <= 0.95))
    d = _ks(rel[is_real], rrel)
    rows.append(_row("reliability_ks_real", d, 0.0, is_real.sum(), nr, np.isfinite(d) and d < 0.2,
                     "sim: alerts of real objects; real: all real Rubin alerts"))
    rows.append(_row("reliability_below_0.5", float(np.mean(rel[is_real] < 0.5)), float(np.mean(rrel < 0.5)),
                     is_real.sum(), nr, True))
    eq = float(np.mean(s["isDipole"].to_numpy(bool) == is_dip)) if truth is not None else np.nan
    rows.append(_row("isDipole_equals_label", eq, np.nan, ns, 0, np.isfinite(eq) and eq < 1.0))
    ff = field_fill(s, r)
    want = ff[ff["realFills"]]
    share = float((want["sim"] >= 0.85).mean()) if len(want) else np.nan
    missing = want.index[want["sim"] < 0.85].tolist()
    rows.append(_row("fields_filled", share, 1.0, ns, nr, share == 1.0,
                     f"{len(want)} fields real Rubin fills; sim short on {len(missing)}: {', '.join(missing[:8])}"
                     + (" ..." if len(missing) > 8 else "")))
    n_prev, within, between = alert_gaps(sim_batch)
    rn_prev, rwithin, rbetween = alert_gaps(real_batch)
    v = float((n_prev == 0).mean())
    rows.append(_row("no_history_fraction", v, float((rn_prev == 0).mean()), ns, nr, v >= 0.30))

    def pct(x, q):
        return float(np.percentile(x, q)) if len(x) else np.nan

    p05, p95 = pct(within, 5), pct(within, 95)
    rows.append(_row("within_night_gap_p05_min", p05, pct(rwithin, 5), len(within), len(rwithin), p05 <= 15))
    rows.append(_row("within_night_gap_p95_min", p95, pct(rwithin, 95), len(within), len(rwithin),
                     60 <= p95 <= 150))
    g95 = pct(between, 95)
    rows.append(_row("night_gap_p95_days", g95, pct(rbetween, 95), len(between), len(rbetween), g95 >= 6))
    snr, rsnr = s["snr"].to_numpy(float), r["snr"].to_numpy(float)
    med, rmed = float(np.median(snr)), float(np.median(rsnr))
    rows.append(_row("snr_median", med, rmed, ns, nr, _within(med, rmed, 0.25)))
    rows.append(_row("snr_below_7", float(np.mean(np.abs(snr) < 7)), float(np.mean(rsnr < 7)), ns, nr,
                     np.mean(np.abs(snr) < 7) >= 0.40))
    neg = float(np.mean(snr < 0))
    rows.append(_row("snr_negative_fraction", neg, float(np.mean(rsnr < 0)), ns, nr, neg == 0))
    flux, rflux = s["psfFlux"].to_numpy(float), r["psfFlux"].to_numpy(float)
    agree = float(np.mean(s["isNegative"].to_numpy(bool) == (flux < 0)))
    ragree = float(np.mean(r["isNegative"].to_numpy(bool) == (rflux < 0)))
    rows.append(_row("isNegative_equals_flux_negative", agree, ragree, ns, nr, 0.9 <= agree < 1.0,
                     "Rubin flags the negative footprint: a dipole can measure psfFlux < 0 unflagged"))
    fneg, rfneg = float(np.mean(flux < 0)), float(np.mean(rflux < 0))
    rows.append(_row("flux_negative_fraction", fneg, rfneg, ns, nr, abs(fneg - rfneg) <= 0.05))
    if stamps:
        sm, rm = stamp_measures(sim_batch), stamp_measures(real_batch)
        ratio = float(np.nanmedian(sm["templateNoise"] / sm["scienceNoise"]))
        rratio = float(np.nanmedian(rm["templateNoise"] / rm["scienceNoise"]))
        rows.append(_row("template_noise_ratio", ratio, rratio, ns, nr, abs(ratio - 0.24) <= 0.05))
        pf, rpf = float(np.nanmedian(sm["psfFwhmArcsec"])), float(np.nanmedian(rm["psfFwhmArcsec"]))
        rows.append(_row("psf_fwhm_arcsec", pf, rpf, sm["psfFwhmArcsec"].notna().sum(),
                         rm["psfFwhmArcsec"].notna().sum(), _within(pf, rpf, 0.15)))
        # bogus: the truth's bogus in the simulation; real Rubin alerts scoring reliability < 0.5
        sb = sm["diffFwhmArcsec"].to_numpy()[~is_real] if truth is not None else np.array([])
        rb = rm["diffFwhmArcsec"].to_numpy()[rrel < 0.5]
        bf, rbf = (float(np.nanmedian(x)) if np.isfinite(x).any() else np.nan for x in (sb, rb))
        rows.append(_row("bogus_fwhm_arcsec", bf, rbf, len(sb), len(rb), _within(bf, rbf, 0.20),
                         "real bogus: real Rubin alerts with reliability < 0.5"))
        # noise level of each visit's images (the median over its alerts), then the median over visits
        sv = pd.DataFrame({"band": s["band"].astype(str).to_numpy(), "visit": s["visit"].to_numpy(),
                           "noise": sm["scienceNoise"].to_numpy()}).groupby(["band", "visit"])["noise"].median()
        rv = pd.DataFrame({"band": r["band"].astype(str).to_numpy(), "visit": r["visit"].to_numpy(),
                           "noise": rm["scienceNoise"].to_numpy()}).groupby(["band", "visit"])["noise"].median()
        for b in sorted(set(rv.index.get_level_values(0))):
            if b not in sv.index.get_level_values(0):
                continue
            a, ra_ = sv.loc[b].to_numpy(), rv.loc[b].to_numpy()
            v, rvv = float(np.median(a)), float(np.median(ra_))
            rows.append(_row(f"stamp_noise_{b}", v, rvv, len(a), len(ra_), _within(v, rvv, 0.20),
                             "n = visits (median over each visit's stamps)"))
    return pd.DataFrame(rows)


def plot_sim_vs_real(sim_batch, real_batch, *, truth=None, fig=None):
    """Histograms of the simulated night beside real alerts (reliability, S/N, gaps, stamp noise, PSF).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.simulate.realism import plot_sim_vs_real
    >>> import matplotlib.pyplot as plt
    >>> sim = lk.load_sample()[:10]  # every stamp is decoded: a few alerts keep it quick
    >>> fig = plot_sim_vs_real(sim, sim)
    >>> len(fig.axes)
    6
    >>> fig.axes[0].get_title()
    'reliability (real objects)'
    >>> plt.close("all")
    """
    if fig is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        fig = plt.figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    s, r = sim_batch.sources, real_batch.sources
    is_real = (truth.reindex(s.index)["isReal"].to_numpy(bool) if truth is not None else np.ones(len(s), bool))
    kw = {"density": True, "histtype": "step", "lw": 1.5}

    def pair(ax, a, b, bins, title, xlabel):
        ax.hist(a, bins=bins, label=f"simulated (n={len(a)})", **kw)
        ax.hist(b, bins=bins, label=f"real Rubin (n={len(b)})", **kw)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=7)

    pair(axes[0], s["reliability"].to_numpy(float)[is_real], r["reliability"].to_numpy(float),
         np.linspace(0, 1, 21), "reliability (real objects)", "reliability")
    pair(axes[1], np.log10(np.abs(s["snr"].to_numpy(float))), np.log10(np.abs(r["snr"].to_numpy(float))),
         np.linspace(np.log10(5), 3, 25), "S/N", "log10 |snr|")
    _, w, b = alert_gaps(sim_batch)
    _, rw, rb = alert_gaps(real_batch)
    pair(axes[2], w, rw, np.linspace(0, 200, 21), "gaps within a night", "minutes")
    pair(axes[3], np.log10(b), np.log10(rb), np.linspace(-0.3, 2.6, 25), "gaps between nights", "log10 days")
    sm, rm = stamp_measures(sim_batch), stamp_measures(real_batch)
    pair(axes[4], (sm["templateNoise"] / sm["scienceNoise"]).to_numpy(),
         (rm["templateNoise"] / rm["scienceNoise"]).to_numpy(), np.linspace(0, 1, 21),
         "template / science noise", "ratio")
    pair(axes[5], sm["psfFwhmArcsec"].dropna().to_numpy(), rm["psfFwhmArcsec"].dropna().to_numpy(),
         np.linspace(0.4, 2.0, 25), "PSF FWHM", "arcsec")
    fig.suptitle("Simulated night beside real Rubin alerts (real: a few dozen, selected by brokers' filters)",
                 fontsize=10)
    return fig
