"""The views people reach for first: the sky, a gallery of cutouts, one object's stamps, a colour curve, a night.

Every helper follows the kit's plot conventions (``../shared/DESIGN.md``): ``ax=None`` (one panel,
returns the Axes) or ``fig=None`` (several panels, returns the Figure), a new pyplot figure only when
none is given (so it shows inline in a notebook), never ``plt.show()``, units on every axis, and the one
band colour map :data:`lsstuk_kit.surveys.common.BAND_COLORS`.

Examples
--------
>>> import lsstuk_kit as lk
>>> from lsstuk_kit.views import plot_night
>>> fig = plot_night(lk.load_sample())
>>> len(fig.axes)
6
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cutouts import STAMPS, _cmap_with_bad, _norm, north_up
from .lightcurves import _mjd_to_date, _time_axis
from .surveys.common import BAND_COLORS, BANDS

__all__ = ["plot_sky", "plot_cutout_gallery", "plot_object_cutouts", "colour_pairs", "plot_colour_curve",
           "plot_night"]

#: Axis / colour-bar labels (with units) of the columns people colour by.
COLUMN_LABELS = {
    "mag": "AB magnitude (mag)",
    "magErr": "magnitude error (mag)",
    "psfFlux": "difference flux (nJy)",
    "psfFluxErr": "difference flux error (nJy)",
    "scienceFlux": "science flux (nJy)",
    "snr": "S/N (psfFlux / psfFluxErr)",
    "reliability": "reliability (probability, 0-1)",
    "midpointMjdTai": "time (MJD, TAI)",
    "ra": "RA (deg)",
    "dec": "Dec (deg)",
    "nDiaSources": "detections (count)",
}

_OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, fontsize=7)


def _new_figure(figsize, **kw):
    import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

    return plt.figure(figsize=figsize, layout="constrained", **kw)


def _reuse(fig):
    """Clear a Figure given to a multi-panel helper; use constrained layout (captions, outside legends)."""
    fig.clear()
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")


def _sources(data):
    """The per-alert table of an AlertBatch, or the DataFrame itself."""
    df = data.sources if hasattr(data, "sources") and hasattr(data, "history") else data
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected an AlertBatch or a DataFrame, not {type(data).__name__}")
    return df


def _radec(df, what="data"):
    cols = {c.lower(): c for c in df.columns}
    ra, dec = cols.get("ra"), cols.get("dec")
    if ra is None or dec is None:
        raise KeyError(f"{what} needs 'ra' and 'dec' columns (degrees); it has {list(df.columns)[:10]}...")
    return df[ra].to_numpy(float), df[dec].to_numpy(float)


def _band_order(present):
    order = list(BANDS) + [b for b in BAND_COLORS if b not in BANDS]
    present = {str(b) for b in present if b is not None and b == b}
    return [b for b in order if b in present] + sorted(present - set(order))


# --------------------------------------------------------------------------- sky
def _wrap(ra, center):
    """``ra - center`` wrapped into [-180, 180)."""
    return (np.asarray(ra, float) - center + 180.0) % 360.0 - 180.0


class _SkyFrame:
    """Maps (RA, Dec) in degrees onto an Axes: Mollweide (radians, RA to the left) or a zoomed tangent-ish plane."""

    def __init__(self, ax, projection, center):
        self.ax, self.projection, self.center = ax, projection, float(center)

    def xy(self, ra, dec):
        if self.projection == "mollweide":
            return -np.radians(_wrap(ra, self.center)), np.radians(np.asarray(dec, float))
        return self.center + _wrap(ra, self.center), np.asarray(dec, float)

    def split(self, x):
        """Indices where a polyline jumps across the Mollweide edge (no jumps in a zoom)."""
        if self.projection != "mollweide" or len(x) < 2:
            return np.array([], int)
        return np.flatnonzero(np.abs(np.diff(x)) > np.pi) + 1


def _moc_of(moc):
    return getattr(moc, "moc", moc)  # a Watchmap carries its MOC in .moc


def _moc_cells(moc, max_cells):
    """(order, ipix) of the MOC's cells flattened at one order, coarse enough to draw (at most ~max_cells)."""
    order = int(moc.max_order)
    frac = float(moc.sky_fraction)
    while order > 0 and frac * 12 * 4**order > max_cells:
        order -= 1
    m = moc.degrade_to_order(order) if order < moc.max_order else moc
    uniq = np.asarray(m.uniq_hpx, dtype=np.uint64)
    depth = (np.floor(np.log2(uniq.astype(float)) / 2.0) - 1).astype(int)
    ipix_all = []
    for d in np.unique(depth):
        ip = uniq[depth == d] - np.uint64(4 * 4**int(d))
        shift = np.uint64(4 ** (order - int(d)))
        ipix_all.append((ip[:, None] * shift + np.arange(int(shift), dtype=np.uint64)[None]).ravel())
    ipix = np.concatenate(ipix_all) if ipix_all else np.array([], np.uint64)
    return order, np.unique(ipix)


