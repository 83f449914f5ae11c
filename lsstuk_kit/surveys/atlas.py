"""ATLAS alerts (Avro, ``atlas.alert``) mapped onto the Rubin column names.

ATLAS alerts come in three published layouts, all read here:

* ``"atlas"``: the layout QUB/Lasair describe (top level ``schemavsn``, ``publisher``,
  ``objectId``, ``candid``, ``candidate``, ``cutoutScience``, ``cutoutDifference``; the
  candidate record of ``genghisken/avro_atlas_ps1`` ``code/atlas/schema/candidate.avsc``,
  lower-case names such as ``filt``, ``mag5sig``, ``realbogus_factor``, ``pvr``).
* ``"qub2018"``: the first QUB layout of the same repository (``alertId``,
  ``atlas_object_id``, ``candidate``, ``prv_candidates``, three cutouts).
* ``"alerce"``: ALeRCE's ATLAS stream (``alercebroker/atlas_realtime`` ``schema/*.avsc``):
  capitalised names (``RA``, ``Dec``, ``Mag``, ``Dmag``, ``filter``, ``Pvr`` ...), a string
  ``candid`` such as ``01a59897o0020c_000002`` (exposure name and 1-based row of the
  detection in that exposure's ``.ddc`` table) and a placeholder ``rb`` of 0.0. Its names are
  renamed to the lower-case ones of the other layouts (:data:`ALERCE_NAMES`).

=====================  ================================================================
Rubin column           from ATLAS
=====================  ================================================================
``diaSourceId``        ``candid`` (an integer); a string ``candid`` (ALeRCE) becomes
                       :func:`detection_id` of its exposure and row; ``alertId`` (qub2018)
``diaObjectId``        ``objectId`` as a string (ATLAS's 19-digit position-based id, see
                       :func:`atlas_object_id`), else ``atlas_object_id``
``midpointMjdTai``     ``candidate.mjd`` as ATLAS gives it (UTC; TAI-UTC not added)
``band``               ``filt`` (``filter``) lower-cased: ``c`` cyan, ``o`` orange (also
                       ``g r i z B V R I h O``)
``psfFlux``            ``10**((31.4 - |mag|) / 2.5)`` nJy, negative when ``mag < 0`` (ATLAS
                       writes negative magnitudes for negative differences, and ALeRCE's
                       stream derives ``isdiffpos`` and the sign of ``flux`` from it) or
                       when ``isdiffpos`` is ``f`` or ``0``
``psfFluxErr``         ``|psfFlux| * dmag * ln(10) / 2.5``
``mag``, ``magErr``    ``|mag|``, ``dmag`` (the raw signed value stays in ``isdiffpos``
                       and ``psfFlux``; ``dmag`` is kept too)
``snr``                ``|psfFlux| / psfFluxErr``
``limitingMag``        ``mag5sig`` (5-sigma limit of the difference image)
``reliability``        ``realbogus_factor`` (QUB's pixel-based real/bogus score, 0-1,
                       1 = real) where given; else ALeRCE's ``rb`` unless it is the 0.0
                       their writer puts in every alert (read as missing)
``reliabilitySource``  ``"realbogus_factor"``, ``"atlas_rb"`` or ``None``
``survey``             ``"atlas"``
``schemaVersion``      ``"atlas.v"`` + ``schemavsn`` with dots as underscores (``atlas.v0_1``)
=====================  ================================================================

The ATLAS machine-learning scores stay as integer columns 0-999 (:data:`ML_SCORES`:
``pvr`` variable star, ``ptr`` transient, ``pmv`` mover, ``pkn`` known asteroid, ``pno``
noise, ``pbn`` burn, ``pcr`` cosmic ray, ``pxt`` cross-talk, ``psc`` star scar; from the
schema docs). :func:`ml_reliability` turns them into one 0-1 score. Every other ATLAS
field is kept under its (lower-case) name.

History: only ``qub2018`` alerts carry earlier detections (``prv_candidates``, read as
``detection`` rows). The other layouts carry none, so ``history`` holds just each alert's
own detection. Cutouts are 61x61 pixel FITS stamps (gzip-compressed in ALeRCE's stream);
ATLAS makes no template stamp (ALeRCE's ``cutoutTemplate`` is always null).
"""

from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._avrotypes import arrow_to_pandas
from .common import mag_to_flux, pick_score

__all__ = ["REQUIRED", "CUTOUTS", "CORE", "ML_SCORES", "ALERCE_NAMES", "projection", "to_frames",
           "map_detections", "detection_id", "exposure_code", "atlas_object_id", "ml_reliability", "schema",
           "write_atlas_alerts", "example_alerts"]

