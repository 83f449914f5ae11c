"""Lasair filters run offline (lsstuk_kit.lasair): the objects table, the joins, per-alert runs, refusals."""

from __future__ import annotations

import ast
import copy
import json
import math
import statistics
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.lasair import (
    DIAOBJECT_COLUMNS,
    LEFT_OUT,
    OBJECT_COLUMNS,
    LasairFilter,
    LasairFilterError,
    LasairFilterWarning,
    crossmatch_tns,
    lasair_objects,
    objects_per_alert,
    run_filter,
    sherlock_classifications,
)
from lsstuk_kit.lasair.features import _pair_colour
from lsstuk_kit.skyareas import Watchmap

from .conftest import write

DATA = Path(__file__).parent / "data" / "lasair_filters"
FILTERS = {f["name"]: f for f in json.loads((DATA / "filters.json").read_text())}
BTS = Path(__file__).resolve().parents[2] / "shared" / "catalogs" / "ZTFBTS_TransientTable.csv"


def lasair(name, **kw):
    f = FILTERS[name]
    return LasairFilter(f["select"], f["where"], name=name, **kw)


@pytest.fixture(scope="module")
def sim_context():
    pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    from lsstuk_kit.context import catalogs_from_simulation

    return catalogs_from_simulation(pop, hosts)


@pytest.fixture(scope="module")
def per(batch):
    return objects_per_alert(batch, bbb=False)


@pytest.fixture(scope="module")
def real_batch(real_alerts):
    return lk.read_alerts(real_alerts / "lsst" / "part-2-918301.avro")


def _quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LasairFilterWarning)
        return run_filter(*args, **kw)


# ------------------------------------------------------------------ a plain re-statement of Lasair's loops
def reference_features(dets):
    """Lasair's counting / latestFlux / jump / pair loops over one object's detections (time-sorted dicts)."""
    flux = [d["psfFlux"] for d in dets]
    t = [d["midpointMjdTai"] for d in dets]
    band = [d["band"] for d in dets]
    rel = [d["reliability"] for d in dets]
    out = {"medianR": statistics.median(rel), "latestR": rel[-1], "nSourcesGood": sum(r > 0.5 for r in rel),
           "nPosDiaSources": sum(f > 0 for f in flux),
           "nPosDiaSourcesNights": len({int(x + 0.5) for f, x in zip(flux, t) if f > 0}),
           "lastDiaSourceMjdTai": max(t), "firstDiaSourceMjdTai": min(t), "latest_psfFlux": flux[-1]}
    for b in "ugrizy":
        out[f"n{b}Sources"] = band.count(b)
        out[f"{b}_psfFlux"] = next((f for f, x in zip(reversed(flux), reversed(band)) if x == b), None)
    s1, s2, n = {}, {}, {}
    T = t[-1]
    for f, x, b in zip(flux, t, band):
        if 10 < T - x < 70:
            n[b] = n.get(b, 0) + 1
            s1[b] = s1.get(b, 0) + f
            s2[b] = s2.get(b, 0) + f * f
    jumps = dict.fromkeys("ugrizy", 0.0)
    for f, x, b in zip(flux, t, band):
        if 0 < T - x < 10 and n.get(b, 0) >= 5:
            mean = s1[b] / n[b]
            sd = math.sqrt((s2[b] - n[b] * mean * mean) / (n[b] - 1))
            jumps[b] = max(jumps[b], abs(f - mean) / sd)
    j = sorted(jumps.values())
    out["jump1"], out["jump2"] = j[-1], j[-2]
    pairs = [i for i in range(len(t) - 1, 0, -1) if t[i] - t[i - 1] < 40 / 1440 and band[i] != band[i - 1]]
    out["_pairs"] = pairs[:2]
    return out


