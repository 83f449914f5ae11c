"""Fink's Parquet alert tables: read them into an AlertBatch, write a batch as one.

The Fink broker (https://fink-broker.org) keeps alerts as Parquet, one row per
alert: the survey's alert packet as nested columns (Rubin: ``diaSource``,
``diaObject`` structs, ``prvDiaSources``/``prvDiaForcedSources`` lists, cutouts as
bytes; ZTF: ``candidate`` struct, ``prv_candidates`` list, cutouts as
``struct<fileName, stampData>``), plus Fink's own columns (cross-matches,
classifier scores, light-curve features, timestamps). The survey is told per file
from its columns (``diaSource`` -> Rubin, ``candidate`` -> ZTF).

How a file is read: row group by row group (in chunks of about 64 MB
uncompressed), each chunk turned into the prefixed Arrow table the survey
mappings take (:func:`lsstuk_kit.surveys.lsst.to_frames`,
:func:`lsstuk_kit.surveys.ztf.to_frames`), so a Fink row gives exactly the columns
the same alert read from Avro gives, plus Fink's. ``sources["broker"]`` is
``"fink"``.

=============================  ==============================================================
Parquet column                 becomes
=============================  ==============================================================
``diaSource`` / ``candidate``  the alert's source row (Rubin names; ZTF mapped as for Avro)
``diaObject``                  ``objects`` (scalars), its fields also on ``sources``
``prvDiaSources``,             ``history`` rows (``kind`` detection / forced / upper_limit)
``prvDiaForcedSources``,
``prv_candidates``, ...
cutouts                        ``batch.cutouts(id)`` (ZTF: the ``stampData`` of the struct)
other struct columns           flattened: ``<column>_<field>`` (``clf_cats_class``,
                               ``xm_simbad_otype``, ``ssSource_designation``, ``misc_...``)
map columns                    flattened per key: ``<column>_<key>_<field>``; Fink's
(``lc_features``)              ``lc_features`` (band -> light-curve features) gives
                               ``lc_features_i_mean``, ``lc_features_i_amplitude``, ...;
                               rows without that band hold nulls
other columns                  kept as they are (``brokerIngestMjd``, ``cdsxmatch``,
                               ``rf_snia_vs_nonia``, timestamps, versions ...); a name
                               that would clash with a mapped column gets ``fink_``
=============================  ==============================================================

Quirks of Fink's layout, and what the reader does about them:

- **Nullable records stored as all-null structs** (``ssSource`` and ``mpc_orbits`` of
  alerts that are no solar-system object, ``diaObject`` of solar-system sources): a
  struct whose fields are all null is read as a missing record, never as a record
  of nulls: no ``objects`` row, null flattened columns. A row whose ``diaSource`` (or
  ``candidate``) is missing is not an alert and is reported.
- **Integer fields stored as doubles** (ZTF's ``prv_candidates.candid``, ``tblid``,
  ``nbad``, ``nneg`` in Fink's older files): every field the survey's schema
  declares integer (Rubin: the official schema of the row's version, from
  ``lsst-alert-packet``; ZTF: the integer fields of ``candidate``/``prv_candidate``
  in ZTF's schema, :data:`ZTF_INT_FIELDS`) but stored as floating point is turned
  back into int64 where that is exact (integral and ``|x| < 2**53``). Where it is
  not (a ZTF ``candid`` is about 2.7e18, far past 2**53, so its double has lost the
  last digits): the alert's own ids (``diaSource.diaSourceId``,
  ``diaSource.diaObjectId``, the top-level ``diaSourceId``/``candid``,
  ``candidate.candid``) cannot key the alert, and the row is reported through
  ``source.fail`` naming the row and field; any other field (a history row's id,
  a count) is read as missing (``<NA>``) and a :class:`LossyIntegerWarning` says
  how many values of which field were lost. The history row keeps its
  measurements and its kind. The real Rubin 10.0 Fink file stores every Rubin
  integer as an integer.
- Rows whose required fields (``diaSourceId``, ``ra``, ``dec``, time) are null, or
  whose position is outside the sky, are reported, never silently dropped: alerts
  returned + rows reported = rows in the file.

Examples
--------
>>> import tempfile, os
>>> from lsstuk_kit import load_sample
>>> from lsstuk_kit.formats import Source
>>> from lsstuk_kit.formats.fink_parquet import SPEC, write_fink_parquet
>>> batch = load_sample()[:5]
>>> path = write_fink_parquet(batch, os.path.join(tempfile.mkdtemp(), "night.parquet"))
>>> frames = SPEC.read(Source(label=path, path=path, fail=print))
>>> frames[0].sources["diaSourceId"].tolist() == batch.sources.index.tolist()
True
>>> frames[0].sources["broker"].unique().tolist()
['fink']
"""

from __future__ import annotations

import functools
import os
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import AlertFormatError
from ..surveys import lsst as _lsst
from ..surveys import ztf as _ztf
from ..surveys._avrotypes import collect_names, record_fields, resolve
from . import FormatSpec, Frames, Sniff, Source

