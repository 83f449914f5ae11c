"""Simulate a survey's nights as the tables a survey database keeps.

:func:`simulate_survey` runs the cadence over the population, adds noise,
detects at 5 sigma (positive and negative differences), adds moving objects and
bogus detections, associates detections into objects (a radius that shrinks in
dense star fields) and measures forced photometry. The result is a
:class:`SurveyTables` of plain DataFrames (internal Rubin-like names), which
:func:`lsstuk_kit.convert.to_survey_tables` renames to ATLAS- or
Pan-STARRS-like database rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cadence import FIELD_RADIUS_DEG, PIXEL_SCALE, make_cadence
from .population import difference_flux_pairs, make_population, stellar_density, template_flux_pairs

__all__ = ["SurveyTables", "simulate_survey", "association_radius"]

#: Share of each bogus type among bogus detections: faint noise fluctuations and residuals near
#: bright stars dominate real bogus (issue 13, from real Rubin and ZTF stamps).
BOGUS_MIX = {"dipole": 0.14, "cosmic_ray": 0.06, "hot_pixel": 0.03, "bad_column": 0.03,
             "bright_star": 0.06, "edge": 0.08, "star_residual": 0.2, "noise": 0.4}
#: Mean S/N above 5 (exponential) of each bogus type; noise fluctuations sit at S/N 5-6.
BOGUS_SNR = {"dipole": 4.0, "cosmic_ray": 6.0, "hot_pixel": 4.0, "bad_column": 3.0, "bright_star": 6.0,
             "edge": 3.0, "star_residual": 1.5, "noise": 0.5}
#: Reliability is a noisy score: sigmoid of a normal variable whose mean rises with S/N for real
#: sources (:data:`RELIABILITY_REAL` = intercept, slope per ln(S/N / 5), spread) and is low for bogus
#: (:data:`RELIABILITY_BOGUS` = mean, spread); tuned so that its AUC against the truth is ~0.85-0.9
#: and its distribution over real objects is within KS D < 0.2 of real Rubin alerts' (issue 13).
RELIABILITY_REAL = (-0.4, 1.2, 1.3)
RELIABILITY_BOGUS = (-1.6, 1.3)
#: Chance that ``isDipole`` is set: dipole bogus, other bogus, real sources (a host nucleus or a bright
#: variable star subtracted slightly off: the flag is a measurement, not the label).
DIPOLE_FLAG_CHANCE = (0.8, 0.08, 0.05)
ASSOC_RADIUS_ARCSEC = 1.0
MIN_ASSOC_RADIUS_ARCSEC = 0.4
PRECOVERY_DAYS = 30.0


@dataclass
class SurveyTables:
    """Simulated survey database tables plus the truth behind them.

    Attributes
    ----------
    exposures : DataFrame
        One row per visit (``expId``, ``mjd``, ``band``, ``fieldId``, ``seeing``, ``m5``, ...).
    detections : DataFrame
        One row per detection on a difference image, with its ``objectId``.
    objects : DataFrame
        One row per associated object.
    forced : DataFrame
        Forced photometry of each object on every visit of its field from
        30 days before its first detection.
    truth : DataFrame
        Per detection: ``cls``, ``subtype``, ``isReal``, ``bogusType``, ``hostId``,
        ``z``, ``trueFlux``, ``truthId``.
    population : DataFrame
        The simulated objects and their light-curve parameters.
    hosts : DataFrame
        Host galaxies.
    fields : DataFrame
        The fields observed, with their association radius.

    Examples
    --------
    >>> from lsstuk_kit.simulate import simulate_survey
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> len(tables.exposures), len(tables.detections), len(tables.objects)
    (3, 7, 3)
    >>> bool(tables.detections["objectId"].isin(tables.objects["objectId"]).all())
    True
    >>> tables.truth["detId"].equals(tables.detections["detId"])  # one truth row per detection
    True
    """

    exposures: pd.DataFrame
    detections: pd.DataFrame
    objects: pd.DataFrame
    forced: pd.DataFrame
    truth: pd.DataFrame
    population: pd.DataFrame
    hosts: pd.DataFrame
    fields: pd.DataFrame
    seed: int = 0
    meta: dict = field(default_factory=dict)


def association_radius(density):
    """Association radius (arcsec) for a relative stellar density.

    1 arcsec at high galactic latitude, shrinking as 1/sqrt(density) toward the
    plane (so that chance coincidences stay rare), never below 0.4 arcsec.

    Examples
    --------
    >>> from lsstuk_kit.simulate.survey import association_radius
    >>> association_radius([1.0, 4.0, 100.0]).round(2).tolist()
    [1.0, 0.5, 0.4]
    """
    d = np.asarray(density, float)
    return np.clip(ASSOC_RADIUS_ARCSEC / np.sqrt(np.maximum(d, 1.0)), MIN_ASSOC_RADIUS_ARCSEC, ASSOC_RADIUS_ARCSEC)


def _radec_to_xy(ra, dec, ra0, dec0):
    """Pixel position on a 4000x4000 detector centred on the field (tangent plane)."""
    dx = ((ra - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0)) * 3600 / PIXEL_SCALE
    dy = (dec - dec0) * 3600 / PIXEL_SCALE
    return 2000 + dx / 6.3, 2000 + dy / 6.3  # 189 detectors: fold onto one 4k chip


def simulate_survey(nights=1, *, seed=0, start_mjd=61100.0, fields=None, scale=1.0,
                    bogus_fraction=0.15, visits_per_night=None, revisit_nights=3, asteroids_per_visit=3.0,
                    night_bands=None, progress=False) -> SurveyTables:
    """Simulate ``nights`` of an LSST-like survey.

    Parameters
    ----------
    nights : int
        Number of nights.
    seed : int
        Random seed (the same seed gives the same tables).
    start_mjd : float
        First night.
    fields : list of int, optional
        Observe only these fields (default: the whole southern sky, as visible).
    scale : float
        Population density multiplier.
    bogus_fraction : float
        Fraction of all detections that are bogus.
    visits_per_night : int, optional
        Cap on visits per night.
    revisit_nights : int
        Mean gap between nights a field is observed.
    asteroids_per_visit : float
        Mean number of detectable asteroids per visit near the ecliptic (a tenth elsewhere).
    night_bands : dict, optional
        Band sequence of chosen nights, e.g. ``{-1: "gr"}``: every field observed on the last
        night gets a g visit then an r visit, for colours from same-night pairs (see
        :func:`~lsstuk_kit.simulate.cadence.make_cadence`). Default: bands drawn at random.
    progress : bool
        Show a progress bar over the stages (cadence, light curves, bogus, association, forced photometry).

    Returns
    -------
    SurveyTables

    Examples
    --------
    One night of one field, at half the usual density of objects:

    >>> from lsstuk_kit.simulate import simulate_survey
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> len(tables.exposures), tables.exposures["fieldId"].unique().tolist()  # three visits of field 15
    (3, [15])
    >>> tables.truth["cls"].value_counts().to_dict()
    {'SN': 4, 'AGN': 3}
    >>> simulate_survey(1, seed=1, fields=[15], scale=0.5).detections.equals(tables.detections)  # same seed
    True
    """
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=5, desc="simulating", unit="stage")

    def step(name):
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update()

    rng = np.random.default_rng(seed)
    exp = make_cadence(nights, seed=seed, start_mjd=start_mjd, fields=fields,
                       visits_per_night=visits_per_night, revisit_nights=revisit_nights, night_bands=night_bands)
    flds = exp.groupby("fieldId")[["ra", "dec"]].first().reset_index()
    flds["density"] = stellar_density(flds["ra"].to_numpy(), flds["dec"].to_numpy())
    flds["assocRadius"] = association_radius(flds["density"].to_numpy())
    pop, hosts = make_population(flds, seed=seed + 1, scale=scale,
                                 mjd_range=(start_mjd - 60.0, start_mjd + nights + 20.0),
                                 radius_deg=FIELD_RADIUS_DEG)
    step("cadence and population")
    det_parts = []
    # every (object, visit of its field) pair at once
    o_idx = pop.reset_index(drop=True)
    pairs = pd.DataFrame({"o": np.arange(len(o_idx)), "fieldId": o_idx["fieldId"].to_numpy()}).merge(
        pd.DataFrame({"e": np.arange(len(exp)), "fieldId": exp["fieldId"].to_numpy()}), on="fieldId")
    po, pe = pairs["o"].to_numpy(), pairs["e"].to_numpy()
    band_idx = exp["band"].cat.codes.to_numpy().astype(np.int64)
    mjd = exp["mjd"].to_numpy()
    flux = difference_flux_pairs(o_idx, po, mjd[pe], band_idx[pe], rng)
    tf = template_flux_pairs(o_idx, po, band_idx[pe])
    sigma = 10 ** ((31.4 - exp["m5"].to_numpy()) / 2.5) / 5.0
    # noise: sky (from m5) plus the source's own shot noise, small at these fluxes
    err = np.sqrt(sigma[pe] ** 2 + 0.02 * np.abs(flux + tf) * sigma[pe])
    obs = flux + rng.standard_normal(len(po)) * err
    hit = np.flatnonzero(np.abs(obs) >= 5 * err)
    truth_flux = (po, pe, flux)
    if len(hit):
        oo, ee = po[hit], pe[hit]
        snr = obs[hit] / err[hit]
        pos_err = exp["seeing"].to_numpy()[ee] / np.abs(snr) / 2.0 / 3600.0
        odec = o_idx["dec"].to_numpy()[oo]
        det_parts.append(pd.DataFrame({
            "expId": exp["expId"].to_numpy()[ee], "fieldId": exp["fieldId"].to_numpy()[ee],
            "ra": (o_idx["ra"].to_numpy()[oo] + rng.normal(0, 1, len(hit)) * pos_err / np.cos(np.radians(odec))) % 360,
            "dec": odec + rng.normal(0, 1, len(hit)) * pos_err,
            "psfFlux": obs[hit], "psfFluxErr": err[hit],
            "truthId": o_idx["truthId"].to_numpy()[oo], "cls": o_idx["cls"].to_numpy(dtype=object)[oo],
            "subtype": o_idx["subtype"].to_numpy(dtype=object)[oo], "hostId": o_idx["hostId"].to_numpy()[oo],
            "z": o_idx["z"].to_numpy()[oo], "trueFlux": flux[hit], "templateFlux": tf[hit], "bogusType": "",
            "detSnr": np.nan,
        }))
    det_parts.append(_asteroids(exp, rng, asteroids_per_visit * scale))
    if not det_parts:
        raise ValueError("no detections: add nights, fields or raise `scale`")
    det = pd.concat(det_parts, ignore_index=True)
    step("light curves and detections")
    det = _add_bogus(det, exp, rng, bogus_fraction)
    step("bogus detections")
    det = det.merge(exp[["expId", "mjd", "band", "seeing", "m5", "rotation", "night"]], on="expId", how="left")
    det = det.sort_values(["mjd", "ra"], kind="stable").reset_index(drop=True)
    n = len(det)
    det.insert(0, "detId", (np.int64(start_mjd) * 10**9 + np.arange(n)).astype(np.int64))
    # Rubin's snr is the significance of the detection footprint: always positive; a dipole's net
    # psfFlux can be near zero or of either sign
    det["snr"] = np.where(det["detSnr"].notna(), det["detSnr"],
                          np.abs(det["psfFlux"] / det["psfFluxErr"])).astype(float)
    det = det.drop(columns=["detSnr"])
    fc = flds.set_index("fieldId").loc[det["fieldId"].to_numpy()]
    det["x"], det["y"] = _radec_to_xy(det["ra"].to_numpy(), det["dec"].to_numpy(),
                                      fc["ra"].to_numpy(), fc["dec"].to_numpy())
    real = det["bogusType"].to_numpy() == ""
    snr = det["snr"].to_numpy(float)
    a, b, sd = RELIABILITY_REAL
    mb, sb = RELIABILITY_BOGUS
    z = np.where(real, a + b * np.log(np.maximum(snr, 5.0) / 5.0) + sd * rng.standard_normal(n),
                 mb + sb * rng.standard_normal(n))
    det["reliability"] = 1.0 / (1.0 + np.exp(-z))
    dip = det["bogusType"].to_numpy() == "dipole"
    p_flag = np.where(dip, DIPOLE_FLAG_CHANCE[0], np.where(real, DIPOLE_FLAG_CHANCE[2], DIPOLE_FLAG_CHANCE[1]))
    det["isDipole"] = rng.random(n) < p_flag
    det["isReal"] = real
    true_template = det["templateFlux"].to_numpy(float).copy()
    for name, col in _rubin_fields(det, hosts, rng).items():
        det[name] = col  # templateFlux becomes the measured one; the truth keeps the true one
    det["objectId"] = _associate(det, flds)
    step("association")
    objects = _objects(det, start_mjd)
    forced = _forced(objects, det, exp, o_idx, truth_flux, rng)
    step("forced photometry")
    if bar is not None:
        bar.close()
    truth_cols = ["detId", "objectId", "truthId", "cls", "subtype", "isReal", "bogusType", "hostId", "z",
                  "trueFlux", "templateFlux"]
    truth = det[truth_cols].copy()
    truth["templateFlux"] = true_template
    detections = det.drop(columns=["truthId", "cls", "subtype", "isReal", "bogusType", "hostId", "z",
                                   "trueFlux", "rateDegPerDay"], errors="ignore")
    return SurveyTables(exposures=exp, detections=detections, objects=objects, forced=forced, truth=truth,
                        population=pop, hosts=hosts, fields=flds, seed=seed,
                        meta={"nights": nights, "start_mjd": start_mjd, "bogus_fraction": bogus_fraction,
                              "scale": scale})


def _ecliptic_lat(ra, dec):
    eps = np.radians(23.44)
    r, d = np.radians(ra), np.radians(dec)
    return np.degrees(np.arcsin(np.sin(d) * np.cos(eps) - np.cos(d) * np.sin(eps) * np.sin(r)))


def _circle(rng, ra0, dec0, radius, n):
    r = radius * np.sqrt(rng.random(n))
    phi = rng.uniform(0, 2 * np.pi, n)
    dec = np.clip(dec0 + r * np.sin(phi), -89.99, 89.99)
    return (ra0 + r * np.cos(phi) / np.cos(np.radians(dec))) % 360, dec


def _add_bogus(det, exp, rng, fraction):
    """Add bogus detections: per visit, about fraction / (1 - fraction) per real one."""
    if fraction <= 0:
        return det
    real_per_exp = det.groupby("expId").size().reindex(exp["expId"], fill_value=0).to_numpy()
    lam = np.maximum(real_per_exp, 1) * fraction / (1 - fraction)
    k = rng.poisson(lam)
    total = int(k.sum())
    if total == 0:
        return det
    e = exp.loc[np.repeat(exp.index.to_numpy(), k)]
    types = rng.choice(list(BOGUS_MIX), total, p=list(BOGUS_MIX.values()))
    ra, dec = _circle(rng, e["ra"].to_numpy()[:, None].ravel(), e["dec"].to_numpy(), FIELD_RADIUS_DEG * 0.95, total)
    # bright-star residuals recur at the same stars: a few per field
    bright = types == "bright_star"
    if bright.any():
        fid = e["fieldId"].to_numpy()[bright]
        star = rng.integers(0, 4, bright.sum())
        srng = np.random.default_rng(fid * 7 + star)  # the same stars every visit
        sra = (e["ra"].to_numpy()[bright] + (srng.random(bright.sum()) - 0.5) * 2.5
               / np.cos(np.radians(e["dec"].to_numpy()[bright]))) % 360
        sdec = e["dec"].to_numpy()[bright] + (np.random.default_rng(fid * 13 + star).random(bright.sum()) - 0.5) * 2.5
        ra[bright] = sra + rng.normal(0, 0.1 / 3600, bright.sum())
        dec[bright] = sdec + rng.normal(0, 0.1 / 3600, bright.sum())
    sig = 10 ** ((31.4 - e["m5"].to_numpy()) / 2.5) / 5.0
    snr = 5.0 + rng.exponential(np.array([BOGUS_SNR[t] for t in types]))
    # a minority are negative (template artefacts); real Rubin: 7.8 % of all alerts have psfFlux < 0
    sign = np.where(np.isin(types, ["dipole", "bad_column", "edge", "bright_star", "star_residual"])
                    & (rng.random(total) < 0.2), -1.0, 1.0)
    flux = sign * snr * sig
    dip = types == "dipole"
    flux[dip] = snr[dip] * sig[dip] * rng.uniform(-0.4, 1.0, dip.sum())  # net flux of the +/- pair
    ids = -(10**12 + rng.integers(1, 2**40, total))
    bogus = pd.DataFrame({
        "expId": e["expId"].to_numpy(), "fieldId": e["fieldId"].to_numpy(), "ra": ra, "dec": dec,
        "psfFlux": flux, "psfFluxErr": sig, "truthId": ids, "cls": "bogus", "subtype": types,
        "hostId": -1, "z": np.nan, "trueFlux": 0.0, "templateFlux": 0.0, "bogusType": types, "detSnr": snr,
    })
    return pd.concat([det, bogus], ignore_index=True)


def _associate(det, flds):
    """Associate per field, within the field's radius (shrinking toward the galactic plane)."""
    from ..convert import associate

    radius = flds.set_index("fieldId")["assocRadius"].reindex(det["fieldId"].to_numpy()).to_numpy()
    return associate(det["ra"].to_numpy(), det["dec"].to_numpy(), det["mjd"].to_numpy(), radius,
                     group=det["fieldId"].to_numpy())


