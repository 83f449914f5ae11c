"""Nights larger than memory: alert folders as Dask DataFrames.

``read_alerts(folder, engine="dask")`` returns a :class:`DaskAlerts`. Nothing
is read until you ask for a result: the folder's files are grouped into
partitions of about ``partition_size`` bytes, and each partition is read, when
needed, into an ordinary :class:`~lsstuk_kit.AlertBatch` by
:func:`~lsstuk_kit.read_alerts`. Only a few partitions are in memory at once,
so a night of millions of alerts can be filtered on a laptop.

``sources``, ``history`` and ``objects`` are Dask DataFrames with the same
columns as an AlertBatch's. The kit's filters, cross-matches and sky areas
accept a DaskAlerts wherever they accept an AlertBatch and then return a Dask
Series or DataFrame, computed partition by partition::

    from lsstuk_kit import read_alerts, filters as F
    night = read_alerts("night/", engine="dask")
    keep = night.filter(F.observable(night, max_mag=21), F.quality(night))
    keep.sources["band"].value_counts().compute()
    small = keep.compute()          # an AlertBatch of the survivors

Rubin alerts carry their own year of history, so every per-alert rule gives
the same answer on a partition as on the whole night (tests check it against
the in-memory engine). ``history`` and ``objects`` are the whole night's: an
object whose alerts fall in several partitions has its light-curve rows once
and its latest summary once, as in memory. They are shuffled by ``diaObjectId``
(each worker sends each object's rows to one partition, nothing is gathered on
one worker), so their partitions hold whole objects rather than the files'
alerts.

Dask is optional: ``pip install "lsstuk_kit[dask]"`` (or ``pip install "dask[dataframe]"``).
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._lazy import _is_lazy, dask_aware  # noqa: F401 - re-exported: scale.dask_aware stays importable

__all__ = ["DaskAlerts", "read_alerts_dask", "dask_aware"]

_HINT = 'pip install "lsstuk_kit[dask]"  (or: pip install "dask[dataframe]")'


def _dask():
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(f"engine='dask' needs Dask with its DataFrame part: {_HINT}") from exc
    return dask, dd


def _parse_size(size) -> int:
    value = _size_in_bytes(size)
    if value <= 0:
        raise ValueError(f"partition_size must be positive, not {size!r}")
    return value


def _size_in_bytes(size) -> int:
    if isinstance(size, (int, np.integer)):
        return int(size)
    text = str(size).strip().upper().replace(" ", "")
    for unit, mult in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * mult)
            except ValueError:
                break
    raise ValueError(f"partition_size must be a number of bytes or e.g. '64MB', not {size!r}")


def _from_delayed(pieces, meta):
    """A Dask frame from per-partition delayed frames, keeping the kit's own dtypes.

    Dask would otherwise turn object columns (all-null flags, ids with nulls)
    into Arrow strings.
    """
    dask, dd = _dask()
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(pieces, meta=meta, verify_meta=False)


def _group_files(files, partition_size):
    """Consecutive files grouped up to ``partition_size`` bytes (a larger file stands alone)."""
    from . import _remote

    groups, current, total = [], [], 0
    for f in files:
        n = _remote.size(f) if _remote.is_url(f) else os.path.getsize(f)
        if current and total + n > partition_size:
            groups.append(current)
            current, total = [], 0
        current.append(f)
        total += n
    if current:
        groups.append(current)
    return groups


def _load(files, options, problems=(), repeats=None, part=0):
    from .errors import SkippedRecord
    from .io import read_alerts

    batch = read_alerts(files, progress=False, workers=1, **options)
    # paths under the folders that could not be read (skip mode) go with the first partition
    batch._store.errors.extend(SkippedRecord(file=p, record=None, field=None, reason=r) for p, r in problems)
    if repeats is not None and repeats.get(part) is not None:
        batch = _drop_repeats(batch, repeats[part])
    return batch


def _ids(files, options):
    """Where each alert of a partition was read: ``id`` (positive ``diaSourceId``), ``file``, ``record``.

    For the night-wide check of alerts read twice. With ``errors="raise"`` a read of the ids
    alone (no cutouts, ~1/4 of a full read's time); in skip mode the partition's own read, so
    that an alert whose first copy is skipped keeps its later copy, as in memory.
    """
    from .io import read_alerts

    if options.get("errors", "raise") == "raise":
        options = {"columns": ["diaSourceId"], "cutouts": False}
    # (its warnings are not silenced: warnings.catch_warnings is not thread-safe, and these tasks
    # run in threads; a repeat within one partition is warned about by this read and by the load)
    batch = read_alerts(files, progress=False, workers=1, **options)
    store, pos = batch._store, batch._pos
    ids = pd.array(batch.sources.index.to_numpy(), dtype="Int64")  # exact: Rubin's ids exceed 2**53
    labels = pd.Categorical.from_codes(store.ref_ids[pos], [r.label for r in store.refs]) if len(
        store.refs) else pd.Categorical([])
    real = (ids > 0).fillna(False).to_numpy(bool)  # placeholders of id-less messages (negative) are not ids
    return pd.DataFrame({"id": ids[real].to_numpy(np.int64), "file": labels[real],
                         "record": store.rec_ids[pos][real]})


def _repeats(*tables):
    """``{partition: table of its alerts already read in an earlier partition}`` (none: empty dict).

    The in-memory rule (``read_alerts`` keeps the first of an alert read twice, in file order)
    applied across partitions. Only the ids meet on one worker, never the alerts.
    """
    ids = np.concatenate([t["id"].to_numpy() for t in tables]) if tables else np.zeros(0, np.int64)
    if len(ids) == len(np.unique(ids)):
        return {}
    parts = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    order = np.argsort(ids, kind="stable")  # stable: the first copy of an id comes first
    sid = ids[order]
    later = np.zeros(len(ids), bool)
    later[order[1:]] = sid[1:] == sid[:-1]
    first_at = order[np.searchsorted(sid, ids, side="left")]  # where each id was first read
    files = np.concatenate([t["file"].astype(object).to_numpy() for t in tables])
    records = np.concatenate([t["record"].to_numpy() for t in tables])
    out = {}
    for part in np.unique(parts[later]).tolist():
        sel = np.flatnonzero(later & (parts == part))
        out[part] = pd.DataFrame({"id": ids[sel], "file": files[sel], "record": records[sel],
                                  "first_file": files[first_at[sel]], "first_record": records[first_at[sel]]})
    return out


def _drop_repeats(batch, repeats):
    """Leave out the partition's alerts read earlier in the night, listed in ``errors`` as in memory."""
    from .errors import SkippedRecord

    batch._store.errors.extend(
        SkippedRecord(file=f, record=int(r), field="diaSourceId",
                      reason=f"duplicate: diaSourceId {i} was already read from {ff} record {int(fr)}; kept once")
        for i, f, r, ff, fr in repeats[["id", "file", "record", "first_file", "first_record"]].itertuples(
            index=False))
    return batch.filter(~batch.sources.index.isin(repeats["id"]))


def _conform(df, meta):
    """Give a partition's frame exactly the columns and dtypes of ``meta`` (a new frame; ``df`` is untouched)."""
    df = df.copy(deep=False)
    if list(df.columns) != list(meta.columns):
        extra = [c for c in df.columns if c not in meta.columns]
        if extra:
            warnings.warn(f"a partition has columns the first one lacks, left out of the Dask tables: {extra[:8]} "
                          "(mixed schema versions?); read them with columns=[...] or the pandas engine",
                          stacklevel=2)
        df = df.reindex(columns=meta.columns)
    for col, dtype in meta.dtypes.items():
        if df[col].dtype != dtype:
            if dtype.kind == "b" and df[col].isna().any():
                continue  # a flag missing here (a salvaged record): bool would make it False; keep the None
            try:
                df[col] = df[col].astype(dtype)
            except (TypeError, ValueError):
                pass
    if df.index.dtype != meta.index.dtype:
        try:
            df.index = df.index.astype(meta.index.dtype)
        except (TypeError, ValueError):
            pass
    df.index.name = meta.index.name
    return df


def _table(batch, name, meta):
    return _conform(getattr(batch, name), meta)


def _tagged(batch, name, meta, part):
    """``history`` or ``objects`` of one partition, with what the night-wide repeat removal needs.

    ``_part`` (the partition's number: its files come after those of lower numbers, so a
    higher number holds the later alerts) and, for objects, ``_t`` (the time of the alert
    the summary came from).
    """
    df = _conform(getattr(batch, name), meta)
    if name == "objects":
        t = batch.sources.groupby("diaObjectId")["midpointMjdTai"].max()  # the summary's alert is the latest
        df = df.reset_index().assign(_t=t.reindex(df.index).to_numpy(float) if len(df) else np.zeros(0))
    return df.assign(_part=np.int64(part))


def _night_history(df, meta):
    """One shuffled partition of ``history`` (every row of its objects): the in-memory rule.

    A row repeated by several alerts of an object is kept once, the copy of the latest alert
    (highest partition; within one partition ``AlertBatch.history`` already kept the latest),
    then rows are sorted by object, time and kind (``batch._dedupe_and_sort``).
    """
    from .batch import _dedupe_and_sort

    if len(df):
        df = _dedupe_and_sort(df.sort_values("_part", kind="stable"))
    df = df.drop(columns=["_part"]).reset_index(drop=True)
    return _conform(df, meta)


def _night_objects(df, meta):
    """One shuffled partition of ``objects``: each object's summary from its latest alert, by index."""
    if len(df):
        df = df.sort_values(["_t", "_part"], kind="stable").drop_duplicates("diaObjectId", keep="last")
    df = df.drop(columns=["_t", "_part"]).set_index("diaObjectId").sort_index()
    return _conform(df, meta)


def _errors(batch):
    return batch.errors


def _apply(call, batch, meta):
    out = call(batch)
    if not isinstance(out, (pd.Series, pd.DataFrame)):
        raise TypeError(f"a function mapped over DaskAlerts must return a Series or DataFrame, "
                        f"not {type(out).__name__}")
    if isinstance(out, pd.DataFrame):
        return _conform(out, meta)
    return out if out.dtype == meta.dtype else out.astype(meta.dtype)


class _Call:
    """``func(batch, *args, **kwargs)``: the batch first, the fixed arguments after it."""

    def __init__(self, func, args, kwargs):
        self.func, self.args, self.kwargs = func, args, kwargs

    def __call__(self, batch):
        return self.func(batch, *self.args, **self.kwargs)


def _subset(batch, *masks):
    out = batch
    for m in masks:
        out = out.filter(m(out) if callable(m) else m)
    return out


def _write(batch, path):
    if not len(batch):
        return 0
    return batch.to_avro(path)


class DaskAlerts:
    """A folder of alerts read lazily, partition by partition, with Dask.

    Build one with ``read_alerts(path, engine="dask")``.

    Attributes
    ----------
    sources, history, objects : dask.dataframe.DataFrame
        The AlertBatch tables, one partition per group of files.
    errors : dask.dataframe.DataFrame
        Records skipped with ``errors="skip"``.
    npartitions : int
    files : list of list of str
        The files of each partition.

    Examples
    --------
    >>> from lsstuk_kit import read_alerts, sample_path, filters as F
    >>> night = read_alerts(sample_path(), engine="dask", partition_size="1MB")
    >>> night.npartitions > 1
    True
    >>> bright = night.filter(F.observable(night, max_mag=21))
    >>> int((bright.sources["mag"] > 21).sum().compute())
    0
    """

    def __init__(self, parts, meta_batch, files):
        self._parts = list(parts)
        self._meta_batch = meta_batch
        self.files = files
        self._frames: dict = {}

    # ------------------------------------------------------------------ tables
    @property
    def npartitions(self) -> int:
        """Number of partitions."""
        return len(self._parts)

    def _frame(self, name):
        if name not in self._frames:
            dask, dd = _dask()
            meta = getattr(self._meta_batch, name).iloc[:0]
            if name in ("history", "objects") and self.npartitions > 1 and "diaObjectId" in (
                    meta.reset_index().columns):
                self._frames[name] = self._night_wide(name, meta)
            else:
                table = dask.delayed(_table, pure=True)
                pieces = [table(p, name, meta) for p in self._parts]
                self._frames[name] = _from_delayed(pieces, meta)
        return self._frames[name]

    def _night_wide(self, name, meta):
        """``history`` or ``objects`` with an object's repeats across partitions removed (see the module)."""
        dask, dd = _dask()
        tagged_meta = _tagged(self._meta_batch, name, meta, 0).iloc[:0]
        tag = dask.delayed(_tagged, pure=True)
        tagged = _from_delayed([tag(p, name, meta, i) for i, p in enumerate(self._parts)], tagged_meta)
        with dask.config.set({"dataframe.convert-string": False}):
            mixed = tagged.shuffle(on="diaObjectId", npartitions=self.npartitions)
            if name == "history":
                return mixed.map_partitions(_night_history, meta, meta=meta)
            return mixed.map_partitions(_night_objects, meta, meta=meta)

    @property
    def sources(self):
        """One row per alert, indexed by ``diaSourceId`` (a Dask DataFrame)."""
        return self._frame("sources")

    @property
    def history(self):
        """Light-curve rows of the night, each once (a Dask DataFrame, partitioned by object)."""
        return self._frame("history")

    @property
    def objects(self):
        """Each object's latest summary, once (a Dask DataFrame indexed by ``diaObjectId``)."""
        return self._frame("objects")

    @property
    def errors(self):
        """Skipped records of every partition (file, record, field, reason)."""
        dask, dd = _dask()
        meta = self._meta_batch.errors.iloc[:0]
        return _from_delayed([dask.delayed(_errors, pure=True)(p) for p in self._parts], meta)

    def __len__(self):
        """Number of alerts (reads every partition's sources)."""
        return int(self.sources.map_partitions(len).compute().sum())

    # ------------------------------------------------------------------ lazy operations
    def map_batches(self, func, *args, meta=None, **kwargs):
        """Apply ``func(batch, *args, **kwargs)`` to each partition's AlertBatch.

        ``func`` must return a Series or DataFrame (e.g. a filter mask or a
        cross-match table); the result is a Dask Series or DataFrame. ``meta``
        (an empty frame of the result's shape) is found by running ``func`` on
        the first partition when not given.

        Examples
        --------
        >>> from lsstuk_kit import read_alerts, sample_path
        >>> night = read_alerts(sample_path(), engine="dask", partition_size="1MB")
        >>> n = night.map_batches(lambda b: b.sources["mag"].lt(22)).sum().compute()
        >>> int(n) > 0
        True
        """
        dask, dd = _dask()
        call = _Call(func, args, kwargs)
        if meta is None:
            sample = call(self._meta_batch)
            if not isinstance(sample, (pd.Series, pd.DataFrame)):
                raise TypeError(f"{getattr(func, '__name__', func)!r} returns {type(sample).__name__}; "
                                "map_batches needs a Series or DataFrame")
            meta = sample.iloc[:0]
        # One graph node holds the function and its arguments (a watchlist, a
        # catalogue), so they are neither hashed nor copied once per partition.
        shared = dask.delayed(call, name=f"lsstuk-call-{uuid.uuid4().hex}")
        apply = dask.delayed(_apply, pure=True)
        return _from_delayed([apply(shared, p, meta) for p in self._parts], meta)

    def filter(self, *masks) -> DaskAlerts:
        """Keep the alerts passing every mask (ANDed), lazily.

        Each mask is a Dask Series made from this DaskAlerts (e.g. by a filter
        of :mod:`lsstuk_kit.filters`) or a function ``batch -> mask``.
        """
        dask, _ = _dask()
        parts_of = []
        for m in masks:
            if callable(m):
                parts_of.append([m] * self.npartitions)
                continue
            if not hasattr(m, "to_delayed"):
                raise TypeError(f"DaskAlerts.filter takes Dask Series masks or functions, not {type(m).__name__}; "
                                "build masks from this DaskAlerts, e.g. F.observable(night, max_mag=21)")
            if m.npartitions != self.npartitions:
                raise ValueError(f"mask has {m.npartitions} partitions, these alerts have {self.npartitions}: "
                                 "build masks from this same DaskAlerts")
            parts_of.append(m.to_delayed(optimize_graph=False))
        subset = dask.delayed(_subset, pure=True)
        parts = [subset(p, *[mp[i] for mp in parts_of]) for i, p in enumerate(self._parts)]
        return DaskAlerts(parts, self._meta_batch, self.files)

    def __getitem__(self, mask) -> DaskAlerts:
        """``night[mask]`` is ``night.filter(mask)``."""
        return self.filter(mask)

    # ------------------------------------------------------------------ results
    def compute(self, **kwargs):
        """Read (and filter) every partition and join them into one AlertBatch.

        Use it on what survives a filter: the whole night may not fit in memory.
        """
        from .batch import AlertBatch

        dask, _ = _dask()
        return AlertBatch.concat(dask.compute(*self._parts, **kwargs))

    def to_avro(self, folder, **kwargs) -> int:
        """Write each partition's alerts to ``folder/part-NNNNN.avro``; return the number written.

        Empty partitions write no file. Partitions are written in parallel and
        only a few are in memory at once.
        """
        from . import _remote

        dask, _ = _dask()
        if _remote.is_url(str(folder)):  # object storage: every worker writes its parts there
            _remote.makedirs(str(folder))
            names = [_remote.join(str(folder), f"part-{i:05d}.avro") for i in range(self.npartitions)]
        else:
            folder = Path(_remote.local_path(str(folder)))
            folder.mkdir(parents=True, exist_ok=True)
            names = [str(folder / f"part-{i:05d}.avro") for i in range(self.npartitions)]
        write = dask.delayed(_write, pure=False)
        counts = dask.compute(*[write(p, name) for p, name in zip(self._parts, names)], **kwargs)
        return int(sum(counts))

    def __repr__(self):
        nfiles = sum(len(f) for f in self.files)
        return f"DaskAlerts({self.npartitions} partitions, {nfiles} files)"


def read_alerts_dask(source, *, partition_size="64MB", repeats="drop", **options) -> DaskAlerts:
    """Read a folder, glob, file or list of files lazily (see :func:`lsstuk_kit.read_alerts`).

    Parameters
    ----------
    source : str, path, or list of them
        Files only: bytes and Kafka messages are already in memory, use the
        pandas engine for them.
    partition_size : int or str
        Target bytes of Avro per partition (``"64MB"``): consecutive files are
        grouped up to it; a larger file is a partition of its own.
    repeats : {"drop", "keep"}
        ``"drop"`` (default, as the in-memory engine): an alert whose ``diaSourceId``
        was already read from an earlier file is left out and listed in ``errors``,
        whichever partitions the two files fall in. Finding them costs one extra read
        of each partition's ids (with ``errors="skip"``, a second full read) before
        the night is processed. ``"keep"`` skips that pass, for files known to hold
        each alert once (one file per visit, as the surveys write them): repeats
        across partitions are then kept, each in its partition.
    **options
        ``columns``, ``errors`` and ``cutouts``, as for :func:`~lsstuk_kit.read_alerts`.
        Errors in later partitions are raised (or collected in ``errors``) when
        they are computed.

    Returns
    -------
    DaskAlerts

    Examples
    --------
    Two of the sample's visit files, one partition each (every file is larger than 1 byte):

    >>> from lsstuk_kit import read_alerts, sample_path
    >>> from lsstuk_kit.scale import read_alerts_dask
    >>> files = sorted((sample_path() / "alerts").glob("*.avro"))[:2]
    >>> night = read_alerts_dask(files, partition_size=1, cutouts=False)
    >>> night.npartitions
    2
    >>> n = int(night.sources["snr"].gt(10).sum().compute())
    >>> n == int((read_alerts(files, cutouts=False).sources["snr"] > 10).sum())
    True
    >>> read_alerts_dask(b"not a path")
    Traceback (most recent call last):
    ...
    TypeError: engine='dask' reads files, folders and globs; for bytes or Kafka messages, use the default ...
    """
    from .errors import AlertFormatError
    from .io import _find_files

    dask, _ = _dask()
    if repeats not in ("drop", "keep"):
        raise ValueError(f"repeats must be 'drop' or 'keep', not {repeats!r}")
    items = source if isinstance(source, (list, tuple)) else [source]
    files, problems = [], []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError("engine='dask' reads files, folders and globs; for bytes or Kafka messages, "
                            f"use the default engine (got {type(item).__name__})")
        found, trouble = _find_files(item)
        files.extend(found)
        problems.extend(trouble)
    if problems and options.get("errors", "raise") == "raise":
        raise AlertFormatError(problems[0][1], problems[0][0])
    if not files:
        raise FileNotFoundError(f"no Avro files (*.avro, *.avro.gz) under {source}")
    groups = _group_files(files, _parse_size(partition_size))
    load = dask.delayed(_load, pure=True)
    seen = None
    if repeats == "drop" and len(groups) > 1:  # an alert in two partitions' files is kept once (see _repeats)
        ids = [dask.delayed(_ids, pure=True)(g, options) for g in groups]
        seen = dask.delayed(_repeats, pure=True)(*ids)
    parts = [load(g, options, problems if i == 0 else (), seen, i) for i, g in enumerate(groups)]
    meta_batch = _load(groups[0], options, problems)  # the first partition gives the columns and dtypes
    return DaskAlerts(parts, meta_batch, groups)


def _batch_nbytes(batch) -> int:
    """Bytes a partition's AlertBatch holds, for Dask's memory accounting.

    Without it Dask sizes a batch as a small Python object, so a worker holding loaded
    partitions for later tasks counts them as unmanaged memory: it neither spills them to
    disk nor pauses, and the nanny kills it at its memory limit. A subset counts its whole
    store (which it keeps alive).
    """
    from dask.sizeof import sizeof

    st = batch._store
    n = sizeof(st.sources) + sizeof(st.history) + sizeof(st.objects) + st.ref_ids.nbytes + st.rec_ids.nbytes
    return int(n + sum(getattr(c, "nbytes", 0) for c in st.cutouts.values()))


def _register_sizeof():
    try:
        from dask.sizeof import sizeof
    except ImportError:  # Dask is optional
        return
    from .batch import AlertBatch

    sizeof.register(AlertBatch)(_batch_nbytes)


_register_sizeof()  # (workers import this module to run _load, so they register it too)
