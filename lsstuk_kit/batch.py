"""AlertBatch: a batch of alerts as pandas tables, with cutouts decoded on demand."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cutouts import Cutouts

__all__ = ["AlertBatch"]

_HISTORY_KEY = ["diaObjectId", "kind", "midpointMjdTai", "band", "diaSourceId", "diaForcedSourceId"]


@dataclass
class _Store:
    """Everything read, shared by a batch and the subsets taken from it."""

    sources: pd.DataFrame  # one row per alert, positional
    history: pd.DataFrame  # raw history rows with `_alert` (position in sources)
    objects: pd.DataFrame  # raw object rows with `_alert`
    cutouts: dict  # name -> pyarrow BinaryArray, or zero-copy _stamps.StampColumn, aligned with sources
    ref_ids: np.ndarray
    rec_ids: np.ndarray
    refs: list
    errors: list
    keys: dict = field(default_factory=dict)  # sort and equality codes of history columns (see _rank_codes)


class AlertBatch:
    """A batch of alerts: sources, light-curve history and objects as DataFrames.

    Build one with :func:`lsstuk_kit.read_alerts` or :func:`lsstuk_kit.load_sample`.

    Attributes
    ----------
    sources : pandas.DataFrame
        One row per alert, indexed by ``diaSourceId``.
    history : pandas.DataFrame
        Long light-curve table (detections, forced photometry, upper limits; column
        ``kind``), sorted by ``diaObjectId`` and time, deduplicated across alerts.
    objects : pandas.DataFrame
        One row per ``diaObjectId``: the latest summary the alerts carry.
    errors : pandas.DataFrame
        Records skipped by ``read_alerts(..., errors="skip")``: file, record, field, reason.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> batch = load_sample()
    >>> len(batch) == len(batch.sources)
    True
    >>> bright = batch[batch.sources["mag"] < 21]
    >>> set(bright.history["diaObjectId"]) <= set(bright.sources["diaObjectId"])
    True
    >>> sorted(batch.history["kind"].unique())
    ['detection', 'forced']
    """

    def __init__(self, store: _Store, pos: np.ndarray | None = None):
        self._store = store
        self._pos = np.arange(len(store.sources)) if pos is None else np.asarray(pos, np.int64)
        self._cache: dict = {}

    # ---------------------------------------------------------------- construction
    @classmethod
    def _from_parts(cls, *, sources, history, objects, cutouts, ref_ids, rec_ids, refs, errors):
        sources = sources.reset_index(drop=True)
        store = _Store(sources, history.reset_index(drop=True), objects.reset_index(drop=True),
                       cutouts, np.asarray(ref_ids), np.asarray(rec_ids), refs, list(errors))
        return cls(store)

    @classmethod
    def empty(cls, refs=(), errors=()):
        """A batch with no alerts (e.g. every record skipped)."""
        cols = ["diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux",
                "psfFluxErr", "mag", "magErr", "snr", "reliability", "survey", "schemaVersion"]
        sources = pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
        history = pd.DataFrame({c: pd.Series(dtype=float) for c in cols[1:10] + ["kind", "_alert"]})
        objects = pd.DataFrame({"diaObjectId": [], "_alert": []})
        return cls._from_parts(sources=sources, history=history, objects=objects, cutouts={},
                               ref_ids=np.zeros(0, np.int64), rec_ids=np.zeros(0, np.int64),
                               refs=list(refs), errors=errors)

    @classmethod
    def concat(cls, batches) -> AlertBatch:
        """Join batches (or subsets of them) into one, keeping order, history, objects and cutouts.

        Examples
        --------
        >>> from lsstuk_kit import AlertBatch, load_sample
        >>> batch = load_sample()
        >>> both = AlertBatch.concat([batch[:10], batch[10:]])
        >>> both.sources.equals(batch.sources) and both.history.equals(batch.history)
        True
        """
        batches = [b for b in batches if b is not None]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        sources, history, objects, ref_ids, rec_ids, refs, errors = [], [], [], [], [], [], []
        keep_cutouts = all(b._store.cutouts for b in batches)
        names = set.intersection(*(set(b._store.cutouts) for b in batches)) if keep_cutouts else set()
        cutouts = {k: [] for k in sorted(names)}
        offset = 0
        for b in batches:
            st, pos = b._store, b._pos
            new_pos = np.full(len(st.sources), -1, np.int64)
            new_pos[pos] = np.arange(len(pos)) + offset
            sources.append(st.sources.iloc[pos])
            for frame, out in ((st.history, history), (st.objects, objects)):
                if "_alert" in frame and len(frame):
                    a = new_pos[frame["_alert"].to_numpy(np.int64)]
                    out.append(frame[a >= 0].assign(_alert=a[a >= 0]))
            for k in cutouts:
                cutouts[k].append(st.cutouts[k].take(pos))
            ref_ids.append(st.ref_ids[pos] + len(refs))
            rec_ids.append(st.rec_ids[pos])
            refs.extend(st.refs)
            errors.extend(st.errors)
            offset += len(pos)
        from ._assemble import concat_cutouts

        empty = batches[0]._store
        return cls._from_parts(
            sources=pd.concat(sources, ignore_index=True),
            history=pd.concat(history, ignore_index=True) if history else empty.history.iloc[:0],
            objects=pd.concat(objects, ignore_index=True) if objects else empty.objects.iloc[:0],
            cutouts={k: concat_cutouts(v) for k, v in cutouts.items()},
            ref_ids=np.concatenate(ref_ids), rec_ids=np.concatenate(rec_ids), refs=refs, errors=errors)

    # ---------------------------------------------------------------- tables
    def __len__(self):
        return len(self._pos)

    @property
    def sources(self) -> pd.DataFrame:
        """One row per alert, indexed by ``diaSourceId``."""
        if "sources" not in self._cache:
            df = self._store.sources.iloc[self._pos]
            self._cache["sources"] = df.set_index("diaSourceId", drop=True)
        return self._cache["sources"]

    @property
    def history(self) -> pd.DataFrame:
        """Light-curve rows of the batch's objects (the triggering detections included)."""
        if "history" not in self._cache:
            h = self._store.history
            rows = self._history_rows()
            if not (len(rows) == len(h) and (rows == np.arange(len(h))).all()):
                h = h.take(rows)
            self._cache["history"] = h.drop(columns="_alert").reset_index(drop=True)
        return self._cache["history"]

    def _history_rows(self) -> np.ndarray:
        """Positions in the read history table of ``history``'s rows, in ``history``'s order (cached).

        ``history`` is these rows of every column; the filters take only the columns they use
        (:meth:`_history_column`), so the wide table is built only when someone asks for it.
        """
        if "history_rows" not in self._cache:
            self._cache["history_rows"] = _history_rows(self._store, self._pos)
        return self._cache["history_rows"]

    def _history_column(self, name) -> pd.Series:
        """One column of ``history`` (same rows, order and dtype) without building the whole table."""
        if "history" in self._cache:
            return self._cache["history"][name]
        key = ("history_column", name)
        if key not in self._cache:
            col = self._store.history[name]
            self._cache[key] = col.take(self._history_rows()).reset_index(drop=True)
        return self._cache[key]

    def _history_codes(self, name):
        """Integer codes of ``history[name]`` and of ``sources[name]``, one coding for both (cached).

        Returns ``(history_codes, alert_codes)``. Codes follow the column's sort order, so the
        history's object codes never decrease (it is sorted by object); missing values (rows or
        alerts of no object, say) share the largest code; an alert value that no history row
        has gets -1, which no history row has.
        """
        key = ("history_codes", name)
        if key not in self._cache:
            rank, uniques = _rank_codes(self._store, name)
            values = pd.Index(self.sources[name].to_numpy())
            a_codes = pd.Index(uniques).get_indexer(values).astype(np.int64)
            a_codes[values.isna()] = len(uniques)
            self._cache[key] = (rank[self._history_rows()].astype(np.int64), a_codes)
        return self._cache[key]

    @property
    def objects(self) -> pd.DataFrame:
        """One row per ``diaObjectId`` (the summary from its latest alert)."""
        if "objects" not in self._cache:
            o = self._store.objects
            if len(o.columns) == 0 or "_alert" not in o:
                o = pd.DataFrame(columns=["diaObjectId", "_alert"])
            keep = np.zeros(len(self._store.sources), bool)
            keep[self._pos] = True
            o = o[keep[o["_alert"].to_numpy(np.int64)]] if len(o) else o
            o = o[o["diaObjectId"].notna()] if len(o) else o  # rows of no object (e.g. ATLAS .ddc detections)
            t = self._store.sources["midpointMjdTai"].to_numpy()
            if len(o):
                o = o.assign(_t=t[o["_alert"].to_numpy(np.int64)])
                o = o.sort_values("_t", kind="stable").drop_duplicates("diaObjectId", keep="last")
                o = o.drop(columns=["_t"])
            self._cache["objects"] = o.drop(columns="_alert").set_index("diaObjectId").sort_index()
        return self._cache["objects"]

    @property
    def errors(self) -> pd.DataFrame:
        """Skipped records (file, record, field, reason); empty when nothing was skipped."""
        rows = [e.__dict__ for e in self._store.errors]
        return pd.DataFrame(rows, columns=["file", "record", "field", "reason"])

    def alert_objects(self) -> pd.DataFrame:
        """The object summary each alert carried, one row per alert in ``sources`` order.

        ``objects`` keeps each object's latest summary; this keeps every alert's own
        (as it stood at that alert), e.g. for writing alerts out again. Indexed by
        ``diaSourceId``; a row is all missing where an alert carried no object.

        Examples
        --------
        >>> from lsstuk_kit import load_sample
        >>> batch = load_sample()
        >>> own = batch.alert_objects()
        >>> bool((own.index == batch.sources.index).all())
        True
        >>> bool((own["diaObjectId"] == batch.sources["diaObjectId"]).all())
        True
        """
        o = self._store.objects
        if len(o.columns) == 0 or "_alert" not in o:
            return pd.DataFrame(index=self.sources.index)
        o = o.drop_duplicates("_alert", keep="last").set_index("_alert")
        out = o.reindex(self._pos)
        out.index = self.sources.index
        return out

    def lightcurve(self, diaObjectId) -> pd.DataFrame:
        """History rows of one object, in time order.

        Examples
        --------
        >>> from lsstuk_kit import load_sample
        >>> batch = load_sample()
        >>> oid = batch.sources["diaObjectId"].iloc[0]
        >>> lc = batch.lightcurve(oid)
        >>> bool(lc["midpointMjdTai"].is_monotonic_increasing)
        True
        """
        h = self.history
        return h[h["diaObjectId"] == diaObjectId].reset_index(drop=True)

    # ---------------------------------------------------------------- subsets
    def _subset(self, pos) -> AlertBatch:
        return AlertBatch(self._store, self._pos[pos])

    def __getitem__(self, key) -> AlertBatch:
        """Subset by boolean mask, query string, slice, or list of ``diaSourceId``."""
        if isinstance(key, str):
            return self.query(key)
        if isinstance(key, slice):
            return self._subset(np.arange(len(self))[key])
        if isinstance(key, pd.Series) and key.dtype == bool:
            key = key.reindex(self.sources.index).fillna(False).to_numpy(bool) \
                if not key.index.equals(self.sources.index) else key.to_numpy(bool)
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (len(self),):
                raise IndexError(f"boolean mask has length {arr.shape}, batch has {len(self)} alerts")
            return self._subset(np.flatnonzero(arr))
        loc = self.sources.index.get_indexer(arr)
        if (loc < 0).any():
            missing = arr[loc < 0][:5].tolist()
            raise KeyError(f"diaSourceId not in batch: {missing}")
        return self._subset(loc)

    def query(self, expr: str, **kwargs) -> AlertBatch:
        """Subset with a :meth:`pandas.DataFrame.query` expression on ``sources``.

        Examples
        --------
        >>> from lsstuk_kit import load_sample
        >>> batch = load_sample()
        >>> r = batch.query("band == 'z' and snr > 10")
        >>> bool((r.sources["band"] == "z").all())
        True
        """
        mask = self.sources.eval(expr, **kwargs)
        if not (isinstance(mask, pd.Series) and mask.dtype == bool):
            raise ValueError(f"query {expr!r} does not give one True/False per alert")
        return self._subset(np.flatnonzero(mask.to_numpy()))

    def filter(self, *masks) -> AlertBatch:
        """Subset by boolean masks over ``sources`` (several are ANDed), e.g. from :mod:`lsstuk_kit.filters`.

        Examples
        --------
        >>> from lsstuk_kit import load_sample, filters as F
        >>> batch = load_sample()
        >>> sub = batch.filter(F.observable(batch, max_mag=22), F.quality(batch))
        >>> len(sub) <= len(batch)
        True
        """
        if not masks:
            return self
        total = None
        for m in masks:
            if isinstance(m, pd.Series) and not m.index.equals(self.sources.index):
                m = m.reindex(self.sources.index).fillna(False)
            arr = np.asarray(m, bool)
            if arr.shape != (len(self),):
                raise IndexError(f"mask has shape {arr.shape}, batch has {len(self)} alerts")
            total = arr if total is None else total & arr
        return self._subset(np.flatnonzero(total))

    def sql(self, query: str, *, as_batch=False, safe=False, **tables):
        """Run DuckDB SQL over ``sources``, ``history``, ``objects`` and extra tables (see :mod:`lsstuk_kit.sql`).

        ``safe=True`` for SQL written by someone else: no file or network access.
        """
        from .sql import query as run

        return run(self, query, as_batch=as_batch, safe=safe, **tables)

    # ---------------------------------------------------------------- cutouts and raw
    def _position(self, diaSourceId) -> int:
        try:
            loc = self.sources.index.get_loc(diaSourceId)
        except KeyError:
            raise KeyError(f"diaSourceId {diaSourceId!r} is not in this batch") from None
        if not isinstance(loc, (int, np.integer)):
            raise KeyError(f"diaSourceId {diaSourceId!r} is not unique in this batch")
        return int(self._pos[loc])

    def _cutout_bytes(self, diaSourceId) -> dict:
        """The raw cutout bytes of one alert: ``{"science": bytes|None, ...}``."""
        p = self._position(diaSourceId)
        store = self._store
        if store.cutouts:
            return {k: arr.value(p) if hasattr(arr, "value") else arr[p].as_py() for k, arr in store.cutouts.items()}
        ref = store.refs[store.ref_ids[p]]
        _, rec = next(ref.iter_records([store.rec_ids[p]]))
        return {k: _raw_cutout(rec, k) for k in ("science", "template", "difference")}

    def cutouts(self, diaSourceId) -> Cutouts:
        """Decode the cutouts of one alert.

        Returns
        -------
        Cutouts
            ``science``, ``template``, ``difference`` (2-D arrays, ``None`` where
            missing), ``variance`` and ``psf`` where present, and ``wcs``.

        Raises
        ------
        AlertFormatError
            If a cutout's bytes do not decode as FITS (naming the file, record and
            cutout field), or, for a batch read with ``cutouts=False``, if the source
            file changed since it was read (it is read again for the bytes).
        KeyError
            If the alert is not in the batch.

        Examples
        --------
        >>> from lsstuk_kit import load_sample
        >>> batch = load_sample()
        >>> c = batch.cutouts(batch.sources.index[0])
        >>> c.science.shape, c.wcs is not None
        ((30, 30), True)
        """
        raw = self._cutout_bytes(diaSourceId)
        try:
            return Cutouts.from_bytes(**raw)
        except Exception as exc:  # noqa: BLE001 - whatever the FITS reader raises, the bytes are at fault
            from .cutouts import decode_stamp
            from .errors import AlertFormatError

            bad = None
            for name, data in raw.items():
                try:
                    decode_stamp(data)
                except Exception:  # noqa: BLE001
                    bad = name
                    break
            store, p = self._store, self._position(diaSourceId)
            field = {"science": "cutoutScience", "template": "cutoutTemplate",
                     "difference": "cutoutDifference"}.get(bad, bad)
            raise AlertFormatError(f"cutout of alert {diaSourceId} does not decode ({type(exc).__name__}: {exc})",
                                   store.refs[store.ref_ids[p]].label, int(store.rec_ids[p]), field) from None

    def __iter__(self):
        """Iterate over the raw alert dicts, in batch order (read back from the source).

        Files are read again (only the blocks holding the wanted records); if a
        file changed since it was read (size, modification time or sync marker),
        :class:`~lsstuk_kit.AlertFormatError` is raised instead of other alerts
        being returned. Bytes and Kafka messages are kept in memory.
        """
        store = self._store
        refs = store.ref_ids[self._pos]
        recs = store.rec_ids[self._pos]
        order = np.lexsort((recs, refs))
        if (order == np.arange(len(order))).all():
            for r in dict.fromkeys(refs.tolist()):
                sel = recs[refs == r]
                for _, rec in store.refs[r].iter_records(sel):
                    yield rec
            return
        got = {}
        for r in dict.fromkeys(refs.tolist()):
            for i, rec in store.refs[r].iter_records(recs[refs == r]):
                got[(r, i)] = rec
        for r, i in zip(refs.tolist(), recs.tolist()):
            yield got[(r, i)]

    def to_avro(self, path) -> int:
        """Write the batch's alerts, as they were read, to one Avro container file.

        All alerts must share one writer schema (split mixed batches by
        ``sources["schemaVersion"]`` first). The records are read again from
        their source (see :meth:`__iter__`): a source that changed since it
        was read raises :class:`~lsstuk_kit.AlertFormatError`.

        Returns
        -------
        int
            Number of alerts written.
        """
        from .io import write_alerts

        store = self._store
        used = sorted(set(store.ref_ids[self._pos].tolist()))
        schemas = {json.dumps(store.refs[r].writer_schema, sort_keys=True) for r in used}
        if len(schemas) > 1:
            versions = sorted(self.sources["schemaVersion"].astype(str).unique())
            raise ValueError(
                f"this batch mixes {len(schemas)} writer schemas ({', '.join(versions)}); "
                "write each part separately, e.g. batch.query(\"schemaVersion == '...'\").to_avro(...)"
            )
        if not used:
            raise ValueError("the batch is empty: nothing to write")
        return write_alerts(iter(self), path, store.refs[used[0]].writer_schema)

    def to_html(self, path, **kwargs):
        """Write a self-contained digest page of the interesting alerts (see :mod:`lsstuk_kit.digest`)."""
        from .digest import to_html

        return to_html(self, path, **kwargs)

    # ---------------------------------------------------------------- summaries
    def summary(self) -> dict:
        """Counts, time span, bands, sky extent and schema versions.

        Examples
        --------
        >>> from lsstuk_kit import load_sample
        >>> s = load_sample().summary()
        >>> s["alerts"] > 0 and s["objects"] > 0
        True
        """
        s = self.sources
        out = {
            "alerts": len(s),
            "objects": int(s["diaObjectId"].nunique()) if len(s) else 0,
            "history_rows": len(self._history_rows()),
            "skipped": len(self._store.errors),
        }
        if len(s):
            out.update({
                "mjd_min": float(s["midpointMjdTai"].min()),
                "mjd_max": float(s["midpointMjdTai"].max()),
                "bands": s["band"].value_counts().sort_index().to_dict(),
                "ra_min": float(s["ra"].min()), "ra_max": float(s["ra"].max()),
                "dec_min": float(s["dec"].min()), "dec_max": float(s["dec"].max()),
                "schema_versions": s["schemaVersion"].value_counts().sort_index().to_dict(),
                "surveys": s["survey"].value_counts().sort_index().to_dict(),
            })
        return out

    def __repr__(self):
        s = self.sources
        if not len(s):
            return f"AlertBatch(0 alerts, {len(self._store.errors)} skipped)"
        surveys = ",".join(sorted(s["survey"].unique()))
        return (f"AlertBatch({len(s)} alerts of {s['diaObjectId'].nunique()} objects, "
                f"{len(self._history_rows())} history rows, survey={surveys}, "
                f"MJD {s['midpointMjdTai'].min():.3f}-{s['midpointMjdTai'].max():.3f})")


