"""ANTARES loci (``antares-client`` or the HTTP API's JSON:API documents) read as alerts.

A locus is ANTARES's object: ``locus_id``, ``ra``, ``dec``, ``properties``
(``ztf_object_id``, ``num_mag_values``, ``newest_alert_observation_time``, ...),
``tags``, ``catalogs`` / ``catalog_objects`` and its alerts. Accepted shapes:

- the client's ``Locus`` as a dict (``locus_id``, ``ra``, ``dec``, ``properties``,
  ``tags``, ``catalogs``, and ``alerts`` as ``[{"alert_id", "mjd", "properties"}]``
  and/or ``timeseries`` / ``lightcurve`` as a list of rows, a dict of columns, or
  CSV text), or a list of such loci;
- a JSON:API document from the ANTARES HTTP API: ``{"data": {"type": "locus",
  "id": ..., "attributes": {...}}, "included": [alerts]}`` (or ``data`` a list).

Rows are read from ``alerts`` where present (the authoritative history; the
client's ``lightcurve`` is a selection of it), else ``timeseries``, else
``lightcurve``. A row with an ``alert_id`` and a detection magnitude
(``ant_mag``) is an alert; a row with only ``ant_maglim`` is an upper limit
(history ``kind="upper_limit"``, ``limitingMag`` = ``ant_maglim``).

==================  ==========================================================
Rubin column        from ANTARES
==================  ==========================================================
``diaSourceId``     ``ztf_candid``, else the number after ``:`` in ``alert_id``
                    (``ztf_candidate:<candid>``, ``lsst:<diaSourceId>``)
``diaObjectId``     ZTF: the locus's ``ztf_object_id``; LSST: its
                    ``lsst_dia_object_id`` / ``dia_object_id``; else ``locus_id``
``midpointMjdTai``  ``ant_mjd`` (else the alert's ``mjd``)
``band``            ZTF: ``ztf_fid`` (1, 2, 3 -> g, r, i), else ``ant_passband``
                    (ANTARES writes ZTF r as ``R``) lower-cased
``psfFlux``         from ``ant_mag`` in nJy, negative where ``ztf_isdiffpos`` is
                    ``f``/``0`` (rows without it are taken as positive)
``ra``, ``dec``     ``ant_ra``, ``ant_dec`` (else the locus centroid)
``reliability``     ``ztf_drb`` where a ``ztf_drbversion`` is given, else ``ztf_rb``
==================  ==========================================================

Alert properties keep their names (``ant_*``, ``ztf_*``); the locus's become
``antares_<name>`` columns (nested values as JSON text), with ``antares_locus_id``,
``antares_tags`` and ``antares_catalogs`` (comma-joined) and
``antares_catalog_objects`` (the catalogue matches, JSON text). A locus with both
ZTF and LSST alerts gives one :class:`Frames` per survey.

Records: the alert rows of each locus (candidate rows; upper limits are
history). A locus that carries no rows at all counts as one record and is
reported (its alerts were not fetched).

History: as for ALeRCE (:func:`lsstuk_kit.formats.alerce_json.attach_history`):
each alert carries the locus's rows up to its time.

Examples
--------
>>> from lsstuk_kit.formats import Source
>>> from lsstuk_kit.formats.antares_json import SPEC
>>> locus = {"locus_id": "ANT2020nb5h6", "ra": 50.848, "dec": 37.468, "tags": ["dimmers"],
...          "properties": {"ztf_object_id": "ZTF20aafqubg"},
...          "lightcurve": [{"alert_id": "ztf_candidate:1113163781415010010", "ant_mjd": 58867.1638,
...                          "ant_mag": 17.15, "ant_magerr": 0.196, "ant_passband": "g",
...                          "ant_ra": 50.848047, "ant_dec": 37.4677681}]}
>>> s = SPEC.read(Source(label="locus", obj=locus, fail=None))[0].sources
>>> s[["diaSourceId", "diaObjectId", "band", "antares_tags"]].values.tolist()
[[1113163781415010010, 'ZTF20aafqubg', 'g', 'dimmers']]
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd

from ..errors import AlertFormatError
from ..surveys.common import mag_to_flux, pick_score
from . import FormatSpec, Frames, Sniff
from .alerce_json import ZTF_FID_TO_BAND, _num, _raise, attach_history, exact_int, signed_flux

__all__ = ["SPEC", "identify", "read"]

_ROW_KEYS = ("alerts", "timeseries", "lightcurve")
_LSST_OBJECT_KEYS = ("lsst_dia_object_id", "dia_object_id", "lsst_diaObjectId", "diaObjectId")


def _is_locus(d) -> bool:
    return isinstance(d, dict) and "locus_id" in d


def _is_jsonapi(d) -> bool:
    if not isinstance(d, dict) or "data" not in d:
        return False
    data = d["data"]
    first = data[0] if isinstance(data, list) and data else data
    return isinstance(first, dict) and first.get("type") in ("locus", "locus_listing")


def _is_row(r) -> bool:
    return isinstance(r, dict) and "alert_id" in r and (
        "ant_mjd" in r or isinstance(r.get("properties"), dict) and "ant_mjd" in r["properties"])


def identify(sniff: Sniff) -> bool:
    """True for ANTARES loci (client dicts or JSON:API) and lists of them or of their alerts.

    Examples
    --------
    >>> from lsstuk_kit.formats import Sniff
    >>> from lsstuk_kit.formats.antares_json import identify
    >>> identify(Sniff(label="locus", obj={"locus_id": "ANT2020nb5h6", "ra": 50.848, "dec": 37.468}))
    True
    >>> identify(Sniff(label="loci.json", head=b'[{"locus_id": "ANT2020nb5h6"}]'))
    True
    >>> identify(Sniff(label="lc", obj={"oid": "ZTF20aaelulu", "detections": []}))  # an ALeRCE light curve
    False
    """
    obj = sniff.obj
    if obj is not None:
        if isinstance(obj, dict):  # a locus, a JSON:API document, or the first alert row of a list
            return _is_locus(obj) or _is_jsonapi(obj) or _is_row(obj)
        if isinstance(obj, list) and obj:
            return _is_locus(obj[0]) or _is_row(obj[0])
        return False
    text = sniff.text_head()
    if text[:1] not in ("{", "["):
        return False
    return '"locus_id"' in text or '"ant_mjd"' in text or '"type": "locus' in text or '"type":"locus' in text


def _from_jsonapi(doc) -> list:
    data = doc["data"]
    included = doc.get("included") or []
    alerts = [{"alert_id": a.get("id"), **(a.get("attributes") or {})}
              for a in included if isinstance(a, dict) and a.get("type") == "alert"]
    loci = []
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            continue
        locus = {"locus_id": item.get("id"), **(item.get("attributes") or {})}
        if alerts and "alerts" not in locus:
            locus["alerts"] = alerts
        loci.append(locus)
    return loci


def _loci(doc, label) -> list:
    if isinstance(doc, dict):
        if _is_jsonapi(doc):
            return _from_jsonapi(doc)
        if _is_locus(doc):
            return [doc]
    if isinstance(doc, list):
        if all(_is_locus(x) for x in doc):
            return doc
        if doc and _is_row(doc[0]):
            return [{"locus_id": None, "alerts" if "properties" in doc[0] else "lightcurve": doc}]
    raise AlertFormatError("not an ANTARES locus (expected locus_id, or a JSON:API document of type 'locus')",
                           label)


def _rows_of(locus):
    """The locus's rows (alerts, else timeseries, else lightcurve): a list of flat dicts, or a DataFrame."""
    for key in _ROW_KEYS:
        value = locus.get(key)
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            continue
        if key == "alerts":
            recs = []
            for a in value:
                a = a if isinstance(a, dict) else {}
                props = a.get("properties") if isinstance(a.get("properties"), dict) else {}
                recs.append({**props, "alert_id": a.get("alert_id", a.get("id")), "_mjd": a.get("mjd")})
            return recs
        if isinstance(value, str):
            return pd.read_csv(io.StringIO(value))
        if isinstance(value, dict):
            return pd.DataFrame(value)
        return [r if isinstance(r, dict) else {} for r in value]
    return []