def _draw_moc(frame, moc, style, color, label, max_cells=None):
    """Outline (edges used by one cell only) or fill of a MOC's HEALPix cells."""
    from cdshealpix.nested import vertices
    from matplotlib.collections import LineCollection, PolyCollection

    if max_cells is None:  # Mollweide draws each polygon through a non-affine transform: keep fills coarse
        max_cells = 3000 if style == "fill" and frame.projection == "mollweide" else 20000
    order, ipix = _moc_cells(_moc_of(moc), max_cells)
    if ipix.size == 0:
        return None
    step = 4 if order < 4 else 1
    lon, lat = vertices(ipix, order, step=step)
    lon, lat = lon.to_value("deg"), lat.to_value("deg")
    x, y = frame.xy(lon, lat)
    x, y = x.reshape(lon.shape), y.reshape(lat.shape)
    ax = frame.ax
    if style == "fill":
        ok = np.ptp(x, axis=1) < (np.pi if frame.projection == "mollweide" else 180.0)  # not across the edge
        polys = np.stack([x[ok], y[ok]], axis=-1)
        coll = PolyCollection(polys, facecolor=color, edgecolor="none", alpha=0.35, label=label, zorder=1)
        ax.add_collection(coll, autolim=frame.projection != "mollweide")
        return coll
    if style != "outline":
        raise ValueError("moc_style must be 'outline' or 'fill'")
    # an edge (between two vertices, rounded) used by exactly one cell lies on the border
    keys = np.round(np.stack([lon % 360.0, lat], axis=-1), 6)
    nv = lon.shape[1]
    a = keys
    b = np.roll(keys, -1, axis=1)
    # each edge is `step` segments: key every segment by its two endpoints, in a fixed order
    first = (a[..., 0] < b[..., 0]) | ((a[..., 0] == b[..., 0]) & (a[..., 1] <= b[..., 1]))
    seg = np.where(first[..., None], np.concatenate([a, b], -1), np.concatenate([b, a], -1)).reshape(-1, 4)
    _, inverse, counts = np.unique(seg, axis=0, return_inverse=True, return_counts=True)
    border = (counts[inverse.ravel()] == 1).reshape(lon.shape[0], nv)
    x0, y0 = x[border], y[border]
    x1, y1 = np.roll(x, -1, axis=1)[border], np.roll(y, -1, axis=1)[border]
    ok = np.abs(x1 - x0) < (np.pi if frame.projection == "mollweide" else 180.0)
    lines = np.stack([np.stack([x0[ok], y0[ok]], -1), np.stack([x1[ok], y1[ok]], -1)], axis=1)
    coll = LineCollection(lines, colors=color, linewidths=1.0, label=label, zorder=3)
    ax.add_collection(coll, autolim=frame.projection != "mollweide")
    return coll


