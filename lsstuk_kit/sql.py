"""Lasair-style SQL over a batch's tables, with DuckDB.

Tables available to a query: ``sources`` (one row per alert, ``diaSourceId`` a
column), ``history``, ``objects`` (``diaObjectId`` a column), plus any
DataFrame passed by keyword (cross-match results, watchlist hits, ...)::

    batch.sql('''
        SELECT s.diaSourceId, s.mag, w.name
        FROM sources s JOIN hits w USING (diaSourceId)
        WHERE s.reliability > 0.8
    ''', hits=match_watchlist(batch, "my_targets.csv"))
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["SQLError", "query"]


class SQLError(ValueError):
    """A query DuckDB cannot run; the message names the problem and what tables exist."""


def query(batch, sql: str, *, as_batch=False, **tables):
    """Run ``sql`` over the batch's tables; return a DataFrame or (``as_batch``) an AlertBatch.

    Parameters
    ----------
    batch : AlertBatch
    sql : str
        A DuckDB SELECT statement.
    as_batch : bool
        Return the subset of the batch whose ``diaSourceId`` the result lists.
    **tables : DataFrame
        More tables, by name.

    Raises
    ------
    SQLError
        On a syntax error, an unknown table or column, or (``as_batch``) a result
        without ``diaSourceId``.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> batch = load_sample()
    >>> df = batch.sql("SELECT band, count(*) AS n FROM sources GROUP BY band ORDER BY band")
    >>> int(df["n"].sum()) == len(batch)
    True
    >>> bright = batch.sql("SELECT diaSourceId FROM sources WHERE mag < 21", as_batch=True)
    >>> bool((bright.sources["mag"] < 21).all())
    True
    """
    import duckdb

    if not isinstance(sql, str) or not sql.strip():
        raise SQLError("the query is empty")
    con = duckdb.connect()
    frames = {
        "sources": batch.sources.reset_index(),
        "history": batch.history,
        "objects": batch.objects.reset_index(),
    }
    for name, df in tables.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SQLError(f"table name {name!r} is not a valid SQL identifier")
        if not isinstance(df, pd.DataFrame):
            raise SQLError(f"table {name!r} must be a pandas DataFrame, not {type(df).__name__}")
        frames[name] = df.reset_index() if df.index.name else df
    for name, df in frames.items():
        con.register(name, _plain(df))
    try:
        result = con.execute(sql).fetchdf()
    except duckdb.Error as exc:
        listing = "; ".join(f"{n}({', '.join(map(str, list(df.columns)[:8]))}{', ...' if df.shape[1] > 8 else ''})"
                            for n, df in frames.items())
        kind = type(exc).__name__.replace("Exception", " error").replace("Error error", "error")
        raise SQLError(f"{kind}: {str(exc).strip()}\nTables: {listing}") from None
    finally:
        con.close()
    if not as_batch:
        return result
    if "diaSourceId" not in result.columns:
        raise SQLError("as_batch=True needs the query to return a diaSourceId column; got "
                       f"{list(result.columns)}")
    ids = pd.unique(result["diaSourceId"])
    return batch[batch.sources.index.isin(ids)]


def _plain(df):
    """Categoricals as plain values for DuckDB (it reads them fine, but joins want plain types)."""
    cats = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    if cats:
        df = df.assign(**{c: df[c].astype(str) for c in cats})
    return df
