"""lsstuk_kit: a Jupyter-centric kit for Rubin/LSST and ZTF transient alert streams.

The public API::

    read_alerts(source, *, format=None, columns=None, errors="raise") -> AlertBatch
    list_formats() -> the formats read_alerts knows (Avro, Fink, Lasair, ALeRCE, ANTARES, ATLAS .ddc)
    load_sample() -> AlertBatch
    AlertBatch.sources / .history / .objects / .cutouts(diaSourceId)
"""

from __future__ import annotations

import os
from pathlib import Path

from . import digest, filters, formats, lasair, sql
from .batch import AlertBatch
from .cutouts import Cutouts
from .errors import AlertFormatError, ModelFileError, SkippedRecord, UntrustedModelError
from .formats import list_formats
from .io import DEFAULT_COLUMNS, read_alerts, write_alerts
from .views import colour_pairs, plot_colour_curve, plot_cutout_gallery, plot_night, plot_object_cutouts, plot_sky

__all__ = [
    "colour_pairs",
    "plot_colour_curve",
    "plot_cutout_gallery",
    "plot_night",
    "plot_object_cutouts",
    "plot_sky",
    "AlertBatch",
    "AlertFormatError",
    "Cutouts",
    "DEFAULT_COLUMNS",
    "ModelFileError",
    "SkippedRecord",
    "UntrustedModelError",
    "list_formats",
    "load_sample",
    "load_sample_truth",
    "read_alerts",
    "real_alerts_path",
    "sample_path",
    "write_alerts",
    "filters",
    "sql",
    "digest",
    "formats",
    "lasair",
]

__version__ = "0.1.0"

_REPO_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
_REPO_REAL = Path(__file__).resolve().parent.parent / "data" / "real"


def sample_path() -> Path:
    """Folder of the bundled sample night.

    ``data/sample/`` of the source tree when present; otherwise (an installed
    wheel) the sample is regenerated, byte-identically, into a cache folder
    (``$LSSTUK_KIT_CACHE`` or ``~/.cache/lsstuk_kit``).

    Examples
    --------
    >>> from lsstuk_kit import sample_path
    >>> (sample_path() / "truth.parquet").is_file()
    True
    """
    if any(_REPO_SAMPLE.rglob("*.avro")):
        return _REPO_SAMPLE
    from .simulate.sample import write_sample

    cache = Path(os.environ.get("LSSTUK_KIT_CACHE", Path.home() / ".cache" / "lsstuk_kit")) / "sample"
    if not any(cache.rglob("*.avro")):
        write_sample(cache)
    return cache


def real_alerts_path() -> Path:
    """Folder of the small extract of real Rubin and ZTF alerts shipped with the project.

    ``data/real/`` of the source tree (a clone, or Binder's editable install): 65 real
    alerts (27 Rubin, 38 ZTF) redistributed by the Fink broker (Apache-2.0): every one the
    surveys' own scores call bogus, plus a random subsample of the real ones; records
    unchanged, in their own formats (Avro containers and Fink's Parquet). Its ``README.md``
    credits each file. Unlike :func:`sample_path` it cannot be regenerated without the
    original files, so an installed wheel, which does not carry it, raises
    :class:`FileNotFoundError`.

    Returns
    -------
    pathlib.Path
        The folder; pass it to :func:`read_alerts`.

    Raises
    ------
    FileNotFoundError
        If the kit is not run from its source tree (``data/real/`` is absent).

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> real = lk.read_alerts(lk.real_alerts_path())
    >>> real.sources.groupby("survey").size().to_dict()
    {'lsst': 27, 'ztf': 38}
    """
    if (_REPO_REAL / "README.md").is_file():
        return _REPO_REAL
    raise FileNotFoundError(f"{_REPO_REAL} not found: the extract of real alerts ships with the source tree "
                            "(git clone, or Binder), not with an installed wheel")


def load_sample(**kwargs) -> AlertBatch:
    """Return the bundled sample night as an AlertBatch.

    Parameters
    ----------
    **kwargs
        Passed to :func:`read_alerts` (e.g. ``columns=``).

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> batch = load_sample()
    >>> batch.sources["survey"].unique().tolist()
    ['lsst']
    """
    return read_alerts(sample_path() / "alerts", **kwargs)


def load_sample_truth():
    """The truth table of the sample night (class, real/bogus, host, redshift, true flux), by ``diaSourceId``.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, load_sample_truth
    >>> truth = load_sample_truth()
    >>> set(load_sample().sources.index) == set(truth.index)
    True
    """
    from .simulate.night import load_truth

    return load_truth(sample_path())