def test_features_match_lasairs_loops_alert_by_alert(batch, per):
    h = batch.history
    det = h[h["kind"] == "detection"]
    checked = 0
    for _, row in per.iloc[::7].iterrows():
        d = det[(det["diaObjectId"] == row["diaObjectId"]) & (det["midpointMjdTai"] <= row["alertMjdTai"])]
        d = d.sort_values("midpointMjdTai", kind="stable")
        ref = reference_features(d.to_dict("records"))
        for k, v in ref.items():
            if k == "_pairs":
                continue
            got = row[k]
            if v is None:
                assert pd.isna(got), (k, row["diaObjectId"])
            else:
                assert got == pytest.approx(v, rel=1e-5, abs=1e-6), (k, row["diaObjectId"])
        checked += 1
    assert checked >= 25
    assert (per["jump1"] > 0).any() and per["latestPairColourTemp"].notna().any()


def test_pair_colour_recovers_a_blackbody_and_keeps_lasairs_blue_last_quirk():
    from lsstuk_kit.lasair.features import _blackbody

    ratio = _blackbody(0.5, 6.0) / _blackbody(0.62, 6.0)  # g/r flux ratio of a 6 kK blackbody
    mag, bands, temp = _pair_colour(np.array([1.0, ratio]), np.array([ratio, 1.0]), np.array(["r", "g"]),
                                    np.array(["g", "r"]))
    assert temp[0] == pytest.approx(6.0, abs=1e-3) and bands[0] == "g-r"
    assert mag[0] == pytest.approx(-2.5 * math.log10(ratio))
    # the later source is the bluer band: Lasair's solver has no starting temperature and gives nothing
    assert np.isnan(temp[1]) and bands[1] is None


# ------------------------------------------------------------------ the objects table against Lasair's schema
def _schema_names(path):
    tree = ast.parse(path.read_text())
    schema = ast.literal_eval(tree.body[0].value)
    return ([f["name"] for f in schema["fields"] if "name" in f], [f["name"] for f in schema["ext_fields"]],
            {f["name"]: f.get("origin") for f in schema["fields"] if "name" in f})


def test_every_schema_column_is_computed_or_left_out(brokers_ref, batch, sim_context):
    main, ext, origin = _schema_names(brokers_ref / "lasair" / "schema_11_0" / "objects.py")
    assert list(OBJECT_COLUMNS) == main + ext
    assert set(LEFT_OUT) <= set(main + ext)
    sh = sherlock_classifications(batch.objects.reset_index(), **sim_context, bright_stars=False)
    obj = lasair_objects(batch, sherlock=sh)
    assert list(obj.columns) == [c for c in OBJECT_COLUMNS if c != "diaObjectId"]
    lasair_cols = [c for c in main if origin[c] in ("lasair", "external")]
    empty = {c for c in lasair_cols if obj[c].isna().all()}
    assert empty <= set(LEFT_OUT), f"computed columns that came out empty: {empty - set(LEFT_OUT)}"
    # the diaObject columns come from the alert's diaObject (Lasair overwrites first/last with the diaSources)
    src = batch.objects
    for c in ["nDiaSources", "g_psfFluxMean", "r_psfFluxMean", "validityStartMjdTai", "g_psfFluxMin"]:
        np.testing.assert_allclose(obj[c].astype(float), src.loc[obj.index, c].astype(float), rtol=1e-6)
    np.testing.assert_allclose(obj["decl"], src.loc[obj.index, "dec"])
    assert obj["htm16"].notna().all() and (obj["htm16"] > 2**33).all()  # level-16 ids are > 8 * 4**15


def test_left_out_is_documented():
    import lsstuk_kit.lasair.features as feat

    assert "LEFT_OUT" in feat.__doc__
    for column, reason in LEFT_OUT.items():
        assert len(reason) > 40, column


def test_as_of_gives_each_object_as_of_its_latest_earlier_alert(batch, per):
    span = per.groupby("diaObjectId")["alertMjdTai"].agg(["min", "max"])
    two = span[span["max"] > span["min"]].iloc[0]
    mid = float(two["min"] + two["max"]) / 2
    early = lasair_objects(batch, as_of=mid, bbb=False)
    assert set(early.index) == set(per.loc[per["alertMjdTai"] <= mid, "diaObjectId"])
    assert (early["lastDiaSourceMjdTai"] <= mid).all()
    late = lasair_objects(batch, bbb=False)
    moved = span.index[(span["min"] <= mid) & (span["max"] > mid)].tolist()
    assert moved and (late.loc[moved, "lastDiaSourceMjdTai"] > early.loc[moved, "lastDiaSourceMjdTai"]).all()


