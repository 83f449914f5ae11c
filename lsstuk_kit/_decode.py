"""Stage 3 of reading: a compiled, columnar Avro decoder specialised to the writer schema.

The writer schema and a :class:`~lsstuk_kit._projection.Projection` are compiled
(once per schema and projection, cached) into a small program: one row of
``_OPS`` per Avro value, saying how to read it and where (if anywhere) to store
it. One numba-compiled function, :func:`_run_blocks`, walks the blocks of a
container once, record by record, following the program, and writes straight
into numpy column buffers: the alert's scalars (level 0) and the items of each
history list (one level per list, with the list's offsets per alert). Values
that were not asked for are skipped without being stored. The buffers become
Arrow arrays without a copy (strings are gathered into one buffer per column; cutout
bytes too, or, for the reader, left where they are as zero-copy
:class:`~lsstuk_kit._stamps.StampColumn` slices); the survey's ``to_frames`` makes the
kit's tables from them.

Compiled code reads untrusted bytes and numba checks no bounds, so the decoder
checks every read itself: each varint is at most 10 bytes, each length and
count is checked against the bytes left in the block, a union's branch against
its branches, an enum's index against its symbols, and every record must end
inside its block and the block's records exactly fill it. A record that breaks
any of these stops its block with an error code naming the field; the block's
rows are rolled back, so a bad record never leaves half a row, and the caller
salvages the good records of the block. Blocks are decoded without the GIL
(``nogil``), so threads decode parts of a file in parallel, and the compiled
function is cached on disk (``cache=True``): a fresh process loads it instead
of compiling it (see ``benchmarks/bench_read.py`` for the first-call cost).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from ._projection import Projection
from ._stamps import private_buffer
from .surveys._avrotypes import collect_names

__all__ = ["Decoder", "decoder_for", "decode_container", "DecodeError", "ERRORS"]

if sys.byteorder != "little":  # pragma: no cover - every platform numba ships wheels for is little-endian
    raise ImportError("the compiled Avro decoder needs a little-endian machine")

# -- opcodes: one per Avro value kind; FUSED + k is "[null, k]" read as one step
NULL, BOOL, INT, LONG, FLOAT, DOUBLE, STRING, BYTES, FIXED, ENUM = range(10)
OPT = 10  # nullable non-primitive: a = the byte of the null branch (0 or 2), b = where to go when null
UNION = 11  # a = number of branches, b = offset of its branch table
JUMP = 12  # a = target
ARRAY = 13  # a = output list (-1 none), b = the op after the array's END, c = 1 when nothing inside is stored
MAP = 14  # as ARRAY (the body starts with the key)
END = 15  # end of an array/map item: a = the ARRAY/MAP op
FUSED = 16

# storage classes of an output column
C_BOOL, C_W4, C_W8, C_BYTES = range(4)

#: error codes of :func:`_run_blocks` -> what they mean
ERRORS = {
    1: "the data ends inside a value",
    2: "a varint is longer than 10 bytes",
    3: "a negative length",
    4: "a union branch index out of range",
    5: "an enum index out of range",
    6: "an array or map declares more items than its bytes can hold",
    7: "the block's bytes end before its declared records",
    8: "bytes are left in the block after its declared records",
    9: "(internal) column buffers are full",
}
_FULL = 9


class DecodeError(ValueError):
    """A writer schema the compiled decoder cannot take (reported as the records' error)."""


@dataclass
class _Column:
    name: str  # output name, or the item field's name inside a list
    level: int
    cls: int
    slot: int  # row in the level's array of its class (for bytes: the position slot in w8)
    slot2: int  # bytes: the length slot in w4
    vslot: int  # row in the level's validity array
    arrow: object  # the Arrow type
    symbols: tuple | None = None  # enum symbols
    fixed: int = -1


_PRIM = {"null": NULL, "boolean": BOOL, "int": INT, "long": LONG, "float": FLOAT, "double": DOUBLE,
         "string": STRING, "bytes": BYTES}
_ARROW = {BOOL: (C_BOOL, pa.bool_()), INT: (C_W4, pa.int32()), LONG: (C_W8, pa.int64()),
          FLOAT: (C_W4, pa.float32()), DOUBLE: (C_W8, pa.float64()), STRING: (C_BYTES, pa.string()),
          BYTES: (C_BYTES, pa.binary()), FIXED: (C_BYTES, pa.binary()), ENUM: (C_W4, pa.string())}


class _Compiler:
    """Turn a writer schema and a projection into the decoder's program."""

    def __init__(self, schema, projection: Projection):
        self.named = collect_names(schema)
        self.ops: list = []  # [code, dest, a, b, c]
        self.paths: list = []  # the field path of each op, for error messages
        self.branches: list = []
        self.columns: list[_Column] = []
        self.counts = [[0, 0, 0, 0, 0]]  # per level: bool, w4, w8, validity, (unused)
        self.leaf = {o.path: o for o in projection.outputs if not o.list}
        self.lists = {o.path: o for o in projection.outputs if o.list}
        self.list_outputs: list = []  # per list id: (Output, level, [column indices])
        self.depth = 0
        self.max_depth = 1
        self.compile(schema, (), 0, None)

    def emit(self, code, path, dest=-1, a=0, b=0, c=0):
        self.ops.append([code, dest, a, b, c])
        self.paths.append(path)
        return len(self.ops) - 1

    def resolve(self, t):
        while isinstance(t, str) and t not in _PRIM:
            got = self.named.get(t) or self.named.get(t.rsplit(".", 1)[-1])
            if got is None:
                raise DecodeError(f"the schema names an unknown type {t!r}")
            t = got
        if isinstance(t, dict) and isinstance(t.get("type"), (dict, list)):
            return self.resolve(t["type"])
        if isinstance(t, dict) and t.get("type") in _PRIM:
            return t["type"]  # a primitive with attributes (a logical type, a Java string hint)
        return t

    def kind(self, t):
        t = self.resolve(t)
        if isinstance(t, str):
            return _PRIM[t], t
        if isinstance(t, list):
            return UNION, t
        tt = t.get("type")
        return {"record": "record", "error": "record", "array": ARRAY, "map": MAP, "enum": ENUM,
                "fixed": FIXED}.get(tt, None), t

    def dest(self, code, t, path, ctx):
        """Column index for a value at ``path`` (``ctx``: the list being filled, if any), or -1."""
        if code == NULL or ctx == (-1, ()):
            return -1
        if ctx is None:
            out = self.leaf.get(path)
            if out is None:
                return -1
            name, level = out.name, 0
        else:
            lid, base = ctx
            rel = path[len(base):]
            out, level, cols = self.list_outputs[lid]
            if len(rel) != 1 or (out.items is not None and rel[0] not in out.items):
                return -1
            name = rel[0]
        cls, arrow = _ARROW[code]
        counts = self.counts[level]
        col = _Column(name, level, cls, 0, -1, counts[3], arrow)
        counts[3] += 1
        if cls == C_BYTES:
            col.slot, col.slot2 = counts[C_W8], counts[C_W4]
            counts[C_W8] += 1
            counts[C_W4] += 1
            if code == FIXED:
                col.fixed = int(t["size"])
        else:
            col.slot = counts[cls]
            counts[cls] += 1
        if code == ENUM:
            col.symbols = tuple(t["symbols"])
        self.columns.append(col)
        if ctx is not None:
            self.list_outputs[ctx[0]][2].append(len(self.columns) - 1)
        return len(self.columns) - 1

    def compile(self, t, path, level, ctx):
        code, t = self.kind(t)
        label = ".".join(path) or "<alert>"
        if code is None:
            raise DecodeError(f"field {label} has a type the decoder does not know: {str(t)[:80]}")
        if code == "record":
            for f in t.get("fields", []):
                self.compile(f["type"], path + (f["name"],), level, ctx)
            return
        if code == UNION:
            branches = t
            if len(branches) == 2 and "null" in branches:
                null_at = branches.index("null")
                other, other_t = self.kind(branches[1 - null_at])
                if other in (BOOL, INT, LONG, FLOAT, DOUBLE, STRING, BYTES):
                    self.emit(FUSED + other, path, self.dest(other, other_t, path, ctx), a=2 * null_at)
                    return
                at = self.emit(OPT, path, a=2 * null_at)
                self.compile(branches[1 - null_at], path, level, ctx)
                self.ops[at][3] = len(self.ops)
                return
            if len(branches) == 1:
                self.compile(branches[0], path, level, ctx)
                return
            # a general union: walked, never stored
            at = self.emit(UNION, path, a=len(branches), b=len(self.branches))
            table = len(self.branches)
            self.branches.extend([0] * len(branches))
            jumps = []
            for k, br in enumerate(branches):
                self.branches[table + k] = len(self.ops)
                self.compile(br, path + (f"<branch {k}>",), level, None if ctx is None else (-1, ()))
                jumps.append(self.emit(JUMP, path))
            for j in jumps:
                self.ops[j][2] = len(self.ops)
            del at
            return
        if code in (ARRAY, MAP):
            out = self.lists.get(path) if ctx is None else None
            lid = -1
            item_ctx = None if ctx is None else (-1, ())
            if out is not None:
                lid = len(self.list_outputs)
                lvl = len(self.counts)
                self.counts.append([0, 0, 0, 0, 0])
                self.list_outputs.append((out, lvl, []))
                item_ctx = (lid, path)
            at = self.emit(code, path, a=lid)
            n_cols = len(self.columns)
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth + 1)
            if code == MAP:
                self.emit(STRING, path + ("<key>",))
            items = t["items"] if code == ARRAY else t["values"]
            if out is not None:
                self.compile_item(items, path, lvl, item_ctx)
            else:
                self.compile(items, path + ("[]",), level, item_ctx)
            self.depth -= 1
            self.emit(END, path, a=at)
            self.ops[at][3] = len(self.ops)
            self.ops[at][4] = 1 if len(self.columns) == n_cols and lid < 0 else 0
            return
        if ctx == (-1, ()):  # inside something not stored (a nested array, a general union)
            d = -1
        else:
            d = self.dest(code, t, path, ctx)
        if code == FIXED:
            self.emit(FIXED, path, d, a=int(t["size"]))
        elif code == ENUM:
            self.emit(ENUM, path, d, a=len(t["symbols"]))
        else:
            self.emit(code, path, d)

    def compile_item(self, items, path, lvl, ctx):
        code, t = self.kind(items)
        if code == "record":
            for f in t.get("fields", []):
                self.compile(f["type"], path + (f["name"],), lvl, ctx)
        elif code == UNION and len(t) == 2 and "null" in t and self.kind(t[1 - t.index("null")])[0] == "record":
            null_at = t.index("null")
            at = self.emit(OPT, path, a=2 * null_at)
            self.compile_item(t[1 - null_at], path, lvl, ctx)
            self.ops[at][3] = len(self.ops)
        else:  # items that are not records: walked, not stored
            self.compile(items, path + ("[]",), lvl, (-1, ()))


