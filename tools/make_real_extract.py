"""Write ``data/real/``: a small, credited extract of the real alerts in ``../shared/real-alerts``.

Notebooks 05 and 06 use this extract everywhere (a clone, Binder), so they show the same figures
wherever they run. The selection, per survey, over the source files of real alerts (all but those
in ``EXCLUDED``):

* every alert the survey's own score calls bogus (ZTF ``candidate.drb`` <= 0.5, Rubin
  ``diaSource.reliability`` <= 0.5), and
* a random subsample (``numpy.random.default_rng([SEED, k])``, one permutation per survey over all
  of its files pooled, its first ``N_REAL[survey]``) of the alerts it calls real, sized so that
  the whole extract stays under about 3 MB (for Rubin: all of them).

Each selected record is copied unchanged (every field, histories and cutouts included) into a
file of its source's own format: an Avro container holding each record's bytes as they are in the
source, under the source's header (schema text unchanged), with the ``deflate`` codec and a fixed
sync marker; or a Parquet file with the source's Arrow schema and metadata (zstd). Within a file
the records keep their source order. The script also writes ``data/real/README.md`` (credits,
selection, counts, sizes). Rerunning it gives byte-identical files (same pyarrow and zlib).

Usage::

    python tools/make_real_extract.py                       # ../shared/real-alerts -> data/real
    python tools/make_real_extract.py --src DIR --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zlib
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsstuk_kit._container import _read_long, _write_long, read_header

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent / "shared" / "real-alerts"
OUT = ROOT / "data" / "real"

SEED = 15  # issue 15
#: Alerts the survey calls real, drawn at random per survey (every bogus alert is kept as well).
N_REAL = {"lsst": 14, "ztf": 23}
#: A score at or below this is bogus (for the selection only; the notebooks choose their own thresholds).
BOGUS_AT = 0.5
SYNC = hashlib.sha256(b"lsstuk_kit data/real").digest()[:16]  # fixed Avro sync marker: reruns are byte-identical

FINK_CLIENT = ("[astrolabsoftware/fink-client](https://github.com/astrolabsoftware/fink-client), commit "
               "`24249d9b346f85a679824a39cd5c94889d9e00fc`")
FINK_FILTERS = ("[astrolabsoftware/fink-filters](https://github.com/astrolabsoftware/fink-filters), commit "
                "`0b8b44b3537cccfc563118e87489490cfc21a81a`")
FINK_SCIENCE = "PyPI sdist [fink-science](https://pypi.org/project/fink-science/7.4.0/) 7.4.0"

#: Source files: (path under ../shared/real-alerts, survey, format, where it comes from, what it is).
SOURCES = [
    ("fink/fink_rubin_test_data_10_0.parquet", "lsst", "parquet",
     f"{FINK_FILTERS}, `datatest/rubin_test_data_10_0.parquet/part-00000-4877aa8f-2356-4e19-8a31-4db2afe6d000-"
     "c000.snappy.parquet`",
     "Rubin (LSSTCam, `lsst.v10_0`, night 2025-12-31, deep-drilling fields) as Fink stores them (one row per "
     "alert, nested columns, Fink's `clf`, `xm`, `pred`, `lc_features`); 30x30 FITS cutouts"),
    ("ztf/part-3-305711.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/ztf/part-3-305711.avro`",
     "ZTF (schema 4.02) enriched by Fink; 63x63 gzip FITS cutouts"),
    ("ztf/avro_multi_alerts.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/avro_multi_alerts.avro`",
     "ZTF (schema 3.3) with Fink's fields; 63x63 gzip FITS cutouts"),
    ("ztf/avro_multi_alerts_other.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/avro_multi_alerts_other.avro`",
     "ZTF (schema 3.3); 63x63 gzip FITS cutouts"),
    ("ztf/ZTF19acihgng.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/ZTF19acihgng.avro`",
     "ZTF (schema 3.3), one alert per file; 63x63 gzip FITS cutouts"),
    ("ztf/ZTF19acxxwrs.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/ZTF19acxxwrs.avro`",
     "ZTF (schema 3.3), one alert per file; 63x63 gzip FITS cutouts"),
    ("ztf/ZTF19acyfkzd.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/ZTF19acyfkzd.avro`",
     "ZTF (schema 3.3), one alert per file; 63x63 gzip FITS cutouts"),
    ("ztf/ZTF19acyjzeo.avro", "ztf", "avro", f"{FINK_CLIENT}, `datatest/ZTF19acyjzeo.avro`",
     "ZTF (schema 3.3), one alert per file; 63x63 gzip FITS cutouts"),
    ("fink/fink_ztf_ctao_blazar_414.parquet", "ztf", "parquet",
     f"{FINK_SCIENCE}, `fink_science/data/alerts/CTAO_blazar_datatest_v20-12-24.parquet`",
     "ZTF as Fink stores them, with `cdsxmatch`, classifier scores, `roid`; 63x63 gzip FITS cutouts"),
    ("fink/fink_ztf_iband_history_121.parquet", "ztf", "parquet",
     f"{FINK_SCIENCE}, `fink_science/data/alerts/20240606_iband_history.parquet`",
     "ZTF, 10 objects with long histories, as Fink stores them; 63x63 gzip FITS cutouts"),
]


#: Real-alert files of the shared folder left out, and why (the README says so).
EXCLUDED = {
    "lsst/part-2-918301.avro": "7 real Rubin alerts (none bogus) in Rubin's Avro packet as Fink redistributes it "
                               "(fink-client `datatest/lsst/`); each carries 300-400 `prvDiaSources` and "
                               "`prvDiaForcedSources` (120-235 kB an alert), so one would cost as much as three to "
                               "five others",
    "lsst/elasticc_alert_mjd60674.0512_obj747_src1494043.avro.gz": "one simulated ELAsTiCC alert: not real",
}


# ------------------------------------------------------------------------------------------- reading
def read_avro(path):
    """(header metadata, records, raw record bytes) of an Avro container file.

    The raw bytes are each record's exact encoding in the source (found by decoding the records
    one after the other in each block), so the extract can copy them unchanged.
    """
    data = Path(path).read_bytes()
    meta, sync, header_size = read_header(data)  # the kit's own framing (checked varints)
    fo = io.BytesIO(data)
    fo.seek(header_size)
    codec = meta.get("avro.codec", b"null").decode()
    schema = fastavro.parse_schema(json.loads(meta["avro.schema"]), named_schemas={})
    records, raw = [], []
    while fo.tell() < len(fo.getbuffer()):
        count, pos = _read_long(data, fo.tell())
        size, pos = _read_long(data, pos)
        fo.seek(pos)
        block = fo.read(size)
        if fo.read(16) != sync:
            raise ValueError(f"{path}: bad sync marker after a block")
        if codec == "deflate":
            block = zlib.decompress(block, -15)
        elif codec != "null":
            raise ValueError(f"{path}: codec {codec!r} not handled here")
        bio = io.BytesIO(block)
        for _ in range(count):
            start = bio.tell()
            records.append(fastavro.schemaless_reader(bio, schema, None))
            raw.append(block[start:bio.tell()])
        if bio.tell() != len(block):
            raise ValueError(f"{path}: {len(block) - bio.tell()} bytes left over in a block")
    return meta, records, raw


def record_key(survey, rec):
    """The alert's id and the survey's own real/bogus score, from a decoded record."""
    if survey == "lsst":
        return int(rec["diaSourceId"]), rec["diaSource"]["reliability"]
    return int(rec["candid"]), rec["candidate"]["drb"]


def table_keys(survey, table):
    """(ids, scores) of the rows of a Fink Parquet table."""
    if survey == "lsst":
        ids = table.column("diaSourceId")
        score = pc.struct_field(table.column("diaSource"), "reliability")
    else:
        ids = table.column("candid")
        score = pc.struct_field(table.column("candidate"), "drb")
    return (np.asarray(ids.to_numpy(zero_copy_only=False), np.int64),
            np.asarray(score.to_numpy(zero_copy_only=False), float))


def load_sources(src):
    """Every source alert: a list of dicts (file, survey, format, row, id, score), and the files' contents."""
    alerts, contents = [], {}
    for rel, survey, fmt, *_ in SOURCES:
        path = Path(src) / rel
        if fmt == "avro":
            meta, recs, raw = read_avro(path)
            contents[rel] = (meta, raw)
            keys = [record_key(survey, r) for r in recs]
        else:
            table = pq.read_table(path)
            contents[rel] = table
            keys = list(zip(*table_keys(survey, table)))
        for row, (sid, score) in enumerate(keys):
            score = np.nan if score is None else float(score)
            alerts.append({"file": rel, "survey": survey, "format": fmt, "row": row, "id": int(sid), "score": score})
    return alerts, contents