REQUIRED = ("diaSourceId", "ra", "dec", "midpointMjdTai")
CUTOUTS = {"science": "cutoutScience", "difference": "cutoutDifference"}
_ALL_CUTOUTS = {"science": "cutoutScience", "template": "cutoutTemplate", "difference": "cutoutDifference"}
#: the cutouts a read takes (``to_frames``' names -> Avro fields)
CUTOUT_FIELDS = _ALL_CUTOUTS
CORE = ("diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr",
        "snr", "reliability", "reliabilitySource")
JD_TO_MJD = 2400000.5
_LN10_OVER_2P5 = np.log(10.0) / 2.5

#: ATLAS's machine-learning class scores (integers 0-999, from the schema docs).
ML_SCORES = {
    "pvr": "stationary, long-lived variable source",
    "ptr": "stationary, short-lived transient",
    "pmv": "moving object",
    "pkn": "known asteroid",
    "pno": "noise artefact",
    "pbn": "burn (bright-star persistence) artefact",
    "pcr": "cosmic ray",
    "pxt": "cross-talk artefact",
    "psc": "star scar",
}
_REAL_CLASSES = ("pvr", "ptr", "pmv", "pkn")
#: Integer columns of an ATLAS detection (``det``: 0/1/2/3 fixed/free/trail/streak PSF fit,
#: +10 for injected fakes; 5 for a negative detection in ALeRCE's stream; ``dup`` duplicate flag).
INT_COLUMNS = ("det", *ML_SCORES, "dup")

#: ALeRCE's ATLAS stream names -> the lower-case names of QUB's layout and the .ddc tables.
ALERCE_NAMES = {
    "RA": "ra", "Dec": "dec", "Mag": "mag", "Dmag": "dmag", "X": "x", "Y": "y", "Major": "major",
    "Minor": "minor", "Phi": "phi", "Det": "det", "ChiN": "chin", "Pvr": "pvr", "Ptr": "ptr", "Pmv": "pmv",
    "Pkn": "pkn", "Pno": "pno", "Pbn": "pbn", "Pcr": "pcr", "Pxt": "pxt", "Psc": "psc", "Dup": "dup",
    "WPflx": "wpflx", "Dflx": "dflx", "filter": "filt", "Dflux": "dflux", "rb": "atlas_rb",
}

# ---------------------------------------------------------------------------------------- ids
_EXPNAME_RE = r"^(\d{2})([a-z])(\d{5})[a-z](\d{4})[a-z]$"
_ROW_DIGITS = 10**6
_FALLBACK_BASE = 9_200_000_000_000  # exposure codes above every parsed one (telescope 92+ is not used)


def exposure_code(expname) -> np.ndarray:
    """ATLAS exposure names as stable 13-digit integers.

    An exposure name such as ``02a58764o0104c`` is telescope (``02``), camera (``a``),
    night (MJD ``58764``), image type (``o``), sequence number (``0104``) and filter
    (``c``). The code is ``tel * 10**11 + camera * 10**9 + night * 10**4 + sequence``
    (camera ``a`` = 0 ... ``z`` = 25); type and filter letters add nothing (one exposure per
    telescope, camera, night and sequence). Names that do not follow the pattern get
    ``9.2e12`` plus a 10-digit hash of the name.

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import exposure_code
    >>> exposure_code(["01a59897o0020c", "02a58764o0104c"]).tolist()
    [100598970020, 200587640104]
    """
    codes, uniq = pd.factorize(pd.Series(np.asarray(expname, dtype=object).ravel()).astype(str).str.strip())
    if len(uniq) < len(codes):  # a table's rows share a few exposures: work on the distinct names
        return _exposure_code(pd.Series(uniq, dtype=object))[codes]
    return _exposure_code(pd.Series(uniq, dtype=object))


def _exposure_code(names: pd.Series) -> np.ndarray:
    parts = names.str.extract(_EXPNAME_RE)
    ok = np.array(parts.notna().all(axis=1).to_numpy(), dtype=bool)
    out = np.empty(len(names), np.int64)
    if ok.any():
        p = parts[ok]
        tel = p[0].astype(np.int64).to_numpy()
        cam = p[1].map(lambda c: ord(c) - 97).astype(np.int64).to_numpy()
        night = p[2].astype(np.int64).to_numpy()
        seq = p[3].astype(np.int64).to_numpy()
        out[ok] = tel * 10**11 + cam * 10**9 + night * 10**4 + seq
        ok[ok] = tel <= 91
    if not ok.all():
        uniq, inv = np.unique(names[~ok].to_numpy(dtype=str), return_inverse=True)
        hashed = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "big") % 10**10
                           for u in uniq], np.int64)
        out[~ok] = _FALLBACK_BASE + hashed[inv]
    return out