# ------------------------------------------------------------------ per-alert semantics
@pytest.fixture(scope="module")
def four_alerts(tmp_path_factory):
    """One new object with four alerts 30 minutes apart, its history growing alert by alert."""
    from lsstuk_kit.simulate import simulate_packets

    schema, packets = simulate_packets(1, n_history=0, seed=5)
    base = packets[0]
    t0 = base["diaSource"]["midpointMjdTai"]
    sources, alerts = [], []
    for i in range(4):
        a = copy.deepcopy(base)
        s = a["diaSource"]
        s["diaSourceId"] = a["diaSourceId"] = base["diaSourceId"] + i
        s["midpointMjdTai"] = t0 + i / 48
        s["band"] = "gr"[i % 2]
        s["psfFlux"] = 5000.0 * (i + 1)
        a["prvDiaSources"] = copy.deepcopy(sources)
        a["prvDiaForcedSources"] = []
        a["diaObject"]["nDiaSources"] = i + 1
        sources.append(copy.deepcopy(s))
        alerts.append(a)
    path = write(tmp_path_factory.mktemp("four") / "four.avro", schema, alerts[::-1])  # written out of order
    return lk.read_alerts(path)


def test_a_filter_passes_an_object_only_from_its_third_detection(four_alerts):
    f = LasairFilter("objects.diaObjectId, objects.ngSources + objects.nrSources AS ndet, objects.latest_psfFlux",
                     "objects.ngSources + objects.nrSources >= 3")
    res = _quiet(four_alerts, f)
    assert [m["ndet"] for m in res.messages] == [3, 4]
    assert [m["latest_psfFlux"] for m in res.messages] == [15000.0, 20000.0]
    t = four_alerts.sources.sort_values("midpointMjdTai")
    assert res.alerts["diaSourceId"].tolist() == t.index[2:].tolist()
    # the object's final row would pass all four alerts if the filter ran on it after the night
    assert lasair_objects(four_alerts).iloc[0][["ngSources", "nrSources"]].sum() == 4
    # pair colours appear with the second alert (g then r, 30 minutes apart)
    per = res.objects
    assert per["latestPairColourBands"].tolist()[1:] == ["g-r", None, "g-r"]


# ------------------------------------------------------------------ the filters of Lasair's docs
def test_doc_filter_bright_g(batch, per):
    # the docs' threshold (200000 nJy, about 18th mag) passes few alerts of the faint sample night
    # (8 of its 679 at the time of writing: the sample's g alerts are bright variables' pairs)
    n = int((per["g_psfFlux"] > 200000).sum())
    assert 0 < n < 20
    assert len(_quiet(batch, lasair("bright_g")).messages) == n
    f = FILTERS["bright_g"]
    res = _quiet(batch, LasairFilter(f["select"], f["where"].replace("200000", "20000")))
    assert res.messages, "the sample has g alerts brighter than 20000 nJy"
    assert all(set(m) == {"diaObjectId", "g_psfFlux", "since", "UTC"} for m in res.messages)
    assert all(m["g_psfFlux"] > 20000 for m in res.messages)
    assert all(m["since"] == 0 for m in res.messages)  # mjdnow() is the alert's time, its latest detection
    assert len(res.messages) == int((per["g_psfFlux"] > 20000).sum())
    assert res.alerts["alertMjdTai"].is_monotonic_increasing
    # ORDER BY does not change what passes, nor the time order of the stream
    f = FILTERS["bright_g_latest_first"]
    res2 = _quiet(batch, LasairFilter(f["select"], f["where"].replace("200000", "20000")))
    assert res2.alerts["diaSourceId"].tolist() == res.alerts["diaSourceId"].tolist()


