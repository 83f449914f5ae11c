"""Reading brokers' outputs and ATLAS alerts: read_alerts(format=...) against what a user would write.

For each format the kit reads (issue 12), builds realistic input, then measures in this one
process, best of ``--repeat`` runs, the kit's read and a plain baseline on the same input:

  fink-parquet   the real files in ../shared/real-alerts/fink (skipped, with the reason, when
                 absent) and a Rubin file made by writing the bundled sample night with
                 write_fink_parquet, replicated with shifted ids (--copies). Baseline:
                 pyarrow.parquet.read_table(path).to_pylist() and a Python loop building the
                 sources rows and the long history table (detections + forced) as DataFrames.
                 Also read_alerts(columns=DEFAULT_COLUMNS, cutouts=False) against the same loop
                 on a read_table that leaves the cutout columns out.
  lasair-json    the sample night as Lasair Kafka messages of each kind (attributes, lite,
                 full; to_lasair_messages), replicated with shifted ids, as bytes. Baseline:
                 json.loads of each + pandas.json_normalize of the envelope and of
                 diaSourcesList / diaForcedSourcesList.
  alerce-json    the real ALeRCE light curve in tests/data/alerce replicated to --json-alerts
                 alerts ({oid: light curve}, new oids and candids). Baseline: json.load +
                 DataFrame of the detections.
  antares-json   the real ANTARES locus in tests/data/antares replicated to --json-alerts alerts
                 (loci of 30 candidates and 2 upper limits, new ids). Baseline: json.load +
                 DataFrame of the candidate rows' properties.
  atlas-ddc      one generated .ddc exposure of --ddc-rows detections (the header of
                 tests/data/atlas). Baseline: pandas.read_csv(comment="#", sep=r"\\s+").
  atlas-avro     surveys.atlas.example_alerts written with write_atlas_alerts (two gzipped FITS
                 stamps per alert), replicated with shifted ids to --atlas-alerts. Baseline:
                 fastavro.reader loop, the candidates into a DataFrame.

Prints, per case: alerts, kit alerts/s, baseline alerts/s and the ratio, then what each
baseline leaves out. Speed is not asserted anywhere.

    python benchmarks/bench_formats.py [--copies 15] [--json-alerts 10000] [--ddc-rows 50000]
                                       [--atlas-alerts 5000] [--repeat 3] [--only fink-parquet,...]
"""

from __future__ import annotations

import argparse
import copy
import glob
import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lsstuk_kit as lk
from lsstuk_kit.formats.fink_parquet import write_fink_parquet
from lsstuk_kit.formats.lasair_json import KINDS, to_lasair_messages
from lsstuk_kit.surveys.atlas import example_alerts, write_atlas_alerts

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
REAL_FINK = ROOT.parent / "shared" / "real-alerts" / "fink"
FORMATS = ("fink-parquet", "lasair-json", "alerce-json", "antares-json", "atlas-ddc", "atlas-avro")
ID_FIELDS = ("diaSourceId", "diaObjectId", "diaForcedSourceId")
UTC = "2026-01-29 11:40:14"

LEAVES_OUT = {
    "fink-parquet": "no checks (null/NaN ids, positions off the sky, doubles that lost integer digits), no "
                    "units (no mag/magErr/snr), no survey mapping of ZTF rows, no objects table, no dedup",
    "lasair-json": "no triggering-source pick (latest diaSource), no decl->dec, no mags, no history kinds, "
                   "no per-message error accounting",
    "alerce-json": "detections only (no non-detections or per-alert history), no fluxes in nJy or signed "
                   "isdiffpos, no reliability choice (drb/rb), no exact int ids",
    "antares-json": "candidate rows only (no upper limits, no history), no fluxes, bands or locus columns, "
                    "ids left as text",
    "atlas-ddc": "no header (exposure, MJD, filter), no ids, no fluxes, no per-line error report",
    "atlas-avro": "no ids from candid, no fluxes in nJy, no reliability, cutouts decoded into dicts",
}


