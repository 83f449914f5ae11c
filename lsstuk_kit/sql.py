"""Lasair-style SQL over a batch's tables, with DuckDB.

Tables available to a query: ``sources`` (one row per alert, ``diaSourceId`` a
column), ``history``, ``objects`` (``diaObjectId`` a column), plus any
DataFrame passed by keyword (cross-match results, watchlist hits, ...)::

    batch.sql('''
        SELECT s.diaSourceId, s.mag, w.name
        FROM sources s JOIN hits w USING (diaSourceId)
        WHERE s.reliability > 0.8
    ''', hits=match_watchlist(batch, "my_targets.csv"))

Each query runs on its own in-memory DuckDB connection, closed afterwards, whose
configuration is locked: extensions are never installed or loaded (automatic
install and load are off, community extensions are off, and ``INSTALL``,
``LOAD`` and ``UPDATE EXTENSIONS`` statements are refused), so a query cannot
make the process download or run code. Python variables are not visible to the
query (no replacement scans): only the tables listed above are.

The query is the user's own code, so by default it may read and write local
files (``read_csv('my.csv')``, ``COPY ... TO``). For SQL written by someone
else (a filter shared at a workshop, a query from a web form), pass
``safe=True``: DuckDB's external access is then off, and any file, directory or
network access fails with :class:`SQLError`.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["SQLError", "query"]


class SQLError(ValueError):
    """A query DuckDB cannot run; the message names the problem and what tables exist.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, sql
    >>> try:
    ...     sql.query(load_sample(), "SELECT nope FROM sources")
    ... except sql.SQLError as err:
    ...     print("refused:", "nope" in str(err))
    refused: True
    """


# DuckDB settings of every query's connection; lock_configuration keeps a query from changing them
_SETTINGS = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "enable_external_file_cache": False,
    "lock_configuration": True,
}

# statements that install or load extensions: code, possibly from the network
_REFUSED = {"LOAD": "INSTALL/LOAD", "EXTENSION": "UPDATE EXTENSIONS"}


def query(batch, sql: str, *, as_batch=False, safe=False, **tables):
    """Run ``sql`` over the batch's tables; return a DataFrame or (``as_batch``) an AlertBatch.

    Parameters
    ----------
    batch : AlertBatch
    sql : str
        A DuckDB SELECT statement.
    as_batch : bool
        Return the subset of the batch whose ``diaSourceId`` the result lists.
    safe : bool
        For SQL written by someone else: no access to files, directories or the
        network (DuckDB's ``enable_external_access=false``); the tables given
        stay queryable. By default (``False``) the query may read and write local
        files, as any code the user runs may.
    **tables : DataFrame
        More tables, by name.

    Raises
    ------
    SQLError
        On a syntax error, an unknown table or column, a statement that would
        install or load an extension or change the locked configuration, a file
        access with ``safe=True``, or (``as_batch``) a result without ``diaSourceId``.

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
    >>> len(batch.sql("SELECT * FROM sources WHERE reliability > 0.5", safe=True)) > 0
    True
    >>> batch.sql("SELECT * FROM read_csv('/etc/passwd')", safe=True)
    Traceback (most recent call last):
    ...
    lsstuk_kit.sql.SQLError: SQL error (permission): ... file system operations are disabled by configuration ...
    """
    import duckdb

    if not isinstance(sql, str) or not sql.strip():
        raise SQLError("the query is empty")
    con = duckdb.connect(config={**_SETTINGS, "enable_external_access": not safe})
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
        _check_statements(con, sql)
        result = con.execute(sql).fetchdf()
    except duckdb.Error as exc:
        listing = "; ".join(f"{n}({', '.join(map(str, list(df.columns)[:8]))}{', ...' if df.shape[1] > 8 else ''})"
                            for n, df in frames.items())
        hint = ""
        if safe and isinstance(exc, duckdb.PermissionException):
            hint = "\n(safe=True: files, directories and the network are off for this query)"
        raise SQLError(f"{duckdb_message(exc)}{hint}\nTables: {listing}") from None
    finally:
        con.close()
    if not as_batch:
        return result
    if "diaSourceId" not in result.columns:
        raise SQLError("as_batch=True needs the query to return a diaSourceId column; got "
                       f"{list(result.columns)}")
    ids = pd.unique(result["diaSourceId"])
    return batch[batch.sources.index.isin(ids)]


def duckdb_message(exc: BaseException) -> str:
    """A DuckDB error as one readable line: ``SQL error (binder): Referenced column ...``.

    DuckDB's message already starts with its class (``Binder Error: ...``); the
    kind is said once, from the exception's class, and that prefix is dropped.

    >>> import duckdb
    >>> duckdb_message(duckdb.BinderException('Binder Error: Referenced column "x" not found'))
    'SQL error (binder): Referenced column "x" not found'
    >>> duckdb_message(duckdb.ParserException("syntax error at or near \\"selec\\""))
    'SQL error (parser): syntax error at or near "selec"'
    """
    name = type(exc).__name__
    kind = re.sub(r"(Exception|Error)$", "", name) or name
    kind = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).lower()
    text = str(exc).strip()
    text = re.sub(r"^[A-Z][A-Za-z ]{0,40}? Error:\s*", "", text)
    return f"SQL error ({kind}): {text}" if kind != "error" else f"SQL error: {text}"


def _check_statements(con, sql):
    """Refuse statements that install or load DuckDB extensions (checked before anything runs)."""
    import duckdb

    for statement in con.extract_statements(sql):
        name = getattr(statement.type, "name", "")
        if name in _REFUSED or name not in duckdb.StatementType.__members__:
            what = _REFUSED.get(name, "a statement of a kind DuckDB's Python API does not name (UPDATE EXTENSIONS)")
            raise SQLError(f"{what} refused: batch.sql() never installs or loads DuckDB extensions "
                           f"(they are code, fetched from the network): {statement.query.strip()[:80]!r}")


def _plain(df):
    """Categoricals as plain values for DuckDB (it reads them fine, but joins want plain types)."""
    cats = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    if cats:
        df = df.assign(**{c: df[c].astype(str) for c in cats})
    return df
