"""An ipywidgets alert browser for JupyterLab: filter, sort, select, look.

::

    from lsstuk_kit.widgets import AlertBrowser
    AlertBrowser(batch, classes=context["context"], info=watchlist_hits)

Controls: a magnitude range, a minimum reliability, bands, a class (from a
context classification, truth, or any Series over ``diaSourceId``), a sort
column and direction. The table lists the alerts that pass; choosing one draws
its cutouts and light curve and shows its cross-match information.

Every value shown from the alerts, the classes or ``info`` is HTML-escaped (the
HTML panes are built with ``html.escape`` and ``DataFrame.to_html(escape=True)``;
list and menu labels are plain text), so a crafted alert cannot put markup or
script into the notebook (see tests/test_security.py).

The state lives in plain attributes (``filtered``, ``selected``, ``figures``)
so it can be driven and checked without a browser (see tests/test_widgets.py).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .surveys.common import BAND_COLORS, BANDS

__all__ = ["AlertBrowser"]

TABLE_COLUMNS = ["diaObjectId", "midpointMjdTai", "band", "mag", "magErr", "snr", "reliability"]


class AlertBrowser:
    """Browse an AlertBatch in a notebook.

    Parameters
    ----------
    batch : AlertBatch
    classes : Series, optional
        A label per ``diaSourceId`` (e.g. ``classify_context(batch)["context"]``).
    info : DataFrame, optional
        Extra rows per ``diaSourceId`` shown for the selected alert (e.g. watchlist hits).
    max_rows : int
        Rows shown in the table.
    max_choices : int
        Alerts offered in the selection list.

    Examples
    --------
    In a notebook, ``AlertBrowser(batch)`` as the last line of a cell shows it. Its state can
    also be driven from code (outside a notebook nothing is displayed; the figures are kept):

    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.widgets import AlertBrowser
    >>> batch = load_sample()[:20]
    >>> browser = AlertBrowser(batch)
    >>> browser.reliability.value = 0.9          # as moving the slider does
    >>> browser.select(browser.filtered.index[-1])
    >>> browser.count.value
    '<b>3</b> of 20 alerts'
    >>> bool((browser.filtered["reliability"] >= 0.9).all()), bool(browser.selected == browser.filtered.index[-1])
    (True, True)
    >>> sorted(browser.figures)
    ['cutouts', 'lightcurve']
    >>> browser.select(123)
    Traceback (most recent call last):
    ...
    KeyError: 'alert 123 is not among the filtered alerts'
    """

    def __init__(self, batch, classes=None, info=None, max_rows=50, max_choices=1000):
        import ipywidgets as w

        self.batch = batch
        s = batch.sources
        self.classes = None if classes is None else pd.Series(classes).reindex(s.index)
        self.info = info
        self.max_rows = max_rows
        self.max_choices = max_choices
        mags = s["mag"].replace([np.inf, -np.inf], np.nan).dropna()
        lo = float(np.floor(mags.min())) if len(mags) else 10.0
        hi = float(np.ceil(mags.max())) if len(mags) else 30.0
        self.mag = w.FloatRangeSlider(value=(lo, hi), min=lo, max=hi, step=0.1, description="mag",
                                      continuous_update=False)
        self.reliability = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="reliability ≥",
                                         continuous_update=False)
        present = set(s["band"].astype(str))
        order = list(BANDS) + [b for b in BAND_COLORS if b not in BANDS]  # ugrizy, then e.g. ATLAS c and o
        bands = [b for b in order if b in present] + sorted(present - set(order))
        self.bands = w.SelectMultiple(options=bands, value=tuple(bands), description="bands", rows=min(6, len(bands)))
        opts = ["(all)"] + (sorted(self.classes.dropna().astype(str).unique()) if self.classes is not None else [])
        self.cls = w.Dropdown(options=opts, value="(all)", description="class")
        cols = [c for c in TABLE_COLUMNS if c in s.columns]
        self.sort = w.Dropdown(options=cols, value="mag" if "mag" in cols else cols[0], description="sort by")
        self.ascending = w.ToggleButton(value=True, description="ascending", icon="sort-amount-asc")
        self.table = w.HTML()
        self.choice = w.Select(options=[], description="alert", rows=8, layout=w.Layout(width="360px"))
        self.cutout_out = w.Output()
        self.lc_out = w.Output()
        self.info_html = w.HTML()
        self.count = w.HTML()
        self.figures = {}
        self.selected = None
        for ctl in (self.mag, self.reliability, self.bands, self.cls, self.sort, self.ascending):
            ctl.observe(self._refresh, names="value")
        self.choice.observe(self._on_choice, names="value")
        controls = w.VBox([self.mag, self.reliability, self.bands, self.cls, self.sort, self.ascending, self.count])
        self.widget = w.VBox([
            w.HBox([controls, self.choice]),
            self.table,
            w.HBox([self.cutout_out, w.VBox([self.lc_out, self.info_html])]),
        ])
        self._refresh()

    # ------------------------------------------------------------------ state
    def _mask(self):
        s = self.batch.sources
        lo, hi = self.mag.value
        m = s["mag"].between(lo, hi) | s["mag"].isna()
        rel = s["reliability"].fillna(1.0) if "reliability" in s else pd.Series(1.0, index=s.index)
        m &= rel >= self.reliability.value
        m &= s["band"].astype(str).isin(self.bands.value)
        if self.classes is not None and self.cls.value != "(all)":
            m &= self.classes.astype(str) == self.cls.value
        return m

    def _refresh(self, change=None):
        s = self.batch.sources
        cols = [c for c in TABLE_COLUMNS if c in s.columns]
        df = s.loc[self._mask(), cols].copy()
        if self.classes is not None:
            df["class"] = self.classes.reindex(df.index)
        df = df.sort_values(self.sort.value, ascending=self.ascending.value, kind="stable")
        self.filtered = df
        self.count.value = f"<b>{len(df)}</b> of {len(s)} alerts"
        self.table.value = df.head(self.max_rows).to_html(float_format=lambda x: f"{x:.3f}", border=0,
                                                          classes="lsstuk-table", escape=True)
        shown = df.head(self.max_choices)
        options = list(zip([f"{sid}  {b}  mag {m:.2f}" for sid, b, m in
                            zip(shown.index, shown["band"].astype(str), shown["mag"])], shown.index))
        keep = self.selected if self.selected in df.index else None
        self.choice.options = options
        self.choice.value = keep if keep is not None else (options[0][1] if options else None)
        if not options:
            self._show(None)

    def _on_choice(self, change):
        self._show(change["new"])

    def select(self, diaSourceId):
        """Select an alert (as clicking it in the list does)."""
        if diaSourceId not in set(self.choice.options and [v for _, v in self.choice.options]):
            raise KeyError(f"alert {diaSourceId} is not among the filtered alerts")
        self.choice.value = diaSourceId

    def _show(self, sid):
        from matplotlib.figure import Figure

        from .cutouts import plot_cutouts
        from .lightcurves import plot_lightcurve

        self.selected = sid
        live = _in_ipython()  # outside a notebook or IPython, widget output would go to stdout
        if live:
            self.cutout_out.clear_output()
            self.lc_out.clear_output()
        if sid is None:
            self.figures = {}
            self.info_html.value = "<i>no alert selected</i>"
            return
        fig_c = plot_cutouts(self.batch, sid, Figure(figsize=(7.5, 3)))
        oid = self.batch.sources.loc[sid, "diaObjectId"]
        ax = plot_lightcurve(self.batch, oid, Figure(figsize=(5.5, 3)).subplots())
        self.figures = {"cutouts": fig_c, "lightcurve": ax.figure}
        if live:
            with self.cutout_out:
                _display(fig_c)
            with self.lc_out:
                _display(ax.figure)
        self.info_html.value = self._info(sid)

    def _info(self, sid):
        row = self.batch.sources.loc[sid]
        parts = [f"<b>{html.escape(str(sid))}</b> object {html.escape(str(row['diaObjectId']))}<br>"
                 f"RA {row['ra']:.5f}, Dec {row['dec']:.5f}, MJD {row['midpointMjdTai']:.5f}"]
        if self.classes is not None:
            parts.append(f"class: <b>{html.escape(str(self.classes.get(sid)))}</b>")
        if self.info is not None and sid in self.info.index:
            rows = self.info.loc[[sid]]
            parts.append(rows.to_html(border=0, float_format=lambda x: f"{x:.3f}", escape=True))
        return "<br>".join(parts)

    def _ipython_display_(self):  # pragma: no cover - needs a notebook front end
        from IPython.display import display

        display(self.widget)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _display(fig):  # pragma: no cover - output only in a notebook
    try:
        from IPython.display import display

        display(fig)
    except ImportError:
        pass
