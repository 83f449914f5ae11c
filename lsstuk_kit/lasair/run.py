"""Run a Lasair filter over a batch as Lasair runs it: per incoming alert, in time order."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from ..sql import duckdb_message
from .features import OBJECT_COLUMNS, objects_per_alert
from .query import LasairFilter, LasairFilterError, LasairFilterWarning
from .tables import annotations, area_hits, crossmatch_tns, sherlock_classifications, tns_watchlist_hits, watchlist_hits

_KINDS = ("attributes", "lite", "full")
# DuckDB settings of the filter's connection: as lsstuk_kit.sql's, no file or network access, MySQL-like
# case-insensitive string comparison (Lasair's MySQL collation)
_SETTINGS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
             "allow_community_extensions": False, "python_enable_replacements": False,
             "enable_external_file_cache": False, "enable_external_access": False,
             "default_collation": "nocase", "lock_configuration": True}


class FilterResult:
    """What a Lasair filter passed, run offline over a batch.

    Attributes
    ----------
    messages : list of dict
        The Kafka messages Lasair would send, in time order, of the chosen kind (``attributes``: the
        SELECTed attributes and ``UTC``; ``lite``/``full``: plus the light curve or the whole alert).
    alerts : DataFrame
        One row per message: the SELECTed columns, ``diaSourceId``, ``alertMjdTai`` and ``UTC``.
    report : dict
        The backtest: ``alerts`` (run through the filter), ``alerts_without_object``, ``alerts_passed``,
        ``messages``, ``objects_passed``, ``share`` (passed / alerts), ``per_night`` and ``per_hour``
        (DataFrames of alerts in, alerts and objects passed), ``seconds``, ``seconds_per_alert``,
        ``columns_used``, ``sql`` (as Lasair builds it) and ``duckdb_sql`` (as run here).
    objects : DataFrame
        The ``objects`` row of every alert as of that alert (see :func:`objects_per_alert`).
    filter : LasairFilter
    batch : AlertBatch
        The passed alerts, in message order.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lasair import LasairFilter, run_filter
    >>> res = run_filter(load_sample(), LasairFilter("objects.diaObjectId, objects.nDiaSources",
    ...                                              "objects.nDiaSources >= 3"), max_share=1.0)
    >>> len(res) == len(res.alerts) == res.report["alerts_passed"] > 0
    True
    >>> all(m["nDiaSources"] >= 3 for m in res.messages)
    True
    >>> sorted(res.messages[0])
    ['UTC', 'diaObjectId', 'nDiaSources']
    >>> 0 < res.report["share"] < 1
    True
    """

    def __init__(self, messages, alerts, report, objects, lasair_filter, batch):
        self.messages = messages
        self.alerts = alerts
        self.report = report
        self.objects = objects
        self.filter = lasair_filter
        self.batch = batch

    def __len__(self):
        return len(self.messages)

    def __repr__(self):
        r = self.report
        return (f"FilterResult({r['alerts_passed']} of {r['alerts']} alerts passed ({r['share']:.1%}), "
                f"{r['objects_passed']} objects, {r['messages']} messages, "
                f"{1e3 * r['seconds_per_alert']:.2f} ms per alert)")

    def plot(self, ax=None, **kwargs):
        """Alerts passed per hour (bars) over the alerts in (outline); returns the Axes.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from lsstuk_kit import load_sample
        >>> from lsstuk_kit.lasair import LasairFilter, run_filter
        >>> res = run_filter(load_sample(), LasairFilter("objects.diaObjectId", "objects.nDiaSources >= 2"),
        ...                  max_share=1.0)
        >>> res.plot().get_ylabel()
        'alerts per hour'
        >>> import matplotlib.pyplot as plt
        >>> plt.close("all")
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3))
        ph = self.report["per_hour"]
        width = 1 / 24 * 0.9
        x = mdates_num(ph.index)
        import matplotlib.dates as mdates

        ax.bar(x, ph["alerts_in"], width=width, align="edge", fill=False, edgecolor="0.5", label="alerts in")
        ax.bar(x, ph["alerts_passed"], width=width, align="edge", color=kwargs.pop("color", "C0"), label="passed",
               **kwargs)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("alerts per hour")
        ax.set_title(f"{self.filter.name or 'filter'}: {self.report['alerts_passed']} of "
                     f"{self.report['alerts']} alerts ({self.report['share']:.1%})")
        ax.legend()
        return ax


