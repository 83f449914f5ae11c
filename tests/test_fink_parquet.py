"""Fink Parquet: the real Fink files, Fink's layout quirks, bad input, and the writer's round trip."""

from __future__ import annotations

import io
import warnings

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lsstuk_kit as lk
from lsstuk_kit.errors import AlertFormatError
from lsstuk_kit.formats import Sniff, Source
from lsstuk_kit.formats import fink_parquet as fp
from lsstuk_kit.schema import load_rubin_schema

RUBIN = "fink_rubin_test_data_10_0.parquet"
BLAZAR = "fink_ztf_ctao_blazar_414.parquet"
IBAND = "fink_ztf_iband_history_121.parquet"
COUNTS = {RUBIN: 27, BLAZAR: 414, IBAND: 121}
KEY_SOURCES = ["diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "mag", "snr",
               "reliability"]
KEY_HISTORY = ["diaObjectId", "kind", "diaSourceId", "midpointMjdTai", "band", "psfFlux", "psfFluxErr"]


def fink(real_alerts, name):
    return real_alerts / "fink" / name


def read_quiet(source, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.LossyIntegerWarning)
        return lk.read_alerts(source, **kw)


class Sink:
    """A ``Source.fail`` for skip mode: collects (record, field, reason)."""

    def __init__(self):
        self.rows = []

    def __call__(self, reason, record=None, field=None):
        self.rows.append((record, field, reason))


def read_spec(path, **kw):
    sink = Sink()
    frames = fp.SPEC.read(Source(label=str(path), path=str(path), fail=sink, **kw))
    return frames, sink.rows


# --------------------------------------------------------------------------- Avro reference
_ARROW_TO_AVRO = {pa.int64(): "long", pa.int32(): "int", pa.float32(): "float", pa.float64(): "double",
                  pa.string(): "string", pa.bool_(): "boolean", pa.binary(): "bytes"}


def _avro_type(t, name):
    if pa.types.is_struct(t):
        return {"type": "record", "name": name,
                "fields": [{"name": f.name, "type": ["null", _avro_type(f.type, f"{name}_{f.name}")]} for f in t]}
    if pa.types.is_list(t):
        return {"type": "array", "items": ["null", _avro_type(t.value_type, name + "_item")]}
    return _ARROW_TO_AVRO[t]


def as_avro(table: pa.Table, schema=None) -> bytes:
    """The table's alert columns as an Avro container (Rubin: the official schema; else one derived from Arrow)."""
    if schema is None:
        keep = [f for f in table.schema if not (pa.types.is_timestamp(f.type) or pa.types.is_map(f.type))]
        schema = {"type": "record", "name": "alert",
                  "fields": [{"name": f.name, "type": ["null", _avro_type(f.type, f.name)]} for f in keep]}
    names = [f["name"] for f in schema["fields"]]
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), table.select(names).to_pylist())
    return buf.getvalue()


def assert_same_columns(a: pd.DataFrame, b: pd.DataFrame, columns):
    """Same values (and the same missing ones) in each column, row by row."""
    assert len(a) == len(b)
    for c in columns:
        x, y = a[c].reset_index(drop=True), b[c].reset_index(drop=True)
        nx, ny = x.isna().to_numpy(), y.isna().to_numpy()
        assert (nx == ny).all(), f"column {c}: missing values differ in {(nx != ny).sum()} rows"
        assert x[~nx].tolist() == y[~ny].tolist(), f"column {c} differs"


