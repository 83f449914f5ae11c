"""Plot layout: readable time axes, legends outside the data, colour bars whose labels do not collide."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit.cutouts import plot_cutouts
from lsstuk_kit.lightcurves import plot_lightcurve

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sample():
    return lk.load_sample()


def _draw(fig):
    """Draw on an Agg canvas (figures built outside pyplot have none) and return its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _visible_labels(axis, renderer):
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in axis.get_major_ticks():
        text = tick.label1
        if text.get_visible() and text.get_text() and lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
            out.append((text.get_text(), text.get_window_extent(renderer)))
    return out


def _assert_no_overlap(labelled):
    boxes = [bb for _, bb in labelled]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), f"tick labels overlap: {labelled[i][0]!r} / {labelled[j][0]!r}"


@pytest.mark.parametrize("unit,time,dates", [("mag", "mjd", False), ("flux", "mjd", True), ("flux", "days", False)])
def test_lightcurve_time_axis_and_legend(sample, unit, time, dates):
    from matplotlib.figure import Figure

    oid = sample.history["diaObjectId"].value_counts().index[0]
    t0 = float(sample.history.loc[(sample.history["diaObjectId"] == oid)
                                  & (sample.history["kind"] == "detection"), "midpointMjdTai"].min())
    fig = Figure(figsize=(3.6, 3.0))  # a narrow panel, as in a two-panel notebook figure
    ax = fig.subplots()
    plot_lightcurve(sample, oid, ax=ax, unit=unit, time=time, dates=dates)
    renderer = _draw(fig)

    labels = _visible_labels(ax.xaxis, renderer)
    assert len(labels) >= 3
    _assert_no_overlap(labels)
    assert all(len(text) <= 4 for text, _ in labels), [t for t, _ in labels]  # offsets, not 5-digit MJDs
    assert ax.xaxis.get_offset_text().get_text() == ""  # no hidden "+6.106e4" offset

    xlabel = ax.get_xlabel()
    if time == "mjd":
        assert f"MJD - {int(np.floor(t0))}" in xlabel
    else:
        assert "days since" in xlabel and f"{t0:.2f}" in xlabel

    legend = ax.get_legend()
    assert legend is not None
    data_area = ax.get_window_extent(renderer)
    assert not legend.get_window_extent(renderer).overlaps(data_area)
    ylabel = ax.yaxis.label.get_window_extent(renderer)
    assert not legend.get_window_extent(renderer).overlaps(ylabel)

    if dates:
        tops = [c for c in ax.child_axes]
        assert tops and "date" in tops[0].get_xlabel()
        _assert_no_overlap(_visible_labels(tops[0].xaxis, renderer))


def test_lightcurve_axis_readable_over_years(sample):
    """A long span (years) still gets a few non-overlapping labels."""
    h = sample.history.copy()
    oid = h["diaObjectId"].value_counts().index[0]
    sel = h["diaObjectId"] == oid
    h.loc[sel, "midpointMjdTai"] = np.linspace(60000.3, 62500.7, int(sel.sum()))
    ax = plot_lightcurve(h, oid, dates=True)
    fig = ax.figure
    renderer = _draw(fig)
    labels = _visible_labels(ax.xaxis, renderer)
    assert 3 <= len(labels) <= 8
    _assert_no_overlap(labels)
    assert "MJD - 60000" in ax.get_xlabel()


@pytest.mark.parametrize("stretch", ["asinh", "zscale"])
def test_cutout_colourbar_labels_do_not_overlap(sample, stretch):
    from matplotlib.figure import Figure

    fig = plot_cutouts(sample, sample.sources.index[0], Figure(figsize=(9, 3.4)), stretch=stretch)
    renderer = _draw(fig)
    bars = [ax for ax in fig.axes if not ax.get_images()]
    assert len(bars) == 3
    for cb_ax in bars:
        labels = _visible_labels(cb_ax.xaxis, renderer)
        assert 2 <= len(labels) <= 4
        _assert_no_overlap(labels)
        assert all(len(text) <= 5 for text, _ in labels), [t for t, _ in labels]


def test_cutout_north_up_corners_masked_and_noted(sample):
    fig = plot_cutouts(sample, sample.sources.index[0], stretch="asinh")
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    arr = images[0].get_array()
    assert np.ma.is_masked(arr) and np.ma.count_masked(arr) > 0  # the corners outside the stamp
    assert images[0].get_cmap().get_bad()[3] > 0  # drawn in an opaque neutral colour, not white/transparent
    assert "no data" in fig._suptitle.get_text()


def test_filter_backtest_plot_has_readable_time_ticks():
    import matplotlib.pyplot as plt

    from lsstuk_kit.lasair import LasairFilter, run_filter

    res = run_filter(lk.load_sample(), LasairFilter("objects.diaObjectId", "objects.nDiaSources >= 2"), max_share=1.0)
    fig, ax = plt.subplots(figsize=(7, 3))
    res.plot(ax=ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert 3 <= len(labels) <= 8
    assert all(len(t.get_text()) <= 6 for t in labels), [t.get_text() for t in labels]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)