# ---------------------------------------------------------------------------------------- timing
def best_of(fn, repeat):
    """Best wall time of ``repeat`` calls and the count the last call returned."""
    best, n = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def kit_reader(src, expected, **kw):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = lk.read_alerts(src, **kw)
        if len(batch) != expected:
            raise RuntimeError(f"read_alerts gave {len(batch)} alerts, expected {expected}: {batch.errors}")
        return len(batch)
    return run


# ---------------------------------------------------------------------------------------- fink
def _shift(arr, offset):
    """``arr`` (struct / list of structs) with every id field of ID_FIELDS shifted by ``offset``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_struct(arr.type):
        children = []
        for i, f in enumerate(arr.type):
            child = arr.field(i)
            if f.name in ID_FIELDS and pa.types.is_integer(f.type):
                child = pc.add(child, pa.scalar(offset, f.type))
            elif pa.types.is_struct(f.type) or pa.types.is_list(f.type):
                child = _shift(child, offset)
            children.append(child)
        return pa.StructArray.from_arrays(children, fields=list(arr.type), mask=arr.is_null())
    if pa.types.is_list(arr.type):
        return pa.ListArray.from_arrays(arr.offsets, _shift(arr.values, offset), mask=arr.is_null())
    return arr


def replicate_fink(table, copies, span):
    parts = []
    for k in range(copies):
        off = k * span
        cols = []
        for name in table.column_names:
            col = table.column(name).combine_chunks()
            if name in ID_FIELDS and pa.types.is_integer(col.type):
                col = pc.add(col, pa.scalar(off, col.type))
            elif pa.types.is_struct(col.type) or pa.types.is_list(col.type):
                col = _shift(col, off)
            cols.append(col)
        parts.append(pa.Table.from_arrays(cols, schema=table.schema))
    return pa.concat_tables(parts)


def fink_baseline(path, cutouts=True):
    """What a user writes: rows as dicts, then a loop into sources and a long history table."""
    columns = None if cutouts else [c for c in pq.read_schema(path).names if not c.startswith("cutout")]
    rows = pq.read_table(path, columns=columns).to_pylist()
    sources, history = [], []
    for r in rows:
        if r.get("diaSource") is not None:  # Rubin
            s = r["diaSource"]
            sources.append(s)
            for h in r.get("prvDiaSources") or ():
                history.append({**h, "kind": "detection", "alert": s["diaSourceId"]})
            for h in r.get("prvDiaForcedSources") or ():
                history.append({**h, "kind": "forced", "alert": s["diaSourceId"]})
        else:  # ZTF
            c = r["candidate"]
            sources.append({**c, "objectId": r["objectId"]})
            for h in r.get("prv_candidates") or ():
                history.append({**h, "kind": "detection" if h.get("candid") is not None else "upper_limit",
                                "alert": c["candid"]})
    src, _hist = pd.DataFrame(sources), pd.DataFrame(history)
    return len(src)


def cases_fink(tmp, args):
    out = []
    real = sorted(glob.glob(str(REAL_FINK / "*.parquet")))
    if not real:
        print(f"fink-parquet: real files skipped: none in {REAL_FINK}")
    for path in real:
        n = pq.ParquetFile(path).metadata.num_rows
        label = "real " + Path(path).stem.replace("fink_", "")
        out.append(("fink-parquet", label, n, kit_reader(path, n, format="fink-parquet"),
                    lambda p=path: fink_baseline(p)))
    sample = lk.load_sample()
    one = write_fink_parquet(sample, os.path.join(tmp, "sample.parquet"))
    table = pq.read_table(one)
    ids = table.column("diaSourceId").to_numpy()
    span = 10 ** int(np.ceil(np.log10(int(ids.max()) + 1)))
    path = os.path.join(tmp, "night_x.parquet")
    pq.write_table(replicate_fink(table, args.copies, span), path, compression="snappy")
    n = table.num_rows * args.copies
    hist = len(sample.history) / len(sample)
    label = f"sample night x{args.copies} ({os.path.getsize(path) / n / 1024:.0f} KB/alert, {hist:.0f} hist rows)"
    out.append(("fink-parquet", label, n, kit_reader(path, n, format="fink-parquet"),
                lambda p=path: fink_baseline(p)))
    out.append(("fink-parquet", "  same, DEFAULT_COLUMNS, cutouts=False (baseline: no cutout columns)", n,
                kit_reader(path, n, format="fink-parquet", columns=lk.DEFAULT_COLUMNS, cutouts=False),
                lambda p=path: fink_baseline(p, cutouts=False)))
    return out


# ---------------------------------------------------------------------------------------- lasair
def _shift_ids(obj, offset):
    if isinstance(obj, dict):
        return {k: (v + offset if k in ID_FIELDS and isinstance(v, int) else _shift_ids(v, offset))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shift_ids(v, offset) for v in obj]
    return obj


def lasair_baseline(raw):
    msgs = [json.loads(m) for m in raw]
    env = pd.json_normalize([{k: v for k, v in m.items() if k != "alert"} for m in msgs])
    if msgs and "alert" in msgs[0]:
        _objects = pd.json_normalize([m["alert"].get("diaObject") or {} for m in msgs])
        for name in ("diaSourcesList", "diaForcedSourcesList"):
            _rows = pd.json_normalize(msgs, record_path=["alert", name], meta=["diaObjectId"], meta_prefix="message.")
    return len(env)


def cases_lasair(tmp, args):
    sample = lk.load_sample()
    span = 10 ** int(np.ceil(np.log10(int(sample.sources["diaObjectId"].max()) + 1)))
    out = []
    for kind in KINDS:
        msgs = to_lasair_messages(sample, kind=kind, utc=UTC)
        raw = [json.dumps(_shift_ids(m, k * span) if k else m).encode() for k in range(args.copies) for m in msgs]
        size = sum(map(len, raw)) / len(raw) / 1024
        label = f"{kind} messages (bytes, {size:.1f} KB each)"
        out.append(("lasair-json", label, len(raw), kit_reader(raw, len(raw), format="lasair-json"),
                    lambda r=raw: lasair_baseline(r)))
    return out


# ---------------------------------------------------------------------------------------- alerce / antares
def build_alerce(path, n_alerts):
    lc = json.loads((DATA / "alerce" / "ZTF20aaelulu_lightcurve.json").read_text())
    per = len(lc["detections"])
    n_obj = max(1, -(-n_alerts // per))
    doc = {}
    for k in range(n_obj):
        dets = [{**d, "candid": str(int(d["candid"]) + k * 10**6)} for d in lc["detections"]]
        doc[f"ZTF20ab{k:05d}"] = {"detections": dets, "non_detections": lc["non_detections"]}
    Path(path).write_text(json.dumps(doc))
    return n_obj * per


def alerce_baseline(path):
    with open(path) as fh:
        doc = json.load(fh)
    det = pd.DataFrame([{**d, "oid": oid} for oid, lc in doc.items() for d in lc["detections"]])
    return len(det)


def build_antares(path, n_alerts, per_locus=30):
    locus = json.loads((DATA / "antares" / "ZTF20aafqubg_locus_alerts.json").read_text())
    cand = next(a for a in locus["alerts"] if a["properties"].get("ant_mag") is not None)
    limits = [a for a in locus["alerts"] if a["properties"].get("ant_mag") is None]
    n_loci = max(1, -(-n_alerts // per_locus))
    loci = []
    for j in range(n_loci):
        alerts = copy.deepcopy(limits)
        for i in range(per_locus):
            a = copy.deepcopy(cand)
            p = a["properties"]
            cid = p["ztf_candid"] + j * 10**5 + i
            fid = 1 + i % 2
            p.update(ztf_candid=cid, ztf_fid=fid, ant_passband="gR"[fid - 1], ant_mjd=cand["mjd"] + 2 * i,
                     ant_mag=p["ant_mag"] + 0.02 * (i % 7), ztf_magpsf=p["ant_mag"] + 0.02 * (i % 7))
            a["alert_id"] = f"ztf_candidate:{cid}"
            a["mjd"] = p["ant_mjd"]
            alerts.append(a)
        loci.append({**{k: v for k, v in locus.items() if k != "alerts"}, "locus_id": f"ANT2020{j:05d}",
                     "properties": {**locus["properties"], "ztf_object_id": f"ZTF20ac{j:05d}"}, "alerts": alerts})
    Path(path).write_text(json.dumps(loci))
    return n_loci * per_locus


def antares_baseline(path):
    with open(path) as fh:
        loci = json.load(fh)
    rows = pd.DataFrame([{**a["properties"], "alert_id": a["alert_id"], "locus_id": lo["locus_id"]}
                         for lo in loci for a in lo["alerts"] if a["properties"].get("ant_mag") is not None])
    return len(rows)


def cases_json(tmp, args):
    a_path, b_path = os.path.join(tmp, "alerce.json"), os.path.join(tmp, "antares.json")
    n_a, n_b = build_alerce(a_path, args.json_alerts), build_antares(b_path, args.json_alerts)
    return [
        ("alerce-json", f"ZTF20aaelulu x{n_a // 58} objects (58 det + 17 non-det each)", n_a,
         kit_reader(a_path, n_a, format="alerce-json"), lambda p=a_path: alerce_baseline(p)),
        ("antares-json", f"ANT2020nb5h6 x{n_b // 30} loci (30 alerts + 2 limits each)", n_b,
         kit_reader(b_path, n_b, format="antares-json"), lambda p=b_path: antares_baseline(p)),
    ]


# ---------------------------------------------------------------------------------------- atlas
DDC_NAMES = ["RA", "Dec", "mag", "dmag", "x", "y", "major", "minor", "phi", "det", "chi/N", "Pvr", "Ptr", "Pmv",
             "Pkn", "Pno", "Pbn", "Pcr", "Pxt", "Psc", "Dup", "WPflx", "dflx"]


def build_ddc(path, n_rows, seed=3):
    """One ATLAS exposure's .ddc with ``n_rows`` detections (header from tests/data/atlas, rows as ATLAS prints)."""
    text = (DATA / "atlas" / "02a59897o0104o.ddc").read_text().splitlines()
    header = [ln for ln in text if ln.startswith("#")]
    if header[-1].split()[1:] != DDC_NAMES:
        raise RuntimeError("unexpected .ddc column line in the fixture")
    rng = np.random.default_rng(seed)
    ra0, dec0, scale = 150.912, 2.381, 1.862
    ra = ra0 + rng.uniform(-2.5, 2.5, n_rows) / np.cos(np.radians(dec0))
    dec = np.sort(dec0 + rng.uniform(-2.5, 2.5, n_rows))
    mag = rng.uniform(13.5, 19.6, n_rows)
    neg = rng.random(n_rows) < 0.1
    dmag = np.round(0.01 + 0.2 * 10 ** (0.4 * (mag - 19.4)), 3)
    x = 5280 + (ra - ra0) * np.cos(np.radians(dec0)) * 3600 / scale
    y = 5280 + (dec - dec0) * 3600 / scale
    det = np.where(neg, 5, rng.choice([0, 1], n_rows))
    probs = rng.integers(0, 999, (n_rows, 9))
    cols = [ra, dec, np.where(neg, -mag, mag), dmag, x, y, np.full(n_rows, 2.28), np.full(n_rows, 2.04),
            np.full(n_rows, 41.0), det, rng.uniform(0.6, 2.5, n_rows), *probs.T, np.zeros(n_rows, int),
            rng.normal(0, 800, n_rows), rng.uniform(1, 4, n_rows)]
    fmt = ["%9.5f", "%9.5f", "%7.3f", "%6.3f", "%8.2f", "%8.2f", "%6.2f", "%6.2f", "%6.2f", "%2d", "%6.2f"] + \
        ["%3d"] * 9 + ["%2d", "%9.1f", "%6.1f"]
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack(cols), fmt=fmt, delimiter=" ")
    Path(path).write_text("\n".join(header) + "\n" + buf.getvalue())
    return n_rows