def test_doc_filter_annotator_json_extract(batch):
    oids = batch.sources["diaObjectId"].unique()[:3]
    ann = pd.DataFrame({"diaObjectId": oids, "classification": ["SN", "SN", "kilonova"],
                        "classdict": [{"lsst-g": {}, "lsst-r": {"absolute_peak_mag_val": -19.116}},
                                      {"lsst-r": {"absolute_peak_mag_val": -18.2}},
                                      {"lsst-r": {"absolute_peak_mag_val": -19.5}, "in-major-body": {"M31": "N"}}]})
    res = _quiet(batch, lasair("fastfinder_absmag", annotators={"fastfinder": ann}))
    assert {m["diaObjectId"] for m in res.messages} == {int(oids[0]), int(oids[2])}
    assert sorted({float(m["absrmag"]) for m in res.messages}) == [-19.5, -19.116]
    assert "annotations AS fastfinder" in res.filter.sql and 'fastfinder.topic="fastfinder"' in res.filter.sql
    # the docs' own SELECT names objects.objectId (ZTF era): the database says so
    bad = LasairFilter("objects.objectId", FILTERS["fastfinder_absmag"]["where"], annotators={"fastfinder": ann})
    with pytest.raises(LasairFilterError, match="objectId"):
        run_filter(batch, bad)
    # string values: JSON_UNQUOTE, and MySQL's case-insensitive comparison
    f = LasairFilter("objects.diaObjectId", "JSON_UNQUOTE(JSON_EXTRACT(fastfinder.classdict, '$.in-major-body.M31'))"
                     " = 'n' AND fastfinder.classification LIKE 'KILO%'", annotators={"fastfinder": ann})
    assert {m["diaObjectId"] for m in _quiet(batch, f).messages} == {int(oids[2])}


def test_sherlock_join(batch, sim_context):
    res = _quiet(batch, lasair("sherlock_sn"), context=sim_context)
    sh = sherlock_classifications(batch.objects.reset_index(), **sim_context)
    sn = set(sh.loc[sh["classification"] == "SN", "diaObjectId"])
    assert res.messages and {m["diaObjectId"] for m in res.messages} <= sn
    assert all(m["classification"] == "SN" and m["catalogue_object_id"].startswith("host") for m in res.messages)
    per = res.objects
    expect = per[per["diaObjectId"].isin(sn) & (per["nPosDiaSources"] >= 2)]
    assert res.alerts["diaSourceId"].tolist() == expect["diaSourceId"].tolist()
    # absMag needs a host distance: the SN/NT/ORPHAN objects on a galaxy with a redshift get one
    with_z = set(sh.loc[sh["z"].notna() & sh["classification"].isin(["SN", "NT"]), "diaObjectId"])
    assert per.loc[per["diaObjectId"].isin(with_z) & (per["nPosDiaSources"] > 0), "absMag"].notna().all()
    assert per.loc[per["nPosDiaSources"] == 0, "absMag"].isna().all()
    assert per.loc[~per["diaObjectId"].isin(with_z), "absMag"].isna().all()


def test_sherlock_mapping_covers_every_context():
    from lsstuk_kit.context import CONTEXTS
    from lsstuk_kit.lasair import SHERLOCK_FROM_CONTEXT

    assert set(SHERLOCK_FROM_CONTEXT) == set(CONTEXTS)
    assert set(SHERLOCK_FROM_CONTEXT.values()) <= {"VS", "CV", "AGN", "NT", "SN", "ORPHAN", "BS", "UNCLEAR"}


def test_watchlist_join(batch):
    objs = batch.objects.iloc[:3]
    wl = pd.DataFrame({"name": ["star A", "galaxy B", "far C"], "ra": objs["ra"].to_numpy(),
                       "dec": objs["dec"].to_numpy() + np.array([1.0, 0.5, 30.0]) / 3600})
    f = LasairFilter("objects.diaObjectId, watchlist_hits.name, watchlist_hits.arcsec", "watchlist_hits.arcsec < 1.5",
                     watchlists=wl)
    assert "watchlist:1" in f.tables and "watchlist_hits.wl_id=1" in f.sql
    res = _quiet(batch, f)
    got = {(m["diaObjectId"], m["name"]) for m in res.messages}
    assert got == {(int(objs.index[0]), "star A"), (int(objs.index[1]), "galaxy B")}
    arcsec = {m["name"]: m["arcsec"] for m in res.messages}
    assert arcsec["star A"] == pytest.approx(1.0, abs=1e-3) and arcsec["galaxy B"] == pytest.approx(0.5, abs=1e-3)
    n_alerts = batch.sources["diaObjectId"].isin(objs.index[:2]).sum()
    assert len(res.messages) == n_alerts