# ------------------------------------------------------------------------------------------ selecting
def select(alerts):
    """Indices (into ``alerts``) of the extract: all bogus, plus N_REAL[survey] real drawn per survey."""
    chosen = []
    for k, survey in enumerate(sorted(N_REAL)):  # "lsst", "ztf": a fixed order of draws
        idx = [i for i, a in enumerate(alerts) if a["survey"] == survey]
        score = np.array([alerts[i]["score"] for i in idx])
        if np.isnan(score).any():
            raise ValueError(f"{survey}: {int(np.isnan(score).sum())} alerts have no real/bogus score")
        bogus = [i for i, s in zip(idx, score) if s <= BOGUS_AT]
        real = [i for i, s in zip(idx, score) if s > BOGUS_AT]
        rng = np.random.default_rng([SEED, k])
        drawn = rng.permutation(len(real))[:N_REAL[survey]]  # a prefix of one permutation: nested in N_REAL
        chosen += bogus + [real[j] for j in sorted(drawn)]
    return sorted(chosen)


def out_name(rel):
    """The extract's file for a source file: ``fink/x.parquet`` -> ``fink/x_subset.parquet``."""
    p = Path(rel)
    suffix = "".join(p.suffixes)
    return str(p.with_name(p.name[: -len(suffix)] + "_subset" + suffix))


