"""Bad input: each case raises AlertFormatError naming file, record and field; skip mode collects."""

from __future__ import annotations

import copy
import io

import fastavro
import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit import AlertFormatError
from lsstuk_kit.schema import pack_wire, schema_id

from .conftest import write


def modified(sim, index, change):
    schema, alerts = sim
    alerts = copy.deepcopy(alerts)
    change(alerts[index])
    return schema, alerts


def test_not_avro(tmp_path):
    p = tmp_path / "notes.avro"
    p.write_text("this is not an alert\n")
    with pytest.raises(AlertFormatError, match="not an Avro container") as exc:
        lk.read_alerts(p)
    assert exc.value.file == str(p) and exc.value.record is None
    assert isinstance(exc.value, ValueError)
    good = sorted((lk.sample_path() / "alerts").glob("*.avro"))[0]
    batch = lk.read_alerts([p, good], errors="skip")
    assert len(batch) == len(lk.read_alerts(good)) > 0 and len(batch.errors) == 1
    assert batch.errors.loc[0, "file"] == str(p)


def test_truncated_file(tmp_path, sim):
    schema, alerts = sim
    full = write(tmp_path / "full.avro", schema, alerts, sync_interval=1)
    data = full.read_bytes()
    cut = tmp_path / "cut.avro"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(AlertFormatError, match="truncated") as exc:
        lk.read_alerts(cut)
    n_ok = exc.value.record
    assert 0 < n_ok < len(alerts)
    batch = lk.read_alerts(cut, errors="skip")
    assert len(batch) == n_ok
    assert list(batch.sources.index) == [a["diaSourceId"] for a in alerts[:n_ok]]
    assert batch.errors.loc[0, "record"] == n_ok


def test_corrupt_record_inside_a_block(tmp_path, sim):
    schema, alerts = sim
    path = write(tmp_path / "c.avro", schema, alerts, sync_interval=1)
    data = bytearray(path.read_bytes())
    # overwrite the middle of the 5th block with garbage (framing and sync stay valid)
    from lsstuk_kit._container import index_container

    idx = index_container(bytes(data))
    a = idx.block_start[4]
    data[a + 20 : a + 60] = b"\xff" * 40
    path.write_bytes(bytes(data))
    with pytest.raises(AlertFormatError) as exc:
        lk.read_alerts(path)
    assert exc.value.record == 4
    batch = lk.read_alerts(path, errors="skip")
    assert len(batch) == len(alerts) - 1
    assert 4 in set(batch.errors["record"]) and alerts[4]["diaSourceId"] not in batch.sources.index


def test_unknown_schema_id(sim):
    schema, alerts = sim
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, alerts[0])
    good = pack_wire(buf.getvalue(), schema_id(11, 1))
    bad = pack_wire(buf.getvalue(), 9999)
    with pytest.raises(AlertFormatError, match="unknown schema id 9999") as exc:
        lk.read_alerts([good, bad])
    assert exc.value.record == 1 and exc.value.field == "schema id"
    batch = lk.read_alerts([good, bad], errors="skip")
    assert len(batch) == 1 and batch.errors.loc[0, "record"] == 1


def test_bad_magic_byte(sim):
    with pytest.raises(AlertFormatError, match="magic byte"):
        lk.read_alerts([b"\x00\x00\x00\x04\x4d" + b"x" * 10, b"\x07abcdefg"])


def test_missing_required_field(tmp_path, sim):
    schema, alerts = sim
    # a producer whose schema lets `ra` be null, and one record without it
    js = copy.deepcopy(fastavro.parse_schema(schema))
    raw = fastavro.reader(io.BytesIO(_container_bytes(schema, alerts))).writer_schema
    for f in raw["fields"]:
        if f["name"] == "diaSource":
            for sub in f["type"]["fields"]:
                if sub["name"] == "ra":
                    sub["type"] = ["null", "double"]
    alerts = copy.deepcopy(alerts)
    alerts[3]["diaSource"]["ra"] = None
    path = write(tmp_path / "noRa.avro", raw, alerts)
    with pytest.raises(AlertFormatError, match="ra is null") as exc:
        lk.read_alerts(path)
    assert (exc.value.file, exc.value.record, exc.value.field) == (str(path), 3, "ra")
    batch = lk.read_alerts(path, errors="skip")
    assert len(batch) == len(alerts) - 1
    del js


