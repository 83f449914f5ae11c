"""Cutout bytes kept where the decoder found them: zero-copy slices of the decoded blocks.

A cutout is 10-100 KB of FITS that a read rarely needs all of, so the reader does not
gather every stamp into a new buffer (memory-bound, and most of the cost of reading light
alerts). A :class:`StampColumn` holds, per alert, which buffer, where in it and how long;
the buffers are the blocks' bytes the batch owns: a private copy of the file's bytes
(read with ``pread``, never a memory map of the file, so a file truncated or rewritten
after the read cannot crash the process) or the decompressed blocks. The reader releases
the pages of those buffers that hold no stamp (:func:`private_buffer`, :func:`trim`), so a
batch keeps about the stamps' own bytes.

A column behaves like the ``pyarrow.BinaryArray`` it stands for where the kit uses one:
``len``, ``null_count``, ``take``, ``[i].as_py()``, ``to_pylist``, ``cast`` and
``pyarrow.array(col)`` (both materialise), :meth:`to_arrow`.
"""

from __future__ import annotations

import mmap

import numpy as np
import pyarrow as pa

__all__ = ["StampColumn", "private_buffer", "trim", "fits_heads_ok"]

_PAGE = mmap.PAGESIZE
_SMALL = 2**20


class _PrivateMap(mmap.mmap):
    """A private anonymous mapping made by :func:`private_buffer` (the only memory :func:`trim` releases)."""


def private_buffer(n: int, huge: bool = True, zeroed: bool = False) -> np.ndarray:
    """A writable uint8 array of ``n`` bytes in memory of its own (page-aligned, releasable by :func:`trim`).

    ``huge``: ask for transparent huge pages (a buffer that is written whole); without them,
    pages never written take no memory (a buffer sized for more than it may hold, as the
    decoder's column buffers are). A map reads as zeros until written; below 1 MiB the buffer
    is an ordinary array, zeroed only if ``zeroed``.
    """
    if n <= 0:
        return np.zeros(0, np.uint8)
    if n < _SMALL:  # (a small container's bytes: a map of its own is not worth it, and there is little to release)
        return np.zeros(n, np.uint8) if zeroed else np.empty(n, np.uint8)
    try:
        mm = _PrivateMap(-1, n, flags=mmap.MAP_PRIVATE)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no anonymous private maps
        return np.zeros(n, np.uint8) if zeroed else np.empty(n, np.uint8)
    if huge and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except (OSError, ValueError):  # pragma: no cover - advice only
            pass
    return np.frombuffer(mm, np.uint8)


def _mapping(buf):
    """The private mapping ``buf`` spans whole (made by :func:`private_buffer`), else ``None``."""
    base = getattr(buf, "base", None)
    if isinstance(base, memoryview) and isinstance(base.obj, _PrivateMap) and len(buf) == len(base.obj):
        return base.obj
    return None