# --------------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", [RUBIN, BLAZAR, IBAND])
def test_real_fink_file_reads_every_row(real_alerts, name):
    path = fink(real_alerts, name)
    raw = pq.read_table(path)
    batch = read_quiet(path, format="fink-parquet")
    assert len(batch) == COUNTS[name] == raw.num_rows
    assert batch.errors.empty
    s = batch.sources
    assert (s["broker"] == "fink").all()
    if name == RUBIN:
        ds = raw.column("diaSource").combine_chunks()
        assert s.index.tolist() == raw.column("diaSourceId").to_pylist()
        assert s["ra"].tolist() == ds.field("ra").to_pylist()
        assert s["dec"].tolist() == ds.field("dec").to_pylist()
        assert s["midpointMjdTai"].tolist() == ds.field("midpointMjdTai").to_pylist()
        assert s["band"].tolist() == ds.field("band").to_pylist()
        assert (s["survey"] == "lsst").all() and (s["schemaVersion"] == "lsst.v10_0").all()
        assert s.index.dtype == np.int64
    else:
        cand = raw.column("candidate").combine_chunks()
        assert s.index.tolist() == cand.field("candid").to_pylist() == raw.column("candid").to_pylist()
        assert s["diaObjectId"].tolist() == raw.column("objectId").to_pylist()
        assert s["ra"].tolist() == cand.field("ra").to_pylist()
        assert s["dec"].tolist() == cand.field("dec").to_pylist()
        jd = np.asarray(cand.field("jd").to_pylist())
        np.testing.assert_array_equal(s["midpointMjdTai"].to_numpy(), jd - 2400000.5)
        assert s["band"].tolist() == [{1: "g", 2: "r", 3: "i"}[f] for f in cand.field("fid").to_pylist()]
        assert (s["survey"] == "ztf").all()
    # cutouts decode for a few alerts
    size = 30 if name == RUBIN else 63
    for sid in s.index[[0, len(s) // 2, -1]]:
        c = batch.cutouts(sid)
        for k in ("science", "template", "difference"):
            assert c[k].shape == (size, size)


def test_rubin_fink_columns_and_history(real_alerts):
    path = fink(real_alerts, RUBIN)
    raw = pq.read_table(path)
    batch = lk.read_alerts(path)
    s = batch.sources
    # Fink's struct columns flattened, its map of light-curve features per band
    xm = raw.column("xm").combine_chunks()
    assert s["xm_gaiadr3_VarFlag"].tolist() == xm.field("gaiadr3_VarFlag").to_pylist()
    clf = raw.column("clf").combine_chunks()
    np.testing.assert_array_equal(s["clf_snnSnVsOthers_score"].to_numpy(np.float32),
                                  np.asarray(clf.field("snnSnVsOthers_score").to_pylist(), np.float32))
    assert {"pred_is_sso", "misc_firstDiaSourceMjdTaiFink", "brokerIngestMjd", "fink_broker_version",
            "brokerStartProcessTimestamp"} <= set(s.columns)
    lc = raw.column("lc_features").to_pylist()
    for sid, entries in zip(raw.column("diaSourceId").to_pylist(), lc):
        for band, feats in entries:
            assert s.loc[sid, f"lc_features_{band}_mean"] == pytest.approx(feats["mean"], nan_ok=True)
    # history: the triggering detection plus previous detections (forced lists are empty in this file)
    n_prv = sum(len(x or []) for x in raw.column("prvDiaSources").to_pylist())
    n_forced = sum(len(x or []) for x in raw.column("prvDiaForcedSources").to_pylist())
    assert n_forced == 0
    kinds = batch._store.history["kind"].value_counts().to_dict()
    assert kinds.get("detection") == 27 + n_prv and kinds.get("forced", 0) == 0


def test_rubin_fink_matches_the_same_alerts_read_from_avro(real_alerts):
    """The Fink rows, written as Avro with the official 10.0 schema, read identically through the Avro path."""
    path = fink(real_alerts, RUBIN)
    table = pq.read_table(path)
    via_avro = lk.read_alerts(as_avro(table, load_rubin_schema(10, 0)))
    via_fink = lk.read_alerts(path)
    a, f = via_avro.sources, via_fink.sources
    assert a.index.equals(f.index)
    extra = set(f.columns) - set(a.columns)
    assert {"clf_cats_class", "xm_simbad_otype", "lsst_schema_version"} <= extra
    assert_same_columns(a, f, [c for c in a.columns if c != "broker"])
    pd.testing.assert_frame_equal(via_avro.history, via_fink.history, check_dtype=False)
    pd.testing.assert_frame_equal(via_avro.objects, via_fink.objects, check_dtype=False)


def test_ztf_fink_matches_the_same_alerts_read_from_avro(real_alerts):
    """No ZTF alert of the Fink files is among the Avro files beside them: the rows themselves are written as Avro."""
    path = fink(real_alerts, IBAND)
    via_avro = lk.read_alerts(as_avro(pq.read_table(path)))
    via_fink = lk.read_alerts(path)
    a, f = via_avro.sources, via_fink.sources
    assert a.index.equals(f.index)
    assert_same_columns(a, f, [c for c in a.columns if c != "broker"])
    assert {"brokerIngestTimestamp", "timestamp"} <= set(f.columns) - set(a.columns)
    pd.testing.assert_frame_equal(via_avro.history, via_fink.history)
    pd.testing.assert_frame_equal(via_avro.objects, via_fink.objects)
    kinds = via_fink.history["kind"].value_counts()
    assert kinds["detection"] > 121 and kinds["upper_limit"] > 0


def test_ztf_blazar_fink_columns(real_alerts):
    path = fink(real_alerts, BLAZAR)
    raw = pq.read_table(path, columns=["cdsxmatch", "roid", "rf_snia_vs_nonia", "candid"])
    s = read_quiet(path).sources
    assert s["cdsxmatch"].tolist() == raw.column("cdsxmatch").to_pylist()
    assert s["roid"].tolist() == raw.column("roid").to_pylist()
    assert {"snn_snia_vs_nonia", "nalerthist", "tracklet", "fink_science_version"} <= set(s.columns)
    assert "Blazar" in set(s["cdsxmatch"])


def test_identify_and_folder(real_alerts, tmp_path):
    path = fink(real_alerts, RUBIN)
    head = open(path, "rb").read(4096)
    assert fp.SPEC.identify(Sniff(label=str(path), suffix=".parquet", head=head))
    assert fp.SPEC.identify(Sniff(label="<bytes>", head=head))
    assert not fp.SPEC.identify(Sniff(label="x.avro", suffix=".avro", head=b"Obj\x01"))
    # a Parquet table that is not alerts (e.g. the sample's truth table) is not claimed
    other = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), other)
    assert not fp.SPEC.identify(Sniff(label=str(other), suffix=".parquet", head=b"PAR1"))
    # format=None finds the format, for a file, a folder (all three files) and bytes
    assert len(read_quiet(path)) == 27
    assert len(read_quiet(real_alerts / "fink")) == sum(COUNTS.values())
    assert read_quiet(path.read_bytes()).sources.index.tolist() == lk.read_alerts(path).sources.index.tolist()


