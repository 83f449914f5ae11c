"""Band legends and band choices in ugrizy order, then other bands (issue 15)."""

import numpy as np
import pandas as pd
import pytest

from lsstuk_kit.surveys.common import BAND_COLORS, BANDS

#: bands as they come in a batch, deliberately out of order (ATLAS c/o and an unknown band among them)
SHUFFLED = ["o", "y", "w", "r", "c", "z", "g", "u", "i"]
EXPECTED = ["u", "g", "r", "i", "z", "y", "c", "o", "w"]


def _history():
    n = len(SHUFFLED)
    return pd.DataFrame({
        "diaSourceId": np.arange(n, dtype=np.int64) + 1,
        "diaObjectId": np.full(n, 7, dtype=np.int64),
        "band": SHUFFLED,
        "kind": ["detection"] * n,
        "midpointMjdTai": 61000.0 + np.arange(n) * 0.7,
        "psfFlux": np.linspace(2000.0, 6000.0, n),
        "psfFluxErr": np.full(n, 100.0),
    })


def test_expected_order_is_bands_then_the_others():
    assert EXPECTED[:6] == list(BANDS)
    assert [b for b in EXPECTED if b not in BANDS and b in BAND_COLORS] == [b for b in BAND_COLORS if b not in BANDS]


@pytest.mark.parametrize("unit", ["mag", "flux"])
def test_lightcurve_legend_in_ugrizy_order(unit):
    from lsstuk_kit.lightcurves import MARKER_LABELS, plot_lightcurve

    ax = plot_lightcurve(_history(), 7, unit=unit)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:len(EXPECTED)] == EXPECTED  # every band, in ugrizy order, then what the markers mean
    assert set(labels[len(EXPECTED):]) <= set(MARKER_LABELS) and "detection" in labels[len(EXPECTED):]


def test_alert_browser_band_choices_in_ugrizy_order():
    pytest.importorskip("ipywidgets")
    from lsstuk_kit import load_sample
    from lsstuk_kit.widgets import AlertBrowser

    batch = load_sample()
    batch.sources["band"] = np.resize(np.array(SHUFFLED, dtype=object), len(batch))  # every band, out of order
    browser = AlertBrowser(batch)
    assert list(browser.bands.options) == EXPECTED


def test_lightcurve_legend_names_bands_seen_only_as_limits():
    """A band with only upper limits (ANTARES's ZTF20aafqubg in r) still gets its legend entry."""
    from lsstuk_kit.lightcurves import plot_lightcurve

    h = _history().iloc[:3].assign(band=["g", "g", "r"], kind=["detection", "detection", "upper_limit"])
    ax = plot_lightcurve(h, 7, unit="mag")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["g", "r", "detection", "upper limit"]
