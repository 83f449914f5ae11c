"""Asteroid veto: known solar-system objects from the alert's own fields, and the kit's own motion checks.

A moving object is the commonest impostor among single-night transients. :func:`asteroid_veto` flags, per
alert:

1. **known solar-system objects**, from what the alert itself carries:

   - Rubin: ``ssObjectId`` (non-zero, not null: the pipeline associated the source with a known orbit), the
     ``ssSource`` record (``ssSource_ssObjectId`` / ``ssSource_designation``, as the kit's Fink reader flattens
     it) and the MPC orbit record (``mpc_orbits_designation``); Fink's own ``pred_is_sso`` where present;
   - ZTF: ``ssnamenr`` (the nearest known solar-system object of the MPC, as ZTF attaches it) with ``ssdistnr``
     (its distance, arcsec) within ``ssdist_arcsec`` (5", Fink's limit), and Fink's ``roid`` = 3 (Fink's
     asteroid catcher: "flagged by ZTF as a solar-system object"); Fink's ``roid`` = 2 (Fink's own candidate) is
     reported as ``ssoCandidate``, not as known;

2. **motion seen by the kit** (no orbit catalogue needed):

   - ``movedInNight``: the object is new (no detection more than half a day before the alert: a source seen
     at the same place on earlier nights does not move) and two of its detections on the alert's night (the
     half day up to and including the alert) lie further apart than ``k`` times their combined astrometric
     error and at least ``min_move_arcsec`` (a slow mover the survey still associated into one object:
     ZTF's 1.5" radius keeps a main-belt asteroid for a few minutes);
   - ``pairedMover``: the alert's object is new (no detection more than half a day before the alert) and
     another new object's alert, in a different visit of the same night between ``min_dt_minutes`` and
     ``max_dt_hours`` away, lies at a distance that makes a plausible rate (``min_rate`` to ``max_rate``
     deg/day) and further than the association radius: one mover seen in two visits of a night and split
     into two objects.

The astrometric error of a detection is ``raErr``/``decErr`` where the alert has them, otherwise seeing /
(2.355 S/N) with a 2" seeing (ZTF alerts carry no position errors), with a floor of ``floor_arcsec``
(systematics; 0.1").

Examples
--------
>>> from lsstuk_kit import load_sample
>>> from lsstuk_kit.asteroids import asteroid_veto
>>> veto = asteroid_veto(load_sample())
>>> sorted(veto.columns)[:3]
['isAsteroid', 'knownSSO', 'motionArcsec']
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

__all__ = ["asteroid_veto", "known_solar_system"]

_NIGHT = 0.5  # days: "the same night" is within half a day of the alert (no site longitude needed)


def _col(df, name):
    return df[name] if name in df else pd.Series(pd.NA, index=df.index, dtype=object)


def _present_str(x: pd.Series) -> np.ndarray:
    v = x.astype(object)
    ok = v.notna().to_numpy()
    sv = v.astype(str).str.strip().str.lower().to_numpy()
    return ok & ~np.isin(sv, ["", "null", "none", "nan", "<na>", "0", "0.0"])


def known_solar_system(sources: pd.DataFrame, *, ssdist_arcsec=5.0) -> pd.DataFrame:
    """Which alerts the survey (or the broker) already associated with a known solar-system object.

    Parameters
    ----------
    sources : DataFrame
        ``AlertBatch.sources``.
    ssdist_arcsec : float
        ZTF: largest ``ssdistnr`` (arcsec) for ``ssnamenr`` to count.

    Returns
    -------
    DataFrame
        ``knownSSO`` (bool), ``ssoCandidate`` (bool: Fink's ``roid`` = 2), ``ssoName`` (designation or id, None
        where unknown) and ``ssoEvidence`` (the fields that said so, ``+``-joined), indexed like ``sources``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.asteroids import known_solar_system
    >>> src = pd.DataFrame({"ssnamenr": ["4371", None], "ssdistnr": [0.4, -999.0]})
    >>> known_solar_system(src)["knownSSO"].tolist()
    [True, False]
    """
    n = len(sources)
    ev = {}
    name = np.full(n, None, dtype=object)

    def take(label, mask, names=None):
        mask = np.asarray(mask, bool)
        ev[label] = mask
        if names is not None:
            fill = mask & pd.isna(name)
            name[fill] = np.asarray(names, dtype=object)[fill]

    sso_id = pd.to_numeric(_col(sources, "ssObjectId"), errors="coerce").to_numpy(float)
    des = _col(sources, "ssSource_designation")
    take("ssSource", _present_str(des) | _present_str(_col(sources, "ssSource_ssObjectId")), des.astype(object))
    mpc = _col(sources, "mpc_orbits_designation")
    take("mpc_orbits", _present_str(mpc), mpc.astype(object))
    ids = np.array([None if not np.isfinite(v) or v == 0 else str(int(v)) for v in sso_id], dtype=object) \
        if n else np.zeros(0, object)
    take("ssObjectId", np.isfinite(sso_id) & (sso_id != 0), ids)
    if "pred_is_sso" in sources:
        take("pred_is_sso", sources["pred_is_sso"].fillna(False).astype(bool).to_numpy())
    nm = _col(sources, "ssnamenr")
    dist = pd.to_numeric(_col(sources, "ssdistnr"), errors="coerce").to_numpy(float)
    take("ssnamenr", _present_str(nm) & (dist >= 0) & (dist <= ssdist_arcsec), nm.astype(object))
    roid = pd.to_numeric(_col(sources, "roid"), errors="coerce").to_numpy(float)
    take("roid", roid == 3)
    labels = list(ev)
    mat = np.column_stack([ev[k] for k in labels]) if labels else np.zeros((n, 0), bool)
    evidence = np.array(["+".join(lab for lab, m in zip(labels, r) if m) or None for r in mat], dtype=object) \
        if n else np.zeros(0, object)
    return pd.DataFrame({"knownSSO": mat.any(axis=1), "ssoCandidate": roid == 2, "ssoName": name,
                         "ssoEvidence": evidence}, index=sources.index)


def _errors_arcsec(df, floor, seeing):
    """Astrometric error (arcsec) per row: raErr/decErr (deg) where given, else seeing / (2.355 S/N)."""
    n = len(df)
    ra_e = pd.to_numeric(_col(df, "raErr"), errors="coerce").to_numpy(float) * 3600
    de_e = pd.to_numeric(_col(df, "decErr"), errors="coerce").to_numpy(float) * 3600
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        err = np.sqrt(np.nanmean(np.column_stack([ra_e, de_e]) ** 2, axis=1)) if n else np.zeros(0)
    with np.errstate(all="ignore"):
        f = pd.to_numeric(_col(df, "psfFlux"), errors="coerce").to_numpy(float)
        fe = pd.to_numeric(_col(df, "psfFluxErr"), errors="coerce").to_numpy(float)
        snr = np.abs(f / fe)
        est = seeing / (2.355 * np.where(np.isfinite(snr) & (snr > 0), snr, 5.0))
    err = np.where(np.isfinite(err), err, est)
    return np.sqrt(err**2 + floor**2)


def _sep_arcsec(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = (np.radians(np.asarray(x, float)) for x in (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0, 1)))) * 3600


def asteroid_veto(batch, *, ssdist_arcsec=5.0, k=5.0, min_move_arcsec=0.5, floor_arcsec=0.1, seeing_arcsec=2.0,
                  assoc_arcsec=1.0, min_dt_minutes=1.0, max_dt_hours=3.0, min_rate=0.05, max_rate=2.0
                  ) -> pd.DataFrame:
    """Flag alerts of solar-system objects: known ones from the alert's fields, movers from their positions.

    Parameters
    ----------
    batch : AlertBatch
    ssdist_arcsec : float
        ZTF ``ssdistnr`` limit (arcsec) for a known object.
    k, min_move_arcsec, floor_arcsec, seeing_arcsec : float
        ``movedInNight``: separation > max(k x combined error, min_move_arcsec); errors with a floor and a seeing
        for alerts without position errors (see the module docstring).
    assoc_arcsec, min_dt_minutes, max_dt_hours, min_rate, max_rate : float
        ``pairedMover``: partner further than ``assoc_arcsec``, ``min_dt_minutes`` to ``max_dt_hours`` away in
        time, at ``min_rate`` to ``max_rate`` deg/day.

    Returns
    -------
    DataFrame
        Indexed by ``diaSourceId`` like ``batch.sources``: ``isAsteroid`` (known or moving), ``knownSSO``,
        ``ssoCandidate``, ``ssoName``, ``ssoEvidence``, ``movedInNight``, ``motionArcsec`` (largest separation
        between the object's detections that night), ``motionSigma`` (that separation over its error),
        ``pairedMover``, ``pairDiaSourceId`` and ``pairRateDegPerDay``.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.asteroids import asteroid_veto
    >>> veto = asteroid_veto(load_sample())
    >>> bool(veto["isAsteroid"].any())
    True
    """
    s = batch.sources
    if not {"ra", "dec", "midpointMjdTai"} <= set(s.columns):
        raise ValueError("asteroid_veto needs sources with ra, dec and midpointMjdTai")
    out = known_solar_system(s, ssdist_arcsec=ssdist_arcsec)
    n = len(s)
    t_a = pd.to_numeric(s["midpointMjdTai"], errors="coerce").to_numpy(float)

    # ---- detections of each alert's object (history + the alert itself), with positions
    cols = ["diaObjectId", "midpointMjdTai", "ra", "dec", "raErr", "decErr", "psfFlux", "psfFluxErr"]
    h = batch.history
    hd = h[h["kind"].astype(str) == "detection"] if "kind" in h else h
    det = pd.concat([s.reset_index(drop=True).reindex(columns=cols), hd.reindex(columns=cols)], ignore_index=True)
    det = det[det["diaObjectId"].notna() & det["ra"].notna() & det["dec"].notna()]
    det = det.assign(_err=_errors_arcsec(det, floor_arcsec, seeing_arcsec),
                     _t=pd.to_numeric(det["midpointMjdTai"], errors="coerce").astype(float),
                     _o=det["diaObjectId"].astype(str))
    det = det.drop_duplicates(["_o", "_t", "ra", "dec"])
    a = pd.DataFrame({"_o": s["diaObjectId"].astype(str).to_numpy(), "_t": t_a, "_a": np.arange(n),
                      "_ra": s["ra"].to_numpy(float), "_dec": s["dec"].to_numpy(float),
                      "_err": _errors_arcsec(s, floor_arcsec, seeing_arcsec)})
    a.loc[s["diaObjectId"].isna().to_numpy(), "_o"] = None
    j = a.merge(det[["_o", "_t", "ra", "dec", "_err"]], on="_o", suffixes=("", "_d"))
    dtj = j["_t"].to_numpy() - j["_t_d"].to_numpy()
    j = j[(dtj < _NIGHT) & (dtj >= -1e-7)]
    sep = _sep_arcsec(j["_ra"], j["_dec"], j["ra"], j["dec"])
    sig = sep / np.sqrt(j["_err"].to_numpy() ** 2 + j["_err_d"].to_numpy() ** 2)
    moved = (sep > np.maximum(k * np.sqrt(j["_err"].to_numpy() ** 2 + j["_err_d"].to_numpy() ** 2),
                              min_move_arcsec)) & (np.abs(j["_t"].to_numpy() - j["_t_d"].to_numpy()) > 1e-6)
    g = pd.DataFrame({"a": j["_a"].to_numpy(), "sep": sep, "sig": sig, "moved": moved}).groupby("a")
    # a source seen on earlier nights at the same place is not moving: only new objects can be movers
    first_det = det.groupby("_o")["_t"].min()
    first_a = a["_o"].map(first_det).to_numpy(float)
    new = a["_o"].notna().to_numpy() & ~(first_a < t_a - _NIGHT)
    out["movedInNight"] = g["moved"].any().reindex(np.arange(n), fill_value=False).to_numpy(bool) & new
    out["motionArcsec"] = g["sep"].max().reindex(np.arange(n)).to_numpy(float)
    out["motionSigma"] = g["sig"].max().reindex(np.arange(n)).to_numpy(float)

    # ---- pairs of new objects on the same night: one mover split into two objects
    out["pairedMover"] = False
    out["pairDiaSourceId"] = pd.array([pd.NA] * n, dtype=object)
    out["pairRateDegPerDay"] = np.nan
    idx = np.flatnonzero(new & np.isfinite(t_a))
    if len(idx) > 1:
        from scipy.spatial import cKDTree

        ra, dec = np.radians(a["_ra"].to_numpy()[idx]), np.radians(a["_dec"].to_numpy()[idx])
        xyz = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
        radius = np.radians(max_rate * max_dt_hours / 24.0)
        pairs = cKDTree(xyz).query_pairs(2 * np.sin(radius / 2), output_type="ndarray")
        if len(pairs):
            p, q = idx[pairs[:, 0]], idx[pairs[:, 1]]
            dt = np.abs(t_a[p] - t_a[q])
            d = _sep_arcsec(a["_ra"].to_numpy()[p], a["_dec"].to_numpy()[p], a["_ra"].to_numpy()[q],
                            a["_dec"].to_numpy()[q])
            with np.errstate(all="ignore"):
                rate = d / 3600 / dt
            ok = ((dt >= min_dt_minutes / 1440) & (dt <= max_dt_hours / 24)
                  & (d > assoc_arcsec) & (rate >= min_rate) & (rate <= max_rate)
                  & (a["_o"].to_numpy()[p] != a["_o"].to_numpy()[q]))
            p, q, rate = p[ok], q[ok], rate[ok]
            # each alert keeps its slowest partner (the least likely chance pairing)
            both = pd.DataFrame({"a": np.r_[p, q], "b": np.r_[q, p], "rate": np.r_[rate, rate]})
            best = both.sort_values(["a", "rate"], kind="stable").drop_duplicates("a")
            rows = best["a"].to_numpy()
            out.iloc[rows, out.columns.get_loc("pairedMover")] = True
            out.iloc[rows, out.columns.get_loc("pairDiaSourceId")] = s.index.to_numpy()[best["b"].to_numpy()]
            out.iloc[rows, out.columns.get_loc("pairRateDegPerDay")] = best["rate"].to_numpy()
    out["isAsteroid"] = out["knownSSO"] | out["movedInNight"] | out["pairedMover"]
    first = ["isAsteroid", "knownSSO", "ssoCandidate", "ssoName", "ssoEvidence", "movedInNight", "motionArcsec",
             "motionSigma", "pairedMover", "pairDiaSourceId", "pairRateDegPerDay"]
    return out[first]