def test_watchmap_join_and_several_watchmaps(batch):
    o = batch.objects
    wm = Watchmap.from_circle(float(o["ra"].iloc[0]), float(o["dec"].iloc[0]), 20 * u.arcmin)
    inside = set(o.index[wm.contains_lonlat(o["ra"], o["dec"])])
    res = _quiet(batch, LasairFilter("objects.diaObjectId", "", watchmaps=wm))
    assert {m["diaObjectId"] for m in res.messages} == inside and inside
    assert len(res.messages) == batch.sources["diaObjectId"].isin(inside).sum()
    wm2 = Watchmap.from_circle(float(o["ra"].iloc[0]), float(o["dec"].iloc[0]), 2 * u.arcmin)
    both = LasairFilter("objects.diaObjectId", "", watchmaps={3: wm, 8: wm2})
    assert "area_hits as ar0, area_hits as ar1" in both.sql and "ar1.ar_id=8" in both.sql
    inner = set(o.index[wm2.contains_lonlat(o["ra"], o["dec"])])
    assert {m["diaObjectId"] for m in _quiet(batch, both).messages} == inner


@pytest.mark.skipif(not BTS.is_file(), reason=f"the ZTF BTS table {BTS} is absent (it lives beside the project)")
def test_tns_join_with_the_real_bts_table(batch):
    tns = crossmatch_tns(BTS)
    assert len(tns) == 5273 and set(tns["tns_prefix"].dropna()) >= {"SN", "AT"}
    row = tns[tns["tns_name"] == "2019azh"].iloc[0]
    assert row["ra"] == pytest.approx(123.3206, abs=1e-4) and row["type"] == "TDE"
    # one sample object is placed on the sky of a real BTS supernova
    o = batch.objects.iloc[[5]]
    raw = pd.read_csv(BTS)
    fake = raw.iloc[[0]].assign(IAUID="SN2099zz", RA=str(float(o["ra"].iloc[0])), Dec=str(float(o["dec"].iloc[0])),
                                type="SN Ia", redshift=0.031)
    cat = pd.concat([raw, fake], ignore_index=True)
    res = _quiet(batch, lasair("tns_known"), tns=cat)
    assert {(m["diaObjectId"], m["tns_name"], m["type"]) for m in res.messages} == {(int(o.index[0]), "2099zz",
                                                                                     "SN Ia")}
    assert "watchlist_hits.name=crossmatch_tns.tns_name" in res.filter.sql
    assert res.objects.loc[res.objects["diaObjectId"] == o.index[0], "tns_name"].eq("2099zz").all()
    with pytest.raises(LasairFilterError, match="cannot have both watchlist and crossmatch_tns"):
        LasairFilter(FILTERS["tns_known"]["select"], "", watchlists=o.reset_index()).check()


