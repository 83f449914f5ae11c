"""Stages 2 and 3 of reading: frame the Avro containers into parts, and decode the parts.

:class:`_Reader` turns sources into container units (indexing blocks, verifying them, grouping
wire messages by schema id), routes non-Avro sources to their format's reader, cuts and merges
units into parts, decodes the parts with DuckDB (one connection per thread) and salvages a part
DuckDB rejects record by record with fastavro, so every bad record is named. :func:`_run` drives
the decoding over a thread pool.
"""

from __future__ import annotations

import dataclasses
import io
import json
import mmap
import os
import re
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa

from . import _container, _duck
from ._sources import _AVRO_SUFFIXES, _SURVEYS, MAX_UNCOMPRESSED_BYTES, SourceRef, _gunzip_stream, _identify, _sniff
from .errors import AlertFormatError, SkippedRecord
from .schema import load_rubin_schema, unpack_wire, version_from_schema_id

_PART_BYTES = 16 * 2**20


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
    """One container file ready for DuckDB, and how its records map to a SourceRef."""

    ref: int
    path: str
    schema: dict
    schema_text: str
    survey: str
    version: str | None
    index: _container.ContainerIndex
    records: np.ndarray  # record index in the SourceRef for each record of this file
    buf: object = None  # mmap or bytes of the container, for splitting


