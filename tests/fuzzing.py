"""Fuzz harness for ``read_alerts``: seeded mutations of real alert files, an oracle, a runner.

Shared by ``tests/test_fuzz.py`` (a few hundred variants, fast) and
``benchmarks/bench_fuzz.py`` (the longer campaign). Nothing here imports the kit
at module level; the reads happen in child processes.

What it does
------------
* **Inputs**: real Rubin and ZTF Avro files from ``../shared/real-alerts`` and the
  bundled simulated night (``lsstuk_kit.sample_path() / "alerts"``).
* **Variants**: a :class:`Spec` ``(input, kind, seed, via, gz)`` names one variant;
  :func:`build_variant` turns it into bytes, deterministically (``numpy`` seeded
  generator), so a failure is reproduced from its spec alone::

      python tests/fuzzing.py --one '{"input": "ztf/ZTF19acihgng.avro", "kind": "bitflip", "seed": 7}'

  Kinds: bit flips anywhere or in the header, random byte runs, truncations,
  inserted bytes, block-framing edits (count/size varints), duplicated, removed
  and swapped blocks, hand-made malformed headers (``header:<what>``), gzip
  streams mutated after compression (``gz_*``), and a folder holding one bad
  variant among good files (``folder``). ``via="bytes"`` passes the variant as
  bytes instead of a path; ``gz=True`` gzip-compresses the variant first.
* **Oracle** (:func:`account`): the contract the reader promises.

  - raise mode: the only exception is ``lsstuk_kit.AlertFormatError``;
  - skip mode: never raises; every record index ``0..N-1`` of the variant is
    either read or covered by a row of ``batch.errors`` (its own index, an
    open-ended row ``record = i`` whose reason says "unknown number of records",
    covering ``i`` and after, or a whole-source row ``record = None``); no index
    is both read and reported, none is read twice, none is ``>= N`` (phantom);
  - a read record whose key values differ from the original's record at the same
    index is a *value changed undetectably*: counted, not a failure (null-codec and
    deflate Avro have no checksum);
  - a raise-mode read that does not raise must read every record as well.

  ``N`` and the values come from the unmutated file (``N`` counted by fastavro,
  values by ``read_alerts`` on the original). Variants that are valid containers
  with other records (blocks removed, duplicated, swapped; a cut exactly at a
  block boundary) carry their own expected list of original indices.
* **Runner** (:func:`run_specs`): child processes (``python tests/fuzzing.py
  --worker``), fed one variant at a time, each with a wall-clock bound: a hang in
  C code (DuckDB, fastavro's Cython) cannot be interrupted in-process, so the child
  announces each variant before reading it and is killed when the bound passes;
  the variant it was on is the hanging one, its bytes can be saved, and a fresh
  child takes the rest.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-alerts"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "alerts"

#: the key values compared between a variant's record and the original's
KEYS = ("diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr")
#: the words of an open-ended error row (records from its index on are not read)
OPEN_ENDED = "unknown number of records"

MAGIC = b"Obj\x01"
SYNC = 16

#: failure categories (each must be 0), in table order
FAILURES = ("raw_exception", "skip_mode_raised", "hang", "crash", "silent_loss", "phantom", "read_and_reported",
            "good_files_lost", "valid_rejected", "baseline", "memory", "harness_error")


# =============================================================================== inputs
def default_inputs(real: Path | None = REAL, sample: bool = True, groups=None) -> dict[str, str]:
    """Input files by name (``"rubin/<file>"``, ``"ztf/<file>"``, ``"sample/<file>"``).

    Real inputs are left out when ``real`` is absent; ``groups`` keeps only some groups.
    """
    out: dict[str, str] = {}
    if real is not None and Path(real).is_dir():
        for group, sub in (("rubin", "lsst"), ("ztf", "ztf")):
            for p in sorted((Path(real) / sub).glob("*.avro")):
                out[f"{group}/{p.name}"] = str(p)
    if sample and SAMPLE.is_dir():
        for p in sorted(SAMPLE.glob("*.avro")):
            out[f"sample/{p.name}"] = str(p)
    if groups is not None:
        out = {k: v for k, v in out.items() if k.split("/")[0] in set(groups)}
    return out


def group_of(name: str) -> str:
    return name.split("/")[0]


# =============================================================================== avro bits
def zz(value: int) -> bytes:
    """Avro long (zig-zag varint) of any Python int (no 64-bit wrap: huge values stay huge)."""
    v = (value << 1) if value >= 0 else ((-value) << 1) - 1
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _long(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


@dataclass
class Layout:
    """Header and blocks of a well-formed container (parsed here, independent of the kit)."""

    meta: list  # [(key bytes, value bytes)]
    sync: bytes
    header_size: int
    blocks: list  # [(start, end, count, count_pos, size_pos, data_pos, size)]

    @property
    def block_first(self):
        out, k = [], 0
        for b in self.blocks:
            out.append(k)
            k += b[2]
        return out

    def meta_value(self, key: bytes, default=None):
        for k, v in self.meta:
            if k == key:
                return v
        return default


def parse_layout(data: bytes) -> Layout:
    """Parse a valid container's header and block framing (raises on anything odd)."""
    if data[:4] != MAGIC:
        raise ValueError("not an Avro container")
    pos, meta = 4, []
    while True:
        count, pos = _long(data, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, pos = _long(data, pos)
        for _ in range(count):
            n, pos = _long(data, pos)
            key = data[pos:pos + n]
            pos += n
            n, pos = _long(data, pos)
            meta.append((key, data[pos:pos + n]))
            pos += n
    sync = data[pos:pos + SYNC]
    header_size = pos + SYNC
    pos, blocks = header_size, []
    while pos < len(data):
        start = pos
        count, p1 = _long(data, pos)
        size, p2 = _long(data, p1)
        end = p2 + size + SYNC
        if data[p2 + size:end] != sync or count < 0 or size < 0:
            raise ValueError(f"block at {start} is not framed")
        blocks.append((start, end, count, pos, p1, p2, size))
        pos = end
    return Layout(meta, sync, header_size, blocks)


def encode_header(entries, sync: bytes, blocks=None) -> bytes:
    """``Obj\\x01`` + metadata map (``entries``: [(key, value)] bytes) + ``sync``.

    ``blocks`` optionally splits the entries into several map blocks: a list of
    ``(count_to_write, n_entries, size_mode)`` where size_mode is None (positive
    count) or "ok" / an int (negative count followed by that byte size).
    """
    out = bytearray(MAGIC)
    if blocks is None:
        blocks = [(len(entries), len(entries), None)] if entries else []
    k = 0
    for count, n, size_mode in blocks:
        body = b"".join(zz(len(key)) + key + zz(len(val)) + val for key, val in entries[k:k + n])
        k += n
        if size_mode is None:
            out += zz(count)
        else:
            out += zz(count) + zz(len(body) if size_mode == "ok" else int(size_mode))
        out += body
    out += zz(0) + sync
    return bytes(out)


# =============================================================================== specs
@dataclass(frozen=True)
class Spec:
    """One variant: input name, mutation kind, seed, how it is passed (path/bytes), gzip-wrapped."""

    input: str
    kind: str
    seed: int
    via: str = "path"  # "path" or "bytes"
    gz: bool = False  # gzip-compress the variant (after mutating)

    def key(self) -> str:
        extra = (" via=bytes" if self.via == "bytes" else "") + (" gz" if self.gz else "")
        return f"{self.kind} seed={self.seed} input={self.input}{extra}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class Built:
    data: bytes
    desc: str
    #: original record index for each record index of the variant (None: the original's 0..N-1)
    expected: list | None = None
    compressed: bool = False
    #: the mutation leaves a valid container (the reader must not reject it)
    valid: bool = False
    #: a record whose key values the mutation changed (value_flip: the harness must see it)
    changed_record: int | None = None
    #: the variant before gzip compression (``compressed``), else None
    plain: bytes | None = None


def _rng(spec: Spec, salt: str = "") -> np.random.Generator:
    return np.random.default_rng([spec.seed, zlib.crc32((spec.kind + salt).encode())])


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


BYTE_KINDS = ("bitflip", "bitflips", "header_bitflip", "byterun", "truncate", "truncate_small",
              "truncate_block", "insert", "blockhdr", "dup_block", "drop_block", "swap_blocks")
GZ_KINDS = ("gz_bitflip", "gz_byterun", "gz_truncate", "gz_insert")
HEADER_KINDS = (
    "varint_endless", "varint_endless_then_data", "keylen_endless", "count_negative_valid",
    "count_negative_bad_size", "count_negative_huge", "count_huge", "count_int64_min",
    "keylen_negative", "keylen_huge", "vallen_negative", "vallen_huge", "key_non_utf8",
    "schema_key_non_utf8", "codec_non_utf8", "codec_unknown", "schema_not_json", "schema_not_object",
    "fields_not_list", "fields_not_records", "schema_missing", "schema_twice", "schema_deep",
    "schema_fields_dropped", "schema_field_type_changed", "sync_short", "magic_only", "magic_wrong",
    "map_multiblock_valid", "loop_keylen", "loop_vallen", "varints_random",
)
ALL_KINDS = ("none", "value_flip") + BYTE_KINDS + GZ_KINDS + tuple(f"header:{h}" for h in HEADER_KINDS) + ("folder",)


def _flip(data: bytearray, rng, lo: int, hi: int, n: int):
    done = []
    for _ in range(n):
        off = int(rng.integers(lo, max(hi, lo + 1)))
        bit = int(rng.integers(0, 8))
        data[off] ^= 1 << bit
        done.append(f"{off}.{bit}")
    return done


def _mutate_bytes(kind: str, data: bytes, rng, layout: Layout | None) -> Built:
    """Byte-level mutations (also used on gzip streams, where ``layout`` is None)."""
    n = len(data)
    buf = bytearray(data)
    if kind == "bitflip":
        where = _flip(buf, rng, 0, n, 1)
        return Built(bytes(buf), f"bit flip at byte.bit {where[0]} of {n}")
    if kind == "bitflips":
        k = int(rng.integers(2, 17))
        where = _flip(buf, rng, 0, n, k)
        return Built(bytes(buf), f"{k} bit flips at byte.bit {','.join(where)} of {n}")
    if kind == "header_bitflip":
        hs = layout.header_size if layout else min(n, 64)
        k = int(rng.integers(1, 5))
        where = _flip(buf, rng, 0, hs, k)
        return Built(bytes(buf), f"{k} bit flips in the {hs}-byte header at byte.bit {','.join(where)}")
    if kind == "byterun":
        length = int(min(rng.geometric(1 / 12), 256))
        off = int(rng.integers(0, n))
        mode = ("random", "zeros", "ones")[int(rng.integers(0, 3))]
        length = min(length, n - off)
        fill = {"random": rng.integers(0, 256, length, dtype=np.uint8).tobytes(),
                "zeros": b"\x00" * length, "ones": b"\xff" * length}[mode]
        buf[off:off + length] = fill
        return Built(bytes(buf), f"{length} {mode} bytes written at offset {off} of {n}")
    if kind == "insert":
        length = int(rng.integers(1, 33))
        off = int(rng.integers(0, n + 1))
        buf[off:off] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        return Built(bytes(buf), f"{length} random bytes inserted at offset {off} of {n}")
    if kind in ("truncate", "truncate_small", "truncate_block"):
        if kind == "truncate":
            cut = int(rng.integers(0, n))
        elif kind == "truncate_small":
            cut = int(rng.integers(0, min(65, n)))
        else:
            ends = [layout.header_size] + [b[1] for b in layout.blocks] if layout else [n]
            cut = int(ends[int(rng.integers(0, len(ends)))] + (0 if rng.random() < 0.4 else rng.integers(-20, 4)))
            cut = max(0, min(cut, n - 1))
        out = Built(bytes(buf[:cut]), f"truncated to {cut} of {n} bytes")
        if layout is not None:
            ends = [b[1] for b in layout.blocks]
            if cut == layout.header_size:
                out.expected, out.valid = [], True
                out.desc += " (exactly after the header: a valid empty container)"
            elif cut in ends:
                k = ends.index(cut) + 1
                out.expected, out.valid = list(range(sum(b[2] for b in layout.blocks[:k]))), True
                out.desc += f" (exactly after block {k - 1}: a valid shorter container)"
        return out
    raise ValueError(f"unknown byte mutation {kind!r}")


def _block_edit(kind: str, data: bytes, rng, layout: Layout) -> Built:
    blocks, first = layout.blocks, layout.block_first
    nb = len(blocks)
    head, tail = data[:layout.header_size], data[blocks[-1][1]:] if blocks else b""
    pieces = [data[b[0]:b[1]] for b in blocks]
    recs = [list(range(f, f + b[2])) for f, b in zip(first, blocks)]
    if kind == "blockhdr":
        b = int(rng.integers(0, nb))
        start, end, count, cpos, spos, dpos, size = blocks[b]
        which = ("count", "size")[int(rng.integers(0, 2))]
        old = count if which == "count" else size
        choices = [old + 1, old - 1, 0, -1, old * 2, -old, 2**31, 2**62, -(2**62), 2**63 - 1]
        new = int(choices[int(rng.integers(0, len(choices)))])
        if new == old:
            new = old + 1
        piece = (zz(new) + zz(size) if which == "count" else zz(count) + zz(new)) + data[dpos:end]
        pieces[b] = piece
        return Built(head + b"".join(pieces) + tail,
                     f"block {b} (at offset {start}) {which} {old} -> {new}")
    if kind == "dup_block":
        b = int(rng.integers(0, nb))
        pieces.insert(b + 1, pieces[b])
        recs.insert(b + 1, recs[b])
        return Built(head + b"".join(pieces) + tail, f"block {b} of {nb} (at offset {blocks[b][0]}) duplicated",
                     expected=[i for r in recs for i in r])
    if kind == "drop_block":
        b = int(rng.integers(0, nb))
        del pieces[b], recs[b]
        return Built(head + b"".join(pieces) + tail, f"block {b} of {nb} (at offset {blocks[b][0]}) removed",
                     expected=[i for r in recs for i in r], valid=True)
    if kind == "swap_blocks":
        if nb < 2:
            return Built(data, "swap_blocks: only one block, unchanged", valid=True)
        a, b = sorted(int(x) for x in rng.choice(nb, 2, replace=False))
        pieces[a], pieces[b] = pieces[b], pieces[a]
        recs[a], recs[b] = recs[b], recs[a]
        return Built(head + b"".join(pieces) + tail, f"blocks {a} and {b} of {nb} swapped",
                     expected=[i for r in recs for i in r], valid=True)
    raise ValueError(kind)


def _value_flip(data: bytes, rng, layout: Layout) -> Built:
    """Flip one low bit of the ``ra`` or ``dec`` double of a block's first record (re-deflated if need be).

    The framing stays valid: with no checksum in the codec, the change cannot be
    detected by the reader; the harness must count it as a value changed.
    """
    import io
    import struct

    import fastavro

    b = int(rng.integers(0, len(layout.blocks)))
    start, end, count, cpos, spos, dpos, size = layout.blocks[b]
    codec = layout.meta_value(b"avro.codec", b"null").decode()
    rec = next(fastavro.reader(io.BytesIO(data[:layout.header_size] + data[start:end])))
    src = rec.get("diaSource") or rec.get("candidate") or {}
    fld = ("ra", "dec")[int(rng.integers(0, 2))]
    if not isinstance(src.get(fld), float) or codec not in ("null", "deflate"):
        return Built(data, f"value_flip: no {fld} double or codec {codec}: unchanged", valid=True)
    raw = bytearray(data[dpos:dpos + size] if codec == "null" else zlib.decompress(data[dpos:dpos + size], -15))
    off = raw.find(struct.pack("<d", src[fld]))
    if off < 0:
        return Built(data, f"value_flip: {fld} bytes not found: unchanged", valid=True)
    bit = int(rng.integers(0, 40))
    raw[off + bit // 8] ^= 1 << (bit % 8)
    if codec == "deflate":
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        raw = comp.compress(bytes(raw)) + comp.flush()
    block = zz(count) + zz(len(raw)) + bytes(raw) + layout.sync
    first = layout.block_first[b]
    out = Built(data[:start] + block + data[end:],
                f"bit {bit} of {fld} (= {src[fld]!r}) of record {first} flipped ({codec} block {b})")
    out.changed_record = first
    return out


def _schema_obj(layout: Layout) -> dict:
    return json.loads(layout.meta_value(b"avro.schema"))


def _header_fuzz(what: str, data: bytes, rng, layout: Layout) -> Built:
    """A hand-made header with one defect, followed by the original's blocks (same sync)."""
    sync = layout.sync
    body = data[layout.header_size:]
    schema = layout.meta_value(b"avro.schema")
    codec = layout.meta_value(b"avro.codec", b"null")
    entries = [(b"avro.schema", schema), (b"avro.codec", codec)]

    def hdr(ents=entries, blocks=None):
        return encode_header(ents, sync, blocks)

    def pick(options):
        return options[int(rng.integers(0, len(options)))]

    def with_schema(text):
        return hdr([(b"avro.schema", text if isinstance(text, bytes) else text.encode()), (b"avro.codec", codec)])

    valid = False
    if what == "varint_endless":
        k = int(rng.integers(10, 61))
        out, desc = MAGIC + bytes(0x80 | int(x) for x in rng.integers(0, 128, k)), \
            f"magic + {k} varint bytes all with the continuation bit, then end of data ({4 + k} bytes)"
    elif what == "varint_endless_then_data":
        k = int(rng.integers(10, 40))
        out, desc = MAGIC + b"\xff" * k + data[4:], f"magic + {k} bytes 0xff, then the original from byte 4"
    elif what == "keylen_endless":
        k = int(rng.integers(10, 40))
        out, desc = MAGIC + zz(1) + b"\xff" * k, f"map count 1, key length varint of {k} bytes 0xff, end of data"
    elif what == "count_negative_valid":
        out = hdr(blocks=[(-2, 2, "ok")])
        desc, valid = "map block count -2 with its correct byte size (legal Avro)", True
    elif what == "count_negative_bad_size":
        size = pick([-1, -(2**40), 2**62, 3, 0])
        out, desc = hdr(blocks=[(-2, 2, size)]), f"map block count -2 with byte size {size}"
    elif what == "count_negative_huge":
        c = pick([-(2**62), -(2**31), -(2**63 - 1)])
        out, desc = hdr(blocks=[(c, 2, "ok")]), f"map block count {c} (2 entries present)"
    elif what == "count_huge":
        c = pick([2**62, 2**31, 2**63 - 1, 3])
        out, desc = hdr(blocks=[(c, 2, None)]), f"map block count {c} (2 entries present)"
    elif what == "count_int64_min":
        ents = b"".join(zz(len(k)) + k + zz(len(v)) + v for k, v in entries)
        out = MAGIC + b"\xff" * 9 + b"\x01" + zz(len(ents)) + ents + zz(0) + sync
        desc = "map block count -2**63 (10-byte varint ff*9 01), then a byte size and the 2 entries"
    elif what in ("keylen_negative", "keylen_huge", "vallen_negative", "vallen_huge"):
        n = pick([-1, -7, -(2**40)]) if what.endswith("negative") else pick([2**31, 2**40, 2**62, 2**63 - 1])
        key, val = entries[0]
        if what.startswith("key"):
            entry = zz(n) + key + zz(len(val)) + val
        else:
            entry = zz(len(key)) + key + zz(n) + val
        out = MAGIC + zz(2) + entry + zz(len(b"avro.codec")) + b"avro.codec" + zz(len(codec)) + codec + zz(0) + sync
        desc = f"metadata {what.split('_')[0][:3]} length {n} in the first entry"
    elif what == "key_non_utf8":
        out, desc = hdr(entries + [(b"\xff\xfe\xc3(", b"x")]), "extra metadata key b'\\xff\\xfe\\xc3(' (not UTF-8)"
    elif what == "schema_key_non_utf8":
        out, desc = hdr([(b"avro.sch\xe9ma", schema), (b"avro.codec", codec)]), "key 'avro.sch\\xe9ma' (Latin-1)"
    elif what == "codec_non_utf8":
        out, desc = hdr([(b"avro.schema", schema), (b"avro.codec", b"\xff\xfe" + codec)]), "codec b'\\xff\\xfe'+codec"
    elif what == "codec_unknown":
        c = pick([b"zstandard", b"bzip2", b"xz", b"lz4", b"brotli", b"NULL", b"deflate ", b"\x00"])
        out, desc = hdr([(b"avro.schema", schema), (b"avro.codec", c)]), f"codec {c!r}"
    elif what == "schema_not_json":
        t = pick([b"{not json", b"", b"\xff\xfe{}", schema[: len(schema) // 2], b"{\"type\": \"record\""])
        out, desc = with_schema(t), f"schema text {t[:30]!r}{'...' if len(t) > 30 else ''} (not JSON)"
    elif what == "schema_not_object":
        t = pick(['[1, 2]', '"string"', 'null', '42', '["null", "long"]', '"bytes"', 'true', '{}'])
        out, desc = with_schema(t), f"schema JSON {t}"
    elif what == "fields_not_list":
        s = _schema_obj(layout)
        v = pick([5, "abc", {"name": "x"}, None, "DELETE"])
        if v == "DELETE":
            s.pop("fields", None)
        else:
            s["fields"] = v
        out, desc = with_schema(json.dumps(s)), f"schema 'fields' = {v!r}"
    elif what == "fields_not_records":
        s = _schema_obj(layout)
        v = pick([[1, 2], ["a", "b"], [None], [{"name": 1, "type": "long"}], [{"type": "long"}],
                  [{"name": "a"}], [[]], [{"name": "candidate", "type": "long"}, {"name": "diaSource"}]])
        s["fields"] = v
        out, desc = with_schema(json.dumps(s)), f"schema 'fields' = {json.dumps(v)}"
    elif what == "schema_missing":
        out, desc = hdr([(b"avro.codec", codec)]), "no avro.schema in the metadata"
    elif what == "schema_twice":
        out = hdr([(b"avro.schema", schema), (b"avro.codec", codec), (b"avro.schema", b'"string"')])
        desc = "avro.schema twice, the second '\"string\"'"
    elif what == "schema_deep":
        d = int(rng.integers(2000, 200001))
        t = pick(["[" * d, '{"type": ' * d])
        out, desc = with_schema(t), f"schema text {t[:12]!r}... nested {d} deep"
    elif what == "schema_fields_dropped":
        s = _schema_obj(layout)
        k = int(rng.integers(1, max(2, len(s["fields"]))))
        s["fields"] = s["fields"][:k]
        out, desc = with_schema(json.dumps(s)), f"schema keeps its first {k} of the fields (records longer)"
    elif what == "schema_field_type_changed":
        s = _schema_obj(layout)
        i = int(rng.integers(0, len(s["fields"])))
        t = pick(["long", "double", "string", "boolean", "null", ["null", "long"], "bytes"])
        old = s["fields"][i].get("type")
        s["fields"][i]["type"] = t
        out = with_schema(json.dumps(s))
        desc = f"schema field {s['fields'][i].get('name')!r} type {json.dumps(old)[:40]} -> {json.dumps(t)}"
    elif what == "sync_short":
        k = int(rng.integers(0, SYNC))
        full = hdr()
        out, desc = full[: len(full) - SYNC + k], f"header whose sync marker has {k} of 16 bytes, end of data"
        body = b""
    elif what == "magic_only":
        out, desc, body = MAGIC, "just the 4 magic bytes", b""
    elif what == "magic_wrong":
        m = pick([b"Obj\x02", b"OBJ\x01", b"Obj\x00", b"\x00\x00\x00\x00"])
        out, desc = m + data[4:layout.header_size], f"magic {m!r} instead of {MAGIC!r}"
    elif what == "loop_keylen":
        c = pick([2**62, 2**31, 2**63 - 1, -(2**62)])
        pre = zz(c) + (zz(int(rng.integers(0, 1000))) if c < 0 else b"")
        out = MAGIC + pre + zz(-1) + bytes(int(rng.integers(0, 32)))
        desc = f"map block count {c}, then key length -1 (a reader that moves back by the length loops)"
    elif what == "loop_vallen":
        c = pick([2**62, 2**31, 2**63 - 1])
        back = int(rng.integers(1, 4))
        out = MAGIC + zz(c) + zz(0) + zz(-back) + bytes(int(rng.integers(0, 32)))
        desc = f"map block count {c}, empty key, value length {-back}"
    elif what == "varints_random":
        nasty = [0, 1, 2, -1, -2, -3, -4, -8, 11, 2**31, 2**62, 2**63 - 1, -(2**62), -(2**63), 300]
        vals = [nasty[int(i)] for i in rng.integers(0, len(nasty), int(rng.integers(2, 9)))]
        mid = b"".join(zz(v) + (rng.integers(0, 256, int(rng.integers(0, 4)), dtype=np.uint8).tobytes()
                                if rng.random() < 0.3 else b"") for v in vals)
        tail = sync + body if rng.random() < 0.5 else b""
        out = MAGIC + mid + tail
        body = b""
        desc = f"metadata map varints {vals} (random bytes between some){' + sync + blocks' if tail else ''}"
    elif what == "map_multiblock_valid":
        out = hdr(blocks=[(1, 1, None), (-1, 1, "ok")])
        desc, valid = "metadata map split in two blocks (second with negative count; legal Avro)", True
    else:
        raise ValueError(f"unknown header mutation {what!r}")
    if what not in ("varint_endless", "varint_endless_then_data", "keylen_endless", "sync_short", "magic_only",
                    "loop_keylen", "loop_vallen", "varints_random"):
        out = out + body
    return Built(out, desc + f"; {len(out)} bytes", valid=valid)


def build_variant(spec: Spec, data: bytes) -> Built:
    """The bytes of ``spec``'s variant of the input whose bytes are ``data`` (deterministic)."""
    rng = _rng(spec)
    kind = spec.kind
    if kind == "none":
        built = Built(data, "unmutated", valid=True)
    elif kind.startswith("gz_"):
        gz = _gzip(data)
        built = _mutate_bytes(kind[3:], gz, rng, None)
        built.desc = f"gzip stream ({len(gz)} bytes): " + built.desc
        built.compressed = True
        built.plain = data
        built.expected = None
        built.valid = False
        return built
    elif kind.startswith("header:"):
        built = _header_fuzz(kind.split(":", 1)[1], data, rng, parse_layout(data))
    elif kind == "value_flip":
        built = _value_flip(data, rng, parse_layout(data))
    elif kind in ("blockhdr", "dup_block", "drop_block", "swap_blocks"):
        built = _block_edit(kind, data, rng, parse_layout(data))
    elif kind in BYTE_KINDS:
        built = _mutate_bytes(kind, data, rng, parse_layout(data))
    elif kind == "folder":
        inner = Spec(spec.input, FOLDER_INNER[int(rng.integers(0, len(FOLDER_INNER)))], spec.seed)
        built = build_variant(inner, data)
        built.desc = f"[{inner.kind}] {built.desc}"
    else:
        raise ValueError(f"unknown mutation kind {kind!r}")
    if spec.gz:
        built.plain = built.data
        built.data = _gzip(built.data)
        built.compressed = True
        built.desc += " (then gzip-compressed)"
    return built


FOLDER_INNER = ("bitflip", "bitflips", "byterun", "truncate", "insert", "blockhdr", "header:varint_endless",
                "header:keylen_negative", "header:fields_not_records", "header:codec_non_utf8", "header:schema_deep",
                "header:key_non_utf8", "header:count_negative_huge", "gz_bitflip", "gz_truncate")


# =============================================================================== planning
DEFAULT_WEIGHTS = {
    "bitflip": 14, "bitflips": 8, "header_bitflip": 9, "byterun": 10, "truncate": 7, "truncate_small": 3,
    "truncate_block": 3, "insert": 6, "blockhdr": 8, "dup_block": 3, "drop_block": 2, "swap_blocks": 2,
    "header": 15, "value_flip": 3, "gz_bitflip": 2, "gz_byterun": 2, "gz_truncate": 2, "gz_insert": 1, "folder": 2,
}


def plan(n: int, seed: int = 0, inputs=None, weights=None, p_bytes=0.3, p_gz=0.12,
         with_unmutated=True) -> list[Spec]:
    """A deterministic mix of ``n`` variants over ``inputs`` (names), groups taken in turn.

    The unmutated inputs come first (once each, by path and as bytes) when ``with_unmutated``:
    they must read with no failure at all, which is how the harness checks itself.
    """
    inputs = sorted(inputs or default_inputs())
    weights = dict(weights or DEFAULT_WEIGHTS)
    rng = np.random.default_rng([seed, 7919])
    kinds = list(weights)
    p = np.asarray([weights[k] for k in kinds], float)
    p /= p.sum()
    by_group = defaultdict(list)
    for name in inputs:
        by_group[group_of(name)].append(name)
    groups = sorted(by_group)
    specs = []
    if with_unmutated:
        for name in inputs:
            specs.append(Spec(name, "none", seed, "path"))
            specs.append(Spec(name, "none", seed, "bytes", gz=name == inputs[0]))
    header_turn = int(rng.integers(0, len(HEADER_KINDS)))
    for i in range(n):
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        if kind == "header":
            kind = f"header:{HEADER_KINDS[header_turn % len(HEADER_KINDS)]}"
            header_turn += 1
        names = by_group[groups[i % len(groups)]]
        name = names[int(rng.integers(0, len(names)))]
        via = "bytes" if (kind != "folder" and rng.random() < p_bytes) else "path"
        gz = kind not in ("folder",) and not kind.startswith("gz_") and rng.random() < p_gz
        specs.append(Spec(name, kind, seed * 1_000_003 + i, via, bool(gz)))
    return specs


# =============================================================================== oracle
def _norm(v):
    try:
        import pandas as pd

        if v is None or v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return "nan" if np.isnan(v) else float(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _norm_id(v):
    v = _norm(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return None if v is None else str(v)


def row_values(batch) -> tuple[list, list, list]:
    """``(record index, source index, key values)`` of each row of ``batch.sources``."""
    st = batch._store
    pos = np.asarray(batch._pos)
    rec = [int(x) for x in np.asarray(st.rec_ids)[pos]]
    ref = [int(x) for x in np.asarray(st.ref_ids)[pos]]
    src = batch.sources
    if len(src) != len(pos):
        raise AssertionError(f"batch.sources has {len(src)} rows for {len(pos)} positions")
    cols = {}
    for c in KEYS:
        if c in src.columns:
            cols[c] = src[c].tolist()
        elif src.index.name == c:
            cols[c] = list(src.index)
        else:
            cols[c] = [None] * len(src)
    vals = []
    for k in range(len(src)):
        vals.append(tuple(_norm_id(cols[c][k]) if c.endswith("Id") else _norm(cols[c][k]) for c in KEYS))
    return rec, ref, vals


def error_rows(batch) -> list[tuple]:
    """``(file, record or None, field, reason)`` of each row of ``batch.errors``."""
    import pandas as pd

    err = batch.errors
    missing = {"file", "record", "field", "reason"} - set(err.columns)
    if missing:
        raise AssertionError(f"batch.errors lacks columns {sorted(missing)}")
    out = []
    for f, r, fl, reason in zip(err["file"], err["record"], err["field"], err["reason"]):
        if r is None or (not isinstance(r, str) and pd.isna(r)):
            r = None
        else:
            r = int(r)
        out.append((None if f is None else str(f), r, fl, str(reason)))
    return out


def account(n: int, read: list, errors: list, expected_vals=None, all_vals=None) -> dict:
    """Check one source's accounting.

    Parameters
    ----------
    n : int
        Records the variant holds (indices ``0..n-1``).
    read : list of (index, values)
        Records read, by record index in the source.
    errors : list of (record or None, reason)
        The source's error rows.
    expected_vals : list, optional
        The expected key values of each index (None where unknown).
    all_vals : dict, optional
        values -> set of original indices (to tell misattributed records).

    Returns a dict: ``silent_loss`` (indices neither read nor reported), ``phantom``
    (indices read >= n or < 0, or read twice), ``read_and_reported``, ``changed``
    (read with other values), ``misattributed`` (values of another index), and
    ``loss_hint`` (an error row that looks open-ended but lacks the contract's words).
    """
    whole = any(r is None for r, _ in errors)
    opens = [r for r, reason in errors if r is not None and OPEN_ENDED in reason.lower()]
    open_from = min(opens) if opens else None
    exact = {r for r, _ in errors if r is not None}

    def covered(i):
        return whole or i in exact or (open_from is not None and i >= open_from)

    seen = Counter(i for i, _ in read)
    phantom = sorted({i for i in seen if i < 0 or i >= n} | {i for i, c in seen.items() if c > 1})
    both = sorted(i for i in seen if covered(i))
    lost = [i for i in range(n) if i not in seen and not covered(i)]
    changed, misattr = [], []
    if expected_vals is not None:
        for i, vals in read:
            if 0 <= i < n and expected_vals[i] is not None and tuple(vals) != tuple(expected_vals[i]):
                changed.append(i)
                if all_vals and tuple(vals) in all_vals:
                    misattr.append(i)
    hint = None
    if lost:
        for r, reason in errors:
            if r is not None and r <= lost[0] and OPEN_ENDED not in reason.lower() and re.search(
                    r"\bon\b|onwards|after|truncat|rest", reason):
                hint = f"row record={r} reads open-ended but lacks {OPEN_ENDED!r}: {reason[:120]}"
                break
    if lost and hint is None and not read and len(errors) == 1 and errors[0][0] is not None:
        r, reason = errors[0]
        hint = f"nothing read, error row record={r} looks like a whole-source error (record None): {reason[:120]}"
    return {"silent_loss": lost, "phantom": phantom, "read_and_reported": both,
            "changed": sorted(set(changed)), "misattributed": sorted(set(misattr)), "loss_hint": hint}


# =============================================================================== running one
def _where(exc: BaseException) -> str:
    """The deepest traceback frame in the kit, and the deepest overall."""
    tb = traceback.extract_tb(exc.__traceback__)
    kit = [f for f in tb if "lsstuk_kit" in f.filename]
    parts = []
    if kit:
        f = kit[-1]
        parts.append(f"{Path(f.filename).name}:{f.lineno} {f.name}")
    if tb and (not kit or tb[-1] is not kit[-1]):
        f = tb[-1]
        parts.append(f"{'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} {f.name}")
    return " -> ".join(parts)


class Context:
    """Inputs (bytes, baselines) cached in a worker process."""

    def __init__(self, inputs: dict, good_files=None, workdir=None):
        self.inputs = dict(inputs)
        self.good_files = list(good_files or [])
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lsstuk_fuzz_"))
        self._data: dict = {}
        self._base: dict = {}

    def data(self, name: str) -> bytes:
        if name not in self._data:
            self._data[name] = Path(self.inputs[name]).read_bytes()
        return self._data[name]

    def baseline(self, name: str) -> dict:
        """N (fastavro's count), the key values per index (read_alerts on the original), problems."""
        if name in self._base:
            return self._base[name]
        import io

        import fastavro

        import lsstuk_kit as lk

        out = {"n": None, "vals": None, "index": {}, "problems": [], "fatal": False}
        try:
            out["n"] = sum(1 for _ in fastavro.reader(io.BytesIO(self.data(name))))
        except Exception as exc:  # noqa: BLE001
            out["problems"].append(f"fastavro cannot count the records: {type(exc).__name__}: {exc}")
            out["fatal"] = True
        try:
            batch = lk.read_alerts(self.inputs[name], errors="skip")
            rec, _, vals = row_values(batch)
            errs = error_rows(batch)
            if out["n"] is not None:
                acc = account(out["n"], list(zip(rec, vals)), [(r, reason) for _, r, _, reason in errs])
                for k in ("silent_loss", "phantom", "read_and_reported"):
                    if acc[k]:
                        out["problems"].append(f"original: {k} {acc[k][:10]}")
                if errs:
                    out["problems"].append(f"original read with {len(errs)} error rows: {errs[0][3][:150]}")
                v = [None] * out["n"]
                for i, val in zip(rec, vals):
                    if 0 <= i < out["n"]:
                        v[i] = val
                out["vals"] = v
                for i, val in enumerate(v):
                    if val is not None:
                        out["index"].setdefault(val, set()).add(i)
        except Exception as exc:  # noqa: BLE001
            out["problems"].append(f"read_alerts fails on the original: {type(exc).__name__}: {exc}")
            out["fatal"] = True
        self._base[name] = out
        return out


def _read_both(source):
    """Read ``source`` in raise mode then in skip mode; keep the batches or the exceptions."""
    import lsstuk_kit as lk

    out = {}
    # raise mode
    try:
        batch = lk.read_alerts(source, errors="raise")
    except lk.AlertFormatError as exc:
        out["raise"] = {"outcome": "clear", "msg": _oneline(exc),
                        "named": all(hasattr(exc, a) for a in ("file", "record", "field", "reason"))}
    except Exception as exc:  # noqa: BLE001 - what the oracle is looking for
        out["raise"] = {"outcome": "raw", "exc": type(exc).__name__, "msg": _oneline(exc), "where": _where(exc)}
    else:
        out["raise"] = {"outcome": "clean", "batch": batch}
    # skip mode
    try:
        batch = lk.read_alerts(source, errors="skip")
    except Exception as exc:  # noqa: BLE001
        out["skip"] = {"outcome": "raw", "exc": type(exc).__name__, "msg": _oneline(exc), "where": _where(exc),
                       "clear": isinstance(exc, lk.AlertFormatError)}
    else:
        out["skip"] = {"outcome": "ok", "batch": batch}
    return out


def _oneline(exc, n=300):
    return " ".join(str(exc).split())[:n]


def _source_names(batch):
    refs = getattr(batch._store, "refs", None) or []
    names = []
    for r in refs:
        label = getattr(r, "path", None) or getattr(r, "label", None) or str(r)
        names.append(os.path.basename(str(label)))
    return names


def run_variant(spec: Spec, ctx: Context) -> dict:
    """Build, read (raise and skip mode) and judge one variant; return a JSON-able result."""
    t0 = time.perf_counter()
    res = {"spec": asdict(spec), "fail": [], "detail": {}, "info": {}}
    base = ctx.baseline(spec.input)
    # an original that cannot be read stops every variant of it; an original read with
    # error rows is the unmutated variant's failure only (the others compare what was read)
    if base["fatal"] or base["vals"] is None or (base["problems"] and spec.kind == "none"):
        res["fail"].append("baseline")
        res["detail"]["baseline"] = "; ".join(base["problems"]) or "no baseline values"
        if base["fatal"] or base["vals"] is None:
            res["seconds"] = time.perf_counter() - t0
            return res
    built = build_variant(spec, ctx.data(spec.input))
    res["desc"] = built.desc
    res["size"] = len(built.data)
    n0 = base["n"]
    emap = built.expected if built.expected is not None else list(range(n0))
    n = len(emap)
    exp_vals = [base["vals"][j] for j in emap]
    plain = built.plain if built.compressed else built.data
    if spec.via == "bytes" and spec.kind != "folder" and plain[:1] == b"\x00" and plain[:4] != MAGIC:
        # bytes starting with 0x00 are one Kafka wire-format message by read_alerts' definition
        n, exp_vals = 1, [None]
        res["info"]["as_wire_message"] = True
    res["n"] = n
    d = ctx.workdir / f"v{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    suffix = ".avro.gz" if built.compressed else ".avro"
    try:
        if spec.kind == "folder":
            bad = d / f"g1_bad{suffix}"
            bad.write_bytes(built.data)
            goods = [g for g in ctx.good_files if g != spec.input][:3]
            good_names = {}
            for k, g in enumerate(goods):
                dst = d / f"g{0 if k == 0 else k + 1}_{os.path.basename(ctx.inputs[g])}"
                dst.write_bytes(ctx.data(g))
                good_names[dst.name] = g
            source = str(d)
        else:
            if spec.via == "bytes":
                source = built.data
            else:
                p = d / f"variant{suffix}"
                p.write_bytes(built.data)
                source = str(p)
            bad, good_names = None, {}
        modes = _read_both(source)
        # ------------------------------------------------ raise mode
        r = modes["raise"]
        if r["outcome"] == "raw":
            res["fail"].append("raw_exception")
            res["detail"]["raw_exception"] = f"raise mode: {r['exc']}: {r['msg']} [{r['where']}]"
            res["info"]["raise"] = "raw"
        elif r["outcome"] == "clear":
            res["info"]["raise"] = "clear"
            res["info"]["raise_msg"] = r["msg"]
            if not r["named"]:
                res["info"]["unnamed_error"] = True
        else:
            res["info"]["raise"] = "clean"
            _judge(res, r.pop("batch"), n, exp_vals, base["index"], bad, good_names, ctx, "raise mode")
        # ------------------------------------------------ skip mode
        s = modes["skip"]
        if s["outcome"] == "raw":
            cat = "skip_mode_raised" if s["clear"] else "raw_exception"
            res["fail"].append(cat)
            res["detail"].setdefault(cat, f"skip mode: {s['exc']}: {s['msg']} [{s['where']}]")
            res["info"]["skip"] = "raw"
        else:
            res["info"]["skip"] = "ok"
            _judge(res, s.pop("batch"), n, exp_vals, base["index"], bad, good_names, ctx, "skip mode")
        if built.valid and spec.kind == "none" and (res["info"].get("raise") != "clean"
                                                      or res["info"].get("errors_rows")):
            res["fail"].append("valid_rejected")
            res["detail"]["valid_rejected"] = res["info"].get("raise_msg") or res["info"].get("first_error", "")
        elif built.valid and res["info"].get("raise") == "clear":
            res["info"]["valid_rejected"] = True
        cr = built.changed_record
        if cr is not None and cr in res.get("_skip_read", ()) and cr not in res.get("_skip_changed", ()):
            res["fail"].append("harness_error")
            res["detail"]["harness_error"] = f"record {cr} was changed by the mutation but the oracle saw no change"
    finally:
        shutil.rmtree(d, ignore_errors=True)
    res.pop("_skip_read", None)
    res.pop("_skip_changed", None)
    res["fail"] = sorted(set(res["fail"]), key=FAILURES.index)
    res["seconds"] = time.perf_counter() - t0
    return res


def _judge(res, batch, n, exp_vals, all_vals, bad, good_names, ctx, mode):
    """Accounting of one batch (either mode) into ``res``."""
    try:
        rec, ref, vals = row_values(batch)
        errs = error_rows(batch)
    except AssertionError as exc:
        res["fail"].append("phantom")
        res["detail"].setdefault("phantom", f"{mode}: {exc}")
        return
    if mode == "raise mode" and errs:
        res["info"]["raise_mode_error_rows"] = len(errs)
    if mode == "skip mode":
        res["info"]["errors_rows"] = len(errs)
        res["info"]["read"] = len(rec)
        if errs:
            res["info"]["first_error"] = f"record={errs[0][1]} {errs[0][3][:200]}"
    if bad is None:
        read = list(zip(rec, vals))
        rows = [(r, reason) for _, r, _, reason in errs]
        acc = account(n, read, rows, exp_vals, all_vals)
    else:
        names = _source_names(batch)
        if len(names) <= max(ref, default=-1):  # no usable refs: sources are the folder's files, sorted
            names = sorted(f for f in os.listdir(bad.parent) if f.endswith((".avro", ".avro.gz")))
        ok_names = len(names) > max(ref, default=-1)

        def src_of(k):
            return names[k] if ok_names else None

        read_bad = [(i, v) for i, k, v in zip(rec, ref, vals) if src_of(k) == bad.name]
        rows_bad = [(r, reason) for f, r, _, reason in errs if f is not None and os.path.basename(f) == bad.name]
        acc = account(n, read_bad, rows_bad, exp_vals, all_vals)
        lost_good = []
        read_ids = {v[0] for v in vals}
        for fname, gname in good_names.items():
            gb = ctx.baseline(gname)
            missing = [i for i, v in enumerate(gb["vals"] or []) if v is not None and v[0] not in read_ids]
            reported = [r for f, r, _, _ in errs if f is not None and os.path.basename(f) == fname]
            if missing or reported:
                lost_good.append(f"{fname}: {len(missing)} of {gb['n']} alerts not read, {len(reported)} error rows")
        if lost_good:
            res["fail"].append("good_files_lost")
            res["detail"].setdefault("good_files_lost", f"{mode}: " + "; ".join(lost_good))
        if not ok_names:
            res["info"]["no_source_names"] = True
    if mode == "skip mode" and bad is None:
        res["_skip_read"] = set(rec)
        res["_skip_changed"] = set(acc["changed"])
    for k in ("silent_loss", "phantom", "read_and_reported"):
        if acc[k]:
            res["fail"].append(k)
            msg = f"{mode}: {len(acc[k])} of {n} records, indices {acc[k][:8]}"
            if k == "silent_loss" and acc["loss_hint"]:
                msg += f" [{acc['loss_hint']}]"
                res["info"]["loss_wording_only"] = True
            if k in ("silent_loss", "read_and_reported") and errs:
                msg += f"; errors: {[(r, reason[:80]) for _, r, _, reason in errs[:3]]}"
            res["detail"].setdefault(k, msg)
    if acc["changed"]:
        key = "changed" if mode == "skip mode" else "changed_raise"
        res["info"][key] = len(acc["changed"])
        if acc["misattributed"]:
            res["info"]["misattributed"] = len(acc["misattributed"])


# =============================================================================== worker process
def _worker_main():  # pragma: no cover - runs in the child
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints (progress bars) must not mix with the protocol
    import warnings

    warnings.simplefilter("ignore")
    cfg = json.loads(sys.stdin.readline())
    if cfg.get("mem_limit"):
        import resource

        lim = int(cfg["mem_limit"])
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    ctx = Context(cfg["inputs"], cfg.get("good_files"), cfg.get("workdir"))
    import lsstuk_kit  # import before reporting ready

    proto.write(json.dumps({"ready": os.getpid(), "kit": str(Path(lsstuk_kit.__file__).parent)}) + "\n")
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        proto.write(json.dumps({"start": msg["id"]}) + "\n")
        try:
            res = run_variant(Spec(**msg["spec"]), ctx)
        except BaseException as exc:  # noqa: BLE001 - a harness error, reported as such
            res = {"spec": msg["spec"], "fail": ["harness_error"],
                   "detail": {"harness_error": "".join(traceback.format_exception(exc))[-2000:]}, "info": {}}
        res["id"] = msg["id"]
        proto.write(json.dumps(res, default=str) + "\n")


class _Child:
    """One worker process, fed one variant at a time."""

    def __init__(self, cfg: dict, tmp: Path, python: str, startup_timeout: float, kit_path=None):
        env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
        if kit_path:
            env["PYTHONPATH"] = os.pathsep.join([str(kit_path)] + [p for p in [env.get("PYTHONPATH")] if p])
        self.log_path = tmp / f"worker-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env, text=True, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.flush()
        self.done = 0
        msg = self._get(startup_timeout)
        self.kit = msg.get("kit") if isinstance(msg, dict) else None
        if not msg or "ready" not in msg:
            tail = self.tail()
            self.kill()
            raise RuntimeError(f"fuzz worker did not start: {msg}; log: {tail}")

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue
        self.lines.put(None)

    def _get(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return "timeout"

    def tail(self, n=1500):
        try:
            self.log.flush()
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def rss(self) -> int:
        """Resident memory of the worker, bytes (0 if unknown)."""
        try:
            with open(f"/proc/{self.proc.pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def run(self, vid: int, spec: Spec, timeout: float, max_rss: int | None = None) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"id": vid, "spec": asdict(spec)}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {"crash": self.proc.poll()}
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"hang": True}
            msg = self._get(min(left, 0.5))
            if msg == "timeout":
                if max_rss and self.rss() > max_rss:
                    return {"memory": self.rss()}
                continue
            if msg is None:
                self.proc.wait()
                return {"crash": self.proc.returncode}
            if "start" in msg:
                deadline = time.monotonic() + timeout
                continue
            if msg.get("id") == vid:
                self.done += 1
                return msg

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        self.log.close()

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def run_specs(specs, inputs: dict, *, workers: int = 2, timeout: float = 20.0, recycle: int = 250,
              good_files=None, save_dir=None, save_limit: int = 3, mem_limit: int | None = None,
              progress=None, python: str | None = None, startup_timeout: float = 120.0,
              kit_path=None, info: dict | None = None, max_rss: int | None = 6 * 2**30) -> list[dict]:
    """Run every spec in worker processes; return one result dict per spec, in order.

    ``timeout`` bounds each variant (both modes) in seconds: past it the worker is
    killed and the variant is a ``hang``. A worker that dies is a ``crash``; one whose
    resident memory passes ``max_rss`` bytes is killed, a ``memory`` failure.
    ``mem_limit`` (off by default) also caps the workers' address space (RLIMIT_AS):
    DuckDB then crashes rather than raising when it cannot map memory, so a crash
    under it says little about the reader.
    Failing variants (the first ``save_limit`` per failure signature) are written
    to ``save_dir`` with a ``.json`` holding their spec and what went wrong.
    ``progress(done, total)`` is called after each variant. ``kit_path`` puts another
    source tree of the kit first on the workers' ``PYTHONPATH`` (e.g. an export of
    main's HEAD, to measure "today's code" while the working tree changes); ``info``,
    if given, receives ``{"kit": <package folder the workers imported>}``.
    """
    specs = list(specs)
    python = python or sys.executable
    if good_files is None:
        good_files = default_good_files(inputs)
    tmp = Path(tempfile.mkdtemp(prefix="lsstuk_fuzz_run_"))
    cfg = {"inputs": inputs, "good_files": good_files, "workdir": str(tmp / "work"), "mem_limit": mem_limit}
    results: list = [None] * len(specs)
    todo: queue.Queue = queue.Queue()
    for i in range(len(specs)):
        todo.put(i)
    lock = threading.Lock()
    done = [0]
    errors: list = []

    def slot():
        child = None
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    break
                if child is None or child.done >= recycle:
                    if child is not None:
                        child.close()
                    child = _Child(cfg, tmp, python, startup_timeout, kit_path)
                    if info is not None:
                        info["kit"] = child.kit
                t0 = time.perf_counter()
                out = child.run(i, specs[i], timeout, max_rss)
                if "hang" in out or "crash" in out or "memory" in out:
                    what = next(k for k in ("hang", "crash", "memory") if k in out)
                    tail = child.tail()
                    child.kill()
                    child = None
                    detail = {"hang": f"no result within {timeout:.0f} s",
                              "crash": f"worker died (exit {out.get('crash')}): {tail[-600:]}",
                              "memory": f"worker killed at {out.get('memory', 0) / 2**30:.1f} GiB resident"}[what]
                    out = {"spec": asdict(specs[i]), "fail": [what], "info": {}, "seconds": time.perf_counter() - t0,
                           "detail": {what: detail}}
                    try:
                        out["desc"] = describe(specs[i], inputs)
                    except Exception as exc:  # noqa: BLE001
                        out["desc"] = f"(cannot rebuild: {exc})"
                results[i] = out
                with lock:
                    done[0] += 1
                    if progress:
                        progress(done[0], len(specs))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if child is not None:
                child.close()

    threads = [threading.Thread(target=slot) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        raise errors[0]
    if save_dir is not None:
        save_failures(results, inputs, save_dir, save_limit)
    return results


def default_good_files(inputs: dict) -> list[str]:
    """Good files for the folder check: two small ZTF files and one sample file when present."""
    names = sorted(inputs)
    ztf = [n for n in names if n.startswith("ztf/ZTF")][:2]
    sample = [n for n in names if n.startswith("sample/")][:2]
    return (ztf + sample)[:3]


def describe(spec: Spec, inputs: dict) -> str:
    return build_variant(spec, Path(inputs[spec.input]).read_bytes()).desc


# =============================================================================== reporting
def signature(res: dict, cat: str) -> str:
    """A short key grouping failures of one cause (category, exception, where)."""
    det = res.get("detail", {}).get(cat, "")
    if cat in ("raw_exception", "skip_mode_raised"):
        m = re.match(r"(\w+ mode): (\w+):.*\[(.*)\]$", det, re.S)
        return f"{cat}: {m.group(2)} at {m.group(3)}" if m else f"{cat}: {det[:80]}"
    if cat == "silent_loss" and res.get("info", {}).get("loss_wording_only"):
        why = ("whole-source error given a record index" if "whole-source" in res["detail"].get(cat, "")
               else f"open-ended row lacks '{OPEN_ENDED}'")
        return f"{cat} ({why}): {res['spec']['kind'].split(':')[0]}"
    return f"{cat}: {res['spec']['kind']}"


def failures(results) -> list[tuple[str, dict]]:
    """``(category, result)`` for every failure, in spec order."""
    return [(c, r) for r in results for c in r.get("fail", [])]


def save_failures(results, inputs: dict, save_dir, limit: int = 3) -> list[Path]:
    """Write the first ``limit`` variants of each failure signature to ``save_dir``."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    per = Counter()
    written = []
    for cat, res in failures(results):
        sig = signature(res, cat)
        if per[sig] >= limit:
            continue
        per[sig] += 1
        spec = Spec(**res["spec"])
        try:
            built = build_variant(spec, Path(inputs[spec.input]).read_bytes())
        except Exception:  # noqa: BLE001
            continue
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{cat}-{spec.kind}-{Path(spec.input).stem}-{spec.seed}")
        path = save_dir / (stem + (".avro.gz" if built.compressed else ".avro"))
        path.write_bytes(built.data)
        meta = {"spec": res["spec"], "category": cat, "signature": sig, "desc": built.desc,
                "detail": res.get("detail", {}), "reproduce": reproduce_command(spec)}
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(meta, indent=1, default=str))
        written.append(path)
    return written


def reproduce_command(spec: Spec) -> str:
    return f"python tests/fuzzing.py --one '{spec.to_json()}'"


def format_failures(results, limit: int = 12) -> str:
    """Lines naming the first failures (one per signature first), with how to reproduce them."""
    seen, lines = set(), []
    fl = failures(results)
    ordered = [x for x in fl if signature(x[1], x[0]) not in seen and not seen.add(signature(x[1], x[0]))]
    for cat, res in ordered[:limit]:
        spec = Spec(**res["spec"])
        lines.append(f"- {cat}: {spec.key()}\n    mutation: {res.get('desc', '?')}\n"
                     f"    {res.get('detail', {}).get(cat, '')[:400]}\n    reproduce: {reproduce_command(spec)}")
    if len(fl) > len(lines):
        by = Counter(signature(r, c) for c, r in fl)
        lines.append(f"({len(fl)} failures in all over {len({id(r) for _, r in fl})} variants; by cause:)")
        lines += [f"    {v:5d}  {k}" for k, v in by.most_common()]
    return "\n".join(lines)


COLUMNS = ("variants", "clean", "clear", "changed", "raw_exception", "skip_mode_raised", "hang", "crash", "memory",
           "silent_loss", "phantom", "read_and_reported", "good_files_lost", "valid_rejected", "baseline",
           "harness_error")
HEADINGS = {"variants": "tried", "clean": "read cleanly", "clear": "clear errors", "changed": "values changed",
            "raw_exception": "raw exc", "skip_mode_raised": "skip mode raised", "silent_loss": "silent loss",
            "read_and_reported": "read+reported", "good_files_lost": "good files lost",
            "valid_rejected": "valid rejected", "harness_error": "harness err"}


def tally(results, by=None) -> dict:
    """Counts per group (``by(result) -> key``; None: one row "all")."""
    rows: dict = defaultdict(Counter)
    for r in results:
        key = by(r) if by else "all"
        c = rows[key]
        c["variants"] += 1
        info = r.get("info", {})
        if info.get("raise") == "clean":
            c["clean"] += 1
        if info.get("raise") == "clear":
            c["clear"] += 1
        if info.get("changed") or info.get("changed_raise"):
            c["changed"] += 1
        for f in r.get("fail", []):
            c[f] += 1
    return rows


def format_table(results, by=None, title="") -> str:
    rows = tally(results, by)
    cols = [c for c in COLUMNS if c in ("variants", "clean", "clear", "changed") or any(rows[k][c] for k in rows)
            or c in ("raw_exception", "hang", "silent_loss", "phantom")]
    head = [title or "group"] + [HEADINGS.get(c, c) for c in cols]
    body = [[str(k)] + [str(rows[k][c]) for c in cols] for k in sorted(rows, key=str)]
    if len(rows) > 1:
        tot = Counter()
        for k in rows:
            tot.update(rows[k])
        body.append(["total"] + [str(tot[c]) for c in cols])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = "| " + " | ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)) + " |"
    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt.format(*head), sep] + [fmt.format(*b) for b in body])


# =============================================================================== command line
def _one(spec_json: str, write: str | None, inputs: dict):  # pragma: no cover - developer tool
    spec = Spec(**json.loads(spec_json))
    built = build_variant(spec, Path(inputs[spec.input]).read_bytes())
    print(f"{spec.key()}\nmutation: {built.desc}\n{len(built.data)} bytes")
    if write:
        Path(write).write_bytes(built.data)
        print(f"written to {write}")
    with tempfile.TemporaryDirectory(prefix="lsstuk_fuzz_") as work:
        res = run_variant(spec, Context(inputs, default_good_files(inputs), work))
    print(json.dumps({k: v for k, v in res.items() if k != "spec"}, indent=1, default=str))


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker_main()
    elif len(sys.argv) > 2 and sys.argv[1] == "--one":
        write = sys.argv[sys.argv.index("--write") + 1] if "--write" in sys.argv else None
        _one(sys.argv[2], write, default_inputs())
    else:
        print(__doc__)
        print("usage: python tests/fuzzing.py --one SPEC_JSON [--write FILE]")
