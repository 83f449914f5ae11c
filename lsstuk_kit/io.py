"""Read alert batches (files, folders, globs, bytes, Kafka wire messages) into an AlertBatch.

How it works: every source becomes one or more Avro container files; their
blocks are indexed without decoding (so a truncated tail is found at once and a
large file can be cut into parts), then DuckDB's Avro reader decodes the parts
straight to Arrow columns, one DuckDB connection per core, asking only for the
fields the caller wants. fastavro is used only to attribute errors to single
records and to hand back raw alert dicts.
"""

from __future__ import annotations

import dataclasses
import glob as _glob
import gzip
import io
import json
import mmap
import os
import re
import shutil
import tempfile
import threading
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _container, _duck
from ._duck import release_connections
from .errors import AlertFormatError, SkippedRecord
from .schema import identify_schema, load_rubin_schema, unpack_wire, version_from_schema_id
from .surveys import atlas as _atlas
from .surveys import lsst as _lsst
from .surveys import ztf as _ztf
from .surveys._avrotypes import arrow_to_pandas

__all__ = ["read_alerts", "write_alerts", "iter_files", "release_connections", "DEFAULT_COLUMNS",
           "MAX_UNCOMPRESSED_BYTES"]

#: A typical projection: ids, position, time, band, flux, flux error, reliability.
DEFAULT_COLUMNS = (
    "diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band",
    "psfFlux", "psfFluxErr", "reliability",
)

_SURVEYS = {"lsst": _lsst, "ztf": _ztf, "atlas": _atlas}
_AVRO_SUFFIXES = (".avro", ".avro.gz")
_PART_BYTES = 16 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"


# --------------------------------------------------------------------------- sources
#: Default limit on the bytes a compressed source (``.avro.gz``, gzip bytes) or an Avro
#: block may expand to; ``read_alerts(..., max_uncompressed_bytes=...)`` raises it.
MAX_UNCOMPRESSED_BYTES = 2**30