__all__ = ["SPEC", "read_fink_parquet", "write_fink_parquet", "iter_records", "LossyIntegerWarning",
           "ZTF_INT_FIELDS"]

PARQUET_MAGIC = b"PAR1"

#: Integer fields of ZTF's ``candidate`` and ``prv_candidate`` records (ZTF alert schema
#: 3.x-4.02, ZwickyTransientFacility/ztf-avro-alert): read back as int64 when Fink
#: stores them as doubles.
ZTF_INT_FIELDS = frozenset({
    "fid", "pid", "programid", "candid", "tblid", "nid", "rcid", "field", "nneg", "nbad", "ndethist",
    "ncovhist", "tooflag", "objectidps1", "objectidps2", "objectidps3", "nmtchps", "rfid", "nframesref",
    "nmatches",
})

#: Uncompressed bytes per chunk read at once (row groups larger than this are read in pieces).
CHUNK_BYTES = 64 * 2**20

_LSST_HISTORY = ("prvDiaSources", "prvDiaForcedSources", "prvDiaNondetectionLimits")
_ZTF_HISTORY = ("prv_candidates", "fp_hists")
_CUTOUTS = tuple(_lsst.CUTOUTS.values())
#: columns the mappings compute (a Fink column of that name is renamed ``fink_<name>``)
_COMPUTED = {"survey", "broker", "schemaVersion", "mag", "magErr", "snr", "reliability", "reliabilitySource",
             "diaSourceId", "diaObjectId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "kind", "_alert",
             "limitingMag"}
_ZTF_ALERT_FIELDS = ("objectId", "schemavsn", "publisher", "candid")
_SENTINEL = -1  # stands for a lost ZTF history candid while the mapping tells detections from limits


class LossyIntegerWarning(UserWarning):
    """Integers stored as doubles whose exact value is lost (read as missing).

    Examples
    --------
    The bundled real Fink ZTF file stores ``prv_candidates.candid`` as doubles beyond 2**53:

    >>> import warnings
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.formats.fink_parquet import LossyIntegerWarning
    >>> path = lk.real_alerts_path() / "fink" / "fink_ztf_ctao_blazar_414_subset.parquet"
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     batch = lk.read_alerts(path, cutouts=False)
    >>> lossy = [w for w in caught if issubclass(w.category, LossyIntegerWarning)]
    >>> print(lossy[0].message)
    /...fink_ztf_ctao_blazar_414_subset.parquet: integer fields stored as doubles ... values per field:
    prv_candidates.candid: 298
    >>> issubclass(LossyIntegerWarning, UserWarning), len(batch)
    (True, 29)
    """


# --------------------------------------------------------------------------- identify
def _identify(sniff: Sniff) -> bool:
    """Parquet by magic or suffix; a readable file must also have a ``diaSource`` or ``candidate`` column."""
    if not (sniff.head[:4] == PARQUET_MAGIC or sniff.suffix == ".parquet"):
        return False
    path = sniff.label
    if isinstance(path, str) and os.path.isfile(path):
        try:
            names = pq.read_schema(path).names
        except Exception:  # noqa: BLE001 - unreadable: claim it, the read says why
            return True
        return "diaSource" in names or "candidate" in names
    return True


# --------------------------------------------------------------------------- helpers
def _open(source: Source) -> pq.ParquetFile:
    try:
        if source.path is not None:
            return pq.ParquetFile(source.path)
        return pq.ParquetFile(pa.BufferReader(source.data if source.data is not None else source.read_bytes()))
    except FileNotFoundError:
        raise AlertFormatError("no such file", source.label) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise AlertFormatError(f"not a readable Parquet file, or truncated ({type(exc).__name__}: {exc})",
                               source.label) from None


def _survey(names) -> str | None:
    if "diaSource" in names:
        return "lsst"
    if "candidate" in names:
        return "ztf"
    return None


def _null_empty(arr: pa.StructArray) -> pa.StructArray:
    """The struct with rows whose fields are all null made null (quirk: all-null structs are missing records)."""
    if arr.type.num_fields == 0:
        return arr
    children = arr.flatten()  # parent nulls applied
    empty = None
    for ch in children:
        nul = ch.is_null()
        empty = nul if empty is None else pc.and_(empty, nul)
    if empty.true_count == arr.null_count:
        return arr
    return pa.StructArray.from_arrays(children, fields=list(arr.type), mask=empty)


def _exact_int(arr: pa.Array):
    """Floating values as int64 where exact; ``(int64 array, lost mask)`` (lost: not null, not exact)."""
    v = arr.to_numpy(zero_copy_only=False).astype(float)
    valid = ~np.isnan(v)
    with np.errstate(invalid="ignore"):
        ok = valid & (np.abs(v) < 2.0**53) & (np.floor(v) == v)
    out = np.zeros(len(v), np.int64)
    out[ok] = v[ok].astype(np.int64)
    return pa.array(out, pa.int64(), mask=~ok), valid & ~ok