def _objects(det, start_mjd):
    g = det.groupby("objectId", sort=True)
    obj = pd.DataFrame({
        "ra": g["ra"].mean(), "dec": g["dec"].mean(), "nDetections": g.size(),
        "firstMjd": g["mjd"].min(), "lastMjd": g["mjd"].max(), "fieldId": g["fieldId"].first(),
    }).reset_index()
    return obj


def _steep_counts(rng, lo, hi, n, slope=0.5):
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


#: Pixel flags raised (with these chances) by each bogus type; real sources get each at 1 %.
_PIXEL_FLAGS = {
    "cosmic_ray": {"cr": 0.8, "crCenter": 0.6, "interpolated": 0.6, "interpolatedCenter": 0.4},
    "hot_pixel": {"bad": 0.7, "interpolated": 0.5, "interpolatedCenter": 0.4},
    "bad_column": {"bad": 0.8, "interpolated": 0.6, "suspect": 0.3},
    "bright_star": {"saturated": 0.7, "saturatedCenter": 0.3, "suspect": 0.5, "interpolated": 0.4},
    "star_residual": {"saturated": 0.4, "suspect": 0.3, "interpolated": 0.2},
    "edge": {"edge": 0.9, "nodata": 0.6, "offimage": 0.1},
}
PIXEL_FLAG_NAMES = ("bad", "cr", "crCenter", "edge", "nodata", "nodataCenter", "interpolated", "interpolatedCenter",
                    "offimage", "saturated", "saturatedCenter", "suspect", "suspectCenter", "streak", "streakCenter",
                    "injected", "injectedCenter", "injected_template", "injected_templateCenter")