@dataclass
class SourceRef:
    """Where alerts came from, so raw records can be read again on demand.

    Files are read again from disk when raw records are asked for (iteration,
    ``to_avro``, ``cutouts()`` of a batch read with ``cutouts=False``); the
    file's size, modification time and sync marker, recorded at the first read,
    must still match, else :class:`~lsstuk_kit.AlertFormatError` is raised
    rather than other alerts being returned. Bytes and messages are kept in memory.
    """

    label: str
    kind: str  # "file", "bytes" or "wire"
    path: str | None = None
    data: bytes | None = None
    messages: list | None = None
    writer_schema: dict | None = None
    #: wire messages: parsed schema per schema id
    wire_schemas: dict = field(default_factory=dict)
    #: the container's block index (record counts as verified), for reading records again
    index: object = None
    #: (size, mtime_ns) of the file when it was read
    stat: tuple | None = None
    limit: int = MAX_UNCOMPRESSED_BYTES
    #: parsed JSON (a document, or a list of messages) for in-memory JSON sources
    obj: object = None
    #: found by a folder or glob search (then only files a format claims are read)
    from_folder: bool = False
    #: the format that read it, when not one of the Avro formats
    fmt: str | None = None

    def _buffer(self):
        """The container bytes, checked to be those that were read."""
        if self.kind == "bytes":
            return self.data
        try:
            st = os.stat(self.path)
            if self.stat is not None and (st.st_size, st.st_mtime_ns) != self.stat:
                raise AlertFormatError(
                    "the file changed since it was read (size or modification time differ); "
                    "read it again", self.label)
            if self.path.endswith(".gz"):
                data = _gunzip_file(self.path, self.limit, self.label)
            else:
                # mapped, not read: only the blocks holding the wanted records are touched
                with open(self.path, "rb") as fh:
                    data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size else b""
        except OSError as exc:
            raise AlertFormatError(f"cannot read the file again ({exc.strerror or exc})", self.label) from None
        if self.index is not None and bytes(data[self.index.header_size - _container.SYNC_SIZE:
                                                 self.index.header_size]) != self.index.sync:
            raise AlertFormatError("the file changed since it was read (its sync marker differs); read it again",
                                   self.label)
        return data

    def iter_records(self, wanted):
        """Yield ``(index, alert_dict)`` for the record indices in ``wanted`` (sorted).

        Raises
        ------
        AlertFormatError
            If the source changed since it was read, or a record no longer decodes.
        """
        wanted = sorted(set(int(i) for i in wanted))
        if not wanted:
            return
        if self.fmt is not None:
            yield from self._format_records(wanted)
            return
        if self.kind == "wire":
            for i in wanted:
                try:
                    sid, body = unpack_wire(self.messages[i])
                    rec = fastavro.schemaless_reader(io.BytesIO(body), self.wire_schemas[sid])
                except Exception as exc:  # noqa: BLE001
                    raise AlertFormatError(f"message no longer decodes ({type(exc).__name__}: {exc})",
                                           f"<message {i}>", i) from None
                yield i, rec
            return
        buf = self._buffer()
        idx = self.index
        parsed = fastavro.parse_schema(idx.schema)
        first = idx.first_record()
        blocks = np.searchsorted(first, wanted, side="right") - 1
        i = 0
        while i < len(wanted):
            k = int(blocks[i])
            try:
                data = _container.block_data(buf, idx, k, self.limit)
            except _container.ContainerError as exc:
                raise AlertFormatError(str(exc), self.label, wanted[i]) from None
            bio = io.BytesIO(data)
            pos = int(first[k])
            while i < len(wanted) and int(blocks[i]) == k:
                try:
                    while pos < wanted[i]:
                        fastavro.schemaless_reader(bio, parsed)
                        pos += 1
                    rec = fastavro.schemaless_reader(bio, parsed)
                    pos += 1
                except Exception as exc:  # noqa: BLE001
                    raise AlertFormatError(f"record no longer decodes ({type(exc).__name__}: {exc})",
                                           self.label, wanted[i]) from None
                yield wanted[i], rec
                i += 1


    def _format_records(self, wanted):
        from . import formats

        spec = formats.get(self.fmt)
        if spec.records is not None:
            if self.kind == "file":
                st = os.stat(self.path)
                if self.stat is not None and (st.st_size, st.st_mtime_ns) != self.stat:
                    raise AlertFormatError("the file changed since it was read (size or modification time "
                                           "differ); read it again", self.label)
            try:
                yield from spec.records(self.path if self.kind == "file" else self.data, wanted)
            except AlertFormatError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise AlertFormatError(f"records no longer read ({type(exc).__name__}: {exc})", self.label) from None
            return
        items = self.obj if isinstance(self.obj, list) else [self.obj] if isinstance(self.obj, dict) else None
        if items is None:
            raise AlertFormatError(f"the {self.fmt} format keeps no raw alert records to read again", self.label)
        for i in wanted:
            item = items[i]
            if not isinstance(item, dict):
                try:
                    item = json.loads(item)
                except (ValueError, TypeError, RecursionError) as exc:
                    raise AlertFormatError(f"message no longer parses ({exc})", self.label, i) from None
            yield i, item


def _gunzip_file(path, limit, label, magic=_container.MAGIC):
    with open(path, "rb") as fh:
        return _gunzip_stream(fh, limit, label, magic=magic)


def _gunzip_head(fh, n=4096):
    """The first ``n`` decompressed bytes of a gzip stream (b"" if it is not gzip)."""
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress(fh.read(65536), n)
    except (zlib.error, OSError):
        return b""


