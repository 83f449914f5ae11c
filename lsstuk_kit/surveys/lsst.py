"""Rubin (LSST) alerts of every schema version, as shipped by ``lsst-alert-packet``.

Older schemas (3.x, 4.x, and the ELAsTiCC challenge alerts) used other names for
a few fields; they are renamed to the current ones (:data:`LEGACY_NAMES`) so that
every version lands in the same columns.

``reliability`` is ``diaSource.reliability`` as the alert carries it, and
``reliabilitySource`` says so row by row (``"reliability"``, or ``None`` where the
alert holds no score and ``reliability`` is NaN). Both are read under any column
projection (:data:`CORE`), as ``snr`` is: a projection never turns a score the
alert carries into NaN, nor Rubin's ``snr`` into a recomputed one.

Fields that changed meaning or name across schema versions 3.0 to 11.1 (all
shipped by ``lsst-alert-packet``; the per-version test reads one alert of each):

===============================  ==========  ==================================================
field                            versions    how it is read
===============================  ==========  ==================================================
``midPointTai`` ->               3.0-4.0 ->  renamed to ``midpointMjdTai`` (MJD TAI in both)
``midpointMjdTai``               5.0 on
``filterName`` -> ``band``       3.0-4.0 ->  renamed to ``band``, lower-cased; nullable from 6.0
                                 5.0 on
``decl``, ``psFlux``,            3.0-4.0     renamed to ``dec``, ``psfFlux``, ``psfFluxErr``
``psFluxErr`` (diaSource,                    (:data:`LEGACY_NAMES`); units undocumented before
diaForcedSource)                             8.0, nJy from 8.0 on
``spuriousness``                 3.0-4.0     kept as its own column, never as ``reliability``:
                                             undocumented, and a spuriousness is not a
                                             reliability (no conversion is documented).
                                             ``reliability`` is NaN, ``reliabilitySource`` None
``reliability``                  5.0 on      as given; null -> NaN / None. 5.0-7.4 document it
                                             as "a measure of reliability", 8.0 on as a
                                             probability (0-1)
``reliabilityVersion``           11.1 on     kept; not used to discard scores (no filler
                                             convention is documented, and null in the
                                             simulated and real alerts seen)
``snr``                          all         nullable from 6.0; computed as
                                             ``psfFlux / psfFluxErr`` only when the schema
                                             has no ``snr`` at all
``prvDiaNondetectionLimits``     3.0-7.4     ``upper_limit`` history rows (``diaNoise``)
``timeWithdrawnMjdTai``          9.0 on      kept as given: set when Rubin withdrew the record
``diaObjectId``, ``ssObjectId``  all         kept as given. The schema documents NULL for
                                             "not associated"; the real 10.0 alerts carry 0
                                             (solar-system sources: ``diaObjectId`` 0;
                                             others: ``ssObjectId`` 0). Not changed, as ids
                                             key the history and object tables
``psfNdata``, ``bboxSize``, ...  11.0 on     became non-null ints; kept as given
===============================  ==========  ==================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._projection import Output, Projection
from ._avrotypes import arrow_to_pandas, collect_names, record_fields, resolve
from .common import flux_to_mag, pick_score

#: Field names of schemas before 5.0 (and ELAsTiCC) -> current names.
LEGACY_NAMES = {
    "midPointTai": "midpointMjdTai",
    "filterName": "band",
    "decl": "dec",
    "declErr": "decErr",
    "ra_decl_Cov": "ra_dec_Cov",
    "psFlux": "psfFlux",
    "psFluxErr": "psfFluxErr",
    "radecTai": "radecMjdTai",
    "pmDecl": "pmDec",
    "pmDeclErr": "pmDecErr",
}

#: Columns every read keeps, whatever ``columns=`` asks for (the mapped columns a
#: projection must not turn into NaN or into recomputed values).
CORE = ("diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr",
        "snr", "reliability", "reliabilitySource")

#: Fields a record cannot be read without.
REQUIRED = ("diaSourceId", "ra", "dec", "midpointMjdTai")

#: Object-summary fields worth keeping even under a column projection.
OBJECT_CORE = ("diaObjectId", "ra", "dec", "nDiaSources", "firstDiaSourceMjdTai", "lastDiaSourceMjdTai")

CUTOUTS = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}

_HISTORY = {
    "prvDiaSources": "detection",
    "prvDiaForcedSources": "forced",
    "prvDiaNondetectionLimits": "upper_limit",
}
_STRUCTURAL = {"diaSource", "diaObject", "ssObject", "ssSource", "MPCORB", "mpc_orbits", *_HISTORY, *CUTOUTS.values()}


def canonical(name: str) -> str:
    """Current name of a (possibly legacy) Rubin field.

    Examples
    --------
    >>> from lsstuk_kit.surveys.lsst import canonical
    >>> canonical("decl"), canonical("midPointTai"), canonical("psfFlux")
    ('dec', 'midpointMjdTai', 'psfFlux')
    """
    return LEGACY_NAMES.get(name, name)


def projection(schema: dict, columns=None, cutouts=True) -> Projection:
    """What a read takes from one Rubin writer schema (see :mod:`lsstuk_kit._projection`).

    Output columns are prefixed: ``a:`` alert-level scalars (including flattened
    broker additions), ``s:`` diaSource, ``o:`` diaObject, ``h:<list>`` history
    lists (projected element-wise), ``c:<name>`` cutouts.

    Examples
    --------
    >>> from lsstuk_kit.schema import load_rubin_schema
    >>> from lsstuk_kit.surveys.lsst import projection
    >>> schema = load_rubin_schema(11, 1)
    >>> full = projection(schema)
    >>> [name for name in full.names if name[:2] not in ("s:", "o:")]
    ['a:diaSourceId', 'a:observation_reason', 'a:target_name', 'h:prvDiaSources', 'h:prvDiaForcedSources',
    'c:cutoutDifference', 'c:cutoutScience', 'c:cutoutTemplate']

    Asking for ``ra`` only still reads the :data:`CORE` columns (and no cutouts with ``cutouts=False``):

    >>> small = projection(schema, columns=["ra"], cutouts=False)
    >>> len(small) < len(full), [name for name in small.names if name.startswith("s:")]
    (True, ['s:diaSourceId', 's:diaObjectId', 's:midpointMjdTai', 's:ra', 's:dec', 's:snr', 's:psfFlux',
    's:psfFluxErr', 's:reliability', 's:band'])
    """
    names = collect_names(schema)
    wanted = None if columns is None else set(columns) | set(CORE)
    out = []
    for f in schema["fields"]:
        name = f["name"]
        kind, _ = resolve(f["type"], names)
        if name == "diaSource":
            for sub in record_fields(f["type"], names):
                if wanted is None or canonical(sub["name"]) in wanted:
                    out.append(Output("s:" + sub["name"], (name, sub["name"])))
        elif name == "diaObject":
            keep = None if wanted is None else wanted | set(OBJECT_CORE)
            for sub in record_fields(f["type"], names):
                if resolve(sub["type"], names)[0] != "scalar":
                    continue
                if keep is None or canonical(sub["name"]) in keep:
                    out.append(Output("o:" + sub["name"], (name, sub["name"])))
        elif name in _HISTORY:
            subs = [s["name"] for s in record_fields(f["type"], names)
                    if resolve(s["type"], names)[0] == "scalar"]
            if wanted is not None:
                subs = [s for s in subs if canonical(s) in wanted or s == "diaForcedSourceId"]
                if not subs:
                    continue
            out.append(Output("h:" + name, (name,), items=tuple(subs), list=True))
        elif name in CUTOUTS.values():
            if cutouts and kind == "bytes":  # (a schema giving a cutout another type has no cutout)
                out.append(Output("c:" + name, (name,)))
        elif name in _STRUCTURAL:
            continue
        elif kind == "scalar":
            if wanted is None or name in wanted or name == "lsst_schema_version":
                out.append(Output("a:" + name, (name,)))
        elif kind == "record":
            for sub in record_fields(f["type"], names):
                flat = f"{name}_{sub['name']}"
                if resolve(sub["type"], names)[0] == "scalar" and (wanted is None or flat in wanted):
                    out.append(Output("a:" + flat, (name, sub["name"])))
    return Projection(tuple(out))


def _strip(table: pa.Table, prefix: str) -> dict:
    n = len(prefix)
    return {c[n:]: table.column(c) for c in table.column_names if c.startswith(prefix)}


def _frame(cols: dict) -> pd.DataFrame:
    if not cols:
        return pd.DataFrame()
    return arrow_to_pandas(pa.table({canonical(k): v for k, v in cols.items()}))


def _set(table: pa.Table, name: str, values) -> pa.Table:
    """Replace or append a column of an Arrow table."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _history_table(cols: dict, kind: str, parent) -> pa.Table:
    n = len(parent)
    t = pa.table(cols) if cols else pa.table({"_": pa.nulls(n)}).drop(["_"])
    kinds = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([kind]))
    t = t.append_column("kind", kinds)
    return t.append_column("_alert", pa.array(np.asarray(parent), pa.int64()))