def _fix_ints(arr, int_fields):
    """Convert floating fields named in ``int_fields`` of a struct (or list of structs) array.

    Returns ``(array, {field: lost mask over the struct rows}, parents)`` where ``parents``
    maps struct rows to table rows for list columns (``None`` for a struct column).
    """
    is_list = pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
    st = arr.values if is_list else arr
    if not pa.types.is_struct(st.type):
        return arr, {}, None
    todo = [i for i, f in enumerate(st.type) if f.name in int_fields and pa.types.is_floating(f.type)]
    if not todo:
        return arr, {}, None
    children = st.flatten() if not is_list else [st.field(i) for i in range(st.type.num_fields)]
    fields = list(st.type)
    lost = {}
    for i in todo:
        children[i], mask = _exact_int(children[i])
        fields[i] = pa.field(fields[i].name, pa.int64())
        if mask.any():
            lost[fields[i].name] = mask
    mask = st.is_null() if st.null_count else None
    new = pa.StructArray.from_arrays(children, fields=fields, mask=mask)
    if not is_list:
        return new, lost, None
    offsets = arr.offsets
    out = pa.ListArray.from_arrays(offsets, new, mask=arr.is_null() if arr.null_count else None)
    parents = None
    if lost:
        # row of each element of the (whole) child array; elements outside the list's range get -1
        off = offsets.to_numpy(zero_copy_only=False)
        parents = np.full(len(st), -1, np.int64)
        lengths = np.diff(off)
        parents[off[0]:off[-1]] = np.repeat(np.arange(len(arr)), lengths)
    return out, lost, parents


def _map_to_list(arr: pa.MapArray) -> pa.ListArray:
    st = pa.StructArray.from_arrays([arr.keys, arr.items], fields=[arr.type.key_field, arr.type.item_field])
    return pa.ListArray.from_arrays(arr.offsets, st, mask=arr.is_null() if arr.null_count else None)


def _flatten(name, arr, out):
    """Scalar columns of ``arr`` into ``out`` as ``name`` / ``name_field`` / ``name_key_field``."""
    t = arr.type
    if pa.types.is_struct(t):
        arr = _null_empty(arr)
        for f, child in zip(t, arr.flatten()):
            _flatten(f"{name}_{f.name}", child, out)
    elif pa.types.is_map(t):
        lst = _map_to_list(arr)
        flat = pc.list_flatten(lst)
        if len(flat) == 0:
            return
        parent = pc.list_parent_indices(lst).to_numpy()
        keys = flat.field(0)
        items = flat.field(1)
        for key in pc.unique(keys).to_pylist():
            sel = np.flatnonzero(pc.equal(keys, key).to_numpy(zero_copy_only=False))
            idx = np.full(len(arr), -1, np.int64)
            idx[parent[sel]] = sel  # a repeated key: the last entry wins
            _flatten(f"{name}_{key}", items.take(pa.array(idx, mask=idx < 0)), out)
    else:
        out[name] = arr


# --------------------------------------------------------------------------- reading
@functools.cache
def _rubin_int_fields(version: str | None):
    """``{record column: integer field names}`` from the official Rubin schema of ``version``."""
    from ..schema import latest_schema_version, load_rubin_schema

    m = re.search(r"v(\d+)_(\d+)", version or "")
    try:
        schema = load_rubin_schema(int(m.group(1)), int(m.group(2))) if m else None
    except KeyError:
        schema = None
    if schema is None:
        schema = load_rubin_schema(*latest_schema_version())
    names = collect_names(schema)
    out = {"": set()}
    for f in schema["fields"]:
        kind, d = resolve(f["type"], names)
        if kind in ("record", "array"):
            ints = set()
            for sub in record_fields(f["type"], names):
                k2, d2 = resolve(sub["type"], names)
                if k2 == "scalar" and d2 in ("int", "long"):
                    ints.add(sub["name"])
            out[f["name"]] = ints
        elif kind == "scalar" and d in ("int", "long"):
            out[""].add(f["name"])
    return out