def test_projection_reads_fewer_columns(real_alerts):
    path = fink(real_alerts, RUBIN)
    frames, errors = read_spec(path, columns=["ra", "dec", "psfFlux", "clf_cats_class"])
    s = frames[0].sources
    assert not errors and len(s) == 27
    assert "clf_cats_class" in s and not any(c.startswith(("xm_", "lc_features_", "mpc_orbits_")) for c in s)
    full = lk.read_alerts(path).sources
    assert_same_columns(s.set_index("diaSourceId"), full, ["ra", "dec", "psfFlux", "clf_cats_class"])


# --------------------------------------------------------------------------- quirks
def test_rubin_file_stores_every_schema_integer_as_integer(real_alerts):
    """Checked: no Rubin id of the real file is a double (the double-id quirk is ZTF's, tested below)."""
    schema = pq.read_schema(fink(real_alerts, RUBIN))
    ints = fp._rubin_int_fields("lsst.v10_0")
    for col in ("diaSource", "diaObject", "ssSource", "prvDiaSources", "prvDiaForcedSources"):
        t = schema.field(col).type
        t = t.value_type if pa.types.is_list(t) else t
        for f in t:
            if f.name in ints[col]:
                assert pa.types.is_integer(f.type), (col, f.name, f.type)


def test_all_null_structs_are_missing_records(real_alerts, tmp_path):
    path = fink(real_alerts, RUBIN)
    batch = lk.read_alerts(path)
    s = batch.sources
    # ssSource / mpc_orbits: only the 3 solar-system alerts carry one
    sso = s["ssSource_ssObjectId"].notna()
    assert sso.sum() == 3 and s.loc[sso, "ssSource_designation"].notna().all()
    assert (s.loc[sso, "diaObjectId"] == 0).all()
    # their diaObject is missing: no objects row for them, none of zeros or nulls
    assert len(batch._store.objects) == 24 and 0 not in batch.objects.index
    # the writer keeps a missing record missing (a null struct, not a struct of nulls)
    out = fp.write_fink_parquet(batch, tmp_path / "w.parquet")
    t = pq.read_table(out)
    assert t.column("ssSource").null_count == 24 and t.column("diaObject").null_count == 3

    # a struct stored as present with every field null reads as missing
    raw = pq.read_table(path).slice(0, 4)
    obj = raw.column("diaObject").combine_chunks()
    blank = pa.StructArray.from_arrays([pa.nulls(4, f.type) for f in obj.type], fields=list(obj.type))
    assert blank.null_count == 0
    ds = raw.column("diaSource").combine_chunks()
    ds_blank = pa.StructArray.from_arrays(
        [pa.nulls(1, f.type) for f in ds.type], fields=list(ds.type))
    ds_new = pa.concat_arrays([ds.slice(0, 3), ds_blank])
    t = raw.set_column(raw.column_names.index("diaObject"), "diaObject",
                       pa.concat_arrays([blank.slice(0, 1), obj.slice(1, 3)]))
    t = t.set_column(t.column_names.index("diaSource"), "diaSource", ds_new)
    bad = tmp_path / "blank.parquet"
    pq.write_table(t, bad)
    assert pq.read_table(bad).column("diaObject").null_count == 0  # stored as present
    frames, errors = read_spec(bad)
    assert errors == [(3, "diaSource", "the row has no diaSource (null): not an alert")]
    fr = frames[0]
    assert fr.records.tolist() == [0, 1, 2]
    assert fr.objects["_alert"].tolist() == [1, 2]  # alert 0's all-null diaObject is no object
    assert fr.sources.loc[0, "diaObjectId"] == ds.field("diaObjectId")[0].as_py()


