"""Lasair JSON: Kafka filter messages and API responses in, filter messages out.

Lasair (the UK's Rubin broker) sends the results of an active filter as JSON
messages on Kafka, in three kinds (its ``alert-streams`` documentation):

==============  ===========================================================
kind            message
==============  ===========================================================
``attributes``  the filter's SELECTed attributes (e.g. ``diaObjectId``,
                ``ra``, ``decl``) plus ``"UTC"``, when the message was made
``lite``        the same plus ``"alert"``: ``diaSourcesList`` (``psfFlux``,
                ``psfFluxErr``, ``midpointMjdTai``, ``band``, ``reliability``)
                and ``diaForcedSourcesList`` (the same but ``reliability``)
``full``        the same plus ``"alert"``: ``diaObject``, ``diaSourcesList``
                and ``diaForcedSourcesList`` as Rubin sent them (cutouts
                left out), ``diaNondetectionLimitsList`` where present
==============  ===========================================================

Lasair stores declinations as ``decl`` (its MySQL tables avoid ``dec``) in
``objects``, ``diaObject``, ``diaSourcesList`` and ``diaForcedSourcesList``;
the reader renames them ``dec``, the writer writes ``decl``. Lasair sorts both
lists newest first.

Each message becomes one alert row (``sources``), keyed by ``diaObjectId``:

- the triggering detection is the **latest** ``diaSource`` of
  ``diaSourcesList`` (largest ``midpointMjdTai``; the first listed among
  equal times), so ``midpointMjdTai``, ``band``, ``psfFlux``... are its
  values. ``diaSourceId`` comes from it where the kind carries it (``full``,
  API objects); ``attributes`` and ``lite`` messages carry none, so their
  ``diaSourceId`` is missing and such sources are returned with
  ``required=("diaObjectId",)``.
- ``ra``/``dec``: the triggering diaSource's (``full``), else the selected
  ``ra``/``decl``, else the ``diaObject``'s.
- the selected attributes stay columns under their own names (``decl`` as
  ``dec``), as ``lasair_<name>`` where a diaSource or diaObject field has
  that name; ``"UTC"`` is ``lasair_utc``; ``lasair_kind`` says which kind of
  message each row came from.
- ``history`` holds every row of the lists (``detection``, ``forced``,
  ``upper_limit`` for ``diaNondetectionLimitsList``); ``objects`` the
  ``diaObject`` (``full``) or the selected attributes.

The Lasair web API (``https://api.lasair.lsst.ac.uk/api``, client ``lasair``
on PyPI) is read by the second format, ``lasair-api``:

- ``/api/object/``: ``{"diaObjectId", "diaObject", "diaSourcesList",
  "diaForcedSourcesList"}`` with ``lasairData`` (Lasair's own features,
  Sherlock, TNS) when ``lasair_added``; one alert row per object, triggered
  by its latest diaSource. Lasair-ZTF's ``/api/objects/`` (``objectId``,
  ``objectData``, ``candidates``) is read as ``survey="ztf"`` (``candid``,
  ``jd``, ``fid``, ``magpsf`` mapped as in :mod:`lsstuk_kit.surveys.ztf`).
- ``/api/lightcurves/`` (Lasair-ZTF): one list of candidates per object,
  without the object ids; pass ``objectIds=[...]`` (the list sent to the API,
  in order) through ``read_alerts``' format options.
- ``/api/query/``: rows of selected attributes (with ``diaObjectId`` and
  ``decl``), read like ``attributes`` messages.
- ``/api/cone/``: ``requestType`` ``all`` or ``nearest`` give one row per
  object (``diaObjectId``, ``separation`` in arcsec); ``count`` holds no
  object and is reported as such.

Every message that cannot be read (not JSON, truncated, another broker's
document, no ``diaObjectId``, a list that is not a list of records) is
reported through ``source.fail`` with its index; the others are read.

Examples
--------
>>> import json
>>> from lsstuk_kit import load_sample
>>> from lsstuk_kit.formats.lasair_json import to_lasair_messages
>>> batch = load_sample()
>>> msgs = to_lasair_messages(batch[:3], kind="lite", utc="2026-01-29 11:40:14")
>>> sorted(msgs[0])
['UTC', 'alert', 'decl', 'diaObjectId', 'ra']
>>> sorted(msgs[0]["alert"]["diaSourcesList"][0])
['band', 'midpointMjdTai', 'psfFlux', 'psfFluxErr', 'reliability']
>>> len(json.dumps(msgs)) > 0
True
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
from itertools import chain

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import AlertFormatError
from ..surveys._avrotypes import arrow_to_pandas
from ..surveys.common import flux_to_mag, mag_to_flux, pick_score
from ..surveys.lsst import canonical
from . import FormatSpec, Frames, Sniff, Source

__all__ = ["SPEC", "SPECS", "KINDS", "LITE_SOURCE_FIELDS", "LITE_FORCED_FIELDS", "read_lasair", "identify_lasair",
           "to_lasair_messages", "write_lasair_json"]

#: Kinds of Kafka filter message the writer makes.
KINDS = ("attributes", "lite", "full")

#: Fields of a diaSource in a ``lite`` message (Lasair's ``lightcurve_lite``).
LITE_SOURCE_FIELDS = ("psfFlux", "psfFluxErr", "midpointMjdTai", "band", "reliability")
#: Fields of a diaForcedSource in a ``lite`` message (forced photometry has no reliability).
LITE_FORCED_FIELDS = ("psfFlux", "psfFluxErr", "midpointMjdTai", "band")

_LISTS = {"diaSourcesList": "detection", "diaForcedSourcesList": "forced", "diaNondetectionLimitsList": "upper_limit"}
#: columns the kit adds when reading; never written back into a message
_DERIVED = {"kind", "_alert", "mag", "magErr", "reliabilitySource", "limitingMag", "survey", "broker",
            "schemaVersion", "lasair_kind", "lasair_utc"}
_ZTF_BANDS = {1: "g", 2: "r", 3: "i"}
_CONE_KEYS = {"objects", "count", "nearest"}
_SOURCE_REQUIRED = ("diaSourceId", "ra", "dec", "midpointMjdTai")


# ----------------------------------------------------------------------------- identification
def _claim_obj(obj, depth=0):
    """``"lasair-json"``, ``"lasair-api"`` or None for a parsed JSON value (looks at one element of a list)."""
    if isinstance(obj, (bytes, bytearray, memoryview, str)):
        if depth > 1:
            return None
        try:
            obj = json.loads(bytes(obj) if not isinstance(obj, str) else obj)
        except (ValueError, RecursionError):
            return None
        return _claim_obj(obj, depth + 1)
    if isinstance(obj, list):
        if not obj or depth > 2:
            return None
        first = obj[0]
        if isinstance(first, list):  # Lasair-ZTF /api/lightcurves/: a list of candidate lists
            c = first[0] if first and isinstance(first[0], dict) else {}
            return "lasair-api" if {"candid", "jd", "magpsf"} <= set(c) and "oid" not in c else None
        if isinstance(first, dict) and {"object", "separation"} <= set(first):
            return "lasair-api"
        return _claim_obj(first, depth + 1)
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    alert = obj.get("alert")
    if "UTC" in keys and ("diaObjectId" in keys or isinstance(alert, dict)):
        return "lasair-json"
    if isinstance(alert, dict) and ("diaSourcesList" in alert or "diaObject" in alert):
        return "lasair-json"
    if "lasairData" in keys or ({"objectId", "objectData"} <= keys):
        return "lasair-api"
    if "diaSourcesList" in keys or "diaForcedSourcesList" in keys:
        return "lasair-api" if "diaObjectId" in keys else "lasair-json"  # API object / stored Lasair alert
    if keys and keys <= _CONE_KEYS and ("nearest" in keys or "objects" in keys):
        return "lasair-api"
    if keys == {"object", "separation"}:  # an entry of a cone-search list
        return "lasair-api"
    if {"diaObjectId", "decl"} <= keys:  # an /api/query/ row (Lasair names declination decl)
        return "lasair-api"
    return None


def _claim_text(text: str):
    if not text or text[0] not in "[{":
        return None
    if '"diaSourcesList"' in text or '"diaForcedSourcesList"' in text:
        if '"UTC"' in text or '"alert"' in text:
            return "lasair-json"
        return "lasair-api" if '"lasairData"' in text or text.lstrip("[ \n\r\t").startswith('{"diaObjectId"') \
            else "lasair-json"
    if '"UTC"' in text and '"diaObjectId"' in text:
        return "lasair-json"
    if '"lasairData"' in text or ('"objectData"' in text and '"objectId"' in text):
        return "lasair-api"
    if '"nearest"' in text and '"separation"' in text:
        return "lasair-api"
    if text.startswith("[") and text[1:].lstrip().startswith("[") and all(
            f'"{k}"' in text for k in ("candid", "jd", "magpsf")) and '"oid"' not in text:
        return "lasair-api"
    if '"diaObjectId"' in text and '"decl"' in text and '"object"' not in text:
        return "lasair-api"
    return None


def identify_lasair(sniff: Sniff):
    """Which Lasair format claims ``sniff``: ``"lasair-json"``, ``"lasair-api"`` or None (never raises).

    Examples
    --------
    >>> from lsstuk_kit.formats import Sniff
    >>> from lsstuk_kit.formats.lasair_json import identify_lasair
    >>> message = {"diaObjectId": 1, "ra": 150.1, "decl": 2.2, "UTC": "2026-01-29 11:40:14"}
    >>> identify_lasair(Sniff(label="<message 0>", obj=message))  # a Kafka filter message
    'lasair-json'
    >>> identify_lasair(Sniff(label="query.json", obj=[{"diaObjectId": 1, "ra": 150.1, "decl": 2.2}]))  # /api/query/
    'lasair-api'
    >>> identify_lasair(Sniff(label="night.parquet", head=b"PAR1")) is None
    True
    """
    try:
        if sniff.obj is not None:
            return _claim_obj(sniff.obj)
        if sniff.head:
            return _claim_text(sniff.text_head())
    except Exception:  # noqa: BLE001 - identification must never fail a read
        return None
    return None


# ----------------------------------------------------------------------------- parsing the source
def _loads(raw):
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    return json.loads(raw)


def _messages(source: Source):
    """The source's records: a list of parsed values, or ``(reason, field)`` for records that do not parse."""
    obj = source.obj
    if obj is None:
        raw = source.read_bytes()
        text_lines = None
        path = (source.path or source.label or "").lower()
        if path.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
            text_lines = raw.splitlines()
        else:
            try:
                obj = _loads(raw)
            except (ValueError, RecursionError) as exc:
                lines = [ln for ln in raw.splitlines() if ln.strip()]
                first_ok = False
                if len(lines) > 1:
                    try:
                        _loads(lines[0])
                        first_ok = True
                    except (ValueError, RecursionError):
                        pass
                if not first_ok:
                    raise AlertFormatError(f"not valid JSON ({type(exc).__name__}: {exc})", source.label) from None
                text_lines = raw.splitlines()
        if text_lines is not None:
            out = []
            for ln in text_lines:
                if not ln.strip():
                    continue
                try:
                    out.append(_loads(ln))
                except (ValueError, RecursionError) as exc:
                    out.append(_Bad(f"message is not valid JSON ({type(exc).__name__}: {exc})"))
            return out
    if isinstance(obj, (bytes, bytearray, memoryview, str)):
        obj = [obj]
        single = True
    else:
        single = False
    if isinstance(obj, dict):
        return _expand_doc(obj, source)
    if not isinstance(obj, (list, tuple)):
        raise AlertFormatError(f"a JSON {type(obj).__name__} is not a Lasair message or response", source.label)
    out = []
    for item in obj:
        if isinstance(item, (bytes, bytearray, memoryview, str)):
            try:
                item = _loads(item)
            except (ValueError, RecursionError) as exc:
                out.append(_Bad(f"message is not valid JSON ({type(exc).__name__}: {exc})"))
                continue
            if single and isinstance(item, dict):
                return _expand_doc(item, source)
        out.append(item)
    return out