def detection_id(expname, row) -> np.ndarray:
    """A stable 64-bit id for the detection on ``row`` (1-based) of an exposure's .ddc table.

    ``exposure_code(expname) * 10**6 + row``: the same detection gets the same id from its
    ``.ddc`` row and from ALeRCE's alert ``candid`` (``<expname>_<row>``, which counts rows
    from 1 as this does).

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import detection_id
    >>> detection_id("01a59897o0020c", 2).tolist()
    [100598970020000002]
    """
    row = np.atleast_1d(np.asarray(row, np.int64))
    if row.size and (row.min() < 0 or row.max() >= _ROW_DIGITS):
        raise ValueError(f"row numbers must lie in [0, {_ROW_DIGITS}); got {row.min()}..{row.max()}")
    code = exposure_code(np.broadcast_to(np.asarray(expname, dtype=object), row.shape))
    return code * _ROW_DIGITS + row


def _candid_to_id(candid: pd.Series) -> pd.Series:
    """Integer ``diaSourceId`` from ``candid`` values: integers as they are, ``<exp>_<row>`` strings parsed."""
    if pd.api.types.is_integer_dtype(candid.dtype):
        return candid
    text = candid.astype(str).str.strip()
    parts = text.str.extract(r"^(\w+?)_(\d+)$")
    out = pd.Series(pd.NA, index=candid.index, dtype="Int64")
    digits = text.str.fullmatch(r"-?\d{1,18}").fillna(False).to_numpy(bool)
    out[digits] = text[digits].astype(np.int64).to_numpy()
    split = parts.notna().all(axis=1).to_numpy() & ~digits
    if split.any():
        rows = parts.loc[split, 1].astype(np.int64).to_numpy()
        fits = rows < _ROW_DIGITS
        idx = np.flatnonzero(split)[fits]
        out.iloc[idx] = detection_id(parts.loc[split, 0].to_numpy()[fits], rows[fits])
    return out


def atlas_object_id(ra, dec, dup=0) -> np.ndarray:
    """ATLAS's 19-digit object ids from positions (as QUB's and ALeRCE's pipelines make them).

    ``1 hh mm ss ff s dd mm ss f nn``: RA as hours, minutes, seconds and hundredths, a sign
    digit (1 north, 0 south), Dec as degrees, arcminutes, arcseconds and tenths, then two
    digits ``nn`` for up to 100 objects sharing a name. Checked against real ids
    (``1050843961702832400`` at 77.1832, +70.47569; ``1010240020045410432`` at 15.66676,
    -4.90289 with ``nn`` = 32).

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import atlas_object_id
    >>> atlas_object_id([77.1832, 15.66676], [70.47569, -4.90289], [0, 32]).tolist()
    [1050843961702832400, 1010240020045410432]
    """
    ra = np.mod(np.asarray(ra, float), 360.0)
    dec = np.asarray(dec, float)
    dup = np.asarray(dup, np.int64)
    if np.any((dup < 0) | (dup > 99)):
        raise ValueError("the duplicate counter of an ATLAS id must lie in 0..99")
    h = ra / 15.0
    hh = np.floor(h)
    mm = np.floor((h - hh) * 60)
    ss = np.floor(((h - hh) * 60 - mm) * 60)
    ff = np.floor((((h - hh) * 60 - mm) * 60 - ss) * 100)
    north = (dec >= 0).astype(np.int64)
    d = np.abs(dec)
    dd = np.floor(d)
    dm = np.floor((d - dd) * 60)
    ds = np.floor(((d - dd) * 60 - dm) * 60)
    df = np.floor((((d - dd) * 60 - dm) * 60 - ds) * 10)
    parts = [(hh, 10**16), (mm, 10**14), (ss, 10**12), (ff, 10**10), (north, 10**9), (dd, 10**7),
             (dm, 10**5), (ds, 10**3), (df, 10**2)]
    out = np.full(np.broadcast(ra, dec).shape, 10**18, np.int64)
    for v, scale in parts:
        out = out + np.asarray(v, np.int64) * scale
    return out + dup


def ml_reliability(scores) -> np.ndarray:
    """One 0-1 real/bogus score from ATLAS's nine class scores.

    The share of the astrophysical classes among all nine:
    ``(pvr + ptr + pmv + pkn) / (pvr + ptr + pmv + pkn + pno + pbn + pcr + pxt + psc)``.
    The scores are not forced to sum to 999 (QUB's example alert sums to 934), so the
    share, not ``1 - artefacts / 999``, is used. NaN where all nine are 0 or any is missing
    (no classification).

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.surveys.atlas import ml_reliability
    >>> s = pd.DataFrame({"pvr": [586, 0], "ptr": [300, 0], "pmv": [0, 0], "pkn": [0, 0], "pno": [31, 0],
    ...                   "pbn": [0, 0], "pcr": [0, 0], "pxt": [0, 0], "psc": [17, 0]})
    >>> ml_reliability(s).round(3).tolist()
    [0.949, nan]
    """
    v = {k: pd.Series(scores[k]).to_numpy(dtype=float, na_value=np.nan) for k in ML_SCORES}
    real = sum(v[k] for k in _REAL_CLASSES)
    total = sum(v.values())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, real / total, np.nan)


# ---------------------------------------------------------------------------------------- mapping
def _col(df, name, default=np.nan):
    return df[name] if name in df else pd.Series(default, index=df.index)


