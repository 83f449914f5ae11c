"""Stage 4 of reading: assemble the decoded parts into one :class:`~lsstuk_kit.AlertBatch`.

Concatenates the parts' tables (harmonising clashing column types), validates required fields,
coordinates and cutouts, gives id-less messages placeholder ids, keeps repeated alerts once, and
applies the column projection.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _stamps
from ._sources import _GZIP_MAGIC, _SURVEYS
from .errors import SkippedRecord
from .surveys import lsst as _lsst
from .surveys._avrotypes import arrow_to_pandas


# --------------------------------------------------------------------------- validation
def _validate(sources, cut, ref_ids, rec_ids, refs, required, reader):
    """Flag records with missing required fields, bad coordinates or non-FITS cutouts.

    ``required`` maps a column to the rows that require it (a mapping or format's REQUIRED).
    """
    n = len(sources)
    bad = np.zeros(n, bool)
    checks = []
    for col in sorted(required):
        rows = required[col]
        if col in ("ra", "dec") and col in sources:
            continue  # checked with the coordinate ranges below
        if col not in sources:
            checks.append((rows.copy(), col, f"required field {col!r} is missing from the record"))
        else:
            checks.append((sources[col].isna().to_numpy() & rows, col, f"required field {col!r} is null"))
    if "ra" in sources and "dec" in sources:
        ra = pd.to_numeric(sources["ra"], errors="coerce").to_numpy(float)
        dec = pd.to_numeric(sources["dec"], errors="coerce").to_numpy(float)
        none = np.zeros(n, bool)
        need = required.get("ra", none) | required.get("dec", none)  # a format may carry no position
        with np.errstate(invalid="ignore"):
            checks.append(((~np.isfinite(ra) & need) | (ra < 0) | (ra > 360), "ra",
                           "ra is null, NaN or outside [0, 360] deg"))
            checks.append(((~np.isfinite(dec) & need) | (dec < -90) | (dec > 90), "dec",
                           "dec is null, NaN or outside [-90, 90] deg"))
    for name, arr in cut.items():
        if len(arr) == 0:
            continue
        ok = _stamps.fits_heads_ok(arr)
        if ok is None:
            arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
            head = pc.binary_slice(arr.cast(pa.binary()), 0, 6)
            ok = pc.or_(pc.equal(head, pa.scalar(b"SIMPLE", pa.binary())),
                        pc.equal(pc.binary_slice(head, 0, 2), pa.scalar(_GZIP_MAGIC, pa.binary())))
            ok = pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
        field_name = _lsst.CUTOUTS[name]
        checks.append((~ok, field_name, "cutout bytes are not FITS (nor gzip-compressed FITS)"))
    flagged = []
    for mask, col, reason in checks:
        for i in np.flatnonzero(mask & ~bad):
            flagged.append((int(i), col, reason))
        bad |= mask
    flagged.sort(key=lambda t: (ref_ids[t[0]], rec_ids[t[0]]))
    for i, col, reason in flagged:
        reader.fail(reason, refs[ref_ids[i]].label, int(rec_ids[i]), col)
    return bad


def _assemble(results, reader, columns):
    from .batch import AlertBatch

    if not results:
        return AlertBatch.empty(refs=reader.refs, errors=reader.skipped)
    srcs, hists, objs, cuts, refs_l, recs_l, reqs = [], [], [], [], [], [], []
    offset = 0
    for sources, history, objects, cut, ref_ids, rec_ids, *required in results:
        survey = sources["survey"].iloc[0] if len(sources) else "lsst"
        reqs.append(tuple(required[0]) if required else _SURVEYS.get(survey, _lsst).REQUIRED)
        if "broker" not in sources:
            sources = sources.assign(broker=None)
        history = history.set_column(history.column_names.index("_alert"), "_alert",
                                     pc.add(history.column("_alert"), offset))
        kind = history.column("kind")
        if not pa.types.is_dictionary(kind.type):
            kind = pc.dictionary_encode(kind.cast(pa.string()))
        history = history.set_column(history.column_names.index("kind"), "kind",
                                     kind.cast(pa.dictionary(pa.int8(), pa.string())))
        objects = objects.assign(_alert=objects["_alert"].to_numpy() + offset) if len(objects.columns) else objects
        srcs.append(sources)
        hists.append(history)
        objs.append(objects)
        cuts.append(cut)
        refs_l.append(ref_ids)
        recs_l.append(rec_ids)
        offset += len(sources)
    if len({s["survey"].iloc[0] for s in srcs if len(s)}) > 1:
        # Rubin ids are integers, ZTF ids strings: a mixed batch keys objects by string
        for s in srcs:
            s["diaObjectId"] = s["diaObjectId"].astype(str).where(s["diaObjectId"].notna(), None)
        for k, o in enumerate(objs):
            if "diaObjectId" in o:
                objs[k] = o.assign(diaObjectId=o["diaObjectId"].astype(str).where(o["diaObjectId"].notna(), None))
    sources = srcs[0] if len(srcs) == 1 else pd.concat(srcs, ignore_index=True, sort=False)
    if len(hists) > 1:
        hists = _harmonise(hists)
    # the parts' Arrow histories are released column by column as they become the pandas table
    results.clear()  # (the caller hands its results over)
    history = [hists[0] if len(hists) == 1 else pa.concat_tables(hists, promote_options="permissive")]
    del hists
    history = arrow_to_pandas(history, nullable_bools=True)
    objects = objs[0] if len(objs) == 1 else pd.concat([o for o in objs if len(o.columns)],
                                                          ignore_index=True, sort=False)
    ref_ids = np.concatenate(refs_l)
    rec_ids = np.concatenate(recs_l)
    names = sorted({k for c in cuts for k in c})
    cut = {}
    for k in names:
        chunks, lengths = [], []
        for c, s in zip(cuts, srcs):
            if k in c:
                arr = c[k]
                chunks.extend(arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr])
                lengths.extend(len(ch) for ch in (arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]))
            else:
                chunks.append(None)
                lengths.append(len(s))
        cut[k] = concat_cutouts(chunks, lengths)

    # validation (per format and survey: the required fields are those of its mapping)
    required = {}
    start = 0
    for s, req in zip(srcs, reqs):
        for col in req:
            required.setdefault(col, np.zeros(len(sources), bool))[start:start + len(s)] = True
        start += len(s)
    bad = _validate(sources, cut, ref_ids, rec_ids, reader.refs, required, reader)

    # messages that carry no diaSourceId (e.g. Lasair's attribute-only and lite kinds) get a negative
    # placeholder, unique in the batch (Rubin and ZTF ids are positive), so the table stays indexed
    missing = sources["diaSourceId"].isna().to_numpy() & ~bad
    if missing.any():
        ids = pd.array(sources["diaSourceId"], dtype="Int64")
        ids[missing] = -np.arange(1, int(missing.sum()) + 1)
        sources = sources.assign(diaSourceId=ids.fillna(0).astype(np.int64) if not ids.isna().any() else ids)

    # the same alert read twice (e.g. a file listed twice) is kept once
    ids = pd.Index(sources["diaSourceId"])
    dup = np.zeros(len(ids), bool)
    dup[~bad] = ids[~bad].duplicated(keep="first")
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} alerts appear more than once in the input (same diaSourceId); "
            "each is kept once and the repeats are listed in batch.errors", stacklevel=3)
        first_pos = pd.Series(np.flatnonzero(~bad), index=ids[~bad])
        first_pos = first_pos[~first_pos.index.duplicated()]
        for i in np.flatnonzero(dup):
            j = int(first_pos[ids[i]])
            reader.skipped.append(SkippedRecord(
                file=reader.refs[ref_ids[i]].label, record=int(rec_ids[i]), field="diaSourceId",
                reason=(f"duplicate: diaSourceId {ids[i]} was already read from {reader.refs[ref_ids[j]].label} "
                        f"record {int(rec_ids[j])}; kept once")))
    drop = bad | dup
    keep_pos = np.flatnonzero(~drop)
    if drop.any():
        sources = sources.iloc[keep_pos]
        remap = np.full(len(drop), -1, np.int64)
        remap[keep_pos] = np.arange(len(keep_pos))
        history = history[~drop[history["_alert"].to_numpy()]]
        history = history.assign(_alert=remap[history["_alert"].to_numpy()])
        if len(objects.columns):
            objects = objects[~drop[objects["_alert"].to_numpy()]]
            objects = objects.assign(_alert=remap[objects["_alert"].to_numpy()])
        cut = {k: v.take(pa.array(keep_pos)) for k, v in cut.items()}
        ref_ids, rec_ids = ref_ids[keep_pos], rec_ids[keep_pos]
    if columns is not None:
        keep = set(columns) | set(_lsst.CORE) | {"mag", "magErr", "snr", "reliability", "survey", "broker",
                                                  "schemaVersion", "kind", "_alert", "limitingMag"}
        sources = sources[[c for c in sources.columns if c in keep]]
        history = history[[c for c in history.columns if c in keep]]
    return AlertBatch._from_parts(
        sources=sources, history=history, objects=objects, cutouts=cut,
        ref_ids=ref_ids, rec_ids=rec_ids, refs=reader.refs, errors=reader.skipped,
    )


def concat_cutouts(chunks, lengths=None):
    """One cutout column from chunks (``None``: that many null cutouts, ``lengths`` giving how many).

    Zero-copy :class:`~lsstuk_kit._stamps.StampColumn` chunks stay one (their bytes are not
    gathered); with any Arrow chunk among them, a ``pyarrow.BinaryArray`` as before.
    """
    if lengths is None:
        lengths = [None if ch is None else len(ch) for ch in chunks]
    if all(isinstance(ch, _stamps.StampColumn) or ch is None for ch in chunks):
        return _stamps.StampColumn.concat(_stamps.StampColumn.nulls(n) if ch is None else ch
                                          for ch, n in zip(chunks, lengths))
    arrays = [pa.nulls(n, pa.binary()) if ch is None else
              (ch.to_arrow() if isinstance(ch, _stamps.StampColumn) else ch).cast(pa.binary())
              for ch, n in zip(chunks, lengths)]
    return pa.chunked_array(arrays, type=pa.binary()).combine_chunks()


def _harmonise(tables):
    """Cast columns whose types differ between tables (beyond numeric widths) to strings."""
    types: dict = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, set()).add(f.type)
    clash = []
    for name, ts in types.items():
        if len(ts) < 2:
            continue
        if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) for t in ts):
            continue
        if all(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) for t in ts):
            continue
        if all(pa.types.is_dictionary(t) for t in ts):
            continue
        clash.append(name)
    if not clash:
        return tables
    out = []
    for t in tables:
        for name in clash:
            if name in t.column_names:
                col = t.column(name)
                if pa.types.is_dictionary(col.type):
                    col = col.cast(col.type.value_type)
                t = t.set_column(t.column_names.index(name), name, col.cast(pa.large_string()))
        out.append(t)
    return out