def _with_double_ids(table: pa.Table, big_row: int) -> pa.Table:
    """diaSource.diaSourceId and prvDiaSources.diaSourceId stored as doubles; one trigger id past 2**53."""
    ds = table.column("diaSource").combine_chunks()
    i = ds.type.get_field_index("diaSourceId")
    ids = np.asarray(ds.field(i).to_pylist(), dtype=np.float64)
    ids[big_row] = 2.0**60 + 2**8  # an int64 id beyond 2**53: its double cannot give it back
    children = [ds.field(k) if k != i else pa.array(ids) for k in range(ds.type.num_fields)]
    fields = [f if f.name != "diaSourceId" else pa.field("diaSourceId", pa.float64()) for f in ds.type]
    table = table.set_column(table.column_names.index("diaSource"), "diaSource",
                             pa.StructArray.from_arrays(children, fields=fields))
    table = table.set_column(table.column_names.index("diaSourceId"), "diaSourceId", pa.array(ids))
    prv = table.column("prvDiaSources").combine_chunks()
    st = prv.values
    j = st.type.get_field_index("diaSourceId")
    pid = st.field(j).cast(pa.float64())
    pid = pc.add(pid, pa.scalar(2.0**62))  # history ids past 2**53: lost
    children = [st.field(k) if k != j else pid for k in range(st.type.num_fields)]
    fields = [f if f.name != "diaSourceId" else pa.field("diaSourceId", pa.float64()) for f in st.type]
    new = pa.ListArray.from_arrays(prv.offsets, pa.StructArray.from_arrays(children, fields=fields),
                                   mask=prv.is_null())
    return table.set_column(table.column_names.index("prvDiaSources"), "prvDiaSources", new)