def map_detections(df: pd.DataFrame) -> pd.DataFrame:
    """Add Rubin-named columns to a frame of ATLAS detection fields (lower-case names).

    Used for Avro candidates and .ddc rows alike. ``diaSourceId`` and ``diaObjectId`` are
    left to the caller. The frame's own columns are kept, except ``ra``/``dec`` (reused) and
    ``mag`` (the signed ATLAS value becomes ``|mag|``, its sign lives in ``psfFlux`` and
    ``isdiffpos``).

    Examples
    --------
    Two .ddc-like rows, the second a negative difference (negative ``mag``):

    >>> import pandas as pd
    >>> from lsstuk_kit.surveys.atlas import map_detections
    >>> rows = pd.DataFrame({"mjd": [58764.5123, 58764.5123], "filt": ["o", "O"], "ra": [77.1832, 77.2011],
    ...                      "dec": [70.47569, 70.49002], "mag": [18.691, -17.912], "dmag": [0.163, 0.081],
    ...                      "mag5sig": [19.32, 19.32], "realbogus_factor": [0.93, 0.41]})
    >>> out = map_detections(rows)
    >>> out[["band", "mag", "psfFlux", "isdiffpos", "limitingMag", "reliability"]].round(1).values.tolist()
    [['o', 18.7, 121227.2, 't', 19.3, 0.9], ['o', 17.9, -248427.7, 'f', 19.3, 0.4]]
    >>> "diaSourceId" in out, out["reliabilitySource"].tolist()
    (False, ['realbogus_factor', 'realbogus_factor'])
    """
    raw = _col(df, "mag").to_numpy(dtype=float, na_value=np.nan)
    dmag = _col(df, "dmag").to_numpy(dtype=float, na_value=np.nan)
    diffpos = _col(df, "isdiffpos", None).astype(object).to_numpy()
    with np.errstate(invalid="ignore"):
        neg = (raw < 0) | np.isin(diffpos, ["f", "0"])
    mag = np.abs(raw)
    flux = mag_to_flux(mag)
    err = flux * dmag * _LN10_OVER_2P5
    out = pd.DataFrame(index=df.index)
    out["ra"] = _col(df, "ra").astype(float)
    out["dec"] = _col(df, "dec").astype(float)
    out["midpointMjdTai"] = _col(df, "mjd").astype(float)
    out["band"] = _col(df, "filt", None).astype("string").str.strip().str.lower().astype(object)
    out["psfFlux"] = np.where(neg, -flux, flux)
    out["psfFluxErr"] = err
    out["mag"] = mag
    out["magErr"] = dmag
    with np.errstate(divide="ignore", invalid="ignore"):
        out["snr"] = flux / err
    out["limitingMag"] = _col(df, "mag5sig").astype(float)
    rb = _col(df, "atlas_rb").to_numpy(dtype=float, na_value=np.nan)
    rb = np.where(rb == 0.0, np.nan, rb)  # ALeRCE's writer puts 0.0 in every alert: no score
    out["reliability"], out["reliabilitySource"] = pick_score(
        ("realbogus_factor", _col(df, "realbogus_factor")), ("atlas_rb", rb))
    rest = df.drop(columns=[c for c in ("ra", "dec", "mag") if c in df])
    if "isdiffpos" not in rest:
        rest = rest.assign(isdiffpos=np.where(neg, "f", "t"))
    for c in INT_COLUMNS:
        if c in rest and not pd.api.types.is_integer_dtype(rest[c].dtype):
            v = pd.to_numeric(rest[c], errors="coerce")
            whole = v.isna() | (v == np.round(v))
            if whole.all():
                rest[c] = v.astype("Int64")
    return pd.concat([out, rest], axis=1)


def projection(schema: dict, columns=None, cutouts=True):
    """What a read takes from an ATLAS writer schema (ATLAS alerts are light: no column projection).

    Columns: ``a:`` top-level scalars, ``s:`` candidate fields, ``h:prv_candidates`` (qub2018
    layout), ``c:<cutout field>`` stamp bytes.

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import projection, schema
    >>> p = projection(schema("alerce"))
    >>> [name for name in p.names if not name.startswith("s:")]
    ['a:schemavsn', 'a:publisher', 'a:objectId', 'a:candid', 'c:cutoutScience', 'c:cutoutTemplate',
    'c:cutoutDifference']
    >>> len([name for name in p.names if name.startswith("s:")])  # every field of ALeRCE's candidate
    31
    """
    from .ztf import candidate_projection

    return candidate_projection(schema, ("prv_candidates",), _ALL_CUTOUTS.values(), cutouts)


def _strip(table, prefix):
    n = len(prefix)
    return {c[n:]: table.column(c) for c in table.column_names if c.startswith(prefix)}


