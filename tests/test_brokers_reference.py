"""Conformance with the brokers' own reference material beside the project (../shared/brokers)."""

from __future__ import annotations

import ast
import json
import re

import pytest

import lsstuk_kit as lk
from lsstuk_kit.formats.lasair_json import to_lasair_messages
from lsstuk_kit.surveys import atlas


def _schema_fields(path):
    """Field names and types of one of Lasair's schema files (a Python dict literal, read without running it)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "schema":
            schema = ast.literal_eval(node.value)
            return {f["name"]: f["type"] for f in schema["fields"]}
    raise AssertionError(f"no schema dict in {path}")


def _doc_json_blocks(text):
    """The JSON examples of a Markdown page, with the docs' elisions ("....", trailing commas) tidied."""
    out = []
    for block in re.findall(r"```\n(\{.*?\})\n```", text, flags=re.S):
        lines = [ln for ln in block.splitlines() if "...." not in ln]
        body = re.sub(r",(\s*[}\]])", r"\1", "\n".join(lines))
        out.append(json.loads(body))
    return out


def test_lasair_doc_messages_read(brokers_ref):
    blocks = _doc_json_blocks((brokers_ref / "lasair" / "docs" / "alert-streams.md").read_text())
    assert len(blocks) == 3  # attributes only; lite light curve; full alert
    batch = lk.read_alerts(blocks, format="lasair-json", errors="skip")
    # the full example shows only a few fields (no time, no position): reported, never guessed
    assert len(batch) + len(batch.errors) == 3
    got = batch.sources
    assert 169760235333878021 in set(got["diaObjectId"])
    lite = got[got["lasair_kind"] == "lite"]
    assert len(lite) == 1 and lite["band"].iloc[0] == "z"
    assert abs(lite["psfFlux"].iloc[0] - 13677.0458984375) < 1e-6
    assert set(batch.history["kind"]) <= {"detection", "forced"}


@pytest.mark.parametrize("table, listname", [("diaSources", "diaSourcesList"),
                                             ("diaForcedSources", "diaForcedSourcesList")])
def test_full_messages_use_lasairs_column_names(brokers_ref, batch, table, listname):
    fields = _schema_fields(brokers_ref / "lasair" / "schema_11_0" / f"{table}.py")
    msg = to_lasair_messages(batch[:3], kind="full")[0]
    rows = msg["alert"][listname]
    assert rows, "the sample's objects have history"
    unknown = set(rows[0]) - set(fields)
    assert not unknown, f"{listname} keys Lasair's {table} table does not have: {sorted(unknown)}"
    assert "decl" in rows[0] and "dec" not in rows[0]


def test_full_message_diaobject_uses_lasairs_column_names(brokers_ref, batch):
    fields = _schema_fields(brokers_ref / "lasair" / "schema_11_0" / "diaObjects.py")
    obj = to_lasair_messages(batch[:3], kind="full")[0]["alert"]["diaObject"]
    assert not set(obj) - set(fields)


def _format_md_fields(text):
    rows = re.findall(r"^\| (\w+) \| ([\w|]+) \|", text, flags=re.M)
    return {name: typ for name, typ in rows if name not in ("field",)}


def test_atlas_schema_matches_format_md(brokers_ref):
    doc = _format_md_fields((brokers_ref / "atlas" / "FORMAT.md").read_text())
    assert len(doc) > 100
    cand = next(f for f in atlas.schema("atlas")["fields"] if f["name"] == "candidate")["type"]
    ours = {}
    for f in cand["fields"]:
        t = f["type"]
        ours[f["name"]] = "|".join(x for x in t if x != "null") + "|null" if isinstance(t, list) else t
    missing = set(doc) - set(ours)
    assert not missing, f"FORMAT.md fields the kit's atlas.alert schema lacks: {sorted(missing)}"
    differ = {k: (doc[k], ours[k]) for k in doc if doc[k] != ours[k]}
    assert not differ, f"types differ from FORMAT.md: {differ}"
    top = {f["name"] for f in atlas.schema("atlas")["fields"]}
    assert {"schemavsn", "publisher", "objectId", "candid", "candidate", "cutoutScience", "cutoutDifference"} <= top


def test_ddc_columns_match_format_md(brokers_ref):
    from lsstuk_kit.formats.atlas_ddc import read_ddc

    text = (brokers_ref / "atlas" / "FORMAT.md").read_text()
    cols = re.search(r"columns `([^`]+)`", text).group(1).split()
    header = "# MJD= 60000.1\n# FILT= o\n# MAGZPT= 21.5\n# MAG5SIG= 19.4\n# OBS= 02a60000o0001o\n"
    row = " ".join(["10.0", "-5.0"] + ["1"] * (len(cols) - 2))
    hdr, det = read_ddc(header + "#" + " ".join(cols) + "\n" + row + "\n")
    assert len(det) == 1 and det["ra"].iloc[0] == 10.0 and det["dec"].iloc[0] == -5.0
    assert hdr["MJD"] == 60000.1 and hdr["FILT"] == "o"