def _hours(deg):
    """RA in degrees as e.g. ``5h`` or ``5h20m``."""
    minutes = int(round(deg / 15.0 * 60.0)) % (24 * 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if m else f"{h}h"


def _ra_label(value_deg, ra_unit):
    v = value_deg % 360.0
    if ra_unit == "hours":
        return _hours(v)
    return f"{v:g}°"


def plot_sky(data, ax=None, color=None, projection="mollweide", *, moc=None, catalog=None, center=None,
             ra_unit="deg", moc_style="outline", moc_label=None, catalog_label="catalogue", color_label=None,
             cmap="viridis", legend=True, colorbar=True, s=None, grid_step=30.0, **kwargs):
    """Plot alert positions on the sky, RA increasing to the left; return the Axes.

    Parameters
    ----------
    data : AlertBatch or pandas.DataFrame
        Alerts (``batch.sources``) or any table with ``ra`` and ``dec`` columns in degrees.
    ax : matplotlib Axes, optional
        For ``projection="mollweide"`` it must be a Mollweide Axes
        (``fig.add_subplot(projection="mollweide")``); a new figure otherwise.
    color : str, array_like or None
        ``None``: by band with the kit's band colours (legend outside the axes) where there
        is a ``band`` column; a column name (``"mag"``, ``"reliability"``, ``"midpointMjdTai"``...)
        or an array: a colour map with a colour bar labelled with its units.
    projection : {"mollweide", "zoom"}
        The whole sky (Mollweide, RA labelled every 30 deg or 2 h, increasing to the left), or
        a small region in RA/Dec degrees (RA axis inverted, aspect corrected by cos(Dec)).
    moc : mocpy.MOC or Watchmap, optional
        An area to draw: its border (``moc_style="outline"``) or its cells (``"fill"``).
    catalog : pandas.DataFrame, optional
        Catalogue positions (``ra``, ``dec`` in degrees) drawn as open black circles.
    center : float, optional
        RA (deg) at the centre: 180 for Mollweide (0 at the right edge, 360 at the left),
        the circular mean of the data for a zoom.
    ra_unit : {"deg", "hours"}
        How RA tick labels read.
    grid_step : float
        Mollweide grid and label spacing in degrees (30 = 2 h; use 60 in small panels).
    color_label : str, optional
        The colour-bar label; by default from :data:`COLUMN_LABELS` (with units) or the column name.
    kwargs
        Passed to ``ax.scatter``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import plot_sky
    >>> batch = lk.load_sample()
    >>> ax = plot_sky(batch, color="mag")
    >>> ax.get_xlabel(), ax.figure.axes[-1].get_xlabel()
    ('RA (deg)', 'AB magnitude (mag)')
    >>> ax = plot_sky(batch, projection="zoom", catalog=batch.sources.head(5))
    >>> bool(ax.xaxis_inverted())
    True
    """
    if projection not in ("mollweide", "zoom"):
        raise ValueError("projection must be 'mollweide' or 'zoom'")
    if ra_unit not in ("deg", "hours"):
        raise ValueError("ra_unit must be 'deg' or 'hours'")
    df = _sources(data)
    ra, dec = _radec(df)
    if ax is None:
        fig = _new_figure((8, 4.6) if projection == "mollweide" else (6, 5))
        ax = fig.add_subplot(projection="mollweide" if projection == "mollweide" else None)
    elif projection == "mollweide" and ax.name != "mollweide":
        raise ValueError("projection='mollweide' needs an Axes made with projection='mollweide' (or ax=None)")
    elif projection == "zoom" and ax.name != "rectilinear":
        raise ValueError("projection='zoom' needs an ordinary (rectilinear) Axes")
    if center is None:
        if projection == "mollweide" or not len(ra):
            center = 180.0
        else:
            r = np.radians(ra[np.isfinite(ra)])
            center = float(np.degrees(np.arctan2(np.sin(r).mean(), np.cos(r).mean())) % 360.0)
    frame = _SkyFrame(ax, projection, center)
    x, y = frame.xy(ra, dec)
    size = s if s is not None else (8 if projection == "mollweide" else 18)

    mappable = None
    if color is None and "band" in df.columns:
        bands = df["band"].astype(str).to_numpy()
        for band in _band_order(df["band"].unique()):
            sel = bands == band
            ax.scatter(x[sel], y[sel], s=size, color=BAND_COLORS.get(band, "k"), label=band, zorder=2, **kwargs)
    elif color is None:
        ax.scatter(x, y, s=size, color="C0", label="alerts", zorder=2, **kwargs)
    else:
        values = df[color].to_numpy(float) if isinstance(color, str) else np.asarray(color, float)
        mappable = ax.scatter(x, y, s=size, c=values, cmap=cmap, zorder=2, **kwargs)
        if color_label is None:
            color_label = COLUMN_LABELS.get(color, color) if isinstance(color, str) else "value"

    if moc is not None:
        label = moc_label or getattr(moc, "name", None) or "MOC"
        _draw_moc(frame, moc, moc_style, "0.15" if moc_style == "outline" else "C1", label)
    if catalog is not None:
        cra, cdec = _radec(catalog, "catalog")
        cx, cy = frame.xy(cra, cdec)
        ax.scatter(cx, cy, s=size * 4, facecolor="none", edgecolor="k", linewidths=0.8, label=catalog_label,
                   zorder=4)

    if projection == "mollweide":
        step = float(grid_step)
        ticks = np.arange(-180.0 + step, 180.0 - step / 2, step)
        ax.set_xticks(np.radians(ticks))
        ax.set_xticklabels([_ra_label(center - t, ra_unit) for t in ticks], fontsize=7)
        ax.set_yticks(np.radians(np.arange(-90.0 + step, 90.0 - step / 2, step)))
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, color="0.8", lw=0.5)
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        fin = np.isfinite(x) & np.isfinite(y)
        if fin.any():
            pad = max(0.05, 0.05 * max(np.ptp(x[fin]), np.ptp(y[fin])))
            ax.set_xlim(x[fin].min() - pad, x[fin].max() + pad)
            ax.set_ylim(y[fin].min() - pad, y[fin].max() + pad)
        if not ax.xaxis_inverted():
            ax.invert_xaxis()
        dec0 = float(np.nanmean(ax.get_ylim()))
        ax.set_aspect(1.0 / max(np.cos(np.radians(dec0)), 0.05), adjustable="box")
        if ra_unit == "hours":  # ticks on whole minutes or hours of RA
            from matplotlib.ticker import MultipleLocator

            span_h = abs(np.diff(ax.get_xlim())[0]) / 15.0
            steps_h = [1 / 60, 2 / 60, 5 / 60, 10 / 60, 0.25, 0.5, 1.0, 2.0, 3.0, 6.0]
            step_h = next((h for h in steps_h if span_h / h <= 6), 6.0)
            ax.xaxis.set_major_locator(MultipleLocator(step_h * 15.0))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: _hours(v % 360.0)))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v % 360.0:.6g}"))
        ax.grid(True, color="0.9", lw=0.5)
    ax.set_xlabel("RA (h)" if ra_unit == "hours" else "RA (deg)")
    ax.set_ylabel("Dec (deg)")

    if mappable is not None and colorbar:
        cb = ax.figure.colorbar(mappable, ax=ax, orientation="horizontal" if projection == "mollweide" else "vertical",
                                shrink=0.6 if projection == "mollweide" else 0.9, pad=0.08 if projection ==
                                "mollweide" else 0.02)
        cb.set_label(color_label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, labels, title="band" if color is None and "band" in df.columns else None,
                      title_fontsize=7, markerscale=1.5, **_OUTSIDE)
    return ax