# ------------------------------------------------------------------ refusals, with Lasair's reasons
@pytest.mark.parametrize("select, where, message", [
    ("objects.diaObjectId", "objects.ra > 1; DELETE FROM objects", "Cannot use ; in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 /* hidden */", r"Cannot use /\* in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 # comment", "Cannot use # in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 || 1", r"Cannot use \|\| in the WHERE clause"),
    ("objects.diaObjectId", "objects.tns_name = 'a\\'b'", r"Cannot use \\ in the WHERE clause"),
    ("objects.diaObjectId; DROP TABLE objects", "", "Cannot use ; in the SELECT clause"),
    ("  ", "", "SELECT expression cannot be blank. Try putting \\* in it."),
    ("objects.diaObjectId FROM objects", "", "Cannot use the word FROM in the SELECT clause"),
    ("(select max(ra) from objects)", "", "Cannot use the word SELECT in the SELECT clause"),
    ("sleep(10)", "", "Cannot use the word SLEEP in the SELECT clause"),
    ("objects.diaObjectId", "objects.ra IN (SELECT ra FROM objects)", "Cannot use the word SELECT in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 UNION ALL objects.ra < 0", "Cannot use the word UNION in the WHERE clause"),
    ("objects.diaObjectId", "EXISTS (objects.ra)", "Cannot use the word EXISTS in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 INTO OUTFILE 'x'", "Cannot use the word INTO in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 limit 10", "Dont put LIMIT in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 offset 10", "Dont put OFFSET in the WHERE clause"),
    ("objects.diaObjectId", "objects.ra > 1 LIMIT 10", "Dont put LIMIT in the WHERE clause.*only lower case"),
])
def test_refusals_with_lasairs_reasons(batch, select, where, message):
    with pytest.raises(LasairFilterError, match=message):
        LasairFilter(select, where).check()
    with pytest.raises(LasairFilterError, match=message):
        run_filter(batch, LasairFilter(select, where))


def test_what_lasairs_checks_let_through_the_database_refuses(batch):
    # DELETE/UPDATE are not on Lasair's word lists: without a ';' they are only bad SQL
    for where in ("DELETE objects", "UPDATE objects SET ra = 0"):
        LasairFilter("objects.diaObjectId", where).check()
        with pytest.raises(LasairFilterError, match="does not run: SQL error \\(parser\\): ") as err:
            run_filter(batch, LasairFilter("objects.diaObjectId", where))
        assert str(err.value).lower().count("parser") == 1  # DuckDB's "Parser Error:" not repeated (issue 15)
    # no file access from a filter (DuckDB's external access is off)
    # nor file access: DuckDB's "(FROM table)" subquery has no SELECT word, but external access is off
    f = LasairFilter("objects.diaObjectId", "objects.ra > 0 AND objects.diaObjectId IN (FROM read_csv('/etc/passwd'))")
    with pytest.raises(LasairFilterError, match="(?i)permission|disabled"):
        run_filter(batch, f.check())
    # Lasair's comment stripping only hides a leading '--' line from the word check, and that line stays
    f = LasairFilter("objects.diaObjectId", "-- select\nobjects.ra > 0")
    assert f.check() is f and "-- select" in f.sql


def test_from_list_errors():
    with pytest.raises(LasairFilterError, match="not of the form watchlist:nnn"):
        LasairFilter("objects.diaObjectId", "", tables="watchlist:abc").check()
    with pytest.raises(LasairFilterError, match="names watchlist:4 but no watchlist 4"):
        LasairFilter("objects.diaObjectId", "", tables="watchlist:4").check()
    with pytest.raises(LasairFilterError, match="annotator fastfinder"):
        LasairFilter("objects.diaObjectId", "", tables="annotator:fastfinder").check()


# ------------------------------------------------------------------ the SQL: as Lasair builds it, as DuckDB runs it
def test_sql_as_lasair_builds_it():
    f = LasairFilter("objects.diaObjectId, sherlock_classifications.classification",
                     "sherlock_classifications.classification = 'SN' ORDER BY objects.lastDiaSourceMjdTai DESC")
    assert f.tables == "sherlock_classifications"
    assert f.sql == ("SELECT objects.diaObjectId, sherlock_classifications.classification \n"
                     "FROM objects, sherlock_classifications \nWHERE\n "
                     "objects.diaObjectId=sherlock_classifications.diaObjectId AND\n "
                     'sherlock_classifications.classification = "SN" ORDER BY objects.lastDiaSourceMjdTai DESC'
                     " LIMIT 1000")
    only_order = LasairFilter("objects.diaObjectId", "ORDER BY objects.ra")
    assert only_order.sql == "SELECT objects.diaObjectId \nFROM objects ORDER BY objects.ra LIMIT 1000"
    assert LasairFilter("objects_ext.g_psfFluxMin", "").sql.startswith("SELECT objects.g_psfFluxMin")
    assert f.columns_used == ["objects.diaObjectId", "objects.lastDiaSourceMjdTai",
                              "sherlock_classifications.classification"]
    assert LasairFilter("diaObjectId", "g_psfFlux > 1").columns_used == ["objects.diaObjectId", "objects.g_psfFlux"]