def _candidates(cols: dict) -> pd.DataFrame:
    df = arrow_to_pandas(pa.table(cols)) if cols else pd.DataFrame()
    return df.rename(columns={k: v for k, v in ALERCE_NAMES.items() if k in df and v not in df})


_TRIGGER_COLS = ["diaSourceId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "mag", "magErr",
                 "snr", "limitingMag", "reliability", "reliabilitySource"]


def to_frames(table: pa.Table, version: str | None):
    """Turn one decoded ATLAS part into (sources, history, objects, cutouts).

    Examples
    --------
    ``table`` is what the decoder makes with :func:`projection`'s columns; here two
    alerts of the ``"atlas"`` layout, built by hand:

    >>> import pyarrow as pa
    >>> from lsstuk_kit.surveys.atlas import to_frames
    >>> table = pa.table({"a:schemavsn": ["0.1", "0.1"], "a:objectId": ["1050843961702832400"] * 2,
    ...                   "a:candid": [200587640104000001, 200587640104000002],
    ...                   "s:mjd": [58764.5123, 58764.5123], "s:filt": ["o", "o"], "s:ra": [77.1832, 77.1833],
    ...                   "s:dec": [70.47569, 70.4757], "s:mag": [18.691, -17.912], "s:dmag": [0.163, 0.081],
    ...                   "s:mag5sig": [19.32, 19.32], "s:realbogus_factor": [0.93, 0.41]})
    >>> sources, history, objects, cutouts = to_frames(table, None)
    >>> sources[["diaSourceId", "diaObjectId", "mag", "survey", "schemaVersion"]].values.tolist()
    [[200587640104000001, '1050843961702832400', 18.691, 'atlas', 'atlas.v0_1'],
    [200587640104000002, '1050843961702832400', 17.912, 'atlas', 'atlas.v0_1']]
    >>> (sources["psfFlux"] > 0).tolist(), history.column("kind").to_pylist(), len(objects), cutouts
    ([True, False], ['detection', 'detection'], 2, {})
    """
    n = table.num_rows
    cand = _candidates(_strip(table, "s:"))
    if not len(cand.columns):
        cand = pd.DataFrame(index=range(n))
    sources = map_detections(cand)
    top = _strip(table, "a:")
    top_df = arrow_to_pandas(pa.table(top)).set_axis(sources.index) if top else pd.DataFrame(index=sources.index)
    # diaSourceId: the alert's candid, else the candidate's, else qub2018's alertId / db_det_id
    ids = pd.Series(pd.NA, index=sources.index, dtype="Int64")
    for frame, name in ((top_df, "candid"), (cand, "candid"), (top_df, "alertId"), (cand, "db_det_id")):
        if name in frame:
            got = _candid_to_id(frame[name])
            ids = ids.fillna(got) if ids.isna().any() else ids
    sources.insert(0, "diaSourceId", ids.to_numpy(dtype=np.int64) if not ids.isna().any() else ids)
    oid = pd.Series(None, index=sources.index, dtype=object)
    for frame, name in ((top_df, "objectId"), (top_df, "atlas_object_id"), (cand, "atlas_object_id")):
        if name in frame:
            got = frame[name].astype(object).where(frame[name].notna(), None)
            oid = oid.where(oid.notna(), got.map(lambda v: None if v is None else str(v)))
    sources.insert(1, "diaObjectId", oid.to_numpy())
    extra = top_df.drop(columns=[c for c in ("objectId",) if c in top_df])
    extra = extra.rename(columns={"candid": "alert_candid"}) if "candid" in sources else extra
    extra = extra.drop(columns=[c for c in extra if c in sources])
    sources = pd.concat([sources, extra], axis=1)
    sources["survey"] = "atlas"
    if "schemavsn" in sources:
        vsn = sources["schemavsn"].astype(str).str.strip().str.replace(".", "_", regex=False)
        sources["schemaVersion"] = ("atlas.v" + vsn).where(sources["schemavsn"].notna(), version or "atlas")
    else:  # qub2018 alerts carry no schemavsn: the version the reader found in the schema, if any
        sources["schemaVersion"] = version or "atlas"

    trig = sources[_TRIGGER_COLS].copy()
    trig["kind"] = "detection"
    trig["_alert"] = np.arange(n)
    parts = [trig]
    if "h:prv_candidates" in table.column_names:
        arr = table.column("h:prv_candidates").combine_chunks()
        flat = pc.list_flatten(arr)
        if len(flat):
            prv = _candidates(dict(zip([f.name for f in flat.type], flat.flatten())))
            d = map_detections(prv)
            d.insert(0, "diaSourceId", _candid_to_id(prv["db_det_id"]) if "db_det_id" in prv else pd.NA)
            d = d[[c for c in _TRIGGER_COLS if c in d]].copy()
            d["kind"] = "detection"
            d["_alert"] = pc.list_parent_indices(arr).to_numpy()
            parts.append(d)
    history = pd.concat(parts, ignore_index=True, sort=False)
    history["diaObjectId"] = sources["diaObjectId"].to_numpy()[history["_alert"].to_numpy()]
    history["diaSourceId"] = pd.array(history["diaSourceId"], dtype="Int64")
    history = pa.Table.from_pandas(history, preserve_index=False)

    def opt(name, fn=lambda v: v):
        return fn(sources[name].to_numpy(dtype=float, na_value=np.nan)) if name in sources else np.full(n, np.nan)

    objects = pd.DataFrame({
        "diaObjectId": sources["diaObjectId"].to_numpy(),
        "ra": sources["ra"].to_numpy(),
        "dec": sources["dec"].to_numpy(),
        "nDiaSources": opt("ndethist"),
        "firstDiaSourceMjdTai": opt("jdstarthist", lambda v: v - JD_TO_MJD),
        "lastDiaSourceMjdTai": sources["midpointMjdTai"].to_numpy(),
        "_alert": np.arange(n),
    })
    cut = {k: table.column("c:" + v) for k, v in _ALL_CUTOUTS.items() if "c:" + v in table.column_names}
    return sources, history, objects, cut