class _Bad:
    """A record that could not be parsed (kept in place so that indices stay those of the source)."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


def _expand_doc(doc: dict, source: Source):
    """One JSON object: a message, or an API response holding several records (cone search)."""
    keys = set(doc)
    if keys and keys <= _CONE_KEYS:
        if isinstance(doc.get("objects"), list):
            return [dict(o, _cone=True) if isinstance(o, dict) else o for o in doc["objects"]]
        near = doc.get("nearest")
        if isinstance(near, dict):
            return [dict(near, _cone=True)] if near else []
        source.fail(f"a Lasair cone-search count response (count={doc.get('count')!r}) holds no objects to read; "
                    "ask the API for requestType='all' or 'nearest'", field="count")
        return []
    if keys == {"error"}:
        source.fail(f"a Lasair API error response: {str(doc['error'])[:200]}", field="error")
        return []
    return [doc]


# ----------------------------------------------------------------------------- classification
def _is_records(value):
    return isinstance(value, list) and all(isinstance(x, dict) for x in value)


def _flatten_extra(d: dict, out: dict, prefix=""):
    """Scalars of ``d`` into ``out``; dicts one level down as ``<key>_<sub>``; lists as JSON text."""
    for k, v in d.items():
        if isinstance(v, dict):
            if prefix:
                out[prefix + k] = json.dumps(v, default=str)
            else:
                _flatten_extra(v, out, prefix=f"{k}_")
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v, default=str)
        else:
            out[prefix + k] = v


def _object_id(value):
    """A Rubin diaObjectId as an int (digit strings accepted), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