def test_mysql_functions_translated(batch, per):
    f = LasairFilter("objects.diaObjectId, LOG(10) AS ln10, LOG(10, 100) AS two, 7 DIV 2 AS three, "
                     "mjdnow() AS now", "objects.tns_name IS NULL AND 'ABC' LIKE 'abc'")
    sql = f.duckdb_sql()
    assert "ln(10)" in sql and "LOG(10, 100)" in sql
    assert "objects.__mjdnow" in sql and "ILIKE" in sql and '"' not in sql.split("FROM")[1]
    res = _quiet(batch, f)
    m = res.messages[0]
    assert m["ln10"] == pytest.approx(math.log(10)) and m["two"] == pytest.approx(2.0) and m["three"] == 3
    assert [x["now"] for x in res.messages] == pytest.approx(per["alertMjdTai"].tolist())


def test_top_level_or_with_joins_warns(batch, sim_context):
    f = LasairFilter("objects.diaObjectId", "sherlock_classifications.classification = 'SN' OR objects.ra > 0")
    with pytest.warns(LasairFilterWarning, match="OR outside parentheses"):
        res = run_filter(batch, f, context=sim_context, max_share=1e9)
    # as in Lasair, the OR escapes the join: every alert pairs with every Sherlock row
    assert len(res.messages) > len(batch)


# ------------------------------------------------------------------ report, warning, plot, message kinds
def test_report_backtest_and_share_warning(batch):
    f = LasairFilter("objects.diaObjectId, objects.latestR", "objects.latestR > 0.5")
    with pytest.warns(LasairFilterWarning, match="max_share"):
        res = run_filter(batch, f, max_share=0.1)
    r = res.report
    assert r["alerts"] == len(batch) and r["alerts_passed"] == len(res.messages)
    assert r["per_night"]["alerts_in"].sum() == len(batch) and r["per_hour"]["alerts_in"].sum() == len(batch)
    assert r["per_hour"]["alerts_passed"].sum() == r["alerts_passed"]
    assert 0 < r["share"] <= 1 and r["seconds_per_alert"] > 0
    assert r["columns_used"] == ["objects.diaObjectId", "objects.latestR"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LasairFilterWarning)
        run_filter(batch, LasairFilter("objects.diaObjectId", "objects.latestR > 0.999"), max_share=0.5)
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot()
    assert sum(p.get_height() for p in ax.patches) == len(batch) + r["alerts_passed"]


@pytest.mark.parametrize("kind", ["lite", "full"])
def test_message_kinds(batch, kind):
    pytest.importorskip("lsstuk_kit.formats.lasair_json")
    f = FILTERS["bright_g"]
    res = _quiet(batch, LasairFilter(f["select"], f["where"].replace("200000", "20000")), kind=kind)
    assert res.messages
    m = res.messages[0]
    assert {"diaObjectId", "g_psfFlux", "since", "UTC", "alert"} <= set(m)
    lc = m["alert"]["diaSourcesList"]
    assert lc and all(s["midpointMjdTai"] <= res.alerts["alertMjdTai"].iloc[0] + 1e-9 for s in lc)
    assert ("diaObject" in m["alert"]) == (kind == "full")
    json.dumps(res.messages)