def ddc_baseline(path):
    return len(pd.read_csv(path, comment="#", sep=r"\s+", header=None, names=DDC_NAMES))


def build_atlas_avro(path, n_alerts, distinct=500):
    proto = example_alerts(min(distinct, n_alerts), seed=11)
    ids = np.array([a["candid"] for a in proto], np.int64)
    span = int(ids.max() - ids.min()) + 1
    alerts = []
    for i in range(n_alerts):
        k, a = divmod(i, len(proto))
        a = proto[a]
        off = k * span
        alerts.append({**a, "candid": a["candid"] + off, "objectId": str(int(a["objectId"]) + k),
                       "candidate": {**a["candidate"], "db_det_id": a["candidate"]["db_det_id"] + off}})
    write_atlas_alerts(path, alerts, codec="null")
    return n_alerts


def atlas_avro_baseline(path):
    with open(path, "rb") as fh:
        rows = [{**r["candidate"], "objectId": r["objectId"], "candid": r["candid"]} for r in fastavro.reader(fh)]
    return len(pd.DataFrame(rows))


def cases_atlas(tmp, args, which):
    out = []
    if "atlas-ddc" in which:
        path = os.path.join(tmp, "02a59897o0104o.ddc")
        n = build_ddc(path, args.ddc_rows)
        out.append(("atlas-ddc", f"one exposure, {n} rows ({os.path.getsize(path) / 2**20:.1f} MiB)", n,
                    kit_reader(path, n, format="atlas-ddc"), lambda p=path: ddc_baseline(p)))
    if "atlas-avro" in which:
        path = os.path.join(tmp, "atlas_alerts.avro")
        n = build_atlas_avro(path, args.atlas_alerts)
        kb = os.path.getsize(path) / n / 1024
        out.append(("atlas-avro", f"example_alerts, 2 stamps ({kb:.0f} KB/alert)", n,
                    kit_reader(path, n, format="atlas-avro"), lambda p=path: atlas_avro_baseline(p)))
        out.append(("atlas-avro", "  same, cutouts=False", n, kit_reader(path, n, format="atlas-avro", cutouts=False),
                    lambda p=path: atlas_avro_baseline(p)))
    return out


