"""read_alerts(..., engine="dask"): lazy partitions give the in-memory engine's answers."""

from __future__ import annotations

import shutil
import sys

import astropy.units as u
import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
import lsstuk_kit.scale as scale
from lsstuk_kit import AlertBatch, AlertFormatError
from lsstuk_kit import filters as F
from lsstuk_kit.catalogs import bright_star_veto
from lsstuk_kit.crossmatch import cone_mask, match_catalog, match_cone, match_watchlist
from lsstuk_kit.io import iter_files
from lsstuk_kit.skyareas import Watchmap, simulated_skymap

pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def night():
    """The sample night in several partitions (1 MB of Avro each)."""
    return lk.read_alerts(lk.sample_path(), engine="dask", partition_size="1MB")


def sorted_rows(df):
    return df.sort_index(kind="stable")


def test_partitions_group_files_by_size(night):
    files = iter_files(lk.sample_path())
    assert [f for group in night.files for f in group] == files  # every file once, in order
    assert night.npartitions == len(night.files) > 1
    for group in night.files:
        sizes = [shutil.os.path.getsize(f) for f in group]
        assert len(group) == 1 or sum(sizes) <= 1_000_000
    whole = lk.read_alerts(lk.sample_path(), engine="dask")
    assert whole.npartitions == 1  # 64 MB default: the 10 MB sample is one partition


HISTORY_ORDER = ["diaObjectId", "midpointMjdTai", "kind", "band", "diaSourceId", "diaForcedSourceId"]


@pytest.mark.parametrize("size", ["1B", "1MB", "3MB", "64MB"])  # one file per partition ... the whole night in one
def test_every_table_equals_the_pandas_engine(batch, size):
    """Objects whose alerts fall in several partitions keep their light-curve rows and summary once.

    (Before the night-wide shuffle, 1 MB partitions gave 20,427 history rows for 15,097, of which
    5,330 exact repeats.)
    """
    night = lk.read_alerts(lk.sample_path(), engine="dask", partition_size=size)
    if size in ("1B", "1MB"):
        assert night.npartitions == len(night.files) > 1
    s = night.sources.compute()
    pd.testing.assert_frame_equal(sorted_rows(s), sorted_rows(batch.sources))
    h = night.history.compute()
    assert list(h.columns) == list(batch.history.columns)
    assert len(h) == len(batch.history)  # no repeats, nothing lost
    got = h.sort_values(HISTORY_ORDER, kind="stable").reset_index(drop=True)
    ref = batch.history.sort_values(HISTORY_ORDER, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref)
    pd.testing.assert_frame_equal(night.objects.compute().sort_index(), batch.objects)
    pd.testing.assert_frame_equal(night.errors.compute().reset_index(drop=True), batch.errors)
    assert len(night) == len(batch)


def test_history_partitions_hold_whole_objects(night):
    parts = night.history.to_delayed()
    import dask

    objects = [set(p["diaObjectId"]) for p in dask.compute(*parts)]
    seen = [o for objs in objects for o in objs]
    assert len(seen) == len(set(seen))  # no object in two partitions


@pytest.mark.parametrize("rule, kwargs", [
    (F.observable, {"max_mag": 21.5, "min_snr": 8}),
    (F.quality, {"min_reliability": 0.7}),
    (F.has_history, {"min_detections": 3, "min_baseline_days": 5}),
    (F.recurring, {"days": 10}),
    (F.new, {"days": 10}),
    (F.galactic_latitude, {"min_abs_b": 30}),
    (F.rising, {"faster_than": 0.02}),
    (F.fading, {"faster_than": 0.02}),
])
def test_filters_give_the_same_mask(batch, night, rule, kwargs):
    ref = rule(batch, **kwargs)
    lazy = rule(night, **kwargs)
    assert lazy.npartitions == night.npartitions
    got = lazy.compute()
    pd.testing.assert_series_equal(sorted_rows(got), sorted_rows(ref))
    assert 0 < ref.sum() < len(batch) or rule in (F.recurring, F.new)


def test_rates_and_galactic_frames(batch, night):
    pd.testing.assert_frame_equal(sorted_rows(F.rates(night).compute()), sorted_rows(F.rates(batch)))
    pd.testing.assert_frame_equal(sorted_rows(F.galactic(night).compute()), sorted_rows(F.galactic(batch)))