class Decoder:
    """A compiled program for one writer schema and projection; :meth:`decode` runs it over blocks."""

    #: first guess of block bytes per history item, for sizing the history buffers (they grow if short)
    BYTES_PER_ITEM_GUESS = 400

    def __init__(self, schema, projection: Projection):
        comp = _Compiler(schema, projection)
        self.projection = projection
        self.ops = np.asarray(comp.ops, np.int64).reshape(-1, 5)
        self.paths = comp.paths
        self.op_code = np.ascontiguousarray(self.ops[:, 0])
        self.op_dest = np.ascontiguousarray(self.ops[:, 1])
        self.op_a = np.ascontiguousarray(self.ops[:, 2])
        self.branches = np.asarray(comp.branches or [0], np.int64)
        self.columns = comp.columns
        self.counts = comp.counts
        self.list_outputs = comp.list_outputs
        self.n_levels = len(comp.counts)
        self.stack_depth = comp.max_depth + 2
        cols = comp.columns
        self.c_level = np.asarray([c.level for c in cols], np.int64)
        self.leaf_outputs = [o for o in projection.outputs if not o.list]
        self.col_of_output = {}
        for i, c in enumerate(cols):
            if c.level == 0:
                self.col_of_output[c.name] = i
        # outputs whose path the schema does not have are left out (as a SQL projection would fail to bind them)
        self.missing = [o.name for o in projection.outputs
                        if (not o.list and o.name not in self.col_of_output)
                        or (o.list and not any(lo[0].name == o.name for lo in comp.list_outputs))]

    # -- buffers: one flat array per storage class; each level's columns are a (columns, capacity) block of it
    def _layout(self, caps, old=None):
        """Flat buffers for capacities ``caps`` (per level), the old levels' rows copied in.

        Returns ``(flats, levels, c_off, c_off2, c_voff)``: the four flat arrays (bool,
        4-byte, 8-byte, validity), per level the 2-D views of them, and per column where
        its values, its lengths (bytes) and its validity start in the flat arrays.
        """
        dtypes = (np.uint8, np.int32, np.int64, np.uint8)
        sizes = [sum(self.counts[lv][k] * caps[lv] for lv in range(self.n_levels)) for k in range(4)]
        # (zeroed pages of their own, no huge pages: the rows past what the blocks fill are never
        # written, and so never take memory, though the Arrow arrays keep the buffers alive)
        flats = [private_buffer(max(n, 1) * np.dtype(dt).itemsize, huge=False, zeroed=True).view(dt)
                 for n, dt in zip(sizes, dtypes)]
        levels, bases = [], []
        at = [0, 0, 0, 0]
        for lv in range(self.n_levels):
            views, base = [], []
            for k in range(4):
                n = self.counts[lv][k]
                views.append(flats[k][at[k]: at[k] + n * caps[lv]].reshape(n, caps[lv]))
                base.append(at[k])
                at[k] += n * caps[lv]
            levels.append(views)
            bases.append(base)
        if old is not None:
            for new_v, old_v in zip(levels, old):
                for g, o in zip(new_v, old_v):
                    if o.size:
                        g[:, : o.shape[1]] = o
        cols = self.columns
        c_off = np.asarray([bases[c.level][C_W8 if c.cls == C_BYTES else c.cls] + c.slot * caps[c.level]
                            for c in cols], np.int64)
        c_off2 = np.asarray([bases[c.level][C_W4] + max(c.slot2, 0) * caps[c.level] for c in cols], np.int64)
        c_voff = np.asarray([bases[c.level][3] + c.vslot * caps[c.level] for c in cols], np.int64)
        return flats, levels, c_off, c_off2, c_voff

    def decode(self, buf, starts, ends, counts, stamps=None):
        """Decode blocks of one buffer; return ``(table, status)``.

        ``buf`` is a uint8 array; ``starts``, ``ends`` and ``counts`` give each
        block's data start and end in it and its declared record count. The table
        holds the records of the blocks that decoded whole, in order; ``status`` has,
        per block, ``(n_records_kept, error_code, record_in_block, field_path)``,
        ``error_code`` 0 for a sound block (see :data:`ERRORS`).

        With a dict ``stamps``, the bytes outputs named ``c:...`` (cutouts) are left
        out of the table and put in it as :class:`~lsstuk_kit._stamps.StampColumn`
        slices of ``buf`` (no copy: ``buf`` must stay unchanged while they live).
        """
        starts = np.ascontiguousarray(starts, np.int64)
        ends = np.ascontiguousarray(ends, np.int64)
        counts = np.ascontiguousarray(counts, np.int64)
        total = int(counts.sum())
        nbytes = int((ends - starts).sum())
        caps = [max(total, 1)] + [max(256, nbytes // self.BYTES_PER_ITEM_GUESS) for _ in self.list_outputs]
        flats, levels, c_off, c_off2, c_voff = self._layout(caps)
        n_lists = max(len(self.list_outputs), 1)
        list_start = np.zeros((n_lists, caps[0]), np.int64)
        list_len = np.zeros((n_lists, caps[0]), np.int64)
        list_valid = np.zeros((n_lists, caps[0]), np.uint8)
        counters = np.zeros(self.n_levels, np.int64)
        stack = np.zeros((self.stack_depth, 3), np.int64)
        nb = len(starts)
        kept = np.zeros(nb, np.int64)
        err = np.zeros(nb, np.int64)
        err_rec = np.zeros(nb, np.int64)
        err_op = np.zeros(nb, np.int64)
        b = 0
        while b < nb:
            b = _run_blocks(buf, starts, ends, counts, b, self.ops, self.op_code, self.op_dest, self.op_a,
                            self.branches, self.c_level, c_off, c_off2, c_voff, flats[0], flats[1], flats[2],
                            flats[3], np.asarray(caps, np.int64), counters,
                            list_start, list_len, list_valid, stack, kept, err, err_rec, err_op)
            if b < nb and err[b] == _FULL:
                # a history level ran out of room: grow it (by what the bytes so far predict) and go on
                err[b] = 0
                done = max(int(starts[b] - starts[0]), 1)
                for i in range(1, self.n_levels):  # (the block was rolled back: it may need more than is left)
                    new_cap = max(caps[i] * 2, int(counters[i] * nbytes / done * 1.1) + 256)
                    caps[i] = min(new_cap, caps[i] + nbytes)  # every item takes at least one byte
                flats, levels, c_off, c_off2, c_voff = self._layout(caps, levels)
        status = [(int(kept[k]), int(err[k]), int(err_rec[k]),
                   ".".join(str(x) for x in self.paths[int(err_op[k])]) if err[k] else None) for k in range(nb)]
        return self._table(levels, counters, list_start, list_len, list_valid, buf, stamps), status

    # -- Arrow
    def _array(self, col, lv, n, blocks_buf):
        bools, w4, w8, valid = lv
        v = valid[col.vslot, :n].view(bool)
        nulls = ~v
        has_nulls = bool(nulls.any())
        if col.cls == C_BOOL:
            return pa.array(bools[col.slot, :n].view(bool), mask=nulls if has_nulls else None)
        if col.cls == C_W4:
            if col.symbols is not None:
                sym = np.asarray(col.symbols, dtype=object)
                idx = w4[col.slot, :n]
                vals = np.where(v, sym[np.clip(idx, 0, max(len(sym) - 1, 0))] if len(sym) else None, None)
                return pa.array(vals, pa.string())
            vals = w4[col.slot, :n]
            if col.arrow == pa.float32():
                vals = vals.view(np.float32)
            return pa.array(vals, mask=nulls if has_nulls else None)
        if col.cls == C_W8:
            vals = w8[col.slot, :n]
            if col.arrow == pa.float64():
                vals = vals.view(np.float64)
            return pa.array(vals, mask=nulls if has_nulls else None)
        pos = w8[col.slot, :n]
        length = w4[col.slot2, :n].astype(np.int64)
        length[nulls] = 0
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(length, out=offsets[1:])
        data = np.empty(int(offsets[-1]), np.uint8)
        _gather(blocks_buf, pos, length, offsets, data)
        validity = pa.py_buffer(np.packbits(v, bitorder="little")) if has_nulls else None
        if offsets[-1] < 2**31:
            typ = col.arrow
            off = offsets.astype(np.int32)
        else:  # pragma: no cover - over 2 GiB of one column in one part
            typ = pa.large_string() if col.arrow == pa.string() else pa.large_binary()
            off = offsets
        # (text is not checked for UTF-8 here: the reader does it per column and names the records)
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(off), pa.py_buffer(data)],
                                     null_count=int(nulls.sum()))

    def _stamp_column(self, col, lv, n, buf):
        from ._stamps import StampColumn

        _, w4, w8, valid = lv
        length = w4[col.slot2, :n].astype(np.int64)
        length[valid[col.vslot, :n] == 0] = -1
        return StampColumn((buf,), np.zeros(n, np.int32), w8[col.slot, :n].copy(), length)

    def _table(self, levels, counters, list_start, list_len, list_valid, buf, stamps=None):
        n = int(counters[0])
        cols = {}
        for o in self.projection.outputs:
            if o.list:
                for lid, (lo, lvl, col_ids) in enumerate(self.list_outputs):
                    if lo.name != o.name:
                        continue
                    m = int(counters[lvl])
                    fields = [self._array(self.columns[c], levels[lvl], m, buf) for c in col_ids]
                    names = [self.columns[c].name for c in col_ids]
                    struct = pa.StructArray.from_arrays(fields, names) if fields else \
                        pa.array([{}] * m, pa.struct([]))
                    offsets = np.zeros(n + 1, np.int64)
                    np.cumsum(list_len[lid, :n], out=offsets[1:])
                    if n and not np.array_equal(offsets[:-1], list_start[lid, :n] - list_start[lid, 0]):
                        raise AssertionError("list offsets out of order")  # pragma: no cover - a decoder bug
                    mask = list_valid[lid, :n] == 0
                    arr = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), struct,
                                                   mask=pa.array(mask) if mask.any() else None)
                    cols[o.name] = arr
                continue
            c = self.col_of_output.get(o.name)
            if c is None:
                continue
            col = self.columns[c]
            if stamps is not None and o.name.startswith("c:") and col.cls == C_BYTES and col.arrow == pa.binary():
                stamps[o.name] = self._stamp_column(col, levels[0], n, buf)
                continue
            cols[o.name] = self._array(col, levels[0], n, buf)
        if not cols:
            return pa.table({"_": pa.nulls(n)}).drop_columns(["_"])
        return pa.table(cols)