def _rank_codes(store, name):
    """Codes of a column of the read history that sort as pandas sorts the column (missing values last).

    Returns ``(codes, uniques)``: codes ``0..len(uniques)``, where ``len(uniques)`` stands for a
    missing value, in the smallest unsigned integer type that holds them (they are cached on the
    store, which subsets of a batch share: a few bytes per history row).
    """
    key = ("rank", name)
    if key not in store.keys:
        col = store.history[name]
        if isinstance(col.dtype, pd.CategoricalDtype):  # pandas sorts categories by their order
            codes = col.cat.codes.to_numpy().astype(np.int64)
            uniques = np.asarray(col.cat.categories)
        else:
            codes, uniques = pd.factorize(col._values, sort=True)
            codes = codes.astype(np.int64, copy=False)
        codes[codes < 0] = len(uniques)
        store.keys[key] = (codes.astype(np.min_scalar_type(len(uniques))), uniques)
    return store.keys[key]


def _equal_next(store, name, idx):
    """``col[idx[k]] == col[idx[k + 1]]`` as :meth:`pandas.DataFrame.drop_duplicates` sees it (missing == missing)."""
    values = store.history[name]._values
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        v = values[idx]
        return v[1:] == v[:-1]
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        v = values[idx]
        nan = np.isnan(v)
        return (v[1:] == v[:-1]) | (nan[1:] & nan[:-1])
    if isinstance(values, pd.arrays.IntegerArray):
        v = values.to_numpy(dtype=np.int64, na_value=0)[idx]
        na = values.isna()[idx]
        return (v[1:] == v[:-1]) & (na[1:] == na[:-1])
    codes = _rank_codes(store, name)[0][idx]  # strings, objects, categories: equal codes of factorize
    return codes[1:] == codes[:-1]