# ---------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=15, help="copies of the 204-alert sample night (Fink, Lasair)")
    ap.add_argument("--json-alerts", type=int, default=10000, help="alerts in the ALeRCE and ANTARES documents")
    ap.add_argument("--ddc-rows", type=int, default=50000, help="rows of the .ddc exposure")
    ap.add_argument("--atlas-alerts", type=int, default=5000, help="ATLAS Avro alerts (with stamps)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per case")
    ap.add_argument("--only", default=",".join(FORMATS), help="comma-separated formats to run")
    args = ap.parse_args(argv)
    which = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(which) - set(FORMATS)
    if unknown:
        ap.error(f"unknown formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_formats_") as tmp:
        t0 = time.perf_counter()
        cases = []
        if "fink-parquet" in which:
            cases += cases_fink(tmp, args)
        if "lasair-json" in which:
            cases += cases_lasair(tmp, args)
        if "alerce-json" in which or "antares-json" in which:
            cases += [c for c in cases_json(tmp, args) if c[0] in which]
        cases += cases_atlas(tmp, args, which)
        print(f"inputs built in {time.perf_counter() - t0:.1f} s")
        results = []
        for fmt, label, n, kit, base in cases:
            kit_t, n_kit = best_of(kit, args.repeat)
            base_t, n_base = best_of(base, args.repeat)
            if n_base != n:
                raise RuntimeError(f"{fmt} {label}: baseline counted {n_base} alerts, expected {n}")
            results.append((fmt, label, n_kit, n_kit / kit_t, n / base_t))
            print(f"  {fmt:13s} {label:70s} kit {kit_t:7.3f} s  baseline {base_t:7.3f} s", flush=True)
    print()
    print(f"{'format':13s} {'case':70s} {'alerts':>7s} {'kit/s':>9s} {'base/s':>9s} {'ratio':>6s}")
    for fmt, label, n, kit_rate, base_rate in results:
        print(f"{fmt:13s} {label:70s} {n:7d} {kit_rate:9.0f} {base_rate:9.0f} {kit_rate / base_rate:6.2f}")
    print("\nWhat each baseline leaves out (the kit does all of it):")
    for fmt in dict.fromkeys(r[0] for r in results):
        print(f"  {fmt}: {LEAVES_OUT[fmt]}")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
