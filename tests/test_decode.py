"""The compiled decoder against an independent reference: fastavro's dicts under the same projection.

Every output column of every real Avro file, the sample night and every Rubin schema version,
under full and projected reads, must equal what fastavro decodes; schema features the alerts
do not use today (enums, fixed, maps, general unions, nested arrays, negative block counts)
are checked on crafted containers; and a broken record stops with an error code, never a
read past its block.
"""

from __future__ import annotations

import datetime
import glob
import gzip
import io
import math

import fastavro
import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit import _container, _decode
from lsstuk_kit._projection import Output, Projection
from lsstuk_kit.schema import available_schema_versions
from lsstuk_kit.surveys import atlas, lsst, ztf

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _same(a, b):
    if isinstance(b, datetime.datetime) and isinstance(a, int):
        # fastavro applies timestamp logical types; the kit keeps the integer, as written
        return a == (b - _EPOCH) // datetime.timedelta(microseconds=1) or a == (b - _EPOCH) // datetime.timedelta(
            milliseconds=1)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def reference(records, projection, item_fields):
    """The projection carried out on fastavro's dicts: output name -> list of values."""
    out = {}
    for o in projection.outputs:
        vals = []
        for r in records:
            v = r
            for key in o.path:
                v = None if v is None else v.get(key)
            if o.list and v is not None:
                names = o.items if o.items is not None else item_fields[o.name]
                v = [{f: item.get(f) for f in names} for item in v]
            vals.append(v)
        out[o.name] = vals
    return out