def _history_rows(store, pos):
    """Rows of the read history that make ``AlertBatch.history``, in its order.

    The rule (as :func:`_history_rows_reference` spells it with pandas): the rows of the batch's
    alerts; where an object has several alerts, rows equal in ``_HISTORY_KEY`` (plus the flux of
    rows with no id) are kept once, from the latest alert; then a stable sort by object, time
    and kind. Here: one stable sort of packed integer keys (object, time, kind), repeats found
    as neighbours in it. Batches this path does not cover (rows with no id, two different rows
    of one object at one time and kind, odd columns) take the reference path: same result.
    """
    h, n_src = store.history, len(store.sources)
    if not len(h):
        return np.zeros(0, np.int64)
    alert = h["_alert"].to_numpy(np.int64)
    if len(pos) == n_src:
        rows = np.arange(len(h))
    else:
        keep = np.zeros(n_src, bool)
        keep[pos] = True
        rows = np.flatnonzero(keep[alert])
    dedupe = bool(pd.Series(store.sources["diaObjectId"].to_numpy()[pos]).duplicated().any())
    if dedupe:
        a = alert[rows]
        if len(a) > 1 and (a[1:] < a[:-1]).any():
            rows = rows[np.argsort(a, kind="stable")]  # the latest alert's copy is the last one
    try:
        fast = _history_rows_fast(store, rows, dedupe)
    except TypeError:  # values that do not sort (mixed types): the reference says what pandas does
        fast = None
    return fast if fast is not None else _history_rows_reference(h, rows, dedupe)


