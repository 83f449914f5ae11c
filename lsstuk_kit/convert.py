"""Survey database rows -> Rubin-schema alert packets.

A survey keeps detections, objects, forced photometry and exposures as
database tables. :func:`tables_to_alerts` JOINs each detection with its object's
earlier detections within 365 days (``prvDiaSources``), the object's forced
photometry in the same window (``prvDiaForcedSources``) and the object summary
as it stood at that detection (``diaObject``), and encodes alerts of the latest
Rubin schema in ``lsst-alert-packet``, one Avro file per visit.

Field mapping
-------------
The mapping from survey columns to Rubin fields is a plain table (``table``,
``survey_column``, ``rubin_field``, ``scale``: Rubin value = survey value x
scale). Copy one and edit it for your own survey::

    m = mapping_table("atlas")
    m.to_csv("my_survey_mapping.csv", index=False)

==========  =================  ====================  =====  =====================
table       ATLAS-like column  Pan-STARRS-like       scale  Rubin field
==========  =================  ====================  =====  =====================
detections  det_id             diffDetId                    diaSourceId
detections  atlas_object_id    objID                        diaObjectId
detections  expname            diffImageId                  visit
detections  mjd                obsTime                      midpointMjdTai
detections  filter             filter                       band
detections  ra, dec            ra, dec                      ra, dec
detections  uJy / duJy         psfFlux / psfFluxErr  (1)    psfFlux / psfFluxErr
detections  snr                psfSNR                       snr
detections  x, y               xPos, yPos                   x, y
detections  rb_pix             rbScore                      reliability
detections  dipole             dipoleFlag                   isDipole
forced      fp_id ...          forcedDiffId ...             diaForcedSourceId ...
objects     ra_avg, dec_avg    raMean, decMean              ra, dec
exposures   mag5sig, fwhm      limitingMag, fwhm            m5, seeing
==========  =================  ====================  =====  =====================

(1) to nJy: ATLAS uJy x 1e3, Pan-STARRS Jy x 1e9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ._encode import ListColumn, RecordEncoder, encode_container
from .schema import latest_schema_version, load_rubin_schema
from .surveys._avrotypes import collect_names
from .surveys.common import BANDS

__all__ = ["MAPPINGS", "mapping_table", "to_survey_tables", "from_survey_tables", "tables_to_alerts",
           "associate", "from_ddc", "HISTORY_DAYS"]

HISTORY_DAYS = 365.0

_ROWS = [
    # table, atlas column, panstarrs column, rubin field, atlas scale, panstarrs scale
    ("detections", "det_id", "diffDetId", "diaSourceId", 1, 1),
    ("detections", "atlas_object_id", "objID", "diaObjectId", 1, 1),
    ("detections", "expname", "diffImageId", "visit", 1, 1),
    ("detections", "mjd", "obsTime", "midpointMjdTai", 1, 1),
    ("detections", "filter", "filter", "band", 1, 1),
    ("detections", "ra", "ra", "ra", 1, 1),
    ("detections", "dec", "dec", "dec", 1, 1),
    ("detections", "uJy", "psfFlux", "psfFlux", 1e3, 1e9),
    ("detections", "duJy", "psfFluxErr", "psfFluxErr", 1e3, 1e9),
    ("detections", "snr", "psfSNR", "snr", 1, 1),
    ("detections", "x", "xPos", "x", 1, 1),
    ("detections", "y", "yPos", "y", 1, 1),
    ("detections", "rb_pix", "rbScore", "reliability", 1, 1),
    ("detections", "dipole", "dipoleFlag", "isDipole", 1, 1),
    ("forced", "fp_id", "forcedDiffId", "diaForcedSourceId", 1, 1),
    ("forced", "atlas_object_id", "objID", "diaObjectId", 1, 1),
    ("forced", "expname", "diffImageId", "visit", 1, 1),
    ("forced", "mjd", "obsTime", "midpointMjdTai", 1, 1),
    ("forced", "filter", "filter", "band", 1, 1),
    ("forced", "ra", "ra", "ra", 1, 1),
    ("forced", "dec", "dec", "dec", 1, 1),
    ("forced", "uJy", "psfFlux", "psfFlux", 1e3, 1e9),
    ("forced", "duJy", "psfFluxErr", "psfFluxErr", 1e3, 1e9),
    ("objects", "atlas_object_id", "objID", "diaObjectId", 1, 1),
    ("objects", "ra_avg", "raMean", "ra", 1, 1),
    ("objects", "dec_avg", "decMean", "dec", 1, 1),
    ("objects", "ndet", "nDetections", "nDiaSources", 1, 1),
    ("objects", "mjd_first", "firstObsTime", "firstDiaSourceMjdTai", 1, 1),
    ("objects", "mjd_last", "lastObsTime", "lastDiaSourceMjdTai", 1, 1),
    ("exposures", "expname", "diffImageId", "visit", 1, 1),
    ("exposures", "mjd", "obsTime", "midpointMjdTai", 1, 1),
    ("exposures", "filter", "filter", "band", 1, 1),
    ("exposures", "mag5sig", "limitingMag", "m5", 1, 1),
    ("exposures", "fwhm", "fwhm", "seeing", 1, 1),
    ("exposures", "ra", "raBore", "ra", 1, 1),
    ("exposures", "dec", "decBore", "dec", 1, 1),
    ("exposures", "field", "skycellId", "fieldId", 1, 1),
    ("exposures", "night", "night", "night", 1, 1),
    ("exposures", "rotation", "posAngle", "rotation", 1, 1),
]

MAPPINGS = {
    "atlas": pd.DataFrame([(t, a, r, sa) for t, a, _, r, sa, _ in _ROWS],
                          columns=["table", "survey_column", "rubin_field", "scale"]),
    "panstarrs": pd.DataFrame([(t, p, r, sp) for t, _, p, r, _, sp in _ROWS],
                              columns=["table", "survey_column", "rubin_field", "scale"]),
}

# simulator's internal names -> Rubin fields
_INTERNAL = {
    "detections": {"detId": "diaSourceId", "objectId": "diaObjectId", "expId": "visit",
                   "mjd": "midpointMjdTai"},
    "forced": {"forcedId": "diaForcedSourceId", "objectId": "diaObjectId", "expId": "visit",
               "mjd": "midpointMjdTai"},
    "objects": {"objectId": "diaObjectId", "nDetections": "nDiaSources", "firstMjd": "firstDiaSourceMjdTai",
                "lastMjd": "lastDiaSourceMjdTai"},
    "exposures": {"expId": "visit", "mjd": "midpointMjdTai"},
}


def mapping_table(style="atlas") -> pd.DataFrame:
    """A copy of a survey -> Rubin field mapping (``"atlas"`` or ``"panstarrs"``).

    Examples
    --------
    >>> from lsstuk_kit.convert import mapping_table
    >>> m = mapping_table("atlas")
    >>> m.query("table == 'detections' and rubin_field == 'psfFlux'")[["survey_column", "scale"]].values.tolist()
    [['uJy', 1000.0]]
    """
    if isinstance(style, pd.DataFrame):
        return style.copy()
    try:
        return MAPPINGS[style].copy()
    except KeyError:
        raise ValueError(f"unknown mapping {style!r}; known: {sorted(MAPPINGS)}") from None


def _check_mapping(m):
    need = {"table", "survey_column", "rubin_field", "scale"}
    if not need <= set(m.columns):
        raise ValueError(f"a mapping needs columns {sorted(need)}; got {list(m.columns)}")


def to_survey_tables(tables, style="atlas") -> dict:
    """Rename a simulation's tables to a survey's database columns (ATLAS- or Pan-STARRS-like).

    Columns without a mapping row keep their names.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.convert import to_survey_tables
    >>> from lsstuk_kit.simulate import simulate_survey
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> db = to_survey_tables(tables, "atlas")
    >>> sorted(db)
    ['detections', 'exposures', 'forced', 'objects']
    >>> {"det_id", "atlas_object_id", "uJy", "duJy", "rb_pix"} <= set(db["detections"].columns)
    True
    >>> bool(np.allclose(db["detections"]["uJy"] * 1e3, tables.detections["psfFlux"]))  # nJy -> uJy
    True
    """
    m = mapping_table(style)
    _check_mapping(m)
    out = {}
    for name in ("detections", "forced", "objects", "exposures"):
        df = getattr(tables, name).rename(columns=_INTERNAL[name]).copy()
        rows = m[m["table"] == name]
        for r in rows.itertuples():
            if r.rubin_field in df.columns:
                col = df.pop(r.rubin_field)
                df[r.survey_column] = col / r.scale if r.scale != 1 else col
        out[name] = df
    return out


def _OPTIONAL_DETECTION_COLUMNS(rows):  # noqa: N802 - reads like a constant at the call site
    """Detection columns a table may lack: the object id (then convert associates)."""
    return set(rows.loc[rows["rubin_field"] == "diaObjectId", "survey_column"])


def from_survey_tables(db: dict, mapping="atlas") -> dict:
    """Rename survey database tables to Rubin fields (and units) using a mapping table.

    Examples
    --------
    ATLAS-like tables (here from the simulator) back to Rubin names and nJy:

    >>> import numpy as np
    >>> from lsstuk_kit.convert import from_survey_tables, to_survey_tables
    >>> from lsstuk_kit.simulate import simulate_survey
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> db = to_survey_tables(tables, "atlas")
    >>> rubin = from_survey_tables(db, "atlas")
    >>> bool(np.allclose(rubin["detections"]["psfFlux"], tables.detections["psfFlux"]))
    True
    >>> rubin["detections"]["diaSourceId"].equals(db["detections"]["det_id"])
    True
    >>> from_survey_tables({"detections": db["detections"].drop(columns=["uJy"])})
    Traceback (most recent call last):
    ...
    ValueError: table 'detections' lacks mapped columns ['uJy']
    """
    m = mapping_table(mapping)
    _check_mapping(m)
    out = {}
    for name, df in db.items():
        rows = m[m["table"] == name]
        df = df.copy()
        missing = [c for c in rows["survey_column"] if c not in df.columns]
        missing = [c for c in missing if not (name == "detections" and c in _OPTIONAL_DETECTION_COLUMNS(rows))]
        if name in ("detections", "forced") and missing:
            raise ValueError(f"table {name!r} lacks mapped columns {missing}")
        for r in rows.itertuples():
            if r.survey_column in df.columns:
                col = df.pop(r.survey_column)
                df[r.rubin_field] = col * r.scale if r.scale != 1 else col
        out[name] = df
    return out


def associate(ra, dec, mjd, radius_arcsec=None, *, group=None, first_id=10**15 + 1):
    """Associate detections into objects: friends of friends within a radius.

    Two detections belong to the same object when a chain of detections links
    them, each step shorter than the smaller of the two detections' radii. By
    default the radius comes from :func:`lsstuk_kit.simulate.association_radius`:
    1 arcsec at high galactic latitude, shrinking in dense star fields (down to
    0.4 arcsec) so that neighbouring stars are not merged.

    Parameters
    ----------
    ra, dec : array
        Positions (deg).
    mjd : array
        Times; objects are numbered in order of their first detection.
    radius_arcsec : float or array, optional
        Association radius, per detection or for all.
    group : array, optional
        Associate only within each group (e.g. a field), which is faster.
    first_id : int
        Id of the first object.

    Returns
    -------
    numpy.ndarray
        Object id per detection.

    Examples
    --------
    >>> from lsstuk_kit.convert import associate
    >>> ids = associate([10.0, 10.0 + 0.3 / 3600, 10.01], [-30.0, -30.0, -30.0], [1.0, 2.0, 1.5], 1.0)
    >>> (ids - ids.min()).tolist()
    [0, 0, 1]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    mjd = np.asarray(mjd, float)
    n = len(ra)
    if radius_arcsec is None:
        from .simulate.population import stellar_density
        from .simulate.survey import association_radius

        radius_arcsec = association_radius(stellar_density(ra, dec))
    radius = np.broadcast_to(np.asarray(radius_arcsec, float), (n,))
    groups = {0: np.arange(n)} if group is None else pd.Series(np.arange(n)).groupby(np.asarray(group)).indices
    labels_all = np.empty(n, np.int64)
    first_all = []
    offset = 0
    for idx in groups.values():
        idx = np.asarray(idx)
        r, d = np.radians(ra[idx]), np.radians(dec[idx])
        xyz = np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])
        chord = 2 * np.sin(np.radians(radius[idx] / 3600.0) / 2)
        pairs = cKDTree(xyz).query_pairs(chord.max(), output_type="ndarray")
        if len(pairs):
            dist = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
            pairs = pairs[dist <= np.minimum(chord[pairs[:, 0]], chord[pairs[:, 1]])]
        m = len(idx)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
        k, labels = connected_components(graph, directed=False)
        first = np.full(k, np.inf)
        np.minimum.at(first, labels, mjd[idx])
        labels_all[idx] = labels + offset
        first_all.append(first)
        offset += k
    first = np.concatenate(first_all) if first_all else np.zeros(0)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return first_id + rank[labels_all]