def _gunzip_stream(fh, limit, label, sink=None, magic=_container.MAGIC):
    """Decompress a gzip stream, checking the Avro magic first and stopping past ``limit`` bytes.

    Returns the bytes, or writes them to ``sink`` and returns ``None``. With
    ``magic=None`` (text formats) the content is not checked.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray() if sink is None else None
    total = 0
    head = b""
    try:
        while True:
            chunk = fh.read(2**20)
            if not chunk:
                break
            while chunk:
                piece = d.decompress(chunk, 2**22)
                chunk = d.unconsumed_tail
                if d.eof and d.unused_data:  # a further gzip member follows
                    rest = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    chunk = rest + chunk
                if magic is not None and len(head) < 4:
                    head += piece[: 4 - len(head)]
                    if len(head) >= 4 and head[:4] != magic:
                        raise AlertFormatError(
                            f"gzip data does not hold an Avro container (starts with {head[:4]!r})", label)
                total += len(piece)
                if total > limit:
                    raise AlertFormatError(
                        f"gzip data expands past max_uncompressed_bytes={limit:,} bytes (a compression bomb?); "
                        "pass read_alerts(..., max_uncompressed_bytes=N) to allow more", label)
                if sink is None:
                    out += piece
                else:
                    sink.write(piece)
    except zlib.error as exc:
        raise AlertFormatError(f"not a readable gzip file ({exc})", label) from None
    if not d.eof:
        raise AlertFormatError("gzip data ends before its end (truncated)", label)
    if magic is not None and total < 4:
        raise AlertFormatError("gzip data holds no Avro container (empty)", label)
    return None if sink is not None else bytes(out)


_IDENTIFIED: dict = {}  # canonical schema text -> (survey, version)


def _identify(schema_text: str, schema: dict):
    """:func:`identify_schema` once per distinct schema (a night's files share one).

    ``schema`` is the schema as written (its key order matters: the version is
    looked for near the start of its JSON), ``schema_text`` only the cache key.
    """
    found = _IDENTIFIED.get(schema_text)
    if found is None:
        found = identify_schema(schema)
        if len(_IDENTIFIED) < 256:
            _IDENTIFIED[schema_text] = found
    return found


def _find_files(path, suffixes=_AVRO_SUFFIXES):
    """Files a path names, and the paths under it that could not be read: ``(files, problems)``.

    Folders are searched recursively in sorted order, following symlinked folders
    (each real folder once: a symlink loop is reported, not followed again).
    ``problems`` lists ``(path, reason)`` for dangling symlinks, unreadable folders
    and loops.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        files, problems = [], []
        seen = set()

        def walk(folder):
            try:
                real = os.path.realpath(folder)
            except OSError as exc:  # pragma: no cover - realpath rarely fails
                problems.append((folder, f"cannot resolve the folder ({exc})"))
                return
            if real in seen:
                problems.append((folder, f"symlink loop: {real} was already searched; not followed again"))
                return
            seen.add(real)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                problems.append((folder, f"cannot list the folder ({exc.strerror or exc})"))
                return
            for e in entries:
                full = os.path.join(folder, e.name)
                try:
                    is_dir = e.is_dir(follow_symlinks=True)
                    is_file = e.is_file(follow_symlinks=True)
                except OSError as exc:
                    problems.append((full, f"cannot be read ({exc.strerror or exc})"))
                    continue
                if is_dir:
                    walk(full)
                elif is_file:
                    if e.name.lower().endswith(suffixes):
                        files.append(full)
                elif e.is_symlink():
                    problems.append((full, f"dangling symlink (points to {os.readlink(full)!r})"))

        walk(str(p))
        return files, problems
    if p.is_file():
        return [str(p)], []
    if p.is_symlink():
        return [], [(str(p), f"dangling symlink (points to {os.readlink(p)!r})")]
    if any(ch in str(path) for ch in "*?["):
        files, problems = [], []
        for f in sorted(_glob.glob(str(p), recursive=True)):
            sub_files, sub_problems = _find_files(f, suffixes) if os.path.isdir(f) else (
                ([f], []) if os.path.isfile(f) else ([], [(f, "cannot be read (dangling symlink?)")]))
            files.extend(sub_files)
            problems.extend(sub_problems)
        return files, problems
    raise FileNotFoundError(f"no such file, folder or glob match: {path}")


def _suffixes():
    from . import formats

    return tuple(dict.fromkeys(_AVRO_SUFFIXES + formats.suffixes()))


def iter_files(path) -> list[str]:
    """List the Avro files a path names: a file, a folder (recursive, sorted, symlinks followed) or a glob.

    Paths that cannot be read are left out here; :func:`read_alerts` reports them.

    Examples
    --------
    >>> from lsstuk_kit.io import iter_files
    >>> from lsstuk_kit import sample_path
    >>> len(iter_files(sample_path())) > 0
    True
    """
    return _find_files(path)[0]


def _looks_json(item) -> bool:
    if isinstance(item, (bytes, bytearray, memoryview)):
        head = bytes(item[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")
        return head[:1] in (b"{", b"[")
    return isinstance(item, str) and item.lstrip()[:1] in ("{", "[")


def _expand(source, limit=MAX_UNCOMPRESSED_BYTES):
    """Sources as SourceRefs, and ``(path, reason)`` problems met while finding them."""
    if isinstance(source, str) and _looks_json(source):
        return [SourceRef(label="<json>", kind="bytes", data=source.encode("utf-8"), limit=limit)], []
    if isinstance(source, (str, os.PathLike)):
        files, problems = _find_files(source, _suffixes())
        searched = not Path(source).expanduser().is_file()  # a folder or a glob
        return [SourceRef(label=f, kind="file", path=f, limit=limit, from_folder=searched) for f in files], problems
    if isinstance(source, dict):
        return [SourceRef(label="<object>", kind="object", obj=source)], []
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, dict) or _looks_json(s) for s in source):
        # JSON messages (as a Kafka consumer hands them over) or an already-parsed JSON array
        return [SourceRef(label="<messages>", kind="object", obj=[bytes(s) if isinstance(s, memoryview) else s
                                                                   for s in source])], []
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:2] == _GZIP_MAGIC:
            try:
                data = _gunzip_stream(io.BytesIO(data), limit, "<bytes>")
            except AlertFormatError as exc:
                return [], [("<bytes>", exc.reason)]
        if data[:1] == b"\x00" and data[:4] != _container.MAGIC:
            return [SourceRef(label="<messages>", kind="wire", messages=[data])], []
        return [SourceRef(label="<bytes>", kind="bytes", data=data, limit=limit)], []
    if isinstance(source, (list, tuple)):
        if source and all(isinstance(s, (bytes, bytearray, memoryview)) for s in source):
            if not any(bytes(s[:4]) in (_container.MAGIC, b"PAR1") or bytes(s[:2]) == _GZIP_MAGIC for s in source):
                return [SourceRef(label="<messages>", kind="wire", messages=[bytes(s) for s in source])], []
        refs, problems = [], []
        for k, s in enumerate(source):
            sub, sub_problems = _expand(s, limit)
            for r in sub:
                if r.kind == "bytes":
                    r.label = f"<bytes {k}>"
            refs.extend(sub)
            problems.extend((f"<bytes {k}>" if label == "<bytes>" else label, why) for label, why in sub_problems)
        return refs, problems
    raise TypeError(
        "read_alerts source must be a path, folder, glob, bytes, JSON (text, dict, or a list of JSON "
        f"messages), a list of these, or a list of Kafka wire-format messages; got {type(source).__name__}"
    )