def trim(buf, columns) -> None:
    """Release the pages of a :func:`private_buffer` that no stamp of ``columns`` lies in.

    Those pages read back as zeros afterwards: call it once nothing but the stamps will be
    read from ``buf`` (the strings and numbers were copied out of it).
    """
    mm = _mapping(buf)
    if mm is None or not hasattr(mmap, "MADV_DONTNEED") or len(buf) < 4 * _PAGE:
        return
    n_pages = (len(buf) + _PAGE - 1) // _PAGE
    edge = np.zeros(n_pages + 1, np.int32)
    for col in columns:
        for b, owner in enumerate(col.bufs):
            if owner is not buf:
                continue
            sel = (col.bid == b) & (col.length > 0)
            pos, length = col.pos[sel], col.length[sel]
            np.add.at(edge, pos // _PAGE, 1)
            np.add.at(edge, (pos + length - 1) // _PAGE + 1, -1)
    keep = np.cumsum(edge[:-1]) > 0
    # runs of pages no stamp touches
    change = np.flatnonzero(np.diff(np.concatenate([[True], keep, [True]]).astype(np.int8)))
    for lo, hi in zip(change[::2], change[1::2]):
        start, stop = int(lo) * _PAGE, min(int(hi) * _PAGE, len(mm))
        if stop - start >= _PAGE:
            try:
                mm.madvise(mmap.MADV_DONTNEED, start, stop - start)
            except (OSError, ValueError):  # pragma: no cover - advice only
                return


class StampColumn:
    """Cutout bytes as ``(buffer, position, length)`` per alert (length -1: null); see the module."""

    type = pa.binary()

    def __init__(self, bufs, bid, pos, length):
        self.bufs = tuple(bufs)
        self.bid = np.asarray(bid, np.int32)
        self.pos = np.asarray(pos, np.int64)
        self.length = np.asarray(length, np.int64)

    # -- construction
    @classmethod
    def nulls(cls, n: int) -> StampColumn:
        return cls((), np.zeros(n, np.int32), np.zeros(n, np.int64), np.full(n, -1, np.int64))

    @classmethod
    def concat(cls, cols) -> StampColumn:
        cols = list(cols)
        bufs, ids, bid = [], {}, []
        for c in cols:
            remap = np.zeros(max(len(c.bufs), 1), np.int32)
            for k, b in enumerate(c.bufs):
                if id(b) not in ids:
                    ids[id(b)] = len(bufs)
                    bufs.append(b)
                remap[k] = ids[id(b)]
            bid.append(remap[c.bid] if len(c.bufs) else np.zeros(len(c), np.int32))
        if not cols:
            return cls.nulls(0)
        return cls(bufs, np.concatenate(bid), np.concatenate([c.pos for c in cols]),
                   np.concatenate([c.length for c in cols]))

    # -- the BinaryArray surface the kit uses
    def __len__(self) -> int:
        return len(self.length)

    def __repr__(self) -> str:
        return f"<StampColumn: {len(self)} cutouts, {self.null_count} null, {self.nbytes_data} bytes>"

    @property
    def null_count(self) -> int:
        return int((self.length < 0).sum())

    @property
    def nbytes_data(self) -> int:
        return int(np.maximum(self.length, 0).sum())

    @property
    def nbytes(self) -> int:
        return self.nbytes_data + len(self) * 20

    def is_null(self):
        return pa.array(self.length < 0)

    def value(self, i: int):
        """The bytes of row ``i`` (``None`` if null)."""
        n = int(self.length[i])
        if n < 0:
            return None
        p = int(self.pos[i])
        return self.bufs[int(self.bid[i])][p:p + n].tobytes()

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of bounds for a column of {len(self)}")
        return pa.scalar(self.value(int(i) % len(self)), pa.binary())

    def take(self, indices) -> StampColumn:
        if isinstance(indices, (pa.Array, pa.ChunkedArray)):
            if indices.null_count:
                return self.to_arrow().take(indices)
            indices = indices.to_numpy(zero_copy_only=False)
        idx = np.asarray(indices)
        if idx.dtype == bool:
            raise TypeError("take needs integer indices")
        idx = idx.astype(np.int64, copy=False)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of bounds for a column of {len(self)}")
        return StampColumn(self.bufs, self.bid[idx], self.pos[idx], self.length[idx])

    def filter(self, mask) -> StampColumn:
        if isinstance(mask, (pa.Array, pa.ChunkedArray)):
            mask = mask.to_numpy(zero_copy_only=False)
        return self.take(np.flatnonzero(np.asarray(mask, bool)))

    def to_arrow(self) -> pa.Array:
        """The cutouts as a ``pyarrow.BinaryArray`` (their bytes gathered into one buffer)."""
        from ._decode import _gather

        n = len(self)
        valid = self.length >= 0
        length = np.where(valid, self.length, 0)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(length, out=offsets[1:])
        data = np.empty(int(offsets[-1]), np.uint8)
        for b, buf in enumerate(self.bufs):
            sel = np.flatnonzero((self.bid == b) & (length > 0))
            if len(sel):
                _gather(buf, self.pos[sel], length[sel], offsets[sel], data)
        nulls = n - int(valid.sum())
        mask = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        if offsets[-1] < 2**31:
            return pa.Array.from_buffers(pa.binary(), n, [mask, pa.py_buffer(offsets.astype(np.int32)),
                                                          pa.py_buffer(data)], null_count=nulls)
        return pa.Array.from_buffers(pa.large_binary(), n, [mask, pa.py_buffer(offsets), pa.py_buffer(data)],
                                     null_count=nulls)  # pragma: no cover - over 2 GiB of stamps

    def __reduce__(self):
        # pickled (e.g. between Dask worker processes) as the BinaryArray it stands for: only the stamps' bytes
        return _identity, (self.to_arrow(),)

    def __arrow_array__(self, type=None):  # noqa: A002 - the protocol's name
        arr = self.to_arrow()
        return arr if type is None or arr.type == type else arr.cast(type)

    def cast(self, target_type, *args, **kwargs):
        return self.to_arrow().cast(target_type, *args, **kwargs)

    def to_pylist(self):
        return [self.value(i) for i in range(len(self))]

    def equals(self, other) -> bool:
        other = other.to_arrow() if isinstance(other, StampColumn) else other
        return self.to_arrow().equals(other)

    def heads(self, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of every row as an ``(n, nbytes)`` uint8 matrix (rows must all be that long).

        Only those bytes are copied: the PRIMARY image of a multi-extension cutout, say,
        without the extensions after it.
        """
        from ._decode import _gather

        n = len(self)
        if n and (self.length < nbytes).any():
            raise ValueError(f"a row is shorter than {nbytes} bytes (or null)")
        out = np.empty((n, nbytes), np.uint8)
        flat = out.reshape(-1)
        offsets = np.arange(n, dtype=np.int64) * nbytes
        length = np.full(n, nbytes, np.int64)
        for b, buf in enumerate(self.bufs):
            sel = np.flatnonzero(self.bid == b)
            if len(sel):
                _gather(buf, self.pos[sel], length[sel], offsets[sel], flat)
        return out

    def heads_ok(self) -> np.ndarray:
        """Per row: null, or the bytes start as FITS (``SIMPLE``) or gzip (``\\x1f\\x8b``)."""
        ok = self.length < 0
        for b, buf in enumerate(self.bufs):
            sel = np.flatnonzero((self.bid == b) & (self.length >= 0))
            if not len(sel):
                continue
            pos, length = self.pos[sel], self.length[sel]
            n = len(buf)
            head = buf[np.minimum(pos[:, None] + np.arange(6), max(n - 1, 0))] if n else \
                np.zeros((len(sel), 6), np.uint8)
            simple = (length >= 6) & (head == np.frombuffer(b"SIMPLE", np.uint8)).all(axis=1)
            gz = (length >= 2) & (head[:, 0] == 0x1F) & (head[:, 1] == 0x8B)
            ok[sel] = simple | gz
        return ok


def _identity(x):
    return x


def fits_heads_ok(arr) -> np.ndarray:
    """:meth:`StampColumn.heads_ok` of a StampColumn (``None`` for anything else)."""
    return arr.heads_ok() if isinstance(arr, StampColumn) else None
