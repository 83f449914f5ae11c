"""An LSST-like cadence: fields over the southern sky, pairs of visits, revisits.

Fields are circles of 9.6 deg^2 (radius 1.75 deg, the LSST camera's field of
view) on a Fibonacci lattice over dec -90 to +5 deg. Each night observes the
fields within a few hours of the meridian, each one twice about 33 minutes
apart (the pair lets moving objects be told from transients), and comes back to
a field every few nights. Depths are LSST single-visit 5-sigma limits, degraded
by seeing worse than 0.7 arcsec.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DEPTH", "FIELD_AREA_DEG2", "FIELD_RADIUS_DEG", "BAND_FRACTION", "survey_fields", "make_cadence"]

#: LSST single-visit 5-sigma point-source depths (AB mag) at 0.7 arcsec seeing.
DEPTH = {"u": 23.9, "g": 25.0, "r": 24.7, "i": 24.0, "z": 23.3, "y": 22.1}
#: Fraction of visits per band in the LSST baseline.
BAND_FRACTION = {"u": 0.07, "g": 0.09, "r": 0.22, "i": 0.22, "z": 0.20, "y": 0.20}
FIELD_AREA_DEG2 = 9.6
FIELD_RADIUS_DEG = float(np.degrees(np.arccos(1 - FIELD_AREA_DEG2 / (2 * np.pi * np.degrees(1) ** 2))))
PIXEL_SCALE = 0.2  # arcsec / pixel
EXPOSURE_S = 30.0
LST0_DEG = 0.0  # right ascension on the meridian at the start of night 0


def survey_fields(dec_max=5.0) -> pd.DataFrame:
    """Field centres tiling dec < ``dec_max`` (Fibonacci lattice, one field per 9.6 deg^2).

    Examples
    --------
    >>> from lsstuk_kit.simulate.cadence import survey_fields
    >>> f = survey_fields()
    >>> bool(2000 < len(f) < 2600 and f["dec"].max() <= 5.0)
    True
    """
    n_sphere = int(round(41252.96 / FIELD_AREA_DEG2))
    k = np.arange(n_sphere) + 0.5
    dec = np.degrees(np.arcsin(1 - 2 * k / n_sphere))
    ra = np.degrees(np.pi * (1 + 5**0.5) * k) % 360.0
    keep = dec <= dec_max
    return pd.DataFrame({"fieldId": np.arange(keep.sum()), "ra": ra[keep], "dec": dec[keep]})


def make_cadence(nights=1, *, seed=0, start_mjd=61100.0, fields=None, visits_per_night=None,
                 revisit_nights=3) -> pd.DataFrame:
    """Pointings of an LSST-like survey.

    Parameters
    ----------
    nights : int
        Number of nights.
    seed : int
        Random seed.
    start_mjd : float
        MJD (TAI) of the start of the first night (evening twilight).
    fields : array of int, optional
        Restrict the survey to these field ids (e.g. a few fields for a small
        sample). By default every field within 3 h of the meridian is eligible.
    visits_per_night : int, optional
        Cap on visits per night (an LSST night has about 800).
    revisit_nights : int
        A field is observed on about one night in this many.

    Returns
    -------
    pandas.DataFrame
        One row per visit, in time order: ``expId``, ``mjd`` (mid-exposure),
        ``band``, ``fieldId``, ``ra``, ``dec`` (field centre), ``seeing``
        (arcsec FWHM), ``m5`` (5-sigma depth), ``skySigma`` (nJy per pixel),
        ``rotation`` (deg), ``night``.
    """
    rng = np.random.default_rng(seed)
    allf = survey_fields()
    if fields is not None:
        allf = allf[allf["fieldId"].isin(np.atleast_1d(fields))]
    rows = []
    night_len = 0.40  # days of dark time
    for night in range(nights):
        t0 = start_mjd + night
        lst0 = (LST0_DEG + 0.9856 * night) % 360.0
        # fields within 3 h of the meridian at some time in the night
        ha_start = (allf["ra"].to_numpy() - lst0 + 180) % 360 - 180
        visible = (ha_start > -45) & (ha_start < 45 + 360 * night_len)
        cand = allf[visible]
        if fields is None:
            chosen = cand[rng.random(len(cand)) < 1.0 / revisit_nights]
        else:
            chosen = cand[(night + cand["fieldId"].to_numpy()) % revisit_nights == 0] if revisit_nights > 1 else cand
            if len(chosen) == 0:
                chosen = cand
        if len(chosen) == 0:
            continue
        cap = (visits_per_night or 800) // 2
        if len(chosen) > cap:
            chosen = chosen.iloc[np.sort(rng.choice(len(chosen), cap, replace=False))]
        # each field is observed when it transits, then again ~33 min later
        ha = (chosen["ra"].to_numpy() - lst0) % 360
        ha = np.where(ha > 300, ha - 360, ha)
        t_first = t0 + np.clip(ha / 360.0 * 0.9973, 0.0, night_len - 0.03)
        t_first = t_first + rng.uniform(0, 0.002, len(chosen))
        band1 = rng.choice(list(BAND_FRACTION), len(chosen), p=list(BAND_FRACTION.values()))
        same = rng.random(len(chosen)) < 0.5
        band2 = np.where(same, band1, rng.choice(list(BAND_FRACTION), len(chosen),
                                                 p=list(BAND_FRACTION.values())))
        for t, b in ((t_first, band1), (t_first + 0.0229, band2)):
            seeing = np.clip(rng.lognormal(np.log(0.8), 0.2, len(chosen)), 0.45, 2.0)
            m5 = np.array([DEPTH[x] for x in b]) - 1.25 * np.log10(np.maximum(seeing, 0.7) / 0.7) \
                + rng.normal(0, 0.15, len(chosen))
            rows.append(pd.DataFrame({
                "mjd": t, "band": b, "fieldId": chosen["fieldId"].to_numpy(),
                "ra": chosen["ra"].to_numpy(), "dec": chosen["dec"].to_numpy(),
                "seeing": seeing, "m5": m5, "rotation": rng.uniform(0, 360, len(chosen)),
                "night": night,
            }))
    if not rows:
        raise ValueError("no field was observable: widen `fields` or add nights")
    exp = pd.concat(rows, ignore_index=True).sort_values("mjd", kind="stable").reset_index(drop=True)
    # noise per pixel such that a PSF-fit flux at m5 has S/N 5
    sigma_psf = exp["seeing"].to_numpy() / PIXEL_SCALE / 2.3548
    flux5 = 10 ** ((31.4 - exp["m5"].to_numpy()) / 2.5)
    exp["skySigma"] = flux5 / 5.0 / (np.sqrt(4 * np.pi) * sigma_psf)
    exp["band"] = exp["band"].astype(pd.CategoricalDtype(list(DEPTH)))
    exp.insert(0, "expId", (np.int64(start_mjd) * 10**5 + np.arange(len(exp))).astype(np.int64))
    return exp
