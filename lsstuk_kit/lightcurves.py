"""Light curves: plots and per-object features, from a batch's long history table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .surveys.common import AB_ZEROPOINT_NJY, BAND_COLORS, BANDS, flux_to_mag

__all__ = ["plot_lightcurve", "time_reference", "lightcurve_features"]


def _history(obj):
    return obj.history if hasattr(obj, "history") and hasattr(obj, "sources") else obj


def _mjd_to_date(mjd: float) -> str:
    """Calendar date (UTC, to the day; TAI - UTC is well under a day) of an MJD."""
    from datetime import datetime, timedelta

    return (datetime(1858, 11, 17) + timedelta(days=float(mjd))).strftime("%Y-%m-%d")


def _time_axis(ax, ref, label, dates, span=None):
    """Readable time axis: few, non-overlapping ticks on offsets from ``ref`` (an MJD); optional dates on top."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], min_n_ticks=3))
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.xaxis.set_major_formatter(fmt)
    ax.set_xlabel(label)
    if dates:
        import matplotlib.dates as mdates

        off = ref + float(mdates.datestr2num("1858-11-17"))  # x (days from ref) -> matplotlib date number
        sec = ax.secondary_xaxis("top", functions=(lambda x: x + off, lambda d: d - off))
        loc = mdates.AutoDateLocator(minticks=2, maxticks=5)
        sec.xaxis.set_major_locator(loc)
        sec.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, show_offset=False))
        sec.tick_params(labelsize=7)
        years = sorted({_mjd_to_date(ref + x)[:4] for x in (span or (0.0,))})
        sec.set_xlabel(f"date (UTC, {'-'.join(years)})", fontsize=8)
    return ax


