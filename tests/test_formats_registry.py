"""The format registry and conformance on every real file beside the project (issue 12)."""

from __future__ import annotations

import io
import json
import warnings

import fastavro
import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit import AlertFormatError, formats
from lsstuk_kit.formats import FormatSpec, Sniff, UnknownFormatError

# alerts per real file, from ../shared/real-alerts/README.md
REAL_COUNTS = {
    "lsst/part-2-918301.avro": (7, "lsst", None),
    "lsst/elasticc_alert_mjd60674.0512_obj747_src1494043.avro.gz": (1, "lsst", None),
    "ztf/part-3-305711.avro": (31, "ztf", None),
    "ztf/avro_multi_alerts.avro": (11, "ztf", None),
    "ztf/avro_multi_alerts_other.avro": (3, "ztf", None),
    "ztf/ZTF19acihgng.avro": (1, "ztf", None),
    "ztf/ZTF19acxxwrs.avro": (1, "ztf", None),
    "ztf/ZTF19acyfkzd.avro": (1, "ztf", None),
    "ztf/ZTF19acyjzeo.avro": (1, "ztf", None),
    "fink/fink_rubin_test_data_10_0.parquet": (27, "lsst", "fink"),
    "fink/fink_ztf_ctao_blazar_414.parquet": (414, "ztf", "fink"),
    "fink/fink_ztf_iband_history_121.parquet": (121, "ztf", "fink"),
}


def _sample_alerts():
    """Alerts in the sample night, from its file index (679 at the time of writing)."""
    import pandas as pd

    return int(pd.read_csv(lk.sample_path() / "alerts" / "index.csv")["n_alerts"].sum())


def test_list_formats_names_every_format_with_an_example():
    table = lk.list_formats()
    names = set(table["name"])
    assert {"rubin-avro", "ztf-avro", "atlas-avro", "kafka-wire", "fink-parquet", "lasair-json", "lasair-api",
            "alerce-json", "antares-json", "atlas-ddc"} <= names
    assert table["example"].str.contains("read_alerts").all()
    assert table["name"].is_unique


def test_every_real_file_is_in_the_table(real_alerts):
    found = {str(p.relative_to(real_alerts)) for p in real_alerts.rglob("*") if p.is_file() and p.name != "README.md"}
    assert found == set(REAL_COUNTS), "a real file was added or removed: update REAL_COUNTS from the README"


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_file_reads_with_auto_detection(real_alerts, name):
    n, survey, broker = REAL_COUNTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fink's lossy double ids warn (tested in test_fink_parquet)
        batch = lk.read_alerts(real_alerts / name, errors="skip")
    assert len(batch) == n and len(batch.errors) == 0
    s = batch.sources
    assert set(s["survey"]) == {survey}
    assert set(s["broker"].astype(object).where(s["broker"].notna(), None)) == {broker}
    assert s.index.is_unique and (s.index > 0).all()
    assert s[["ra", "dec", "midpointMjdTai", "band"]].notna().all().all()
    assert set(batch.history["kind"].unique()) <= {"detection", "forced", "upper_limit"}
    assert set(batch.history["diaObjectId"]) >= set(s["diaObjectId"])
    # the alert's own detection is in its light curve
    det = batch.history[batch.history["kind"] == "detection"]
    assert np.isin(s["midpointMjdTai"].to_numpy(), det["midpointMjdTai"].to_numpy()).all()


def test_whole_real_folder_at_once(real_alerts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = lk.read_alerts(real_alerts, errors="skip")
    assert len(batch) == sum(n for n, _, _ in REAL_COUNTS.values())
    assert len(batch.errors) == 0
    by = batch.sources.groupby(["survey", batch.sources["broker"].fillna("-")]).size().to_dict()
    assert by[("lsst", "fink")] == 27 and by[("ztf", "fink")] == 535 and by[("lsst", "-")] == 8


def test_named_format_must_fit(real_alerts):
    with pytest.raises(AlertFormatError, match="schema is a ztf alert"):
        lk.read_alerts(real_alerts / "ztf" / "ZTF19acihgng.avro", format="rubin-avro")
    with pytest.raises(AlertFormatError, match="reads Avro alert containers"):
        lk.read_alerts(real_alerts / "fink" / "fink_rubin_test_data_10_0.parquet", format="rubin-avro")
    with pytest.raises(AlertFormatError, match="Avro container"):
        lk.read_alerts(real_alerts / "lsst" / "part-2-918301.avro", format="fink-parquet")


def test_unknown_format_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="fink-parquet") as exc:
        lk.read_alerts(b"{}", format="votable")
    assert "unknown format 'votable'" in str(exc.value)


