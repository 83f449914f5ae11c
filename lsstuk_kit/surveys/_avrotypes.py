"""Small helpers to inspect Avro writer schemas (field kinds, named types)."""

from __future__ import annotations

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "string"}


def collect_names(schema, names=None, namespace=""):
    """Map every named type (record, enum, fixed) in a schema to its definition."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for t in schema:
            collect_names(t, names, namespace)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed", "error"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name else (f"{ns}.{name}" if ns else name)
            names[full] = schema
            names.setdefault(name.rsplit(".", 1)[-1], schema)
            if t in ("record", "error"):
                sub_ns = full.rsplit(".", 1)[0] if "." in full else ns
                for f in schema.get("fields", []):
                    collect_names(f["type"], names, sub_ns)
        elif t == "array":
            collect_names(schema["items"], names, namespace)
        elif t == "map":
            collect_names(schema["values"], names, namespace)
        elif isinstance(t, (dict, list)):
            collect_names(t, names, namespace)
    return names


def resolve(t, names):
    """Return ``(kind, definition)`` of a field type, unwrapping ``[null, X]`` unions.

    kind is one of ``scalar``, ``bytes``, ``record``, ``array``, ``map``, ``union``.
    """
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        if len(non_null) != 1:
            return "union", t
        t = non_null[0]
    if isinstance(t, str):
        if t in PRIMITIVES:
            return "scalar", t
        if t == "bytes":
            return "bytes", t
        if t in names:
            return resolve(names[t], names)
        short = t.rsplit(".", 1)[-1]
        if short in names:
            return resolve(names[short], names)
        return "scalar", t
    if isinstance(t, dict):
        tt = t.get("type")
        if tt in ("record", "error"):
            return "record", t
        if tt == "array":
            return "array", t
        if tt == "map":
            return "map", t
        if tt == "enum":
            return "scalar", t
        if tt == "fixed":
            return "bytes", t
        if isinstance(tt, (str, list, dict)):
            return resolve(tt, names)
    return "scalar", t


def record_fields(t, names):
    """Fields of a record type (resolving names), or ``[]``."""
    kind, d = resolve(t, names)
    if kind == "record":
        return d.get("fields", [])
    if kind == "array":
        return record_fields(d["items"], names)
    return []