# --------------------------------------------------------------------------- formats
def _suffix_of(name: str) -> str:
    name = os.path.basename(name).lower()
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "gz":
        return "." + ".".join(parts[-2:])
    return "." + parts[-1] if len(parts) >= 2 else ""


def _first_json(obj):
    """The first JSON object of a document or a list of messages (parsed if need be), for identification."""
    if isinstance(obj, list):
        for item in obj[:64]:
            if isinstance(item, dict):
                return item
            if isinstance(item, (bytes, bytearray, str)):
                try:
                    got = json.loads(item)
                except (ValueError, RecursionError):
                    continue
                return got[0] if isinstance(got, list) and got and isinstance(got[0], dict) else got
        return obj
    return obj


def _sniff(ref, limit):
    """What identification needs of a source: suffix, first bytes, the parsed JSON (kept on ``ref.obj``)."""
    from .formats import MAX_TEXT_BYTES, Sniff

    if ref.kind == "object":
        return Sniff(label=ref.label, obj=_first_json(ref.obj))
    if ref.kind == "file":
        try:
            with open(ref.path, "rb") as fh:
                head = fh.read(4096)
                if head[:2] == _GZIP_MAGIC:
                    fh.seek(0)
                    head = _gunzip_head(fh)
        except OSError as exc:
            raise AlertFormatError(f"cannot read the file ({exc.strerror or exc})", ref.label) from None
        sniff = Sniff(label=ref.label, suffix=_suffix_of(ref.path), head=head, path=ref.path,
                      from_folder=ref.from_folder)
    else:
        sniff = Sniff(label=ref.label, head=ref.data[:4096], data=ref.data)
    if sniff.head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        # JSON text: parsed once here (bounded) and handed to the format's reader
        if ref.kind == "file":
            if os.path.getsize(ref.path) > min(limit, MAX_TEXT_BYTES) and not ref.path.endswith(".gz"):
                raise AlertFormatError(f"JSON file larger than {min(limit, MAX_TEXT_BYTES):,} bytes; refused",
                                       ref.label)
            data = (_gunzip_file(ref.path, min(limit, MAX_TEXT_BYTES), ref.label, magic=None)
                    if sniff.head is not None and ref.path.endswith(".gz") else Path(ref.path).read_bytes())
            ref.data = data
        try:
            ref.obj = json.loads(ref.data)
        except (ValueError, RecursionError):
            # JSON lines (one message per line), or broken JSON: the reader says which
            first = ref.data.lstrip().split(b"\n", 1)[0]
            try:
                sniff.obj = _first_json(json.loads(first))
            except (ValueError, RecursionError):
                sniff.obj = None
            return sniff
        sniff.obj = _first_json(ref.obj)
    return sniff


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
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if len(arr) == 0:
            continue
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