def test_ids_stored_as_doubles(tmp_path):
    """Exact ids come back as int64; a trigger id past 2**53 fails its row; lost history ids are <NA> + warning."""
    batch = lk.load_sample()[:12]
    src = fp.write_fink_parquet(batch, tmp_path / "src.parquet")
    table = pq.read_table(src)
    assert sum(len(x) for x in table.column("prvDiaSources").to_pylist()) > 0
    path = tmp_path / "double_ids.parquet"
    pq.write_table(_with_double_ids(table, big_row=5), path)
    assert pq.read_schema(path).field("diaSource").type.field("diaSourceId").type == pa.float64()

    with pytest.warns(fp.LossyIntegerWarning, match=r"prvDiaSources\.diaSourceId: \d+"):
        got = lk.read_alerts(path, errors="skip")
    # outcome 1: exactly representable ids are recovered as int64, equal to the originals
    want = batch.sources.index.delete(5)
    assert got.sources.index.dtype == np.int64 and got.sources.index.tolist() == want.tolist()
    # outcome 2: the id that cannot be recovered is reported with its row and field
    assert len(got) + len(got.errors) == 12
    err = got.errors.iloc[0]
    assert (err["record"], err["field"]) == (5, "diaSource.diaSourceId") and "2**53" in err["reason"]
    with pytest.raises(AlertFormatError, match="record 5.*diaSource.diaSourceId"):
        read_quiet(path)
    # history rows whose id was lost keep their measurements, with the id missing
    h = got._store.history
    prv = h[(h["kind"] == "detection") & h["diaSourceId"].isna()]
    n_prv = sum(len(x) for i, x in enumerate(table.column("prvDiaSources").to_pylist()) if i != 5)
    assert len(prv) == n_prv and prv["psfFlux"].notna().all()


def test_ztf_history_candid_stored_as_double(real_alerts):
    """The real blazar file stores prv_candidates.candid as double (~2.8e18): ids lost, detections kept."""
    path = fink(real_alerts, BLAZAR)
    prv = pq.read_table(path, columns=["prv_candidates"]).column(0).combine_chunks()
    flat = pc.list_flatten(prv)
    assert flat.type.field("candid").type == pa.float64()
    cand = flat.field("candid").to_numpy(zero_copy_only=False)
    n_det = int((~np.isnan(cand) & ~np.isnan(flat.field("magpsf").to_numpy(zero_copy_only=False))).sum())
    n_lim = int(np.isnan(cand).sum())
    assert n_det > 0 and (np.abs(cand[~np.isnan(cand)]) > 2**53).all()
    with pytest.warns(fp.LossyIntegerWarning, match=rf"prv_candidates\.candid: {n_det}"):
        batch = lk.read_alerts(path)
    h = batch._store.history
    assert (h["kind"] == "detection").sum() == 414 + n_det
    assert (h["kind"] == "upper_limit").sum() == n_lim
    det = h[h["kind"] == "detection"]
    assert det["diaSourceId"].isna().sum() == n_det
    assert set(det["diaSourceId"].dropna()) == set(batch.sources.index)  # the triggers' own ids, exact


def test_exact_int_rule():
    ints, lost = fp._exact_int(pa.array([1.0, 2.0**53 - 1, 2.0**53, 3.5, None, -7.0]))
    assert ints.to_pylist() == [1, 2**53 - 1, None, None, None, -7]
    assert lost.tolist() == [False, False, True, True, False, False]