def _scalar(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return v


def read(source) -> list[Frames]:
    """Read one ANTARES JSON source into :class:`Frames` (one per survey present).

    Examples
    --------
    A locus whose light curve holds an upper limit and a detection:

    >>> import json
    >>> from lsstuk_kit.formats import Source
    >>> from lsstuk_kit.formats.antares_json import read
    >>> locus = {"locus_id": "ANT2020nb5h6", "ra": 50.848, "dec": 37.468, "tags": ["dimmers", "high_amp"],
    ...          "properties": {"ztf_object_id": "ZTF20aafqubg"},
    ...          "lightcurve": [
    ...              {"alert_id": "ztf_upper_limit:1112162211415015000", "ant_mjd": 58866.16, "ant_maglim": 19.8,
    ...               "ant_passband": "g"},
    ...              {"alert_id": "ztf_candidate:1113163781415010010", "ant_mjd": 58867.1638, "ant_mag": 17.15,
    ...               "ant_magerr": 0.196, "ant_passband": "g", "ant_ra": 50.848047, "ant_dec": 37.4677681}]}
    >>> frames = read(Source(label="locus.json", data=json.dumps(locus).encode()))
    >>> len(frames), frames[0].sources[["diaSourceId", "survey", "broker", "antares_tags"]].values.tolist()
    (1, [[1113163781415010010, 'ztf', 'antares', 'dimmers,high_amp']])
    >>> frames[0].history[["kind", "limitingMag"]].values.tolist()
    [['upper_limit', 19.8], ['detection', nan]]
    """
    label = source.label
    options = dict(source.options or {})
    fail = source.fail or _raise(label)
    loci = _loci(source.json(), label)
    mode = options.get("history", "cumulative")

    recs, frames, rec0 = [], [], 0
    for li, locus in enumerate(loci):
        got = _rows_of(locus)
        if len(got) == 0:
            fail(f"locus {locus.get('locus_id')} carries no alerts (fetch locus.alerts or its lightcurve)",
                 record=rec0, field="alerts")
            rec0 += 1
        elif isinstance(got, pd.DataFrame):
            frames.append(got.assign(_locus=li))
        else:
            recs.extend({**r, "_locus": li} for r in got)
    if recs:  # one DataFrame for all loci (one per locus costs more than the parsing)
        frames.insert(0, pd.DataFrame.from_records(recs))
        if "ztf_candid" in frames[0]:  # keep the 19-digit candid exact (from_records makes ints with gaps floats)
            frames[0]["ztf_candid"] = exact_int([r.get("ztf_candid") for r in recs]).to_numpy()
    if not frames:
        return []
    rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
    aid = rows["alert_id"].astype(object) if "alert_id" in rows else pd.Series(None, index=rows.index, dtype=object)
    t = _num(rows, "ant_mjd")
    if "_mjd" in rows:
        t = np.where(np.isfinite(t), t, _num(rows, "_mjd"))
    mag = _num(rows, "ant_mag")
    lim = _num(rows, "ant_maglim")
    is_det = np.isfinite(mag)
    is_lim = ~is_det & np.isfinite(lim)
    other = ~is_det & ~is_lim
    if other.any():
        warnings.warn(f"{label}: {int(other.sum())} ANTARES rows with neither ant_mag nor ant_maglim were "
                      "dropped", stacklevel=3)

    # records: candidate rows, numbered in order after any empty loci
    rec = np.full(len(rows), -1, np.int64)
    rec[is_det] = rec0 + np.arange(int(is_det.sum()))
    prefix = aid.astype(str).str.split(":", n=1).str[0].str.lower().to_numpy(object)
    survey = np.where(pd.Series(prefix).str.startswith("lsst").to_numpy(), "lsst", "ztf")
    # the id after "ztf_candidate:" / "lsst:" is exact (ztf_candid may have passed through a float)
    dia = exact_int(aid.astype(str).str.split(":", n=1).str[-1].where(aid.notna()))
    bad = np.zeros(len(rows), bool)
    for miss, fld, why in ((aid.isna().to_numpy(), "alert_id", "alert has no alert_id"),
                           (dia.isna().to_numpy(), "alert_id", "alert_id does not end in a source id"),
                           (~np.isfinite(t), "ant_mjd", "alert has no ant_mjd")):
        for i in np.flatnonzero(is_det & miss & ~bad):
            fail(why, record=int(rec[i]), field=fld)
        bad |= is_det & miss

    # per-row object ids and locus columns
    loc_df = pd.DataFrame([{k: v for k, v in locus.items() if k not in _ROW_KEYS} for locus in loci])
    li = rows["_locus"].to_numpy()
    props = [locus.get("properties") or {} for locus in loci]
    ztf_oid = np.array([p.get("ztf_object_id") for p in props], dtype=object)[li]
    lsst_oid = np.array([next((p[k] for k in _LSST_OBJECT_KEYS if p.get(k) is not None), None) for p in props],
                        dtype=object)[li]
    locus_id = loc_df["locus_id"].to_numpy(object)[li] if "locus_id" in loc_df else np.full(len(rows), None)
    oid = np.where(survey == "lsst", lsst_oid, ztf_oid)
    oid = np.where(pd.isna(oid), locus_id, oid)
    if options.get("oid") is not None:
        oid = np.where(pd.isna(oid), options["oid"], oid)
    for i in np.flatnonzero(is_det & pd.isna(oid) & ~bad):
        fail("no object id: the rows come without their locus (give oid=)", record=int(rec[i]), field="locus_id")
    bad |= is_det & pd.isna(oid)
    keep = (is_det & ~bad) | is_lim
    rows, t, mag, lim, oid, survey, dia, rec, is_det, li = (
        rows[keep].reset_index(drop=True), t[keep], mag[keep], lim[keep], oid[keep], survey[keep],
        dia[keep].reset_index(drop=True), rec[keep], is_det[keep], li[keep])
    loc_ra = pd.to_numeric(loc_df.get("ra"), errors="coerce").to_numpy(float)[li] if "ra" in loc_df else np.nan
    loc_dec = pd.to_numeric(loc_df.get("dec"), errors="coerce").to_numpy(float)[li] if "dec" in loc_df else np.nan

    if "ztf_fid" in rows:
        band = pd.to_numeric(rows["ztf_fid"], errors="coerce").map(ZTF_FID_TO_BAND)
    else:
        band = pd.Series(None, index=rows.index, dtype=object)
    if "ant_passband" in rows:
        band = band.fillna(rows["ant_passband"].astype(object).where(rows["ant_passband"].notna())
                           .astype(str).str.lower().where(rows["ant_passband"].notna()))
    isdiffpos = rows["ztf_isdiffpos"].to_numpy(object) if "ztf_isdiffpos" in rows else np.ones(len(rows))
    isdiffpos = np.where(pd.isna(isdiffpos), "t", isdiffpos)
    flux, err = signed_flux(mag, _num(rows, "ant_magerr"), isdiffpos)
    ra = _num(rows, "ant_ra")
    dec = _num(rows, "ant_dec")
    ra = np.where(np.isfinite(ra), ra, loc_ra)
    dec = np.where(np.isfinite(dec), dec, loc_dec)
    drb = _num(rows, "ztf_drb")
    if "ztf_drbversion" in rows:
        v = rows["ztf_drbversion"]
        drb = np.where(v.notna().to_numpy() & (v.astype(str).str.strip() != "").to_numpy(), drb, np.nan)
    else:
        drb = np.full(len(rows), np.nan)
    rel, rel_src = pick_score(("drb", drb), ("rb", _num(rows, "ztf_rb")))

    base = pd.DataFrame({
        "diaSourceId": dia.fillna(-1).to_numpy(np.int64), "diaObjectId": oid, "ra": ra, "dec": dec,
        "midpointMjdTai": t, "band": band.to_numpy(object), "psfFlux": np.where(is_det, flux, np.nan),
        "psfFluxErr": np.where(is_det, err, mag_to_flux(lim) / 5.0), "mag": mag, "magErr": _num(rows, "ant_magerr"),
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        base["snr"] = np.abs(base["psfFlux"]) / base["psfFluxErr"]
    base["reliability"], base["reliabilitySource"] = rel, rel_src

    # locus columns, by locus index
    lcols = {"antares_locus_id": loc_df["locus_id"] if "locus_id" in loc_df else None}
    for name, col in (("tags", "antares_tags"), ("catalogs", "antares_catalogs")):
        vals = [locus.get(name) for locus in loci]
        lcols[col] = [",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for v in vals]
    cat = [locus.get("catalog_objects", locus.get("catalog_matches")) for locus in loci]
    lcols["antares_catalog_objects"] = [json.dumps(c, default=str) if c is not None else None for c in cat]
    for key in sorted({k for p in props for k in p}):
        lcols[f"antares_{key}"] = [_scalar(p.get(key)) for p in props]
    for key in ("htm16", "ra", "dec", "grav_wave_events", "watch_list_ids", "watch_object_ids"):
        if key in loc_df:
            lcols[f"antares_{key}"] = [_scalar(v) for v in loc_df[key]]
    locus_cols = pd.DataFrame(lcols).iloc[li].reset_index(drop=True)
    raw = rows.drop(columns=[c for c in ("_locus", "_mjd") if c in rows])

    out = []
    for sv in ("ztf", "lsst"):
        sel = survey == sv
        if not sel.any():
            continue
        det_idx = np.flatnonzero(sel & is_det)
        if len(det_idx) == 0:
            continue
        src = pd.concat([base.iloc[det_idx].reset_index(drop=True),
                         raw.iloc[det_idx].reset_index(drop=True),
                         locus_cols.iloc[det_idx].reset_index(drop=True)], axis=1)
        src = src.loc[:, ~src.columns.duplicated()]
        src["survey"] = sv
        src["broker"] = "antares"
        src["schemaVersion"] = f"antares.{sv}"
        keys, uniq = pd.factorize(pd.Series(src["diaObjectId"].astype(str).to_numpy()))
        hsel = np.flatnonzero(sel)
        hkeys = pd.Index(uniq).get_indexer(pd.Series(oid[hsel]).astype(str)).astype(np.int64)
        h = base.iloc[hsel].reset_index(drop=True)
        h["kind"] = np.where(is_det[hsel], "detection", "upper_limit")
        h["limitingMag"] = lim[hsel]
        h["alert_id"] = rows["alert_id"].to_numpy(object)[hsel] if "alert_id" in rows else None
        h.loc[~is_det[hsel], "diaSourceId"] = pd.NA
        r, a = attach_history(keys, src["midpointMjdTai"].to_numpy(float), hkeys, h["midpointMjdTai"].to_numpy(),
                              mode)
        history = h.iloc[r].reset_index(drop=True)
        history["_alert"] = a
        history["diaObjectId"] = src["diaObjectId"].to_numpy(object)[a]
        if sv == "lsst":
            history["diaObjectId"] = history["diaObjectId"].astype(str)
        objs = pd.DataFrame({"diaObjectId": src["diaObjectId"].to_numpy(), "ra": loc_ra[det_idx] if np.ndim(loc_ra)
                             else np.nan, "dec": loc_dec[det_idx] if np.ndim(loc_dec) else np.nan,
                             "antares_locus_id": src["antares_locus_id"].to_numpy(), "_alert": np.arange(len(src))})
        for c in ("antares_num_mag_values", "antares_num_alerts", "antares_newest_alert_observation_time",
                  "antares_oldest_alert_observation_time", "antares_tags"):
            if c in src:
                objs[c] = src[c].to_numpy()
        out.append(Frames(sources=src, history=history, objects=objs, cutouts={}, records=rec[det_idx]))
    return out


SPEC = FormatSpec(
    name="antares-json",
    description="ANTARES loci (antares-client Locus as a dict, or the HTTP API's JSON:API) with their alerts",
    identify=identify,
    read=read,
    suffixes=(".json",),
    survey="ztf",
    broker="antares",
    example='read_alerts("locus.json", format="antares-json")',
)