class _Rec:
    """One message, classified: its kind, envelope attributes, body lists and object."""

    __slots__ = ("k", "kind", "oid", "env", "utc", "obj", "lists", "survey", "has_snr", "strict")

    def __init__(self, k, kind, oid, env, utc=None, obj=None, lists=None, survey="lsst", has_snr=True, strict=True):
        self.k, self.kind, self.oid, self.env, self.utc = k, kind, oid, env, utc
        self.obj, self.lists, self.survey, self.has_snr = obj, lists or {}, survey, has_snr
        self.strict = strict  # carries full diaSource rows: diaSourceId, ra, dec, midpointMjdTai are required


def _classify(k, msg, options):
    """A :class:`_Rec`, or ``(reason, field)`` when the message is not a readable Lasair record."""
    if isinstance(msg, _Bad):
        return msg.reason, None
    if isinstance(msg, list):
        if msg and _is_records(msg) and all("jd" in c for c in msg) and any("candid" in c for c in msg):
            ids = options.get("objectIds")
            if ids is None:
                return ("a Lasair-ZTF /api/lightcurves/ response carries no object ids; pass objectIds=[...] "
                        "(the list sent to the API, in order)"), "objectId"
            idx = options.get("_lc_index", 0)
            options["_lc_index"] = idx + 1
            if idx >= len(ids):
                return f"objectIds has {len(ids)} ids, the response more light curves", "objectId"
            return _Rec(k, "ztf-lightcurve", str(ids[idx]), {}, lists={"candidates": msg}, survey="ztf")
        what = "numbers" if msg and all(isinstance(x, (int, float)) for x in msg) else "values"
        return f"a JSON list of {what} is not a Lasair message", None
    if not isinstance(msg, dict):
        return f"a JSON {type(msg).__name__} is not a Lasair message", None
    if "objectData" in msg and "objectId" in msg:  # Lasair-ZTF object
        cands = msg.get("candidates") or []
        if not _is_records(cands):
            return "candidates is not a list of records", "candidates"
        if not isinstance(msg["objectData"], dict):
            return "objectData is not a JSON object", "objectData"
        env = {}
        _flatten_extra({k2: v for k2, v in msg.items()
                        if k2 not in ("objectData", "candidates", "objectId", "sherlock", "TNS")}, env)
        obj = dict(msg["objectData"])
        for name in ("sherlock", "TNS"):
            if isinstance(msg.get(name), dict):
                _flatten_extra(msg[name], obj, prefix=f"{name}_")
        return _Rec(k, "ztf-object", str(msg["objectId"]), env, obj=obj, lists={"candidates": cands}, survey="ztf")
    if msg.get("_cone") or set(msg) == {"object", "separation"}:
        oid = _object_id(msg.get("object"))
        if oid is None:
            return "cone-search entry without an integer object id", "object"
        return _Rec(k, "cone", oid, {"separation": msg.get("separation")}, strict=False)
    alert = msg.get("alert")
    if alert is not None:
        if not isinstance(alert, dict):
            return "alert is not a JSON object", "alert"
        body = alert
        kind = "full" if "diaObject" in alert else "lite"
    elif "diaSourcesList" in msg or "diaObject" in msg or "diaForcedSourcesList" in msg:
        body = msg  # an /api/object/ response, or an alert as Lasair stores it (no diaObjectId at the top)
        kind = "full" if "UTC" in msg else ("object" if "diaObjectId" in msg else "alert")
    elif "diaObjectId" in msg:
        body = None
        kind = "attributes" if "UTC" in msg else "query"
    else:
        keys = ", ".join(sorted(map(str, msg))[:6])
        return f"not a Lasair message (no diaObjectId, alert or diaSourcesList; keys: {keys})", "diaObjectId"
    lists = {}
    obj = None
    if body is not None:
        for name in _LISTS:
            val = body.get(name)
            if val is None:
                continue
            if not _is_records(val):
                where = "alert." + name if body is alert else name
                return f"{name} is not a list of records", where
            lists[name] = val
        obj = body.get("diaObject")
        if obj is not None and not isinstance(obj, dict):
            return "diaObject is not a JSON object", "alert.diaObject" if body is alert else "diaObject"
    env = {}
    for key, v in msg.items():
        if key in ("alert", "UTC", "diaObject", "lasairData", "_cone") or key in _LISTS:
            continue
        if isinstance(v, (dict, list)):
            env[key] = json.dumps(v, default=str)
        else:
            env[key] = v
    if isinstance(msg.get("lasairData"), dict):
        extra = {}
        _flatten_extra({k2: v for k2, v in msg["lasairData"].items() if k2 != "imageUrls"}, extra)
        for key, v in extra.items():
            env.setdefault(key, v)
    raw_id = msg["diaObjectId"] if "diaObjectId" in msg else (obj or {}).get("diaObjectId")
    if raw_id is None:
        return "no diaObjectId in the message nor in its diaObject", "diaObjectId"
    oid = _object_id(raw_id)
    if oid is None:
        return f"diaObjectId {raw_id!r} is not an integer", "diaObjectId"
    srcs = lists.get("diaSourcesList") or []
    has_snr = bool(srcs) and "snr" in srcs[0]
    # full rows: kind 3 and stored alerts; API objects when their diaSources are whole (lite ones hold 6 fields)
    strict = kind in ("full", "alert") or (kind == "object" and bool(srcs) and "ra" in srcs[0])
    return _Rec(k, kind, oid, env, utc=msg.get("UTC"), obj=obj, lists=lists, has_snr=has_snr, strict=strict)