def mdates_num(index):
    """Matplotlib date numbers of a DatetimeIndex.

    Parameters
    ----------
    index : DatetimeIndex or sequence of datetimes

    Returns
    -------
    numpy.ndarray
        Days since matplotlib's epoch (``rcParams["date.epoch"]``, 1970-01-01 by default), floats;
        empty for an empty index.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair.run import mdates_num
    >>> mdates_num(pd.date_range("1970-01-01", periods=3, freq="6h"))
    array([0.  , 0.25, 0.5 ])
    >>> mdates_num(pd.DatetimeIndex([])).shape
    (0,)
    """
    import matplotlib.dates as mdates

    return mdates.date2num(pd.DatetimeIndex(index).to_pydatetime()) if len(index) else np.zeros(0)


def _positions(batch):
    """One row per object: diaObjectId, ra, decl (the diaObject's, else the mean of its alerts)."""
    s = batch.sources
    pos = s.groupby("diaObjectId")[["ra", "dec"]].mean()
    o = batch.objects
    if len(o) and {"ra", "dec"} <= set(o.columns):
        got = o[["ra", "dec"]].reindex(pos.index)
        pos = got.where(got.notna(), pos)
    pos = pos[(pos.index.to_series() != 0).to_numpy()]
    return pd.DataFrame({"diaObjectId": pos.index.to_numpy(np.int64), "ra": pos["ra"].to_numpy(float),
                         "decl": pos["dec"].to_numpy(float)})


def _sherlock(context, positions):
    if isinstance(context, pd.DataFrame) and "classification" in context:
        return context
    if isinstance(context, pd.DataFrame):
        return sherlock_classifications(positions, context=context)
    return sherlock_classifications(positions, **dict(context or {}))


def _utc(mjd):
    from astropy.time import Time

    if len(mjd) == 0:
        return np.array([], dtype=object)
    dt = Time(np.asarray(mjd, float), format="mjd", scale="tai").utc.to_datetime()
    return np.array([d.strftime("%Y-%m-%d %H:%M:%S") for d in np.atleast_1d(dt)], dtype=object)


def _records(df):
    """Rows as dicts of plain Python values (NaN/NA as None), built column by column."""
    cols = {}
    for c in df.columns:
        v = df[c]
        if pd.api.types.is_datetime64_any_dtype(v):
            vals = v.dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
        else:
            vals = v.astype(object).tolist()
        na = v.isna().to_numpy()
        cols[c] = [None if n else x for x, n in zip(vals, na)]
    names = list(cols)
    return [dict(zip(names, row)) for row in zip(*cols.values())] if names else [{} for _ in range(len(df))]