# --------------------------------------------------------------------------- bad input
def test_truncated_parquet(real_alerts, tmp_path):
    data = fink(real_alerts, RUBIN).read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AlertFormatError, match="truncated"):
        lk.read_alerts(cut, format="fink-parquet")
    batch = lk.read_alerts(cut, errors="skip")
    assert len(batch) == 0 and len(batch.errors) == 1 and pd.isna(batch.errors["record"].iloc[0])
    with pytest.raises(AlertFormatError, match="truncated"):
        lk.read_alerts(data[:-100], format="fink-parquet")


def test_parquet_that_is_not_an_alert_table(tmp_path):
    path = tmp_path / "table.parquet"
    pq.write_table(pa.table({"ra": [1.0], "dec": [2.0], "objectName": ["x"]}), path)
    with pytest.raises(AlertFormatError, match=r"not a Fink alert table.*columns found: ra, dec, objectName"):
        lk.read_alerts(path, format="fink-parquet")
    batch = lk.read_alerts(path, format="fink-parquet", errors="skip")
    assert len(batch) == 0 and "not a Fink alert table" in batch.errors["reason"].iloc[0]


def test_rows_missing_diasource_or_required_fields(tmp_path):
    batch = lk.load_sample()[:6]
    t = pq.read_table(fp.write_fink_parquet(batch, tmp_path / "ok.parquet"))
    ds = t.column("diaSource").combine_chunks()
    ra = ds.field("ra").to_pylist()
    ra[2] = None
    ra[4] = 400.0
    i = ds.type.get_field_index("ra")
    children = [ds.field(k) if k != i else pa.array(ra, pa.float64()) for k in range(ds.type.num_fields)]
    mask = pa.array([False, True, False, False, False, False])  # row 1: no diaSource at all
    t = t.set_column(t.column_names.index("diaSource"), "diaSource",
                     pa.StructArray.from_arrays(children, fields=list(ds.type), mask=mask))
    path = tmp_path / "bad.parquet"
    pq.write_table(t, path)
    with pytest.raises(AlertFormatError, match=r"record 1, field 'diaSource'"):
        lk.read_alerts(path)
    got = lk.read_alerts(path, errors="skip")
    assert len(got) + len(got.errors) == 6
    assert got.errors[["record", "field"]].values.tolist() == [[1, "diaSource"], [2, "diaSource.ra"],
                                                               [4, "diaSource.ra"]]
    assert got.sources.index.tolist() == batch.sources.index[[0, 3, 5]].tolist()


def test_table_without_required_column(tmp_path):
    batch = lk.load_sample()[:3]
    t = pq.read_table(fp.write_fink_parquet(batch, tmp_path / "ok.parquet"))
    ds = t.column("diaSource").combine_chunks()
    keep = [k for k, f in enumerate(ds.type) if f.name != "midpointMjdTai"]
    ds = pa.StructArray.from_arrays([ds.field(k) for k in keep], fields=[ds.type[k] for k in keep])
    path = tmp_path / "no_time.parquet"
    pq.write_table(t.set_column(t.column_names.index("diaSource"), "diaSource", ds), path)
    got = lk.read_alerts(path, errors="skip")
    assert len(got) == 0 and set(got.errors["field"]) == {"diaSource.midpointMjdTai"} and len(got.errors) == 3


