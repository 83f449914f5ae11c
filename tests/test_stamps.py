"""Zero-copy cutouts (``lsstuk_kit._stamps``): slices of the blocks' bytes the batch owns.

The stamps a read keeps must be byte for byte what fastavro reads, for every codec, after
the pages around them are released, through ``take``/``concat``/subsets, and the column
must stand in for the ``pyarrow.BinaryArray`` it replaces wherever the kit uses one.
"""

from __future__ import annotations

import io
import pickle

import fastavro
import numpy as np
import pyarrow as pa
import pytest

import lsstuk_kit as lk
from lsstuk_kit import _reader, _stamps
from lsstuk_kit._assemble import concat_cutouts

from .conftest import write

NAMES = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}


def _heavy(sim, n=40):
    """Alerts with big stamps and some history, so stamps and history share pages."""
    schema, alerts = sim
    out = []
    rng = np.random.default_rng(5)
    for i in range(n):
        a = dict(alerts[i % len(alerts)])
        src = dict(a["diaSource"])
        src["diaSourceId"] = a["diaSourceId"] = 10**15 + i
        a["diaSource"] = src
        for k, field in enumerate(NAMES.values()):
            if (i + k) % 7 == 3:
                a[field] = None  # some null cutouts
            else:
                size = int(rng.integers(2000, 40000))
                a[field] = b"SIMPLE  =" + rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        out.append(a)
    return schema, out


def _expected(path):
    with open(path, "rb") as fh:
        return {int(r["diaSourceId"]): r for r in fastavro.reader(fh)}


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_stamps_are_the_bytes_fastavro_reads(tmp_path, sim, codec):
    schema, alerts = _heavy(sim)
    path = write(tmp_path / f"heavy_{codec}.avro", schema, alerts, codec=codec, sync_interval=50_000)
    want = _expected(path)
    batch = lk.read_alerts(path, workers=2)
    store = batch._store
    assert all(isinstance(c, _stamps.StampColumn) for c in store.cutouts.values())
    for sid in batch.sources.index:
        raw = batch._cutout_bytes(sid)
        for name, field in NAMES.items():
            assert raw[name] == want[int(sid)][field]
    # a subset, a concatenation and a projected read keep them
    both = lk.AlertBatch.concat([batch[5:20], batch[:5]])
    for sid in both.sources.index:
        assert both._cutout_bytes(sid)["science"] == want[int(sid)]["cutoutScience"]
    proj = lk.read_alerts(path, columns=lk.DEFAULT_COLUMNS)
    for name, col in proj._store.cutouts.items():
        assert col.take(proj._pos).to_pylist() == [want[int(s)][NAMES[name]] for s in proj.sources.index]


def test_stamp_column_stands_in_for_a_binary_array():
    buf = _stamps.private_buffer(3 * 4096)
    buf[:] = np.frombuffer(np.random.default_rng(1).bytes(len(buf)), np.uint8)
    buf[100:106] = np.frombuffer(b"SIMPLE", np.uint8)
    buf[5000:5002] = np.frombuffer(b"\x1f\x8b", np.uint8)
    col = _stamps.StampColumn((buf,), [0, 0, 0, 0, 0], [100, 5000, 0, 7000, 9000], [300, 40, -1, 0, 3])
    ref = pa.array([bytes(buf[100:400]), bytes(buf[5000:5040]), None, b"", bytes(buf[9000:9003])], pa.binary())
    assert col.to_arrow().equals(ref) and pa.array(col).equals(ref) and col.cast(pa.binary()).equals(ref)
    assert col.to_pylist() == ref.to_pylist() and len(col) == 5 and col.null_count == 1
    assert col[1].as_py() == ref[1].as_py() and col[2].as_py() is None and col[-1].as_py() == ref[4].as_py()
    idx = [4, 0, 0, 2]
    for how in (idx, np.asarray(idx), pa.array(idx)):
        assert col.take(how).to_arrow().equals(ref.take(pa.array(idx)))
    with pytest.raises(IndexError):
        col.take([5])
    with pytest.raises(IndexError):
        col.take([-1])
    assert col.filter(np.array([True, False, True, False, True])).to_pylist() == [ref[0].as_py(), None,
                                                                                    ref[4].as_py()]
    # the FITS check of the reader gives what the Arrow kernels give on the bytes
    assert col.heads_ok().tolist() == [True, True, True, False, False]
    # the first bytes of each row as a matrix (only rows at least that long, non-null)
    two = col.take([1, 0, 1])
    assert two.heads(40).tolist() == [list(buf[5000:5040]), list(buf[100:140]), list(buf[5000:5040])]
    assert two.heads(0).shape == (3, 0) and col.take([]).heads(8).shape == (0, 8)
    for short in ([0, 1], [2], [3]):  # 41 > 40 bytes; a null; an empty stamp
        with pytest.raises(ValueError, match="shorter than"):
            col.take(short).heads(41 if short == [0, 1] else 1)
    # concatenating: with other stamp columns it stays zero-copy, with Arrow arrays it becomes one
    both = concat_cutouts([col, None, col], [5, 2, 5])
    assert isinstance(both, _stamps.StampColumn) and len(both) == 12 and both.null_count == 4
    assert both.to_arrow().equals(pa.concat_arrays([ref, pa.nulls(2, pa.binary()), ref]))
    back = pickle.loads(pickle.dumps(col))  # pickled as the BinaryArray it stands for
    assert isinstance(back, pa.Array) and back.equals(ref)
    mixed = concat_cutouts([col, ref])
    assert isinstance(mixed, pa.Array) and mixed.equals(pa.concat_arrays([ref, ref]))