# --------------------------------------------------------------------------- cutouts
def _alert_title(src, sid, with_time=False):
    row = src.loc[sid]
    band = row.get("band", "?")
    mag = float(row.get("mag", np.nan))
    rel = float(row.get("reliability", np.nan))
    head = f"{sid}"
    if with_time:
        head += f"  MJD {float(row['midpointMjdTai']):.4f}"
    mag_s = f"{mag:.2f} mag" if np.isfinite(mag) else "mag n/a"
    rel_s = f"rel {rel:.2f}" if np.isfinite(rel) else "rel n/a"
    return f"{head}\n{band}  {mag_s}  {rel_s}"


def _stamp_scale_arcsec(c):
    if c.wcs is None:
        return None
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(c.wcs.celestial))) * 3600.0


def _draw_stamp(ax, img, wcs, north, stretch, cmap, tag=None):
    ax.set_xticks([])
    ax.set_yticks([])
    if img is None:
        ax.text(0.5, 0.5, "no stamp", ha="center", va="center", fontsize=6, transform=ax.transAxes)
        return False
    rotated = north and wcs is not None
    shown = north_up(img, wcs) if rotated else np.asarray(img, float)
    ax.imshow(np.ma.masked_invalid(shown), origin="lower", cmap=_cmap_with_bad(cmap), norm=_norm(shown, stretch),
              interpolation="nearest")
    if tag:
        ax.text(0.04, 0.96, tag, ha="left", va="top", fontsize=7, fontweight="bold", color="w", transform=ax.transAxes,
                bbox=dict(boxstyle="square,pad=0.1", fc="k", ec="none", alpha=0.5))
    return rotated