def from_ddc(paths, *, radius_arcsec=2.0, query=None) -> dict:
    """ATLAS ``.ddc`` tables -> survey tables (ATLAS-like columns) for :func:`tables_to_alerts`.

    Detections of all the exposures are associated into objects by position
    (:func:`associate`, friends of friends within ``radius_arcsec``), and each object gets
    an ATLAS-style 19-digit id from its mean position
    (:func:`lsstuk_kit.surveys.atlas.atlas_object_id`, the last two digits counting objects
    that share a name).

    Parameters
    ----------
    paths : path, text, or list of them
        ``.ddc`` files (or their text), one per exposure.
    radius_arcsec : float
        Association radius (ATLAS pixels are 1.86 arcsec).
    query : str, optional
        A :meth:`pandas.DataFrame.query` on the detection columns of :func:`read_ddc`
        keeping rows before association, e.g. ``"pno < 500 and pcr < 500 and dup >= 0"``.

    Returns
    -------
    dict of DataFrame
        ``detections``: ``det_id`` (:func:`~lsstuk_kit.surveys.atlas.detection_id`),
        ``atlas_object_id``, ``expname`` (the exposure as an integer,
        :func:`~lsstuk_kit.surveys.atlas.exposure_code`; its name is in ``obs``), ``mjd``,
        ``filter``, ``ra``, ``dec``, ``uJy``/``duJy`` (from ``mag``/``dmag``, negative for
        negative ``mag``), ``snr``, ``x``, ``y``, ``rb_pix`` (the ML scores' real share,
        :func:`~lsstuk_kit.surveys.atlas.ml_reliability`), ``dipole`` (False: ATLAS flags
        none), plus the .ddc columns. ``exposures``: ``expname``, ``obs``, ``mjd``,
        ``filter``, ``mag5sig``, ``fwhm`` (arcsec: ``sqrt(FWMAJ * FWMIN) * SCALE``, as the
        header gives them), ``ra``/``dec`` (pointing), ``field`` (``OBJ``), ``night``,
        ``rotation`` (``PA``). ``objects``: ``atlas_object_id``, ``ra_avg``, ``dec_avg``,
        ``ndet``, ``mjd_first``, ``mjd_last``.

    Examples
    --------
    >>> from lsstuk_kit.convert import from_ddc
    >>> head = "# FILT= o\\n# MJD= {}\\n# RA Dec mag dmag x y major minor phi det chi/N " \\
    ...        "Pvr Ptr Pmv Pkn Pno Pbn Pcr Pxt Psc Dup WPflx dflx\\n"
    >>> row = "77.18320 70.47569 18.691 0.163 4968 3150 2.3 2.0 41 0 1.9 586 300 0 0 31 0 0 0 17 0 -710 2.9\\n"
    >>> db = from_ddc([head.format(58764.51) + row, head.format(58764.53) + row])
    >>> db["detections"]["atlas_object_id"].nunique(), len(db["exposures"])
    (1, 2)
    """
    from .formats.atlas_ddc import _expname, read_ddc
    from .surveys import atlas as _atlas

    if isinstance(paths, (str, bytes, Path)) or not hasattr(paths, "__iter__"):
        paths = [paths]
    dets, exps = [], []
    for k, p in enumerate(paths):
        header, det = read_ddc(p)
        label = p if isinstance(p, (str, Path)) and "\n" not in str(p) else f"exposure{k}"
        obs = _expname(header, str(label))
        if "MJD" not in header:
            raise ValueError(f"{label}: the .ddc header gives no MJD")
        det = det.assign(row=np.arange(1, len(det) + 1))
        if query:
            det = det.query(query)
        code = int(_atlas.exposure_code([obs])[0])
        det = det.assign(obs=obs, expname=code, mjd=float(header["MJD"]), filter=str(header.get("FILT", "")).lower(),
                         det_id=_atlas.detection_id(obs, det["row"].to_numpy()) if len(det) else np.zeros(0, np.int64))
        dets.append(det)
        fwhm = np.nan
        if all(isinstance(header.get(k), (int, float)) for k in ("FWMAJ", "FWMIN")):
            fwhm = float(np.sqrt(header["FWMAJ"] * header["FWMIN"]) * header.get("SCALE", 1.0))
        exps.append({"expname": code, "obs": obs, "mjd": float(header["MJD"]),
                     "filter": str(header.get("FILT", "")).lower(), "mag5sig": header.get("MAG5SIG", np.nan),
                     "fwhm": fwhm, "ra": header.get("RA", np.nan), "dec": header.get("DEC", np.nan),
                     "field": header.get("OBJ"), "night": int(np.floor(float(header["MJD"]))),
                     "rotation": header.get("PA", np.nan), "texp": header.get("TEXP", np.nan),
                     "magzpt": header.get("MAGZPT", np.nan)})
    det = pd.concat(dets, ignore_index=True) if dets else pd.DataFrame()
    exposures = pd.DataFrame(exps)
    if len(exposures) and exposures["expname"].duplicated().any():
        raise ValueError(f"exposures given twice: {sorted(exposures.loc[exposures['expname'].duplicated(), 'obs'])}")
    if not len(det):
        raise ValueError("the .ddc tables hold no detections (after the query)")
    mag = det["mag"].to_numpy(float)
    ujy = 10.0 ** ((23.9 - np.abs(mag)) / 2.5)
    dujy = ujy * det["dmag"].to_numpy(float) * np.log(10.0) / 2.5
    det["uJy"] = np.where(mag < 0, -ujy, ujy)
    det["duJy"] = dujy
    with np.errstate(divide="ignore", invalid="ignore"):
        det["snr"] = ujy / dujy
    det["rb_pix"] = _atlas.ml_reliability(det)
    det["dipole"] = False
    # objects: friends of friends across exposures, named like ATLAS from the mean position
    group = associate(det["ra"], det["dec"], det["mjd"], radius_arcsec)
    g = det.assign(_g=group).groupby("_g", sort=True)
    summary = pd.DataFrame({"ra_avg": g["ra"].mean(), "dec_avg": g["dec"].mean(), "ndet": g.size(),
                            "mjd_first": g["mjd"].min(), "mjd_last": g["mjd"].max()})
    base = _atlas.atlas_object_id(summary["ra_avg"].to_numpy(), summary["dec_avg"].to_numpy())
    dup = pd.Series(base).groupby(base).cumcount().to_numpy()
    if dup.size and dup.max() > 99:
        raise ValueError("more than 100 objects share one ATLAS name cell (0.01 s x 0.1 arcsec)")
    summary["atlas_object_id"] = base + dup
    det["atlas_object_id"] = summary["atlas_object_id"].reindex(group).to_numpy()
    objects = summary.reset_index(drop=True)[["atlas_object_id", "ra_avg", "dec_avg", "ndet", "mjd_first",
                                              "mjd_last"]]
    det = det.sort_values(["mjd", "det_id"], kind="stable").reset_index(drop=True)
    return {"detections": det, "exposures": exposures, "objects": objects}


