"""The tables a Lasair filter can join to ``objects``, built from the kit's own data.

Names and columns follow Lasair's schema 11.0 (``sherlock_classifications.py``, ``crossmatch_tns.py``,
``watchlist_hits.py``, ``area_hits.py``, ``annotations.py``). Every table is keyed by ``diaObjectId``
and holds one row per object (watchlist hits: per object and cone), as Lasair's are.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd

#: The kit's context rules (:data:`lsstuk_kit.context.CONTEXTS`) as Sherlock classifications. The kit has no
#: AGN/QSO catalogue, so Sherlock's ``AGN`` never comes out of it (an object on a galaxy's core is ``NT``).
SHERLOCK_FROM_CONTEXT = {"BS": "BS", "CV": "CV", "UN": "UNCLEAR", "VS": "VS", "NT": "NT", "SN": "SN",
                         "OR": "ORPHAN"}
#: catalogue object type of the matched source, per rule
_MATCH_TYPE = {"BS": "star", "CV": "cv", "UN": "star", "VS": "star", "NT": "galaxy", "SN": "galaxy"}
#: Lasair's TNS watchlist id in this offline copy (a deployment setting in Lasair; no user watchlist uses it)
TNS_WATCHLIST_ID = 0
#: Lasair's TNS cross-match radius (arcsec; ``poll_tns.py``)
TNS_RADIUS_ARCSEC = 3.0

SHERLOCK_COLUMNS = ("diaObjectId", "classification", "association_type", "catalogue_table_name",
                    "catalogue_object_id", "catalogue_object_type", "raDeg", "decDeg", "separationArcsec",
                    "northSeparationArcsec", "eastSeparationArcsec", "physical_separation_kpc", "direct_distance",
                    "distance", "best_distance", "best_distance_flag", "best_distance_source", "z", "photoZ",
                    "photoZErr", "Mag", "MagFilter", "MagErr", "classificationReliability", "major_axis_arcsec",
                    "annotator", "additional_output", "description", "summary")
TNS_COLUMNS = ("ra", "decl", "tns_name", "tns_prefix", "disc_mag", "disc_mag_filter", "type", "z", "hostz",
               "host_name", "ext_catalogs", "disc_int_name", "disc_date", "lastmodified_date", "sender",
               "reporters", "source_group", "htm16", "lasairmodified_date")
ANNOTATION_COLUMNS = ("annotationID", "diaObjectId", "topic", "version", "timestamp", "classification",
                      "explanation", "classdict", "url")


def _positions(objects):
    """(diaObjectId, ra, dec) arrays of an objects table (index or column ``diaObjectId``; ``decl`` or ``dec``)."""
    df = objects.reset_index() if "diaObjectId" not in objects.columns else objects
    dec = df["decl"] if "decl" in df else df["dec"]
    return df["diaObjectId"].to_numpy(np.int64), df["ra"].to_numpy(float), dec.to_numpy(float)


def sherlock_classifications(objects, *, context=None, **catalogs) -> pd.DataFrame:
    """Lasair's ``sherlock_classifications`` from the kit's context classification of each object.

    Parameters
    ----------
    objects : DataFrame
        ``diaObjectId`` (index or column), ``ra`` and ``decl`` (or ``dec``), e.g. :func:`lasair_objects`.
    context : DataFrame, optional
        A ready :func:`lsstuk_kit.context.classify_context` result aligned with ``objects``' rows.
    **catalogs
        Passed to :func:`~lsstuk_kit.context.classify_context` (``stars``, ``galaxies``, ``cvs``,
        ``bright_stars``, radii). A ``z`` column of ``galaxies`` gives the host redshift (``z``) and a
        ``distance`` column (Mpc) ``best_distance``; ``a_arcsec`` gives ``major_axis_arcsec``.

    Returns
    -------
    DataFrame
        One row per object with Sherlock's columns; ``classification`` and ``association_type`` from
        :data:`SHERLOCK_FROM_CONTEXT`. Columns the kit has nothing for (north/east separations, photometric
        redshifts, magnitudes, ...) are NULL.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair import sherlock_classifications
    >>> objs = pd.DataFrame({"diaObjectId": [1, 2], "ra": [10.0, 50.0], "decl": [-30.0, 10.0]})
    >>> gal = pd.DataFrame({"id": ["G1"], "ra": [10.0], "dec": [-30.0], "a_arcsec": [10.0], "b_arcsec": [5.0],
    ...                     "pa": [0.0], "z": [0.05]})
    >>> sh = sherlock_classifications(objs, galaxies=gal, bright_stars=False)
    >>> sh["classification"].tolist(), sh["catalogue_object_id"].iloc[0], float(sh["z"].iloc[0])
    (['NT', 'ORPHAN'], 'G1', 0.05)
    """
    from ..context import classify_context

    oid, ra, dec = _positions(objects)
    if context is None:
        catalogs.setdefault("bright_stars", True)
        context = classify_context(pd.DataFrame({"ra": ra, "dec": dec}), **catalogs)
    rule = context["rule"].astype(str).to_numpy()
    cls = np.array([SHERLOCK_FROM_CONTEXT.get(r, "UNCLEAR") for r in rule], dtype=object)
    out = pd.DataFrame({c: pd.Series([None] * len(oid), dtype=object) for c in SHERLOCK_COLUMNS})
    out["diaObjectId"] = oid
    out["classification"] = cls
    out["association_type"] = cls
    match = context["match_id"].to_numpy(dtype=object)
    out["catalogue_object_id"] = match
    out["catalogue_table_name"] = context["match_catalog"].to_numpy(dtype=object)
    out["catalogue_object_type"] = np.array([_MATCH_TYPE.get(r) for r in rule], dtype=object)
    out["raDeg"], out["decDeg"] = ra, dec
    out["separationArcsec"] = context["sep_arcsec"].to_numpy(float)
    for c in ("northSeparationArcsec", "eastSeparationArcsec", "physical_separation_kpc", "direct_distance",
              "distance", "best_distance", "z", "photoZ", "photoZErr", "Mag", "MagErr", "major_axis_arcsec"):
        out[c] = np.nan
    out["classificationReliability"] = pd.array([None] * len(oid), dtype="Int64")
    gal = catalogs.get("galaxies")
    on_galaxy = np.isin(rule, ["NT", "SN"])
    if gal is not None and len(gal) and on_galaxy.any():
        key = "id" if "id" in gal else "name"
        g = gal.assign(_key=gal[key].astype(str)).drop_duplicates("_key").set_index("_key")
        ids = pd.Series(match).where(on_galaxy).astype(object)
        for src, dst in (("z", "z"), ("distance", "best_distance"), ("a_arcsec", "major_axis_arcsec")):
            if src in g:
                vals = pd.to_numeric(g[src], errors="coerce").reindex(ids.astype(str)).to_numpy(float)
                out[dst] = np.where(on_galaxy, vals, np.nan)
        if "distance" in g:
            out["best_distance_flag"] = np.where(np.isfinite(out["best_distance"]), "dd", None)
        with np.errstate(invalid="ignore"):
            has_z = np.isfinite(out["z"].to_numpy(float)) & ~np.isfinite(out["best_distance"].to_numpy(float))
        if has_z.any():
            from .features import distance_modulus

            dl = 10 ** ((distance_modulus(out.loc[has_z, "z"].to_numpy(float)) + 5) / 5) / 1e6
            out.loc[has_z, "best_distance"] = dl
            out.loc[has_z, "best_distance_flag"] = "sz"
    out["summary"] = [f"{c} ({context['context'].iloc[i]})" for i, c in enumerate(cls)]
    out["annotator"] = "lsstuk_kit.context.classify_context"
    return out


def _degrees(values, hours):
    """Degrees from numbers or text, each value decimal degrees or sexagesimal (hours for RA)."""
    v = pd.Series(values).reset_index(drop=True)
    num = pd.to_numeric(v, errors="coerce")
    out = num.to_numpy(float).copy()
    text = num.isna() & v.notna()
    if text.any():
        import astropy.units as u
        from astropy.coordinates import Angle

        out[text.to_numpy()] = Angle(v[text].astype(str).tolist(), unit=u.hourangle if hours else u.deg).degree
    return out


def crossmatch_tns(catalog) -> pd.DataFrame:
    """Lasair's ``crossmatch_tns`` table from a TNS-like catalogue (a path to a CSV or a DataFrame).

    Recognised columns (case-insensitive): ``name``/``IAUID``/``tns_name`` (a leading ``SN``/``AT``/``TDE`` ...
    prefix is split off into ``tns_prefix``), ``ra``/``RA`` and ``dec``/``Dec`` (degrees or sexagesimal),
    ``type``, ``redshift``/``z``, ``ZTFID`` (into ``disc_int_name``). Numbers are degrees; text is sexagesimal
    (RA in hours). The ZTF Bright Transient Survey table
    (``ZTFBTS_TransientTable.csv``) reads as it is.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair import crossmatch_tns
    >>> t = crossmatch_tns(pd.DataFrame({"name": ["SN2024abc"], "ra": ["08:13:16.95"], "dec": ["+22:38:53.9"],
    ...                                  "type": ["SN Ia"], "redshift": [0.05]}))
    >>> t[["tns_prefix", "tns_name", "type", "z"]].values.tolist()
    [['SN', '2024abc', 'SN Ia', 0.05]]
    >>> round(float(t["ra"].iloc[0]), 4)
    123.3206
    """
    df = pd.read_csv(catalog) if not isinstance(catalog, pd.DataFrame) else catalog
    low = {c.lower(): c for c in df.columns}

    def col(*names):
        for nm in names:
            if nm in low:
                return df[low[nm]]
        return None

    name = col("iauid", "tns_name", "name")
    ra, dec = col("ra", "raj2000", "ra_deg"), col("dec", "decl", "decj2000", "dec_deg")
    if name is None or ra is None or dec is None:
        raise ValueError(f"a TNS-like catalogue needs name, ra and dec columns; got {list(df.columns)}")
    parts = name.astype(str).str.extract(r"^\s*([A-Za-z]*)\s*(\d{4}\w*)\s*$")
    out = pd.DataFrame({c: pd.Series([None] * len(df), dtype=object) for c in TNS_COLUMNS})
    out["ra"] = _degrees(ra, hours=True)
    out["decl"] = _degrees(dec, hours=False)
    out["tns_name"] = parts[1].where(parts[1].notna(), name.astype(str)).to_numpy(dtype=object)
    out["tns_prefix"] = parts[0].where(parts[0].fillna("") != "", None).to_numpy(dtype=object)
    for src, dst in ((("type",), "type"), (("ztfid", "disc_int_name"), "disc_int_name")):
        c = col(*src)
        if c is not None:
            out[dst] = c.to_numpy(dtype=object)
    z = col("redshift", "z")
    out["z"] = pd.to_numeric(z, errors="coerce").to_numpy(float) if z is not None else np.nan
    for c in ("disc_mag", "hostz"):
        out[c] = np.nan
    from .features import _htm16_or_missing

    out["htm16"] = _htm16_or_missing(out["ra"].to_numpy(float), out["decl"].to_numpy(float))
    return out


def watchlist_hits(objects, watchlist, *, wl_id=1, radius=2.0) -> pd.DataFrame:
    """Lasair's ``watchlist_hits`` of the objects' positions against one watchlist.

    Parameters
    ----------
    objects : DataFrame
        ``diaObjectId``, ``ra``, ``decl`` (one row per object).
    watchlist : str, path or DataFrame
        See :func:`lsstuk_kit.crossmatch.read_watchlist` (``name``, ``ra``, ``dec``, optional ``radius`` arcsec).
    wl_id : int
    radius : float or Quantity
        Cone radius (arcsec) for rows without their own.

    Returns
    -------
    DataFrame
        ``diaObjectId``, ``wl_id``, ``cone_id`` (row of the watchlist), ``arcsec``, ``name``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair import watchlist_hits
    >>> objs = pd.DataFrame({"diaObjectId": [1, 2, 3], "ra": [150.0, 150.0005, 10.0], "decl": [2.0, 2.0, -30.0]})
    >>> wl = pd.DataFrame({"name": ["target", "elsewhere"], "ra": [150.0, 200.0], "dec": [2.0, 2.0]})
    >>> watchlist_hits(objs, wl, wl_id=3, radius=1.0).values.tolist()
    [[1, 3, 0, 0.0, 'target']]
    >>> hits = watchlist_hits(objs, wl, radius=5.0)   # object 2 is 1.8 arcsec away
    >>> hits["diaObjectId"].tolist(), hits["arcsec"].round(1).tolist()
    ([1, 2], [0.0, 1.8])
    """
    from ..crossmatch import match_watchlist

    oid, ra, dec = _positions(objects)
    view = SimpleNamespace(sources=pd.DataFrame({"diaObjectId": oid, "ra": ra, "dec": dec}))
    hits = match_watchlist(view, watchlist, radius)
    return pd.DataFrame({"diaObjectId": hits["diaObjectId"].to_numpy(np.int64), "wl_id": int(wl_id),
                         "cone_id": hits["target_index"].to_numpy(np.int64),
                         "arcsec": hits["sep_arcsec"].to_numpy(float), "name": hits["name"].astype(str).to_numpy()})


def tns_watchlist_hits(objects, tns) -> pd.DataFrame:
    """The TNS entries within :data:`TNS_RADIUS_ARCSEC` of each object, as Lasair's TNS watchlist hits.

    Parameters
    ----------
    objects : DataFrame
        ``diaObjectId``, ``ra``, ``decl`` (one row per object).
    tns : DataFrame
        A :func:`crossmatch_tns` table (``tns_name``, ``ra``, ``decl``).

    Returns
    -------
    DataFrame
        As :func:`watchlist_hits`, with ``wl_id`` :data:`TNS_WATCHLIST_ID` and ``name`` the TNS name.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair import crossmatch_tns
    >>> from lsstuk_kit.lasair.tables import tns_watchlist_hits
    >>> objs = pd.DataFrame({"diaObjectId": [1, 2, 3], "ra": [150.0, 150.0, 10.0], "decl": [2.0, 2.01, -30.0]})
    >>> tns = crossmatch_tns(pd.DataFrame({"name": ["SN2024abc", "AT2024xyz"], "ra": [150.0, 10.0],
    ...                                    "dec": [2.0005, -30.0]}))
    >>> tns_watchlist_hits(objs, tns)[["diaObjectId", "wl_id", "name"]].values.tolist()   # 2 is 36 arcsec off
    [[1, 0, '2024abc'], [3, 0, '2024xyz']]
    """
    wl = pd.DataFrame({"name": tns["tns_name"].astype(str), "ra": tns["ra"], "dec": tns["decl"]})
    return watchlist_hits(objects, wl, wl_id=TNS_WATCHLIST_ID, radius=TNS_RADIUS_ARCSEC)


def area_hits(objects, watchmap, *, ar_id=1) -> pd.DataFrame:
    """Lasair's ``area_hits``: the objects inside a :class:`~lsstuk_kit.skyareas.Watchmap` (``diaObjectId``, ``ar_id``).

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.skyareas import Watchmap
    >>> from lsstuk_kit.lasair import area_hits
    >>> objs = pd.DataFrame({"diaObjectId": [1, 2], "ra": [45.0, 100.0], "decl": [20.0, 0.0]})
    >>> area_hits(objs, Watchmap.from_polygon([40, 50, 50, 40], [10, 10, 30, 30]), ar_id=7).values.tolist()
    [[1, 7]]
    """
    oid, ra, dec = _positions(objects)
    inside = watchmap.contains_lonlat(ra, dec)
    return pd.DataFrame({"diaObjectId": oid[inside], "ar_id": int(ar_id)})


def annotations(df, topic=None) -> pd.DataFrame:
    """Lasair's ``annotations`` rows from a user DataFrame (one annotation per object and topic).

    ``df`` has ``diaObjectId`` (or ``objectId``), ``classification`` and optionally ``topic``, ``explanation``,
    ``classdict`` (a dict or JSON text), ``url``, ``version``. ``topic`` fills a missing topic column.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lasair import annotations
    >>> a = annotations(pd.DataFrame({"diaObjectId": [5], "classification": ["kilonova"],
    ...                               "classdict": [{"lsst-r": {"absolute_peak_mag_val": -19.1}}]}), "fastfinder")
    >>> a.loc[0, "topic"], a.loc[0, "classdict"]
    ('fastfinder', '{"lsst-r": {"absolute_peak_mag_val": -19.1}}')
    """
    df = df.rename(columns={"objectId": "diaObjectId"})
    if "diaObjectId" not in df or "classification" not in df:
        raise ValueError(f"annotations need diaObjectId and classification columns; got {list(df.columns)}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(topic or "x")):
        raise ValueError(f"annotator topic {topic!r} must be an SQL identifier (it names the table in filters)")
    out = pd.DataFrame({c: df[c] if c in df else None for c in ANNOTATION_COLUMNS})
    if topic is not None:
        out["topic"] = out["topic"].where(out["topic"].notna(), topic) if "topic" in df else topic
    out["annotationID"] = np.arange(1, len(out) + 1)
    out["diaObjectId"] = out["diaObjectId"].astype(np.int64)
    out["version"] = out["version"].where(out["version"].notna(), "0.1")
    out["classdict"] = [v if v is None or isinstance(v, str) else json.dumps(v) for v in out["classdict"]]
    out = out.drop_duplicates(["diaObjectId", "topic"], keep="last").reset_index(drop=True)
    return out