def _rubin_fields(det, hosts, rng):
    """The diaSource fields real Rubin alerts fill: errors, flags, moments, trail, science/template fluxes.

    Values are plausible rather than measured: moments from the visit's seeing, errors from the S/N,
    flags raised by the artefacts that cause them (with chances, so that no flag is the label).
    """
    n = len(det)
    f32 = np.float32
    bog = det["bogusType"].to_numpy().astype(str)
    real = bog == ""
    snr = det["snr"].to_numpy(float)
    flux = det["psfFlux"].to_numpy(float)
    err = det["psfFluxErr"].to_numpy(float)
    seeing = det["seeing"].to_numpy(float)
    sig_as = seeing / 2.3548
    pos_as = seeing / np.maximum(snr, 1.0) / 2.0
    out = {}
    sso = det["subtype"].to_numpy().astype(str) == "asteroid"
    out["ssObjectId"] = np.where(sso, np.abs(det["truthId"].to_numpy()), 0).astype(np.int64)
    out["parentDiaSourceId"] = np.zeros(n, np.int64)
    out["ra_dec_Cov"] = (rng.uniform(-0.3, 0.3, n) * (pos_as / 3600.0) ** 2).astype(f32)
    out["xErr"] = (pos_as / PIXEL_SCALE * rng.uniform(0.8, 1.2, n)).astype(f32)
    out["yErr"] = (pos_as / PIXEL_SCALE * rng.uniform(0.8, 1.2, n)).astype(f32)
    edge = bog == "edge"
    out["centroid_flag"] = edge & (rng.random(n) < 0.5)
    out["apFlux_flag"] = edge & (rng.random(n) < 0.7)
    out["apFlux_flag_apertureTruncated"] = out["apFlux_flag"].copy()
    nd = np.where(edge, rng.integers(600, 1500, n), 1681)
    out["psfNdata"] = nd.astype(np.int64)
    chi = nd * (1 + rng.normal(0, 0.05, n) + np.where(real, 0.0, rng.uniform(0.0, 1.0, n)))
    out["psfChi2"] = chi.astype(f32)
    out["psfFlux_flag"] = edge & (rng.random(n) < 0.5)
    out["psfFlux_flag_edge"] = out["psfFlux_flag"].copy()
    out["psfFlux_flag_noGoodPixels"] = np.zeros(n, bool)
    rate = det["rateDegPerDay"].to_numpy(float) if "rateDegPerDay" in det else np.full(n, np.nan)
    trail = np.where(sso, np.nan_to_num(rate) * 30.0 / 86400.0 * 3600.0, rng.lognormal(np.log(1.1), 0.3, n))
    out["trailFlux"] = (flux * rng.uniform(1.0, 1.15, n)).astype(f32)
    out["trailFluxErr"] = (err * rng.uniform(0.03, 0.08, n)).astype(f32)
    out["trailRa"] = det["ra"].to_numpy(float) + rng.normal(0, 1, n) * pos_as / 3600.0
    out["trailDec"] = det["dec"].to_numpy(float) + rng.normal(0, 1, n) * pos_as / 3600.0
    out["trailLength"] = trail.astype(f32)
    out["trailAngle"] = rng.uniform(-90, 90, n).astype(f32)
    out["trail_flag_edge"] = edge & (rng.random(n) < 0.5)
    # science and template fluxes at the source: the template holds the star (or the host's light)
    host_flux = np.zeros(n)
    hid = det["hostId"].to_numpy()
    has = hid > 0
    if has.any():
        h = hosts.set_index("hostId").reindex(hid[has])
        host_flux[has] = 0.05 * 10 ** ((31.4 - h["magR"].to_numpy(float)) / 2.5)
    tmpl = det["templateFlux"].to_numpy(float) + host_flux
    out["templateFlux"] = (tmpl + rng.normal(0, 1, n) * 0.2 * err).astype(f32)
    out["templateFluxErr"] = (0.2 * err * rng.uniform(0.8, 1.2, n)).astype(f32)
    out["scienceFlux"] = (tmpl + flux + rng.normal(0, 1, n) * 0.3 * err).astype(f32)
    out["scienceFluxErr"] = (err * rng.uniform(0.95, 1.05, n)).astype(f32)
    out["forced_PsfFlux_flag"] = edge & (rng.random(n) < 0.5)
    out["forced_PsfFlux_flag_edge"] = out["forced_PsfFlux_flag"].copy()
    out["forced_PsfFlux_flag_noGoodPixels"] = np.zeros(n, bool)
    # second moments (arcsec^2): the PSF's, and the source's (sharper for cosmic rays, broader near stars)
    e1, e2 = rng.normal(0, 0.04, (2, n))
    out["ixxPSF"] = (sig_as**2 * (1 + e1)).astype(f32)
    out["iyyPSF"] = (sig_as**2 * (1 - e1)).astype(f32)
    out["ixyPSF"] = (sig_as**2 * e2).astype(f32)
    widen = np.select([np.isin(bog, ["cosmic_ray", "hot_pixel"]), np.isin(bog, ["bright_star", "star_residual"]),
                       bog == "bad_column"], [0.3, 1.5, 0.6], 1.0)
    noise = 1 + rng.normal(0, 1, (3, n)) * 2.0 / np.maximum(snr, 1.0)
    out["ixx"] = (sig_as**2 * widen * np.abs(noise[0])).astype(f32)
    out["iyy"] = (sig_as**2 * widen * np.abs(noise[1]) * np.where(bog == "bad_column", 4.0, 1.0)).astype(f32)
    out["ixy"] = (sig_as**2 * widen * (noise[2] - 1) * 0.3).astype(f32)
    shape_bad = edge & (rng.random(n) < 0.5)
    out["shape_flag"] = shape_bad
    out["shape_flag_no_pixels"] = np.zeros(n, bool)
    out["shape_flag_not_contained"] = shape_bad.copy()
    out["shape_flag_parent_source"] = np.zeros(n, bool)
    galaxy = has & (det["cls"].to_numpy().astype(str) == "SN")
    out["extendedness"] = np.clip(np.where(galaxy, rng.beta(2, 2, n), rng.beta(1, 3, n)), 0, 1).astype(f32)
    out["dipoleFitAttempted"] = det["isDipole"].to_numpy(bool) | (rng.random(n) < 0.1)
    out["bboxSize"] = np.clip(np.rint(6 * sig_as / PIXEL_SCALE * (1 + 0.3 * np.log(np.maximum(snr, 5) / 5))),
                              9, 41).astype(np.int64)
    # Rubin flags the negative footprint: a dipole's negative net flux is not flagged
    out["isNegative"] = (flux < 0) & ~det["isDipole"].to_numpy(bool)
    flags = {}
    for name in PIXEL_FLAG_NAMES:
        p = np.full(n, 0.01 if name in ("interpolated", "suspect", "saturated", "cr", "bad") else 0.0)
        for kind, chances in _PIXEL_FLAGS.items():
            if name in chances:
                p = np.where(bog == kind, chances[name], p)
        flags[f"pixelFlags_{name}"] = rng.random(n) < p
    out["pixelFlags"] = np.any(np.column_stack(list(flags.values())), axis=1)
    out.update(flags)
    out["glint_trail"] = np.zeros(n, bool)
    return out