# --------------------------------------------------------------------------- API
def read_alerts(source, *, format=None, columns=None, errors="raise", cutouts=True, progress=None, workers=None,  # noqa: A002 - astropy's name
                engine="pandas", partition_size="64MB", max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES, verify="auto",
                **format_options):
    """Read alerts (Rubin, ZTF, ATLAS; raw or from a broker) into an :class:`~lsstuk_kit.AlertBatch`.

    Parameters
    ----------
    source : str, path, bytes, JSON, or list
        An Avro container file (one or many alerts), a ``.avro.gz`` file, a file
        of another format the kit knows (Fink Parquet, Lasair / ALeRCE / ANTARES
        JSON, ATLAS ``.ddc``: :func:`~lsstuk_kit.formats.list_formats`), a folder
        (searched recursively, in sorted order, for the files those formats
        claim; other files are left alone), a glob, raw bytes, JSON text, a dict,
        a list of any of these, a list of JSON messages (bytes or dicts, as a
        Kafka consumer of a broker's stream hands them over), or a list of Kafka
        messages in the Confluent wire format (magic byte 0, 4-byte big-endian
        schema id ``major * 100 + minor``, schemaless Avro body), decoded with the
        official schema of that version from ``lsst-alert-packet``.
    format : str, optional
        The input's format, e.g. ``"fink-parquet"`` or ``"lasair-json"``
        (:func:`~lsstuk_kit.formats.list_formats` lists them). ``None`` (default)
        identifies each source: Avro by its writer schema, others by their
        content. An input no format claims raises
        :class:`~lsstuk_kit.formats.UnknownFormatError` listing the formats.
    columns : list of str, optional
        Column projection for ``sources`` and ``history`` (Rubin names, e.g.
        :data:`DEFAULT_COLUMNS`). The ids, position, time, band and flux are always
        kept. ``None`` (default) reads every field.
    errors : {"raise", "skip"}
        ``"raise"`` stops at the first bad record with an
        :class:`~lsstuk_kit.AlertFormatError` naming the file, record and field;
        ``"skip"`` loads the good records and lists every skipped one in
        ``batch.errors`` (a bad file, folder or message never costs the others):
        alerts read + records reported = records in the sources. A row with no
        record stands for a whole source (an unreadable file, folder or dangling
        symlink); a row whose reason says "an unknown number of records" stands
        for every record from that index on (the file's framing was lost there).
        Alerts that appear more than once (same ``diaSourceId``) are kept once
        and the repeats listed in ``batch.errors`` in either mode.
    cutouts : bool
        Keep the cutout bytes (decoded only when ``batch.cutouts(id)`` asks). With
        ``False`` they are not read, and ``cutouts()`` reads them back from the
        source on demand (raising :class:`~lsstuk_kit.AlertFormatError` if the
        file changed since it was read).
    progress : bool, optional
        Show a progress bar; by default shown when there are many parts.
    workers : int, optional
        Decoding threads (default: one per core, at most 4).
    engine : {"pandas", "dask"}
        ``"pandas"`` reads everything now into an AlertBatch. ``"dask"`` returns a
        :class:`~lsstuk_kit.scale.DaskAlerts` over files, folders or globs larger
        than memory: Dask DataFrames read partition by partition when computed
        (needs ``pip install "lsstuk_kit[dask]"``).
    partition_size : int or str
        With ``engine="dask"``: bytes of Avro per partition (files are grouped up to it).
    max_uncompressed_bytes : int
        Refuse a gzip source or an Avro block that expands past this many bytes
        (default 1 GiB, :data:`MAX_UNCOMPRESSED_BYTES`): a small file cannot make
        the reader fill the disk or the memory. The gzip stream is checked for
        the Avro magic before anything is written.
    verify : {"auto", True, False}
        Walk blocks' records (skipping every field, building nothing) before
        decoding, so that a block whose declared record count disagrees with its
        bytes, a record that does not decode, or corrupt codec data (deflate,
        snappy CRC) is reported record by record instead of silently dropping or
        inventing alerts. ``"auto"`` (default) walks every block that declares
        more or fewer than one record and checks the codec data of all; a block
        of one record (how Rubin and brokers write heavy alerts) is left to the
        decoder, which fails on a count too high, while a count of 0 is walked:
        every single-bit corruption of such a count is still found, and only a
        block crafted to hide records after its one declared record would go
        unseen. ``True`` walks every block (about 4x slower on heavy alerts:
        ``benchmarks/README.md``); ``False`` walks none, for files you trust.
        Framing, sync markers and decoder failures are always checked.

    **format_options
        Passed to the format's reader (see its module in :mod:`lsstuk_kit.formats`).

    Returns
    -------
    AlertBatch or DaskAlerts
        ``sources`` has ``survey`` and ``broker`` (None for a survey's own
        stream) per row; brokers' additions (classifications, cross-matches,
        features) are further columns.

    Raises
    ------
    AlertFormatError
        On unreadable input when ``errors="raise"``: the only exception bad bytes
        can cause. It names the file (or message), the record and the field.
    FileNotFoundError
        If a path names nothing.

    Examples
    --------
    >>> from lsstuk_kit import read_alerts, sample_path
    >>> batch = read_alerts(sample_path())
    >>> bool(batch.sources[["ra", "dec", "band", "psfFlux"]].notna().all().all())
    True
    >>> small = read_alerts(sample_path(), columns=["ra", "dec", "psfFlux"])
    >>> "psfFlux" in small.history.columns
    True
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    if verify not in ("auto", True, False):
        raise ValueError(f"verify must be 'auto', True or False, not {verify!r}")
    from . import formats

    spec = formats.get(format) if format is not None else None
    if engine == "dask":
        from .scale import read_alerts_dask

        if spec is not None and spec.read is not None:
            raise ValueError(f"engine='dask' reads Avro alerts; read {format!r} with engine='pandas'")
        return read_alerts_dask(source, partition_size=partition_size, columns=columns, errors=errors,
                                cutouts=cutouts, max_uncompressed_bytes=max_uncompressed_bytes, verify=verify)
    if engine != "pandas":
        raise ValueError(f"engine must be 'pandas' or 'dask', not {engine!r}")

    refs, problems = _expand(source, max_uncompressed_bytes)
    reader = _Reader(columns, cutouts, errors, progress, workers, max_uncompressed_bytes, verify)
    reader.format = format
    reader.options = format_options
    if spec is not None and spec.read is None and spec.name != "kafka-wire":
        from .formats.avro import AVRO_SURVEYS

        reader.expect_survey = AVRO_SURVEYS[spec.name]
    try:
        for path, reason in problems:
            reader.fail(reason, path)
        avro, tables = [], []
        for ref in refs:
            k = len(reader.refs)
            reader.refs.append(ref)
            route = reader.route(ref, spec)
            if route is None:
                continue
            if route[0] == "avro":
                avro.append((k, ref))
            else:
                ref.fmt = route[1].name
                if ref.kind == "file":
                    st = os.stat(ref.path)
                    ref.stat = (st.st_size, st.st_mtime_ns)
                tables.append((k, ref, route[1]))
        units = reader.make_units([r for _, r in avro], keys=[k for k, _ in avro])
        parts = reader.make_parts(units)
        show = progress if progress is not None else len(parts) >= 50
        results = [r for got in _run(reader, parts, show) for r in got if r is not None]
        for k, ref, tspec in tables:
            results.extend(reader.read_table(k, ref, tspec))
        if tables and avro:
            results.sort(key=lambda r: int(r[4][0]) if len(r[4]) else 0)
        batch = _assemble(results, reader, columns)
    finally:
        reader.close()
    return batch


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
    history = hists[0] if len(hists) == 1 else pa.concat_tables(hists, promote_options="permissive")
    history = arrow_to_pandas(history, split_blocks=True)
    del hists
    objects = objs[0] if len(objs) == 1 else pd.concat([o for o in objs if len(o.columns)],
                                                          ignore_index=True, sort=False)
    ref_ids = np.concatenate(refs_l)
    rec_ids = np.concatenate(recs_l)
    names = sorted({k for c in cuts for k in c})
    cut = {}
    for k in names:
        chunks = []
        for c, s in zip(cuts, srcs):
            if k in c:
                arr = c[k]
                chunks.extend(arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr])
            else:
                chunks.append(pa.nulls(len(s), pa.binary()))
        chunks = [ch.cast(pa.binary()) for ch in chunks]
        cut[k] = pa.chunked_array(chunks, type=pa.binary()).combine_chunks()

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


def write_alerts(alerts, path, schema, *, codec="null"):
    """Write alert dicts to an Avro container file.

    Parameters
    ----------
    alerts : iterable of dict
        Alert records.
    path : str or path
        Output file; a name ending ``.gz`` is gzip-compressed.
    schema : dict
        Writer schema (e.g. :func:`lsstuk_kit.schema.load_rubin_schema`).
    codec : str
        Avro block codec (``"null"`` or ``"deflate"``).

    Returns
    -------
    int
        Number of alerts written.
    """
    parsed = fastavro.parse_schema(schema)
    alerts = list(alerts)
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as fh:
        fastavro.writer(fh, parsed, alerts, codec=codec)
    return len(alerts)