def plot_lightcurve(batch, diaObjectId, ax=None, *, unit="mag", time="mjd", forced=True, limits=True,
                    forced_snr=3.0, dates=False):
    """Plot one object's light curve per band; return the Axes.

    Detections are filled circles with error bars, forced photometry small open
    circles, upper limits downward triangles (ZTF limits; in ``unit="mag"`` also
    forced points below ``forced_snr``, drawn at their ``forced_snr``-sigma limit).

    Parameters
    ----------
    batch : AlertBatch (or its history DataFrame)
    diaObjectId : int or str
    ax : matplotlib Axes, optional
    unit : {"mag", "flux"}
        AB magnitude of positive fluxes (y axis inverted), or difference flux in nJy.
    time : {"mjd", "days"}
        MJD as an offset from the whole MJD of the first detection (the axis label
        reads e.g. "MJD - 61061 (TAI)"), or days since the first detection (the label
        gives its MJD and date). Ticks come from ``MaxNLocator`` so they never overlap.
    dates : bool
        Add a calendar-date axis (UTC) on top.

    The legend sits outside the axes, to the right of the data. To draw over the light
    curve (a fit, a marker), subtract the axis's reference MJD, :func:`time_reference`.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lightcurves import plot_lightcurve
    >>> batch = load_sample()
    >>> ax = plot_lightcurve(batch, batch.sources["diaObjectId"].iloc[0], unit="flux")
    >>> ax.get_ylabel()
    'difference flux (nJy)'
    """
    if unit not in ("mag", "flux"):
        raise ValueError("unit must be 'mag' or 'flux'")
    if time not in ("mjd", "days"):
        raise ValueError("time must be 'mjd' or 'days'")
    if ax is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        ax = plt.figure(figsize=(7, 3.6), layout="constrained").subplots()
    h = _history(batch)
    lc = h[h["diaObjectId"] == diaObjectId]
    if lc.empty:
        raise KeyError(f"no history for diaObjectId {diaObjectId!r}")
    det = lc[lc["kind"] == "detection"]
    t0 = float(det["midpointMjdTai"].min()) if len(det) else float(lc["midpointMjdTai"].min())
    ref = t0 if time == "days" else float(np.floor(t0))
    tcol = lc["midpointMjdTai"] - ref
    present = set(lc["band"].dropna().astype(str))
    order = list(BANDS) + [b for b in BAND_COLORS if b not in BANDS]  # Rubin's, then e.g. ATLAS c and o
    drawn_bands, drawn_kinds = [], set()
    for band in [b for b in order if b in present] + sorted(present - set(order)):
        colour = BAND_COLORS.get(band, "k")
        drawn_bands.append((band, colour))
        sel = lc["band"].astype(str) == band
        for kind in ("detection", "forced", "upper_limit"):
            part = lc[sel & (lc["kind"] == kind)]
            if part.empty or (kind == "forced" and not forced) or (kind == "upper_limit" and not limits):
                continue
            drawn_kinds.add(kind)
            t = tcol[part.index]
            flux = part["psfFlux"].to_numpy(float)
            err = part["psfFluxErr"].to_numpy(float)
            if unit == "flux":
                if kind == "upper_limit":
                    ax.scatter(t, 5 * err, marker="v", color=colour, s=18, alpha=0.5)
                else:
                    ax.errorbar(t, flux, err, fmt="o" if kind == "detection" else ".", color=colour,
                                mfc=colour if kind == "detection" else "none", ms=6 if kind == "detection" else 4,
                                alpha=1.0 if kind == "detection" else 0.5, lw=0.8)
                continue
            if kind == "upper_limit":
                lim = part["limitingMag"].to_numpy(float) if "limitingMag" in part else flux_to_mag(5 * err)
                ax.scatter(t, lim, marker="v", color=colour, s=18, alpha=0.5)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                snr = flux / err
            if kind == "forced":
                good = snr >= forced_snr
                m, e = flux_to_mag(flux[good], err[good])
                ax.errorbar(t[good], m, e, fmt=".", mfc="none", color=colour, alpha=0.5, lw=0.6)
                if limits and (~good).any():
                    drawn_kinds.add("upper_limit")
                    ax.scatter(t[~good], AB_ZEROPOINT_NJY - 2.5 * np.log10(forced_snr * err[~good]), marker="v",
                               color=colour, s=10, alpha=0.25)
            else:
                pos = flux > 0
                m, e = flux_to_mag(flux[pos], err[pos])
                ax.errorbar(t[pos], m, e, fmt="o", color=colour, ms=6, lw=0.8)
                if (~pos).any():
                    drawn_kinds.add("negative")
                    mn, en = flux_to_mag(flux[~pos], err[~pos])
                    ax.errorbar(t[~pos], mn, en, fmt="o", mfc="none", color=colour, ms=6, lw=0.8)
    if unit == "mag":
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
        ax.set_ylabel("AB magnitude")
    else:
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylabel("difference flux (nJy)")
    label = (f"MJD - {ref:.0f} (TAI)" if time == "mjd"
             else f"days since first detection (MJD {ref:.2f}, {_mjd_to_date(ref)})")
    _time_axis(ax, ref, label, dates, span=(float(tcol.min()), float(tcol.max())))
    ax._lsstuk_time_reference = ref  # read with time_reference(ax), to draw over the light curve
    ax.set_title(f"diaObjectId {diaObjectId}", fontsize=10)
    _legends(ax, drawn_bands, drawn_kinds, unit)
    return ax


#: What each marker of :func:`plot_lightcurve` means, listed in its legend after the bands.
MARKER_LABELS = ("detection", "negative (|flux|)", "forced", "upper limit")


def time_reference(ax) -> float:
    """The MJD that x = 0 stands for on an Axes drawn by :func:`plot_lightcurve`.

    Its x axis shows offsets (``MJD - 61061`` or days since the first detection) so that
    the ticks stay readable; anything drawn over it must use the same offsets.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lightcurves import plot_lightcurve, time_reference
    >>> batch = load_sample()
    >>> oid = batch.sources["diaObjectId"].iloc[0]
    >>> ax = plot_lightcurve(batch, oid, time="days")
    >>> first = batch.history.query("diaObjectId == @oid and kind == 'detection'")["midpointMjdTai"].min()
    >>> bool(np.isclose(time_reference(ax), first))
    True
    >>> line = ax.axvline(first + 1.0 - time_reference(ax))   # one day after the first detection
    """
    try:
        return float(ax._lsstuk_time_reference)
    except AttributeError:
        raise ValueError("this Axes was not drawn by plot_lightcurve: it has no time reference") from None


