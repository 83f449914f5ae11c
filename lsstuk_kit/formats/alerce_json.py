"""ALeRCE API responses (``alerce`` client, ``format="json"``) read as alerts.

What the ALeRCE client returns (``alercebroker/alerce_client``, its docs'
response models) and what it becomes here:

==============================  ==================================================
ALeRCE response                 read as
==============================  ==================================================
``query_lightcurve``            one object: ``{"detections": [...],
                                "non_detections": [...]}`` (and, from the
                                multi-survey API, ``"forced_photometry"``)
``query_detections``            a list of detection rows
``query_non_detections``        ``upper_limit`` history rows (``limitingMag`` =
                                ``diffmaglim``)
``query_forced_photometry``     ``forced`` history rows
``query_object(s)``,            object-level columns, given with a light curve:
``query_probabilities``         ``objects=`` / ``probabilities=`` options, or the
                                keys ``"object"``/``"objects"`` and
                                ``"probabilities"`` of a bundle document
several objects                 ``{oid: lightcurve, ...}``
==============================  ==================================================

Alerts: every ZTF alert is one detection, so each detection row with an id
(``candid`` for ZTF, ``measurement_id`` for LSST) is one row of ``sources``:
``diaSourceId`` = that id as int64, ``diaObjectId`` = ``oid`` (a ZTF string such
as ``ZTF20aaelulu``; an int64 for LSST), as :mod:`lsstuk_kit.surveys.ztf` does.
ALeRCE's light-curve responses carry no ``oid`` in their rows: it comes from the
document (``"oid"``), from the ``{oid: lightcurve}`` key, or from ``oid=``.

ZTF detections: ``band`` from ``fid`` (1, 2, 3 -> g, r, i); ``psfFlux`` from
``magpsf`` in nJy, negative where ``isdiffpos`` is -1 (ALeRCE's form) or
``f``/``0`` (ZTF's form); ``psfFluxErr`` from ``sigmapsf``; ``mag``/``magErr`` =
``magpsf``/``sigmapsf``. ``reliability`` is ``drb`` where it was computed, else
``rb`` (``reliabilitySource`` names which): ALeRCE serves ``drb = 0.0`` for alerts
older than ZTF schema 3.3 (the deep real/bogus model did not exist) and never
serves ``drbversion``, so ``drb`` counts where a ``drbversion`` is given, or, when
none is, where ``drb > 0``. LSST detections (multi-survey API) carry ``psfFlux``/
``psfFluxErr`` in nJy already; their ``band`` is ``band_name`` where the client
added it, else ALeRCE's band number (6, 1, 2, 3, 4, 5 -> u, g, r, i, z, y, as in
ALeRCE's ``band`` table). ALeRCE's own fields stay as columns (``rb``, ``drb``,
``has_stamp``, ``magpsf_corr``, ...); ALeRCE's integer ``band`` is kept as
``alerce_band``.

History: each alert carries the object's light-curve rows up to and including
its own time (detections, non-detections, forced photometry), as a ZTF alert
carries its ``prv_candidates``: any subset of the alerts (a filter, a cut in
time) keeps the history those alerts would have had, and the batch removes the
repeats across alerts. Rows later than an object's newest detection are given to
that newest alert, so nothing ALeRCE served is lost. ``history="latest"`` gives
the whole light curve to each object's newest alert only (one copy of each row:
for objects with thousands of detections).

Records: the detection rows. Alerts read + records reported = detection rows.
Non-detection and forced rows are history, not records; rows among them that
lack a time are dropped with a warning.

Examples
--------
>>> from lsstuk_kit.formats import Source
>>> from lsstuk_kit.formats.alerce_json import SPEC
>>> lc = {"oid": "ZTF20aaelulu", "detections": [
...     {"candid": "1101542291015015004", "mjd": 58855.54, "fid": 2, "magpsf": 17.28,
...      "sigmapsf": 0.056, "isdiffpos": 1, "ra": 185.7288549, "dec": 15.8236255, "rb": 0.83}],
...     "non_detections": [{"mjd": 58828.55, "fid": 1, "diffmaglim": 19.2}]}
>>> frames = SPEC.read(Source(label="lc", obj=lc, fail=None))
>>> s = frames[0].sources
>>> s[["diaSourceId", "diaObjectId", "band", "reliabilitySource"]].values.tolist()
[[1101542291015015004, 'ZTF20aaelulu', 'r', 'rb']]
>>> sorted(frames[0].history["kind"])
['detection', 'upper_limit']
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd

from ..errors import AlertFormatError
from ..surveys.common import flux_to_mag, mag_to_flux, pick_score
from . import FormatSpec, Frames, Sniff

__all__ = ["SPEC", "identify", "read", "ZTF_FID_TO_BAND", "LSST_BAND_TO_NAME", "attach_history", "signed_flux",
           "exact_int"]

#: ZTF filter ids (``fid``) as bands.
ZTF_FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
#: ALeRCE's LSST band numbers (its ``band`` table: ``band_order`` u..y = 6, 1..5).
LSST_BAND_TO_NAME = {6: "u", 1: "g", 2: "r", 3: "i", 4: "z", 5: "y"}
_LC_KEYS = ("detections", "non_detections", "forced_photometry")
_OBJECT_KEYS = ("object", "objects")
_PROB_KEYS = ("probabilities", "probability", "classifications")
#: keys that mark other brokers' documents (never ALeRCE's)
_FOREIGN = ("objectId", "diaSourcesList", "objectData", "UTC", "locus_id", "ant_mjd", "alert_id", "jd", "i:candid")
_EXACT = ("candid", "measurement_id", "oid", "diaObjectId")
_NOT_ALERCE = ("not an ALeRCE response (expected a light curve with detections, a list of detection rows, or "
               "{oid: light curve})")
_LN10_OVER_2P5 = np.log(10.0) / 2.5
_TIME_SCALE = 10**8  # 1e-8 day ticks for exact time comparisons in attach_history
_GROUP_SPAN = 10**13


# ----------------------------------------------------------------------------- identify
def _is_detection_row(row) -> bool:
    if not isinstance(row, dict) or "mjd" not in row or any(k in row for k in _FOREIGN):
        return False
    return ("candid" in row and ("magpsf" in row or "fid" in row)) or (
        "measurement_id" in row and ("psfFlux" in row or "band" in row))


def _is_history_row(row) -> bool:
    return (isinstance(row, dict) and "mjd" in row and not any(k in row for k in _FOREIGN)
            and ("diffmaglim" in row or "e_mag" in row or "psfFlux" in row) and ("fid" in row or "band" in row))


def _is_lightcurve(d) -> bool:
    return isinstance(d, dict) and any(k in d for k in _LC_KEYS) and not any(k in d for k in _FOREIGN)


def _is_object_row(row) -> bool:
    return isinstance(row, dict) and "oid" in row and ("ndet" in row or "meanra" in row or "n_det" in row)


def _is_prob_row(row) -> bool:
    return isinstance(row, dict) and "classifier_name" in row and "class_name" in row


def _claims(obj) -> bool:
    if isinstance(obj, dict):
        if _is_lightcurve(obj):
            return True
        # the reader hands identification the first row of a list: a detection / object / probability row
        if _is_detection_row(obj) or _is_history_row(obj) or _is_object_row(obj) or _is_prob_row(obj):
            return True
        items = obj.get("items")
        if isinstance(items, list) and items and _is_object_row(items[0]):
            return True
        vals = list(obj.values())[:3]
        return bool(vals) and all(_is_lightcurve(v) for v in vals)
    if isinstance(obj, list) and obj:
        first = obj[0]
        return _is_detection_row(first) or _is_history_row(first) or _is_object_row(first) or _is_prob_row(first)
    return False


def identify(sniff: Sniff) -> bool:
    """True for ALeRCE light curves, detection lists, and objects/probabilities responses.

    Examples
    --------
    >>> from lsstuk_kit.formats import Sniff
    >>> from lsstuk_kit.formats.alerce_json import identify
    >>> identify(Sniff(label="lc", obj={"oid": "ZTF20aaelulu", "detections": [], "non_detections": []}))
    True
    >>> identify(Sniff(label="lc.json", head=b'{"detections": [{"candid": "1101542291015015004", "mjd": 58855.54}]}'))
    True
    >>> identify(Sniff(label="locus", obj={"locus_id": "ANT2020nb5h6"}))  # an ANTARES locus
    False
    """
    if sniff.obj is not None:
        return _claims(sniff.obj)
    text = sniff.text_head()
    if text[:1] not in ("{", "["):
        return False
    if any(f'"{k}"' in text for k in ("locus_id", "ant_mjd", "objectId", "diaSourcesList", "objectData", "UTC",
                                         "alert_id", "i:candid")):
        return False
    if any(f'"{k}"' in text for k in _LC_KEYS):
        return True
    return '"mjd"' in text and (('"candid"' in text and '"magpsf"' in text) or
                                ('"measurement_id"' in text and '"psfFlux"' in text))


# ----------------------------------------------------------------------------- helpers
def signed_flux(mag, mag_err, isdiffpos):
    """Difference flux (nJy) and error from a magnitude and ZTF/ALeRCE's ``isdiffpos``.

    ``isdiffpos`` negative forms: ``-1`` (ALeRCE), ``"f"`` or ``"0"`` (ZTF); missing means positive.

    Examples
    --------
    >>> from lsstuk_kit.formats.alerce_json import signed_flux
    >>> f, e = signed_flux([23.9, 23.9, 23.9], [0.1, 0.1, 0.1], [1, -1, "f"])
    >>> f.round(3).tolist()
    [1000.0, -1000.0, -1000.0]
    """
    flux, err = mag_to_flux(np.asarray(mag, float), np.asarray(mag_err, float))
    s = pd.Series(np.asarray(isdiffpos, dtype=object)).astype(str).str.strip().str.lower()
    neg = s.isin(["-1", "-1.0", "f", "0", "0.0", "false"]).to_numpy()
    return np.where(neg, -flux, flux), err


def exact_int(values) -> pd.Series:
    """Integers parsed exactly from ints or digit strings (19-digit ids lose digits through float).

    Examples
    --------
    >>> from lsstuk_kit.formats.alerce_json import exact_int
    >>> exact_int(["1509161731415010004", 1113163781415010010, None, "x"]).tolist()
    [1509161731415010004, 1113163781415010010, <NA>, <NA>]
    """
    s = pd.Series(np.asarray(values, dtype=object), dtype=object)
    text = s.map(lambda v: v if isinstance(v, str) else (str(v) if isinstance(v, (int, np.integer)) else None))
    text = text.str.strip()
    ok = text.str.fullmatch(r"-?\d{1,19}").fillna(False).to_numpy(bool)
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    if ok.any():
        out[ok] = text[ok].to_numpy(str).astype(np.int64)
    return out


def _num(df, name, dtype=float):
    if name not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=dtype, na_value=np.nan)


def attach_history(alert_key, alert_time, hist_key, hist_time, mode="cumulative"):
    """Which alert each history row goes with (vectorised).

    Parameters
    ----------
    alert_key, hist_key : array of int
        Object code of each alert / history row (same coding on both sides, >= 0).
    alert_time, hist_time : array of float
        MJD of each alert / history row.
    mode : {"cumulative", "latest"}
        ``cumulative``: a row goes with every alert of its object at or after its
        time (rows later than the newest alert go with the newest one).
        ``latest``: every row goes with its object's newest alert only.

    Returns
    -------
    rows, alerts : ndarray of int64
        History row index and alert index of each (row, alert) pair; rows of
        objects without alerts are absent.

    Examples
    --------
    >>> from lsstuk_kit.formats.alerce_json import attach_history
    >>> r, a = attach_history([0, 0], [1.0, 2.0], [0, 0, 0], [0.5, 1.0, 3.0])
    >>> list(zip(r.tolist(), a.tolist()))
    [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1)]
    """
    ak = np.asarray(alert_key, np.int64)
    hk = np.asarray(hist_key, np.int64)
    if len(ak) == 0 or len(hk) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if max(ak.max(), hk.max()) >= np.iinfo(np.int64).max // _GROUP_SPAN:
        raise ValueError("too many objects in one source")
    at = np.round(np.asarray(alert_time, float) * _TIME_SCALE).astype(np.int64)
    ht = np.round(np.nan_to_num(np.asarray(hist_time, float), nan=-1.0) * _TIME_SCALE).astype(np.int64)
    ca = ak * _GROUP_SPAN + at
    order = np.argsort(ca, kind="stable")
    ca = ca[order]
    ch = hk * _GROUP_SPAN + ht
    first = np.searchsorted(ca, ch, side="left")
    end = np.searchsorted(ca, hk * _GROUP_SPAN + (_GROUP_SPAN - 1), side="right")
    start = np.searchsorted(ca, hk * _GROUP_SPAN, side="left")
    has = end > start
    if mode == "latest":
        first = np.where(has, end - 1, end)
    elif mode != "cumulative":
        raise ValueError(f"history= must be 'cumulative' or 'latest', not {mode!r}")
    else:
        first = np.where(has & (first >= end), end - 1, first)  # later than the newest alert
    count = np.where(has, end - first, 0)
    rows = np.repeat(np.arange(len(hk)), count)
    offsets = np.repeat(first - np.concatenate(([0], np.cumsum(count)[:-1])), count)
    return rows, order[np.arange(len(rows)) + offsets]


def _load_option(value, label, what):
    """An ``objects=``/``probabilities=`` option: a parsed response, JSON text or a path."""
    if value is None or isinstance(value, (dict, list, pd.DataFrame)):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if not text.lstrip().startswith(("{", "[")):
        try:
            with open(text, "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError as exc:
            raise AlertFormatError(f"{what}= cannot be read ({exc.strerror or exc})", label) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AlertFormatError(f"{what}= is not valid JSON ({exc})", label) from None


def _rows(value) -> list:
    if value is None:
        return []
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, dict):
        items = value.get("items")
        return list(items) if isinstance(items, list) else [value]
    return list(value)


# ----------------------------------------------------------------------------- document -> parts
def _split(doc, label, default_oid):
    """The document as a list of (oid, lightcurve dict) plus embedded object / probability rows."""
    objects, probs = [], []
    if isinstance(doc, dict):
        if _is_lightcurve(doc) or any(k in doc for k in _OBJECT_KEYS + _PROB_KEYS):
            for k in _OBJECT_KEYS:
                objects += _rows(doc.get(k))
            for k in _PROB_KEYS:
                probs += [dict(r, **({"oid": doc["oid"]} if "oid" in doc and "oid" not in r else {}))
                          for r in _rows(doc.get(k)) if isinstance(r, dict)]
            if not _is_lightcurve(doc):
                raise AlertFormatError("an ALeRCE objects/probabilities document holds no detections; give it "
                                       "with a light curve (objects=, probabilities=)", label)
            return [(doc.get("oid", default_oid), doc)], objects, probs
        items = doc.get("items")
        if isinstance(items, list) and (not items or _is_object_row(items[0])):
            raise AlertFormatError("this is an ALeRCE query_objects page (objects, not detections); give it as "
                                   "objects= with a light curve", label)
        if not any(_is_lightcurve(v) for v in doc.values()):
            raise AlertFormatError(_NOT_ALERCE, label)
        parts = []
        for key, lc in doc.items():
            if not _is_lightcurve(lc):
                raise AlertFormatError(f"entry {key!r} is not an ALeRCE light curve (no detections / "
                                       "non_detections)", label)
            parts.append((lc.get("oid", key), lc))
        if not parts:
            raise AlertFormatError("an empty JSON object holds no ALeRCE light curve", label)
        return parts, objects, probs
    if isinstance(doc, list):
        if not doc:
            return [], objects, probs
        first = doc[0]
        if _is_object_row(first):
            raise AlertFormatError("this is an ALeRCE objects response (no detections); give it as objects= "
                                   "with a light curve", label)
        if _is_prob_row(first):
            raise AlertFormatError("this is an ALeRCE probabilities response (no detections); give it as "
                                   "probabilities= with a light curve", label)
        if _is_detection_row(first):
            return [(default_oid, {"detections": doc})], objects, probs
        if _is_history_row(first):
            raise AlertFormatError("ALeRCE non-detections / forced photometry alone hold no alerts; read them "
                                   "with their detections (the query_lightcurve response)", label)
    raise AlertFormatError(_NOT_ALERCE, label)


def _frame(parts, key):
    """Rows of ``key`` from every part as one DataFrame with ``_obj`` (part index) and ``_row``."""
    rows, obj, num = [], [], []
    for i, (_, lc) in enumerate(parts):
        got = lc.get(key) or []
        if not isinstance(got, list):
            raise AlertFormatError(f"{key!r} is a {type(got).__name__}, not a list of rows", None)
        rows.extend(r if isinstance(r, dict) else {} for r in got)
        obj.append(np.full(len(got), i, np.int64))
        num.append(np.arange(len(got)))
    if not rows:
        return pd.DataFrame({"_obj": pd.Series(dtype=np.int64), "_row": pd.Series(dtype=np.int64)})
    f = pd.DataFrame.from_records(rows)
    for c in _EXACT:
        if c in f:  # ids as sent (from_records turns ints with gaps into floats)
            f[c] = pd.Series([r.get(c) for r in rows], dtype=object)
    f["_obj"] = np.concatenate(obj)
    f["_row"] = np.concatenate(num)
    return f


def _survey_of(det: pd.DataFrame, options) -> str:
    if options.get("survey"):
        return str(options["survey"]).lower()
    if "survey_id" in det and det["survey_id"].notna().any():
        return str(det["survey_id"].dropna().iloc[0]).lower()
    if "measurement_id" in det and "candid" not in det:
        return "lsst"
    return "ztf"


def _bands(df, survey):
    if survey == "ztf" or ("fid" in df and "band" not in df):
        col = "fid" if "fid" in df else "band"
        return pd.to_numeric(df[col], errors="coerce").map(ZTF_FID_TO_BAND).to_numpy(object)
    if "band_name" in df:
        return df["band_name"].astype(object).where(df["band_name"].notna(), None).to_numpy(object)
    if "band_map" in df:
        return np.array([(m or {}).get(str(b)) if isinstance(m, dict) else None
                         for m, b in zip(df["band_map"], df["band"])], dtype=object)
    return pd.to_numeric(df["band"], errors="coerce").map(LSST_BAND_TO_NAME).to_numpy(object)


def _photometry(df, survey, kind):
    """psfFlux, psfFluxErr, mag, magErr for detection or forced rows."""
    if "psfFlux" in df and (survey == "lsst" or "magpsf" not in df):
        flux = _num(df, "psfFlux")
        err = _num(df, "psfFluxErr")
        mag, mag_err = flux_to_mag(flux, err)
        return flux, err, mag, mag_err
    mcol, ecol = ("magpsf", "sigmapsf") if kind == "detection" else ("mag", "e_mag")
    mag = _num(df, mcol)
    mag_err = _num(df, ecol)
    if kind == "forced":
        mag = np.where(mag >= 99, np.nan, mag)  # ALeRCE's forced "no measurement" magnitudes
    isdiffpos = df["isdiffpos"].to_numpy(object) if "isdiffpos" in df else np.ones(len(df))
    flux, err = signed_flux(mag, mag_err, isdiffpos)
    return flux, err, mag, mag_err


def _reliability(det):
    drb = _num(det, "drb")
    if "drbversion" in det:
        v = det["drbversion"]
        given = v.notna().to_numpy() & (v.astype(str).str.strip() != "").to_numpy()
    else:
        with np.errstate(invalid="ignore"):
            given = drb > 0
    drb = np.where(given, drb, np.nan)
    return pick_score(("drb", drb), ("rb", _num(det, "rb")), ("reliability", _num(det, "reliability")))


def _classifier_columns(probs: pd.DataFrame) -> pd.DataFrame:
    """Per oid, the top class (ranking 1, first listed) of each classifier as columns."""
    need = {"oid", "classifier_name", "class_name", "probability"}
    if probs.empty or not need <= set(probs.columns):
        return pd.DataFrame()
    p = probs
    if "ranking" in p:
        p = p[pd.to_numeric(p["ranking"], errors="coerce") == 1]
    p = p.drop_duplicates(["oid", "classifier_name"], keep="first")
    if p.empty:
        return pd.DataFrame()
    name = p["classifier_name"].astype(str).map(lambda s: re.sub(r"\W+", "_", s).strip("_").lower())
    p = p.assign(_clf=name.to_numpy())
    out = {}
    for col, what in (("class_name", "class"), ("probability", "probability"), ("classifier_version", "version")):
        if col in p:
            wide = p.pivot(index="oid", columns="_clf", values=col)
            for c in wide.columns:
                out[f"alerce_{c}_{what}"] = wide[c]
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- read
def read(source) -> list[Frames]:
    """Read one ALeRCE JSON source (see the module docstring) into :class:`Frames`.

    Examples
    --------
    A ``query_detections`` response (a list of rows, which carry no ``oid``: given as an option):

    >>> import json
    >>> from lsstuk_kit.formats import Source
    >>> from lsstuk_kit.formats.alerce_json import read
    >>> rows = [{"candid": "1101542291015015004", "mjd": 58855.54, "fid": 2, "magpsf": 17.28, "sigmapsf": 0.056,
    ...          "isdiffpos": 1, "ra": 185.7288549, "dec": 15.8236255, "rb": 0.83},
    ...         {"candid": "1102541721015015005", "mjd": 58856.54, "fid": 1, "magpsf": 17.51, "sigmapsf": 0.061,
    ...          "isdiffpos": -1, "ra": 185.7288551, "dec": 15.8236249, "rb": 0.71}]
    >>> src = Source(label="detections.json", data=json.dumps(rows).encode(), options={"oid": "ZTF20aaelulu"})
    >>> frames = read(src)
    >>> s = frames[0].sources
    >>> s[["diaObjectId", "band", "mag"]].values.tolist()
    [['ZTF20aaelulu', 'r', 17.28], ['ZTF20aaelulu', 'g', 17.51]]
    >>> (s["psfFlux"] < 0).tolist()  # isdiffpos -1: a negative difference
    [False, True]
    >>> frames[0].history.groupby("_alert").size().tolist()  # each alert carries the rows up to its time
    [1, 2]
    """
    label = source.label
    options = dict(source.options or {})
    doc = source.json()
    parts, objects, probs = _split(doc, label, options.get("oid"))
    if not parts:
        return []
    objects = objects + _rows(_load_option(options.get("objects"), label, "objects"))
    probs = probs + [r for r in _rows(_load_option(options.get("probabilities"), label, "probabilities"))
                     if isinstance(r, dict)]
    if probs and options.get("oid") is not None:
        probs = [dict(r, oid=r.get("oid", options["oid"])) for r in probs]
    mode = options.get("history", "cumulative")
    fail = source.fail or _raise(label)

    try:
        det = _frame(parts, "detections")
    except AlertFormatError as exc:
        raise AlertFormatError(exc.reason, label) from None
    det["_rec"] = np.arange(len(det))
    survey = _survey_of(det, options)
    idcol = "candid" if survey == "ztf" and "candid" in det else "measurement_id"
    if idcol not in det:
        idcol = "candid" if "candid" in det else "measurement_id"

    # object ids: row oid, else the part's oid
    part_oid = pd.Series([p[0] for p in parts], dtype=object)
    oid = part_oid.reindex(det["_obj"].to_numpy()).to_numpy(object)
    if "oid" in det:
        row_oid = det["oid"].to_numpy(object)
        oid = np.where(pd.isna(row_oid), oid, row_oid)
    det["_oid"] = oid

    # validation: every problem reported once per detection row
    bad = np.zeros(len(det), bool)
    required = [(idcol, idcol), ("mjd", "mjd"), ("ra", "ra"), ("dec", "dec"),
                ("_oid", "oid")]
    if survey == "ztf":
        required += [("fid", "fid"), ("magpsf", "magpsf"), ("sigmapsf", "sigmapsf")]
    else:
        required += [("psfFlux", "psfFlux"), ("band", "band")]
    ids = exact_int(det[idcol]) if idcol in det else pd.Series(pd.NA, index=det.index, dtype="Int64")
    for col, name in required:
        if col not in det:
            miss = np.ones(len(det), bool)
        elif col == idcol:
            miss = ids.isna().to_numpy()
        elif col == "_oid":
            miss = pd.isna(det[col]).to_numpy()
        else:
            miss = pd.to_numeric(det[col], errors="coerce").isna().to_numpy() if col != "band" \
                else det[col].isna().to_numpy()
        for i in np.flatnonzero(miss & ~bad):
            why = (f"no {name}: give oid= (ALeRCE light curves do not repeat the object id in their rows)"
                   if name == "oid" else f"detection has no usable {name}")
            fail(why, record=int(det["_rec"].iat[i]), field=name)
        bad |= miss
    det = det[~bad].reset_index(drop=True)
    if det.empty:
        return []
    dia = exact_int(det[idcol]).to_numpy(np.int64)  # candids are 19-digit integers, often sent as strings
    obj_ids = det["_oid"].to_numpy(object)
    if survey == "lsst":
        lsst_ids = exact_int(obj_ids)
        for i in np.flatnonzero(lsst_ids.isna().to_numpy()):
            fail("LSST oid is not an integer", record=int(det["_rec"].iat[i]), field="oid")
        keep = lsst_ids.notna().to_numpy()
        if not keep.all():
            det, dia, lsst_ids = det[keep].reset_index(drop=True), dia[keep], lsst_ids[keep]
        obj_ids = lsst_ids.to_numpy(np.int64)

    n = len(det)
    flux, err, mag, mag_err = _photometry(det, survey, "detection")
    src = pd.DataFrame({
        "diaSourceId": dia,
        "diaObjectId": obj_ids,
        "ra": _num(det, "ra"),
        "dec": _num(det, "dec"),
        "midpointMjdTai": _num(det, "mjd"),
        "band": _bands(det, survey),
        "psfFlux": flux, "psfFluxErr": err, "mag": mag, "magErr": mag_err,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        src["snr"] = np.abs(flux) / err
    src["reliability"], src["reliabilitySource"] = _reliability(det)
    rest = det.drop(columns=[c for c in ("candid", "measurement_id", "ra", "dec", "oid", "diaObjectId", "psfFlux",
                                         "psfFluxErr", "band_map", "_obj", "_row", "_rec", "_oid") if c in det])
    if "band" in rest:
        rest = rest.rename(columns={"band": "alerce_band"})
    if "survey_id" in rest:
        rest = rest.drop(columns="survey_id")
    src = pd.concat([src, rest.drop(columns=[c for c in rest if c in src]).reset_index(drop=True)], axis=1)
    src["survey"] = survey
    src["broker"] = "alerce"
    src["schemaVersion"] = f"alerce.{survey}"

    # object-level columns (objects / probabilities responses) by oid
    okey = pd.Series(src["diaObjectId"].astype(str).to_numpy())
    obj_table = pd.DataFrame(objects) if objects else pd.DataFrame()
    if not obj_table.empty and "oid" in obj_table:
        obj_table = obj_table.assign(oid=obj_table["oid"].astype(str)).drop_duplicates("oid", keep="last")
        obj_table = obj_table.set_index("oid")
        for c, new in (("class", "alerce_class"), ("class_name", "alerce_class"),
                       ("probability", "alerce_probability"), ("classifier", "alerce_classifier")):
            if c in obj_table and new not in src:
                src[new] = obj_table[c].reindex(okey).to_numpy()
    else:
        obj_table = pd.DataFrame()
    if probs:
        p = pd.DataFrame(probs)
        if "oid" not in p and len(parts) == 1 and parts[0][0] is not None:
            p["oid"] = parts[0][0]
        if "oid" in p:
            p["oid"] = p["oid"].astype(str)
            wide = _classifier_columns(p)
            for c in wide.columns:
                src[c] = wide[c].reindex(okey).to_numpy()

    # history: detections, non-detections, forced photometry
    keys, uniq = pd.factorize(pd.Series(src["diaObjectId"].astype(str).to_numpy()))
    part_key = {}
    for i, (poid, _) in enumerate(parts):
        if poid is not None:
            part_key[i] = uniq.get_loc(str(poid)) if str(poid) in uniq else -1
    hist_parts = []
    d = src[["diaSourceId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "mag", "magErr", "snr",
             "reliability", "reliabilitySource"]].copy()
    d["kind"] = "detection"
    d["_key"] = keys
    hist_parts.append(d)
    dropped = 0
    for name, kind in (("non_detections", "upper_limit"), ("forced_photometry", "forced")):
        h = _frame(parts, name)
        if h.empty or len(h.columns) <= 2:
            continue
        hk = h["_obj"].map(part_key).fillna(-1).to_numpy(np.int64)
        if "oid" in h:
            ro = h["oid"].astype(str)
            hk = np.where(h["oid"].notna(), pd.Index(uniq).get_indexer(ro), hk)
        t = _num(h, "mjd")
        good = np.isfinite(t) & (hk >= 0)
        dropped += int((~np.isfinite(t)).sum())
        h, hk, t = h[good].reset_index(drop=True), hk[good], t[good]
        if h.empty:
            continue
        out = pd.DataFrame({"midpointMjdTai": t, "band": _bands(h, survey), "_key": hk})
        if kind == "upper_limit":
            lim = _num(h, "diffmaglim")
            out["psfFlux"] = np.nan
            out["psfFluxErr"] = mag_to_flux(lim) / 5.0
            out["limitingMag"] = lim
            out["mag"] = np.nan
            out["magErr"] = np.nan
        else:
            f, e, m, me = _photometry(h, survey, "forced")
            out["psfFlux"], out["psfFluxErr"], out["mag"], out["magErr"] = f, e, m, me
            if "diffmaglim" in h:
                out["limitingMag"] = _num(h, "diffmaglim")
            for c in ("ra", "dec"):
                if c in h:
                    out[c] = _num(h, c)
        out["kind"] = kind
        hist_parts.append(out)
    if dropped:
        warnings.warn(f"{label}: {dropped} ALeRCE non-detection / forced rows without a time were dropped",
                      stacklevel=3)
    hist = pd.concat(hist_parts, ignore_index=True, sort=False)
    rows, alerts = attach_history(keys, src["midpointMjdTai"].to_numpy(float), hist["_key"].to_numpy(np.int64),
                                  hist["midpointMjdTai"].to_numpy(float), mode)
    history = hist.iloc[rows].drop(columns="_key").reset_index(drop=True)
    history["_alert"] = alerts
    history["diaObjectId"] = src["diaObjectId"].to_numpy()[alerts]

    # objects: one row per alert (the summary as of that alert, plus the objects response)
    order = np.lexsort((src["midpointMjdTai"].to_numpy(), keys))
    t_sorted = pd.Series(src["midpointMjdTai"].to_numpy()[order])
    g = pd.Series(keys[order])
    ndet = np.empty(n, np.int64)
    first = np.empty(n)
    ndet[order] = g.groupby(g).cumcount().to_numpy() + 1
    first[order] = t_sorted.groupby(g.to_numpy()).cummin().to_numpy()
    objs = pd.DataFrame({"diaObjectId": src["diaObjectId"].to_numpy(), "ra": src["ra"].to_numpy(),
                         "dec": src["dec"].to_numpy(), "nDiaSources": ndet, "firstDiaSourceMjdTai": first,
                         "lastDiaSourceMjdTai": src["midpointMjdTai"].to_numpy(), "_alert": np.arange(n)})
    if not obj_table.empty:
        extra = obj_table.reindex(okey)
        if "meanra" in extra:
            objs["ra"] = np.where(extra["meanra"].notna(), extra["meanra"], objs["ra"])
            objs["dec"] = np.where(extra["meandec"].notna(), extra["meandec"], objs["dec"])
        for c in extra.columns:
            if c not in objs:
                objs["alerce_" + c if c in src.columns else c] = extra[c].to_numpy()
    return [Frames(sources=src, history=history, objects=objs, cutouts={},
                   records=det["_rec"].to_numpy(np.int64))]


def _raise(label):
    def fail(reason, record=None, field=None):
        raise AlertFormatError(reason, label, record, field)
    return fail


SPEC = FormatSpec(
    name="alerce-json",
    description="ALeRCE API responses (alerce client, format='json'): light curves, detections, "
                "with objects/probabilities as columns",
    identify=identify,
    read=read,
    suffixes=(".json",),
    survey="ztf",
    broker="alerce",
    example='read_alerts("ZTF20aaelulu.json", format="alerce-json", oid="ZTF20aaelulu")',
)