def _asteroids(exp, rng, per_visit):
    """Asteroids: each seen in both visits of a field's nightly pair, moving 0.1-1 deg/day."""
    g = exp.groupby(["fieldId", "night"], sort=True)
    gid = g.ngroup().to_numpy()
    first = g["mjd"].transform("min").to_numpy()
    heads = exp.groupby(gid)[["ra", "dec"]].first()
    ecl = _ecliptic_lat(heads["ra"].to_numpy(), heads["dec"].to_numpy())
    lam = per_visit * np.where(np.abs(ecl) < 20, 1.0, 0.1)
    k = rng.poisson(lam)
    owner = np.repeat(np.arange(len(k)), k)
    n = len(owner)
    cols = ["expId", "fieldId", "ra", "dec", "psfFlux", "psfFluxErr", "truthId", "cls", "subtype", "hostId", "z",
            "trueFlux", "templateFlux", "bogusType", "detSnr", "rateDegPerDay"]
    if n == 0:  # typed columns: concatenated with the detections, they must leave ra, psfFlux, ... numeric
        text = {"cls", "subtype", "bogusType"}
        ints = {"expId", "fieldId", "truthId", "hostId"}
        return pd.DataFrame({c: np.array([], object if c in text else np.int64 if c in ints else float)
                             for c in cols})
    ra0, dec0 = _circle(rng, heads["ra"].to_numpy()[owner], heads["dec"].to_numpy()[owner],
                        FIELD_RADIUS_DEG * 0.9, n)
    rate = rng.uniform(0.1, 1.0, n)
    ang = rng.uniform(0, 2 * np.pi, n)
    mag = _steep_counts(rng, 19.0, 24.5, n)  # N(<m) ~ 10**(0.5 m): most near the limit
    ids = -(rng.integers(1, 2**40, n))
    j = pd.DataFrame({"a": np.arange(n), "g": owner}).merge(
        pd.DataFrame({"v": np.arange(len(exp)), "g": gid}), on="g")
    a, v = j["a"].to_numpy(), j["v"].to_numpy()
    dt = exp["mjd"].to_numpy()[v] - first[v]
    dec_v = dec0[a] + rate[a] * dt * np.sin(ang[a])
    ra_v = (ra0[a] + rate[a] * dt * np.cos(ang[a]) / np.cos(np.radians(dec0[a]))) % 360
    sig = 10 ** ((31.4 - exp["m5"].to_numpy()[v]) / 2.5) / 5.0
    f = 10 ** ((31.4 - mag[a]) / 2.5)
    obs = f + rng.normal(0, 1, len(a)) * sig
    seen = obs >= 5 * sig
    return pd.DataFrame({
        "expId": exp["expId"].to_numpy()[v][seen], "fieldId": exp["fieldId"].to_numpy()[v][seen],
        "ra": ra_v[seen], "dec": dec_v[seen], "psfFlux": obs[seen], "psfFluxErr": sig[seen],
        "truthId": ids[a][seen], "cls": "SSO", "subtype": "asteroid", "hostId": -1, "z": np.nan,
        "trueFlux": f[seen], "templateFlux": 0.0, "bogusType": "", "detSnr": np.nan,
        "rateDegPerDay": rate[a][seen],
    })


