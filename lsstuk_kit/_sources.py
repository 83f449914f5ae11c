"""Stage 1 of reading: find the sources (paths, folders, globs, bytes, JSON, Kafka messages).

Turns whatever :func:`~lsstuk_kit.io.read_alerts` is given into :class:`SourceRef` objects (and the
``(path, reason)`` problems met on the way), with the gzip helpers, schema identification and the
sniffing (suffix, first bytes, parsed JSON) that tells the reader which format each source is.
"""

from __future__ import annotations

import glob as _glob
import io
import json
import mmap
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np

from . import _container, _remote
from .errors import AlertFormatError
from .schema import identify_schema, unpack_wire
from .surveys import atlas as _atlas
from .surveys import lsst as _lsst
from .surveys import ztf as _ztf

__all__ = ["SourceRef", "MAX_UNCOMPRESSED_BYTES"]

_SURVEYS = {"lsst": _lsst, "ztf": _ztf, "atlas": _atlas}
_AVRO_SUFFIXES = (".avro", ".avro.gz")
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
    and loops. A remote URL (``s3://bucket/night/``) is listed by its storage
    (:mod:`lsstuk_kit._remote`); ``file://`` is a local path.
    """
    if _remote.is_url(path):
        return _remote.find(path, suffixes)
    p = Path(_remote.local_path(path)).expanduser()
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


def _looks_json(item) -> bool:
    if isinstance(item, (bytes, bytearray, memoryview)):
        head = bytes(item[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")
        return head[:1] in (b"{", b"[")
    return isinstance(item, str) and item.lstrip()[:1] in ("{", "[")


def _expand(source, limit=MAX_UNCOMPRESSED_BYTES):
    """Sources as SourceRefs, and ``(path, reason)`` problems met while finding them."""
    if isinstance(source, str) and _looks_json(source):
        return [SourceRef(label="<json>", kind="bytes", data=source.encode("utf-8"), limit=limit)], []
    if isinstance(source, str) and _remote.is_url(source):
        # object storage or the web: listed and read into memory by ranged reads (never to local disk)
        urls, problems = _remote.find(source, _suffixes())
        searched = len(urls) != 1 or urls[0].rstrip("/") != source.rstrip("/")
        refs = []
        for url in urls:
            try:
                data = _remote.read_bytes(url, limit)
            except AlertFormatError as exc:
                problems.append((exc.file or _remote.redact(url), exc.reason))
                continue
            refs.append(SourceRef(label=_remote.redact(url), kind="bytes", data=data, limit=limit,
                                  from_folder=searched))
        return refs, problems
    if isinstance(source, str):
        source = _remote.local_path(source)
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
    else:  # in memory; a URL's label still gives its suffix
        sniff = Sniff(label=ref.label, head=ref.data[:4096], data=ref.data, from_folder=ref.from_folder,
                      suffix="" if ref.label.startswith("<") else _suffix_of(ref.label))
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
