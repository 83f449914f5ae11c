"""Stages 2 and 3 of reading: frame the Avro containers into parts, and decode the parts.

:class:`_Reader` turns sources into container units (indexing blocks without decoding them,
grouping wire messages by schema id), routes non-Avro sources to their format's reader, cuts
and groups units into parts of whole blocks, and decodes each part with the compiled columnar
decoder (:mod:`lsstuk_kit._decode`). When the read keeps cutouts, a part's blocks are read
(``pread``) into memory the batch owns and the cutouts stay zero-copy slices of it
(:mod:`lsstuk_kit._stamps`; the pages holding no stamp are released once decoded); otherwise
it is decoded straight from the file's memory map. Compressed blocks are decompressed into
such memory. A block the decoder rejects is walked again record by record (fastavro's skip readers)
to name what is wrong, and its sound records are decoded again, so every bad record is named and
no good one is lost. :func:`_run` drives the decoding over a thread pool (the compiled decoder
releases the GIL).
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa

from . import _container, _decode, _stamps
from ._sources import _AVRO_SUFFIXES, _SURVEYS, MAX_UNCOMPRESSED_BYTES, SourceRef, _gunzip_stream, _identify, _sniff
from .errors import AlertFormatError, SkippedRecord
from .schema import load_rubin_schema, unpack_wire, version_from_schema_id

_PART_BYTES = 16 * 2**20
_PART_RECORDS = 1024  # a part is cut no smaller than this many records or _PART_MIN_BYTES (_Reader.make_parts)
_PART_MIN_BYTES = 64 * 2**20
#: read the blocks with pread even when no cutout is kept (else: decoded straight from the memory map)
_PREAD_ALWAYS = False
#: units smaller than this on average are decoded together (their bytes in one buffer: _Reader._shared_buffer)
_MERGE_BYTES_PER_UNIT = 8 * 2**20


def _frames_result(k, fr, spec):
    """A format's :class:`~lsstuk_kit.formats.Frames` as the reader's result tuple."""
    sources = fr.sources.reset_index(drop=True)
    n = len(sources)
    if n == 0:
        return None
    sources = sources.copy()
    if "survey" not in sources:
        sources["survey"] = spec.survey
    if "broker" not in sources:
        sources["broker"] = spec.broker
    if "schemaVersion" not in sources:
        sources["schemaVersion"] = None
    if "diaSourceId" not in sources:
        sources["diaSourceId"] = pd.array([pd.NA] * n, dtype="Int64")
    history = fr.history
    if isinstance(history, pd.DataFrame):
        history = history.reset_index(drop=True)
        if "diaObjectId" not in history and "diaObjectId" in sources and "_alert" in history:
            history = history.assign(diaObjectId=sources["diaObjectId"].to_numpy()[history["_alert"].to_numpy()])
        history = pa.Table.from_pandas(history, preserve_index=False)
    if history is None or history.num_rows == 0 and "_alert" not in history.column_names:
        history = pa.table({"diaObjectId": pa.array([], pa.string()), "kind": pa.array([], pa.string()),
                            "midpointMjdTai": pa.array([], pa.float64()), "_alert": pa.array([], pa.int64())})
    for col in ("kind", "_alert"):
        if col not in history.column_names:
            raise KeyError(f"history has no {col!r} column")
    objects = fr.objects
    if objects is None or len(objects.columns) == 0 or "_alert" not in objects:
        objects = pd.DataFrame({"diaObjectId": sources["diaObjectId"].to_numpy(), "_alert": np.arange(n)}) \
            if objects is None or len(objects) == 0 else objects.assign(_alert=np.arange(len(objects)))
    cut = {}
    for name, arr in (fr.cutouts or {}).items():
        if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
            arr = pa.array(list(arr), pa.binary())
        if len(arr) != n:
            raise ValueError(f"cutout {name!r} has {len(arr)} entries for {n} alerts")
        cut[name] = arr
    records = np.asarray(fr.records, np.int64)
    if len(records) != n:
        raise ValueError(f"{len(records)} record numbers for {n} alerts")
    return sources, history, objects, cut, np.full(n, k, np.int64), records, tuple(fr.required)


# --------------------------------------------------------------------------- units
@dataclass
class _Unit:
    """One container (file, bytes or wire messages) ready for the decoder, and how its records map to a SourceRef."""

    ref: int
    schema: dict
    schema_text: str
    survey: str
    version: str | None
    index: _container.ContainerIndex
    records: np.ndarray  # record number in the SourceRef of each record of the blocks to decode
    buf: object = None  # mmap or bytes of the container
    blocks: np.ndarray | None = None  # the blocks to decode (None: all); damaged framing leaves some out
    wire: int | None = None  # the schema id of wire messages (one block per message)
    fh: object = None  # the open file of a memory-mapped container: its blocks are read from it with pread


@dataclass
class _Part:
    units: list  # list of (unit, block ids)
    survey: str
    schema: dict
    schema_text: str
    version: str | None


_SWEPT = False
_TRIM_NEXT = False
_TMP_RE = re.compile(r"^lsstuk_read_(\d+)_")


def _sweep_stale_tmp():
    """Remove temporary folders left by reads in processes that no longer exist (killed mid-read)."""
    global _SWEPT
    if _SWEPT:
        return
    _SWEPT = True
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:  # pragma: no cover
        return
    for name in names:
        m = _TMP_RE.match(name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except OSError:  # another user's live process
            pass


class _Reader:
    def __init__(self, columns, cutouts, errors, progress, workers, limit=MAX_UNCOMPRESSED_BYTES, verify="auto"):
        self.columns = None if columns is None else list(dict.fromkeys(columns))
        self.cutouts = cutouts
        self.errors_mode = errors
        self.progress = progress
        self.workers = workers or min(os.cpu_count() or 1, 4)
        self.limit = limit
        self.verify = verify
        self.skipped: list[SkippedRecord] = []
        self.refs: list[SourceRef] = []
        self.format = None  # the format= asked for
        self.expect_survey = None  # with an Avro format=: the survey its schema must be
        self.options: dict = {}
        _sweep_stale_tmp()
        global _TRIM_NEXT
        if _TRIM_NEXT:
            _TRIM_NEXT = False
            _trim_memory()
        # the pid in the name lets a later read remove it if this process is killed mid-read
        self.tmp = tempfile.TemporaryDirectory(prefix=f"lsstuk_read_{os.getpid()}_")
        self._n_tmp = 0
        self._open_files = []
        #: blocks whose declared record count was wrong: (ref, block, first record, declared, held, reason)
        self.count_fixes: list = []

    # -- errors
    def fail(self, reason, file, record=None, fld=None):
        rec = SkippedRecord(file=file, record=record, field=fld, reason=reason)
        if self.errors_mode == "raise":
            raise rec.to_error()
        self.skipped.append(rec)

    def fail_records(self, reason, file, records, fld=None, then=None):
        """Report records; the first with ``reason``, the others with ``then`` (default: the same)."""
        for j, r in enumerate(records):
            self.fail(reason if j == 0 or then is None else then, file, int(r), fld)

    def tmp_path(self, suffix=".avro"):
        self._n_tmp += 1
        return os.path.join(self.tmp.name, f"part{self._n_tmp:06d}{suffix}")

    # -- stage 1: sources -> units
    def make_units(self, refs, keys=None):
        """Container units of Avro sources; ``keys`` are their places in ``self.refs`` (else appended)."""
        units = []
        if keys is None:
            keys = range(len(self.refs), len(self.refs) + len(refs))
            self.refs.extend(refs)
        for k, ref in zip(keys, refs):
            try:
                if ref.kind == "wire":
                    units.extend(self._wire_units(k, ref))
                    continue
                unit = self._container_unit(k, ref)
            except AlertFormatError:
                raise
            except Exception as exc:  # noqa: BLE001 - the input's fault until shown otherwise
                self.fail(f"unreadable ({type(exc).__name__}: {exc})", ref.label)
                continue
            if unit is not None:
                units.append(unit)
        return units

    def _open(self, ref):
        """The container's bytes: in-memory bytes as given, a file memory-mapped (a gzip file decompressed first)."""
        if ref.kind == "bytes":
            if not len(ref.data):
                raise AlertFormatError("empty file, not an Avro container", ref.label)
            return ref.data
        if ref.path.endswith(".gz"):
            path = self.tmp_path()
            with open(ref.path, "rb") as src, open(path, "wb") as dst:
                st = os.fstat(src.fileno())
                ref.stat = (st.st_size, st.st_mtime_ns)
                _gunzip_stream(src, self.limit, ref.label, sink=dst)
        else:
            path = ref.path
        fh = open(path, "rb")
        self._open_files.append(fh)
        st = os.fstat(fh.fileno())
        if ref.kind == "file" and not ref.path.endswith(".gz"):
            ref.stat = (st.st_size, st.st_mtime_ns)
        if st.st_size == 0:
            raise AlertFormatError("empty file, not an Avro container", ref.label)
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def _container_unit(self, k, ref):
        label = ref.label
        try:
            buf = self._open(ref)
        except AlertFormatError as exc:
            self.fail(exc.reason, label)
            return None
        except OSError as exc:
            self.fail(f"cannot read the file ({exc.strerror or exc})", label)
            return None
        try:
            index = _container.index_container(buf)
        except _container.ContainerError as exc:
            self.fail(str(exc), label)
            return None
        if index.codec not in ("null", "deflate", "snappy"):
            self.fail(f"unsupported Avro codec {index.codec!r}", label)
            return None
        schema_text = _container.schema_key(index)
        try:
            survey, version = _identify(schema_text, index.schema)
        except (ValueError, TypeError, KeyError) as exc:
            from . import formats

            self.fail(f"not an alert schema: {exc}. The formats the kit knows: {', '.join(formats.names())}", label)
            return None
        if self.expect_survey is not None and survey != self.expect_survey:
            self.fail(f"format={self.format!r} was asked for, but the file's schema is a {survey} alert", label)
            return None
        ref.writer_schema = index.schema
        ref.index = index
        first = index.first_record()
        n = int(index.block_count.sum())
        if index.truncated:
            self.fail(f"file truncated or its framing damaged ({index.truncated}): records from {n} on, an "
                      "unknown number of records, cannot be read", label, n)
        blocks = None
        damaged = [k for k, p in enumerate(index.block_problem) if p is not None]
        if damaged:  # a block whose sync marker is wrong: its records are reported, the others read
            for blk in damaged:
                self.fail_records(f"block {blk}: {index.block_problem[blk]}", label,
                                  range(int(first[blk]), int(first[blk] + index.block_count[blk])))
            blocks = np.asarray([k for k in range(len(index.block_count)) if k not in set(damaged)], np.int64)
            if not len(blocks):
                return None
        fh = self._open_files[-1] if isinstance(buf, mmap.mmap) and self._open_files else None
        return _Unit(ref=k, schema=index.schema, schema_text=schema_text, survey=survey, version=version,
                     index=index, records=np.arange(n, dtype=np.int64), buf=buf, blocks=blocks, fh=fh)

    def _wire_units(self, k, ref):
        groups: dict[int, list] = {}
        for i, msg in enumerate(ref.messages):
            label = f"<message {i}>"
            try:
                sid, body = unpack_wire(msg)
            except ValueError as exc:
                self.fail(f"not a Confluent wire-format message: {exc}", label, i)
                continue
            if sid not in ref.wire_schemas:
                try:
                    ref.wire_schemas[sid] = load_rubin_schema(*version_from_schema_id(sid))
                except KeyError as exc:
                    self.fail(f"unknown schema id {sid}: {exc.args[0]}", label, i, "schema id")
                    continue
            groups.setdefault(sid, []).append((i, body))
        units = []
        for sid, items in groups.items():
            schema = ref.wire_schemas[sid]
            text = fastavro.schema.to_parsing_canonical_form(schema)
            # one block per message: a schemaless body cannot be re-synchronised, so the decoder checks
            # that each one decodes to exactly its length
            data = _container.wrap_messages(text, [b for _, b in items])
            major, minor = version_from_schema_id(sid)
            ref.writer_schema = json.loads(text)
            index = _container.index_container(data)
            units.append(_Unit(
                ref=k, schema=index.schema, schema_text=_container.schema_key(index), survey="lsst",
                version=f"lsst.v{major}_{minor}", index=index,
                records=np.asarray([i for i, _ in items], dtype=np.int64), buf=data, wire=sid,
            ))
        return units

    # -- formats: which path each source takes
    def route(self, ref, forced):
        """``("avro", None)``, ``("table", spec)`` or ``None`` (reported, or a folder's file no format claims)."""
        from . import formats

        if ref.kind == "wire":
            if forced is not None and forced.read is not None:
                self.fail(f"format={forced.name!r} was asked for, but these are Kafka wire-format Avro messages",
                          ref.label)
                return None
            return "avro", None
        try:
            sniff = _sniff(ref, self.limit)
        except AlertFormatError as exc:
            self.fail(exc.reason, ref.label)
            return None
        is_avro = sniff.head[:4] == _container.MAGIC
        if forced is not None:
            if forced.read is None:
                if not is_avro:
                    self.fail(f"format={forced.name!r} reads Avro alert containers; this is not one "
                              f"(it starts with {sniff.head[:8]!r})", ref.label)
                    return None
                return "avro", None
            if is_avro:
                self.fail(f"format={forced.name!r} was asked for, but this is an Avro container", ref.label)
                return None
            return "table", forced
        if is_avro or sniff.suffix in _AVRO_SUFFIXES:
            return "avro", None  # named as Avro: the container reader says exactly what is wrong, if anything
        try:
            spec = formats.identify(sniff)
        except formats.UnknownFormatError as exc:
            if ref.from_folder and not sniff.suffix.endswith(_AVRO_SUFFIXES):
                return None  # a file beside the alerts that is not alerts (e.g. a truth table)
            if ref.kind == "bytes" and sniff.obj is None:
                if sniff.head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
                    # meant as JSON but does not parse (e.g. truncated): say so, not "not an Avro container"
                    try:
                        json.loads(ref.data)
                        reason = "JSON that no format the kit knows claims"
                    except (ValueError, RecursionError) as err:
                        reason = f"not valid JSON ({type(err).__name__}: {err})"
                    self.fail(f"{reason}; the formats the kit knows: {', '.join(formats.names())}", ref.label)
                    return None
                return "avro", None  # bytes that are not JSON: the container reader says what is wrong
            if self.errors_mode == "raise":
                raise
            self.fail(exc.reason, ref.label)
            return None
        return ("avro", None) if spec.read is None else ("table", spec)

    def read_table(self, k, ref, spec):
        """Results of a non-Avro source read by its format's ``read``."""
        from .formats import Source

        label = ref.label

        def fail(reason, record=None, fld=None, field=None):
            self.fail(f"{reason} [{spec.name}]", label, record, fld if fld is not None else field)

        src = Source(label=label, path=ref.path if ref.kind == "file" else None, data=ref.data, obj=ref.obj,
                     fail=fail, columns=self.columns, cutouts=self.cutouts, options=dict(self.options))
        try:
            frames = spec.read(src)
        except AlertFormatError as exc:
            if self.errors_mode == "raise":
                raise
            self.skipped.append(SkippedRecord(file=exc.file or label, record=exc.record, field=exc.field,
                                              reason=exc.reason))
            return []
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the input's fault until shown otherwise
            self.fail(f"the {spec.name} reader could not read it ({type(exc).__name__}: {exc})", label)
            return []
        out = []
        for fr in frames or ():
            try:
                got = _frames_result(k, fr, spec)
            except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
                self.fail(f"the {spec.name} reader's tables do not assemble ({type(exc).__name__}: {exc})", label)
                continue
            if got is not None:
                out.append(got)
        return out

    # -- stage 2: units -> parts (split big files at block boundaries, group small ones)
    def make_parts(self, units):
        """Parts of about ``total / (2 * workers)`` bytes (one part when one thread decodes).

        A part also costs a fixed ~20 ms to map into tables, so none is cut smaller than
        ``_PART_RECORDS`` records or ``_PART_MIN_BYTES`` bytes (whichever it reaches first):
        light alerts (cutouts, no history) then come in a few parts, not one per few hundred
        alerts, while alerts with long histories are still cut by bytes.
        """
        sizes = []
        for u in units:
            blocks = u.blocks if u.blocks is not None else np.arange(len(u.index.block_count))
            sizes.append((blocks, u.index.block_end[blocks] - u.index.block_start[blocks]))
        total = int(sum(int(sz.sum()) for _, sz in sizes))
        target = max(_PART_BYTES, total // (2 * self.workers) + 1) if self.workers > 1 else 2**62
        parts = []
        pending = None  # [part small units of one schema are gathered into, its bytes, its records]
        for u, (blocks, sz) in zip(units, sizes):
            if not len(blocks):
                continue
            size = int(sz.sum())
            records = int(u.index.block_count[blocks].sum())
            pieces = min(-(-size // target) if size > 2 * target else 1,
                         max(records // _PART_RECORDS, size // _PART_MIN_BYTES, 1))
            if pieces > 1 and len(blocks) > 1:
                cum = np.cumsum(sz)
                cuts = np.searchsorted(cum, size * np.arange(1, pieces) / pieces, side="left") + 1
                bounds = np.unique(np.concatenate([[0], cuts, [len(blocks)]]))
                for a, b in zip(bounds[:-1], bounds[1:]):
                    parts.append(_Part([(u, blocks[a:b])], u.survey, u.schema, u.schema_text, u.version))
                pending = None
                continue
            if (pending is not None and pending[0].schema_text == u.schema_text and len(pending[0].units) < 4096
                    and (pending[1] + size <= target or (pending[2] < _PART_RECORDS and pending[1] < _PART_MIN_BYTES))):
                pending[0].units.append((u, blocks))
                pending[1] += size
                pending[2] += records
                continue
            part = _Part([(u, blocks)], u.survey, u.schema, u.schema_text, u.version)
            parts.append(part)
            pending = [part, size, records]
        return parts

    # -- stage 3: decode
    def decode(self, part):
        """Decode a part; a list of ``(sources, history, objects, cutouts, ref_ids, rec_ids)``.

        Anything that goes wrong in the mapping is put down to the records: a part of
        several files is mapped again file by file, and a file that still fails has
        every record reported, so one bad file never costs the others.
        """
        mod = _SURVEYS[part.survey]
        proj = mod.projection(part.schema, self.columns, self.cutouts)
        try:
            dec = _decode.decoder_for(part.schema_text, proj)
        except _decode.DecodeError as exc:
            for u, blocks in part.units:
                self.fail_records(f"the reader cannot decode this schema: {exc}", self.refs[u.ref].label,
                                  self._unit_records(u, blocks))
            return []
        keeps = any(o.name.startswith("c:") for o in proj.outputs)
        # small files (visit files of light alerts) in one call; big ones are worth a call each
        sizes = [int((u.index.block_end[b] - _container.SYNC_SIZE - u.index.block_data_start[b]).sum())
                 for u, b in part.units]
        small = len(part.units) > 1 and sum(sizes) <= _MERGE_BYTES_PER_UNIT * len(part.units)
        whole, at = self._shared_buffer(part.units, keeps) if small else (None, None)
        prepared = [(u, self._block_bytes(u, blocks, keeps, None if whole is None else whole[at[k]: at[k + 1]]))
                    for k, (u, blocks) in enumerate(part.units)]
        merged = self._decode_merged(prepared, dec, whole, at) if small else None
        if merged is not None:
            tables, refs, recs, stamps = merged
        else:
            tables, refs, recs, stamps = [], [], [], []
            for i, (u, ready) in enumerate(prepared):
                prepared[i] = None  # (the unit's bytes live on only in its cutouts)
                got = self._decode_unit(u, ready, dec)
                if got is not None:
                    tables.append(got[0])
                    refs.append(np.full(len(got[1]), u.ref, np.int64))
                    recs.append(got[1])
                    stamps.append(got[2])
        keep = [k for k, t in enumerate(tables) if t.num_rows]
        if not keep:
            return []
        pick = lambda xs: [xs[k] for k in keep]  # noqa: E731
        return self._map(part, mod, pick(tables), pick(refs), pick(recs), pick(stamps))

    def _map(self, part, mod, tables, refs, recs, stamps):
        try:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            sources, history, objects, cut = mod.to_frames(table, part.version)
            for k, field in _cutout_fields(mod).items():
                got = [st.get("c:" + field) for st in stamps]
                if any(g is not None for g in got):
                    cut[k] = _stamps.StampColumn.concat(
                        g if g is not None else _stamps.StampColumn.nulls(t.num_rows) for g, t in zip(got, tables))
                    if len(cut[k]) != len(sources):  # pragma: no cover - a mapping that drops alerts
                        raise AssertionError(f"{len(cut[k])} cutouts for {len(sources)} alerts")
            ref_ids = np.concatenate(refs)
            rec_ids = np.concatenate(recs)
            return [(sources, history, objects, cut, ref_ids, rec_ids)]
        except AlertFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - attributed below
            if len(tables) > 1:
                out = []
                for t, r, c, st in zip(tables, refs, recs, stamps):
                    out.extend(self._map(part, mod, [t], [r], [c], [st]))
                return out
            fld = exc.args[0] if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) else None
            self.fail_records(f"the alert does not fit the {part.survey} mapping ({type(exc).__name__}: {exc})",
                              self.refs[int(refs[0][0])].label, recs[0], fld)
            return []

    def _unit_records(self, u, blocks):
        first = u.index.first_record()
        return np.concatenate([u.records[int(first[b]): int(first[b] + u.index.block_count[b])] for b in blocks]) \
            if len(blocks) else np.zeros(0, np.int64)

    @staticmethod
    def _preads(u, blocks, keeps):
        """Whether a unit's blocks are read from its file into memory of the batch's own."""
        return u.index.codec == "null" and u.fh is not None and len(blocks) and (keeps or _PREAD_ALWAYS)

    def _shared_buffer(self, units, keeps):
        """One buffer that the blocks of every unit are read into, back to back.

        Merged decoding then needs no copy of the units' bytes into one buffer (a copy made under
        the interpreter's lock, which held up every other thread for as long as it took).
        Returns ``(buffer, offsets)``: unit ``k`` is read into ``buffer[offsets[k]:offsets[k + 1]]``;
        ``(None, None)`` if some unit is not read from its file.
        """
        if not all(self._preads(u, b, keeps) for u, b in units):
            return None, None
        spans = [int(u.index.block_end[b].max() - u.index.block_start[b].min()) for u, b in units]
        at = np.concatenate([[0], np.cumsum(spans)]).astype(np.int64).tolist()
        return _stamps.private_buffer(at[-1]), at

    def _block_bytes(self, u, blocks, keeps=True, into=None):
        """``(buf, starts, ends, counts, block ids)`` of the blocks that can be decoded (codec data undone).

        ``keeps``: the read keeps cutouts, which stay slices of these bytes. ``into``: a buffer of
        the size of the blocks' span to read them into (see :meth:`_shared_buffer`).
        """
        idx = u.index
        label = self.refs[u.ref].label
        first = idx.first_record()
        if self._preads(u, blocks, keeps):
            # the blocks' bytes read into memory of the batch's own (cutouts stay slices of it): a file
            # truncated or rewritten meanwhile gives short or wrong bytes, which the decoder checks,
            # never a fault of a memory map
            lo, hi = int(idx.block_start[blocks].min()), int(idx.block_end[blocks].max())
            buf = _stamps.private_buffer(hi - lo) if into is None else into
            got = _pread_into(u.fh, buf, lo)
            ends = idx.block_end[blocks] - _container.SYNC_SIZE - lo
            short = ends + _container.SYNC_SIZE > got
            if short.any():
                for blk in blocks[short]:
                    self.fail_records(f"block {int(blk)}: the file ends inside it (truncated while being read)",
                                      label, u.records[int(first[blk]): int(first[blk] + idx.block_count[blk])])
                blocks = blocks[~short]
            return (buf, idx.block_data_start[blocks] - lo, idx.block_end[blocks] - _container.SYNC_SIZE - lo,
                    idx.block_count[blocks], blocks)
        if idx.codec == "null":
            buf = np.frombuffer(u.buf, np.uint8)
            return (buf, idx.block_data_start[blocks], idx.block_end[blocks] - _container.SYNC_SIZE,
                    idx.block_count[blocks], blocks)
        datas, ok = [], []
        for blk in blocks:
            try:
                datas.append(_container.block_data(u.buf, idx, int(blk), self.limit))
                ok.append(int(blk))
            except _container.ContainerError as exc:
                reason = str(exc) + ("; pass read_alerts(..., max_uncompressed_bytes=N) to allow more"
                                     if exc.bomb else "")
                self.fail_records(f"block {int(blk)}: {reason}", label,
                                  u.records[int(first[blk]): int(first[blk] + idx.block_count[blk])])
        lengths = np.asarray([len(d) for d in datas], np.int64)
        ends = np.cumsum(lengths)
        ok = np.asarray(ok, np.int64).reshape(-1)
        buf = _stamps.private_buffer(int(ends[-1]) if len(ends) else 0)
        for d, e, n in zip(datas, ends, lengths):
            buf[int(e - n): int(e)] = np.frombuffer(d, np.uint8)
        return buf, ends - lengths, ends, idx.block_count[ok], ok

    def _decode_merged(self, prepared, dec, whole=None, at=None):
        """Small units of one schema in one decoder call, their blocks' bytes in one buffer.

        A night is hundreds of small visit files: one call and one table for all of them costs
        far less than one each. ``whole, at``: the units' bytes were read into slices of one
        buffer (:meth:`_shared_buffer`); else they are copied into one. Returns ``None`` (decode
        them one by one) if any block or text fails, so that bad records are named exactly as
        for a single file.
        """
        pieces, starts, ends, counts, owners = [], [], [], [], []
        offset = 0
        for k, (u, (buf, s, e, c, blk)) in enumerate(prepared):
            if not len(blk):
                continue
            lo = 0
            if whole is not None:  # already in place
                offset = at[k]
            else:
                lo = int(s.min())
                pieces.append(buf[lo: int(e.max())])
            starts.append(s - lo + offset)
            ends.append(e - lo + offset)
            counts.append(c)
            owners.append((u, blk))
            if whole is None:
                offset += len(pieces[-1])
        if not owners:
            return [], [], [], []
        if whole is None:
            whole = _stamps.private_buffer(offset)
            at = 0
            for p in pieces:
                whole[at: at + len(p)] = p
                at += len(p)
            del pieces
        stamps = {}
        table, status = dec.decode(whole, np.concatenate(starts), np.concatenate(ends), np.concatenate(counts),
                                   stamps=stamps)
        if any(st[1] for st in status):
            return None
        refs = [np.full(int(u.index.block_count[blk].sum()), u.ref, np.int64) for u, blk in owners]
        recs = [self._unit_records(u, blk) for u, blk in owners]
        rec = np.concatenate(recs)
        checked, _ = self._check_text(dec, table, rec, None, dry=True)
        if checked is None:
            return None
        _stamps.trim(whole, stamps.values())
        for u, blk in owners:
            if u.index.codec == "null":
                _release_pages(u.buf, int(u.index.block_start[blk[0]]), int(u.index.block_end[blk[-1]]))
        return [table], [np.concatenate(refs)], [rec], [stamps]

    def _decode_unit(self, u, ready, dec):
        """``(table, record numbers)`` of one unit's blocks; bad records are reported, good ones kept."""
        buf, starts, ends, counts, blocks = ready
        if not len(blocks):
            return None
        stamps = {}
        table, status = dec.decode(buf, starts, ends, counts, stamps=stamps)
        first = u.index.first_record()
        label = self.refs[u.ref].label
        bad = [j for j, st in enumerate(status) if st[1]]
        if bad:
            # name what is wrong with fastavro's walk, and decode the sound records of those blocks again
            counts = counts.copy()
            ends = ends.copy()
            for j in bad:
                blk = int(blocks[j])
                recs = u.records[int(first[blk]): int(first[blk] + u.index.block_count[blk])]
                good, end = self._classify(u, buf[starts[j]: ends[j]], int(counts[j]), status[j], blk, recs, label)
                counts[j] = good
                ends[j] = starts[j] + end
            keep = counts > 0
            stamps = {}
            table, status = dec.decode(buf, starts[keep], ends[keep], counts[keep], stamps=stamps)
            blocks, counts = blocks[keep], counts[keep]
            for j, st in enumerate(status):
                if st[1]:  # fastavro walks records the decoder refuses: they are lost from the refused one on
                    blk = int(blocks[j])
                    base = int(first[blk]) + st[2]
                    self.fail_records(f"block {blk}: record does not decode ({_decode.ERRORS[st[1]]} at {st[3]})",
                                      label, u.records[base: int(first[blk] + counts[j])],
                                      then=f"lost with the undecodable record {int(u.records[base])} of its block")
                    counts[j] = 0
        rec = np.concatenate([u.records[int(first[b]): int(first[b] + c)] for b, c in zip(blocks, counts)]) \
            if len(blocks) else np.zeros(0, np.int64)
        if len(rec) != table.num_rows:  # pragma: no cover - a decoder bug, never the input's
            raise AssertionError(f"decoded {table.num_rows} records, expected {len(rec)}")
        table, rec = self._check_text(dec, table, rec, label, stamps=stamps)
        _stamps.trim(buf, stamps.values())  # only the cutouts are read from the blocks' bytes from now on
        if u.index.codec == "null" and len(blocks):  # decoded: let the system drop the file's pages
            _release_pages(u.buf, int(u.index.block_start[blocks[0]]), int(u.index.block_end[blocks[-1]]))
        return table, rec, stamps

    def _check_text(self, dec, table, rec, label, dry=False, stamps=None):
        """Drop (and report) the records whose strings are not UTF-8 (``dry``: ``(None, None)`` if any)."""
        bad = np.zeros(table.num_rows, bool)
        fields = {}
        for name in table.column_names:
            col = table.column(name)
            for arr, owner in _string_arrays(col):
                try:
                    arr.validate(full=True)
                except pa.ArrowInvalid:
                    if dry:
                        return None, None
                    rows = _bad_utf8_rows(arr)
                    rows = owner(rows)
                    for r in rows:
                        fields.setdefault(int(r), name.split(":", 1)[-1])
                    bad[rows] = True
        if not bad.any():
            return table, rec
        for r in np.flatnonzero(bad):
            self.fail(f"record does not decode (field {fields[int(r)]} is not UTF-8 text)", label, int(rec[r]),
                      fields[int(r)])
        if stamps:
            for k in list(stamps):
                stamps[k] = stamps[k].filter(~bad)
        return table.filter(pa.array(~bad)), rec[~bad]

    def _classify(self, u, data, declared, st, blk, recs, label):
        """Report the records of a block the decoder refused; ``(sound records, where they end)``.

        The messages are those of fastavro's walk of the block (what the records hold),
        kept from the reader before the compiled decoder.
        """
        data = bytes(data)
        if u.wire is not None:  # a message: it decodes to exactly its length, or it is refused
            check = _container.walk_block(data, 1, u.index.schema_raw)
            i = int(recs[0])
            if check.error is None:
                self.fail(f"Avro body does not decode with schema {u.wire}: {_decode.ERRORS[st[1]]} at {st[3]}",
                          f"<message {i}>", i)
            elif check.good == 1:
                self.fail(f"the message has {len(data) - check.ends[0]} bytes after its alert; a message "
                          "must decode to exactly its length", f"<message {i}>", i)
            else:
                self.fail(f"Avro body does not decode with schema {u.wire}: {check.error}", f"<message {i}>", i)
            return 0, 0
        check = _container.walk_block(data, declared, u.index.schema_raw)
        if check.error is None:  # fastavro walks it: the decoder's own reason, from the refused record on
            bad = st[2]
            self.fail_records(f"block {blk}: record does not decode ({_decode.ERRORS[st[1]]} at {st[3]})", label,
                              recs[bad:], then=f"lost with the undecodable record {int(recs[bad])} of its block")
            return bad, (check.ends[bad - 1] if bad else 0)
        if check.holds is not None:  # the count is wrong but the bytes are records: report all they hold
            base = int(u.index.first_record()[blk])
            reason = f"block {blk}: {check.error} (its count is corrupt)"
            if self.errors_mode == "raise":
                self.fail(reason, label, base)
            # numbered once every part is decoded: the records after this block move by the difference
            self.count_fixes.append((u.ref, blk, base, declared, check.holds, reason))
            return 0, 0
        if check.good == declared:  # the declared records walk, but junk follows them
            self.fail_records(f"block {blk}: {check.error} (the block is damaged)", label, recs)
            return 0, 0
        self.fail_records(f"block {blk}: {check.error}", label, recs[check.good:],
                          then=f"lost with the undecodable record {int(recs[check.good])} of its block")
        return check.good, (check.ends[-1] if check.good else 0)

    def renumber(self, results):
        """Number records by what blocks really hold where a block's count was found corrupt.

        Records are numbered by the blocks' declared counts while parts decode in
        parallel; a block that holds more (or fewer) records than it declares moves
        the numbers of every record after it, in the results, the skipped records
        and the source's index (for reading records again).
        """
        if not self.count_fixes:
            return results
        by_ref: dict = {}
        for k, blk, base, declared, held, reason in sorted(self.count_fixes):
            by_ref.setdefault(k, []).append((blk, base, declared, held, reason))
        for k, fixes in by_ref.items():
            bounds = np.asarray([base + declared for _, base, declared, _, _ in fixes], np.int64)
            deltas = np.cumsum([held - declared for _, _, declared, held, _ in fixes])

            def shift(r, bounds=bounds, deltas=deltas):
                at = np.searchsorted(bounds, r, side="right") - 1
                return np.where(at >= 0, deltas[np.maximum(at, 0)], 0)

            label = self.refs[k].label
            for j, res in enumerate(results):
                mine = res[4] == k
                if mine.any():
                    rec = res[5].copy()
                    rec[mine] += shift(rec[mine])
                    results[j] = (*res[:5], rec, *res[6:])
            for j, sk in enumerate(self.skipped):
                if sk.file == label and sk.record is not None:
                    self.skipped[j] = dataclasses.replace(sk, record=int(sk.record + shift(np.int64(sk.record))))
            index = self.refs[k].index
            counts = index.block_count.copy()
            for i, (blk, base, _, held, reason) in enumerate(fixes):
                counts[blk] = held
                first = base + (int(deltas[i - 1]) if i else 0)  # moved by the fixes before it only
                self.fail_records(reason, label, range(first, first + held))
            self.refs[k].index = dataclasses.replace(index, block_count=counts)
        return results

    def close(self):
        if self.skipped:  # the error paths free many blocks in worker threads: hand them back
            _trim_memory()
            global _TRIM_NEXT
            _TRIM_NEXT = True  # and what the caller frees of this batch, at the next read
        for fh in self._open_files:
            try:
                fh.close()
            except (OSError, BufferError):  # pragma: no cover - an mmap still referenced
                pass
        self.tmp.cleanup()


def _pread_into(fh, buf, offset):
    """Read ``len(buf)`` bytes of an open file at ``offset`` into ``buf`` (thread-safe); the number read."""
    fd = fh.fileno()
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view[got: got + 2**30]], offset + got)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(fd, min(len(buf) - got, 2**30), offset + got)
            n = len(data)
            view[got: got + n] = data
        if n <= 0:
            break
        got += n
    return got


def _release_pages(buf, lo, hi):
    """Tell the system a memory-mapped file's pages in ``[lo, hi)`` are no longer needed.

    They are the file's own (clean) pages, dropped from the resident size now rather than at
    the end of the read and read again from the file if anything touches them later.
    """
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    page = mmap.PAGESIZE
    lo = lo // page * page
    try:
        buf.madvise(mmap.MADV_DONTNEED, lo, max(min(hi, len(buf)) - lo, 0))
    except (OSError, ValueError):  # pragma: no cover - advice only
        pass


def _cutout_fields(mod):
    """``{cutout name: Avro field}`` of a survey mapping's ``c:`` outputs."""
    return getattr(mod, "CUTOUT_FIELDS", None) or getattr(mod, "CUTOUTS", {})


def _string_arrays(col):
    """``(string array, rows -> alert rows)`` pairs of a column: itself, or a list's item fields."""
    if isinstance(col, pa.ChunkedArray):
        if not (pa.types.is_string(col.type) or pa.types.is_list(col.type)):
            return
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()  # (one chunk: no copy)
    else:
        arr = col
    if pa.types.is_string(arr.type):
        yield arr, lambda rows: rows
    elif pa.types.is_list(arr.type) and pa.types.is_struct(arr.type.value_type):
        values = arr.values

        def owner(rows, arr=arr):  # only on the error path
            return np.unique(pa.compute.list_parent_indices(arr).to_numpy()[rows])

        for k in range(values.type.num_fields):
            f = values.field(k)
            if pa.types.is_string(f.type):
                yield f, owner


def _bad_utf8_rows(arr):
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2].to_pybytes() if arr.buffers()[2] is not None else b""
    bad = []
    for i in range(len(arr)):
        try:
            data[offsets[i]: offsets[i + 1]].decode("utf-8")
        except UnicodeDecodeError:
            bad.append(i)
    return np.asarray(bad, np.int64)


def _load_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_TRIM = _load_trim()


def _trim_memory() -> None:
    """Give memory freed by decoding threads back to the system (glibc keeps it in per-thread arenas)."""
    if _TRIM is not None:
        _TRIM(0)


def _run(reader, parts, show):
    if not parts:
        return []
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(parts), desc="decoding", unit="part")
    out = [None] * len(parts)
    if reader.workers > 1 and len(parts) > 1:
        with ThreadPoolExecutor(reader.workers) as ex:
            futures = {ex.submit(reader.decode, p): i for i, p in enumerate(parts)}
            for fut, i in futures.items():
                out[i] = fut.result()
                if bar:
                    bar.update()
    else:
        for i, p in enumerate(parts):
            out[i] = reader.decode(p)
            if bar:
                bar.update()
    if bar:
        bar.close()
    return out