def test_filter_then_compute_reads_each_partition_once(batch, monkeypatch):
    loads = []
    real = scale._load

    def counting(files, options, *rest):
        loads.append(tuple(files))
        return real(files, options, *rest)

    monkeypatch.setattr(scale, "_load", counting)
    night = lk.read_alerts(lk.sample_path(), engine="dask", partition_size="1MB")
    assert len(loads) == 1  # the first partition, for the columns
    loads.clear()
    keep = night.filter(F.observable(night, max_mag=22), F.quality(night), lambda b: F.new(b, 30))
    assert not loads  # lazy
    out = keep.compute()
    assert sorted(loads) == sorted(tuple(g) for g in night.files)
    ref = batch.filter(F.observable(batch, max_mag=22), F.quality(batch), F.new(batch, 30))
    assert isinstance(out, AlertBatch) and 0 < len(out) < len(batch)
    pd.testing.assert_frame_equal(sorted_rows(out.sources), sorted_rows(ref.sources))
    pd.testing.assert_frame_equal(out.history, ref.history)
    sid = out.sources.index[0]
    np.testing.assert_array_equal(out.cutouts(sid).difference, batch.cutouts(sid).difference)
    # masks combine with & and ~ like pandas ones
    both = night[F.observable(night, max_mag=22) & ~F.quality(night)].sources.compute()
    ref2 = batch[F.observable(batch, max_mag=22) & ~F.quality(batch)].sources
    assert sorted(both.index) == sorted(ref2.index)


def test_cross_matching(batch, night):
    wl = batch.sources[["ra", "dec"]].iloc[::5].reset_index(drop=True)
    wl["name"] = [f"t{i}" for i in range(len(wl))]
    wl["radius"] = np.where(np.arange(len(wl)) % 2, 1.0, 30.0)

    def canon(df):
        return df.reset_index().sort_values(["diaSourceId", "name"]).reset_index(drop=True)

    ref = match_watchlist(batch, wl, 2.0)
    got = match_watchlist(night, wl, 2.0).compute()
    assert len(ref) > len(wl)  # the 30" targets catch neighbours too
    pd.testing.assert_frame_equal(canon(got), canon(ref))

    cat = wl.rename(columns={"name": "id"})
    pd.testing.assert_frame_equal(sorted_rows(match_catalog(night, cat, 1 * u.arcsec).compute()),
                                  sorted_rows(match_catalog(batch, cat, 1 * u.arcsec)))

    row = batch.sources.iloc[0]
    pd.testing.assert_series_equal(sorted_rows(cone_mask(night, row["ra"], row["dec"], 20 * u.arcmin).compute()),
                                   sorted_rows(cone_mask(batch, row["ra"], row["dec"], 20 * u.arcmin)))
    cone = match_cone(night, row["ra"], row["dec"], 20 * u.arcmin)
    assert sorted(cone.sources.compute().index) == sorted(
        match_cone(batch, row["ra"], row["dec"], 20 * u.arcmin).sources.index)

    vet = bright_star_veto(night, mag_limit=9).compute()
    pd.testing.assert_frame_equal(sorted_rows(vet), sorted_rows(bright_star_veto(batch, mag_limit=9)))


def test_sky_areas(batch, night, tmp_path):
    s = batch.sources
    path = simulated_skymap(tmp_path / "gw.fits", ra=float(s["ra"].median()), dec=float(s["dec"].median()),
                            kind="blob", width_deg=4.0)
    wm = Watchmap.from_skymap(path, 0.9)
    inside = wm.contains(night).compute()
    assert 0 < inside.sum() < len(batch)
    pd.testing.assert_series_equal(sorted_rows(inside), sorted_rows(wm.contains(batch)))
    pd.testing.assert_series_equal(sorted_rows(wm.credible_level(night).compute()),
                                   sorted_rows(wm.credible_level(batch)))


def test_to_avro_writes_the_survivors(batch, night, tmp_path):
    keep = night.filter(F.observable(night, max_mag=21))
    n = keep.to_avro(tmp_path / "out")
    back = lk.read_alerts(tmp_path / "out")
    ref = batch.filter(F.observable(batch, max_mag=21))
    assert n == len(back) == len(ref) > 0
    pd.testing.assert_frame_equal(sorted_rows(back.sources), sorted_rows(ref.sources))


