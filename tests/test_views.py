"""Cutout plots and shape measures, light curves, the widget browser and the digest page."""

from __future__ import annotations

import os
import shutil
import subprocess

import matplotlib
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import lsstuk_kit as lk
from lsstuk_kit.cutouts import batch_shape_measures, north_up, plot_cutouts, save_stamp, shape_measures
from lsstuk_kit.lightcurves import lightcurve_features, plot_lightcurve

matplotlib.use("Agg")


@pytest.mark.parametrize("stretch", ["zscale", "asinh", "percentile"])
def test_plot_cutouts_rubin(batch, stretch):
    fig = plot_cutouts(batch, batch.sources.index[0], stretch=stretch)
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 3
    assert "N up" in images[0].get_title()
    assert len(fig.axes) == 6  # three panels, three colour bars


def test_plot_cutouts_real_alerts(real_alerts):
    for rel, shape in [("lsst/part-2-918301.avro", (30, 30)), ("ztf/ZTF19acihgng.avro", (63, 63))]:
        b = lk.read_alerts(real_alerts / rel)
        fig = plot_cutouts(b, b.sources.index[0])
        arr = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
        assert arr[0].shape == shape


def test_north_up_puts_north_up():
    # a stamp rotated by 90 deg: a source due north of the centre must land straight above it
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, -30.0]
    w.wcs.crpix = [15.5, 15.5]
    s = 0.2 / 3600
    w.wcs.pc = [[0.0, s], [s, 0.0]]  # +x is north, +y is east
    img = np.zeros((30, 30))
    img[14:16, 22:24] = 1.0  # 8 px along +x = north
    up = north_up(img, w)
    y, x = np.unravel_index(np.nanargmax(up), up.shape)
    assert y > 19 and abs(x - 14.5) <= 1.5


def test_shape_measures_separate_real_from_bogus(batch, truth):
    m = batch_shape_measures(batch)
    t = truth.loc[m.index]
    real = t["isReal"].to_numpy()
    dip = (t["bogusType"] == "dipole").to_numpy()
    assert m.loc[real, "peakOffset"].median() <= 1.0
    assert m.loc[dip, "negFraction"].median() > m.loc[real, "negFraction"].median() + 0.2
    # PSF-likeness: artefacts not shaped like the PSF (sharp cosmic rays and hot pixels, columns, bright-star
    # haloes) fit it far worse than real sources, and more bogus than real fit badly; noise fluctuations and
    # star residuals are PSF-shaped by construction, so the medians over all bogus and all real are close
    shaped = t["bogusType"].isin(["cosmic_ray", "hot_pixel", "bad_column", "bright_star"]).to_numpy()
    assert m.loc[shaped, "psfChi2"].median() > 5 * m.loc[real, "psfChi2"].median()
    assert (m.loc[~real, "psfChi2"] > 3).mean() > (m.loc[real, "psfChi2"] > 3).mean()
    # the measured FWHM of bright real sources is the visit's seeing (0.2 arcsec pixels), as the same
    # measure gives on Gaussians of that seeing and S/N (second moments within 5 px: below the true FWHM
    # for the wide PSFs of ~1.2 arcsec seeing)
    exp = pd.read_parquet(lk.sample_path() / "tables" / "exposures.parquet").set_index("expname")
    seeing_px = batch.sources["visit"].map(exp["fwhm"]).to_numpy() / 0.2
    bright = real & (batch.sources["snr"].abs() > 15).to_numpy()
    sig = seeing_px[bright] / 2.3548
    snr = batch.sources["snr"].abs().to_numpy()[bright]
    yy, xx = np.mgrid[:30, :30]
    s2 = sig[:, None, None] ** 2
    g = np.exp(-((xx - 14.5) ** 2 + (yy - 14.5) ** 2)[None] / (2 * s2)) / (2 * np.pi * s2)
    model = g * (snr * np.sqrt(4 * np.pi) * sig)[:, None, None] + np.random.default_rng(1).normal(0, 1, g.shape)
    expected = shape_measures(model)["fwhm"].to_numpy()
    assert np.median(m["fwhm"].to_numpy()[bright] / expected) == pytest.approx(1.0, abs=0.15)


