from __future__ import annotations

import gzip
import io

import fastavro
import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.schema import load_rubin_schema, pack_wire, schema_id
from lsstuk_kit.simulate import simulate_packets

from .conftest import write

N_SAMPLE = len(pd.read_parquet(lk.sample_path() / "truth.parquet"))


def tables_equal(a, b):
    pd.testing.assert_frame_equal(a.sources.sort_index(), b.sources.sort_index(), check_like=True)
    pd.testing.assert_frame_equal(a.history, b.history, check_like=True)
    pd.testing.assert_frame_equal(a.objects, b.objects, check_like=True)


def test_folder_glob_list_bytes_gz_agree(tmp_path):
    folder = lk.sample_path() / "alerts"
    files = sorted(folder.glob("*.avro"))
    by_folder = lk.read_alerts(folder)
    by_glob = lk.read_alerts(str(folder / "visit_*.avro"))
    by_list = lk.read_alerts([str(f) for f in files])
    by_bytes = lk.read_alerts([f.read_bytes() for f in files])
    gz = tmp_path / "nested" / "deeper"
    gz.mkdir(parents=True)
    for f in files:
        (gz / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    by_gz = lk.read_alerts(tmp_path)  # recursive search finds the .avro.gz files
    for other in (by_glob, by_list, by_bytes, by_gz):
        tables_equal(by_folder, other)
    assert len(by_folder) == N_SAMPLE


def test_single_bytes_container():
    f = sorted((lk.sample_path() / "alerts").glob("*.avro"))[0]
    batch = lk.read_alerts(f.read_bytes())
    assert len(batch) == len(list(fastavro.reader(io.BytesIO(f.read_bytes()))))


@pytest.mark.parametrize("version", [(7, 1), (9, 0), (10, 0), (11, 0)])
def test_wire_format_messages(version):
    schema, alerts = simulate_packets(6, n_history=4, seed=11, version=version)
    sid = schema_id(*version)
    msgs = []
    for a in alerts:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, a)
        msgs.append(pack_wire(buf.getvalue(), sid))
    assert msgs[0][:5] == b"\x00" + sid.to_bytes(4, "big")
    batch = lk.read_alerts(msgs)
    assert len(batch) == 6
    assert (batch.sources["schemaVersion"] == f"lsst.v{version[0]}_{version[1]}").all()
    assert list(batch.sources.index) == [a["diaSource"]["diaSourceId"] for a in alerts]
    assert np.allclose(batch.sources["psfFlux"], [a["diaSource"]["psfFlux"] for a in alerts])
    # raw dicts come back in order, identical to what was sent
    assert [r["diaSource"]["diaSourceId"] for r in batch] == [a["diaSource"]["diaSourceId"] for a in alerts]


def test_mixed_wire_versions_in_one_list():
    msgs = []
    for seed, version in [(5, (7, 1)), (6, (11, 0))]:
        schema, alerts = simulate_packets(3, n_history=2, seed=seed, version=version)
        for a in alerts:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, a)
            msgs.append(pack_wire(buf.getvalue(), schema_id(*version)))
    batch = lk.read_alerts(msgs)
    assert sorted(batch.sources["schemaVersion"].value_counts().to_dict().items()) == [
        ("lsst.v11_0", 3), ("lsst.v7_1", 3)]


def test_column_projection_keeps_core_and_requested():
    full = lk.load_sample()
    small = lk.load_sample(columns=["snr"])
    assert {"diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "snr",
            "mag"} <= set(small.sources.columns)
    assert "apFlux" in full.sources.columns and "apFlux" not in small.sources.columns
    assert "apFlux" not in small.history.columns
    pd.testing.assert_series_equal(small.sources["psfFlux"], full.sources["psfFlux"])
    assert len(small.history) == len(full.history)


def _noted(seen, parts):
    seen.append(parts)
    return parts


def test_large_file_split_into_parts_reads_identically(tmp_path, monkeypatch):
    schema, alerts = simulate_packets(60, n_history=20, seed=2, cutouts=False)
    path = write(tmp_path / "big.avro", schema, alerts, sync_interval=1)  # one block per alert
    whole = lk.read_alerts(path, workers=1)
    from lsstuk_kit import _reader

    # force many parts over 2 workers (read by _Reader.make_parts)
    monkeypatch.setattr(_reader, "_PART_BYTES", 1)
    monkeypatch.setattr(_reader, "_PART_RECORDS", 1)
    made = []
    real = _reader._Reader.make_parts
    monkeypatch.setattr(_reader._Reader, "make_parts", lambda self, units: _noted(made, real(self, units)))
    split = lk.read_alerts(path, workers=2)
    assert len(made[0]) >= 4
    tables_equal(whole, split)
    assert list(split.sources.index) == [a["diaSource"]["diaSourceId"] for a in alerts]


def test_small_files_are_decoded_in_parts_of_many_records(tmp_path, monkeypatch):
    """Visit files of light alerts: parts are cut by records as well as bytes (each part costs a fixed
    mapping time), and a part's files are read into one buffer with no copy; tables as one by one."""
    from lsstuk_kit import _reader

    schema, alerts = simulate_packets(120, n_history=0, seed=4)
    paths = [write(tmp_path / f"visit{k:02d}.avro", schema, alerts[k * 10:(k + 1) * 10]) for k in range(12)]
    made, copied = [], []
    real = _reader._Reader.make_parts
    monkeypatch.setattr(_reader._Reader, "make_parts", lambda self, units: _noted(made, real(self, units)))
    monkeypatch.setattr(_reader, "_PART_RECORDS", 50)
    monkeypatch.setattr(_reader, "_PART_BYTES", 1)
    merged = _reader._Reader._decode_merged
    monkeypatch.setattr(_reader._Reader, "_decode_merged",
                        lambda self, prep, dec, whole=None, at=None: copied.append(whole is None)
                        or merged(self, prep, dec, whole, at))
    got = lk.read_alerts(tmp_path, workers=2)
    assert [sum(int(u.index.block_count[b].sum()) for u, b in p.units) for p in made[0]] == [50, 50, 20]
    assert copied == [False, False, False]
    one_by_one = lk.AlertBatch.concat([lk.read_alerts(p, workers=1) for p in paths])
    tables_equal(one_by_one, got)
    first = got.sources.index[0]
    assert got.cutouts(first).difference.shape == (30, 30)
    # heavy records (bytes reach the floor first): cut by bytes as before, about two parts per worker
    monkeypatch.setattr(_reader, "_PART_MIN_BYTES", 1)
    made.clear()
    tables_equal(one_by_one, lk.read_alerts(tmp_path, workers=2))
    assert len(made[0]) >= 4 and sum(len(p.units) for p in made[0]) == 12


def test_bad_source_type():
    with pytest.raises(TypeError, match="source must be"):
        lk.read_alerts(12345)


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        lk.read_alerts("/no/such/alerts.avro")


def test_load_rubin_schema_unknown():
    with pytest.raises(KeyError, match="not shipped"):
        load_rubin_schema(99, 0)


def test_an_empty_folder_warns_that_no_alerts_were_found(tmp_path):
    (tmp_path / "notes.txt").write_text("not alerts")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.warns(UserWarning, match="no alerts found"):
        batch = lk.read_alerts(empty)
    assert len(batch) == 0
