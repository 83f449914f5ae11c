"""The columnar Avro encoder writes exactly what fastavro writes."""

from __future__ import annotations

import io
import json

import fastavro
import numpy as np
import pytest

from lsstuk_kit._encode import FixedBytes, ListColumn, RecordEncoder, encode_container, varint
from lsstuk_kit.surveys._avrotypes import collect_names, resolve


def columns_from_dicts(rtype, names, records):
    kind, rec = resolve(rtype, names)
    if kind == "array":
        kind, rec = resolve(rec["items"], names)
    cols = {}
    for f in rec["fields"]:
        vals = [r[f["name"]] for r in records]
        k, d = resolve(f["type"], names)
        if k == "record":
            if any(v is None for v in vals):
                continue  # leave null records out (the encoder writes null)
            cols[f["name"]] = columns_from_dicts(d, names, vals)
        elif k == "array":
            if all(v is None for v in vals):
                continue  # a null array, not an empty one
            counts = np.array([len(v or []) for v in vals])
            items = [x for v in vals for x in (v or [])]
            cols[f["name"]] = ListColumn(columns_from_dicts(d, names, items) if items else {}, counts)
        elif k == "bytes":
            cols[f["name"]] = vals
        elif all(v is None for v in vals):
            continue
        elif isinstance(d, str) and d == "string" or isinstance(d, dict):
            cols[f["name"]] = np.array(vals, dtype=object)
        else:
            mask = np.array([v is None for v in vals])
            data = np.array([0 if v is None else v for v in vals])
            cols[f["name"]] = np.ma.MaskedArray(data, mask) if mask.any() else data
    return cols


def test_varint_matches_avro():
    vals = np.array([0, -1, 1, 63, -64, 64, 2**31, -(2**40), 2**62, -(2**63), 2**63 - 1])
    p = varint(vals)
    for v, a, b in zip(vals, np.cumsum(p.lengths) - p.lengths, np.cumsum(p.lengths)):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, "long", int(v))
        assert p.flat[a:b].tobytes() == buf.getvalue()


@pytest.mark.parametrize("version", [(7, 1), (10, 0), (11, 1)])
def test_alerts_byte_identical_to_fastavro(version):
    from lsstuk_kit.simulate import simulate_packets

    schema, alerts = simulate_packets(15, n_history=6, seed=4, version=version)
    names = collect_names(schema)
    cols = columns_from_dicts(schema, names, alerts)
    rows = RecordEncoder(schema, names).encode_rows(cols, len(alerts))
    for a, got in zip(alerts, rows):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), a)
        assert got == buf.getvalue()


def test_fixed_bytes_masks_and_container(tmp_path):
    schema = {"type": "record", "name": "t", "fields": [
        {"name": "id", "type": "long"},
        {"name": "x", "type": ["null", "double"]},
        {"name": "s", "type": ["null", "string"]},
        {"name": "stamp", "type": ["null", "bytes"]},
        {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "it", "fields": [
            {"name": "v", "type": "float"}]}}},
    ]}
    n = 5
    cols = {"id": np.arange(n) * 1000, "x": np.ma.MaskedArray(np.arange(n) * 1.5, [0, 1, 0, 1, 0]),
            "s": np.array(["a", None, "ccc", "a", "dd"], dtype=object),
            "stamp": FixedBytes(np.arange(n * 7, dtype=np.uint8).reshape(n, 7), np.array([1, 1, 0, 1, 1], bool)),
            "items": ListColumn({"v": np.arange(6, dtype=float)}, np.array([0, 2, 0, 3, 1]))}
    piece = RecordEncoder(schema).encode(cols, n)
    data = encode_container(json.dumps(schema), piece, records_per_block=2, codec="deflate")
    recs = list(fastavro.reader(io.BytesIO(data)))
    assert [r["id"] for r in recs] == [0, 1000, 2000, 3000, 4000]
    assert [r["x"] for r in recs] == [0.0, None, 3.0, None, 6.0]
    assert [r["s"] for r in recs] == ["a", None, "ccc", "a", "dd"]
    assert recs[2]["stamp"] is None and recs[1]["stamp"] == bytes(range(7, 14))
    assert [[i["v"] for i in r["items"]] for r in recs] == [[], [0.0, 1.0], [], [2.0, 3.0, 4.0], [5.0]]


def test_not_nullable_rejects_nulls():
    schema = {"type": "record", "name": "t", "fields": [{"name": "x", "type": "double"}]}
    with pytest.raises(ValueError, match="not nullable"):
        RecordEncoder(schema).encode({"x": np.ma.MaskedArray([1.0, 2.0], [0, 1])}, 2)