def _history_rows_fast(store, rows, dedupe):
    h = store.history
    order_cols = ("diaObjectId", "midpointMjdTai", "kind")
    ids = [c for c in ("diaSourceId", "diaForcedSourceId") if c in h]
    if not all(c in h for c in order_cols) or (dedupe and (not ids or "psfFlux" not in h)):
        return None
    ranks = [_rank_codes(store, c) for c in order_cols]
    bits = [len(u).bit_length() for _, u in ranks]  # codes run up to len(uniques)
    if sum(bits) > 63:
        return None
    obj, t, kind = (r[rows].astype(np.int64) for r, _ in ranks)
    key = obj << (bits[1] + bits[2]) | t << bits[2] | kind
    order = np.argsort(key, kind="stable")  # ties keep the order of `rows`
    if not dedupe:
        return rows[order]
    srt = rows[order]
    if (np.logical_and.reduce([h[c].isna().to_numpy()[srt] for c in ids])).any():
        return None  # rows with no id are told apart by their flux: the reference path
    k = key[order]
    run = k[1:] == k[:-1]  # neighbours of one object, time and kind
    for c in ("band", *ids) if run.any() else ():
        if c in h and not _equal_next(store, c, srt)[run].all():
            return None  # two different rows at one object, time and kind: the reference orders them
    last = np.ones(len(srt), bool)
    last[:-1] = ~run
    return srt[last]