# ------------------------------------------------------------------ the real Rubin alerts
def test_real_rubin_alerts(real_batch):
    per = objects_per_alert(real_batch)
    assert len(per) == 5  # two of the seven alerts have no diaObject (solar-system sources)
    h = real_batch.history
    det = h[(h["kind"] == "detection") & h["psfFlux"].notna()]
    counts = det.groupby("diaObjectId").size()
    got = per.set_index("diaObjectId")[[f"n{b}Sources" for b in "ugrizy"]].sum(axis=1)
    assert (got == counts.reindex(got.index)).all()
    assert per["i_psfFluxMean"].notna().any() and per["raErr"].notna().all() and per["htm16"].notna().all()
    obj = lasair_objects(real_batch)
    src = real_batch.objects.loc[obj.index]
    copied = [c for c in DIAOBJECT_COLUMNS if c in src and c not in ("firstDiaSourceMjdTai", "lastDiaSourceMjdTai")]
    assert len(copied) >= 75
    for c in copied:
        np.testing.assert_allclose(obj[c].astype(float), src[c].astype(float), err_msg=c)
    res = _quiet(real_batch, LasairFilter("objects.diaObjectId, objects.nDiaSources, objects.jump1",
                                          "objects.nDiaSources > 300"))
    assert res.report["alerts_without_object"] == 2 and res.report["alerts"] == 5
    assert {m["diaObjectId"] for m in res.messages} == set(src.index[src["nDiaSources"] > 300])


@pytest.mark.parametrize("name", ["bright_g", "fresh_and_reliable", "outburst"])
def test_own_filters_run_on_real_and_sample(batch, real_batch, name):
    for b in (batch, real_batch):
        res = _quiet(b, lasair(name))
        assert res.report["alerts"] > 0 and res.alerts["alertMjdTai"].is_monotonic_increasing
        assert len(res.messages) == len(res.alerts)


def test_filter_over_real_rubin_alerts_as_fink_stores_them(real_alerts):
    """The same filter over the 27 real Rubin alerts of the Fink Parquet file (deep-drilling fields)."""
    fink = lk.read_alerts(real_alerts / "fink" / "fink_rubin_test_data_10_0.parquet")
    per = objects_per_alert(fink)
    with_object = fink.sources["diaObjectId"].isin(fink.objects.index)
    assert len(per) == int(with_object.sum()) > 0
    # every alert is counted once, in time order; the detections counted match the history carried
    res = _quiet(fink, LasairFilter("objects.diaObjectId, objects.nDiaSources, objects.lastDiaSourceMjdTai",
                                    "objects.nDiaSources >= 2"))
    assert res.report["alerts"] + res.report["alerts_without_object"] == len(fink)
    assert res.alerts["alertMjdTai"].is_monotonic_increasing
    h = fink.history
    ndet = h[(h["kind"] == "detection") & h["psfFlux"].notna()].groupby("diaObjectId").size()
    passed = {m["diaObjectId"] for m in res.messages}
    assert passed and passed <= set(ndet.index[ndet >= 2])
    for m in res.messages:  # the time in each message is that alert's, never a later one
        assert m["lastDiaSourceMjdTai"] <= fink.sources["midpointMjdTai"].max() + 1e-9


def test_htm16_takes_scalars_and_arrays_of_any_shape():
    from lsstuk_kit.lasair.features import htm16

    ra, dec = np.array([[10.0, 200.0], [359.9, 0.1]]), np.array([[-5.0, 30.0], [89.0, -89.0]])
    grid = htm16(ra, dec)
    assert grid.shape == (2, 2) and grid.dtype == np.int64
    assert [htm16(float(r), float(d)) for r, d in zip(ra.ravel(), dec.ravel())] == grid.ravel().tolist()
    assert htm16([], []).shape == (0,)
    with pytest.raises(ValueError, match="differ in shape"):
        htm16([1.0, 2.0], [3.0])
    # an unusable position is refused (esutil would give it the first trixel's id); the tables leave it empty
    for r, d in ((np.nan, 0.0), (10.0, 95.0), (np.inf, 0.0)):
        with pytest.raises(ValueError, match="not finite or have"):
            htm16([10.0, r], [0.0, d])
    from lsstuk_kit.lasair.features import _htm16_or_missing

    col = _htm16_or_missing([10.0, np.nan, 200.0], [-5.0, 0.0, 95.0])
    assert str(col.dtype) == "Int64" and col.isna().tolist() == [False, True, True] and col[0] == htm16(10.0, -5.0)
