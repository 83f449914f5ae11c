"""A digest page: the interesting alerts as one self-contained HTML file.

The page has a table of alerts and, for each, its cutout triplet and light
curve as inline PNG images (no external files, nothing fetched), so it can be
mailed or opened anywhere. Every value taken from the alerts (ids, bands, class
labels) and the title is HTML-escaped, in text and in attributes alike, and element
ids are made only of safe characters, so a crafted alert cannot put markup or script
into the page::

    batch.to_html("digest.html")
    lsstuk-kit digest night/ --out digest/
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["to_html", "interesting"]

_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f3f3f3; position: sticky; top: 0; } td.id { font-family: monospace; text-align: left; }
.alert { border: 1px solid #ccc; border-radius: 6px; margin: 1em 0; padding: 0.6em; }
.alert h2 { font-size: 1em; margin: 0 0 0.4em 0; font-family: monospace; }
.alert img { vertical-align: top; margin-right: 0.5em; }
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
  document.body.setAttribute('data-table-rows', document.querySelectorAll('#alerts tbody tr').length);
});
"""


def interesting(batch, min_reliability=0.5, min_snr=5.0, max_alerts=50):
    """The default selection: reliable, significant alerts, most significant first.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.digest import interesting
    >>> top = interesting(load_sample(), max_alerts=5)
    >>> len(top), bool(top.sources["snr"].abs().is_monotonic_decreasing)
    (5, True)
    """
    from . import filters as F

    sub = batch.filter(F.quality(batch, min_reliability=min_reliability), F.observable(batch, min_snr=min_snr))
    order = sub.sources["snr"].abs().sort_values(ascending=False, kind="stable").index[:max_alerts]
    return sub[list(order)]


def _text(value):
    """A value as HTML text or attribute content: everything escaped, quotes included."""
    return html.escape(str(value), quote=True)


def _label(value):
    """A class label as escaped text; missing labels (None, NaN) as nothing."""
    try:
        missing = value is None or bool(value != value)
    except (TypeError, ValueError):
        missing = False
    return "" if missing else _text(value)


def _num(value, spec):
    """A number formatted with ``spec``; anything else (a string from an odd schema) escaped as text."""
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return _text(value)


def _anchor(sid):
    """A safe element id for an alert: ``a<id>`` for ids of letters, digits, ``_`` and ``-``, else a hash.

    Ids made of other characters (quotes, ``<``, spaces, ``#``...) get ``h`` and
    16 hex digits of their SHA-256, so no string from an alert is ever pasted raw
    into an ``id`` or a link.
    """
    text = str(sid)
    if _PLAIN_ID.fullmatch(text):
        return "a" + text
    return "h" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def to_html(batch, path, *, title="lsstuk_kit alert digest", classes=None, select=True, max_alerts=50,
            min_reliability=0.5, min_snr=5.0):
    """Write the digest page of a batch to ``path``; return the path.

    Parameters
    ----------
    batch : AlertBatch
    path : str or Path
    classes : Series, optional
        A label per ``diaSourceId`` shown in the table (e.g. context classes).
    select : bool
        Apply :func:`interesting` first (else every alert, up to ``max_alerts``).
    max_alerts : int
    min_reliability, min_snr : float
        Thresholds of :func:`interesting`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lsstuk_kit import load_sample
    >>> page = load_sample().to_html(pathlib.Path(tempfile.mkdtemp()) / "digest.html", max_alerts=3)
    >>> page.read_text().count("<img") == 6
    True
    """
    from matplotlib.figure import Figure

    from .cutouts import plot_cutouts
    from .lightcurves import plot_lightcurve

    sub = interesting(batch, min_reliability, min_snr, max_alerts) if select else batch[:max_alerts]
    s = sub.sources
    rows, cards = [], []
    for sid, r in s.iterrows():
        label = "" if classes is None else _label(classes.get(sid))
        anchor = _anchor(sid)
        name = _text(sid)
        # attributes single-quoted, as elsewhere in the page; _text escapes both quote characters
        rows.append(
            f"<tr><td class='id'><a href='#{anchor}'>{name}</a></td>"
            f"<td class='id'>{_text(r['diaObjectId'])}</td><td>{_num(r['midpointMjdTai'], '.5f')}</td>"
            f"<td>{_text(r['band'])}</td><td>{_num(r['mag'], '.2f')}</td><td>{_num(r['snr'], '.1f')}</td>"
            f"<td>{_num(r['reliability'], '.2f')}</td><td>{_num(r['ra'], '.5f')}</td><td>{_num(r['dec'], '.5f')}</td>"
            f"<td>{label}</td></tr>")
        fig_c = plot_cutouts(sub, sid, Figure(figsize=(6.6, 2.5)), colorbar=False)
        ax = plot_lightcurve(sub, r["diaObjectId"], Figure(figsize=(4.6, 2.5)).subplots())
        ax.figure.tight_layout()
        cards.append(
            f"<div class='alert' id='{anchor}'><h2>{name} "
            f"({_text(r['band'])}, mag {_num(r['mag'], '.2f')}{', ' + label if label else ''})</h2>"
            f"<img alt='cutouts {name}' src='{_png(fig_c)}'><img alt='light curve {name}' src='{_png(ax.figure)}'>"
            f"</div>")
    head = ("<tr><th>diaSourceId</th><th>diaObjectId</th><th>MJD</th><th>band</th><th>mag</th><th>S/N</th>"
            "<th>reliability</th><th>RA</th><th>Dec</th><th>class</th></tr>")
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_text(title)}</title>"
            f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>"
            f"<h1>{_text(title)}</h1><p>{len(s)} of {len(batch)} alerts; made {made} by lsstuk_kit.</p>"
            f"<table id='alerts'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
            f"{''.join(cards)}</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
