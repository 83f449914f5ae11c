"""HEALPix, HTM, S2 and Q3C cone searches give exactly the brute-force hit sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsstuk_kit.spatial import INDEXES, BruteForce, LocalPostgres, Q3CIndex

CONES = [(10.0, -30.0), (359.9999, 0.0), (0.0001, 45.0), (0.0, 89.99), (180.0, 89.99), (123.0, -89.99),
         (300.0, -89.999), (45.0, 0.0)]
RADII = [2.0, 60.0, 1800.0]


@pytest.fixture(scope="module")
def sky():
    rng = np.random.default_rng(11)
    n = 150_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # crowd the test cones so small radii have hits: 300 points within 1' of each
    for r0, d0 in CONES:
        k = 300
        dd = np.clip(d0 + rng.normal(0, 1 / 60, k), -90, 90)
        rr = (r0 + rng.normal(0, 1 / 60, k) / max(np.cos(np.radians(d0)), 1e-3)) % 360
        ra, dec = np.concatenate([ra, rr]), np.concatenate([dec, dd])
    return ra, dec


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_index_equals_brute_force(sky, name):
    ra, dec = sky
    bf = BruteForce(ra, dec)
    idx = INDEXES[name](ra, dec)
    total = 0
    for r0, d0 in CONES:
        for rad in RADII:
            ref = bf.query(r0, d0, rad)
            got = idx.query(r0, d0, rad)
            assert np.array_equal(got, ref), (name, r0, d0, rad, len(got), len(ref))
            total += len(ref)
    assert total > 1000
    # the wrap and the poles are really exercised: hits on both sides of RA 0 and around the pole
    near_wrap = bf.query(359.9999, 0.0, 60.0)
    assert (ra[near_wrap] > 359).any() and (ra[near_wrap] < 1).any()
    polar = bf.query(0.0, 89.99, 60.0)
    assert np.ptp(ra[polar]) > 180


def test_q3c_in_postgresql_equals_brute_force(sky):
    if LocalPostgres.find_bindir() is None:
        pytest.skip("PostgreSQL server binaries absent (Debian: apt-get install postgresql; .ci/run installs them)")
    if not LocalPostgres.has_q3c():
        pytest.skip("Q3C extension absent (Debian: apt-get install postgresql-15-q3c; .ci/run installs it)")
    ra, dec = sky
    bf = BruteForce(ra, dec)
    with LocalPostgres() as pg:
        q = Q3CIndex(ra, dec, pg.conninfo)
        try:
            for r0, d0 in CONES:
                for rad in RADII:
                    assert np.array_equal(q.query(r0, d0, rad), bf.query(r0, d0, rad)), (r0, d0, rad)
        finally:
            q.close()


@pytest.mark.parametrize("table", ["cones; DROP TABLE users", "1st", "a-b", "x" * 47, "", None])
def test_q3c_refuses_a_table_name_that_is_not_a_plain_identifier(sky, table):
    """The table name is written into SQL text: anything but a plain identifier is refused before connecting."""
    ra, dec = sky
    with pytest.raises(ValueError, match="plain SQL identifier"):
        Q3CIndex(ra, dec, "host=/nonexistent dbname=postgres", table=table)


@pytest.mark.parametrize("failing", ["initdb", "pg_ctl"])
def test_local_postgres_leaves_nothing_behind_when_it_cannot_start(tmp_path, monkeypatch, failing):
    import subprocess

    monkeypatch.setattr(LocalPostgres, "find_bindir", staticmethod(lambda: tmp_path))
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # (no runuser in the commands)
    ran = []

    def run(self, *args):
        ran.append([str(a) for a in args])
        if Path(args[0]).name == failing and "stop" not in args:
            raise subprocess.CalledProcessError(1, [str(args[0])], stderr=f"{failing}: could not do it\n")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(LocalPostgres, "_run", run)
    pg = LocalPostgres()
    with pytest.raises(RuntimeError, match=f"{failing}.* failed: {failing}: could not do it"):
        pg.__enter__()
    folder = Path(ran[0][2]).parent  # initdb -D <folder>/data
    assert folder.name.startswith("lsstuk_pg_") and not folder.exists() and pg.tmp is None
    assert any("stop" in r for r in ran) == (failing == "pg_ctl")  # a server that may have started is stopped