class _Chunk:
    """One chunk of rows being turned into a prefixed table; problems go to ``source.fail``."""

    def __init__(self, table, first_row, source, survey):
        self.t = table
        self.n = table.num_rows
        self.rows = np.arange(first_row, first_row + self.n, dtype=np.int64)
        self.source = source
        self.survey = survey
        self.bad = np.zeros(self.n, bool)
        self.lost = {}  # field -> number of values lost

    def fail_rows(self, mask, reason, fld):
        mask = np.asarray(mask, bool) & ~self.bad
        for i in np.flatnonzero(mask):
            self.source.fail(reason, int(self.rows[i]), fld)
        self.bad |= mask

    def col(self, name):
        return self.t.column(name).combine_chunks()

    def ints(self, name, arr, int_fields, identity=(), sentinel=False):
        """``arr`` with floating integer fields converted; lost identity ids fail their rows."""
        new, lost, parents = _fix_ints(arr, int_fields)
        for fld, mask in lost.items():
            where = f"{name}.{fld}"
            if parents is None and fld in identity:
                self.fail_rows(mask, f"{where} is an integer id stored as a double that cannot be recovered "
                                     "exactly (beyond 2**53 or not integral)", where)
                continue
            if parents is not None:
                rows = parents[mask]
                rows = rows[rows >= 0]
                if len(rows) == 0:
                    continue
            self.lost[where] = self.lost.get(where, 0) + int(mask.sum())
            if sentinel and fld == "candid" and parents is not None:
                new = _set_sentinel(new, fld, mask)
        return new

    def check_required(self, values: dict, prefix: str):
        for fld, arr in values.items():
            self.fail_rows(arr.is_null().to_numpy(zero_copy_only=False), f"required field {prefix}{fld} is null",
                           prefix + fld)
        for fld, lo, hi in (("ra", 0, 360), ("dec", -90, 90)):
            if fld in values:
                v = values[fld].to_numpy(zero_copy_only=False).astype(float)
                with np.errstate(invalid="ignore"):
                    out = ~np.isfinite(v) | (v < lo) | (v > hi)
                self.fail_rows(out, f"{prefix}{fld} is NaN or outside [{lo}, {hi}] deg", prefix + fld)


def _set_sentinel(list_arr, fld, mask):
    """Put :data:`_SENTINEL` into field ``fld`` of a list-of-struct array where ``mask`` (over its values)."""
    st = list_arr.values
    i = st.type.get_field_index(fld)
    child = st.field(i)
    filled = pc.if_else(pa.array(mask), pa.scalar(_SENTINEL, child.type), child)
    children = [st.field(k) if k != i else filled for k in range(st.type.num_fields)]
    new = pa.StructArray.from_arrays(children, fields=list(st.type), mask=st.is_null() if st.null_count else None)
    return pa.ListArray.from_arrays(list_arr.offsets, new, mask=list_arr.is_null() if list_arr.null_count else None)


def _extras(ch, used, reserved, cols):
    """Fink's and the alert's other columns as ``a:`` columns (structs and maps flattened)."""
    for name in ch.t.column_names:
        if name in used:
            continue
        out = {}
        _flatten(name, ch.col(name), out)
        for k, v in out.items():
            cols["a:" + (f"fink_{k}" if k in reserved else k)] = v


def _top_id(ch, cols, name, record):
    """The row's top-level id column (a double recovered to int64 where exact), checked against ``record.name``."""
    top = ch.col(name)
    if pa.types.is_floating(top.type):
        top, lost = _exact_int(top)
        ch.fail_rows(lost, f"{name} is an integer id stored as a double that cannot be recovered exactly", name)
    if "s:" + name in cols:
        differ = pc.fill_null(pc.not_equal(top.cast(pa.int64()), cols["s:" + name].cast(pa.int64())), False)
        ch.fail_rows(differ.to_numpy(zero_copy_only=False), f"the row's {name} differs from its {record}.{name}", name)
    return top


def _lsst_table(ch: _Chunk, source: Source):
    t = ch.t
    version = None
    if "lsst_schema_version" in t.column_names:
        vs = pc.drop_null(ch.col("lsst_schema_version"))
        version = vs[0].as_py() if len(vs) else None
    ints = _rubin_int_fields(version)
    cols = {}
    ds = _null_empty(ch.col("diaSource"))
    ch.fail_rows(ds.is_null().to_numpy(zero_copy_only=False), "the row has no diaSource (null): not an alert",
                 "diaSource")
    ds = ch.ints("diaSource", ds, ints.get("diaSource", ()), identity=("diaSourceId", "diaObjectId"))
    names = [f.name for f in ds.type]
    for f, child in zip(names, ds.flatten()):
        cols["s:" + f] = child
    required = {f: cols["s:" + f] for f in names if _lsst.canonical(f) in _lsst.REQUIRED}
    for f in _lsst.REQUIRED:
        if f not in {_lsst.canonical(x) for x in names}:
            ch.fail_rows(np.ones(ch.n, bool), f"required field diaSource.{f} is missing from the table",
                         f"diaSource.{f}")
    ch.check_required(required, "diaSource.")
    used = {"diaSource"}
    if "diaSourceId" in t.column_names:
        _top_id(ch, cols, "diaSourceId", "diaSource")
        used.add("diaSourceId")
    if "diaObject" in t.column_names:
        obj = _null_empty(ch.col("diaObject"))
        obj = ch.ints("diaObject", obj, ints.get("diaObject", ()))
        for f, child in zip(obj.type, obj.flatten()):
            if not (pa.types.is_nested(f.type) or pa.types.is_binary(f.type)):
                cols["o:" + f.name] = child
        used.add("diaObject")
    for name in _LSST_HISTORY:
        if name in t.column_names:
            key = "prvDiaSources" if name == "prvDiaSources" else name
            rec = {"prvDiaSources": "diaSource", "prvDiaForcedSources": "diaForcedSource",
                   "prvDiaNondetectionLimits": "diaNondetectionLimit"}[key]
            cols["h:" + name] = ch.ints(name, ch.col(name), ints.get(name, ints.get(rec, ())))
            used.add(name)
    for name in _CUTOUTS:
        if name in t.column_names:
            if source.cutouts:
                cols["c:" + name] = ch.col(name)
            used.add(name)
    reserved = {_lsst.canonical(k[2:]) for k in cols if k[:2] in ("s:", "o:")} | _COMPUTED
    reserved.discard("lsst_schema_version")
    extra = {}
    for name in t.column_names:
        if name in used:
            continue
        arr = ch.col(name)
        if name in ints and pa.types.is_struct(arr.type):
            arr = ch.ints(name, _null_empty(arr), ints[name])
        elif name in ints[""] and pa.types.is_floating(arr.type):
            arr, lost = _exact_int(arr)
            if lost.any():
                ch.lost[name] = ch.lost.get(name, 0) + int(lost.sum())
        _flatten(name, arr, extra)
    for k, v in extra.items():
        cols["a:" + (f"fink_{k}" if k in reserved else k)] = v
    return pa.table(cols), version