def _window_items(keys_sorted, group_start, alert_keys, alert_upper, days):
    """Indices into a sorted table of rows with key in [alert - days, alert_upper)."""
    lo = np.searchsorted(keys_sorted, alert_keys - days, side="left")
    lo = np.maximum(lo, group_start)
    hi = alert_upper
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return counts, np.arange(total) + starts


def _history_columns(df, idx, fields):
    return {f: df[f].to_numpy()[idx] for f in fields if f in df.columns}


def tables_to_alerts(db: dict, out=None, *, mapping="atlas", version=None, stamps=None, visits=None,
                     chunk=20000, codec="null", progress=False, history_days=HISTORY_DAYS):
    """Build Rubin alerts from survey tables; write one Avro file per visit or return them.

    Parameters
    ----------
    db : dict of DataFrame
        ``detections``, ``forced`` (optional), ``objects`` (optional) with the
        survey's column names (see the mapping table).
    out : path, optional
        Folder for ``visit_<visit>.avro`` files (plus ``index.csv``). Without it
        a list of ``(visit, mjd, container bytes)`` is returned.
    mapping : str or DataFrame
        ``"atlas"``, ``"panstarrs"`` or your own mapping table.
    version : (int, int), optional
        Rubin schema version (default: the latest in ``lsst-alert-packet``).
    stamps : callable, optional
        ``stamps(diaSource_frame) -> {"cutoutScience": FixedBytes, ...}``; without
        it alerts carry no cutouts.
    visits : array of int, optional
        Only make alerts for detections on these visits (the history still uses
        every earlier row).
    chunk : int
        Alerts encoded per pass.
    codec : str
        Avro codec of the files (``null`` or ``deflate``).
    progress : bool
        Progress bar over chunks.
    history_days : float
        How far back ``prvDiaSources`` and ``prvDiaForcedSources`` reach (Rubin:
        365 days). ``0`` makes "lite" alerts with empty histories.

    Returns
    -------
    pandas.DataFrame or list
        With ``out``: the index of files written (visit, mjd, n_alerts, file).

    Examples
    --------
    >>> import tempfile
    >>> from lsstuk_kit import read_alerts
    >>> from lsstuk_kit.convert import tables_to_alerts, to_survey_tables
    >>> from lsstuk_kit.simulate import simulate_survey
    >>> db = to_survey_tables(simulate_survey(1, seed=1, fields=[15], scale=0.5), "atlas")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     index = tables_to_alerts(db, out)
    ...     batch = read_alerts(out)
    >>> index[["visit", "n_alerts"]].values.tolist()
    [[6110000000, 2], [6110000001, 2], [6110000002, 3]]
    >>> len(batch), batch.sources["survey"].unique().tolist()
    (7, ['lsst'])

    Without ``out``, the Avro files come back in memory, one per visit:

    >>> visit, mjd, data = tables_to_alerts(db)[-1]
    >>> visit, len(read_alerts(data))
    (6110000002, 3)
    """
    if not np.isfinite(history_days) or history_days < 0:
        raise ValueError(f"history_days must be a number of days >= 0 (0: no history), not {history_days!r}")
    rub = from_survey_tables(db, mapping)
    if "diaObjectId" not in rub["detections"]:
        # rows not yet associated into objects: do it here (radius shrinking in dense star fields)
        d0 = rub["detections"]
        rub["detections"] = d0.assign(diaObjectId=associate(d0["ra"], d0["dec"], d0["midpointMjdTai"]))
        if rub.get("forced") is not None and "diaObjectId" not in rub["forced"]:
            rub.pop("forced")
    det = rub["detections"].sort_values(["midpointMjdTai", "diaSourceId"], kind="stable").reset_index(drop=True)
    forced = rub.get("forced")
    major, minor = version or latest_schema_version()
    schema = load_rubin_schema(major, minor)
    names = collect_names(schema)
    encoder = RecordEncoder(schema, names)
    schema_json = json.dumps(_plain(schema))

    # ---- object history order: (object, time)
    codes, uniq = pd.factorize(det["diaObjectId"], sort=True)
    t = det["midpointMjdTai"].to_numpy(float)
    t0 = float(t.min()) - 1.0
    big = 1e6
    key = codes * big + (t - t0)
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    rank = np.empty(len(det), np.int64)
    rank[order] = np.arange(len(det))
    gstart_sorted = np.searchsorted(key_sorted, codes[order] * big)  # first row of each object's group
    gstart = np.empty(len(det), np.int64)
    gstart[order] = gstart_sorted
    det_sorted = det.iloc[order].reset_index(drop=True)

    # ---- object summary as it stood at each detection (cumulative over the object's rows)
    summary = _running_summary(det_sorted)
    summary = summary.iloc[rank].reset_index(drop=True)

    # ---- forced photometry, sorted by (object, time)
    if forced is not None and len(forced):
        fcode = pd.Index(uniq).get_indexer(forced["diaObjectId"])
        fk = np.where(fcode >= 0, fcode * big + (forced["midpointMjdTai"].to_numpy(float) - t0), -1)
        forder = np.argsort(fk, kind="stable")
        fkey_sorted = fk[forder]
        forced_sorted = forced.iloc[forder].reset_index(drop=True)
    else:
        forced_sorted = None

    sel = np.arange(len(det)) if visits is None else np.flatnonzero(det["visit"].isin(np.atleast_1d(visits)))
    src_fields = _record_field_names(schema, names, "diaSource")
    fsrc_fields = _record_field_names(schema, names, "prvDiaForcedSources")
    obj_fields = _record_field_names(schema, names, "diaObject")
    results = []
    index_rows = []
    # chunks of about `chunk` alerts, cut only between visits (one file per visit)
    vis_sel = det["visit"].to_numpy()[sel]
    change = np.flatnonzero(np.diff(vis_sel)) + 1
    cuts = np.unique(change[np.searchsorted(change, np.arange(chunk, len(sel), chunk))
                            .clip(0, max(len(change) - 1, 0))]) if len(change) else np.array([], int)
    chunks = np.split(sel, cuts)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="alerts", unit="chunk")
    for part in chunks:
        n = len(part)
        if n == 0:
            continue
        d = det.iloc[part]
        src = _source_columns(d, src_fields)
        # previous detections: rows of the same object before this one, within history_days
        counts, items = _window_items(key_sorted, gstart[part], key[part], rank[part], history_days)
        prv = _source_columns(det_sorted.iloc[items], src_fields)
        cols = {
            "diaSourceId": d["diaSourceId"].to_numpy(np.int64),
            "diaSource": src,
            "prvDiaSources": ListColumn(prv, counts),
            "diaObject": {k: v for k, v in _object_columns(summary.iloc[part], d).items() if k in obj_fields},
        }
        if forced_sorted is not None:
            upper = np.searchsorted(fkey_sorted, key[part], side="left")
            fstart = np.searchsorted(fkey_sorted, codes[part] * big, side="left")
            fcounts, fitems = _window_items(fkey_sorted, fstart, key[part], upper, history_days)
            fcols = _forced_columns(forced_sorted.iloc[fitems], fsrc_fields)
            cols["prvDiaForcedSources"] = ListColumn(fcols, fcounts)
        if stamps is not None:
            cols.update(stamps(d))
        piece = encoder.encode(cols, n)
        ends = np.cumsum(piece.lengths)
        starts = ends - piece.lengths
        vis = d["visit"].to_numpy()
        bounds = np.flatnonzero(np.diff(vis)) + 1
        for a, b in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [n]])):
            sub = type(piece)(piece.flat[starts[a]:ends[b - 1]], piece.lengths[a:b])
            data = encode_container(schema_json, sub, records_per_block=50, codec=codec,
                                    sync=_sync(int(vis[a])))
            mjd = float(d["midpointMjdTai"].iloc[a])
            if out is None:
                results.append((int(vis[a]), mjd, data))
            else:
                folder = Path(out)
                folder.mkdir(parents=True, exist_ok=True)
                name = f"visit_{int(vis[a]):015d}.avro"
                path = folder / name
                mode = "ab" if path.exists() and name in {r[3] for r in index_rows} else "wb"
                if mode == "ab":
                    raise RuntimeError(f"visit {vis[a]} split across chunks; sort detections by time")
                with open(path, mode) as fh:
                    fh.write(data)
                index_rows.append((int(vis[a]), mjd, b - a, name))
    if out is None:
        return results
    idx = pd.DataFrame(index_rows, columns=["visit", "mjd", "n_alerts", "file"])
    idx.to_csv(Path(out) / "index.csv", index=False)
    return idx