# ---------------------------------------------------------------------------------------- schemas
# (name, type, unit) of QUB's candidate record, as listed in FORMAT.md; "?" marks [type, null].
_CANDIDATE = """
mjd double days; filt string; mag5sig float? mag; obs string?; programpi string?; programid int?;
atlas_object_id long; isdiffpos string?; nid int?; obj string?; x float pixels; y float pixels;
ra double degrees; dec double degrees; mag float? mag; dmag float? mag; chin float?; skymag float? mag;
realbogus_factor float?; ndethist int?; major float? pixels; minor float? pixels; filename string?;
db_det_id long; det_id int; phi float?; det int?; pvr int?; ptr int?; pmv int?; pkn int?; pno int?;
pbn int?; pcr int?; pxt int?; psc int?; dup int?; wpflx float?; dflx float?; image_group_id long?;
quality_threshold_pass int?; deprecated int?; htm16ID long; texp float? s; ra_pointing double? degrees;
dec_pointing double? degrees; pa float?; nx int?; ny int?; rad int?; fwmaj float?; fwmin float?;
psfpa float?; scale float?; long float?; lat float?; elev float?; rarms float?; decrms float?;
magzpt float?; cloud float?; az float?; alt float?; lambda float?; beta float?; sunelong float?;
input string?; reference string?; htm16ID_pointing long; pid long?; tblid long?; rcid int?;
magap float? mag; sigmagap float? mag; distnr float? pixels; magnr float? mag; sigmagnr float? mag;
chinr float?; sharpnr float?; magdiff float? mag; fwhm float? pixels; classtar float?;
mindtoedge float? pixels; magfromlim float? mag; seeratio float?; aimage float? pixels;
bimage float? pixels; aimagerat float?; bimagerat float?; elong float?; nneg int?; nbad int?;
ssdistnr float? arcsec; ssmagnr float? mag; ssnamenr string?; sumrat float?; magapbig float? mag;
sigmagapbig float? mag; ranr double? deg; decnr double? deg; sgmag float? mag; sgscore float?;
ncovhist int?; jdstarthist double? days; jdendhist double? days
"""
# ALeRCE's candidate record (alercebroker/atlas_realtime schema/candidate.avsc): name type.
_ALERCE_CANDIDATE = """
mjd double; filter string; pid long; candid string; isdiffpos string; X float; Y float; RA double;
Dec double; Mag float; Dmag float; flux float; Dflux float; Major float; Minor float; rb float;
Phi double; Det int; ChiN double; Pvr int; Ptr int; Pmv int; Pkn int; Pno int; Pbn int; Pcr int;
Pxt int; Psc int; Dup int; WPflx float; Dflx float
"""


def _fields(spec):
    out = []
    for item in spec.replace("\n", " ").split(";"):
        words = item.split()
        if not words:
            continue
        name, typ = words[0], words[1]
        f = {"name": name, "type": typ}
        if typ.endswith("?"):  # nullable: null first, so that the default null is valid Avro
            f = {"name": name, "type": ["null", typ[:-1]], "default": None}
        if len(words) > 2:
            f["doc"] = f"[{words[2]}]"
        out.append(f)
    return out