def check_file(data, module, columns=None, cutouts=True):
    """Decode ``data`` both ways and compare every output column; return the number of records."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    records = list(fastavro.reader(io.BytesIO(data)))
    idx = _container.index_container(data)
    proj = module.projection(idx.schema, columns, cutouts)
    table = _decode.decode_container(data, module.projection, columns, cutouts)
    assert table.num_rows == len(records)
    item_fields = {o.name: [f.name for f in table.column(o.name).type.value_type]
                   for o in proj.outputs if o.list and o.name in table.column_names}
    expected = reference(records, proj, item_fields)
    assert set(table.column_names) == set(expected), "every output of the projection is decoded"
    for name, vals in expected.items():
        got = table.column(name).to_pylist()
        bad = [i for i, (g, e) in enumerate(zip(got, vals)) if not _same(g, e)]
        assert not bad, f"{name}: records {bad[:5]} differ, e.g. {got[bad[0]]!r:.200} != {vals[bad[0]]!r:.200}"
    return len(records)


def _module_of(path):
    survey, _ = lk.io._identify(_container.schema_key(_container.index_container(path)),
                                _container.index_container(path).schema)
    return {"lsst": lsst, "ztf": ztf, "atlas": atlas}[survey]


def test_every_real_avro_file_decodes_as_fastavro_reads_it(real_alerts):
    files = sorted(glob.glob(str(real_alerts / "*" / "*.avro*")))
    assert len(files) >= 9
    n = 0
    for path in files:
        data = open(path, "rb").read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        mod = _module_of(data)
        for columns, cutouts in ((None, True), (lk.DEFAULT_COLUMNS, False)):
            n += check_file(data, mod, columns, cutouts)
    assert n == 2 * 57  # 7 Rubin + 1 ELAsTiCC + 49 ZTF alerts, read twice


def test_the_sample_night_decodes_as_fastavro_reads_it():
    files = sorted((lk.sample_path() / "alerts").glob("*.avro"))
    assert files
    n = sum(check_file(p.read_bytes(), lsst) for p in files[:12])
    n += sum(check_file(p.read_bytes(), lsst, ["psfFlux", "band"], False) for p in files[12:24])
    assert n > 20


@pytest.mark.parametrize("version", available_schema_versions(), ids=lambda v: f"v{v[0]}_{v[1]}")
def test_every_rubin_schema_version(version):
    from lsstuk_kit.simulate import simulate_packets

    schema, alerts = simulate_packets(4, n_history=5, min_history=2, detect_all=True, seed=3, version=version)
    bio = io.BytesIO()
    fastavro.writer(bio, fastavro.parse_schema(schema), alerts, codec="deflate")
    assert check_file(bio.getvalue(), lsst) == 4
    assert check_file(bio.getvalue(), lsst, ["midpointMjdTai", "psfFlux"], False) == 4


# --------------------------------------------------------------------------- crafted schemas
CRAFTED = {
    "type": "record", "name": "t.alert", "fields": [
        {"name": "id", "type": "long"},
        {"name": "flag", "type": "boolean"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b", "c"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "tags", "type": {"type": "map", "values": ["null", "double"]}},
        {"name": "either", "type": ["null", "int", "string"]},
        {"name": "later", "type": ["string", "null"]},
        {"name": "nested", "type": ["null", {"type": "record", "name": "N", "fields": [
            {"name": "x", "type": "float"}, {"name": "deep", "type": {"type": "array", "items": {
                "type": "array", "items": "int"}}}]}]},
        {"name": "hist", "type": ["null", {"type": "array", "items": {"type": "record", "name": "H", "fields": [
            {"name": "t", "type": "double"}, {"name": "f", "type": ["null", "float"]},
            {"name": "b", "type": ["null", "string"]},
            {"name": "skip", "type": {"type": "array", "items": "long"}}]}}]},
        {"name": "stamp", "type": ["null", "bytes"]},
    ]}
CRAFTED_PROJ = Projection((
    Output("a:id", ("id",)), Output("a:flag", ("flag",)), Output("a:kind", ("kind",)),
    Output("a:digest", ("digest",)), Output("a:later", ("later",)), Output("s:x", ("nested", "x")),
    Output("h:hist", ("hist",), items=("t", "f", "b"), list=True), Output("c:stamp", ("stamp",)),
))


def _crafted_records(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        out.append({
            "id": int(rng.integers(-2**62, 2**62)), "flag": bool(i % 2), "kind": "abc"[i % 3],
            "digest": bytes(rng.integers(0, 256, 4).astype(np.uint8)),
            "tags": {f"k{j}": (None if j % 2 else float(j)) for j in range(k)},
            "either": [None, i, f"s{i}"][i % 3], "later": None if i % 4 == 0 else f"é{i}",
            "nested": None if i % 5 == 0 else {"x": float(np.float32(i / 3)), "deep": [[1, 2], [], [i]]},
            "hist": None if i % 6 == 0 else [{"t": i + j / 10, "f": None if j % 3 == 0 else float(np.float32(j)),
                                              "b": "gri"[j % 3] if j % 2 else None, "skip": list(range(j % 3))}
                                             for j in range(k * 3)],
            "stamp": None if i % 7 == 0 else bytes(range(i % 50)),
        })
    return out


def _decode_crafted(data):
    idx = _container.index_container(data)
    dec = _decode.decoder_for(_container.schema_key(idx), CRAFTED_PROJ)
    buf = np.frombuffer(data, np.uint8)
    return dec.decode(buf, idx.block_data_start, idx.block_end - _container.SYNC_SIZE, idx.block_count)


def test_crafted_schema_features_decode_as_fastavro_reads_them():
    records = _crafted_records(60)
    bio = io.BytesIO()
    fastavro.writer(bio, fastavro.parse_schema(CRAFTED), records, sync_interval=2000)
    data = bio.getvalue()
    table, status = _decode_crafted(data)
    assert all(code == 0 for _, code, _, _ in status) and len(status) > 3
    got = reference(list(fastavro.reader(io.BytesIO(data))), CRAFTED_PROJ, {})
    for name, vals in got.items():
        assert _same(table.column(name).to_pylist(), vals), name


def test_negative_block_counts_with_sizes_are_read():
    """Avro lets a writer give an array block as (-count, byte size); the decoder skips or reads it."""
    w = _container._write_long
    schema = {"type": "record", "name": "r", "fields": [
        {"name": "a", "type": {"type": "array", "items": "long"}},
        {"name": "h", "type": ["null", {"type": "array", "items": {"type": "record", "name": "I", "fields": [
            {"name": "v", "type": "long"}]}}]},
        {"name": "z", "type": "long"}]}
    items = w(5) + w(6) + w(7)
    body = (w(-3) + w(len(items)) + items + w(0)  # a: skipped whole by its size
            + w(1) + w(-2) + w(2) + w(11) + w(12) + w(1) + w(13) + w(0)  # h: two blocks, the first sized
            + w(99))
    idx_header = _container.make_header(__import__("json").dumps(schema), sync=b"S" * 16)
    data = idx_header + w(1) + w(len(body)) + body + b"S" * 16
    assert list(fastavro.reader(io.BytesIO(data))) == [{"a": [5, 6, 7], "h": [{"v": 11}, {"v": 12}, {"v": 13}],
                                                        "z": 99}]
    proj = Projection((Output("h:h", ("h",), items=("v",), list=True), Output("a:z", ("z",))))
    idx = _container.index_container(data)
    dec = _decode.decoder_for(_container.schema_key(idx), proj)
    table, status = dec.decode(np.frombuffer(data, np.uint8), idx.block_data_start,
                               idx.block_end - _container.SYNC_SIZE, idx.block_count)
    assert status[0][1] == 0
    assert table.column("h:h").to_pylist() == [[{"v": 11}, {"v": 12}, {"v": 13}]]
    assert table.column("a:z").to_pylist() == [99]


def test_history_buffers_grow_and_give_the_same_table(monkeypatch):
    records = _crafted_records(200, seed=3)
    bio = io.BytesIO()
    fastavro.writer(bio, fastavro.parse_schema(CRAFTED), records, sync_interval=500)
    data = bio.getvalue()
    whole, _ = _decode_crafted(data)
    monkeypatch.setattr(_decode.Decoder, "BYTES_PER_ITEM_GUESS", 10**9)  # start with room for 256 items
    grown, status = _decode_crafted(data)
    assert sum(len(v or ()) for v in whole.column("h:hist").to_pylist()) > 256  # so it had to grow
    assert grown.equals(whole) and all(code == 0 for _, code, _, _ in status)


def test_a_broken_record_stops_its_block_and_rolls_it_back():
    records = _crafted_records(40, seed=5)
    bio = io.BytesIO()
    fastavro.writer(bio, fastavro.parse_schema(CRAFTED), records, sync_interval=800)
    data = bytearray(bio.getvalue())
    idx = _container.index_container(bytes(data))
    assert len(idx.block_count) >= 3
    whole, _ = _decode_crafted(bytes(data))
    # the enum index of the first record of block 1 (after the id varint and the boolean): out of range
    pos = int(idx.block_data_start[1])
    while data[pos] & 0x80:
        pos += 1
    data[pos + 2] = 0x7E  # zig-zag 63: no such symbol
    table, status = _decode_crafted(bytes(data))
    assert [s[1] for s in status][:3] == [0, 5, 0] and status[1][3] == "kind"
    n0, n1 = int(idx.block_count[0]), int(idx.block_count[1])
    keep = np.r_[np.arange(n0), np.arange(n0 + n1, len(records))]
    assert table.equals(whole.take(keep))  # no half rows of the refused block anywhere


def test_every_truncation_and_every_byte_of_a_real_alert_is_checked(real_alerts):
    """Each prefix of a real alert's block, and a flipped byte at 400 places: an error code or a
    record that fastavro reads the same way, never a crash or a read past the block."""
    data = (real_alerts / "lsst" / "part-2-918301.avro").read_bytes()
    idx = _container.index_container(data)
    dec = _decode.decoder_for(_container.schema_key(idx), lsst.projection(idx.schema))
    start, end = int(idx.block_data_start[0]), int(idx.block_end[0]) - _container.SYNC_SIZE
    first = bytes(data[start:end])
    # one record's bytes in a buffer that ends exactly where the block does: any overrun would read past it
    for cut in np.linspace(1, len(first) - 1, 300).astype(int):
        buf = np.frombuffer(first[:cut], np.uint8).copy()
        _, status = dec.decode(buf, [0], [cut], [int(idx.block_count[0])])
        assert status[0][1] != 0
    rng = np.random.default_rng(1)
    ok = bad = 0
    for at in rng.integers(0, len(first), 400):
        mutated = bytearray(first)
        mutated[at] ^= 0xFF
        buf = np.frombuffer(bytes(mutated), np.uint8).copy()
        table, status = dec.decode(buf, [0], [len(mutated)], [int(idx.block_count[0])])
        if status[0][1]:
            bad += 1
            assert table.num_rows == 0
        else:
            ok += 1
    assert bad > 0 and ok > 0


def test_a_writer_schema_fastavro_refuses_is_a_block_error_not_a_crash():
    """The record walk that names a refused record's fault must not raise fastavro's own schema errors
    (found by bench_fuzz: a ZTF cutout field made "bytes" with its default null)."""
    import json

    raw = json.dumps({"type": "record", "name": "a", "fields": [{"name": "x", "type": "bytes", "default": None}]})
    check = _container.walk_block(b"\x02a", 1, raw.encode())
    assert check.good == 0 and check.holds is None and "writer schema cannot be used" in check.error