def _ztf_table(ch: _Chunk, source: Source):
    t = ch.t
    cols = {}
    cand = _null_empty(ch.col("candidate"))
    ch.fail_rows(cand.is_null().to_numpy(zero_copy_only=False), "the row has no candidate (null): not an alert",
                 "candidate")
    cand = ch.ints("candidate", cand, ZTF_INT_FIELDS, identity=("candid",))
    names = [f.name for f in cand.type]
    for f, child in zip(names, cand.flatten()):
        cols["s:" + f] = child
    need = ("candid", "ra", "dec", "jd")
    for f in need:
        if f not in names:
            ch.fail_rows(np.ones(ch.n, bool), f"required field candidate.{f} is missing from the table",
                         f"candidate.{f}")
    ch.check_required({f: cols["s:" + f] for f in need if f in names}, "candidate.")
    for f in ("magpsf", "sigmapsf", "fid", "isdiffpos"):
        if f not in names:
            ch.fail_rows(np.ones(ch.n, bool), f"field candidate.{f} (needed to map the detection) is missing",
                         f"candidate.{f}")
    used = {"candidate"}
    if "candid" in t.column_names:
        cols["a:candid"] = _top_id(ch, cols, "candid", "candidate")
        used.add("candid")
    for name in ("objectId", "schemavsn", "publisher"):
        if name in t.column_names:
            cols["a:" + name] = ch.col(name)
            used.add(name)
    for name in _ZTF_HISTORY:
        if name in t.column_names:
            cols["h:" + name] = ch.ints(name, ch.col(name), ZTF_INT_FIELDS, sentinel=True)
            used.add(name)
    for name in _CUTOUTS:
        if name in t.column_names:
            if source.cutouts:
                arr = ch.col(name)
                if pa.types.is_struct(arr.type):
                    i = arr.type.get_field_index("stampData")
                    arr = arr.flatten()[i] if i >= 0 else pa.nulls(len(arr), pa.binary())
                cols["c:" + name] = arr
            used.add(name)
    reserved = set(names) | _COMPUTED | {"candid"}
    _extras(ch, used, reserved, cols)
    return pa.table(cols), None


def _wanted_columns(pf: pq.ParquetFile, survey, source: Source):
    """Top-level columns to read: everything, or under a projection the alert's own plus those asked for."""
    names = pf.schema_arrow.names
    if source.columns is None:
        keep = names
    else:
        core = ({"diaSourceId", "diaSource", "diaObject", "lsst_schema_version", *_LSST_HISTORY}
                if survey == "lsst" else {"candid", "candidate", "objectId", "schemavsn", "publisher", *_ZTF_HISTORY})
        asked = set(source.columns)
        keep = [n for n in names if n in core or n in asked or any(a.startswith(n + "_") for a in asked)
                or n in _CUTOUTS]
    if not source.cutouts:
        keep = [n for n in keep if n not in _CUTOUTS]
    return keep