@dataclass
class _Part:
    units: list  # list of (unit, first_block, last_block)
    paths: list
    survey: str
    schema: dict
    version: str | None
    records: list  # (ref, record) arrays
    #: (unit, first_block, last_block, path) to write before decoding (done in the worker)
    pending_writes: list = field(default_factory=list)
    #: (unit, first_block, last_block) merged into ``paths[0]`` before decoding (small files)
    merge: list = field(default_factory=list)


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
            _duck.trim_memory()
        # the pid in the name lets a later read remove it if this process is killed mid-read
        self.tmp = tempfile.TemporaryDirectory(prefix=f"lsstuk_read_{os.getpid()}_")
        self._n_tmp = 0
        self._local = threading.local()
        self._cons: list = []  # connections taken from the pool, returned at close
        self._cons_lock = threading.Lock()
        self._open_files = []

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
        """``(path, buf)`` of a source's container (a gzip file decompressed to a temporary file)."""
        if ref.kind == "bytes":
            path = self.tmp_path()
            with open(path, "wb") as fh:
                fh.write(ref.data)
        elif ref.path.endswith(".gz"):
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
        return path, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def _container_unit(self, k, ref):
        label = ref.label
        try:
            path, buf = self._open(ref)
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
        if self.verify is not False or any(p is not None for p in index.block_problem):
            counts, pieces, sound = self._verify(index, buf, label)
        else:
            counts, pieces, sound = index.block_count, [], True
        ref.index = index if sound else _replace_counts(index, counts)
        n = int(counts.sum())
        if index.truncated:
            self.fail(f"file truncated or its framing damaged ({index.truncated}): records from {n} on, an "
                      "unknown number of records, cannot be read", label, n)
        if sound:
            return _Unit(ref=k, path=path, schema=index.schema, schema_text=schema_text, survey=survey,
                         version=version, index=index, records=np.arange(n, dtype=np.int64), buf=buf)
        if not pieces:
            return None
        # write the sound records again as one null-codec container for the decoder
        new_path = self.tmp_path()
        with open(new_path, "wb") as fh:
            fh.write(_container.make_header(index.schema_raw.decode(), index.sync))
            for _, n_rec, blk, end in pieces:
                data = _container.block_data(buf, index, blk, self.limit)[:end]
                fh.write(_container._write_long(n_rec) + _container._write_long(len(data)) + data + index.sync)
        with open(new_path, "rb") as fh:
            new_buf = fh.read()
        new_index = _container.index_container(new_buf)
        records = np.concatenate([np.arange(first, first + n_rec) for first, n_rec, _, _ in pieces]).astype(np.int64)
        return _Unit(ref=k, path=new_path, schema=index.schema, schema_text=schema_text, survey=survey,
                     version=version, index=new_index, records=records, buf=new_buf)

    def _verify(self, index, buf, label):
        """Check every block's codec data and that its records fill it exactly.

        Returns ``(counts, pieces, sound)``: the record count of each block as
        verified, the sound records as ``(first record, count, block, end)``
        pieces (``end``: where they end in the block's data, ``None`` for all of
        it), and whether every block was sound. Unsound records are reported.
        With ``verify="auto"`` a block declaring exactly one record is not
        walked (see :func:`read_alerts`).
        """
        counts = index.block_count.copy()
        pieces, sound = [], True
        first = 0
        walk_all = self.verify is True
        for k in range(len(counts)):
            declared = int(counts[k])
            records = range(first, first + declared)
            if index.block_problem[k] is not None:
                self.fail_records(f"block {k}: {index.block_problem[k]}", label, records)
                sound = False
                first += declared
                continue
            if declared == 1 and not walk_all and index.codec == "null":
                pieces.append((first, 1, k, None))
                first += 1
                continue
            try:
                data = _container.block_data(buf, index, k, self.limit)
            except _container.ContainerError as exc:
                reason = str(exc) + ("; pass read_alerts(..., max_uncompressed_bytes=N) to allow more"
                                     if exc.bomb else "")
                self.fail_records(f"block {k}: {reason}", label, records)
                sound = False
                first += declared
                continue
            if declared == 1 and not walk_all:
                pieces.append((first, 1, k, None))
                first += 1
                continue
            check = _container.walk_block(data, declared, index.schema_raw)
            if check.error is None:
                pieces.append((first, declared, k, None))
                first += declared
                continue
            sound = False
            if check.holds is not None:  # the count is wrong but the bytes are records: report them all
                counts[k] = check.holds
                self.fail_records(f"block {k}: {check.error} (its count is corrupt)", label,
                                  range(first, first + check.holds))
                first += check.holds
                continue
            if check.good == declared:  # the declared records walk, but junk follows them
                self.fail_records(f"block {k}: {check.error} (the block is damaged)", label, records)
                first += declared
                continue
            if check.good:
                pieces.append((first, check.good, k, check.ends[-1]))
            bad = check.good + first
            self.fail_records(f"block {k}: {check.error}", label, range(bad, first + declared),
                              then=f"lost with the undecodable record {bad} of its block")
            first += declared
        return counts, pieces, sound

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
            raw = text.encode()
            good = []
            for i, body in items:
                # a schemaless body cannot be re-synchronised: check each one fills its message exactly
                check = _container.walk_block(body, 1, raw)
                if check.error is None:
                    good.append((i, body))
                elif check.good == 1:
                    self.fail(f"the message has {len(body) - check.ends[0]} bytes after its alert; a message "
                              "must decode to exactly its length", f"<message {i}>", i)
                else:
                    self.fail(f"Avro body does not decode with schema {sid}: {check.error}", f"<message {i}>", i)
            if not good:
                continue
            path = self.tmp_path()
            data = _container.wrap_bodies(text, [b for _, b in good])
            with open(path, "wb") as fh:
                fh.write(data)
            major, minor = version_from_schema_id(sid)
            ref.writer_schema = json.loads(text)
            index = _container.index_container(data)
            units.append(_Unit(
                ref=k, path=path, schema=json.loads(text), schema_text=text, survey="lsst",
                version=f"lsst.v{major}_{minor}", index=index,
                records=np.asarray([i for i, _ in good], dtype=np.int64),
                buf=None,
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

    # -- stage 2: units -> parts (split big files, group small ones)
    def make_parts(self, units):
        total = sum(int(u.index.block_end[-1] - u.index.header_size) if len(u.index.block_end) else 0
                    for u in units)
        target = max(_PART_BYTES, total // (2 * self.workers) + 1) if self.workers > 1 else 2**62
        parts = []
        pending = None
        for u in units:
            nb = len(u.index.block_count)
            if nb == 0:
                continue
            data_size = int(u.index.block_end[-1] - u.index.header_size)
            whole_file = (not u.index.truncated) and u.buf is not None
            if data_size > 2 * target and u.buf is not None and nb > 1:
                # cut at block boundaries into parts of about `target` bytes
                cum = u.index.block_end - u.index.header_size
                cuts = np.searchsorted(cum, np.arange(target, data_size, target), side="left") + 1
                bounds = np.unique(np.concatenate([[0], cuts, [nb]]))
                first = u.index.first_record()
                for a, b in zip(bounds[:-1], bounds[1:]):
                    path = self.tmp_path()
                    lo = int(first[a])
                    hi = int(first[b - 1] + u.index.block_count[b - 1])
                    part = _Part([(u, int(a), int(b))], [path], u.survey, u.schema, u.version,
                                 [(u.ref, u.records[lo:hi])])
                    part.pending_writes.append((u, int(a), int(b), path))
                    parts.append(part)
                pending = None
                continue
            path = u.path
            write = None
            if not whole_file and u.buf is not None:
                path = self.tmp_path()
                write = (u, 0, nb, path)
            if (pending is not None and pending.schema_text == u.schema_text
                    and pending.size + data_size <= target and len(pending.part.paths) < 256):
                pending.part.paths.append(path)
                pending.part.units.append((u, 0, nb))
                if write:
                    pending.part.pending_writes.append(write)
                pending.part.records.append((u.ref, u.records[: u.index.n_records]))
                pending.size += data_size
                continue
            part = _Part([(u, 0, nb)], [path], u.survey, u.schema, u.version,
                         [(u.ref, u.records[: u.index.n_records])])
            if write:
                part.pending_writes.append(write)
            parts.append(part)
            pending = _Pending(part, u.schema_text, data_size)
        for part in parts:
            # several small files of one schema and codec: decode them as one merged container
            units = [u for u, _, _ in part.units]
            if (len(units) > 1 and all(u.buf is not None for u in units)
                    and len({u.index.codec for u in units}) == 1):
                part.merge = list(part.units)
                part.paths = [self.tmp_path()]
                part.pending_writes = []
        return parts

    # -- stage 3: decode
    def _con(self):
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = _duck.acquire()
            with self._cons_lock:
                self._cons.append(con)
        return con

    def _drop_con(self):
        """Close this thread's connection after an error (it is not returned to the pool)."""
        con = getattr(self._local, "con", None)
        if con is None:
            return
        self._local.con = None
        with self._cons_lock:
            if con in self._cons:
                self._cons.remove(con)
        _duck.release(con, broken=True)

    def _query(self, query):
        con = self._con()  # outside the try: a connection that cannot open is not the input's fault
        try:
            return con.execute(query).fetch_arrow_table()
        except Exception:
            self._drop_con()
            raise

    def decode(self, part):
        """Decode a part; a list of ``(sources, history, objects, cutouts, ref_ids, rec_ids)``.

        Anything that goes wrong is put down to the records: a part of several
        files is decoded again file by file, and a file that still fails has
        every record reported, so one bad file never costs the others.
        """
        try:
            return [self._decode(part)]
        except AlertFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - attributed below
            if len(part.units) > 1:
                out = []
                for u, a, b in part.units:
                    out.extend(self.decode(self._single_part(u, a, b)))
                return out
            u, a, b = part.units[0]
            ref = self.refs[u.ref]
            fld = exc.args[0] if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) else None
            recs = np.concatenate([np.asarray(r, np.int64) for _, r in part.records]) if part.records else []
            # records already reported while decoding this part (the salvage) are not reported twice
            done = {s.record for s in self.skipped if s.file == ref.label}
            recs = [r for r in recs if int(r) not in done]
            self.fail_records(f"the alert does not fit the {part.survey} mapping ({type(exc).__name__}: {exc})",
                              ref.label, recs, fld)
            return []

    def _single_part(self, u, a, b):
        path = self.tmp_path()
        first = u.index.first_record()
        lo, hi = int(first[a]), int(first[b - 1] + u.index.block_count[b - 1])
        part = _Part([(u, a, b)], [path], u.survey, u.schema, u.version, [(u.ref, u.records[lo:hi])])
        part.pending_writes.append((u, a, b, path))
        return part

    def _decode(self, part):
        for u, a, b, path in part.pending_writes:
            _container.write_part(_buf_of(u), u.index, a, b, path)
        if part.merge:
            _container.write_merged([(_buf_of(u), u.index, a, b) for u, a, b in part.merge], part.paths[0])
        mod = _SURVEYS[part.survey]
        query = mod.build_query(part.schema, part.paths, self.columns, self.cutouts)
        expected = sum(len(r) for _, r in part.records)
        try:
            table = self._query(query)
            if table.num_rows != expected:
                raise RuntimeError(f"decoded {table.num_rows} records, expected {expected}")
            records = part.records
        except Exception as exc:  # noqa: BLE001 - fall back to per-record attribution
            table, records = self._salvage(part, mod, exc)
        if table is None or table.num_rows == 0:
            return None
        version = part.version
        sources, history, objects, cut = mod.to_frames(table, version)
        ref_ids = np.concatenate([np.full(len(r), k, np.int64) for k, r in records])
        rec_ids = np.concatenate([np.asarray(r, np.int64) for _, r in records])
        return sources, history, objects, cut, ref_ids, rec_ids

    def _salvage(self, part, mod, first_exc):
        """Decode a part that DuckDB rejected, record by record, to name the bad ones."""
        good, records = [], []
        parsed = fastavro.parse_schema(part.schema)
        for (u, a, b) in part.units:
            ref = self.refs[u.ref]
            first = u.index.first_record()
            buf = _buf_of(u)
            for blk in range(a, b):
                n = int(u.index.block_count[blk])
                recs = []
                try:
                    bio = io.BytesIO(_container.block_data(buf, u.index, blk, self.limit))
                    for _ in range(n):
                        recs.append(fastavro.schemaless_reader(bio, parsed))
                except Exception as exc:  # noqa: BLE001
                    base = int(first[blk]) + len(recs)
                    self.fail_records(f"record does not decode ({type(exc).__name__}: {exc})", ref.label,
                                      u.records[base: int(first[blk]) + n],
                                      then=f"lost with the undecodable record {int(u.records[base])} of its block")
                good.extend(recs)
                records.append((u.ref, u.records[int(first[blk]): int(first[blk]) + len(recs)]))
        if not good:
            return None, []
        path = self.tmp_path()
        with open(path, "wb") as fh:
            fastavro.writer(fh, parsed, good)
        query = mod.build_query(part.schema, [path], self.columns, self.cutouts)
        try:
            table = self._query(query)
            if table.num_rows != len(good):
                raise RuntimeError(f"decoded {table.num_rows} records, expected {len(good)}")
        except Exception as exc:  # noqa: BLE001
            reason = f"the decoder rejects these records ({type(first_exc).__name__}: {first_exc}; then {exc})"
            for k, recs in records:
                self.fail_records(reason, self.refs[k].label, recs)
            return None, []
        return table, records

    def close(self):
        for con in self._cons:
            _duck.release(con)
        self._cons.clear()
        if self.skipped:  # the error paths free many blocks in worker threads: hand them back
            _duck.trim_memory()
            global _TRIM_NEXT
            _TRIM_NEXT = True  # and what the caller frees of this batch, at the next read
        for fh in self._open_files:
            try:
                fh.close()
            except (OSError, BufferError):  # pragma: no cover - an mmap still referenced
                pass
        self.tmp.cleanup()


def _replace_counts(index, counts):
    """A copy of a container index with the record counts found by verification."""
    return dataclasses.replace(index, block_count=np.asarray(counts, np.int64))


@dataclass
class _Pending:
    part: _Part
    schema_text: str
    size: int


def _buf_of(unit):
    if unit.buf is not None:
        return unit.buf
    with open(unit.path, "rb") as fh:
        return fh.read()


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
