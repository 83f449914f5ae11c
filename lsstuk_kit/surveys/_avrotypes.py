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


def arrow_to_pandas(table, nullable_bools=False, **kwargs):
    """Convert an Arrow table to pandas, keeping integer columns with nulls exact.

    Plain conversion turns an int64 column with nulls into float64, which
    corrupts 64-bit alert ids (above 2**53). Such columns become pandas'
    nullable integer dtypes instead; integer columns without nulls stay numpy.

    ``nullable_bools``: boolean columns with nulls become pandas' nullable
    ``boolean`` (1 byte a value and 1 of mask) instead of ``object`` columns of
    ``True``/``False``/``None`` (8 bytes a value, and ten times slower to build):
    the history's detection flags, which forced-photometry rows lack.

    ``table`` may also be a list holding one table, which is emptied: the
    conversion then owns the table and releases each column's Arrow memory as
    soon as that column is converted, so the Arrow and pandas copies of a big
    table never coexist whole (the reader's history).
    """
    import pandas as pd
    import pyarrow as pa

    consume = isinstance(table, list)
    if consume:
        table = table.pop()
    mapping = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
               pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
               pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}
    if nullable_bools:
        mapping[pa.bool_()] = pd.BooleanDtype()
    names = table.column_names
    mapped = [f.name for f in table.schema if f.type in mapping]
    with_nulls = [n for n in mapped if table.column(n).null_count]
    if not with_nulls and not consume:
        return table.to_pandas(**kwargs)
    # mapped columns without nulls stay numpy; every mapped column left has nulls
    plain = {name: table.column(name).to_pandas() for name in mapped if name not in with_nulls}
    table = table.drop_columns(list(plain))
    options = {**kwargs, "types_mapper": mapping.get}
    if consume:  # each column's Arrow memory goes as soon as it is converted
        options.update(self_destruct=True, split_blocks=True, use_threads=False)
    df = table.to_pandas(**options)
    del table
    if plain:
        df = pd.concat([df, pd.DataFrame(plain, index=df.index, copy=False)], axis=1)
    return df[names]