def test_trim_releases_only_pages_without_stamps():
    page = 4096
    buf = _stamps.private_buffer(_stamps._SMALL)  # a map of its own from this size on
    assert _stamps._mapping(buf) is not None and _stamps._mapping(buf[page:]) is None
    assert _stamps._mapping(_stamps.private_buffer(1000)) is None  # small: plain memory, never released
    buf[:] = 7
    col = _stamps.StampColumn((buf,), [0, 0], [3 * page + 10, 40 * page - 5], [2 * page, 10])
    before = col.to_pylist()
    _stamps.trim(buf, [col])
    assert col.to_pylist() == before  # the stamps' pages are kept
    assert buf[0] == 0 and buf[20 * page] == 0 and buf[-1] == 0  # released pages read as zeros
    assert buf[3 * page] == 7 and buf[5 * page + 9] == 7 and buf[39 * page] == 7 and buf[40 * page] == 7
    other = np.full(64 * page, 7, np.uint8)  # memory not made by private_buffer is never released
    _stamps.trim(other, [_stamps.StampColumn((other,), [0], [0], [1])])
    assert (other == 7).all()


def test_a_file_cut_short_while_being_read_names_its_records(tmp_path, sim, monkeypatch):
    schema, alerts = _heavy(sim, n=12)
    path = write(tmp_path / "cut.avro", schema, alerts, sync_interval=1)
    real = _reader._pread_into

    def short(fh, buf, offset):  # the file loses its last bytes between framing and reading
        return max(real(fh, buf, offset) - 5000, 0)

    monkeypatch.setattr(_reader, "_pread_into", short)
    with pytest.raises(lk.AlertFormatError) as exc:
        lk.read_alerts(path, workers=1)
    assert exc.value.file == str(path) and exc.value.record == 11 and "truncated" in exc.value.reason
    batch = lk.read_alerts(path, errors="skip", workers=1)
    assert len(batch) == 11 and [e.record for e in batch._store.errors] == [11]
    want = _expected(path)
    for sid in batch.sources.index:
        assert batch._cutout_bytes(sid)["template"] == want[int(sid)]["cutoutTemplate"]


def test_stamps_outlive_the_file(tmp_path, sim):
    """The batch owns its stamps' bytes: the file rewritten or removed after the read changes nothing."""
    schema, alerts = _heavy(sim, n=10)
    path = write(tmp_path / "gone.avro", schema, alerts)
    want = _expected(path)
    batch = lk.read_alerts(path)
    with open(path, "r+b") as fh:
        fh.truncate(100)
    path.unlink()
    for sid in batch.sources.index:
        assert batch._cutout_bytes(sid)["difference"] == want[int(sid)]["cutoutDifference"]


def test_decoder_stamps_equal_the_gathered_column(sim):
    from lsstuk_kit import _container, _decode
    from lsstuk_kit.surveys import lsst

    schema, alerts = _heavy(sim, n=15)
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), alerts)
    data = out.getvalue()
    idx = _container.index_container(data)
    dec = _decode.decoder_for(_container.schema_key(idx), lsst.projection(idx.schema, None, True))
    buf = np.frombuffer(data, np.uint8)
    args = (buf, idx.block_data_start, idx.block_end - _container.SYNC_SIZE, idx.block_count)
    whole, _ = dec.decode(*args)
    stamps = {}
    rest, _ = dec.decode(*args, stamps=stamps)
    assert sorted(stamps) == sorted("c:" + f for f in NAMES.values())
    for name, col in stamps.items():
        assert col.to_arrow().equals(whole.column(name).chunk(0))
    assert rest.equals(whole.drop_columns(list(stamps)))
