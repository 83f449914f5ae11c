"""The first views (lsstuk_kit.views): structural checks for every helper, image comparison for two key figures.

Baselines live in ``tests/baseline/`` with the matplotlib / FreeType versions that drew them
(``versions.json``); the image tests skip where those differ. To redraw them (after a deliberate change,
then look at every image before committing)::

    LSSTUK_KIT_WRITE_BASELINES=1 MPLBACKEND=Agg .venv/bin/python -m pytest tests/test_plots.py -k image
"""

from __future__ import annotations

import json
import os
import re
import types
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from lsstuk_kit.surveys.common import BAND_COLORS
from lsstuk_kit.views import (
    colour_pairs,
    plot_colour_curve,
    plot_cutout_gallery,
    plot_night,
    plot_object_cutouts,
    plot_sky,
)

matplotlib.use("Agg")

BASELINE = Path(__file__).resolve().parent / "baseline"


def _draw(fig):
    """Draw on an Agg canvas (figures built outside pyplot have none) and return its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig) if not isinstance(fig.canvas, FigureCanvasAgg) else fig.canvas
    canvas.draw()
    return canvas.get_renderer()


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def _has_unit(label):
    return bool(re.search(r"\(.+\)", label))


@pytest.fixture(scope="module")
def moc():
    import astropy.units as u

    from lsstuk_kit.skyareas import Watchmap

    return Watchmap.from_circle(60.0, -10.0, radius=15 * u.deg, max_depth=9, name="circle")


# --------------------------------------------------------------------------- plot_sky
def test_sky_mollweide_ra_increases_to_the_left(batch):
    ax = plot_sky(batch)
    assert ax.name == "mollweide"
    # a point at larger RA lands further left on the screen
    from lsstuk_kit.views import _SkyFrame

    frame = _SkyFrame(ax, "mollweide", 180.0)
    xs = [ax.transData.transform(np.column_stack(frame.xy([ra], [0.0])))[0, 0] for ra in (30.0, 90.0, 200.0, 330.0)]
    assert xs == sorted(xs, reverse=True)
    # the tick labels read the same way: decreasing from left to right, in degrees
    ticks = ax.get_xticks()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    values = [float(lbl.rstrip("°")) for lbl in labels]
    assert all(lbl.endswith("°") for lbl in labels)
    assert np.all(np.diff(ticks) > 0) and np.all(np.diff(values) < 0)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("RA (deg)", "Dec (deg)")
    _close(ax.figure)


def test_sky_hours_labels(batch):
    ax = plot_sky(batch, ra_unit="hours")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "22h" and labels[-1] == "2h"
    assert ax.get_xlabel() == "RA (h)"
    _close(ax.figure)


def test_sky_band_colours_and_legend_outside(batch):
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.add_subplot(projection="mollweide")
    assert plot_sky(batch, ax=ax) is ax
    renderer = _draw(fig)
    legend = ax.get_legend()
    assert legend is not None and legend.get_title().get_text() == "band"
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    by_label = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert set(by_label) == set(batch.sources["band"].unique())
    for band, handle in by_label.items():
        assert matplotlib.colors.same_color(handle.get_facecolor()[0], BAND_COLORS[band])


@pytest.mark.parametrize("column,label", [("mag", "AB magnitude (mag)"),
                                          ("reliability", "reliability (probability, 0-1)"),
                                          ("midpointMjdTai", "time (MJD, TAI)")])
@pytest.mark.parametrize("projection", ["mollweide", "zoom"])
def test_sky_colour_bar_has_units(batch, column, label, projection):
    ax = plot_sky(batch, color=column, projection=projection)
    bars = [a for a in ax.figure.axes if a is not ax]
    assert len(bars) == 1
    bar_label = bars[0].get_xlabel() if projection == "mollweide" else bars[0].get_ylabel()
    assert bar_label == label
    values = ax.collections[0].get_array()
    assert np.allclose(np.sort(values), np.sort(batch.sources[column].to_numpy(float)))
    _close(ax.figure)


def test_sky_zoom_inverted_and_aspect(batch):
    src = batch.sources[batch.sources["ra"] > 80]
    ax = plot_sky(src, projection="zoom", color="snr", color_label="S/N")
    assert ax.xaxis_inverted() and not ax.yaxis_inverted()
    dec0 = np.mean(ax.get_ylim())
    assert ax.get_aspect() == pytest.approx(1 / np.cos(np.radians(dec0)))
    lo, hi = sorted(ax.get_xlim())
    assert lo <= src["ra"].min() and hi >= src["ra"].max()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("RA (deg)", "Dec (deg)")
    _close(ax.figure)


def test_sky_zoom_hours_ticks(batch):
    src = batch.sources[batch.sources["ra"] > 80]
    ax = plot_sky(src, projection="zoom", ra_unit="hours")
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 2 and all(re.fullmatch(r"\d+h(\d\dm)?", v) for v in labels), labels
    assert ax.get_xlabel() == "RA (h)" and ax.xaxis_inverted()
    _close(ax.figure)


def test_sky_zoom_across_ra_zero():
    df = pd.DataFrame({"ra": [359.5, 359.9, 0.2, 0.6], "dec": [-1.0, 0.0, 0.5, 1.0], "mag": [20, 21, 22, 23]})
    ax = plot_sky(df, projection="zoom")
    lo, hi = sorted(ax.get_xlim())
    assert hi - lo < 3  # one compact region, not a plot spanning 0..360
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert all(0 <= float(v) < 360 for v in labels)
    _close(ax.figure)


def test_sky_moc_outline_follows_the_border(batch, moc):
    ax = plot_sky(batch, projection="zoom", moc=moc)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and lines[0].get_label() == "circle"
    pts = np.concatenate(lines[0].get_segments())
    ra, dec = np.radians(pts[:, 0]), np.radians(pts[:, 1])
    c_ra, c_dec = np.radians(60.0), np.radians(-10.0)
    sep = np.degrees(np.arccos(np.clip(np.sin(dec) * np.sin(c_dec) + np.cos(dec) * np.cos(c_dec)
                                       * np.cos(ra - c_ra), -1, 1)))
    assert np.all(np.abs(sep - 15.0) < 0.5)  # the border only, within about a cell of the circle
    assert "circle" in [t.get_text() for t in ax.get_legend().get_texts()]
    _close(ax.figure)


def test_sky_moc_fill_and_catalogue(batch, moc):
    cat = batch.sources.head(7)[["ra", "dec"]]
    ax = plot_sky(batch, moc=moc.moc, moc_style="fill", catalog=cat, catalog_label="my galaxies")
    fills = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_label() == "MOC"]
    assert len(fills) == 1 and len(fills[0].get_paths()) > 100
    cats = [c for c in ax.collections if c.get_label() == "my galaxies"]
    assert len(cats) == 1 and len(cats[0].get_offsets()) == 7
    _close(ax.figure)


def test_sky_input_errors(batch):
    fig = Figure()
    with pytest.raises(ValueError, match="mollweide"):
        plot_sky(batch, ax=fig.add_subplot())
    with pytest.raises(KeyError, match="ra"):
        plot_sky(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="projection"):
        plot_sky(batch, projection="aitoff")


def test_no_global_pyplot_state(batch):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    fig = Figure(layout="constrained")
    plot_sky(batch, ax=fig.add_subplot(), projection="zoom")
    plot_night(batch, fig=Figure())
    assert set(plt.get_fignums()) == before  # drawing into given figures never touches pyplot
    ax = plot_sky(batch)
    assert set(plt.get_fignums()) == before | {ax.figure.number}  # ax=None: exactly one new pyplot figure
    _close(ax.figure)


# --------------------------------------------------------------------------- cutouts
def test_gallery_triplets_titled(batch):
    ids = list(batch.sources.index[:5])
    fig = plot_cutout_gallery(batch, ids=ids, fig=Figure())
    assert len([a for a in fig.axes if a.get_images()]) == 15
    titles = [sf._suptitle.get_text() for sf in fig.subfigs if sf.get_visible()]
    assert len(titles) == 5
    for sid, title in zip(ids, titles):
        row = batch.sources.loc[sid]
        assert str(sid) in title and f"{row['band']} " in title
        assert f"{row['mag']:.2f} mag" in title and f"rel {row['reliability']:.2f}" in title
    caption = fig._suptitle.get_text()
    assert "30x30 px" in caption and "arcsec" not in caption and '6.0"' in caption and "north up" in caption


def test_gallery_difference_only_sorted(batch):
    fig = plot_cutout_gallery(batch, n=8, difference_only=True, sort_by="reliability", fig=Figure())
    axes = [a for a in fig.axes if a.get_images()]
    assert len(axes) == 8
    top = batch.sources.sort_values("reliability", ascending=False, kind="stable").index[:8]
    assert [a.get_title().split("\n")[0] for a in axes] == [str(i) for i in top]
    assert all(re.search(r"\n[a-z]  \d+\.\d\d mag  rel \d\.\d\d$", a.get_title()) for a in axes)
    with pytest.raises(KeyError):
        plot_cutout_gallery(batch, ids=[12345])


def test_object_cutouts_in_time_order(batch):
    oid = batch.sources["diaObjectId"].value_counts().index[0]
    mine = batch.sources[batch.sources["diaObjectId"] == oid].sort_values("midpointMjdTai")
    fig = plot_object_cutouts(batch, oid, fig=Figure())
    assert len([a for a in fig.axes if a.get_images()]) == 3 * len(mine)
    titles = [sf._suptitle.get_text() for sf in fig.subfigs]
    assert [t.split()[0] for t in titles] == [str(i) for i in mine.index]
    mjds = [float(re.search(r"MJD (\d+\.\d+)", t).group(1)) for t in titles]
    assert mjds == sorted(mjds)
    assert str(oid) in fig._suptitle.get_text()
    diff = plot_object_cutouts(batch, oid, difference_only=True, fig=Figure())
    assert len(diff.axes) == len(mine)
    with pytest.raises(KeyError, match="diaObjectId"):
        plot_object_cutouts(batch, -1)


# --------------------------------------------------------------------------- colour
def _toy_batch():
    """One object: g/r pairs 0.05 d apart (one with a negative flux), an unpaired g, an alert repeating history."""
    hist = pd.DataFrame({
        "diaSourceId": [1, 2, 3, 4, 5, 6, 7],
        "diaObjectId": 9,
        "midpointMjdTai": [60000.00, 60000.05, 60001.00, 60001.50, 60002.00, 60002.04, 60002.02],
        "band": ["g", "r", "g", "r", "g", "r", "r"],
        "psfFlux": [1000.0, 2000.0, 1000.0, 1000.0, -50.0, 1000.0, 1500.0],
        "psfFluxErr": [100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0],
        "kind": "detection",
    })
    src = hist.iloc[[1]].set_index("diaSourceId")  # the latest alert also appears in the history
    return types.SimpleNamespace(history=hist, sources=src)


def test_colour_pairs_values():
    pairs = colour_pairs(_toy_batch(), 9, bands=("g", "r"), max_dt_days=0.1)
    # (1, 2) pairs; 3 has no r within 0.1 d; 5 pairs with 7 (closest) but has a negative flux: dropped
    assert pairs["diaSourceId_1"].tolist() == [1] and pairs["diaSourceId_2"].tolist() == [2]
    assert pairs["colour"].iloc[0] == pytest.approx(2.5 * np.log10(2.0))
    assert pairs["colourErr"].iloc[0] == pytest.approx(1.0857 * np.hypot(0.1, 0.05), rel=1e-3)
    assert pairs["midpointMjdTai"].iloc[0] == pytest.approx(60000.025)
    wide = colour_pairs(_toy_batch(), 9, bands=("g", "r"), max_dt_days=0.6)
    assert wide["diaSourceId_1"].tolist() == [1, 3]  # each detection used at most once


def test_colour_curve_axes(batch):
    ax = plot_colour_curve(_toy_batch(), 9, bands=("g", "r"), max_dt_days=0.6)
    assert ax.get_ylabel() == "g - r (mag)"
    assert ax.get_xlabel() == "MJD - 60000 (TAI)"
    assert "9" in ax.get_title() and "0.6 d" in ax.get_title()
    assert len(ax.containers) == 1 and len(ax.containers[0].lines[0].get_xdata()) == 2
    _close(ax.figure)
    # a sample supernova: two g/r pairs (one on the alert night, one earlier), one r/i pair in its history,
    # no u/g pair
    ax = plot_colour_curve(batch, 1000000000000224, ax=Figure().subplots())
    assert ax.get_ylabel() == "g - r (mag)" and len(ax.containers[0].lines[0].get_xdata()) == 2
    ax = plot_colour_curve(batch, 1000000000000224, bands=("r", "i"), ax=Figure().subplots())
    assert len(ax.containers[0].lines[0].get_xdata()) == 1
    empty = plot_colour_curve(batch, 1000000000000224, bands=("u", "g"), ax=Figure().subplots())
    assert "no u/g detection pairs" in empty.texts[0].get_text() and _has_unit(empty.get_xlabel())


# --------------------------------------------------------------------------- night
def test_night_panels_labels_legend(batch):
    fig = plot_night(batch, fig=Figure(figsize=(12, 6.8)))
    assert len(fig.axes) == 6
    hours, bands, sky, mag, snr, rel = fig.axes
    assert sky.name == "mollweide"
    for ax in (hours, mag, snr, rel, sky):
        assert _has_unit(ax.get_xlabel()), ax.get_xlabel()
    for ax in (hours, bands, mag, snr, rel):
        assert "alerts" in ax.get_ylabel()
    assert bands.get_xlabel() == "band" and _has_unit(bands.get_ylabel())
    assert snr.get_xscale() == "log"
    assert [t.get_text() for t in bands.get_xticklabels()] == ["g", "r", "i"]  # wavelength order
    assert sum(p.get_height() for p in bands.patches) == len(batch.sources)
    tops = {}  # stacked bars: the top of each hour's stack is the number of alerts in that hour
    for p in hours.patches:
        tops[round(p.get_x(), 6)] = max(tops.get(round(p.get_x(), 6), 0), p.get_y() + p.get_height())
    assert sum(tops.values()) == len(batch.sources)
    renderer = _draw(fig)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["g", "r", "i"]
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert "2026-02-28" in fig._suptitle.get_text() and "679 alerts" in fig._suptitle.get_text()


def test_night_zoom_sky(batch):
    fig = plot_night(batch.sources, fig=Figure(), sky="zoom")
    assert fig.axes[2].xaxis_inverted()


# --------------------------------------------------------------------------- image comparison
def _versions():
    import matplotlib.ft2font as ft2font

    return {"matplotlib": matplotlib.__version__, "freetype": ft2font.__freetype_version__}


def _check_image(fig, name, tmp_path, tol=2.0):
    from matplotlib.testing.compare import compare_images

    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=fig.dpi)
    baseline = BASELINE / f"{name}.png"
    meta = BASELINE / "versions.json"
    if os.environ.get("LSSTUK_KIT_WRITE_BASELINES"):
        BASELINE.mkdir(exist_ok=True)
        baseline.write_bytes(out.read_bytes())
        meta.write_text(json.dumps(_versions(), indent=1) + "\n")
        return
    if not baseline.is_file() or not meta.is_file():
        pytest.skip(f"no baseline image {baseline} (write them with LSSTUK_KIT_WRITE_BASELINES=1)")
    made_with = json.loads(meta.read_text())
    if made_with != _versions():
        pytest.skip(f"baselines were drawn with {made_with}, this is {_versions()}: text rendering differs")
    err = compare_images(str(baseline), str(out), tol=tol, in_decorator=True)
    assert err is None, f"{name}: differs from {baseline} (RMS {err['rms']:.2f} > {tol}); see {err['diff']}"


@pytest.fixture
def default_style():
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        plt.rcdefaults()
        yield


def test_image_night(batch, tmp_path, default_style):
    fig = plot_night(batch, fig=Figure(figsize=(12, 6.8), dpi=72))
    _check_image(fig, "night", tmp_path)


def test_image_cutout_gallery(batch, tmp_path, default_style):
    fig = plot_cutout_gallery(batch, ids=batch.sources.index[:4], fig=Figure(figsize=(8, 4.2), dpi=72))
    _check_image(fig, "cutout_gallery", tmp_path)


def test_gallery_caption_takes_the_stamps_own_unit():
    """Rubin stamps are in nJy, ZTF's in counts (DN): the caption says what the stamps' headers say."""
    import lsstuk_kit as lk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one Fink file's history ids stored as lossy doubles: reported, not used here
        real = lk.read_alerts(lk.real_alerts_path(), columns=["survey"])
    for survey, unit, other in (("ztf", "DN", "nJy"), ("lsst", "nJy", "DN")):
        ids = list(real.sources.index[(real.sources["survey"] == survey).to_numpy()][:2])
        caption = " ".join(lk.plot_cutout_gallery(real, ids=ids, difference_only=True)._suptitle.get_text().split())
        assert caption.endswith(f"stretch, {unit}") and other not in caption, caption


def test_colour_curve_shares_a_light_curves_time_axis(batch):
    """reference=time_reference(ax) puts the colour points at the light curve's own x offsets."""
    from matplotlib.figure import Figure

    from lsstuk_kit.lightcurves import plot_lightcurve, time_reference
    from lsstuk_kit.views import colour_pairs, plot_colour_curve

    oid = 1000000000000224
    axes = Figure(figsize=(10, 3.5)).subplots(1, 2)
    plot_lightcurve(batch, oid, ax=axes[0], time="days")
    ref = time_reference(axes[0])
    plot_colour_curve(batch, oid, ax=axes[1], reference=ref)
    assert time_reference(axes[1]) == ref and "days since MJD" in axes[1].get_xlabel()
    x = axes[1].containers[0].lines[0].get_xdata()
    np.testing.assert_allclose(np.sort(x), np.sort(colour_pairs(batch, oid)["midpointMjdTai"].to_numpy() - ref))