# ----------------------------------------------------------------------------- building tables
def _table(rows: list) -> pd.DataFrame:
    """Rows (dicts) -> DataFrame; union of keys; 64-bit ints kept exact (nullable where missing)."""
    n = len(rows)
    if n == 0:
        return pd.DataFrame(index=pd.RangeIndex(0))
    try:
        arr = pa.array(rows)
        if arr.type.num_fields == 0:
            return pd.DataFrame(index=pd.RangeIndex(n))
        df = arrow_to_pandas(pa.Table.from_struct_array(arr))
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        keys = list(dict.fromkeys(chain.from_iterable(rows)))
        cols = {}
        for key in keys:
            vals = [r.get(key) for r in rows]
            try:
                cols[key] = arrow_to_pandas(pa.table({key: pa.array(vals)}))[key]
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                cols[key] = pd.Series(vals, dtype=object)
        df = pd.DataFrame(cols, index=pd.RangeIndex(n))
    return df


def _canonical_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Lasair/legacy names -> current Rubin names (``decl`` -> ``dec``...)."""
    ren = {c: canonical(c) for c in df.columns if canonical(c) != c}
    if ren:
        df = df.drop(columns=[v for v in ren.values() if v in df.columns and v not in ren]).rename(columns=ren)
    return df


def _flat_lists(recs, name):
    """Rows of list ``name`` over records, with the position (in ``recs``) of the record of each row."""
    lists = [r.lists.get(name) or [] for r in recs]
    lengths = np.fromiter((len(x) for x in lists), np.int64, len(lists))
    parent = np.repeat(np.arange(len(recs)), lengths)
    order = np.arange(len(parent)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return list(chain.from_iterable(lists)), parent, order


def _latest(parent, time, order, n):
    """Per record, the row of its latest detection (first listed among equal times); -1 where none."""
    pick = np.full(n, -1, np.int64)
    if len(parent) == 0:
        return pick
    t = np.where(np.isnan(time), -np.inf, time)
    idx = np.lexsort((order, -t, parent))
    first = np.ones(len(idx), bool)
    first[1:] = parent[idx][1:] != parent[idx][:-1]
    pick[parent[idx][first]] = idx[first]
    return pick


def _take(df: pd.DataFrame, pos) -> pd.DataFrame:
    """Rows ``pos`` of ``df`` (``-1``: a missing row, nulls; integer columns become nullable, never float)."""
    pos = np.asarray(pos, np.int64)
    has = pos >= 0
    out = df.iloc[np.where(has, pos, 0)].reset_index(drop=True)
    if has.all():
        return out
    for c in out.columns:
        s = out[c]
        if s.dtype.kind in "iu":
            s = s.astype("Int64")
        elif s.dtype.kind == "b":
            s = s.astype("boolean")
        if s.dtype.kind == "f" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
            out[c] = s.where(has)
        elif s.dtype == object:
            out[c] = s.where(has, None)
        else:
            out[c] = s.where(has)
    return out


def _mags(df: pd.DataFrame) -> None:
    if "psfFlux" in df:
        flux = pd.to_numeric(df["psfFlux"], errors="coerce").to_numpy(float)
        err = (pd.to_numeric(df["psfFluxErr"], errors="coerce").to_numpy(float) if "psfFluxErr" in df
               else np.full(len(df), np.nan))
        df["mag"], df["magErr"] = flux_to_mag(flux, err)


def _as_float(df, name):
    if name not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def _lsst_frames(recs):
    """Frames parts for Rubin-family records: sources, history, objects (row i = recs[i])."""
    n = len(recs)
    kinds = np.array([r.kind for r in recs], dtype=object)
    ids = pd.array([r.oid for r in recs], dtype="Int64")

    det_rows, det_parent, det_order = _flat_lists(recs, "diaSourcesList")
    det = _canonical_frame(_table(det_rows))
    det_time = _as_float(det, "midpointMjdTai")
    pick = _latest(det_parent, det_time, det_order, n)
    src = _take(det, pick) if len(det) else pd.DataFrame(index=range(n))

    objs = [r.obj if r.obj is not None else {} for r in recs]
    obj = _canonical_frame(_table(objs)) if any(objs) else pd.DataFrame(index=range(n))
    has_obj = np.array([bool(o) for o in objs])
    env = _table([r.env for r in recs])
    env = env.drop(columns=[c for c in ("diaObjectId",) if c in env.columns])

    sources = src
    add = [c for c in obj.columns if c not in sources.columns]
    if add:
        sources = pd.concat([sources, obj[add]], axis=1)
    taken = set(sources.columns)
    env_cols = {}
    for c in env.columns:
        target = "dec" if c == "decl" else c
        name = f"lasair_{c}" if target in taken else target
        env_cols[name] = env[c]
    if env_cols:
        sources = pd.concat([sources, pd.DataFrame(env_cols, index=sources.index)], axis=1)
    # positions: the triggering diaSource's, else the selected ra/decl, else the diaObject's
    for col, alt in (("ra", "lasair_ra"), ("dec", "lasair_decl")):
        vals = _as_float(sources, col)
        if alt in sources:
            vals = np.where(np.isnan(vals), _as_float(sources, alt), vals)
        if col in obj:
            vals = np.where(np.isnan(vals), _as_float(obj, col), vals)
        sources[col] = vals
    sources["diaObjectId"] = ids
    if "diaSourceId" not in sources:
        sources["diaSourceId"] = pd.array([None] * n, dtype="Int64")
    elif sources["diaSourceId"].dtype.kind != "O":
        sources["diaSourceId"] = sources["diaSourceId"].astype("Int64")
    for c in ("midpointMjdTai", "psfFlux", "psfFluxErr", "reliability"):
        sources[c] = _as_float(sources, c)
    if "band" in sources:
        sources["band"] = sources["band"].astype("string").str.lower().astype(object).where(
            sources["band"].notna(), None)
    snr_missing = ~np.array([r.has_snr for r in recs])
    snr = _as_float(sources, "snr")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sources["psfFlux"].to_numpy(float) / sources["psfFluxErr"].to_numpy(float)
    sources["snr"] = np.where(snr_missing & np.isnan(snr), ratio, snr)
    score, label = pick_score(("reliability", sources["reliability"].to_numpy(float)))
    sources["reliability"] = score
    sources["reliabilitySource"] = label
    _mags(sources)
    sources["survey"] = "lsst"
    sources["broker"] = "lasair"
    sources["schemaVersion"] = None
    sources["lasair_kind"] = kinds
    sources["lasair_utc"] = np.array([r.utc for r in recs], dtype=object)

    # objects: the diaObject, and the selected attributes it does not hold
    env_obj = env.rename(columns={"decl": "dec"}).drop(columns=["separation"], errors="ignore")
    add = [c for c in env_obj.columns if c not in obj.columns]
    objects = pd.concat([obj, env_obj[add]], axis=1) if add else obj.copy()
    # rows of full messages take their object from diaObject only (none for solar-system sources)
    from_attrs = ~np.isin(kinds, ["full", "alert"])
    keep_obj = has_obj | (from_attrs & (env_obj.notna().any(axis=1).to_numpy() if len(env_obj.columns) else False))
    objects["diaObjectId"] = ids
    objects["_alert"] = np.arange(n)
    objects = objects[keep_obj].reset_index(drop=True)
    objects = objects[["diaObjectId"] + [c for c in objects.columns if c != "diaObjectId"]]

    parts = []
    if len(det):
        parts.append(_history_part(det, det_parent, "detection", ids))
    for name in ("diaForcedSourcesList", "diaNondetectionLimitsList"):
        rows, parent, _ = _flat_lists(recs, name)
        if rows:
            parts.append(_history_part(_canonical_frame(_table(rows)), parent, _LISTS[name], ids))
    return sources, parts, objects


def _nullable_ints(df: pd.DataFrame) -> pd.DataFrame:
    """Integer (numpy) columns -> nullable ones, so that concatenating with frames lacking them keeps ids exact."""
    ints = {c: ("Int64" if df[c].dtype.kind == "i" else "UInt64") for c in df.columns
            if isinstance(df[c].dtype, np.dtype) and df[c].dtype.kind in "iu"}
    return df.astype(ints) if ints else df


def _history_part(df, parent, kind, ids):
    df = _nullable_ints(df)
    if kind == "upper_limit" and "diaNoise" in df:
        noise = _as_float(df, "diaNoise")
        df["psfFluxErr"] = noise
        df["psfFlux"] = np.nan
        df["limitingMag"] = flux_to_mag(5 * noise)
    df["diaObjectId"] = ids[parent]
    if "band" in df:
        df["band"] = df["band"].astype(object).where(df["band"].isna(), df["band"].astype("string").str.lower())
    if kind == "detection":
        df["reliabilitySource"] = pick_score(("reliability", _as_float(df, "reliability")))[1]
    if kind != "upper_limit":
        _mags(df)
    df["kind"] = kind
    df["_alert"] = parent
    return df


def _ztf_frames(recs):
    """Frames parts for Lasair-ZTF records (API objects, light curves)."""
    n = len(recs)
    rows, parent, order = _flat_lists(recs, "candidates")
    c = _table(rows)
    jd = _as_float(c, "jd")
    is_det = c["candid"].notna().to_numpy() if "candid" in c else np.zeros(len(c), bool)
    mag = _as_float(c, "magpsf")
    sig = _as_float(c, "sigmapsf")
    flux, err = mag_to_flux(mag, sig)
    if "isdiffpos" in c:
        neg = c["isdiffpos"].astype(str).str.lower().isin(["f", "0", "false"]).to_numpy()
        flux = np.where(neg, -flux, flux)
    mapped = pd.DataFrame({
        "diaSourceId": c["candid"].astype("Int64") if "candid" in c else pd.array([None] * len(c), dtype="Int64"),
        "midpointMjdTai": jd - 2400000.5,
        "band": pd.Series(pd.to_numeric(c.get("fid"), errors="coerce")).map(_ZTF_BANDS).astype(object)
        if "fid" in c else None,
        "psfFlux": np.where(is_det, flux, np.nan),
        "psfFluxErr": np.where(is_det, err, np.nan),
        "mag": np.where(is_det, mag, np.nan),
        "magErr": np.where(is_det, sig, np.nan),
    }, index=c.index)
    limit = _as_float(c, "diffmaglim")
    mapped["limitingMag"] = np.where(is_det, np.nan, limit)
    mapped.loc[~is_det, "psfFluxErr"] = mag_to_flux(limit[~is_det]) / 5
    mapped["reliability"], mapped["reliabilitySource"] = pick_score(("drb", _as_float(c, "drb")))
    raw = c.drop(columns=[x for x in c.columns if x in mapped.columns])
    full = pd.concat([mapped, raw], axis=1)
    ids = np.array([r.oid for r in recs], dtype=object)
    t = np.where(is_det, mapped["midpointMjdTai"].to_numpy(), np.nan)
    pick = _latest(parent[is_det], t[is_det], order[is_det], n)
    det_idx = np.flatnonzero(is_det)
    has = pick >= 0
    sources = full.iloc[det_idx[np.where(has, pick, 0)]].reset_index(drop=True) if len(det_idx) \
        else pd.DataFrame(index=range(n), columns=list(full.columns))
    if not has.all():
        sources = sources.astype(object).where(pd.DataFrame({x: has for x in sources.columns}), None)
        for col in ("midpointMjdTai", "psfFlux", "psfFluxErr", "mag", "magErr", "reliability", "ra", "dec"):
            if col in sources:
                sources[col] = pd.to_numeric(sources[col], errors="coerce")
    env = _table([r.env for r in recs])
    if len(env.columns):
        sources = pd.concat([sources, env.add_prefix("lasair_")], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sources["snr"] = np.abs(_as_float(sources, "psfFlux")) / _as_float(sources, "psfFluxErr")
    sources["diaObjectId"] = ids
    sources["survey"] = "ztf"
    sources["broker"] = "lasair"
    sources["schemaVersion"] = None
    sources["lasair_kind"] = np.array([r.kind for r in recs], dtype=object)
    sources["lasair_utc"] = None

    objs = [r.obj or {} for r in recs]
    has_obj = np.array([bool(o) for o in objs])
    objects = _table(objs)
    objects = objects.rename(columns={k: v for k, v in (("ramean", "ra"), ("decmean", "dec")) if k in objects})
    objects["diaObjectId"] = ids
    objects["_alert"] = np.arange(n)
    objects = objects[has_obj].reset_index(drop=True)

    hist = _nullable_ints(full)
    hist["diaObjectId"] = ids[parent] if len(parent) else np.array([], dtype=object)
    hist["kind"] = np.where(is_det, "detection", "upper_limit")
    hist["_alert"] = parent
    return sources, [hist], objects


def _frames(recs):
    lsst = [r for r in recs if r.survey == "lsst"]
    ztf = [r for r in recs if r.survey == "ztf"]
    out = []
    for group, build in ((lsst, _lsst_frames), (ztf, _ztf_frames)):
        if not group:
            continue
        sources, hist_parts, objects = build(group)
        hist = pd.concat(hist_parts, ignore_index=True, sort=False) if hist_parts else pd.DataFrame(
            {"diaObjectId": pd.Series([], dtype=object), "kind": pd.Series([], dtype=object),
             "_alert": pd.Series([], dtype=np.int64)})
        hist["kind"] = pd.Categorical(hist["kind"], categories=["detection", "forced", "upper_limit"])
        hist["_alert"] = hist["_alert"].astype(np.int64)
        out.append((group, sources, hist, objects))
    return out


def _validate(group, sources, source: Source):
    """Rows of full-kind records lacking a required field are reported; returns the mask of good rows."""
    good = np.ones(len(group), bool)
    strict = np.array([r.strict for r in group])
    for col in _SOURCE_REQUIRED:
        vals = sources[col] if col in sources else pd.Series([None] * len(group))
        miss = vals.isna().to_numpy() & strict & good
        for i in np.flatnonzero(miss):
            r = group[i]
            where = "candidates" if r.survey == "ztf" else ("alert.diaSourcesList" if r.kind == "full"
                                                            else "diaSourcesList")
            col_name = {"dec": "decl"}.get(col, col) if r.survey == "lsst" else col
            source.fail(f"no {col_name} for the triggering (latest) detection", record=r.k,
                        field=f"{where}.{col_name}")
        good &= ~miss
    return good


def _subset(sources, hist, objects, good):
    if good.all():
        return sources, hist, objects
    keep = np.flatnonzero(good)
    remap = np.full(len(good), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    sources = sources.iloc[keep].reset_index(drop=True)
    hist = hist[good[hist["_alert"].to_numpy()]].copy()
    hist["_alert"] = remap[hist["_alert"].to_numpy()]
    objects = objects[good[objects["_alert"].to_numpy()]].copy()
    objects["_alert"] = remap[objects["_alert"].to_numpy()]
    return sources, hist.reset_index(drop=True), objects.reset_index(drop=True)


def read_lasair(source: Source) -> list:
    """Read one source of Lasair JSON (messages or API responses) into :class:`~lsstuk_kit.formats.Frames`.

    Parameters
    ----------
    source : Source
        A file (``.json`` document or array, ``.jsonl`` one message a line,
        gzip allowed), bytes, a parsed JSON object, or a list of messages
        (bytes, str or dicts) as a Kafka consumer gets them.
        ``source.options["objectIds"]`` names the objects of a Lasair-ZTF
        ``/api/lightcurves/`` response.

    Returns
    -------
    list of Frames
        One per survey present (Rubin, ZTF); rows in message order.
        ``required`` is ``("diaObjectId",)`` when any row comes from a kind
        that carries no ``diaSourceId`` (``attributes``, ``lite``, query and
        cone-search rows), else the Rubin default.

    Examples
    --------
    >>> from lsstuk_kit.formats import Source
    >>> from lsstuk_kit.formats.lasair_json import read_lasair
    >>> msg = b'{"diaObjectId": 169760235333878021, "decl": -38.16, "ra": 221.87, "UTC": "2026-01-29 11:40:14"}'
    >>> fails = []
    >>> (frames,) = read_lasair(Source(label="<message>", data=msg, fail=lambda *a, **k: fails.append(a)))
    >>> frames.sources[["diaObjectId", "ra", "dec", "lasair_utc"]].values.tolist()
    [[169760235333878021, 221.87, -38.16, '2026-01-29 11:40:14']]
    >>> frames.required
    ('diaObjectId',)
    """
    msgs = _messages(source)
    options = dict(source.options or {})
    recs = []
    for k, msg in enumerate(msgs):
        got = _classify(k, msg, options)
        if isinstance(got, _Rec):
            recs.append(got)
        else:
            source.fail(got[0], record=k, field=got[1])
    out = []
    for group, sources, hist, objects in _frames(recs):
        good = _validate(group, sources, source)
        sources, hist, objects = _subset(sources, hist, objects, good)
        group = [r for r, g in zip(group, good) if g]
        if not group:
            continue
        loose = not all(r.strict for r in group)
        out.append(Frames(sources=sources, history=hist, objects=objects, cutouts={},
                          records=np.array([r.k for r in group], np.int64),
                          required=("diaObjectId",) if loose else _SOURCE_REQUIRED))
    return out


# ----------------------------------------------------------------------------- writing
def _json_columns(df: pd.DataFrame) -> list:
    """Rows of ``df`` as dicts of JSON-safe Python values (NaN/NA/inf -> None, numpy scalars -> Python)."""
    names = [str(c) for c in df.columns]
    cols = []
    for c in df.columns:
        s = df[c]
        dt = s.dtype
        if isinstance(dt, np.dtype) and dt.kind == "f":
            arr = s.to_numpy()
            vals = arr.tolist()
            for i in np.flatnonzero(~np.isfinite(arr)).tolist():
                vals[i] = None
        elif isinstance(dt, np.dtype) and dt.kind in "iub":
            vals = s.to_numpy().tolist()
        else:
            vals = s.tolist()
            for i in np.flatnonzero(s.isna().to_numpy()).tolist():
                vals[i] = None
            vals = [_py(v) for v in vals]
        cols.append(vals)
    if not cols:
        return [{} for _ in range(len(df))]
    return [dict(zip(names, row)) for row in zip(*cols)]


def _py(v):
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, np.generic):
        return _py(v.item())
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_py(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {str(k): _py(x) for k, x in v.items()}
    return str(v)


def _lasair_names(df: pd.DataFrame) -> pd.DataFrame:
    """Rubin names -> the names Lasair writes (``dec`` -> ``decl``)."""
    return df.rename(columns={"dec": "decl"}) if "dec" in df.columns and "decl" not in df.columns else df


def _window(hist: pd.DataFrame, alert_ids, alert_times):
    """Per alert, ``[lo, hi)`` of the rows of ``hist`` (sorted by object, time) of its object up to its time."""
    n = len(alert_ids)
    if len(hist) == 0:
        z = np.zeros(n, np.int64)
        return hist, z, z
    codes, uniq = pd.factorize(pd.concat([pd.Series(alert_ids, dtype=object),
                                          pd.Series(hist["diaObjectId"].to_numpy(), dtype=object)],
                                         ignore_index=True), use_na_sentinel=True)
    a_code, h_code = codes[:n], codes[n:]
    h_time = pd.to_numeric(hist["midpointMjdTai"], errors="coerce").to_numpy(float)
    order = np.lexsort((h_time, h_code))
    hist = hist.iloc[order].reset_index(drop=True)
    h_code, h_time = h_code[order], h_time[order]
    times, inv = np.unique(np.concatenate([h_time, np.asarray(alert_times, float)]), return_inverse=True)
    inv = inv.reshape(-1)
    width = np.int64(len(times) + 1)
    h_key = h_code.astype(np.int64) * width + inv[:len(h_time)]
    a_key = a_code.astype(np.int64) * width + inv[len(h_time):]
    lo = np.searchsorted(h_code, a_code, "left")
    hi = np.searchsorted(h_key, a_key, "right")
    bad = (a_code < 0) | np.isnan(np.asarray(alert_times, float))
    hi = np.where(bad, lo, np.maximum(hi, lo))
    return hist, lo, hi


def _record_columns(part: pd.DataFrame, fields=None) -> pd.DataFrame:
    """History rows of one kind -> the columns a Lasair list holds (derived and all-null columns left out)."""
    if fields is not None:
        cols = [c for c in fields if c in part.columns]
        out = part[cols].copy()
        for c in fields:
            if c not in out:
                out[c] = None
        return out[list(fields)]
    cols = [c for c in part.columns if c not in _DERIVED and not str(c).startswith("lasair_")
            and part[c].notna().any()]
    return _lasair_names(part[cols])


def _default_attributes(batch, src: pd.DataFrame) -> pd.DataFrame:
    """diaObjectId, ra, decl: the object's position (as Lasair's ``objects`` table), else the alert's."""
    ra = src["ra"].to_numpy(float) if "ra" in src else np.full(len(src), np.nan)
    dec = src["dec"].to_numpy(float) if "dec" in src else np.full(len(src), np.nan)
    objs = batch.objects
    if len(objs) and "ra" in objs.columns and "dec" in objs.columns:
        o = objs[["ra", "dec"]].reindex(pd.Index(src["diaObjectId"]))
        ora, odec = o["ra"].to_numpy(float), o["dec"].to_numpy(float)
        ok = np.isfinite(ora) & np.isfinite(odec)
        ra, dec = np.where(ok, ora, ra), np.where(ok, odec, dec)
    return pd.DataFrame({"diaObjectId": src["diaObjectId"].to_numpy(), "ra": ra, "decl": dec})