def _chunks(pf: pq.ParquetFile, columns, source: Source):
    """Yield ``(first_row, table)`` chunks, reporting the rows of chunks that do not decode."""
    first = 0
    meta = pf.metadata
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        n = rg.num_rows
        per_row = max(1, rg.total_byte_size // max(n, 1))
        size = int(max(1, min(n, CHUNK_BYTES // per_row)))
        done = 0
        try:
            for b in pf.iter_batches(batch_size=size, row_groups=[g], columns=columns, use_threads=True):
                yield first + done, pa.Table.from_batches([b])
                done += b.num_rows
        except AlertFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - the bytes' fault: report the rows lost
            reason = f"row group {g} does not decode ({type(exc).__name__}: {exc})"
            for r in range(first + done, first + n):
                source.fail(reason if r == first + done else f"lost with row {first + done} of row group {g}", r)
        first += n


def read_fink_parquet(source: Source) -> list:
    """Read one Fink Parquet file (or its bytes) into :class:`~lsstuk_kit.formats.Frames`.

    Parameters
    ----------
    source : Source
        The file (``path``) or its bytes (``data``); problems are reported through
        ``source.fail`` (one call per row not returned).

    Returns
    -------
    list of Frames
        One per chunk read; ``records`` are row numbers in the file.

    Raises
    ------
    AlertFormatError
        If the input is not a readable Parquet file (truncated, not Parquet), or
        is no Fink alert table (the message lists the columns found).

    Examples
    --------
    >>> import os, tempfile
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.formats import Source
    >>> from lsstuk_kit.formats.fink_parquet import read_fink_parquet, write_fink_parquet
    >>> path = write_fink_parquet(load_sample()[:3], os.path.join(tempfile.mkdtemp(), "a.parquet"))
    >>> [len(f.sources) for f in read_fink_parquet(Source(label=path, path=path, fail=print))]
    [3]
    """
    pf = _open(source)
    names = pf.schema_arrow.names
    survey = _survey(names)
    if survey is None:
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} columns)" if len(names) > 20 else "")
        raise AlertFormatError(
            "not a Fink alert table: it has neither a 'diaSource' (Rubin) nor a 'candidate' (ZTF) column; "
            f"columns found: {shown}", source.label)
    columns = _wanted_columns(pf, survey, source)
    mod = _lsst if survey == "lsst" else _ztf
    out = []
    lost_total = {}
    for first, table in _chunks(pf, columns, source):
        if table.num_rows == 0:
            continue
        ch = _Chunk(table, first, source, survey)
        try:
            prefixed, version = (_lsst_table if survey == "lsst" else _ztf_table)(ch, source)
            keep = np.flatnonzero(~ch.bad)
            if len(keep) == 0:
                continue
            if len(keep) < ch.n:
                prefixed = prefixed.take(pa.array(keep))
            sources, history, objects, cut = mod.to_frames(prefixed, version)
        except AlertFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - a row the mapping cannot take: report the chunk's rows
            ch.fail_rows(np.ones(ch.n, bool), f"the rows do not fit the {survey} mapping ({type(exc).__name__}: "
                                              f"{exc})", None)
            continue
        for k, v in ch.lost.items():
            lost_total[k] = lost_total.get(k, 0) + v
        if survey == "ztf" and "diaSourceId" in history.column_names:
            ids = history.column("diaSourceId")
            if pa.types.is_integer(ids.type):
                gone = pc.fill_null(pc.equal(ids, _SENTINEL), False)
                if pc.any(gone).as_py():
                    history = history.set_column(history.column_names.index("diaSourceId"), "diaSourceId",
                                                 pc.if_else(gone, pa.scalar(None, ids.type), ids))
        sources = sources.reset_index(drop=True)
        sources["broker"] = "fink"
        out.append(Frames(sources=sources, history=history, objects=objects, cutouts=cut,
                          records=ch.rows[keep], required=tuple(mod.REQUIRED)))
    if lost_total:
        what = "; ".join(f"{k}: {v}" for k, v in sorted(lost_total.items()))
        warnings.warn(f"{source.label}: integer fields stored as doubles whose exact value is lost (beyond 2**53 or "
                      f"not integral) were read as missing (<NA>); values per field: {what}",
                      LossyIntegerWarning, stacklevel=2)
    return out


def iter_records(path_or_bytes, rows):
    """Yield ``(row, dict)`` for the given row numbers of a Fink Parquet file: the raw row as stored.

    For reading raw alerts again (cutouts of a batch read with ``cutouts=False``,
    iterating a batch). Rows are read row group by row group.

    Examples
    --------
    >>> import os, tempfile
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.formats.fink_parquet import iter_records, write_fink_parquet
    >>> path = write_fink_parquet(load_sample()[:3], os.path.join(tempfile.mkdtemp(), "a.parquet"))
    >>> [(i, rec["cutoutScience"][:6]) for i, rec in iter_records(path, [2])]
    [(2, b'SIMPLE')]
    """
    src = pa.BufferReader(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    pf = pq.ParquetFile(src)
    wanted = sorted({int(r) for r in rows})
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)])
    if wanted and (wanted[0] < 0 or wanted[-1] >= starts[-1]):
        raise IndexError(f"rows {[r for r in wanted if r < 0 or r >= starts[-1]]} are not in the file "
                         f"({int(starts[-1])} rows)")
    for g in range(pf.metadata.num_row_groups):
        sel = [r for r in wanted if starts[g] <= r < starts[g + 1]]
        if not sel:
            continue
        t = pf.read_row_group(g).take(pa.array(np.asarray(sel) - starts[g]))
        yield from zip(sel, t.to_pylist())


# --------------------------------------------------------------------------- writing
_AVRO_TO_ARROW = {"long": pa.int64(), "int": pa.int32(), "float": pa.float32(), "double": pa.float64(),
                  "string": pa.string(), "boolean": pa.bool_(), "bytes": pa.binary()}


