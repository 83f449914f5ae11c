"""ZTF alerts (schema 3.x and 4.x) mapped onto the Rubin column names.

=====================  =================================================
Rubin column           from ZTF
=====================  =================================================
``diaSourceId``        ``candid``
``diaObjectId``        ``objectId`` (a string such as ``ZTF19acihgng``)
``midpointMjdTai``     ``jd - 2400000.5`` (ZTF's exposure-start JD, as brokers
                       report it; the 15 s to mid-exposure and TAI-UTC are not added)
``band``               ``fid`` 1, 2, 3 -> ``g``, ``r``, ``i``
``psfFlux``            ``10**((31.4 - magpsf) / 2.5)`` nJy, negative when
                       ``isdiffpos`` is ``f`` or ``0``
``psfFluxErr``         ``|psfFlux| * sigmapsf * ln(10) / 2.5``
``mag``, ``magErr``    ``magpsf``, ``sigmapsf``
``snr``                ``|psfFlux| / psfFluxErr``
``reliability``        ``drb`` where it was computed (schema 3.3 on, with a
                       non-empty ``drbversion``), else ``rb``, else NaN
``reliabilitySource``  ``"drb"``, ``"rb"`` or ``None``: which score
                       ``reliability`` holds, row by row
=====================  =================================================

History: ``prv_candidates`` with a ``candid`` are detections; those without are
upper limits (``limitingMag`` = ``diffmaglim``, ``psfFluxErr`` = the limit's flux
/ 5). ``fp_hists`` (schema 4.x forced photometry) become ``forced`` rows, with
``forcediffimflux`` scaled from its zero point ``magzpsci`` to nJy. Previous
detections carry no ``drb`` in any schema: their ``reliability`` is ``rb``.

Values that are not measurements
--------------------------------
Some fields only mean something from a schema version on, and some carry a
documented "none" value. An archive that re-serves old alerts in a newer layout
fills the fields the old alert never had (real ZTF alerts of schemas 3.0-3.2
come back with ``drb = 0.0`` and an empty ``drbversion``), so these are decided
per row, from the alert's own ``schemavsn``, and read as missing (NaN/None) in
``sources`` and ``history``. The raw ZTF columns keep their names. Schema
history from ZwickyTransientFacility/ztf-avro-alert (2.0 to 4.02).

=========================================  ===========  =============================================
field                                      meaningful   read as missing (NaN/None)
=========================================  ===========  =============================================
``drb``                                    3.3 on       rows of older schemas; rows whose
                                                        ``drbversion`` is empty or null (the model
                                                        did not run). ``reliability`` then falls
                                                        back to ``rb`` (``reliabilitySource``
                                                        says which)
``drbversion``                             3.3 on       rows of older schemas
``exptime``                                3.1 on       rows of older schemas
``dsnrms``, ``ssnrms``, ``dsdiff``,        3.0 on       rows of older schemas
``magzpsci``, ``magzpsciunc``,
``magzpscirms``, ``nmatches``,
``clrcoeff``, ``clrcounc``, ``zpclrcov``,
``zpmed``, ``clrmed``, ``clrrms``,
``neargaia``, ``neargaiabright``,
``maggaia``, ``maggaiabright``
prv_candidates' ``magzpsci``,              3.2 on       rows of older schemas
``magzpsciunc``, ``magzpscirms``,
``clrcoeff``, ``clrcounc``
``ssdistnr``, ``ssmagnr``                  all          ``-999`` ("set to -999.0 if none", ZTF docs)
``ssnamenr``                               all          the string ``'null'`` ("'null' if none")
PS1 matches ``objectidps1..3``,            all          ``-999`` (documented "if exists within 30
``sgmag1..3``, ``srmag1..3``,                           arcsec"; the real alerts carry -999 when
``simag1..3``, ``szmag1..3``,                           none exists)
``sgscore1..3``, ``distpsnr1..3``
Gaia matches ``neargaia``,                 3.0 on       ``-999`` ("if exists within 90 arcsec")
``neargaiabright``, ``maggaia``,
``maggaiabright``
reference-image match ``distnr``,          all          ``-999`` (same "within 30 arcsec" wording;
``magnr``, ``sigmagnr``, ``chinr``,                     not seen in the real files)
``sharpnr``
``fp_hists.forcediffimflux``,              4.01 on      ``<= -99999`` (the forced-photometry
``forcediffimfluxunc``                                  "not computed" value): ``psfFlux`` NaN
``rb``                                     all          only null (``rbversion`` is set in every
                                                        real alert seen: ``t17_f5_c3``)
``nmtchps``, ``ndethist``, ``ncovhist``    all (2.0)    nothing: counts, 0 is a real value
``tooflag``                                3.0 on       nothing (its schema default changed from
                                                        0 to null in 4.02; defaults only apply
                                                        when resolving schemas, not to the data)
=========================================  ===========  =============================================

Alerts whose ``schemavsn`` cannot be read are not version-gated; the
``drbversion`` and sentinel rules still apply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._projection import Output, Projection
from ._avrotypes import arrow_to_pandas, collect_names, record_fields, resolve
from .common import AB_ZEROPOINT_NJY, mag_to_flux, pick_score

FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
CUTOUTS = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}
REQUIRED = ("diaSourceId", "ra", "dec", "midpointMjdTai")
JD_TO_MJD = 2400000.5
_LN10_OVER_2P5 = np.log(10.0) / 2.5
_HISTORY = ("prv_candidates", "fp_hists")

_V30 = ("dsnrms", "ssnrms", "dsdiff", "magzpsci", "magzpsciunc", "magzpscirms", "nmatches", "clrcoeff",
        "clrcounc", "zpclrcov", "zpmed", "clrmed", "clrrms", "neargaia", "neargaiabright", "maggaia",
        "maggaiabright")
#: First ZTF schema version in which each ``candidate`` field exists (ztf-avro-alert history).
CANDIDATE_SINCE = {**dict.fromkeys(_V30, (3, 0)), "exptime": (3, 1), "drb": (3, 3), "drbversion": (3, 3)}
#: First ZTF schema version in which each ``prv_candidate`` field exists.
PRV_CANDIDATE_SINCE = dict.fromkeys(("magzpsci", "magzpsciunc", "magzpscirms", "clrcoeff", "clrcounc"), (3, 2))
#: Fields whose value -999 means "none" (no match within the search radius).
NONE_IF_MINUS_999 = (
    "ssdistnr", "ssmagnr", "distnr", "magnr", "sigmagnr", "chinr", "sharpnr",
    *(f"{p}{k}" for k in (1, 2, 3)
      for p in ("objectidps", "sgmag", "srmag", "simag", "szmag", "sgscore", "distpsnr")),
    "neargaia", "neargaiabright", "maggaia", "maggaiabright",
)
#: String fields with a documented "none" value.
NONE_IF_STRING = {"ssnamenr": "null"}
#: Scores that count only where their model version is given.
SCORE_VERSION = {"drb": "drbversion"}


def projection(schema: dict, columns=None, cutouts=True) -> Projection:
    """What a read takes from a ZTF writer schema (ZTF alerts are light: no column projection).

    Examples
    --------
    A cut-down ZTF schema (the real one has ~100 candidate fields):

    >>> from lsstuk_kit.surveys.ztf import projection
    >>> cutout = {"type": "record", "name": "cutout", "fields": [
    ...     {"name": "fileName", "type": "string"}, {"name": "stampData", "type": "bytes"}]}
    >>> schema = {"type": "record", "name": "alert", "fields": [
    ...     {"name": "objectId", "type": "string"},
    ...     {"name": "candidate", "type": {"type": "record", "name": "candidate", "fields": [
    ...         {"name": "candid", "type": "long"}, {"name": "jd", "type": "double"}]}},
    ...     {"name": "prv_candidates", "type": ["null", {"type": "array", "items": "candidate"}]},
    ...     {"name": "cutoutScience", "type": ["null", cutout]}]}
    >>> projection(schema).names
    ['a:objectId', 's:candid', 's:jd', 'h:prv_candidates', 'c:cutoutScience']
    >>> projection(schema, columns=["jd"], cutouts=False).names  # columns= is ignored
    ['a:objectId', 's:candid', 's:jd', 'h:prv_candidates']
    """
    return candidate_projection(schema, _HISTORY, CUTOUTS.values(), cutouts)


def candidate_projection(schema: dict, history, cutout_fields, cutouts=True) -> Projection:
    """What a read takes from an alert of ZTF's layout (a ``candidate`` record; ATLAS shares it).

    Columns: ``a:`` top-level scalars and scalar fields of other records (``<record>_<field>``),
    ``s:`` candidate fields, ``h:<list>`` for the ``history`` lists (every scalar item field),
    ``c:<field>`` the ``stampData`` of the ``cutout_fields``.

    Examples
    --------
    ATLAS's first QUB layout shares ZTF's (``candidate``, ``prv_candidates``, cutouts):

    >>> from lsstuk_kit.surveys.atlas import schema
    >>> from lsstuk_kit.surveys.ztf import candidate_projection
    >>> cutouts = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
    >>> p = candidate_projection(schema("qub2018"), ("prv_candidates",), cutouts)
    >>> [name for name in p.names if not name.startswith("s:")]
    ['a:alertId', 'a:atlas_object_id', 'h:prv_candidates', 'c:cutoutScience', 'c:cutoutTemplate',
    'c:cutoutDifference']
    >>> p = candidate_projection(schema("qub2018"), ("prv_candidates",), cutouts, cutouts=False)
    >>> [name for name in p.names if not name.startswith("s:")]
    ['a:alertId', 'a:atlas_object_id', 'h:prv_candidates']
    """
    names = collect_names(schema)
    cutout_fields = set(cutout_fields)
    out = []
    for f in schema["fields"]:
        name = f["name"]
        kind, _ = resolve(f["type"], names)
        if name == "candidate":
            for sub in record_fields(f["type"], names):
                out.append(Output("s:" + sub["name"], (name, sub["name"])))
        elif name in history:
            out.append(Output("h:" + name, (name,), items=None, list=True))
        elif name in cutout_fields:
            stamp = [sub for sub in record_fields(f["type"], names) if sub["name"] == "stampData"]
            if cutouts and stamp and resolve(stamp[0]["type"], names)[0] == "bytes":
                out.append(Output("c:" + name, (name, "stampData")))
        elif kind == "scalar":
            out.append(Output("a:" + name, (name,)))
        elif kind == "record":
            for sub in record_fields(f["type"], names):
                if resolve(sub["type"], names)[0] == "scalar":
                    out.append(Output("a:" + f"{name}_{sub['name']}", (name, sub["name"])))
    return Projection(tuple(out))


def _strip(table, prefix):
    n = len(prefix)
    return {c[n:]: table.column(c) for c in table.column_names if c.startswith(prefix)}


def _signed_flux(magpsf, sigmapsf, isdiffpos):
    flux = mag_to_flux(np.asarray(magpsf, float))
    neg = np.isin(np.asarray(isdiffpos, dtype=object), ["f", "0"])
    err = flux * np.asarray(sigmapsf, float) * _LN10_OVER_2P5
    return np.where(neg, -flux, flux), err


def schema_code(versions) -> np.ndarray:
    """ZTF ``schemavsn`` strings as comparable numbers (``"3.3"`` -> 3003, ``"4.02"`` -> 4002).

    Unreadable versions give NaN (which no version comparison holds for).

    Examples
    --------
    >>> from lsstuk_kit.surveys.ztf import schema_code
    >>> schema_code(["3.3", "4.02", "3.10", None, "x"]).tolist()
    [3003.0, 4002.0, 3010.0, nan, nan]
    """
    parts = pd.Series(versions, dtype=object).astype(str).str.strip().str.extract(r"^(\d+)\.(\d+)$")
    return (pd.to_numeric(parts[0], errors="coerce") * 1000 + pd.to_numeric(parts[1], errors="coerce")).to_numpy(float)


def _blank(s: pd.Series, where) -> pd.Series:
    """``s`` with the rows of ``where`` set to missing (integers stay exact: nullable Int64)."""
    where = np.asarray(where, bool)
    if not where.any():
        return s
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64").mask(where)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean").mask(where)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return s.where(~where, None)
    return s.mask(where)


def _clean(df: pd.DataFrame, code: np.ndarray, since: dict) -> pd.DataFrame:
    """Turn fields that are not measurements into missing values (see the module table).

    ``code`` is each row's :func:`schema_code`; ``since`` maps field -> (major, minor).
    """
    df = df.copy()
    for name, (major, minor) in since.items():
        if name in df:
            with np.errstate(invalid="ignore"):
                df[name] = _blank(df[name], code < major * 1000 + minor)
    for name in NONE_IF_MINUS_999:
        if name in df and pd.api.types.is_numeric_dtype(df[name].dtype):
            df[name] = _blank(df[name], df[name].to_numpy(dtype=float, na_value=np.nan) == -999)
    for name, none in NONE_IF_STRING.items():
        if name in df:
            df[name] = _blank(df[name], df[name].astype(object).eq(none).to_numpy(bool))
    for score, version in SCORE_VERSION.items():
        if score in df and version in df:
            v = df[version]
            empty = v.isna().to_numpy() | (v.astype(str).str.strip() == "").to_numpy()
            df[score] = _blank(df[score], empty)
    return df


def _map_detections(df: pd.DataFrame) -> pd.DataFrame:
    """Add Rubin-named columns to a frame of ZTF candidate fields (cleaned by :func:`_clean`)."""
    out = pd.DataFrame(index=df.index)
    out["diaSourceId"] = df["candid"]
    out["ra"] = df["ra"]
    out["dec"] = df["dec"]
    out["midpointMjdTai"] = df["jd"] - JD_TO_MJD
    out["band"] = df["fid"].map(FID_TO_BAND)
    flux, err = _signed_flux(df["magpsf"], df["sigmapsf"], df["isdiffpos"])
    out["psfFlux"] = flux
    out["psfFluxErr"] = err
    out["mag"] = df["magpsf"].astype(float)
    out["magErr"] = df["sigmapsf"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["snr"] = np.abs(flux) / err
    none = pd.Series(np.nan, index=df.index)
    out["reliability"], out["reliabilitySource"] = pick_score(("drb", df["drb"] if "drb" in df else none),
                                                              ("rb", df["rb"] if "rb" in df else none))
    rest = df.drop(columns=[c for c in ("candid", "ra", "dec") if c in df])
    return pd.concat([out, rest], axis=1)


def to_frames(table: pa.Table, version: str | None):
    """Turn one decoded ZTF part into (sources, history, objects, cutouts).

    Examples
    --------
    ``table`` is what the decoder makes with :func:`projection`'s columns; here one
    schema 3.3 alert, built by hand:

    >>> import pyarrow as pa
    >>> from lsstuk_kit.surveys.ztf import to_frames
    >>> table = pa.table({"a:objectId": ["ZTF19acihgng"], "a:schemavsn": ["3.3"],
    ...                   "s:candid": [1029226360015015010], "s:ra": [150.1], "s:dec": [2.2],
    ...                   "s:jd": [2458765.7263], "s:fid": [2], "s:magpsf": [18.5], "s:sigmapsf": [0.1],
    ...                   "s:isdiffpos": ["t"], "s:rb": [0.8], "s:drb": [0.99], "s:drbversion": ["d6_m7"]})
    >>> sources, history, objects, cutouts = to_frames(table, None)
    >>> sources[["diaObjectId", "midpointMjdTai", "band", "reliability", "reliabilitySource"]].round(4).values.tolist()
    [['ZTF19acihgng', 58765.2263, 'r', 0.99, 'drb']]
    >>> round(float(sources["psfFlux"].iloc[0])), sources["schemaVersion"].iloc[0]  # nJy from magpsf
    (144544, 'ztf.v3_3')
    >>> history.num_rows, history.column("kind").to_pylist(), objects["_alert"].tolist(), cutouts
    (1, ['detection'], [0], {})
    """
    n = table.num_rows
    code = (schema_code(table.column("a:schemavsn").to_pylist()) if "a:schemavsn" in table.column_names
            else np.full(n, np.nan))
    cand = _clean(arrow_to_pandas(pa.table(_strip(table, "s:"))), code, CANDIDATE_SINCE)
    sources = _map_detections(cand)
    extra = _strip(table, "a:")
    extra = {("diaObjectId" if k == "objectId" else k): v for k, v in extra.items() if k != "candid"}
    extra_df = arrow_to_pandas(pa.table(extra)) if extra else pd.DataFrame(index=sources.index)
    sources = pd.concat([sources, extra_df.drop(columns=[c for c in extra_df if c in sources])
                         .set_axis(sources.index)], axis=1)
    sources["survey"] = "ztf"
    vsn = sources["schemavsn"].astype(str) if "schemavsn" in sources else pd.Series("", index=sources.index)
    sources["schemaVersion"] = "ztf.v" + vsn.str.replace(".", "_", regex=False)

    parts = []
    trig_cols = ["diaSourceId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr",
                 "mag", "magErr", "snr", "reliability", "reliabilitySource"]
    trig = sources[trig_cols].copy()
    trig["kind"] = "detection"
    trig["_alert"] = np.arange(n)
    parts.append(trig)
    if "h:prv_candidates" in table.column_names:
        arr = table.column("h:prv_candidates").combine_chunks()
        flat = pc.list_flatten(arr)
        if len(flat):
            prv = arrow_to_pandas(pa.table(dict(zip([f.name for f in flat.type], flat.flatten()))))
            parent = pc.list_parent_indices(arr).to_numpy()
            det = prv["candid"].notna().to_numpy() & prv["magpsf"].notna().to_numpy()
            prv = _clean(prv, code[parent], PRV_CANDIDATE_SINCE)
            d = _map_detections(prv[det].reset_index(drop=True))
            d = d[[c for c in trig_cols if c in d] + [c for c in ("diffmaglim",) if c in d]]
            d["kind"] = "detection"
            d["_alert"] = parent[det]
            parts.append(d)
            lim = prv[~det]
            if len(lim):
                u = pd.DataFrame({
                    "midpointMjdTai": lim["jd"].to_numpy() - JD_TO_MJD,
                    "band": lim["fid"].map(FID_TO_BAND).to_numpy(),
                    "psfFlux": np.nan,
                    "psfFluxErr": mag_to_flux(lim["diffmaglim"].to_numpy(float)) / 5.0,
                    "limitingMag": lim["diffmaglim"].to_numpy(float),
                    "ra": lim["ra"].to_numpy(float) if "ra" in lim else np.nan,
                    "dec": lim["dec"].to_numpy(float) if "dec" in lim else np.nan,
                })
                u["kind"] = "upper_limit"
                u["_alert"] = parent[~det]
                parts.append(u)
    if "h:fp_hists" in table.column_names:
        arr = table.column("h:fp_hists").combine_chunks()
        flat = pc.list_flatten(arr)
        if len(flat):
            fp = arrow_to_pandas(pa.table(dict(zip([f.name for f in flat.type], flat.flatten()))))
            parent = pc.list_parent_indices(arr).to_numpy()
            scale = 10.0 ** ((AB_ZEROPOINT_NJY - fp["magzpsci"].to_numpy(float)) / 2.5)
            raw = fp["forcediffimflux"].to_numpy(float)
            raw_err = fp["forcediffimfluxunc"].to_numpy(float)
            bad = (raw <= -99999) | (raw_err <= -99999)
            f = pd.DataFrame({
                "midpointMjdTai": fp["jd"].to_numpy(float) - JD_TO_MJD,
                "band": fp["fid"].map(FID_TO_BAND).to_numpy(),
                "psfFlux": np.where(bad, np.nan, raw * scale),
                "psfFluxErr": np.where(bad, np.nan, raw_err * scale),
            })
            f["kind"] = "forced"
            f["_alert"] = parent
            parts.append(f)
    history = pd.concat(parts, ignore_index=True, sort=False)
    history["diaObjectId"] = sources["diaObjectId"].to_numpy()[history["_alert"].to_numpy()]
    if "mag" not in history:
        history["mag"] = np.nan
    miss = history["mag"].isna() & history["psfFlux"].notna()
    if miss.any():
        from .common import flux_to_mag

        m, e = flux_to_mag(history.loc[miss, "psfFlux"], history.loc[miss, "psfFluxErr"])
        history.loc[miss, "mag"] = m
        history.loc[miss, "magErr"] = e

    history = pa.Table.from_pandas(history, preserve_index=False)
    objects = pd.DataFrame({
        "diaObjectId": sources["diaObjectId"].to_numpy(),
        "ra": sources["ra"].to_numpy(),
        "dec": sources["dec"].to_numpy(),
        "nDiaSources": sources["ndethist"].to_numpy() if "ndethist" in sources else np.nan,
        "firstDiaSourceMjdTai": (sources["jdstarthist"].to_numpy(float) - JD_TO_MJD)
        if "jdstarthist" in sources else np.nan,
        "lastDiaSourceMjdTai": sources["midpointMjdTai"].to_numpy(),
        "_alert": np.arange(n),
    })
    cut = {k: table.column("c:" + v) for k, v in CUTOUTS.items() if "c:" + v in table.column_names}
    return sources, history, objects, cut
