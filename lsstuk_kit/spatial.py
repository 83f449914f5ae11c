"""Spatial indexes for cone searches compared: HEALPix, HTM, S2 and Q3C.

Survey teams choose between sky pixelisations for their cone searches; this
module runs the same searches through each so they can be compared for
correctness (hit sets identical to brute force, at the poles and across RA
0/360 too) and speed (``benchmarks/bench_indexes.py``):

- :class:`HealpixIndex`: nested HEALPix cells (``cdshealpix``),
- :class:`HTMIndex`: the Hierarchical Triangular Mesh (``esutil``),
- :class:`S2Index`: Google's S2 cells (``s2geometry``),
- :class:`Q3CIndex`: Q3C inside a real PostgreSQL (``q3c_radial_query``),
- :class:`BruteForce`: every row, for reference.

Each index gives candidate rows from the cells covering the cone; the exact
angular distance then keeps the true hits (Q3C's query is already exact).
:class:`LocalPostgres` starts a throwaway PostgreSQL on a Unix socket for Q3C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .crossmatch import angular_separation

__all__ = ["BruteForce", "HealpixIndex", "HTMIndex", "S2Index", "Q3CIndex", "LocalPostgres", "INDEXES"]


def _ranges_to_rows(order, starts, stops):
    """Rows order[starts[k]:stops[k]] for all k, concatenated (vectorised)."""
    counts = np.maximum(stops - starts, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return order[np.arange(total) + offs]


class _Index:
    name = "?"

    def __init__(self, ra, dec):
        self.ra = np.asarray(ra, float)
        self.dec = np.asarray(dec, float)
        t = time.perf_counter()
        self._build()
        self.build_seconds = time.perf_counter() - t

    def _build(self):
        pass

    def _candidates(self, ra, dec, radius_arcsec):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sort_cells(self, cells):
        """Remember the rows in order of their cell id (the index)."""
        self.order = np.argsort(cells, kind="stable")
        self.sorted_cells = cells[self.order]

    def _rows_between(self, first, last):
        """Rows whose cell id lies in any [first[k], last[k]] (one cell each: first == last)."""
        lo = np.searchsorted(self.sorted_cells, first, "left")
        hi = np.searchsorted(self.sorted_cells, last, "right")
        return _ranges_to_rows(self.order, lo, hi)

    def query(self, ra, dec, radius_arcsec):
        """Sorted row numbers within ``radius_arcsec`` of (ra, dec)."""
        cand = np.unique(self._candidates(float(ra), float(dec), float(radius_arcsec)))
        sep = angular_separation(self.ra[cand], self.dec[cand], ra, dec)
        return cand[sep <= radius_arcsec]


class BruteForce(_Index):
    """Every row is a candidate.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.spatial import BruteForce
    >>> rng = np.random.default_rng(0)
    >>> index = BruteForce(rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000))
    >>> index.query(10.5, -0.5, 300.0)[:5].tolist()
    [75, 191, 204, 226, 243]
    """

    name = "brute force"

    def _candidates(self, ra, dec, radius_arcsec):
        return np.arange(len(self.ra))


class HealpixIndex(_Index):
    """Rows sorted by their nested HEALPix cell; cones covered with ``cdshealpix.nested.cone_search``.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.spatial import BruteForce, HealpixIndex
    >>> rng = np.random.default_rng(0)
    >>> ra, dec = rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000)
    >>> rows = HealpixIndex(ra, dec).query(10.5, -0.5, 300.0)       # row numbers within 300 arcsec
    >>> len(rows), bool(np.array_equal(rows, BruteForce(ra, dec).query(10.5, -0.5, 300.0)))
    (19, True)
    """

    name = "HEALPix"

    def __init__(self, ra, dec, depth=12):
        self.depth = depth
        super().__init__(ra, dec)

    def _build(self):
        from astropy import units as u
        from astropy.coordinates import Latitude, Longitude
        from cdshealpix.nested import lonlat_to_healpix

        self._sort_cells(np.asarray(lonlat_to_healpix(Longitude(self.ra * u.deg), Latitude(self.dec * u.deg),
                                                      self.depth), np.int64))

    def _candidates(self, ra, dec, radius_arcsec):
        from astropy import units as u
        from astropy.coordinates import Latitude, Longitude
        from cdshealpix.nested import cone_search

        ipix, _, _ = cone_search(Longitude(ra * u.deg), Latitude(dec * u.deg), radius_arcsec * u.arcsec,
                                 self.depth, flat=True)
        ipix = np.asarray(ipix, np.int64)
        return self._rows_between(ipix, ipix)


class HTMIndex(_Index):
    """Rows sorted by their HTM triangle (``esutil.htm``); cones covered with ``HTM.intersect``.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.spatial import BruteForce, HTMIndex
    >>> rng = np.random.default_rng(0)
    >>> ra, dec = rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000)
    >>> rows = HTMIndex(ra, dec).query(10.5, -0.5, 300.0)       # row numbers within 300 arcsec
    >>> len(rows), bool(np.array_equal(rows, BruteForce(ra, dec).query(10.5, -0.5, 300.0)))
    (19, True)
    """

    name = "HTM"

    def __init__(self, ra, dec, depth=12):
        self.depth = depth
        super().__init__(ra, dec)

    def _build(self):
        import esutil.htm

        self.htm = esutil.htm.HTM(self.depth)
        self._sort_cells(np.asarray(self.htm.lookup_id(self.ra, self.dec), np.int64))

    def _candidates(self, ra, dec, radius_arcsec):
        tri = np.asarray(self.htm.intersect(ra, dec, radius_arcsec / 3600.0, inclusive=True), np.int64)
        return self._rows_between(tri, tri)


class S2Index(_Index):
    """Rows sorted by their S2 leaf cell id; cones covered by ``S2RegionCoverer`` cell ranges.

    Building computes one S2 cell id per row through the Python bindings (a loop:
    ``s2geometry`` has no array interface), so building is slow; queries are not.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.spatial import BruteForce, S2Index
    >>> rng = np.random.default_rng(0)
    >>> ra, dec = rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000)
    >>> rows = S2Index(ra, dec).query(10.5, -0.5, 300.0)       # row numbers within 300 arcsec
    >>> len(rows), bool(np.array_equal(rows, BruteForce(ra, dec).query(10.5, -0.5, 300.0)))
    (19, True)
    """

    name = "S2"

    def __init__(self, ra, dec, max_cells=16):
        self.max_cells = max_cells
        super().__init__(ra, dec)

    def _build(self):
        import s2geometry as s2

        ids = np.fromiter((s2.S2CellId(s2.S2LatLng.FromDegrees(d, r)).id() for r, d in zip(self.ra, self.dec)),
                          dtype=np.uint64, count=len(self.ra))
        self._sort_cells(ids)
        self.coverer = s2.S2RegionCoverer()
        self.coverer.set_max_cells(self.max_cells)
        self._s2 = s2

    def _candidates(self, ra, dec, radius_arcsec):
        s2 = self._s2
        cap = s2.S2Cap(s2.S2LatLng.FromDegrees(dec, ra).ToPoint(), s2.S1Angle.Degrees(radius_arcsec / 3600.0))
        cells = self.coverer.GetCovering(cap)
        mins = np.array([c.range_min().id() for c in cells], dtype=np.uint64)
        maxs = np.array([c.range_max().id() for c in cells], dtype=np.uint64)
        return self._rows_between(mins, maxs)


class Q3CIndex(_Index):
    """Rows in a PostgreSQL table with a Q3C index; cones with ``q3c_radial_query`` (exact).

    Parameters
    ----------
    ra, dec : arrays
    conninfo : str
        A libpq connection string (e.g. ``LocalPostgres().conninfo``).
    table : str
        Table name to create (replaced if present): a plain SQL identifier (letters, digits and
        ``_``, not starting with a digit, at most 46 characters), else ``ValueError``.

    Examples
    --------
    The index lives in a running PostgreSQL server; without one, building it fails at once:

    >>> import tempfile
    >>> import numpy as np
    >>> from lsstuk_kit.spatial import BruteForce, LocalPostgres, Q3CIndex
    >>> rng = np.random.default_rng(0)
    >>> ra, dec = rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000)
    >>> with tempfile.TemporaryDirectory() as empty:   # a socket folder with no server in it
    ...     try:
    ...         Q3CIndex(ra, dec, f"host={empty} dbname=postgres user=postgres")
    ...     except Exception as err:
    ...         print(type(err).__name__)
    OperationalError

    With a throwaway server (needs PostgreSQL and Q3C installed; not run in the doctests), it finds the
    same rows as brute force:

    >>> with LocalPostgres() as pg:                    # doctest: +SKIP
    ...     index = Q3CIndex(ra, dec, pg.conninfo)
    ...     rows = index.query(10.5, -0.5, 300.0)      # row numbers within 300 arcsec
    ...     index.close()
    >>> len(rows), bool(np.array_equal(rows, BruteForce(ra, dec).query(10.5, -0.5, 300.0)))  # doctest: +SKIP
    (19, True)
    """

    name = "Q3C (PostgreSQL)"

    def __init__(self, ra, dec, conninfo, table="lsstuk_cone_test"):
        import re

        # the name goes into SQL text (tables cannot be bound parameters): only a plain identifier,
        # short enough for PostgreSQL's 63-character limit once its index is named after it
        if not isinstance(table, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,45}", table):
            raise ValueError(f"table must be a plain SQL identifier of at most 46 characters, not {table!r}")
        self.conninfo = conninfo
        self.table = table
        super().__init__(ra, dec)

    def _build(self):
        import psycopg

        self.conn = psycopg.connect(self.conninfo, autocommit=True)
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS q3c")
            cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            cur.execute(f"CREATE TABLE {self.table} (id bigint, ra double precision, dec double precision)")
            with cur.copy(f"COPY {self.table} (id, ra, dec) FROM STDIN") as copy:
                for row in zip(range(len(self.ra)), self.ra.tolist(), self.dec.tolist()):
                    copy.write_row(row)
            cur.execute(f"CREATE INDEX ON {self.table} (q3c_ang2ipix(ra, dec))")
            cur.execute(f"CLUSTER {self.table} USING {self.table}_q3c_ang2ipix_idx")
            cur.execute(f"ANALYZE {self.table}")

    def query(self, ra, dec, radius_arcsec):
        """Sorted row numbers within the cone, from ``q3c_radial_query``."""
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM {self.table} WHERE q3c_radial_query(ra, dec, %s, %s, %s)",
                        (float(ra), float(dec), float(radius_arcsec) / 3600.0))
            return np.sort(np.array([r[0] for r in cur.fetchall()], np.int64))

    def close(self):
        """Close the connection."""
        self.conn.close()


INDEXES = {"HEALPix": HealpixIndex, "HTM": HTMIndex, "S2": S2Index}


class LocalPostgres:
    """A throwaway PostgreSQL server on a Unix socket in a temporary folder (no TCP port).

    Needs the server binaries (Debian: ``apt-get install postgresql``) and, for
    Q3C, ``postgresql-15-q3c``. As root the server runs as the ``postgres`` user.

    Attributes
    ----------
    bindir : Path
        The folder of ``initdb`` and ``pg_ctl``.
    conninfo : str
        Once started: the libpq connection string (``host=<socket folder> dbname=postgres user=postgres``).

    Raises
    ------
    RuntimeError
        If the PostgreSQL server binaries are not found.

    Examples
    --------
    Whether a throwaway server can run here:

    >>> from lsstuk_kit.spatial import LocalPostgres
    >>> bindir = LocalPostgres.find_bindir()          # None without the server binaries
    >>> bindir is None or ((bindir / "initdb").exists() and (bindir / "pg_ctl").exists())
    True
    >>> isinstance(LocalPostgres.has_q3c(), bool)
    True

    Starting one takes a few seconds (``initdb``), so this part is not run in the doctests:

    >>> import numpy as np
    >>> from lsstuk_kit.spatial import Q3CIndex
    >>> rng = np.random.default_rng(0)
    >>> ra, dec = rng.uniform(10, 11, 1000), rng.uniform(-1, 0, 1000)
    >>> with LocalPostgres() as pg:                    # doctest: +SKIP
    ...     print(pg.conninfo)
    ...     index = Q3CIndex(ra, dec, pg.conninfo)
    ...     print(index.query(10.5, -0.5, 300.0)[:5].tolist())
    ...     index.close()
    host=/tmp/lsstuk_pg_.../sock dbname=postgres user=postgres
    [75, 191, 204, 226, 243]
    """

    def __init__(self):
        self.bindir = self.find_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian: apt-get install postgresql "
                               "postgresql-15-q3c)")
        self.tmp = None
        self.user = "postgres" if os.geteuid() == 0 else None

    @staticmethod
    def find_bindir():
        """Folder of ``initdb``/``pg_ctl`` (Debian layout or PATH), or None."""
        for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (d / "initdb").exists() and (d / "pg_ctl").exists():
                return d
        found = shutil.which("initdb")
        return Path(found).parent if found and shutil.which("pg_ctl") else None

    @staticmethod
    def has_q3c():
        """Whether the Q3C extension is installed for any PostgreSQL version."""
        return any(Path("/usr/share/postgresql").glob("*/extension/q3c.control"))

    def _run(self, *args):
        cmd = [str(a) for a in args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="lsstuk_pg_")
        data, sock = os.path.join(self.tmp, "data"), os.path.join(self.tmp, "sock")
        os.makedirs(sock)
        if self.user:
            shutil.chown(self.tmp, self.user)
            shutil.chown(sock, self.user)
        step = "initdb"
        try:
            self._run(self.bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
            step = "pg_ctl start"
            self._run(self.bindir / "pg_ctl", "-D", data, "-w", "-l", os.path.join(self.tmp, "log"), "-o",
                      f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off", "start")
        except (OSError, subprocess.SubprocessError) as exc:
            # nothing left behind: a server that half started is stopped, the folder removed
            if step != "initdb":
                try:
                    self._run(self.bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
                except (OSError, subprocess.SubprocessError):
                    pass
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
            said = (getattr(exc, "stderr", None) or "").strip()
            raise RuntimeError(f"PostgreSQL {step} failed: {said or exc}") from exc
        self.conninfo = f"host={sock} dbname=postgres user=postgres"
        self._data = data
        return self

    def __exit__(self, *exc):
        try:
            self._run(self.bindir / "pg_ctl", "-D", self._data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