def _forced(objects, det, exp, pop, truth_flux, rng):
    """Forced photometry at each object's position on every visit of its field from 30 d before."""
    first_truth = det.sort_values("mjd").groupby("objectId")["truthId"].first()
    # (object, visit) pairs: the field's visits from 30 days before the first detection
    j = pd.DataFrame({"k": np.arange(len(objects)), "fieldId": objects["fieldId"].to_numpy()}).merge(
        pd.DataFrame({"e": np.arange(len(exp)), "fieldId": exp["fieldId"].to_numpy()}), on="fieldId")
    k, e = j["k"].to_numpy(), j["e"].to_numpy()
    t = exp["mjd"].to_numpy()
    keep = t[e] >= objects["firstMjd"].to_numpy()[k] - PRECOVERY_DAYS
    k, e = k[keep], e[keep]
    # true flux of the object behind each survey object (zero for bogus and asteroids)
    po, pe, flux = truth_flux
    key = po.astype(np.int64) * len(exp) + pe
    order = np.argsort(key)
    key_sorted = key[order]
    prow = pd.Series(np.arange(len(pop)), index=pop["truthId"].to_numpy())
    truth = first_truth.reindex(objects["objectId"].to_numpy()).to_numpy()
    row = prow.reindex(truth).to_numpy()
    has = ~np.isnan(row[k])
    want = np.where(has, np.nan_to_num(row[k]).astype(np.int64) * len(exp) + e, -1)
    pos = np.clip(np.searchsorted(key_sorted, want), 0, len(key_sorted) - 1)
    found = has & (key_sorted[pos] == want)
    true = np.where(found, flux[order][pos], 0.0)
    err = 10 ** ((31.4 - exp["m5"].to_numpy()[e]) / 2.5) / 5.0
    forced = pd.DataFrame({
        "objectId": objects["objectId"].to_numpy()[k], "expId": exp["expId"].to_numpy()[e],
        "mjd": t[e], "band": exp["band"].to_numpy()[e],
        "ra": objects["ra"].to_numpy()[k], "dec": objects["dec"].to_numpy()[k],
        "psfFlux": true + rng.standard_normal(len(k)) * err, "psfFluxErr": err,
    }).sort_values(["objectId", "mjd"], kind="stable")
    forced.insert(0, "forcedId", (5 * 10**17 + np.arange(len(forced))).astype(np.int64))
    return forced.reset_index(drop=True)