def test_damaged_row_group_costs_only_its_rows(tmp_path):
    batch = lk.load_sample()[:40]
    path = tmp_path / "groups.parquet"
    t = pq.read_table(fp.write_fink_parquet(batch, tmp_path / "ok.parquet"))
    pq.write_table(t, path, row_group_size=10, compression="snappy")
    meta = pq.ParquetFile(path).metadata
    rg = meta.row_group(1)
    col = next(rg.column(k) for k in range(rg.num_columns) if rg.column(k).path_in_schema == "cutoutScience")
    data = bytearray(path.read_bytes())
    start = col.data_page_offset + 64
    data[start:start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    got = lk.read_alerts(path, errors="skip")
    assert len(got) + len(got.errors) == 40
    assert len(got.errors) == 10 and got.errors["record"].tolist() == list(range(10, 20))
    assert got.sources.index.tolist() == batch.sources.index[np.r_[0:10, 20:40]].tolist()


# --------------------------------------------------------------------------- writer round trip
def _key_equal(a: lk.AlertBatch, b: lk.AlertBatch):
    assert a.sources.index.tolist() == b.sources.index.tolist()
    assert_same_columns(a.sources, b.sources, KEY_SOURCES)
    ha, hb = a.history, b.history
    assert len(ha) == len(hb)
    cols = [c for c in KEY_HISTORY if c in ha]
    assert_same_columns(ha.reset_index(drop=True), hb.reset_index(drop=True), cols)
    assert a.objects.index.tolist() == b.objects.index.tolist()
    assert_same_columns(a.objects, b.objects, [c for c in ("ra", "dec", "nDiaSources", "lastDiaSourceMjdTai")
                                               if c in a.objects])


def test_round_trip_sample(tmp_path):
    batch = lk.load_sample()
    back = lk.read_alerts(fp.write_fink_parquet(batch, tmp_path / "sample.parquet"))
    _key_equal(batch, back)
    assert set(back.history["kind"]) == {"detection", "forced"}
    sid = batch.sources.index[7]
    np.testing.assert_array_equal(back.cutouts(sid).science, batch.cutouts(sid).science)
    # every column of the batch comes back, unchanged
    assert_same_columns(batch.sources, back.sources, [c for c in batch.sources.columns if c != "broker"])


def test_round_trip_real_rubin_fink_file(real_alerts, tmp_path):
    first = lk.read_alerts(fink(real_alerts, RUBIN))
    path = fp.write_fink_parquet(first, tmp_path / "again.parquet")
    back = lk.read_alerts(path)
    _key_equal(first, back)
    # Fink's columns survive (flattened), with their values
    assert_same_columns(first.sources, back.sources,
                        [c for c in first.sources.columns if c.startswith(("clf_", "xm_", "lc_features_", "pred_",
                                                                          "ssSource_", "mpc_orbits_"))])
    # a subset writes only its alerts, each with its own history
    sub = first[first.sources.index[:5]]
    assert len(lk.read_alerts(fp.write_fink_parquet(sub, tmp_path / "sub.parquet"))) == 5


def test_writer_layout_is_vectorised_fink_layout(tmp_path):
    batch = lk.load_sample()[:20]
    t = pq.read_table(fp.write_fink_parquet(batch, tmp_path / "x.parquet"))
    assert pa.types.is_struct(t.schema.field("diaSource").type)
    assert pa.types.is_list(t.schema.field("prvDiaForcedSources").type)
    assert t.schema.field("cutoutScience").type == pa.binary()
    raw = batch._store.history
    forced = raw[raw["_alert"] < 20]
    n_forced = int((forced["kind"] == "forced").sum())
    assert sum(len(x) for x in t.column("prvDiaForcedSources").to_pylist()) == n_forced


def test_writer_refuses_ztf(real_alerts, tmp_path):
    batch = lk.read_alerts(fink(real_alerts, IBAND))
    with pytest.raises(ValueError, match="Rubin"):
        fp.write_fink_parquet(batch, tmp_path / "z.parquet")


def test_iter_records_gives_raw_rows(real_alerts):
    path = fink(real_alerts, IBAND)
    rows = dict(fp.iter_records(str(path), [3, 0]))
    assert sorted(rows) == [0, 3]
    raw = pq.read_table(path).slice(3, 1).to_pylist()[0]
    assert rows[3]["candid"] == raw["candid"] and rows[3]["cutoutScience"]["stampData"][:2] == b"\x1f\x8b"