def _sync(visit):
    import hashlib

    return hashlib.sha256(f"lsstuk_kit visit {visit}".encode()).digest()[:16]


def _plain(schema):
    """A JSON-serialisable copy of a parsed schema."""
    import fastavro.schema

    return json.loads(fastavro.schema.to_parsing_canonical_form(schema))


def _record_field_names(schema, names, field_name):
    from .surveys._avrotypes import record_fields

    for f in schema["fields"]:
        if f["name"] == field_name:
            return {s["name"] for s in record_fields(f["type"], names)}
    return set()


def _source_columns(d, fields):
    n = len(d)
    cols = {}
    g = d.get
    for name in ("diaSourceId", "visit", "diaObjectId"):
        cols[name] = d[name].to_numpy(np.int64)
    cols["midpointMjdTai"] = d["midpointMjdTai"].to_numpy(float)
    cols["ra"] = d["ra"].to_numpy(float)
    cols["dec"] = d["dec"].to_numpy(float)
    cols["band"] = d["band"].to_numpy(dtype=object)
    cols["psfFlux"] = d["psfFlux"].to_numpy(float)
    cols["psfFluxErr"] = d["psfFluxErr"].to_numpy(float)
    snr = g("snr")
    cols["snr"] = snr.to_numpy(float) if snr is not None else cols["psfFlux"] / cols["psfFluxErr"]
    for name in ("x", "y"):
        v = g(name)
        cols[name] = v.to_numpy(float) if v is not None else np.zeros(n)
    cols["detector"] = (np.abs(cols["diaSourceId"]) % 189).astype(np.int64)
    cols["timeProcessedMjdTai"] = cols["midpointMjdTai"] + 60.0 / 86400.0
    if g("reliability") is not None:
        cols["reliability"] = d["reliability"].to_numpy(float)
    if g("isDipole") is not None:
        cols["isDipole"] = d["isDipole"].to_numpy(bool)
    cols["isNegative"] = cols["psfFlux"] < 0
    cols["apFlux"] = cols["psfFlux"]
    cols["apFluxErr"] = cols["psfFluxErr"] * 1.1
    pos_err = 0.05 / 3600.0 + np.zeros(n)
    cols["raErr"] = pos_err
    cols["decErr"] = pos_err
    # survey columns already named like diaSource fields (e.g. the simulator's pixel flags, moments,
    # template/science fluxes, isNegative) pass through, overriding the defaults above
    for name in fields:
        if name in _SET_FROM_MAPPING or name not in d.columns:
            continue
        v = d[name].to_numpy()
        if v.dtype.kind == "f":
            nan = np.isnan(v)
            v = np.ma.MaskedArray(np.nan_to_num(v), nan) if nan.any() else v
        cols[name] = v
    return {k: v for k, v in cols.items() if k in fields}


