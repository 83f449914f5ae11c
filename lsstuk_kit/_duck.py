"""DuckDB's Avro reader, loaded from the installed ``duckdb-ext-avro`` package.

Decoding heavy Rubin alerts straight to Arrow columns with DuckDB is several
times faster than building Python dicts with fastavro (see
``benchmarks/bench_read.py``). The extension binary ships inside the PyPI
package ``duckdb-ext-avro`` and is loaded from there; nothing is downloaded.
"""

from __future__ import annotations

import functools
import threading
from importlib import resources

__all__ = ["avro_extension_path", "connect", "acquire", "release", "release_connections", "quote"]

_HINT = 'pip install "duckdb==1.4.4" "duckdb-ext-avro==1.4.4.20260205"'


@functools.lru_cache(maxsize=1)
def avro_extension_path() -> str:
    """Return the path of the DuckDB Avro extension inside ``duckdb-ext-avro``.

    Raises
    ------
    ImportError
        If duckdb or the extension package is missing, or their versions differ.
    """
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError(f"lsstuk_kit needs duckdb: {_HINT}") from exc
    platform = duckdb.execute("PRAGMA platform").fetchone()[0]
    try:
        root = resources.files("duckdb_ext").joinpath("extensions")
    except ModuleNotFoundError as exc:
        raise ImportError(f"the DuckDB Avro extension is not installed: {_HINT}") from exc
    ext = root.joinpath(f"v{duckdb.__version__}", platform, "avro.duckdb_extension")
    if not ext.is_file():
        shipped = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise ImportError(
            f"duckdb-ext-avro has no Avro extension for duckdb {duckdb.__version__} on "
            f"{platform} (it ships {shipped}); install matching versions: {_HINT}"
        )
    return str(ext)


_CONNECT_LOCK = threading.Lock()


def connect(threads: int = 1):
    """Open an in-memory DuckDB connection with the Avro extension loaded.

    Connections are opened one at a time: opening them concurrently from
    several threads has aborted the process.
    """
    import duckdb

    with _CONNECT_LOCK:
        return _connect(duckdb, threads)


_POOL: list = []  # idle single-thread connections, reused across read_alerts calls
_POOL_LOCK = threading.Lock()
_POOL_MAX = 4
#: a pooled connection is closed after this many reads (DuckDB keeps caches that grow with use)
_MAX_USES = 16
_USES: dict = {}  # id(connection) -> reads done


def acquire():
    """A single-thread connection with the Avro extension loaded, from the pool when one is idle.

    Opening a connection and loading the extension costs ~0.1 s, as much as
    decoding a few thousand light alerts: readers of many small batches (a
    stream, a replay, Dask partitions) reuse connections instead. A connection
    is used by one thread at a time; give it back with :func:`release`.
    """
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    return connect(threads=1)


def release(con, broken=False) -> None:
    """Return a connection from :func:`acquire` to the pool.

    It is closed instead when it failed a query (``broken``: its state is not
    trusted again), has served ``_MAX_USES`` reads, or the pool is full; so the
    pool's memory stays bounded however many reads (or errors) it sees.
    """
    uses = _USES.pop(id(con), 0) + 1
    if not broken and uses < _MAX_USES:
        with _POOL_LOCK:
            if len(_POOL) < _POOL_MAX:
                _USES[id(con)] = uses
                _POOL.append(con)
                return
    con.close()


def _load_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_TRIM = _load_trim()


def trim_memory() -> None:
    """Give memory freed by decoding threads back to the system (glibc keeps it in per-thread arenas).

    Reads that fail and are retried record by record free many mid-sized blocks in
    short-lived threads; without this the process grew by ~100 MiB per 100 error-heavy
    reads (``benchmarks/bench_pool_memory.py``).
    """
    if _TRIM is not None:
        _TRIM(0)


def release_connections() -> int:
    """Close every idle pooled DuckDB connection (freeing their memory); return how many.

    Examples
    --------
    >>> from lsstuk_kit import read_alerts, sample_path
    >>> from lsstuk_kit.io import release_connections
    >>> _ = read_alerts(sample_path())
    >>> release_connections() >= 0
    True
    """
    with _POOL_LOCK:
        cons = list(_POOL)
        _POOL.clear()
    for con in cons:
        _USES.pop(id(con), None)
        con.close()
    trim_memory()
    return len(cons)


def _connect(duckdb, threads):
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": threads,
            # do not keep the files read in memory: a stream reads each file once, and a
            # pooled connection would otherwise grow with every file it has read
            "enable_external_file_cache": False,
            "allow_community_extensions": False,
        }
    )
    con.execute(f"LOAD '{avro_extension_path()}'")
    con.execute("SET enable_progress_bar = false")  # never draw bars on the user's terminal or notebook

    return con


def quote(name: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'