def test_concat_keeps_everything(batch):
    parts = [batch[::2], batch[1::2]]
    both = AlertBatch.concat(parts)
    assert len(both) == len(batch)
    pd.testing.assert_frame_equal(sorted_rows(both.sources), sorted_rows(batch.sources))
    pd.testing.assert_frame_equal(both.history, batch.history)
    pd.testing.assert_frame_equal(both.objects, batch.objects)
    sid = batch.sources.index[7]
    np.testing.assert_array_equal(both.cutouts(sid).science, batch.cutouts(sid).science)
    no_cutouts = lk.read_alerts(lk.sample_path(), cutouts=False)
    mixed = AlertBatch.concat([no_cutouts[:5], batch[5:]])
    np.testing.assert_array_equal(mixed.cutouts(sid).science, batch.cutouts(sid).science)
    assert len(AlertBatch.concat([])) == 0


def test_errors_in_a_later_partition(tmp_path):
    files = iter_files(lk.sample_path())
    for f in files:
        shutil.copy(f, tmp_path)
    bad = tmp_path / sorted(p.name for p in tmp_path.iterdir())[-1]
    data = bytearray(bad.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64  # corrupt records in the middle
    bad.write_bytes(bytes(data))
    night = lk.read_alerts(tmp_path, engine="dask", partition_size="1MB")  # lazy: the bad file is not read yet
    with pytest.raises(AlertFormatError) as err:
        night.sources.compute()
    assert bad.name in str(err.value)
    lenient = lk.read_alerts(tmp_path, engine="dask", partition_size="1MB", errors="skip")
    errors = lenient.errors.compute()
    assert len(errors) > 0 and set(errors["file"].map(lambda f: f.split("/")[-1])) == {bad.name}
    n_sample = int(pd.read_csv(lk.sample_path() / "alerts" / "index.csv")["n_alerts"].sum())
    assert len(lenient.sources.compute()) + len(errors) >= n_sample - 50  # good records kept (679 in the sample)


@pytest.mark.parametrize("size", ["1B", "3MB", "64MB"])
def test_an_alert_in_two_partitions_is_kept_once(tmp_path_factory, size):
    """A file written twice (e.g. an at-least-once consumer's chunk): every table as in memory.

    The in-memory reader keeps the first copy and lists the repeats in ``errors``; the Dask
    engine must do the same when the copies fall in different partitions.
    """
    tmp_path = tmp_path_factory.mktemp("night")
    files = iter_files(lk.sample_path())
    for f in files:
        shutil.copy(f, tmp_path)
    shutil.copy(files[2], tmp_path / "visit_999999999999999.avro")  # a later name: read last
    with pytest.warns(UserWarning, match="appear more than once"):
        mem = lk.read_alerts(tmp_path)
    repeated = int(pd.read_csv(lk.sample_path() / "alerts" / "index.csv")["n_alerts"].iloc[2])
    assert len(mem.errors) == repeated > 0
    night = lk.read_alerts(tmp_path, engine="dask", partition_size=size)
    assert (night.npartitions > 1) == (size != "64MB")
    pd.testing.assert_frame_equal(sorted_rows(night.sources.compute()), sorted_rows(mem.sources))
    h = night.history.compute().sort_values(HISTORY_ORDER, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(h, mem.history.sort_values(HISTORY_ORDER, kind="stable").reset_index(drop=True))
    pd.testing.assert_frame_equal(night.objects.compute().sort_index(), mem.objects)
    errors = night.errors.compute()
    pd.testing.assert_frame_equal(errors.sort_values(["file", "record"]).reset_index(drop=True),
                                  mem.errors.sort_values(["file", "record"]).reset_index(drop=True))
    assert set(errors["file"].map(lambda f: f.split("/")[-1])) == {"visit_999999999999999.avro"}
    assert night.to_avro(tmp_path_factory.mktemp("out")) == len(mem)
    if night.npartitions > 1:  # repeats="keep": no pass over the ids, the copy stays in its partition
        kept = scale.read_alerts_dask(tmp_path, partition_size=size, repeats="keep").sources.compute()
        assert len(kept) == len(mem) + repeated and kept.index.duplicated().sum() == repeated
    # skip mode: a corrupt file in between, the repeats still found (the ids come from the same read)
    bad = tmp_path / sorted(p.name for p in tmp_path.glob("*.avro"))[4]
    data = bytearray(bad.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    bad.write_bytes(bytes(data))
    with pytest.warns(UserWarning):
        mem = lk.read_alerts(tmp_path, errors="skip")
    night = lk.read_alerts(tmp_path, engine="dask", partition_size=size, errors="skip")
    pd.testing.assert_frame_equal(sorted_rows(night.sources.compute()), sorted_rows(mem.sources))
    got = night.errors.compute()
    assert sorted(map(tuple, got.astype(str).to_numpy().tolist())) == sorted(
        map(tuple, mem.errors.astype(str).to_numpy().tolist()))


def test_repeat_check_keeps_64_bit_ids_exact(real_alerts, tmp_path):
    """Rubin's diaSourceIds exceed 2**53: ids one apart are different alerts, never repeats."""
    real = real_alerts / "lsst" / "part-2-918301.avro"
    table = scale._ids([str(real)], {})
    whole = lk.read_alerts(real)
    assert (whole.sources.index > 2**53).any()
    assert sorted(table["id"]) == sorted(whole.sources.index)
    assert scale._repeats(pd.DataFrame({"id": [2**60], "file": ["a"], "record": [0]}),
                          pd.DataFrame({"id": [2**60 + 1], "file": ["b"], "record": [0]})) == {}
    shutil.copy(real, tmp_path / "a.avro")
    shutil.copy(real, tmp_path / "b.avro")
    night = lk.read_alerts(tmp_path, engine="dask", partition_size=1)
    assert night.npartitions == 2
    got = night.sources.compute()
    assert sorted(got.index) == sorted(whole.sources.index)  # the copy dropped, every alert once
    assert len(night.errors.compute()) == len(whole)


def test_bad_input():
    with pytest.raises(FileNotFoundError):
        lk.read_alerts("/no/such/folder", engine="dask")
    with pytest.raises(TypeError, match="default engine"):
        lk.read_alerts(b"\x00\x00\x00\x04\x4d", engine="dask")
    with pytest.raises(ValueError, match="engine must be"):
        lk.read_alerts(lk.sample_path(), engine="spark")
    with pytest.raises(ValueError, match="partition_size"):
        lk.read_alerts(lk.sample_path(), engine="dask", partition_size="lots")
    with pytest.raises(ValueError, match="repeats must be 'drop' or 'keep'"):
        scale.read_alerts_dask(lk.sample_path(), repeats="first")
    with pytest.raises(ValueError, match="partition_size must be positive"):
        lk.read_alerts(lk.sample_path(), engine="dask", partition_size=0)
    night = lk.read_alerts(lk.sample_path(), engine="dask", partition_size="1MB")
    other = lk.read_alerts(lk.sample_path(), engine="dask")
    with pytest.raises(ValueError, match="partitions"):
        night.filter(F.quality(other))
    with pytest.raises(TypeError, match="Dask Series"):
        night.filter(np.ones(len(night.sources), bool))
    with pytest.raises(TypeError, match="Series or DataFrame"):
        night.map_batches(len)


def test_missing_dask_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(ImportError, match=r'pip install "lsstuk_kit\[dask\]"'):
        lk.read_alerts(lk.sample_path(), engine="dask")


def test_mixed_schema_versions_warn_about_columns_left_out(real_alerts, tmp_path):
    # the sample (schema 11.1) first, then real broker-enriched Rubin alerts (schema 10.0, extra fields)
    shutil.copy(iter_files(lk.sample_path())[0], tmp_path / "a.avro")
    shutil.copy(real_alerts / "lsst" / "part-2-918301.avro", tmp_path / "b.avro")
    night = lk.read_alerts(tmp_path, engine="dask", partition_size=1)
    assert night.npartitions == 2
    with pytest.warns(UserWarning, match="left out of the Dask tables"):
        s = night.sources.compute()
    whole = lk.read_alerts(tmp_path)
    assert sorted(s.index) == sorted(whole.sources.index)  # every alert is there, only extra columns are not
    pd.testing.assert_series_equal(sorted_rows(s["psfFlux"]), sorted_rows(whole.sources["psfFlux"]),
                                   check_dtype=False)


def test_dask_counts_a_partition_by_what_it_holds():
    """Dask sizes a loaded partition by its tables and cutouts (so workers spill it, not die)."""
    from dask.sizeof import sizeof

    import lsstuk_kit.scale  # noqa: F401 - registers the sizing

    batch = lk.load_sample()
    st = batch._store
    tables = sum(int(t.memory_usage(deep=True).sum()) for t in (st.sources, st.history, st.objects))
    cutouts = sum(c.nbytes for c in st.cutouts.values())
    assert cutouts > 0
    got = sizeof(batch)
    assert 0.8 * (tables + cutouts) <= got <= 1.5 * (tables + cutouts)
    assert sizeof(batch[batch.sources["mag"] < 21]) == got  # a subset keeps its whole store alive