def test_shape_measures_on_synthetic_stamps():
    yy, xx = np.mgrid[:30, :30]
    rng = np.random.default_rng(0)
    sig = 2.0
    gauss = np.exp(-((xx - 14.5) ** 2 + (yy - 14.5) ** 2) / (2 * sig**2))
    elong = np.exp(-((xx - 14.5) ** 2 / (2 * 4.0**2) + (yy - 14.5) ** 2 / (2 * 1.5**2)))
    dipole = np.exp(-((xx - 13) ** 2 + (yy - 14.5) ** 2) / 8) - np.exp(-((xx - 16) ** 2 + (yy - 14.5) ** 2) / 8)
    stack = np.stack([gauss, elong, dipole]) * 100 + rng.normal(0, 1, (3, 30, 30))
    m = shape_measures(stack)
    assert m.loc[0, "fwhm"] == pytest.approx(2.3548 * sig, rel=0.15)
    assert m.loc[0, "ellipticity"] < 0.15 < m.loc[1, "ellipticity"]
    assert m.loc[2, "negFraction"] > 0.3 > m.loc[0, "negFraction"]
    assert m.loc[0, "psfChi2"] < m.loc[1, "psfChi2"]


def test_save_stamp_png_and_fits(batch, tmp_path):
    sid = batch.sources.index[1]
    png = save_stamp(batch, sid, tmp_path / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    f = save_stamp(batch, sid, tmp_path / "d.fits", which="science")
    with fits.open(f) as h:
        assert np.allclose(h[0].data, batch.cutouts(sid).science)
    with pytest.raises(ValueError, match="png or .fits"):
        save_stamp(batch, sid, tmp_path / "d.jpg")


@pytest.mark.parametrize("unit,time", [("mag", "mjd"), ("flux", "days")])
def test_plot_lightcurve_draws_each_kind(batch, unit, time):
    oid = batch.history["diaObjectId"].value_counts().index[0]
    ax = plot_lightcurve(batch, oid, unit=unit, time=time)
    assert ax.get_ylabel() == ("AB magnitude" if unit == "mag" else "difference flux (nJy)")
    assert (unit == "mag") == ax.yaxis_inverted()
    lc = batch.lightcurve(oid)
    n_det = int((lc["kind"] == "detection").sum())
    plotted = sum(len(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "o")
    assert plotted >= n_det if unit == "flux" else plotted >= (lc.loc[lc["kind"] == "detection", "psfFlux"] != 0).sum()
    colours = {tuple(np.round(line.get_color() if isinstance(line.get_color(), tuple) else
                                matplotlib.colors.to_rgba(line.get_color()), 3)) for line in ax.get_lines()}
    assert len(colours) >= lc["band"].nunique() - 1
    with pytest.raises(KeyError):
        plot_lightcurve(batch, -5)


def test_ztf_upper_limits_drawn(real_alerts):
    b = lk.read_alerts(real_alerts / "ztf" / "ZTF19acyfkzd.avro")
    ax = plot_lightcurve(b, b.sources["diaObjectId"].iloc[0])
    markers = [c for c in ax.collections if c.get_paths() and len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in markers) >= 11  # its 11 upper limits


def test_lightcurve_features_match_a_loop(batch):
    f = lightcurve_features(batch)
    h = batch.history
    det = h[(h["kind"] == "detection") & (h["psfFlux"] > 0)]
    for oid in f.index[:15]:
        d = det[det["diaObjectId"] == oid]
        assert f.loc[oid, "nDetections"] == len(d)
        assert f.loc[oid, "duration"] == pytest.approx(d["midpointMjdTai"].max() - d["midpointMjdTai"].min())
        for band, g in d.groupby(d["band"].astype(str)):
            mags = 31.4 - 2.5 * np.log10(g["psfFlux"].to_numpy(float))
            assert f.loc[oid, f"{band}_peakMag"] == pytest.approx(mags.min(), rel=1e-6)
            assert f.loc[oid, f"{band}_amplitude"] == pytest.approx(mags.max() - mags.min(), abs=1e-5)
            k = np.argmin(mags)
            t = g["midpointMjdTai"].to_numpy()
            if t[k] > t.min():
                first = np.argmin(t)
                assert f.loc[oid, f"{band}_riseRate"] == pytest.approx((mags[k] - mags[first]) / (t[k] - t[first]),
                                                                     rel=1e-4, abs=1e-6)


def test_browser_state_changes_headless(batch):
    from lsstuk_kit.context import catalogs_from_simulation, classify_context
    from lsstuk_kit.widgets import AlertBrowser

    pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    ctx = classify_context(batch, **catalogs_from_simulation(pop, hosts))
    info = pd.DataFrame({"note": ["watched"]}, index=pd.Index([batch.sources.index[2]], name="diaSourceId"))
    br = AlertBrowser(batch, classes=ctx["context"], info=info)
    assert len(br.filtered) == len(batch) and br.selected == br.filtered.index[0]
    assert set(br.figures) == {"cutouts", "lightcurve"}
    # filter -> table
    br.reliability.value = 0.8
    assert (br.filtered["reliability"] >= 0.8).all()
    br.mag.value = (19.0, 21.0)
    assert br.filtered["mag"].between(19, 21).all()
    br.bands.value = ("g",)
    assert set(br.filtered["band"]) == {"g"}
    br.cls.value = "variable star"
    assert (br.filtered["class"] == "variable star").all()
    assert f"<b>{len(br.filtered)}</b>" in br.count.value
    # sort
    br.sort.value = "snr"
    br.ascending.value = False
    assert br.filtered["snr"].is_monotonic_decreasing
    # table -> selection -> plots and info
    br.cls.value = "(all)"
    br.bands.value = tuple(br.bands.options)
    br.mag.value = (br.mag.min, br.mag.max)
    br.reliability.value = 0.0
    br.select(batch.sources.index[2])
    assert br.selected == batch.sources.index[2]
    assert "watched" in br.info_html.value and "class:" in br.info_html.value
    title = br.figures["lightcurve"].axes[0].get_title()
    assert str(batch.sources.loc[br.selected, "diaObjectId"]) in title
    # an empty selection clears the plots
    br.reliability.value = 1.0
    br.mag.value = (br.mag.min, br.mag.min)
    if len(br.filtered) == 0:
        assert br.selected is None and br.figures == {}
    with pytest.raises(KeyError):
        br.select(-1)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_digest_page_renders_in_headless_chromium(batch, tmp_path):
    from lsstuk_kit.cli import main

    assert main(["digest", str(lk.sample_path() / "alerts"), "--out", str(tmp_path / "dg"), "--max", "8"]) == 0
    page = tmp_path / "dg" / "index.html"
    text = page.read_text()
    assert text.count("<img") == 16 and "src='http" not in text  # self-contained
    exe = chromium()
    if exe is None:
        pytest.skip("Chromium absent (Debian: apt-get install chromium; .ci/run installs it)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env).stdout
    assert 'data-images-loaded="16/16"' in dom
    assert 'data-table-rows="8"' in dom
    sub = lk.digest.interesting(batch, max_alerts=8)
    for sid in sub.sources.index:
        assert str(sid) in dom


def test_fast_stack_equals_one_by_one_decoding(batch, real_alerts):
    from lsstuk_kit.cutouts import fast_stack, stack_cutouts

    for b in (batch, batch[::3], lk.read_alerts(real_alerts / "lsst" / "part-2-918301.avro")):
        for which in ("science", "template", "difference"):
            fast = fast_stack(b, which)
            slow = stack_cutouts(b, which)[1]
            if fast is not None:
                assert np.allclose(fast, slow, equal_nan=True)
    assert fast_stack(batch, "difference") is not None  # the simulator's stamps share one layout
    ztf = lk.read_alerts(real_alerts / "ztf" / "part-3-305711.avro")
    assert fast_stack(ztf, "difference") is None  # gzip-compressed: decoded one by one