def to_lasair_messages(batch, kind="attributes", attributes=None, utc=None) -> list:
    """Lasair Kafka filter messages for the alerts of ``batch``, one per alert, in ``batch.sources`` order.

    Parameters
    ----------
    batch : AlertBatch
        The alerts (e.g. those a filter passed).
    kind : {"attributes", "lite", "full"}
        ``"attributes"``: the selected attributes and ``"UTC"``; ``"lite"``
        adds ``alert.diaSourcesList`` (psfFlux, psfFluxErr, midpointMjdTai,
        band, reliability) and ``alert.diaForcedSourcesList`` (the same but
        reliability) from ``batch.history`` of the alert's object up to and
        including the alert's time, newest first (as Lasair sorts them);
        ``"full"`` adds ``alert.diaObject`` from ``batch.objects`` (the
        object's latest summary in the batch) and the full source rows
        (``alert.diaNondetectionLimitsList`` from upper limits). Declinations
        are written ``decl``, as Lasair does.
    attributes : pandas.DataFrame, optional
        One row per alert (positionally, or indexed like ``batch.sources``):
        the filter's SELECTed attributes. Default ``diaObjectId``, ``ra``,
        ``decl`` (the object's position where ``batch.objects`` has it, else
        the alert's).
    utc : str or sequence of str, optional
        The ``"UTC"`` of each message (one string for all, or one per alert);
        default now, ``"YYYY-MM-DD HH:MM:SS"`` in UTC.

    Returns
    -------
    list of dict
        JSON-safe (NaN -> None, numpy scalars -> Python); ``json.dumps`` each
        for Kafka. List entries of several messages may be the same dict
        objects (an object's history is shared): copy before changing them.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.formats.lasair_json import to_lasair_messages
    >>> batch = load_sample()
    >>> (m,) = to_lasair_messages(batch[:1], kind="full", utc="2026-01-29 11:40:14")
    >>> m["alert"]["diaSourcesList"][0]["diaSourceId"] == int(batch.sources.index[0])
    True
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    src = batch.sources.reset_index()
    n = len(src)
    if attributes is None:
        attrs = _default_attributes(batch, src)
    else:
        if not isinstance(attributes, pd.DataFrame):
            raise TypeError(f"attributes must be a pandas DataFrame with one row per alert, not {type(attributes)}")
        if len(attributes) != n:
            raise ValueError(f"attributes has {len(attributes)} rows, the batch {n} alerts")
        attrs = attributes
        if attrs.index.equals(batch.sources.index) or not attrs.index.equals(pd.RangeIndex(n)):
            attrs = attrs.reset_index(drop=True)
    if utc is None:
        utc = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(utc, str):
        utcs = [utc] * n
    else:
        utcs = [str(u) for u in utc]
        if len(utcs) != n:
            raise ValueError(f"utc has {len(utcs)} values, the batch {n} alerts")
    out = _json_columns(attrs)
    for m, u in zip(out, utcs):
        m["UTC"] = u
    if kind == "attributes" or n == 0:
        return out

    hist = batch.history
    ids = src["diaObjectId"].to_numpy(dtype=object)
    times = pd.to_numeric(src["midpointMjdTai"], errors="coerce").to_numpy(float)
    own = src["diaSourceId"].to_numpy(dtype=object) if "diaSourceId" in src else np.full(n, None, object)
    kinds = hist["kind"].astype(str).to_numpy() if "kind" in hist else np.array([], dtype=str)
    alerts = [{} for _ in range(n)]
    if kind == "full":
        # each alert's own diaObject (as it stood at that alert), as Lasair sends it
        objs = batch.alert_objects()
        if len(objs.columns):
            o = objs.reset_index(drop=True)
            o = o[[c for c in o.columns if c not in _DERIVED and not str(c).startswith("lasair_")]]
            recs = _json_columns(_lasair_names(o))
            carried = o["diaObjectId"].notna().to_numpy() if "diaObjectId" in o else np.zeros(len(o), bool)
            for a, rec, has in zip(alerts, recs, carried):
                a["diaObject"] = rec if has else None
        else:
            for a in alerts:
                a["diaObject"] = None
    lists = [("diaSourcesList", "detection", LITE_SOURCE_FIELDS),
             ("diaForcedSourcesList", "forced", LITE_FORCED_FIELDS)]
    if kind == "full":
        lists.append(("diaNondetectionLimitsList", "upper_limit", None))
    for name, hkind, lite_fields in lists:
        part = hist[kinds == hkind]
        part, lo, hi = _window(part, ids, times)
        if kind == "lite":
            table = _record_columns(part, lite_fields)
        else:
            table = _record_columns(part)
            if hkind == "upper_limit":
                table = table.drop(columns=["psfFlux", "psfFluxErr"], errors="ignore") \
                    if "diaNoise" in table else table
        recs = _json_columns(table) if len(part) else []
        # the alert's own detection first among equal times (the reader takes the first latest)
        fix = np.zeros(n, bool)
        if hkind == "detection" and len(part) and "diaSourceId" in part:
            top = np.where(hi > lo, hi - 1, 0)
            same = pd.Series(part["diaSourceId"].to_numpy(dtype=object)[top]).eq(pd.Series(own))
            fix = (hi > lo) & ~same.fillna(False).astype(bool).to_numpy() & pd.notna(own)
        for i, (a, lo_i, hi_i) in enumerate(zip(alerts, lo.tolist(), hi.tolist())):
            rows = recs[lo_i:hi_i][::-1]
            if fix[i]:
                ptime = part["midpointMjdTai"].to_numpy(float)
                sid = part["diaSourceId"].to_numpy(dtype=object)
                for j in range(hi_i - 1, lo_i - 1, -1):
                    if ptime[j] != ptime[hi_i - 1]:
                        break
                    if sid[j] == own[i]:
                        rows.insert(0, rows.pop(hi_i - 1 - j))
                        break
            a[name] = rows
    for m, a in zip(out, alerts):
        m["alert"] = a
    return out


def write_lasair_json(batch, path, kind="attributes", attributes=None, utc=None) -> int:
    """Write Lasair filter messages to ``path``: a JSON array (``.json``) or one message a line (``.jsonl``).

    ``.gz`` compresses. The arguments are those of :func:`to_lasair_messages`.
    Returns the number of messages written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lsstuk_kit import load_sample, read_alerts
    >>> from lsstuk_kit.formats.lasair_json import write_lasair_json
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lasair.jsonl"
    >>> write_lasair_json(load_sample()[:5], path, kind="lite")
    5
    """
    msgs = to_lasair_messages(batch, kind=kind, attributes=attributes, utc=utc)
    path = str(path)
    base = path[:-3] if path.endswith(".gz") else path
    if base.endswith((".jsonl", ".ndjson")):
        text = "".join(json.dumps(m, allow_nan=False) + "\n" for m in msgs)
    elif base.endswith(".json"):
        text = json.dumps(msgs, allow_nan=False)
    else:
        raise ValueError(f"{path}: give a .json or .jsonl file name (optionally .gz)")
    data = text.encode("utf-8")
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(msgs)


SPEC = FormatSpec(
    name="lasair-json",
    description="Lasair Kafka filter messages (attributes, lite or full light curve) and stored Lasair alerts (JSON)",
    identify=lambda sniff: identify_lasair(sniff) == "lasair-json",
    read=read_lasair,
    suffixes=(".json", ".jsonl", ".json.gz", ".jsonl.gz"),
    survey="lsst",
    broker="lasair",
    example='read_alerts("lasair_messages.jsonl")  # or read_alerts([msg.value() for msg in msgs])',
)

API_SPEC = FormatSpec(
    name="lasair-api",
    description="Lasair API responses: /api/object/, /api/query/, /api/cone/; Lasair-ZTF objects and lightcurves",
    identify=lambda sniff: identify_lasair(sniff) == "lasair-api",
    read=read_lasair,
    suffixes=(".json", ".json.gz"),
    survey="lsst",
    broker="lasair",
    example="read_alerts(L.object(diaObjectId, lite=False))  # L = lasair.lasair_client(token, endpoint=...)",
)

SPECS = (SPEC, API_SPEC)