def test_input_no_format_claims_lists_the_formats(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("RA Dec mag\n1 2 3\n")
    with pytest.raises(UnknownFormatError) as exc:
        lk.read_alerts(p)
    for name in ("lasair-json", "fink-parquet", "atlas-ddc", "rubin-avro"):
        assert name in str(exc.value)
    # JSON no broker format claims (a list of numbers): the same error, naming the source
    with pytest.raises(UnknownFormatError, match="<json>"):
        lk.read_alerts('{"hello": [1, 2, 3]}')
    # in skip mode it is one row for the whole source
    batch = lk.read_alerts([p, lk.sample_path() / "alerts"], errors="skip")
    assert len(batch) == _sample_alerts() and batch.errors["file"].tolist() == [str(p)]
    assert batch.errors["record"].isna().all()


def test_unknown_avro_schema_is_named_not_a_keyerror():
    schema = {"type": "record", "name": "alert", "namespace": "pan.starrs",
              "fields": [{"name": "objid", "type": "long"}, {"name": "mag", "type": "float"}]}
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [{"objid": 1, "mag": 20.0}])
    with pytest.raises(AlertFormatError) as exc:
        lk.read_alerts(buf.getvalue())
    msg = str(exc.value)
    assert "pan.starrs.alert" in msg and "atlas-avro" in msg and "KeyError" not in msg


def test_folder_leaves_other_files_alone():
    # the sample's folder holds truth/population Parquet tables beside the alerts: not claimed, not errors
    batch = lk.read_alerts(lk.sample_path(), errors="skip")
    assert len(batch) == _sample_alerts() and len(batch.errors) == 0


def test_mixed_inputs_keep_source_order_and_accounting(tmp_path, real_alerts):
    sample = lk.load_sample()
    from lsstuk_kit.formats.lasair_json import to_lasair_messages

    msgs = [json.dumps(m).encode() for m in to_lasair_messages(sample[:5], kind="full")]
    p = tmp_path / "msgs.jsonl"
    p.write_bytes(b"\n".join(msgs[:4]) + b"\n" + msgs[4][: len(msgs[4]) // 2] + b"\n")
    batch = lk.read_alerts([real_alerts / "ztf" / "ZTF19acihgng.avro", p], errors="skip")
    assert batch.sources["survey"].tolist() == ["ztf"] + ["lsst"] * 4
    assert batch.sources["broker"].tolist()[1:] == ["lasair"] * 4
    assert len(batch.errors) == 1 and batch.errors["record"].iloc[0] == 4 and "lasair-json" in batch.errors["reason"][0]


def test_register_refuses_a_taken_name():
    spec = formats.get("fink-parquet")
    with pytest.raises(ValueError, match="already registered"):
        formats.register(spec)
    # an identifier that raises never breaks identification
    bad = FormatSpec("zz-broken", "raises", identify=lambda s: 1 / 0, read=lambda s: [])
    formats.register(bad)
    try:
        assert formats.identify(Sniff(label="x", head=b"PAR1")).name != "zz-broken"
    finally:
        formats._REGISTRY.pop("zz-broken")


def test_ambiguous_claims_are_refused():
    a = FormatSpec("zz-a", "a", identify=lambda s: s.head.startswith(b"ZZ"), read=lambda s: [])
    b = FormatSpec("zz-b", "b", identify=lambda s: s.head.startswith(b"ZZ"), read=lambda s: [])
    formats.register(a)
    formats.register(b)
    try:
        with pytest.raises(UnknownFormatError, match="ambiguous"):
            formats.identify(Sniff(label="x", head=b"ZZ top"))
        formats.register(FormatSpec("zz-b", "b", identify=b.identify, read=b.read, priority=1), force=True)
        assert formats.identify(Sniff(label="x", head=b"ZZ top")).name == "zz-b"
    finally:
        formats._REGISTRY.pop("zz-a")
        formats._REGISTRY.pop("zz-b")


def test_mixed_surveys_key_objects_by_string(real_alerts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = lk.read_alerts([real_alerts / "lsst" / "part-2-918301.avro", real_alerts / "ztf" / "ZTF19acihgng.avro"])
    objs = batch.objects  # Rubin integer ids and ZTF text ids in one index
    assert objs.index.is_unique and all(isinstance(i, str) for i in objs.index)
    assert set(objs.index) <= set(batch.sources["diaObjectId"])
    assert "ZTF19acihgng" in objs.index


def test_truncated_json_text_is_named_as_json():
    batch = lk.read_alerts('{"diaObjectId": 1, "alert": {"diaSourcesList": [', errors="skip")
    assert len(batch) == 0 and len(batch.errors) == 1
    assert "not valid JSON" in batch.errors["reason"][0] and "Avro" not in batch.errors["reason"][0]
    with pytest.raises(AlertFormatError, match="not valid JSON"):
        lk.read_alerts(b'[{"UTC": "2026-01-29 11:40:14", "diaObjectId": 1')


def test_unregister_removes_a_format_until_it_is_registered_again():
    sniff = Sniff(label="lc.json", suffix=".json", head=b'{"oid": "ZTF20aaelulu", "detections": []}')
    assert formats.identify(sniff).name == "alerce-json"
    spec = formats.unregister("alerce-json")
    try:
        assert "alerce-json" not in formats.list_formats()["name"].tolist()
        with pytest.raises(UnknownFormatError):
            formats.identify(sniff)
        with pytest.raises(ValueError, match="unknown format 'alerce-json'"):
            formats.unregister("alerce-json")
    finally:
        formats.register(spec)
    assert formats.identify(sniff) is spec