def _history_rows_reference(h, rows, dedupe):
    """The rows of ``AlertBatch.history`` by pandas ``drop_duplicates`` and ``sort_values`` (the rule itself)."""
    cols = [c for c in (*_HISTORY_KEY, "psfFlux") if c in h]
    h = h[cols].take(rows).assign(_row=rows)
    return _dedupe_and_sort(h, dedupe)["_row"].to_numpy(np.int64)


def _dedupe_and_sort(h, dedupe=True):
    """History rows (each alert's copy after the earlier alerts') by the history rule.

    Rows equal in ``_HISTORY_KEY`` are kept once, the last (the latest alert's) copy; rows with
    no id are told apart by their flux, and dropped where they repeat a row with ids. Then a
    stable sort by object, time and kind. Also used by the Dask engine on each object's rows
    gathered from every partition (:mod:`lsstuk_kit.scale`).
    """
    if dedupe:
        key = [c for c in _HISTORY_KEY if c in h]
        ids = [c for c in ("diaSourceId", "diaForcedSourceId") if c in h]
        if "psfFlux" in h and ids:
            # rows with no id (e.g. Lasair's lite light curves): the flux tells two
            # detections of one exposure apart; rows with ids are keyed by them alone
            no_id = h[ids].isna().all(axis=1).to_numpy()
            if no_id.any():
                h = h.assign(_flux_key=np.where(no_id, h["psfFlux"].to_numpy(float, na_value=np.nan), 0.0))
                key = key + ["_flux_key"]
        h = h.drop_duplicates(key, keep="last")
        if "psfFlux" in h and ids:
            h = _drop_idless_repeats(h, ids)
        h = h.drop(columns=["_flux_key"], errors="ignore")
    order = [c for c in ("diaObjectId", "midpointMjdTai", "kind") if c in h]
    return h.sort_values(order, kind="stable")


def _drop_idless_repeats(h, ids):
    """Drop rows with no id that repeat a row with one (same object, kind, time, band and flux).

    A light curve read once without ids (e.g. Lasair's lite kind) and once with them
    (the full kind) is one set of measurements, kept with its ids.
    """
    no_id = h[ids].isna().all(axis=1).to_numpy()
    if not no_id.any() or no_id.all():
        return h
    cols = [c for c in ("diaObjectId", "kind", "midpointMjdTai", "band", "psfFlux") if c in h]
    keyed = h[cols].astype({"kind": str}) if "kind" in cols else h[cols]
    seen = pd.MultiIndex.from_frame(keyed[~no_id])
    repeat = no_id & pd.MultiIndex.from_frame(keyed).isin(seen)
    return h[~repeat] if repeat.any() else h


def _raw_cutout(rec, name):
    key = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}[name]
    val = rec.get(key)
    if isinstance(val, dict):  # ZTF: {"fileName", "stampData"}
        val = val.get("stampData")
    return val