def _add_mags(df: pd.DataFrame) -> None:
    if "psfFlux" in df:
        err = df["psfFluxErr"] if "psfFluxErr" in df else None
        if err is None:
            df["mag"] = flux_to_mag(df["psfFlux"].to_numpy())
        else:
            mag, mag_err = flux_to_mag(df["psfFlux"].to_numpy(), err.to_numpy())
            df["mag"] = mag
            df["magErr"] = mag_err


def to_frames(table: pa.Table, version: str | None):
    """Turn one decoded Rubin part into (sources, history, objects, cutouts).

    ``history`` and ``objects`` carry ``_alert``, the row of the alert they came from.

    Examples
    --------
    ``table`` is what the decoder makes with :func:`projection`'s columns; here two
    diaSources of a schema 4.0 alert (legacy names), built by hand:

    >>> import pyarrow as pa
    >>> from lsstuk_kit.surveys.lsst import to_frames
    >>> table = pa.table({"s:diaSourceId": [1, 2], "s:diaObjectId": [10, 10], "s:ra": [150.1, 150.1],
    ...                   "s:decl": [2.2, 2.2], "s:midPointTai": [60000.1, 60001.2], "s:filterName": ["G", "R"],
    ...                   "s:psFlux": [1000.0, -500.0], "s:psFluxErr": [50.0, 50.0]})
    >>> sources, history, objects, cutouts = to_frames(table, "4.0")
    >>> sources[["dec", "midpointMjdTai", "band", "snr", "mag", "schemaVersion"]].round(3).values.tolist()
    [[2.2, 60000.1, 'g', 20.0, 23.9, '4.0'], [2.2, 60001.2, 'r', -10.0, 24.653, '4.0']]
    >>> history.num_rows, history.column("kind").to_pylist(), history.column("_alert").to_pylist()
    (2, ['detection', 'detection'], [0, 1])
    >>> len(objects), cutouts
    (0, {})
    """
    n = table.num_rows
    sources = _frame(_strip(table, "s:"))
    extra = _strip(table, "a:")
    add = {k: v for k, v in extra.items() if k not in sources}
    if add:
        sources = pd.concat([sources, arrow_to_pandas(pa.table(add)).set_axis(sources.index)], axis=1)
    if "band" in sources:
        sources["band"] = sources["band"].str.lower()
    sources["survey"] = "lsst"
    if "lsst_schema_version" in sources and sources["lsst_schema_version"].notna().all():
        sources["schemaVersion"] = sources["lsst_schema_version"]
    else:
        sources["schemaVersion"] = version
    if "snr" not in sources and "psfFluxErr" in sources:
        sources["snr"] = sources["psfFlux"] / sources["psfFluxErr"]
    if "reliability" not in sources:
        sources["reliability"] = np.nan
    score, source = pick_score(("reliability", sources["reliability"]))
    if not np.array_equal(np.isnan(score), sources["reliability"].isna().to_numpy()):
        sources["reliability"] = score  # infinities are no score either
    sources["reliabilitySource"] = source
    _add_mags(sources)

    objects = _frame(_strip(table, "o:"))
    if len(objects.columns):
        objects["_alert"] = np.arange(n)
        objects = objects[objects["diaObjectId"].notna()]
        if "diaObjectId" in sources:
            known = sources["diaObjectId"].notna().to_numpy()
            # alerts whose diaSource lacks the object id take it from diaObject
            if not known.all():
                ids = pd.Series(np.nan, index=range(n), dtype=object)
                ids[objects["_alert"].to_numpy()] = objects["diaObjectId"].to_numpy()
                sources["diaObjectId"] = sources["diaObjectId"].where(known, ids)
        aligned = objects.set_index("_alert").reindex(range(n))
        add = [c for c in aligned.columns if c not in sources]
        if add:
            sources = pd.concat([sources, aligned[add].set_axis(sources.index)], axis=1)

    parts = []
    for lst, kind in _HISTORY.items():
        col = "h:" + lst
        if col not in table.column_names:
            continue
        arr = table.column(col)
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()  # (one chunk: no copy)
        if len(arr) == 0 or arr.null_count == len(arr):
            continue
        flat = pc.list_flatten(arr)
        if len(flat) == 0:
            continue
        cols = dict(zip([canonical(f.name) for f in flat.type], flat.flatten()))
        if kind == "upper_limit" and "diaNoise" in cols:
            noise = cols["diaNoise"].to_numpy(zero_copy_only=False).astype(float)
            cols["psfFluxErr"] = pa.array(noise)
            cols["psfFlux"] = pa.nulls(len(noise), pa.float64())
            cols["limitingMag"] = pa.array(flux_to_mag(5 * noise))
        parts.append(_history_table(cols, kind, pc.list_parent_indices(arr)))
    src_cols = {canonical(k): v for k, v in _strip(table, "s:").items()}
    parts.append(_history_table(src_cols, "detection", pa.array(np.arange(n, dtype=np.int64))))
    history = pa.concat_tables(parts, promote_options="permissive")
    if "diaObjectId" in sources:
        ids = pa.array(sources["diaObjectId"].to_numpy())
        history = _set(history, "diaObjectId", ids.take(history.column("_alert")))
    if "band" in history.column_names:
        history = _set(history, "band", pc.utf8_lower(history.column("band")))
    rel = (history.column("reliability").to_numpy() if "reliability" in history.column_names
           else np.full(history.num_rows, np.nan))
    scored = np.isfinite(np.asarray(rel, dtype=float))  # as pick_score: a finite score is a score
    history = _set(history, "reliabilitySource",
                   pc.if_else(pa.array(scored), pa.scalar("reliability"), pa.scalar(None, pa.string())))
    if "psfFlux" in history.column_names:
        flux = history.column("psfFlux").to_numpy().astype(float)
        if "psfFluxErr" in history.column_names:
            mag, err = flux_to_mag(flux, history.column("psfFluxErr").to_numpy().astype(float))
            history = _set(_set(history, "mag", pa.array(mag)), "magErr", pa.array(err))
        else:
            history = _set(history, "mag", pa.array(flux_to_mag(flux)))

    cut = {k: table.column("c:" + v) for k, v in CUTOUTS.items() if "c:" + v in table.column_names}
    return sources, history, objects, cut