def _record_types(schema):
    """``{top-level field: (kind, [(field name, arrow type)])}`` of a Rubin schema."""
    names = collect_names(schema)
    out = {}
    for f in schema["fields"]:
        kind, d = resolve(f["type"], names)
        if kind in ("record", "array"):
            subs = []
            for sub in record_fields(f["type"], names):
                k2, d2 = resolve(sub["type"], names)
                if k2 == "scalar":
                    subs.append((sub["name"], _AVRO_TO_ARROW.get(d2 if isinstance(d2, str) else "string",
                                                                 pa.string())))
            out[f["name"]] = (kind, subs)
        else:
            out[f["name"]] = (kind, _AVRO_TO_ARROW.get(d if isinstance(d, str) else "string", pa.string()))
    return out


def _arrow(values: pd.Series, typ) -> pa.Array:
    """A pandas column as an Arrow array of ``typ`` (nulls kept; ints exact)."""
    arr = pa.Array.from_pandas(values)
    if isinstance(arr, pa.ChunkedArray):  # a column pandas keeps in Arrow (its "str" dtype)
        arr = arr.combine_chunks()
    if arr.type == typ:
        return arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    try:
        return arr.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pc.cast(arr, typ, safe=False)


def _struct(frame: pd.DataFrame, fields, mask=None) -> pa.StructArray | None:
    present = [(name, typ) for name, typ in fields if _lsst.canonical(name) in frame.columns]
    if not present:
        return None
    arrays = [_arrow(frame[_lsst.canonical(name)], typ) for name, typ in present]
    return pa.StructArray.from_arrays(arrays, fields=[pa.field(n, t) for n, t in present],
                                      mask=None if mask is None else pa.array(mask))


def _schema_for(versions):
    from ..schema import latest_schema_version, load_rubin_schema

    found = sorted({(int(m.group(1)), int(m.group(2))) for v in versions if isinstance(v, str)
                    for m in [re.search(r"lsst\.v(\d+)_(\d+)", v)] if m})
    for major, minor in reversed(found):
        try:
            return load_rubin_schema(major, minor)
        except KeyError:
            continue
    return load_rubin_schema(*latest_schema_version())