def schema(variant: str = "atlas") -> dict:
    """An ``atlas.alert`` Avro schema (the kit's reconstruction from the published field lists).

    Parameters
    ----------
    variant : {"atlas", "alerce", "qub2018"}
        ``"atlas"``: top level ``schemavsn``, ``publisher``, ``objectId``, ``candid``,
        ``candidate`` (QUB's record), ``cutoutScience``, ``cutoutDifference``. ``"alerce"``:
        ALeRCE's ATLAS stream. ``"qub2018"``: ``alertId``, ``atlas_object_id``,
        ``candidate``, ``prv_candidates`` and three cutouts.

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import schema
    >>> s = schema()
    >>> s["namespace"], [f["name"] for f in s["fields"]][:4]
    ('atlas', ['schemavsn', 'publisher', 'objectId', 'candid'])
    """
    cutout = {"type": "record", "name": "cutout", "namespace": "atlas.alert",
              "fields": [{"name": "fileName", "type": "string"}, {"name": "stampData", "type": "bytes"}]}
    if variant == "alerce":
        cand = {"type": "record", "name": "candidate", "namespace": "atlas", "fields": _fields(_ALERCE_CANDIDATE)}
        cutout = dict(cutout, namespace="atlas")
        return {"type": "record", "name": "alert", "namespace": "atlas", "version": "0.1", "fields": [
            {"name": "schemavsn", "type": "string"}, {"name": "publisher", "type": "string"},
            {"name": "objectId", "type": "string"}, {"name": "candid", "type": "string"},
            {"name": "candidate", "type": cand},
            {"name": "cutoutScience", "type": ["null", cutout], "default": None},
            {"name": "cutoutTemplate", "type": ["null", "atlas.cutout"], "default": None},
            {"name": "cutoutDifference", "type": ["null", "atlas.cutout"], "default": None}]}
    cand = {"type": "record", "name": "candidate", "namespace": "atlas.alert", "fields": _fields(_CANDIDATE)}
    if variant == "qub2018":
        return {"type": "record", "name": "alert", "namespace": "atlas", "version": "0.1", "fields": [
            {"name": "alertId", "type": "long"}, {"name": "atlas_object_id", "type": "long"},
            {"name": "candidate", "type": cand},
            {"name": "prv_candidates", "type": ["null", {"type": "array", "items": "atlas.alert.candidate"}],
             "default": None},
            {"name": "cutoutScience", "type": ["null", cutout], "default": None},
            {"name": "cutoutTemplate", "type": ["null", "atlas.alert.cutout"], "default": None},
            {"name": "cutoutDifference", "type": ["null", "atlas.alert.cutout"], "default": None}]}
    if variant != "atlas":
        raise ValueError(f"unknown ATLAS schema variant {variant!r}; known: 'atlas', 'alerce', 'qub2018'")
    return {"type": "record", "name": "alert", "namespace": "atlas", "version": "0.1", "fields": [
        {"name": "schemavsn", "type": "string"}, {"name": "publisher", "type": "string"},
        {"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"},
        {"name": "candidate", "type": cand},
        {"name": "cutoutScience", "type": ["null", cutout], "default": None},
        {"name": "cutoutDifference", "type": ["null", "atlas.alert.cutout"], "default": None}]}


def write_atlas_alerts(path, alerts: list, variant: str = "atlas", codec: str = "null"):
    """Write ATLAS alert dicts to an Avro container file with :func:`schema` ``(variant)``.

    Returns the path. Fields a layout marks nullable may be left out of the dicts.

    Examples
    --------
    >>> import os, tempfile
    >>> import fastavro
    >>> from lsstuk_kit.surveys.atlas import example_alerts, write_atlas_alerts
    >>> alerts = example_alerts(3, cutouts=False)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_atlas_alerts(os.path.join(folder, "atlas.avro"), alerts)
    ...     with open(path, "rb") as fh:
    ...         back = list(fastavro.reader(fh))
    >>> len(back), [a["candid"] for a in back] == [a["candid"] for a in alerts]
    (3, True)
    >>> back[0]["candidate"]["filt"], back[0]["cutoutScience"]
    ('c', None)
    """
    import fastavro

    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema(variant)), alerts, codec=codec)
    return path


def _stamp(rng, peak, shape=61, sky=1800.0, noise=60.0, gzipped=True):
    """A 61x61 float32 FITS stamp with a Gaussian source of amplitude ``peak`` (ADU)."""
    from astropy.io import fits

    y, x = np.mgrid[:shape, :shape] - shape // 2
    img = sky + peak * np.exp(-(x**2 + y**2) / (2 * 1.3**2)) + rng.normal(0, noise, (shape, shape))
    hdu = fits.PrimaryHDU(img.astype(np.float32))
    buf = io.BytesIO()
    hdu.writeto(buf)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gzipped else raw