def run_filter(batch, lasair_filter, *, kind="attributes", context=None, tns=None, ebv=None, bbb="auto",
               max_share=0.1, utc=None) -> FilterResult:
    """Run a Lasair filter over a batch, per incoming alert, as Lasair runs it.

    Alerts are taken in time order; on each, its object's ``objects`` row is brought up to date with that
    alert (features from the history up to and including it) and the filter's WHERE is evaluated for it,
    with ``mjdnow()`` the alert's own time. This is done at once: one ``objects`` row per alert
    (:func:`objects_per_alert`) and one DuckDB query over them, joined to ``sherlock_classifications``,
    ``watchlist_hits``, ``area_hits``, ``crossmatch_tns`` and ``annotations`` built from the kit's data.
    (Lasair itself runs its filters once per ingestion batch, where an object with two alerts in the batch
    is seen once, as of the later one.)

    Parameters
    ----------
    batch : AlertBatch
    lasair_filter : LasairFilter
    kind : {"attributes", "lite", "full"}
        The Kafka output: the SELECTed attributes only, plus the light curve (``lite``), or plus the whole
        alert (``full``).
    context : dict or DataFrame, optional
        The Sherlock context: catalogues for :func:`lsstuk_kit.context.classify_context` (``galaxies``,
        ``stars``, ``cvs``, ``bright_stars``), or a ready ``sherlock_classifications`` table, or a
        ``classify_context`` result aligned with the batch's objects. Default: the bright-star veto only
        (every other object ``ORPHAN``).
    tns : str, path or DataFrame, optional
        A TNS-like catalogue for ``crossmatch_tns`` and ``objects.tns_name`` (see :func:`crossmatch_tns`).
    ebv : float, array or callable, optional
        E(B-V) (see :data:`lsstuk_kit.lasair.LEFT_OUT`).
    bbb : bool or "auto"
        Fit the BBB light curves; ``"auto"`` fits them only when the filter uses a ``BBB*`` column or ``*``.
    max_share : float
        Warn (:class:`LasairFilterWarning`) when the filter passes more than this share of the alerts.
    utc : str, optional
        The ``UTC`` of every message; default each alert's own time (Lasair: when its filter ran).

    Returns
    -------
    FilterResult

    Raises
    ------
    LasairFilterError
        For a filter Lasair refuses (Lasair's message), or SQL the database cannot run.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.lasair import LasairFilter, run_filter
    >>> f = LasairFilter("objects.diaObjectId, objects.nDiaSources", "objects.nDiaSources >= 3")
    >>> res = run_filter(load_sample(), f, max_share=1.0)
    >>> bool(all(m["nDiaSources"] >= 3 for m in res.messages))
    True
    >>> sorted(res.messages[0])
    ['UTC', 'diaObjectId', 'nDiaSources']
    """
    import duckdb

    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    if not isinstance(lasair_filter, LasairFilter):
        raise TypeError(f"run_filter needs a LasairFilter, not {type(lasair_filter).__name__}")
    f = lasair_filter.check()
    f.warn_precedence()
    t0 = time.perf_counter()
    uses = f.uses
    positions = _positions(batch)
    sherlock = _sherlock(context, positions)
    tns_table = crossmatch_tns(tns) if tns is not None else None
    tns_hits = tns_watchlist_hits(positions, tns_table) if tns_table is not None else None
    if bbb == "auto":
        bbb = any(c.split(".")[-1].startswith("BBB") for c in f.columns_used) or "*" in f.select
    per = objects_per_alert(batch, sherlock=sherlock, tns_hits=tns_hits, ebv=ebv, bbb=bool(bbb))
    objects = pd.concat([per[list(OBJECT_COLUMNS)], pd.DataFrame(
        {"__alert_row": np.arange(len(per)), "__mjdnow": per["alertMjdTai"].to_numpy()}, index=per.index)], axis=1)
    if uses["tns"] and tns_table is None:
        raise LasairFilterError("this filter joins crossmatch_tns: give a TNS-like catalogue with tns=")
    hits = [tns_hits] if tns_hits is not None else []
    if uses["watchlist"] is not None:
        wl = f.watchlists[uses["watchlist"]]
        hits.append(watchlist_hits(positions, wl, wl_id=uses["watchlist"]))
    empty_hits = pd.DataFrame({"diaObjectId": pd.Series(dtype=np.int64), "wl_id": pd.Series(dtype=np.int64),
                               "cone_id": pd.Series(dtype=np.int64), "arcsec": pd.Series(dtype=float),
                               "name": pd.Series(dtype=object)})
    areas = [area_hits(positions, f.watchmaps[a], ar_id=a) for a in uses["watchmaps"]]
    anns = [annotations(df, topic) for topic, df in f.annotators.items()]
    tables = {
        "objects": objects,
        "sherlock_classifications": sherlock,
        "watchlist_hits": pd.concat(hits, ignore_index=True) if hits else empty_hits,
        "area_hits": pd.concat(areas, ignore_index=True) if areas else pd.DataFrame(
            {"diaObjectId": pd.Series(dtype=np.int64), "ar_id": pd.Series(dtype=np.int64)}),
        "crossmatch_tns": tns_table if tns_table is not None else crossmatch_tns(
            pd.DataFrame({"name": pd.Series(dtype=str), "ra": pd.Series(dtype=float), "dec": pd.Series(dtype=float)})),
    }
    if anns:
        tables["annotations"] = pd.concat(anns, ignore_index=True)
    sql = f.duckdb_sql()
    con = duckdb.connect(config=_SETTINGS)
    try:
        for name, df in tables.items():
            con.register(name, df)
        con.execute("CREATE MACRO json_unquote(j) AS j")  # JSON_EXTRACT already gives unquoted text
        statements = con.extract_statements(sql)
        if len(statements) != 1 or statements[0].type.name != "SELECT":
            raise LasairFilterError(f"the filter must build one SELECT statement; it builds {len(statements)}")
        result = con.execute(sql).fetchdf()
    except duckdb.Error as exc:
        raise LasairFilterError(f"the filter does not run: {duckdb_message(exc)}\n"
                                f"SQL run (DuckDB): {sql}") from None
    finally:
        con.close()
    rows = result["__alert_row"].to_numpy(np.int64)
    result = result.drop(columns=[c for c in result.columns if str(c).startswith("__")])
    result.columns = [str(c).replace("objects.__mjdnow", "mjdnow()").replace("__mjdnow", "mjdnow()")
                      for c in result.columns]
    order = np.argsort(rows, kind="stable")
    rows, result = rows[order], result.iloc[order].reset_index(drop=True)
    passed = per.iloc[rows]
    utcs = np.full(len(rows), utc, dtype=object) if utc is not None else _utc(passed["alertMjdTai"].to_numpy())
    alerts = result.assign(diaSourceId=passed["diaSourceId"].to_numpy(), alertMjdTai=passed["alertMjdTai"].to_numpy(),
                           UTC=utcs)
    sub = batch[passed["diaSourceId"].to_numpy()] if len(passed) else batch[np.zeros(len(batch), bool)]
    messages = _messages(sub, kind, result, utcs)
    seconds = time.perf_counter() - t0
    report = _report(per, passed, len(batch) - len(per), seconds, f, sql, len(rows))
    if report["share"] > max_share:
        warnings.warn(f"the filter passes {report['alerts_passed']} of {report['alerts']} alerts "
                      f"({report['share']:.1%} > max_share={max_share:.0%}): Lasair's Kafka output would be "
                      "large (and full alerts dropped); tighten the WHERE", LasairFilterWarning, stacklevel=2)
    return FilterResult(messages, alerts, report, per, f, sub)


