"""Avro object-container plumbing: header, block index, splitting and wrapping.

An Avro container is ``Obj\\x01``, a metadata map (schema, codec), a 16-byte
sync marker, then blocks of ``count, size, data, sync``. Blocks are independent,
so a file can be cut at block boundaries into parts that decode in parallel, a
truncated tail can be located without decoding anything, and a list of
schemaless message bodies can be wrapped into one block of a valid container.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"Obj\x01"
SYNC_SIZE = 16


class ContainerError(ValueError):
    """The bytes are not a well-formed Avro container (header or block framing)."""


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
    #: set when the data stops inside a block or a sync marker does not match
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


def read_header(buf) -> tuple[dict, bytes, int]:
    """Parse a container header; return ``(metadata, sync, header_size)``."""
    if bytes(buf[:4]) != MAGIC:
        head = bytes(buf[:8])
        raise ContainerError(f"not an Avro container (starts with {head!r}, expected {MAGIC!r})")
    pos = 4
    meta = {}
    while True:
        count, pos = _read_long(buf, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, pos = _read_long(buf, pos)
        for _ in range(count):
            klen, pos = _read_long(buf, pos)
            key = bytes(buf[pos : pos + klen]).decode()
            pos += klen
            vlen, pos = _read_long(buf, pos)
            if pos + vlen > len(buf):
                raise ContainerError("header metadata runs past the end of the data")
            meta[key] = bytes(buf[pos : pos + vlen])
            pos += vlen
    sync = bytes(buf[pos : pos + SYNC_SIZE])
    if len(sync) != SYNC_SIZE:
        raise ContainerError("header ends before its sync marker")
    return meta, sync, pos + SYNC_SIZE


@functools.lru_cache(maxsize=64)
def parse_schema_text(raw: bytes) -> dict:
    """The schema of a container header, parsed once per distinct text.

    A night is hundreds of visit files with one schema; parsing its JSON for each
    file is a visible cost when the files are small. Treat the result as read-only.
    """
    return json.loads(raw)


@functools.lru_cache(maxsize=64)
def _sorted_text(raw: bytes) -> str:
    return json.dumps(json.loads(raw), sort_keys=True)


def schema_key(index) -> str:
    """A canonical text of the index's schema (JSON with sorted keys), cached per header text."""
    return _sorted_text(index.schema_raw) if index.schema_raw is not None else json.dumps(index.schema,
                                                                                             sort_keys=True)


def index_container(buf) -> ContainerIndex:
    """Index the header and blocks of a container held in ``buf`` (bytes or mmap)."""
    meta, sync, pos = read_header(buf)
    header_size = pos
    try:
        schema = parse_schema_text(meta["avro.schema"])
    except (KeyError, ValueError) as exc:
        raise ContainerError(f"header has no readable avro.schema ({exc})") from None
    codec = meta.get("avro.codec", b"null").decode() or "null"
    starts, ends, counts = [], [], []
    n = len(buf)
    truncated = None
    while pos < n:
        start = pos
        try:
            count, pos = _read_long(buf, pos)
            size, pos = _read_long(buf, pos)
        except ContainerError:
            truncated = f"data ends inside the header of block {len(starts)}"
            break
        if count < 0 or size < 0:
            truncated = f"block {len(starts)} has a negative record count or size"
            break
        end = pos + size + SYNC_SIZE
        if end > n:
            truncated = (
                f"data ends inside block {len(starts)} "
                f"({n - pos} of {size + SYNC_SIZE} bytes present)"
            )
            break
        if bytes(buf[pos + size : end]) != sync:
            truncated = f"sync marker after block {len(starts)} does not match the header's"
            break
        starts.append(start)
        ends.append(end)
        counts.append(count)
        pos = end
    return ContainerIndex(
        schema=schema,
        schema_raw=meta["avro.schema"],
        codec=codec,
        header_size=header_size,
        sync=sync,
        block_start=np.asarray(starts, np.int64),
        block_end=np.asarray(ends, np.int64),
        block_count=np.asarray(counts, np.int64),
        truncated=truncated,
    )


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