def _legends(ax, bands, kinds, unit):
    """One legend outside the data, right of the axes.

    Every band drawn (whatever its points are), then in grey what each marker drawn means.
    """
    from matplotlib.lines import Line2D

    if not bands:
        return
    handles = [Line2D([], [], ls="", marker="o", ms=6, color=c) for _, c in bands]
    labels = [b for b, _ in bands]
    grey = "0.65"  # light grey: apart from the y band's dark grey
    meaning = [("detection", dict(marker="o", ms=6)), ("negative", dict(marker="o", ms=6, mfc="none")),
               ("forced", dict(marker=".", ms=6, mfc="none")), ("upper_limit", dict(marker="v", ms=5, alpha=0.5))]
    for (kind, style), text in zip(meaning, MARKER_LABELS):
        if kind in kinds and not (kind == "negative" and unit == "flux"):
            handles.append(Line2D([], [], ls="", color=grey, **style))
            labels.append(text)
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False, handlelength=1.2)


def lightcurve_features(batch, colour_window_days=1.0) -> pd.DataFrame:
    """Per-object light-curve features from the detections in the history, vectorised.

    Per band ``b`` (columns ``{b}_...``): ``n`` detections, ``amplitude`` (max - min
    mag), ``peakMag``, ``peakMjd``, ``riseRate`` (mag/day from the first
    detection to the peak, negative when brightening), ``fadeRate`` (mag/day
    from the peak to the last detection), and for the object ``duration``
    (days between its first and last detection), ``nDetections`` and
    ``gMinusR`` (g - r near the g-band peak: the r detection nearest in time,
    within ``colour_window_days``).

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lightcurves import lightcurve_features
    >>> f = lightcurve_features(load_sample())
    >>> bool((f["duration"] >= 0).all())
    True
    """
    h = _history(batch)
    det = h[(h["kind"] == "detection") & (h["psfFlux"] > 0)].copy()
    det["band"] = det["band"].astype(str)
    det["mag"] = flux_to_mag(det["psfFlux"].to_numpy(float))
    t = "midpointMjdTai"
    g = det.groupby("diaObjectId")
    out = pd.DataFrame({"nDetections": g.size(), "duration": g[t].max() - g[t].min()})
    gb = det.groupby(["diaObjectId", "band"])
    stats = pd.DataFrame({"n": gb.size(), "amplitude": gb["mag"].max() - gb["mag"].min()})
    peak_idx = gb["mag"].idxmin()
    peak = det.loc[peak_idx.to_numpy(), ["diaObjectId", "band", "mag", t]].set_index(["diaObjectId", "band"])
    stats["peakMag"] = peak["mag"]
    stats["peakMjd"] = peak[t]
    first = det.loc[gb[t].idxmin().to_numpy(), ["diaObjectId", "band", "mag", t]].set_index(["diaObjectId", "band"])
    last = det.loc[gb[t].idxmax().to_numpy(), ["diaObjectId", "band", "mag", t]].set_index(["diaObjectId", "band"])
    with np.errstate(invalid="ignore", divide="ignore"):
        dt_rise = stats["peakMjd"] - first[t]
        stats["riseRate"] = np.where(dt_rise > 0, (stats["peakMag"] - first["mag"]) / dt_rise, np.nan)
        dt_fade = last[t] - stats["peakMjd"]
        stats["fadeRate"] = np.where(dt_fade > 0, (last["mag"] - stats["peakMag"]) / dt_fade, np.nan)
    wide = stats.unstack("band")
    wide.columns = [f"{b}_{c}" for c, b in wide.columns]
    out = out.join(wide)
    # g - r near the g peak: nearest r detection in time
    if "g_peakMjd" in out and (det["band"] == "r").any():
        r = det[det["band"] == "r"][["diaObjectId", t, "mag"]].sort_values(t)
        gp = out[["g_peakMjd", "g_peakMag"]].dropna().reset_index().sort_values("g_peakMjd")
        m = pd.merge_asof(gp, r.rename(columns={t: "g_peakMjd", "mag": "r_mag"}), on="g_peakMjd",
                          by="diaObjectId", direction="nearest", tolerance=colour_window_days)
        out["gMinusR"] = (m.set_index("diaObjectId")["g_peakMag"] - m.set_index("diaObjectId")["r_mag"])
    else:
        out["gMinusR"] = np.nan
    return out