#: diaSource fields set from the mapping table above (never overridden by a same-named column)
_SET_FROM_MAPPING = {"diaSourceId", "visit", "diaObjectId", "midpointMjdTai", "ra", "dec", "band", "psfFlux",
                     "psfFluxErr", "snr", "x", "y", "reliability", "isDipole", "detector", "timeProcessedMjdTai"}


def _forced_columns(f, fields):
    cols = {
        "diaForcedSourceId": f["diaForcedSourceId"].to_numpy(np.int64),
        "diaObjectId": f["diaObjectId"].to_numpy(np.int64),
        "ra": f["ra"].to_numpy(float), "dec": f["dec"].to_numpy(float),
        "visit": f["visit"].to_numpy(np.int64),
        "detector": (f["diaForcedSourceId"].to_numpy(np.int64) % 189),
        "midpointMjdTai": f["midpointMjdTai"].to_numpy(float),
        "band": f["band"].to_numpy(dtype=object),
        "psfFlux": f["psfFlux"].to_numpy(float), "psfFluxErr": f["psfFluxErr"].to_numpy(float),
        "timeProcessedMjdTai": f["midpointMjdTai"].to_numpy(float) + 60.0 / 86400.0,
    }
    return {k: v for k, v in cols.items() if k in fields}


def _running_summary(ds):
    """Cumulative object statistics along each object's time-ordered detections."""
    g = ds.groupby("diaObjectId", sort=False)
    out = pd.DataFrame(index=ds.index)
    out["nDiaSources"] = g.cumcount() + 1
    out["firstDiaSourceMjdTai"] = g["midpointMjdTai"].cummin()
    out["lastDiaSourceMjdTai"] = ds["midpointMjdTai"]
    n = out["nDiaSources"].to_numpy(float)
    out["ra"] = g["ra"].cumsum().to_numpy() / n
    out["dec"] = g["dec"].cumsum().to_numpy() / n
    flux = ds["psfFlux"].to_numpy(float)
    for b in BANDS:
        m = (ds["band"].to_numpy() == b)
        tmp = pd.DataFrame({"o": ds["diaObjectId"].to_numpy(), "f": np.where(m, flux, 0.0), "c": m.astype(float),
                            "fmax": np.where(m, flux, -np.inf), "fmin": np.where(m, flux, np.inf)})
        gg = tmp.groupby("o", sort=False)
        cnt = gg["c"].cumsum().to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{b}_psfFluxMean"] = np.where(cnt > 0, gg["f"].cumsum().to_numpy() / cnt, np.nan)
        out[f"{b}_psfFluxNdata"] = cnt.astype(np.int64)
        out[f"{b}_psfFluxMax"] = np.where(cnt > 0, gg["fmax"].cummax().to_numpy(), np.nan)
        out[f"{b}_psfFluxMin"] = np.where(cnt > 0, gg["fmin"].cummin().to_numpy(), np.nan)
    return out


def _object_columns(s, d):
    cols = {"diaObjectId": d["diaObjectId"].to_numpy(np.int64),
            "validityStartMjdTai": d["midpointMjdTai"].to_numpy(float)}
    for c in s.columns:
        v = s[c].to_numpy()
        if c.endswith("Ndata") or c == "nDiaSources":
            cols[c] = v.astype(np.int64)
        elif v.dtype.kind == "f":
            nan = np.isnan(v)
            cols[c] = np.ma.MaskedArray(np.nan_to_num(v), nan) if nan.any() else v
        else:
            cols[c] = v
    return cols


def write_visits(results, folder):
    """Write ``(visit, mjd, bytes)`` results from :func:`tables_to_alerts` to a folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for visit, mjd, data in results:
        name = f"visit_{visit:015d}.avro"
        (folder / name).write_bytes(data)
        rows.append((visit, mjd, 0, name))
    return pd.DataFrame(rows, columns=["visit", "mjd", "n_alerts", "file"])