def _container_bytes(schema, alerts):
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), alerts[:1])
    return buf.getvalue()


def test_cutout_not_fits(tmp_path, sim):
    schema, alerts = modified(sim, 2, lambda a: a.__setitem__("cutoutDifference", b"PNG\x89 not fits"))
    path = write(tmp_path / "cut.avro", schema, alerts)
    with pytest.raises(AlertFormatError, match="not FITS") as exc:
        lk.read_alerts(path)
    assert (exc.value.record, exc.value.field) == (2, "cutoutDifference")
    batch = lk.read_alerts(path, errors="skip")
    assert len(batch) == len(alerts) - 1


@pytest.mark.parametrize("field,value,match", [
    ("ra", float("nan"), "ra is null, NaN"),
    ("ra", 361.0, "outside"),
    ("dec", -91.0, "outside"),
    ("dec", float("nan"), "dec is null, NaN"),
])
def test_bad_coordinates(tmp_path, sim, field, value, match):
    schema, alerts = modified(sim, 5, lambda a: a["diaSource"].__setitem__(field, value))
    path = write(tmp_path / "coords.avro", schema, alerts)
    with pytest.raises(AlertFormatError, match=match) as exc:
        lk.read_alerts(path)
    assert (exc.value.record, exc.value.field) == (5, field)
    assert str(path) in str(exc.value)
    batch = lk.read_alerts(path, errors="skip")
    assert alerts[5]["diaSourceId"] not in batch.sources.index
    assert len(batch) == len(alerts) - 1
    assert not batch.history["diaObjectId"].isin([alerts[5]["diaSource"]["diaObjectId"]]).any() or \
        batch.sources["diaObjectId"].isin([alerts[5]["diaSource"]["diaObjectId"]]).any()


def test_every_skipped_record_is_listed(tmp_path, sim):
    schema, alerts = sim
    alerts = copy.deepcopy(alerts)
    alerts[1]["diaSource"]["dec"] = 120.0
    alerts[7]["cutoutScience"] = b"garbage"
    alerts[9]["diaSource"]["ra"] = float("nan")
    path = write(tmp_path / "many.avro", schema, alerts)
    batch = lk.read_alerts(path, errors="skip")
    assert sorted(batch.errors["record"]) == [1, 7, 9]
    assert len(batch) + len(batch.errors) == len(alerts)
    assert np.isfinite(batch.sources["ra"]).all()


def test_errors_argument_checked():
    with pytest.raises(ValueError, match="errors must be"):
        lk.read_alerts(lk.sample_path(), errors="ignore")


def test_small_files_decoded_together_keep_their_own_errors(tmp_path, sim):
    """Small files of one schema are merged into one container to decode; errors still name the file."""
    from lsstuk_kit._container import index_container

    schema, alerts = sim
    paths = [write(tmp_path / f"v{k}.avro", schema, alerts[k * 4:(k + 1) * 4], sync_interval=1) for k in range(3)]
    whole = lk.read_alerts(tmp_path)
    separate = lk.AlertBatch.concat([lk.read_alerts(p) for p in paths])
    assert len(whole) == len(alerts) == 12
    assert whole.sources.equals(separate.sources) and whole.history.equals(separate.history)
    assert [r["diaSourceId"] for r in whole] == [a["diaSourceId"] for a in alerts]  # raw records from their files
    # corrupt the 2nd record of the middle file
    data = bytearray(paths[1].read_bytes())
    a = index_container(bytes(data)).block_start[1]
    data[a + 20: a + 60] = b"\xff" * 40
    paths[1].write_bytes(bytes(data))
    with pytest.raises(AlertFormatError) as exc:
        lk.read_alerts(tmp_path)
    assert exc.value.file.endswith("v1.avro") and exc.value.record == 1
    lenient = lk.read_alerts(tmp_path, errors="skip")
    assert list(lenient.errors["record"]) == [1] and lenient.errors["file"].iloc[0].endswith("v1.avro")
    assert len(lenient) == 11 and alerts[5]["diaSourceId"] not in lenient.sources.index