# ------------------------------------------------------------------------------------------- writing
def write_avro(path, meta, raw_records):
    """An Avro container of these raw records: the source's metadata (schema text unchanged), codec deflate."""
    out = bytearray(b"Obj\x01")
    meta = {k: (b"deflate" if k == "avro.codec" else v) for k, v in meta.items()}
    meta.setdefault("avro.codec", b"deflate")
    out += _write_long(len(meta))
    for k, v in meta.items():
        out += _write_long(len(k.encode())) + k.encode() + _write_long(len(v)) + v
    out += _write_long(0) + SYNC
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # Avro's deflate is raw RFC 1951
    data = comp.compress(b"".join(raw_records)) + comp.flush()
    out += _write_long(len(raw_records)) + _write_long(len(data)) + data + SYNC
    Path(path).write_bytes(bytes(out))


def write_parquet(path, table):
    """A Parquet file of these rows: the table's Arrow schema and key-value metadata as they are, zstd."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=19)
    path.write_bytes(buf.getvalue())


def build(src=SRC, out=OUT):
    """Write the extract and its README into ``out``; return the per-file summary rows."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SystemExit(f"{src} not found: the extract is made from the shared folder of real alerts")
    alerts, contents = load_sources(src)
    chosen = select(alerts)
    rows = []
    for rel, survey, fmt, origin, what in SOURCES:
        picked = [alerts[i] for i in chosen if alerts[i]["file"] == rel]
        n_source = sum(a["file"] == rel for a in alerts)
        if not picked:
            rows.append({"file": None, "source": rel, "n_source": n_source, "origin": origin, "what": what,
                         "survey": survey, "alerts": 0, "bogus": 0, "real": 0, "bytes": 0})
            continue
        dest = out / out_name(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        positions = [a["row"] for a in picked]
        if fmt == "avro":
            meta, raw = contents[rel]
            write_avro(dest, meta, [raw[p] for p in positions])
        else:
            write_parquet(dest, contents[rel].take(pa.array(positions, pa.int64())))
        n_bogus = sum(a["score"] <= BOGUS_AT for a in picked)
        rows.append({"file": out_name(rel), "source": rel, "n_source": n_source, "origin": origin, "what": what,
                     "survey": survey, "alerts": len(picked), "bogus": n_bogus, "real": len(picked) - n_bogus,
                     "bytes": dest.stat().st_size, "ids": [a["id"] for a in picked],
                     "source_sha256": hashlib.sha256((src / rel).read_bytes()).hexdigest()})
    (out / "README.md").write_text(readme(rows, alerts))
    return rows


# -------------------------------------------------------------------------------------------- README
def readme(rows, alerts):
    """The text of ``data/real/README.md``: credits, the selection, per-file counts and sizes."""
    kept = [r for r in rows if r["file"]]
    total = sum(r["bytes"] for r in kept)
    pool = {s: {"bogus": sum(a["survey"] == s and a["score"] <= BOGUS_AT for a in alerts),
                "real": sum(a["survey"] == s and a["score"] > BOGUS_AT for a in alerts)} for s in N_REAL}
    got = {s: {k: sum(r[k] for r in kept if r["survey"] == s) for k in ("bogus", "real", "alerts")} for s in N_REAL}
    name = {"lsst": "Rubin", "ztf": "ZTF"}
    score = {"lsst": "`diaSource.reliability`", "ztf": "`candidate.drb` (braai)"}
    lines = [
        "# Real alerts for notebooks 05 and 06 (a small extract)",
        "",
        "<!-- Written by tools/make_real_extract.py: edit the script, not this file. -->",
        "",
        "Real Rubin and ZTF alerts as the [Fink](https://fink-broker.org) broker redistributes them, so that",
        "`notebooks/05_cutouts_and_lightcurves.ipynb` and `notebooks/06_real_bogus.ipynb` show the same real stamps",
        "and the same figures wherever they run (a clone, Binder). Find the folder with",
        "`lsstuk_kit.real_alerts_path()` and read it with `lsstuk_kit.read_alerts(lsstuk_kit.real_alerts_path())`.",
        "",
        "**Licence:** Apache-2.0, as the repositories and the package they come from (Fink, "
        "[astrolabsoftware](https://github.com/astrolabsoftware)). Each file keeps that licence.",
        "",
        "**What was selected.** From the real-alert files of the project's shared folder (`../shared/real-alerts`),"
        " per survey:",
        f"every alert that the survey's own real/bogus score calls bogus (score <= {BOGUS_AT}: ZTF {score['ztf']},"
        f" Rubin {score['lsst']}),",
        f"and a random subsample of the alerts it calls real (`numpy.random.default_rng([{SEED}, k])`, one permutation"
        " per survey over all its files pooled, its first N). For Rubin that is all of them: the file used is whole.",
        "",
        "| survey | bogus (score <= 0.5) kept | real kept | in the source files (bogus / real) |",
        "|---|---|---|---|",
    ]
    for s in sorted(N_REAL):
        lines.append(f"| {name[s]} | {got[s]['bogus']} (all) | {got[s]['real']} | {pool[s]['bogus']} / "
                     f"{pool[s]['real']} |")
    lines += [
        "",
        "**Unchanged records.** Every selected alert is copied whole: all fields, the histories (`prvDiaSources`,",
        "`prvDiaForcedSources`, `prv_candidates`) and the cutouts, values unchanged. Within a file the records keep",
        "their source order. What changes is the container only: the Avro files hold each record's bytes exactly",
        "as in the source, under the source's header (schema text unchanged), with the `deflate` codec (the sources",
        "use `null`) and a fixed sync marker; the Parquet files are written with the",
        "source's Arrow schema and key-value metadata (Spark's schema, still accurate: no column is dropped) and",
        "zstd compression (the sources use snappy). `tests/test_real_extract.py` checks the records against the",
        "sources where the shared folder is present, and these counts everywhere.",
        "",
        "**Not included:** " + "; ".join(f"`{k}`, {v}" for k, v in EXCLUDED.items()) + ". Nor the source files none",
        "of whose alerts was drawn (listed below the table).",
        "",
        "| file | alerts | bogus | real | size (bytes) | what | source alerts | from |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in kept:
        lines.append(f"| `{r['file']}` | {r['alerts']} | {r['bogus']} | {r['real']} | {r['bytes']:,} | {r['what']} | "
                     f"{r['n_source']} | {r['origin']} |")
    lines += ["", f"**Total:** {sum(r['alerts'] for r in kept)} alerts ({got['lsst']['alerts']} Rubin, "
              f"{got['ztf']['alerts']} ZTF), {total:,} bytes.", ""]
    skipped = [r for r in rows if not r["file"]]
    if skipped:
        lines.append("Source files with no alert drawn: "
                     + ", ".join(f"`{r['source']}` ({r['n_source']} alert{'s' * (r['n_source'] != 1)})"
                                 for r in skipped) + ".")
        lines.append("")
    lines += [
        "The shared folder's README gives no fink-client commit; at the commit given above, each fink-client file",
        "used here is byte-identical to the shared copy (same git blob). SHA-256 of the source files (as in",
        "`../shared/real-alerts`):",
        "",
    ]
    lines += [f"- `{r['source']}`: `{r['source_sha256']}`" for r in kept]
    lines += ["", "The alerts kept (Rubin `diaSourceId`, ZTF `candid`), in file order:", ""]
    lines += [f"- `{r['file']}`: " + ", ".join(map(str, r["ids"])) for r in kept]
    lines.append("")
    lines += [
        "## Regenerating",
        "",
        "With the shared folder beside the project (`../shared/real-alerts`):",
        "",
        "```",
        "python tools/make_real_extract.py",
        "```",
        "",
        "The output is byte-identical on rerun with the same fastavro, pyarrow and zlib (this one: fastavro "
        f"{fastavro.__version__}, pyarrow {pa.__version__}).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Command line: build the extract and print what it holds."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, default=SRC, help="the shared folder of real alerts (default: %(default)s)")
    p.add_argument("--out", type=Path, default=OUT, help="where to write the extract (default: %(default)s)")
    a = p.parse_args(argv)
    rows = build(a.src, a.out)
    for r in rows:
        if r["file"]:
            print(f"{r['file']:55s} {r['alerts']:3d} alerts ({r['bogus']} bogus, {r['real']} real) {r['bytes']:>10,} B")
    print(f"total {sum(r['bytes'] for r in rows):,} bytes")


if __name__ == "__main__":
    main()