@functools.lru_cache(maxsize=64)
def _decoder_cached(schema_text: str, projection: Projection) -> Decoder:
    import json

    return Decoder(json.loads(schema_text), projection)


def decoder_for(schema_text: str, projection: Projection) -> Decoder:
    """The compiled decoder for a writer schema (its canonical JSON text) and a projection, cached."""
    return _decoder_cached(schema_text, projection)


def decode_container(data, projection_of, columns=None, cutouts=True, limit=2**30):
    """Decode a whole container held in ``data`` (bytes or mmap) with a survey's projection.

    ``projection_of`` is a survey module's ``projection`` function. Returns the Arrow
    table of its outputs; raises ``ValueError`` naming the first bad block. For tests
    and benchmarks: :func:`lsstuk_kit.read_alerts` does the same with salvage and
    parallel parts.
    """
    from . import _container

    idx = _container.index_container(data)
    dec = decoder_for(_container.schema_key(idx), projection_of(idx.schema, columns, cutouts))
    if idx.codec == "null":
        buf = np.frombuffer(data, np.uint8)
        starts, ends = idx.block_data_start, idx.block_end - _container.SYNC_SIZE
    else:
        blocks = [_container.block_data(data, idx, k, limit) for k in range(len(idx.block_count))]
        lengths = np.asarray([len(b) for b in blocks], np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        buf = np.frombuffer(b"".join(blocks), np.uint8)
    table, status = dec.decode(buf, starts, ends, idx.block_count)
    for k, (_, code, rec, fld) in enumerate(status):
        if code:
            raise ValueError(f"block {k}, record {rec}: {ERRORS[code]} at {fld}")
    return table


# --------------------------------------------------------------------------- compiled code

@njit(cache=True, nogil=True)
def _gather(buf, pos, length, offsets, out):
    for i in range(len(pos)):
        n = length[i]
        if n:
            o = offsets[i]
            p = pos[i]
            out[o:o + n] = buf[p:p + n]


@njit(cache=True, nogil=True, inline="always")
def _varint(buf, pos, end):
    """Zig-zag varint at ``pos``: ``(value, new_pos)``; new_pos -1: data ends, -2: too long."""
    result = np.int64(0)
    shift = 0
    while True:
        if pos >= end:
            return np.int64(0), -1
        b = np.int64(buf[pos])
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            return np.int64(0), -2
    return ((result >> 1) & 0x7FFFFFFFFFFFFFFF) ^ -(result & 1), pos


@njit(cache=True, nogil=True, inline="always")
def _branch(buf, pos, end):
    """The branch byte of a two-branch union: ``(byte, new_pos, error code)`` (0 or 2: branch 0 or 1)."""
    if pos >= end:
        return 0, pos, 1
    br = buf[pos]
    if br != 0 and br != 2:  # the zig-zag varints of branches 0 and 1
        return br, pos + 1, 4
    return br, pos + 1, 0


@njit(cache=True, nogil=True, inline="always")
def _next_row(counters, caps, cur, lv):
    """Start a new row of level ``lv``; False when its buffers are full."""
    if counters[lv] >= caps[lv]:
        return False
    cur[lv] = counters[lv]
    counters[lv] += 1
    return True


@njit(cache=True, nogil=True)
def _run_blocks(buf, starts, ends, counts, first, ops, op_code, op_dest, op_a, branches, c_level, c_off, c_off2, c_voff,
                bools, w4, w8, valid, caps, counters, list_start, list_len, list_valid, stack,
                kept, err, err_rec, err_op):
    """Decode blocks ``first..`` of ``buf``; return the index of the block it stopped at (len: all done).

    Stops early only when a level's buffers are full (``err[b] == 9``, the block rolled back).
    """
    n_ops = ops.shape[0]
    n_levels = counters.shape[0]
    saved = np.zeros(n_levels, np.int64)
    cur = np.zeros(n_levels, np.int64)
    for b in range(first, len(starts)):
        pos = starts[b]
        end = ends[b]
        count = counts[b]
        for lv in range(n_levels):
            saved[lv] = counters[lv]
        code = 0
        rec = 0
        pc = 0
        while rec < count:
            if pos >= end:
                code = 7
                break
            if not _next_row(counters, caps, cur, 0):
                code = _FULL
                break
            for lid in range(list_valid.shape[0]):
                list_valid[lid, cur[0]] = 0
                list_len[lid, cur[0]] = 0
                list_start[lid, cur[0]] = counters[lid + 1] if lid + 1 < n_levels else 0
            sp = 0
            pc = 0
            while pc < n_ops:
                op = op_code[pc]
                d = op_dest[pc]
                if op >= FUSED:
                    br, pos, code = _branch(buf, pos, end)
                    if code:
                        break
                    if br == op_a[pc]:
                        pc += 1
                        continue
                    op -= FUSED
                if op <= ENUM:
                    # a primitive value
                    if op == FLOAT:
                        if pos + 4 > end:
                            code = 1
                            break
                        if d >= 0:
                            lv = c_level[d]
                            row = cur[lv]
                            v = (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16)
                                 | (np.int64(buf[pos + 3]) << 24))
                            w4[c_off[d] + row] = np.int32(v if v < 2147483648 else v - 4294967296)
                            valid[c_voff[d] + row] = 1
                        pos += 4
                    elif op == DOUBLE:
                        if pos + 8 > end:
                            code = 1
                            break
                        if d >= 0:
                            lv = c_level[d]
                            row = cur[lv]
                            v = np.int64(0)
                            for k in range(8):
                                v |= np.int64(buf[pos + k]) << (8 * k)
                            w8[c_off[d] + row] = v
                            valid[c_voff[d] + row] = 1
                        pos += 8
                    elif op == INT or op == LONG or op == ENUM:
                        v, pos = _varint(buf, pos, end)
                        if pos < 0:
                            code = 1 if pos == -1 else 2
                            break
                        if op == ENUM and (v < 0 or v >= op_a[pc]):
                            code = 5
                            break
                        if d >= 0:
                            lv = c_level[d]
                            row = cur[lv]
                            if op == LONG:
                                w8[c_off[d] + row] = v
                            else:
                                w4[c_off[d] + row] = np.int32(v & 0xFFFFFFFF) if (v & 0xFFFFFFFF) < 2147483648 \
                                    else np.int32((v & 0xFFFFFFFF) - 4294967296)
                            valid[c_voff[d] + row] = 1
                    elif op == STRING or op == BYTES or op == FIXED:
                        if op == FIXED:
                            n = op_a[pc]
                        else:
                            n, pos = _varint(buf, pos, end)
                            if pos < 0:
                                code = 1 if pos == -1 else 2
                                break
                            if n < 0:
                                code = 3
                                break
                        if n > end - pos:
                            code = 1
                            break
                        if d >= 0:
                            lv = c_level[d]
                            row = cur[lv]
                            w8[c_off[d] + row] = pos
                            w4[c_off2[d] + row] = np.int32(n)
                            valid[c_voff[d] + row] = 1
                        pos += n
                    elif op == BOOL:
                        if pos >= end:
                            code = 1
                            break
                        if d >= 0:
                            lv = c_level[d]
                            row = cur[lv]
                            bools[c_off[d] + row] = 1 if buf[pos] else 0
                            valid[c_voff[d] + row] = 1
                        pos += 1
                    pc += 1
                    continue
                if op == OPT:
                    br, pos, code = _branch(buf, pos, end)
                    if code:
                        break
                    pc = ops[pc, 3] if br == op_a[pc] else pc + 1
                    continue
                if op == JUMP:
                    pc = op_a[pc]
                    continue
                if op == UNION:
                    v, pos = _varint(buf, pos, end)
                    if pos < 0:
                        code = 1 if pos == -1 else 2
                        break
                    if v < 0 or v >= op_a[pc]:
                        code = 4
                        break
                    pc = branches[ops[pc, 3] + v]
                    continue
                if op == ARRAY or op == MAP or op == END:
                    if op == END:
                        at = ops[pc, 2]
                        left = stack[sp - 1, 1] - 1
                        stack[sp - 1, 1] = left
                        if left > 0:
                            lid = ops[at, 2]
                            if lid >= 0 and not _next_row(counters, caps, cur, lid + 1):
                                code = _FULL
                                break
                            pc = at + 1
                            continue
                    else:
                        at = pc
                    # read the next block of items (a new array, or the end of a block of items)
                    lid = ops[at, 2]
                    while True:
                        n, pos = _varint(buf, pos, end)
                        if pos < 0:
                            code = 1 if pos == -1 else 2
                            break
                        if n < 0:
                            n = -n
                            size, pos = _varint(buf, pos, end)
                            if pos < 0:
                                code = 1 if pos == -1 else 2
                                break
                            if size < 0 or size > end - pos:
                                code = 3 if size < 0 else 1
                                break
                            if ops[at, 4] == 1 and n > 0:
                                pos += size  # nothing inside is stored: skip the block of items whole
                                continue
                        if n > end - pos:
                            code = 6
                            break
                        break
                    if code:
                        break
                    if op != END:
                        if lid >= 0:
                            list_start[lid, cur[0]] = counters[lid + 1]
                            list_valid[lid, cur[0]] = 1
                        stack[sp, 0] = at
                        stack[sp, 1] = n
                        sp += 1
                    else:
                        stack[sp - 1, 1] = n
                    if n == 0:
                        sp -= 1
                        if lid >= 0:
                            list_len[lid, cur[0]] = counters[lid + 1] - list_start[lid, cur[0]]
                        pc = ops[at, 3]
                        continue
                    if lid >= 0 and not _next_row(counters, caps, cur, lid + 1):
                        code = _FULL
                        break
                    pc = at + 1
                    continue
                pc += 1  # NULL
            if code:
                break
            rec += 1
        if code == 0 and pos != end:
            code = 8
        if code:
            # roll the block back: no half rows, and the validity of the rows it wrote is cleared
            for d in range(c_level.shape[0]):
                lv = c_level[d]
                for r in range(saved[lv], min(counters[lv], caps[lv])):
                    valid[c_voff[d] + r] = 0
            for lv in range(n_levels):
                counters[lv] = saved[lv]
            err[b] = code
            err_rec[b] = rec
            err_op[b] = pc if pc < n_ops else 0
            kept[b] = 0
            if code == _FULL:
                return b
        else:
            kept[b] = count
    return len(starts)