def write_fink_parquet(batch, path, *, compression="snappy", row_group_size=None):
    """Write a batch of Rubin alerts as a Fink-style Parquet table (one row per alert).

    Columns, as Fink writes them: the alert's top-level fields (``diaSourceId``,
    ``observation_reason``, ...), ``diaSource`` and ``diaObject`` structs,
    ``prvDiaSources`` and ``prvDiaForcedSources`` lists of structs (each alert's own
    history, as it carried it), ``cutoutScience``/``cutoutTemplate``/``cutoutDifference``
    as bytes, ``lsst_schema_version``, the other records of the schema the batch
    carries as flattened columns (``ssSource_...``) nested again (an alert whose
    fields are all null gets a null struct), and every other column of
    ``batch.sources`` (broker additions such as Fink's ``clf_...``, ``xm_...``) as flat
    columns. Field names and types follow the official Rubin schema of the batch's
    ``schemaVersion`` (the newest one in the batch). Computed columns (``mag``,
    ``magErr``, ``survey``, ``broker``, ``schemaVersion``, ``reliabilitySource``) are
    not written; reading the file gives them again.

    Parameters
    ----------
    batch : AlertBatch
        Rubin alerts (``survey == "lsst"``). ZTF batches are refused: the ZTF mapping
        keeps only mapped columns of ``prv_candidates``, so a faithful ZTF row
        cannot be rebuilt.
    path : str, path or writable file object
        Output file.
    compression : str
        Parquet codec (``"snappy"``, as Spark writes Fink's files; ``"zstd"``, ...).
    row_group_size : int, optional
        Rows per row group (default: pyarrow's).

    Returns
    -------
    str
        ``path``, so that ``read_alerts(write_fink_parquet(batch, path))`` reads it back.

    Examples
    --------
    >>> import os, tempfile
    >>> import pyarrow.parquet as pq
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.formats.fink_parquet import write_fink_parquet
    >>> path = write_fink_parquet(load_sample()[:4], os.path.join(tempfile.mkdtemp(), "night.parquet"))
    >>> t = pq.read_table(path)
    >>> t.num_rows, "diaSource" in t.column_names, str(t.schema.field("cutoutScience").type)
    (4, True, 'binary')
    """
    st = batch._store
    pos = np.asarray(batch._pos, np.int64)
    src = st.sources.iloc[pos].reset_index(drop=True)
    n = len(src)
    surveys = set(src["survey"].dropna().unique()) if "survey" in src else {"lsst"}
    if surveys - {"lsst"}:
        raise ValueError(f"write_fink_parquet writes Rubin (lsst) alerts; this batch holds {sorted(surveys)} "
                         "alerts (ZTF history keeps only mapped columns, so a faithful ZTF row cannot be rebuilt)")
    schema = _schema_for(src["schemaVersion"].dropna().unique().tolist() if "schemaVersion" in src else [])
    recs = _record_types(schema)
    cols: dict = {}
    used = {"survey", "broker", "schemaVersion", "mag", "magErr", "reliabilitySource"}
    if "snr" not in dict(recs.get("diaSource", ("", []))[1]):
        used.add("snr")
    # top-level scalars of the schema
    for name, (kind, typ) in recs.items():
        if kind not in ("record", "array", "bytes") and name in src:
            cols[name] = _arrow(src[name], typ)
            used.add(name)
    ds_fields = recs["diaSource"][1]
    cols["diaSource"] = _struct(src, ds_fields)
    used |= {_lsst.canonical(f) for f, _ in ds_fields}

    # history: each alert's own rows, without its triggering detection
    new_pos = np.full(len(st.sources), -1, np.int64)
    new_pos[pos] = np.arange(n)
    h = st.history
    alert = new_pos[h["_alert"].to_numpy(np.int64)] if len(h) else np.zeros(0, np.int64)
    h = h[alert >= 0].assign(_alert=alert[alert >= 0])
    if len(h) and "diaSourceId" in h:
        own = src["diaSourceId"].to_numpy()[h["_alert"].to_numpy()]
        hid = h["diaSourceId"]
        is_own = (h["kind"].astype(str) == "detection").to_numpy() & hid.notna().to_numpy() & \
                 (hid.to_numpy(dtype=object, na_value=None) == own)
        h = h[~is_own]
    h = h.sort_values("_alert", kind="stable")
    kinds = h["kind"].astype(str).to_numpy() if len(h) else np.zeros(0, object)
    for lst, kind in (("prvDiaSources", "detection"), ("prvDiaForcedSources", "forced"),
                      ("prvDiaNondetectionLimits", "upper_limit")):
        sub = h[kinds == kind]
        if lst not in recs:
            if len(sub):
                warnings.warn(f"{len(sub)} {kind} history rows are not written: schema {schema['name']} has no "
                              f"{lst} list", stacklevel=2)
            continue
        counts = np.bincount(sub["_alert"].to_numpy(np.int64), minlength=n)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        values = _struct(sub.reset_index(drop=True), recs[lst][1])
        if values is None:
            values = pa.StructArray.from_arrays([pa.nulls(len(sub), pa.int64())], names=["_"])
        cols[lst] = pa.ListArray.from_arrays(offsets, values)

    # diaObject: the summary each alert carried (null where it carried none)
    if "diaObject" in recs:
        o = st.objects
        obj_fields = recs["diaObject"][1]
        if len(o.columns) and "_alert" in o and len(o):
            oa = new_pos[o["_alert"].to_numpy(np.int64)]
            o = o[oa >= 0].assign(_alert=oa[oa >= 0]).drop_duplicates("_alert", keep="last")
            idx = np.full(n, -1, np.int64)
            idx[o["_alert"].to_numpy()] = np.arange(len(o))
            struct = _struct(o.reset_index(drop=True), obj_fields)
            if struct is not None:
                cols["diaObject"] = struct.take(pa.array(idx, mask=idx < 0))
        used |= {f for f, _ in obj_fields}
        used.add("diaObjectId")

    # other records of the schema, carried as flattened columns (ssSource_designation, ...)
    for name, (kind, fields) in recs.items():
        if kind != "record" or name in ("diaSource", "diaObject"):
            continue
        flat = {f"{name}_{f}": typ for f, typ in fields if f"{name}_{f}" in src}
        if not flat:
            continue
        cut = len(name) + 1
        part = src[list(flat)].set_axis([c[cut:] for c in flat], axis=1)
        empty = part.isna().all(axis=1).to_numpy()
        cols[name] = _struct(part, [(f[cut:], t) for f, t in flat.items()], mask=empty)
        used |= set(flat)

    for k, v in _lsst.CUTOUTS.items():
        if k in st.cutouts:
            cols[v] = st.cutouts[k].take(pa.array(pos)).cast(pa.binary())
    if "lsst_schema_version" not in cols and "schemaVersion" in src:
        cols["lsst_schema_version"] = _arrow(src["schemaVersion"], pa.string())
    used.add("lsst_schema_version")
    for c in src.columns:
        if c in used or c in cols:
            continue
        try:
            cols[c] = pa.Array.from_pandas(src[c])
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            cols[c] = pa.Array.from_pandas(src[c].astype("string"))
    table = pa.table({k: v for k, v in cols.items() if v is not None})
    if hasattr(path, "write"):  # a file object (e.g. BytesIO for a Kafka message)
        pq.write_table(table, path, compression=compression, row_group_size=row_group_size)
        return path
    pq.write_table(table, str(path), compression=compression, row_group_size=row_group_size)
    return str(path)


SPEC = FormatSpec(
    name="fink-parquet",
    description="Fink broker's Parquet alert tables: Rubin or ZTF alerts, one row per alert, Fink's columns kept",
    identify=_identify,
    read=read_fink_parquet,
    records=iter_records,
    suffixes=(".parquet",),
    survey="lsst or ztf (per file)",
    broker="fink",
    example='read_alerts("night.parquet", format="fink-parquet")',
)