def example_alerts(n: int = 20, seed: int = 0, variant: str = "atlas", cutouts: bool = True) -> list:
    """Realistic ATLAS alert dicts for tests and examples (not real data).

    Values follow the ranges of real ATLAS alerts (QUB's example alert, ALeRCE's test alert):
    bands ``c``/``o``, magnitudes 14-19.5 with a few negative detections (negative ``mag``),
    ML scores 0-999, 61x61 FITS stamps (gzip-compressed). Ids follow ATLAS's conventions
    (:func:`atlas_object_id`, exposure names such as ``02a59897o0104c``).

    Examples
    --------
    >>> from lsstuk_kit.surveys.atlas import example_alerts
    >>> a = example_alerts(3, cutouts=False)
    >>> sorted({x["candidate"]["filt"] for x in example_alerts(20, cutouts=False)})
    ['c', 'o']
    """
    rng = np.random.default_rng(seed)
    out = []
    n_obj = max(1, n // 2)
    ras = rng.uniform(0, 360, n_obj)
    decs = np.degrees(np.arcsin(rng.uniform(-0.9, 0.9, n_obj)))
    oids = atlas_object_id(ras, decs)
    for i in range(n):
        k = i % n_obj
        tel = 1 + i % 4
        filt = "co"[i % 2]
        night = 59897 + i // 8
        expname = f"{tel:02d}a{night}o{(i * 7) % 900 + 10:04d}{filt}"
        row = int(rng.integers(1, 40000))
        mag = float(np.round(rng.uniform(14.0, 19.5), 3))
        negative = i % 7 == 3
        dmag = float(np.round(0.02 + 0.3 * 10 ** (0.4 * (mag - 19.5)), 3))
        ra = float(ras[k] + rng.normal(0, 0.2 / 3600))
        dec = float(decs[k] + rng.normal(0, 0.2 / 3600))
        mjd = float(np.round(night + 0.19 + 0.1 * rng.random(), 6))
        real = rng.integers(0, 999, 4)
        art = rng.integers(0, 60, 5)
        sid = int(detection_id(expname, row)[0])
        stamps = {}
        if cutouts:
            peak = 10 ** (0.4 * (21.5 - mag)) * (-1 if negative else 1)
            stamps = {"cutoutScience": {"fileName": f"{expname}_{row:06d}_istamp.fits.gz",
                                        "stampData": _stamp(rng, abs(peak))},
                      "cutoutDifference": {"fileName": f"{expname}_{row:06d}_dstamp.fits.gz",
                                           "stampData": _stamp(rng, peak, sky=0.0)}}
        if variant == "alerce":
            flux = 10 ** (-(mag - 23.9) / 2.5) * (-1 if negative else 1)
            cand = {"mjd": mjd, "filter": filt, "pid": int(f"{tel:02d}{night}{(i * 7) % 900 + 10:04d}"),
                    "candid": f"{expname}_{row:06d}", "isdiffpos": "f" if negative else "t",
                    "X": float(rng.uniform(10, 10550)), "Y": float(rng.uniform(10, 10550)), "RA": ra, "Dec": dec,
                    "Mag": -mag if negative else mag, "Dmag": dmag, "flux": flux, "Dflux": dmag * flux,
                    "Major": 2.8, "Minor": 2.6, "rb": 0.0, "Phi": 40.0, "Det": 5 if negative else 1, "ChiN": 1.1,
                    **{k.capitalize(): int(v) for k, v in zip(_REAL_CLASSES, real)},
                    **{k.capitalize(): int(v) for k, v in zip(("pno", "pbn", "pcr", "pxt", "psc"), art)},
                    "Dup": 0, "WPflx": 17000.0, "Dflx": 1.7}
            alert = {"schemavsn": "0.1", "publisher": f"ATLAS-{tel:02d}a", "objectId": str(oids[k]),
                     "candid": f"{expname}_{row:06d}", "candidate": cand, **stamps}
        else:
            cand = {"mjd": mjd, "filt": filt, "mag5sig": float(np.round(rng.uniform(18.8, 19.8), 2)),
                    "obs": expname, "obj": f"TA{int(ras[k]):03d}N{abs(int(decs[k])):02d}",
                    "atlas_object_id": int(oids[k]), "isdiffpos": "f" if negative else "t",
                    "x": float(rng.uniform(10, 10550)), "y": float(rng.uniform(10, 10550)), "ra": ra, "dec": dec,
                    "mag": -mag if negative else mag, "dmag": dmag, "chin": 1.9, "skymag": 19.64,
                    "realbogus_factor": None if i % 5 == 0 else float(np.round(rng.random(), 3)),
                    "major": 2.28, "minor": 2.04, "filename": f"{expname}.ddc", "db_det_id": sid,
                    "det_id": row, "phi": 41.0, "det": 0,
                    **{k: int(v) for k, v in zip(_REAL_CLASSES, real)},
                    **{k: int(v) for k, v in zip(("pno", "pbn", "pcr", "pxt", "psc"), art)},
                    "dup": 0, "wpflx": -710.1, "dflx": 2.9, "htm16ID": 66377335811, "texp": 30.0,
                    "magzpt": 22.225, "scale": 1.862, "nx": 10560, "ny": 10560, "htm16ID_pointing": 66386671209}
            if variant == "qub2018":
                alert = {"alertId": sid, "atlas_object_id": int(oids[k]), "candidate": cand,
                         "prv_candidates": None, **stamps}
            else:
                alert = {"schemavsn": "0.1", "publisher": "ATLAS", "objectId": str(oids[k]), "candid": sid,
                         "candidate": cand, **stamps}
        out.append(alert)
    return out
