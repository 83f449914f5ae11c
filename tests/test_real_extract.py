"""data/real/: the small extract of real alerts that notebooks 05 and 06 use (tools/make_real_extract.py).

Everywhere: the extract reads with ``read_alerts`` and holds exactly the counts its README states.
Where ``../shared/real-alerts`` is present: every record equals its source record (Avro: the same
bytes; Parquet: the same Arrow rows and schema), the selection follows the stated rule, and the
script regenerates the same records and README.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lsstuk_kit as lk

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
SHARED = ROOT.parent / "shared" / "real-alerts"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the original real alerts) is absent: "
                                  "the extract cannot be compared with its sources here")


def _tool():
    spec = importlib.util.spec_from_file_location("make_real_extract", ROOT / "tools" / "make_real_extract.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _readme_rows():
    """The per-file rows of data/real/README.md: {file: (alerts, bogus, real, bytes)}."""
    rows = {}
    for line in (REAL / "README.md").read_text().splitlines():
        m = re.match(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| ([\d,]+) \|", line)
        if m:
            rows[m.group(1)] = tuple(int(g.replace(",", "")) for g in m.groups()[1:])
    return rows


def _same(a, b):
    """Equal values, NaN equal to NaN (Arrow's Table.equals counts NaN as unequal to itself)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):  # Arrow maps come as lists of tuples
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _same_tables(a, b):
    return a.schema.equals(b.schema, check_metadata=True) and _same(a.to_pylist(), b.to_pylist())


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fink's Parquet stores some history ids as lossy doubles (reported)
        return lk.read_alerts(path)


def test_real_alerts_path_is_the_extract():
    assert lk.real_alerts_path() == REAL
    assert (REAL / "README.md").is_file()


def test_readme_counts_match_the_files():
    rows = _readme_rows()
    assert len(rows) >= 4, "README.md lists the extract's files in a table"
    on_disk = sorted(str(p.relative_to(REAL)) for p in REAL.rglob("*") if p.is_file() and p.name != "README.md")
    assert on_disk == sorted(rows), "README.md lists exactly the files of data/real/"
    for rel, (n, bogus, real, size) in rows.items():
        b = _read(REAL / rel)
        s = b.sources
        assert len(b) == n, rel
        score = s["reliability"].to_numpy(float)
        assert not np.isnan(score).any(), f"{rel}: every alert has its survey's real/bogus score"
        assert (int((score <= 0.5).sum()), int((score > 0.5).sum())) == (bogus, real), rel
        expected = {"ztf": "drb", "lsst": "reliability"}
        assert (s["reliabilitySource"] == s["survey"].map(expected)).all(), rel
        assert (REAL / rel).stat().st_size == size, f"{rel}: size in README.md"
        assert len(b.cutouts(s.index[0])["difference"]) > 0, f"{rel}: the alerts carry their cutouts"


def test_whole_folder_reads_with_the_stated_totals():
    text = (REAL / "README.md").read_text()
    m = re.search(r"\*\*Total:\*\* (\d+) alerts \((\d+) Rubin, (\d+) ZTF\), ([\d,]+) bytes", text)
    assert m, "README.md states the totals"
    total, rubin, ztf, size = (int(g.replace(",", "")) for g in m.groups())
    batch = _read(lk.real_alerts_path())
    assert len(batch) == total
    assert batch.sources.groupby("survey").size().to_dict() == {"lsst": rubin, "ztf": ztf}
    assert not batch.sources.index.duplicated().any()
    files = [p for p in REAL.rglob("*") if p.is_file() and p.name != "README.md"]
    assert sum(p.stat().st_size for p in files) == size
    assert size <= 3_000_000, "the extract stays small (about 3 MB)"
    for survey, m in re.findall(r"^\| (Rubin|ZTF) \| (\d+) \(all\) \|", text, flags=re.M):
        s = batch.sources[batch.sources["survey"] == {"Rubin": "lsst", "ZTF": "ztf"}[survey]]
        assert int((s["reliability"] <= 0.5).sum()) == int(m)


@needs_shared
def test_records_equal_their_sources():
    tool = _tool()
    src_of = {tool.out_name(rel): (rel, survey, fmt) for rel, survey, fmt, *_ in tool.SOURCES}
    for rel_out in _readme_rows():
        rel, survey, fmt = src_of[rel_out]
        if fmt == "avro":
            meta_x, recs_x, raw_x = tool.read_avro(REAL / rel_out)
            meta_s, recs_s, raw_s = tool.read_avro(SHARED / rel)
            assert meta_x["avro.schema"] == meta_s["avro.schema"], f"{rel_out}: the source's schema, unchanged"
            by_id = {tool.record_key(survey, r)[0]: raw for r, raw in zip(recs_s, raw_s)}
            ids = [tool.record_key(survey, r)[0] for r in recs_x]
            assert [by_id[i] for i in ids] == raw_x, f"{rel_out}: record bytes differ from {rel}"
            order = [list(by_id).index(i) for i in ids]
        else:
            x = pq.read_table(REAL / rel_out)
            s = pq.read_table(SHARED / rel)
            ids_s, _ = tool.table_keys(survey, s)
            ids_x, _ = tool.table_keys(survey, x)
            pos = {int(i): k for k, i in enumerate(ids_s)}
            order = [pos[int(i)] for i in ids_x]
            assert x.schema.equals(s.schema, check_metadata=True), f"{rel_out}: the source's schema and metadata"
            assert _same_tables(x, s.take(pa.array(order, pa.int64()))), f"{rel_out}: rows differ from {rel}"
        assert order == sorted(order), f"{rel_out}: records keep their source order"


@needs_shared
def test_selection_keeps_every_bogus_alert_and_the_stated_real_draw():
    tool = _tool()
    alerts, _ = tool.load_sources(SHARED)
    batch = _read(REAL)
    kept = set(batch.sources.index.astype("int64"))
    for survey in ("lsst", "ztf"):
        mine = [a for a in alerts if a["survey"] == survey]
        bogus = {a["id"] for a in mine if a["score"] <= tool.BOGUS_AT}
        real = {a["id"] for a in mine if a["score"] > tool.BOGUS_AT}
        assert bogus <= kept, f"{survey}: every alert its survey calls bogus is kept"
        assert len(real & kept) == tool.N_REAL[survey]
    assert len(kept) == sum(tool.N_REAL.values()) + sum(a["score"] <= tool.BOGUS_AT for a in alerts)


@needs_shared
def test_regenerates_the_same_extract(tmp_path):
    tool = _tool()
    tool.build(SHARED, tmp_path)
    assert (tmp_path / "README.md").read_text() == (REAL / "README.md").read_text()
    for rel in _readme_rows():
        if rel.endswith(".avro"):
            assert tool.read_avro(tmp_path / rel)[2] == tool.read_avro(REAL / rel)[2], rel
        else:
            assert _same_tables(pq.read_table(tmp_path / rel), pq.read_table(REAL / rel)), rel