def _messages(sub, kind, attributes, utcs):
    """Lasair's Kafka messages of the chosen kind (via lsstuk_kit.formats.lasair_json when present)."""
    try:
        from ..formats.lasair_json import to_lasair_messages
    except ImportError:
        to_lasair_messages = None
    if to_lasair_messages is not None:
        return to_lasair_messages(sub, kind, attributes=attributes, utc=list(utcs))
    if kind != "attributes":
        raise ImportError(f"kind={kind!r} needs lsstuk_kit.formats.lasair_json.to_lasair_messages, which this "
                          "installation lacks; kind='attributes' works without it")
    recs = _records(attributes)
    for r, u in zip(recs, utcs):
        r["UTC"] = u
    return recs


def _report(per, passed, no_object, seconds, f, sql, n_messages):
    n = len(per)
    night_all = np.floor(per["alertMjdTai"].to_numpy() - 0.5).astype(np.int64)
    night_pass = np.floor(passed["alertMjdTai"].to_numpy() - 0.5).astype(np.int64)
    hour_all = pd.DatetimeIndex(pd.to_datetime(_utc(per["alertMjdTai"].to_numpy()))).floor("h")
    hour_pass = pd.DatetimeIndex(pd.to_datetime(_utc(passed["alertMjdTai"].to_numpy()))).floor("h")
    uniq = ~passed["diaSourceId"].duplicated().to_numpy()

    def table(keys_all, keys_pass, name):
        t = pd.DataFrame({"alerts_in": pd.Series(1, index=keys_all).groupby(level=0).sum()})
        pas = pd.DataFrame({"k": keys_pass[uniq], "o": passed["diaObjectId"].to_numpy()[uniq]})
        t["alerts_passed"] = pas.groupby("k").size().reindex(t.index).fillna(0).astype(int)
        t["objects_passed"] = pas.groupby("k")["o"].nunique().reindex(t.index).fillna(0).astype(int)
        t.index.name = name
        return t

    n_passed = int(uniq.sum())
    return {
        "alerts": n, "alerts_without_object": int(no_object), "alerts_passed": n_passed, "messages": n_messages,
        "objects_passed": int(passed["diaObjectId"].nunique()), "share": n_passed / n if n else 0.0,
        "per_night": table(night_all, night_pass, "night"), "per_hour": table(hour_all, hour_pass, "hour"),
        "seconds": seconds, "seconds_per_alert": seconds / n if n else 0.0,
        "columns_used": f.columns_used, "sql": f.sql, "duckdb_sql": sql,
    }
