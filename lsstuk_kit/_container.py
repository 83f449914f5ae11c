"""Avro object-container plumbing: header, block index, splitting and wrapping.

An Avro container is ``Obj\\x01``, a metadata map (schema, codec), a 16-byte
sync marker, then blocks of ``count, size, data, sync``. Blocks are independent,
so a file can be cut at block boundaries into parts that decode in parallel, a
truncated tail can be located without decoding anything, and a list of
schemaless message bodies can be wrapped into one block of a valid container.
"""

from __future__ import annotations

import functools
import io
import json
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"Obj\x01"
SYNC_SIZE = 16


class ContainerError(ValueError):
    """The bytes are not a well-formed Avro container (header, schema, block framing or codec data).

    ``bomb`` is set when the data would expand past the reader's limit.
    """

    def __init__(self, message, bomb=False):
        super().__init__(message)
        self.bomb = bomb


def _read_long(buf, pos):
    """Decode one zig-zag varint at ``pos``; return ``(value, new_pos)``."""
    shift = 0
    result = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise ContainerError("unexpected end of data inside a varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ContainerError("varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos


def _write_long(value):
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _write_bytes(data):
    return _write_long(len(data)) + data


@dataclass
class ContainerIndex:
    """Where a container's header and blocks lie, found without decoding records."""

    schema: dict
    codec: str
    header_size: int
    sync: bytes
    #: byte offset of each complete block, its end (after its sync) and record count
    block_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    block_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    block_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: where each block's (compressed) data starts, after its count and size
    block_data_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: per block: None, or what is wrong with it (its records are reported, later blocks still read)
    block_problem: list = field(default_factory=list)
    #: set when the framing is lost (data stops inside a block, a sync marker and the next block are
    #: both wrong): the records from there on cannot be counted
    truncated: str | None = None
    #: the header's schema text as stored
    schema_raw: bytes | None = None

    @property
    def n_records(self) -> int:
        """Records in the complete blocks."""
        return int(self.block_count.sum())

    def first_record(self) -> np.ndarray:
        """Index of the first record of each block."""
        return np.concatenate([[0], np.cumsum(self.block_count)[:-1]]).astype(np.int64)


_MAX_META_ENTRIES = 1024
_MAX_SCHEMA_DEPTH = 64


def _read_bytes(buf, pos, what):
    """A length-prefixed byte string at ``pos``, its length checked against the data left."""
    length, pos = _read_long(buf, pos)
    if length < 0:
        raise ContainerError(f"{what} has a negative length ({length})")
    if length > len(buf) - pos:
        raise ContainerError(f"{what} of {length} bytes runs past the end of the data")
    return bytes(buf[pos : pos + length]), pos + length


def read_header(buf) -> tuple[dict, bytes, int]:
    """Parse a container header; return ``(metadata, sync, header_size)``.

    Every varint is at most 10 bytes and every count and length is checked
    against the bytes that remain, so a hostile header fails at once.
    """
    if bytes(buf[:4]) != MAGIC:
        head = bytes(buf[:8])
        raise ContainerError(f"not an Avro container (starts with {head!r}, expected {MAGIC!r})")
    n = len(buf)
    pos = 4
    meta = {}
    while True:
        count, pos = _read_long(buf, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            block_size, pos = _read_long(buf, pos)
            if block_size < 0 or block_size > n - pos:
                raise ContainerError(f"header metadata block size {block_size} does not fit the data")
        # an entry is at least two bytes (two zero lengths)
        if count > (n - pos) // 2 or len(meta) + count > _MAX_META_ENTRIES:
            raise ContainerError(f"header declares {count} metadata entries, more than its bytes can hold")
        for _ in range(count):
            key, pos = _read_bytes(buf, pos, "header metadata key")
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                raise ContainerError(f"header metadata key {key[:40]!r} is not UTF-8") from None
            meta[key], pos = _read_bytes(buf, pos, f"header metadata value {key!r}")
    sync = bytes(buf[pos : pos + SYNC_SIZE])
    if len(sync) != SYNC_SIZE:
        raise ContainerError("header ends before its sync marker")
    return meta, sync, pos + SYNC_SIZE


@functools.lru_cache(maxsize=64)
def parse_schema_text(raw: bytes) -> dict:
    """The schema of a container header, parsed and checked once per distinct text.

    A night is hundreds of visit files with one schema; parsing its JSON for each
    file is a visible cost when the files are small. Treat the result as read-only.

    Raises
    ------
    ContainerError
        If the text is not JSON, or not a schema an alert can have (see :func:`check_schema`).
    """
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ContainerError(f"header's avro.schema is not valid JSON ({type(exc).__name__}: {exc})") from None
    check_schema(schema)
    return schema


_PRIMITIVE_MIN = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1,
                  "string": 1}


def check_schema(schema) -> None:
    """Refuse schemas no alert has and that could make a decoder misbehave.

    The top level must be a record whose ``fields`` are a list of named fields;
    nesting is at most 64 deep; named types are not recursive; arrays and maps
    of items that encode to zero bytes are refused (a hostile item count would
    make any decoder loop without reading a byte).

    Raises
    ------
    ContainerError
        Naming the field at fault.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ContainerError("the schema's top level is not an Avro record")
    named: dict = {}

    def min_size(s, path, depth, stack):
        if depth > _MAX_SCHEMA_DEPTH:
            raise ContainerError(f"schema nests deeper than {_MAX_SCHEMA_DEPTH} levels at {path}")
        if isinstance(s, str):
            if s in _PRIMITIVE_MIN:
                return _PRIMITIVE_MIN[s]
            if s in stack:
                raise ContainerError(f"schema type {s!r} is recursive (at {path}); alert schemas are not")
            if s not in named:
                short = {k.rsplit(".", 1)[-1]: v for k, v in named.items()}
                if s.rsplit(".", 1)[-1] in short:
                    return short[s.rsplit(".", 1)[-1]]
                raise ContainerError(f"schema names an unknown type {s!r} at {path}")
            return named[s]
        if isinstance(s, list):
            if not s:
                raise ContainerError(f"schema has an empty union at {path}")
            for k, branch in enumerate(s):
                min_size(branch, f"{path}[{k}]", depth + 1, stack)
            return 1
        if not isinstance(s, dict) or not isinstance(s.get("type"), (str, list, dict)):
            raise ContainerError(f"schema has a malformed type at {path}")
        t = s["type"]
        if t == "record" or t == "error":
            name = s.get("name")
            fields = s.get("fields")
            if not isinstance(name, str) or not isinstance(fields, list):
                raise ContainerError(f"schema record at {path} needs a name and a list of fields")
            full = name if "." in name or not s.get("namespace") else f"{s['namespace']}.{name}"
            stack = stack | {name, full}
            total = 0
            for f in fields:
                if not isinstance(f, dict) or not isinstance(f.get("name"), str) or "type" not in f:
                    raise ContainerError(f"schema record {name!r} has a field that is not a named, typed field")
                total += min_size(f["type"], f"{path}.{f['name']}" if path else f["name"], depth + 1, stack)
            named[name] = named[full] = total
            return total
        if t in ("array", "map"):
            items = s.get("items" if t == "array" else "values")
            if items is None:
                raise ContainerError(f"schema {t} at {path} has no item type")
            if min_size(items, f"{path}[]", depth + 1, stack) == 0:
                raise ContainerError(f"schema {t} at {path} holds items that encode to zero bytes; refused")
            return 1
        if t == "enum":
            if not isinstance(s.get("symbols"), list) or not isinstance(s.get("name"), str):
                raise ContainerError(f"schema enum at {path} needs a name and a list of symbols")
            named[s["name"]] = 1
            return 1
        if t == "fixed":
            size = s.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ContainerError(f"schema fixed at {path} needs a non-negative integer size")
            if isinstance(s.get("name"), str):
                named[s["name"]] = size
            return size
        return min_size(t, path, depth + 1, stack)

    if min_size(schema, "", 0, frozenset()) == 0:
        raise ContainerError("the schema's records can encode to zero bytes (no alert schema does); refused")


@functools.lru_cache(maxsize=64)
def _sorted_text(raw: bytes) -> str:
    return json.dumps(json.loads(raw), sort_keys=True)


def schema_key(index) -> str:
    """A canonical text of the index's schema (JSON with sorted keys), cached per header text."""
    return _sorted_text(index.schema_raw) if index.schema_raw is not None else json.dumps(index.schema,
                                                                                             sort_keys=True)


def _block_header(buf, pos, n):
    """``(count, size, data_start)`` of the block at ``pos``, or a reason it cannot be one."""
    try:
        count, p = _read_long(buf, pos)
        size, p = _read_long(buf, p)
    except ContainerError:
        return None, "data ends inside a block header"
    if count < 0 or size < 0:
        return None, f"negative record count ({count}) or size ({size})"
    if p + size + SYNC_SIZE > n:
        return None, f"data ends inside the block ({n - p} of {size + SYNC_SIZE} bytes present)"
    return (count, size, p), None


def index_container(buf) -> ContainerIndex:
    """Index the header and blocks of a container held in ``buf`` (bytes or mmap).

    A block whose sync marker does not match, but after which the next block is
    whole, is kept in the index with its problem in ``block_problem`` (its
    records are reported, the blocks after it are still read). Where the
    framing is lost the index stops and says why in ``truncated``.
    """
    meta, sync, pos = read_header(buf)
    header_size = pos
    raw = meta.get("avro.schema")
    if raw is None:
        raise ContainerError("header has no avro.schema")
    schema = parse_schema_text(raw)
    try:
        codec = meta.get("avro.codec", b"null").decode("utf-8") or "null"
    except UnicodeDecodeError:
        raise ContainerError(f"header's avro.codec {meta['avro.codec'][:40]!r} is not UTF-8") from None
    starts, data_starts, ends, counts, problems = [], [], [], [], []
    n = len(buf)
    truncated = None
    while pos < n:
        head, why = _block_header(buf, pos, n)
        if head is None:
            truncated = f"block {len(starts)}: {why}"
            break
        count, size, p = head
        # every record takes at least one byte (check_schema), and deflate or snappy expand ~1000x at most
        if count > (size if codec == "null" else 1100 * max(size, 1)):
            truncated = f"block {len(starts)} declares {count} records in {size} bytes, more than they can hold"
            break
        end = p + size + SYNC_SIZE
        problem = None
        if bytes(buf[p + size : end]) != sync:
            # keep going only if the next block (or the end of the data) is where it should be
            nxt, _ = _block_header(buf, end, n) if end < n else ((0, 0, end), None)
            if end < n and (nxt is None or bytes(buf[nxt[2] + nxt[1] : nxt[2] + nxt[1] + SYNC_SIZE]) != sync):
                truncated = f"the sync marker after block {len(starts)} does not match the header's"
                break
            problem = "its sync marker does not match the header's (the block is damaged)"
        starts.append(pos)
        data_starts.append(p)
        ends.append(end)
        counts.append(count)
        problems.append(problem)
        pos = end
    return ContainerIndex(
        schema=schema,
        schema_raw=raw,
        codec=codec,
        header_size=header_size,
        sync=sync,
        block_start=np.asarray(starts, np.int64),
        block_end=np.asarray(ends, np.int64),
        block_count=np.asarray(counts, np.int64),
        block_data_start=np.asarray(data_starts, np.int64),
        block_problem=problems,
        truncated=truncated,
    )


def block_data(buf, index: ContainerIndex, k: int, limit: int) -> bytes:
    """The decompressed data of block ``k``, at most ``limit`` bytes.

    Raises
    ------
    ContainerError
        If the codec's data is corrupt (deflate stream broken, snappy CRC
        mismatch), expands past ``limit``, or the codec is unknown.
    """
    p = int(index.block_data_start[k])
    raw = bytes(buf[p : int(index.block_end[k]) - SYNC_SIZE])
    codec = index.codec
    if codec == "null":
        return raw
    if codec == "deflate":
        d = zlib.decompressobj(-15)
        try:
            out = d.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise ContainerError(f"deflate data of block {k} is corrupt ({exc})") from None
        if len(out) > limit or d.unconsumed_tail:
            raise ContainerError(f"block {k} expands past max_uncompressed_bytes={limit}", bomb=True)
        if not d.eof:  # (bytes after the stream's end are allowed: some writers leave part of a checksum)
            raise ContainerError(f"deflate data of block {k} is incomplete")
        return out
    if codec == "snappy":
        try:
            import cramjam
        except ImportError:  # pragma: no cover - a core dependency
            raise ContainerError('snappy blocks need cramjam: pip install cramjam') from None
        if len(raw) < 4:
            raise ContainerError(f"snappy block {k} is shorter than its CRC")
        body, crc = raw[:-4], int.from_bytes(raw[-4:], "big")
        try:
            length, _ = _read_uvarint(body)
        except ContainerError:
            raise ContainerError(f"snappy block {k} has no readable length") from None
        if length > limit:
            raise ContainerError(f"block {k} expands past max_uncompressed_bytes={limit}", bomb=True)
        try:
            out = bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:  # noqa: BLE001 - cramjam raises its own DecompressionError
            raise ContainerError(f"snappy data of block {k} is corrupt ({exc})") from None
        if zlib.crc32(out) != crc:
            raise ContainerError(f"snappy block {k} fails its CRC check (the data is corrupt)")
        return out
    raise ContainerError(f"unsupported Avro codec {codec!r}")


def _read_uvarint(buf):
    result = shift = pos = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ContainerError("bad varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def compress_block(data: bytes, codec: str) -> bytes:
    """Compress block data with ``codec`` (``null``, ``deflate`` or ``snappy``)."""
    if codec == "null":
        return data
    if codec == "deflate":
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()
    import cramjam

    return bytes(cramjam.snappy.compress_raw(data)) + zlib.crc32(data).to_bytes(4, "big")


def write_part(buf, index: ContainerIndex, first_block: int, last_block: int, path) -> None:
    """Write the header plus blocks ``[first_block, last_block)`` of ``buf`` to ``path``."""
    with open(path, "wb") as out:
        out.write(buf[: index.header_size])
        if last_block > first_block:
            out.write(buf[index.block_start[first_block] : index.block_end[last_block - 1]])


def write_merged(pieces, path) -> None:
    """Write blocks of several containers of one schema and codec as one container.

    ``pieces`` is a list of ``(buf, index, first_block, last_block)``. The header
    (and its sync marker) is the first piece's; blocks of files with another
    sync marker get the first one's. One file decodes faster than many small
    ones (the per-file cost of the decoder dominates for small visit files).
    """
    buf0, index0 = pieces[0][0], pieces[0][1]
    sync = index0.sync
    with open(path, "wb") as out:
        out.write(buf0[: index0.header_size])
        for buf, index, a, b in pieces:
            if b <= a:
                continue
            if index.sync == sync:
                out.write(buf[index.block_start[a] : index.block_end[b - 1]])
                continue
            for k in range(a, b):
                out.write(buf[index.block_start[k] : index.block_end[k] - SYNC_SIZE])
                out.write(sync)


def make_header(schema_json: str, sync: bytes | None = None, codec: str = "null") -> bytes:
    """Build a container header for a schema given as JSON text."""
    sync = sync or os.urandom(SYNC_SIZE)
    meta = {"avro.schema": schema_json.encode(), "avro.codec": codec.encode()}
    out = bytearray(MAGIC)
    out += _write_long(len(meta))
    for key, value in meta.items():
        out += _write_bytes(key.encode()) + _write_bytes(value)
    out += _write_long(0) + sync
    return bytes(out)


def wrap_bodies(schema_json: str, bodies) -> bytes:
    """Wrap schemaless Avro bodies (all of one schema) into one container, one block."""
    sync = os.urandom(SYNC_SIZE)
    data = b"".join(bodies)
    return (
        make_header(schema_json, sync)
        + _write_long(len(bodies))
        + _write_long(len(data))
        + data
        + sync
    )


def wrap_messages(schema_json: str, bodies) -> bytes:
    """Wrap schemaless Avro bodies (all of one schema) into one container, one block per body.

    Each message is its own block, so the decoder checks that each decodes to exactly
    its length and a bad message costs no other.
    """
    sync = os.urandom(SYNC_SIZE)
    out = [make_header(schema_json, sync)]
    for body in bodies:
        out.append(_write_long(1) + _write_long(len(body)))
        out.append(body)
        out.append(sync)
    return b"".join(out)


@functools.lru_cache(maxsize=64)
def _skip_schemas(raw: bytes):
    """Fastavro's parsed writer schema and an empty reader schema of the same name (skip every field)."""
    import fastavro

    schema = parse_schema_text(raw)
    empty = {"type": "record", "name": schema["name"], "fields": []}
    if schema.get("namespace"):
        empty["namespace"] = schema["namespace"]
    return fastavro.parse_schema(schema), fastavro.parse_schema(empty)


@dataclass
class BlockCheck:
    """What walking a block's records found.

    ``good`` records (from the first) decode and end where the next begins;
    ``holds`` is how many records the bytes really hold when that differs from
    the declared count and the bytes are otherwise consistent (else ``None``);
    ``error`` says what stopped the walk (``None`` for a sound block);
    ``ends`` are the byte offsets where the good records end.
    """

    good: int
    holds: int | None
    error: str | None
    ends: list


def walk_block(data: bytes, count: int, schema_raw: bytes) -> BlockCheck:
    """Walk the ``count`` records of a block's (decompressed) data without building them.

    The records are skipped field by field with the writer schema (fastavro's
    compiled skip readers), and the walk must end exactly at the end of the
    data: a block that declares fewer records than it holds, or more, or whose
    record bytes are malformed, is found here.
    """
    import fastavro

    try:
        writer, skip = _skip_schemas(schema_raw)
    except Exception as exc:  # noqa: BLE001 - a schema fastavro refuses (e.g. a default its type cannot hold)
        return BlockCheck(0, None, f"the writer schema cannot be used to read it ({type(exc).__name__}: {exc})", [])
    bio = io.BytesIO(data)
    n = len(data)
    ends = []
    for j in range(count):
        start = bio.tell()
        if start == n:  # the bytes are used up: the declared count is too high
            return BlockCheck(j, j, f"the block declares {count} records but its bytes hold {j}", ends)
        try:
            fastavro.schemaless_reader(bio, writer, skip)
        except Exception as exc:  # noqa: BLE001 - any failure is a malformed record
            return BlockCheck(j, None, f"record does not decode ({type(exc).__name__}: {exc})".replace(
                " ()", ""), ends)
        if bio.tell() > n:
            return BlockCheck(j, None, "record runs past the end of its block", ends)
        ends.append(bio.tell())
    if bio.tell() == n:
        return BlockCheck(count, None, None, ends)
    # more bytes than the declared records: count what they hold, if they are records at all
    extra = 0
    while bio.tell() < n and extra <= n:
        try:
            fastavro.schemaless_reader(bio, writer, skip)
        except Exception:  # noqa: BLE001
            break
        extra += 1
    holds = count + extra if bio.tell() == n else None
    what = f"hold {holds}" if holds is not None else f"leave {n - ends[-1] if ends else n} bytes after them"
    return BlockCheck(count, holds, f"the block declares {count} records but its bytes {what}", ends)