def _gallery(batch, ids, fig, *, difference_only, ncols, stretch, north, cmap, with_time, title):
    src = batch.sources
    ids = list(ids)
    missing = [i for i in ids if i not in src.index]
    if missing:
        raise KeyError(f"diaSourceId not in the batch: {missing[:5]}")
    if not ids:
        raise ValueError("no alerts to draw")
    nrows = -(-len(ids) // ncols)
    panel = 1.25
    if fig is None:
        width = ncols * (panel if difference_only else 3 * panel + 0.15)
        fig = _new_figure((max(width, 4.0), nrows * (panel + 0.4) + 0.5))
    else:
        _reuse(fig)
    notes = {"rotated": False, "scale": None, "shape": None, "units": set()}
    tags = {"science": "S", "template": "T", "difference": "D"}
    if difference_only:
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, sid in zip(axes, ids):
            c = batch.cutouts(sid)
            notes["units"].add(_bunit(c))
            notes["rotated"] |= _draw_stamp(ax, c["difference"], c.wcs, north, stretch, cmap)
            notes["scale"] = notes["scale"] or _stamp_scale_arcsec(c)
            notes["shape"] = notes["shape"] or (None if c["difference"] is None else c["difference"].shape)
            ax.set_title(_alert_title(src, sid, with_time), fontsize=6)
        for ax in axes[len(ids):]:
            ax.set_axis_off()
    else:
        subfigs = np.atleast_1d(fig.subfigures(nrows, ncols, squeeze=False)).ravel()
        for sf, sid in zip(subfigs, ids):
            c = batch.cutouts(sid)
            notes["units"].add(_bunit(c))
            axes = sf.subplots(1, 3)
            for ax, name in zip(axes, STAMPS):
                notes["rotated"] |= _draw_stamp(ax, c[name], c.wcs, north, stretch, cmap, tags[name])
                if c[name] is not None:
                    notes["shape"] = notes["shape"] or c[name].shape
            notes["scale"] = notes["scale"] or _stamp_scale_arcsec(c)
            sf.suptitle(_alert_title(src, sid, with_time), fontsize=7)
        for sf in subfigs[len(ids):]:
            sf.set_visible(False)
    caption = [] if difference_only else ["S science, T template, D difference"]
    if notes["shape"] is not None:
        ny, nx = notes["shape"]
        size = f"{nx}x{ny} px"
        if notes["scale"]:
            size += f" ({nx * notes['scale']:.1f}\" x {ny * notes['scale']:.1f}\")"
        caption.append(size)
    caption.append("north up, east left" if notes["rotated"] else "pixel grid")
    units = sorted(u for u in notes["units"] if u)  # the stamps' own BUNIT: nJy for Rubin, DN for ZTF
    caption.append(f"{stretch} stretch, {' / '.join(units) or 'unknown units'}")
    import textwrap

    width_chars = max(30, int(fig.get_figwidth() * 15))
    fig.suptitle(f"{title}\n" + textwrap.fill("; ".join(caption), width_chars), fontsize=8)
    return fig


def _bunit(c) -> str:
    """The pixel unit of an alert's stamps, from the difference stamp's FITS header (``BUNIT``)."""
    headers = getattr(c, "headers", None) or {}
    return str((headers.get("difference") or {}).get("BUNIT", "") or "")


def plot_cutout_gallery(batch, ids=None, n=12, difference_only=False, fig=None, *, ncols=None, sort_by=None,
                        ascending=False, stretch="zscale", north=True, cmap="gray"):
    """Draw many alerts' stamps in a grid, each titled with its id, band, magnitude and reliability; return the Figure.

    Parameters
    ----------
    batch : AlertBatch
    ids : sequence of diaSourceId, optional
        The alerts to show (in this order); by default the first ``n`` of the batch
        (after sorting by ``sort_by`` when given).
    n : int
        How many alerts when ``ids`` is not given.
    difference_only : bool
        One difference stamp per alert, instead of science / template / difference triplets.
    fig : matplotlib Figure, optional
        Drawn into (cleared); a new one otherwise.
    ncols : int, optional
        Alerts per row (default 2 triplets, or 6 difference stamps).
    sort_by : str, optional
        A column of ``batch.sources`` to pick the alerts by (e.g. ``"reliability"``).
    stretch : {"zscale", "asinh", "percentile"}
    north : bool
        Resample north up, east left where the stamps have a WCS.

    Returns
    -------
    matplotlib.figure.Figure
        The caption (suptitle) gives the stamp size in pixels and arcsec, orientation and stretch.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import plot_cutout_gallery
    >>> batch = lk.load_sample()
    >>> fig = plot_cutout_gallery(batch, n=6, difference_only=True)
    >>> len(fig.axes), str(batch.sources.index[0]) in fig.axes[0].get_title()
    (6, True)
    """
    src = batch.sources
    if ids is None:
        order = src.sort_values(sort_by, ascending=ascending, kind="stable") if sort_by else src
        ids = order.index[:n]
    ids = list(ids)
    if ncols is None:
        ncols = min(len(ids), 6 if difference_only else 2) or 1
    title = f"{len(ids)} alerts" + (f" by {sort_by}" if sort_by else "")
    return _gallery(batch, ids, fig, difference_only=difference_only, ncols=ncols, stretch=stretch, north=north,
                    cmap=cmap, with_time=False, title=title)


def plot_object_cutouts(batch, diaObjectId, fig=None, *, difference_only=False, ncols=None, stretch="zscale",
                        north=True, cmap="gray"):
    """Draw every stamp of one object's alerts in the batch, in time order; return the Figure.

    Parameters
    ----------
    batch : AlertBatch
    diaObjectId : int or str
    fig : matplotlib Figure, optional
    difference_only : bool
        Only the difference stamps (a row of them) instead of one science / template /
        difference triplet per alert (one per row).
    ncols : int, optional
        Alerts per row (default 1 triplet, or up to 6 difference stamps).

    Returns
    -------
    matplotlib.figure.Figure
        Each alert titled with its diaSourceId, MJD (TAI), band, magnitude and reliability.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import plot_object_cutouts
    >>> batch = lk.load_sample()
    >>> oid = batch.sources["diaObjectId"].value_counts().index[0]
    >>> fig = plot_object_cutouts(batch, oid)
    >>> len(fig.axes)  # two alerts, three stamps each
    6
    """
    src = batch.sources
    mine = src[src["diaObjectId"] == diaObjectId]
    if mine.empty:
        raise KeyError(f"no alerts of diaObjectId {diaObjectId!r} in this batch")
    ids = mine.sort_values("midpointMjdTai", kind="stable").index
    if ncols is None:
        ncols = min(len(ids), 6) if difference_only else 1
    title = f"diaObjectId {diaObjectId}: {len(ids)} alert{'s' * (len(ids) != 1)} in time order"
    return _gallery(batch, ids, fig, difference_only=difference_only, ncols=ncols, stretch=stretch, north=north,
                    cmap=cmap, with_time=True, title=title)


# --------------------------------------------------------------------------- colour
def _detections(batch, diaObjectId):
    parts = []
    h = getattr(batch, "history", None)
    if h is not None and len(h):
        d = h[h["diaObjectId"] == diaObjectId]
        if "kind" in d.columns:
            d = d[d["kind"] == "detection"]
        parts.append(d)
    src = _sources(batch)
    s = src[src["diaObjectId"] == diaObjectId]
    if len(s):
        parts.append(s.rename_axis("diaSourceId").reset_index() if "diaSourceId" not in s.columns else s)
    if not parts:
        return pd.DataFrame(columns=["diaSourceId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"])
    cols = ["diaSourceId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]
    det = pd.concat([p[cols] for p in parts], ignore_index=True)
    det["diaSourceId"] = pd.to_numeric(det["diaSourceId"], errors="coerce")
    with_id = det[det["diaSourceId"].notna()].drop_duplicates("diaSourceId")
    det = pd.concat([with_id, det[det["diaSourceId"].isna()]]).drop_duplicates(["midpointMjdTai", "band"])
    det["band"] = det["band"].astype(str)
    return det.sort_values("midpointMjdTai", kind="stable").reset_index(drop=True)


def colour_pairs(batch, diaObjectId, bands=("g", "r"), max_dt_days=0.1):
    """Colours of one object from near-simultaneous pairs of detections (history and alerts).

    Each detection in ``bands[0]`` is paired with the nearest unused detection in
    ``bands[1]`` within ``max_dt_days`` (closest pairs first); pairs where either
    flux is not positive are dropped (no magnitude).

    Parameters
    ----------
    batch : AlertBatch
    diaObjectId : int or str
    bands : (str, str)
    max_dt_days : float

    Returns
    -------
    pandas.DataFrame
        ``midpointMjdTai`` (mean of the pair), ``colour`` (mag, ``bands[0] - bands[1]``),
        ``colourErr`` (mag), ``dt_days`` and both ``diaSourceId`` values.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import colour_pairs
    >>> batch = lk.load_sample()
    >>> pairs = colour_pairs(batch, 1000000000000224)  # g - r pairs: one on the alert night, one earlier
    >>> len(pairs), bool((pairs["dt_days"].abs() <= 0.1).all())
    (2, True)
    >>> len(colour_pairs(batch, 1000000000000224, bands=("r", "i")))  # an r - i pair in its history
    1
    """
    b1, b2 = (str(b) for b in bands)
    det = _detections(batch, diaObjectId)
    one, two = det[det["band"] == b1], det[det["band"] == b2]
    out_cols = ["midpointMjdTai", "colour", "colourErr", "dt_days", "diaSourceId_1", "diaSourceId_2"]
    if one.empty or two.empty:
        return pd.DataFrame(columns=out_cols)
    t1, t2 = one["midpointMjdTai"].to_numpy(float), two["midpointMjdTai"].to_numpy(float)
    dt = t2[None, :] - t1[:, None]
    i, j = np.nonzero(np.abs(dt) <= max_dt_days)
    order = np.argsort(np.abs(dt[i, j]), kind="stable")
    used1, used2, rows = set(), set(), []
    for k in order:
        a, b = int(i[k]), int(j[k])
        if a in used1 or b in used2:
            continue
        used1.add(a)
        used2.add(b)
        f1, e1 = float(one["psfFlux"].iloc[a]), float(one["psfFluxErr"].iloc[a])
        f2, e2 = float(two["psfFlux"].iloc[b]), float(two["psfFluxErr"].iloc[b])
        if not (f1 > 0 and f2 > 0):
            continue
        rows.append({
            "midpointMjdTai": 0.5 * (t1[a] + t2[b]),
            "colour": -2.5 * np.log10(f1 / f2),
            "colourErr": 2.5 / np.log(10) * np.hypot(e1 / f1, e2 / f2),
            "dt_days": float(dt[a, b]),
            "diaSourceId_1": one["diaSourceId"].iloc[a],
            "diaSourceId_2": two["diaSourceId"].iloc[b],
        })
    return pd.DataFrame(rows, columns=out_cols).sort_values("midpointMjdTai", kind="stable").reset_index(drop=True)


def plot_colour_curve(batch, diaObjectId, bands=("g", "r"), max_dt_days=0.1, ax=None, *, color="k", reference=None):
    """Plot one object's colour against time from near-simultaneous pairs of detections; return the Axes.

    The pairs come from :func:`colour_pairs` (history and alerts, within ``max_dt_days``).
    Where there are none the Axes says so (and keeps its labels).

    Parameters
    ----------
    batch : AlertBatch
    diaObjectId : int or str
    bands : (str, str)
        The colour is ``bands[0] - bands[1]`` in AB mag (bluer band first: redder is up).
    max_dt_days : float
    ax : matplotlib Axes, optional
    reference : float, optional
        The MJD that x = 0 stands for: e.g. ``time_reference(ax_lc)`` of a light curve drawn
        beside it by :func:`~lsstuk_kit.lightcurves.plot_lightcurve`, so both share one time axis.
        Default: the whole MJD of the first pair.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import plot_colour_curve
    >>> ax = plot_colour_curve(lk.load_sample(), 1000000000000224)  # g - r, the sample's alert night included
    >>> ax.get_ylabel()
    'g - r (mag)'
    """
    b1, b2 = (str(b) for b in bands)
    pairs = colour_pairs(batch, diaObjectId, bands, max_dt_days)
    if ax is None:
        ax = _new_figure((6, 3.4)).subplots()
    ax.set_ylabel(f"{b1} - {b2} (mag)")
    title = f"diaObjectId {diaObjectId}: {b1} - {b2}, pairs within {max_dt_days:g} d"
    if pairs.empty:
        ax.text(0.5, 0.5, f"no {b1}/{b2} detection pairs within {max_dt_days:g} d", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xlabel("time (MJD, TAI)")
        ax.set_title(title, fontsize=10)
        return ax
    t = pairs["midpointMjdTai"].to_numpy(float)
    ref = float(np.floor(t.min())) if reference is None else float(reference)
    ax.errorbar(t - ref, pairs["colour"], pairs["colourErr"], fmt="o", color=color, ms=5, lw=0.8, capsize=2)
    label = f"MJD - {ref:.0f} (TAI)" if ref == int(ref) else f"days since MJD {ref:.2f} (TAI)"
    _time_axis(ax, ref, label, False)
    ax._lsstuk_time_reference = ref
    if len(t) == 1:
        ax.set_xlim(t[0] - ref - 1, t[0] - ref + 1)
    ax.set_title(title, fontsize=10)
    return ax


# --------------------------------------------------------------------------- night
def plot_night(batch, fig=None, *, sky="mollweide", hour_bin=1.0):
    """Summarise a night of alerts in one figure; return the Figure.

    Six panels: alerts per hour (stacked by band), alerts per band, sky positions
    (:func:`plot_sky`), and histograms of magnitude, S/N and reliability, with one band
    legend outside the panels.

    Parameters
    ----------
    batch : AlertBatch (or its sources DataFrame)
    fig : matplotlib Figure, optional
        Drawn into (cleared); a new one otherwise.
    sky : {"mollweide", "zoom"}
        The sky panel's projection.
    hour_bin : float
        Width (hours) of the time bins.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.views import plot_night
    >>> fig = plot_night(lk.load_sample(), sky="zoom")
    >>> [ax.get_xlabel() for ax in fig.axes][:2]
    ['hours since MJD 61099.0 (TAI)', 'band']
    """
    src = _sources(batch)
    if src.empty:
        raise ValueError("no alerts to summarise")
    if fig is None:
        fig = _new_figure((12, 6.8))
    else:
        _reuse(fig)
    t = src["midpointMjdTai"].to_numpy(float)
    mjd0 = float(np.floor(np.nanmin(t)))
    bands_all = src["band"].astype(str).to_numpy() if "band" in src else np.full(len(src), "?")
    bands = _band_order(set(bands_all))
    colours = [BAND_COLORS.get(b, "0.5") for b in bands]
    split = lambda v: [v[bands_all == b] for b in bands]  # noqa: E731

    gs = fig.add_gridspec(2, 3)
    ax_t = fig.add_subplot(gs[0, 0])
    ax_b = fig.add_subplot(gs[0, 1])
    ax_s = fig.add_subplot(gs[0, 2], projection="mollweide" if sky == "mollweide" else None)
    ax_m = fig.add_subplot(gs[1, 0])
    ax_n = fig.add_subplot(gs[1, 1])
    ax_r = fig.add_subplot(gs[1, 2])

    hours = (t - mjd0) * 24.0
    lo = np.floor(np.nanmin(hours) / hour_bin) * hour_bin
    hi = max(np.ceil(np.nanmax(hours) / hour_bin) * hour_bin, lo + hour_bin)
    ax_t.hist(split(hours), bins=np.arange(lo, hi + hour_bin / 2, hour_bin), stacked=True, color=colours,
              label=bands)
    ax_t.set_xlabel(f"hours since MJD {mjd0:.1f} (TAI)")
    ax_t.set_ylabel(f"alerts per {hour_bin:g} h")
    ax_t.set_title("alerts per hour", fontsize=9)

    counts = [int((bands_all == b).sum()) for b in bands]
    ax_b.bar(bands, counts, color=colours)
    ax_b.set_xlabel("band")
    ax_b.set_ylabel("alerts (count)")
    ax_b.set_title("alerts per band", fontsize=9)

    plot_sky(src, ax=ax_s, projection=sky, legend=False, s=4, grid_step=60.0)
    ax_s.set_title(f"{len(src)} alerts on the sky", fontsize=9)

    def hist(ax, values, bins, xlabel, title, log=False):
        v = [x[np.isfinite(x)] for x in split(values)]
        if not any(len(x) for x in v):
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.hist(v, bins=bins, stacked=True, color=colours)
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("alerts per bin")
        ax.set_title(title, fontsize=9)

    mag = src["mag"].to_numpy(float) if "mag" in src else np.full(len(src), np.nan)
    fin = mag[np.isfinite(mag)]
    mbins = np.arange(np.floor(fin.min() * 2) / 2, np.ceil(fin.max() * 2) / 2 + 0.25, 0.25) if fin.size else 10
    hist(ax_m, mag, mbins, "AB magnitude (mag)", "magnitude (0.25 mag bins)")
    snr = np.abs(src["snr"].to_numpy(float)) if "snr" in src else np.full(len(src), np.nan)
    pos = snr[np.isfinite(snr) & (snr > 0)]
    sbins = np.geomspace(pos.min(), pos.max() * 1.0001, 25) if pos.size > 1 else 10
    hist(ax_n, np.where(snr > 0, snr, np.nan), sbins, "|S/N| (psfFlux / psfFluxErr)", "signal-to-noise", log=True)
    rel = src["reliability"].to_numpy(float) if "reliability" in src else np.full(len(src), np.nan)
    hist(ax_r, rel, np.linspace(0, 1, 21), "reliability (probability, 0-1)", "reliability score")

    from matplotlib.patches import Patch

    fig.legend([Patch(color=c) for c in colours], bands, title="band", loc="outside right upper", frameon=False,
               fontsize=8, title_fontsize=8)
    n_obj = src["diaObjectId"].nunique() if "diaObjectId" in src else None
    fig.suptitle(f"Night of {_mjd_to_date(mjd0)} (MJD {mjd0:.0f}): {len(src)} alerts"
                 + (f", {n_obj} objects" if n_obj is not None else ""), fontsize=11)
    return fig
