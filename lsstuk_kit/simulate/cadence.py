"""An LSST-like cadence: fields over the southern sky, pairs of visits, revisits.

Fields are circles of 9.6 deg^2 (radius 1.75 deg, the LSST camera's field of
view) on a Fibonacci lattice over dec -90 to +5 deg. Each night observes the
fields within a few hours of the meridian, most of them at least twice (the
pair lets moving objects be told from transients), and comes back to a field
every few nights.

Cadence realism (issue 13, against real Rubin alert histories): a field gets 1, 2 or 3
visits a night (:data:`VISITS_PER_NIGHT`), separated by 3-150 minutes (log-uniform),
and the gaps between nights have a tail of interruptions of 4-14 nights
(:data:`LONG_GAP_CHANCE`); seeing has a median of 1.15 arcsec. Depths are LSST
single-visit 5-sigma limits, degraded by seeing worse than 0.7 arcsec.

Bands are drawn per visit from :data:`BAND_FRACTION` (a field's later visits keep the first
visit's band half the time). ``night_bands`` of :func:`make_cadence` instead sets the band
sequence of chosen nights, as Rubin's baseline does when it takes a field's same-night visits
in two filters (g then r, r then i) so that a colour can be measured from near-simultaneous pairs.
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
#: Share of field-nights with 1, 2 and 3 visits (Rubin's baseline pairs most visits; some are single).
VISITS_PER_NIGHT = (0.2, 0.6, 0.2)
#: Range (minutes) of the log-uniform gap between visits of a field in one night.
PAIR_GAP_MIN = (3.0, 150.0)
#: Median delivered seeing (arcsec FWHM): real LSSTCam alert PSFs are about 1.0-1.3 arcsec.
SEEING_MEDIAN = 1.15
#: Background-limited depth loss with seeing: m5 = m5(0.7") - 2.5 log10(seeing / 0.7) (Ivezic et al. 2019,
#: ApJ 873, 111, eq. 6), which keeps the per-pixel sky noise independent of seeing.
SEEING_DEPTH_SLOPE = 2.5
#: Chance that a night is lost to weather (whole-sky mode) ...
WEATHER_LOSS = 0.1
#: ... and, for chosen fields, chance that a revisit gap is stretched by a 4-14 night interruption
#: (weather, bright time, the field setting): gaps between nights get a tail, as in real Rubin histories.
LONG_GAP_CHANCE = 0.15


def _field_nights(rng, field_ids, nights, revisit_nights):
    """Which nights each field is observed: (n_fields, nights) bool.

    Counted back from the last night (always observed, so a sample's last night has alerts
    in every field): gaps of ``revisit_nights`` on average (geometric), with a tail of long
    interruptions (:data:`LONG_GAP_CHANCE`).
    """
    out = np.zeros((len(field_ids), nights), bool)
    n_gap = nights + 1
    p = 1.0 / max(revisit_nights, 1)
    gaps = rng.geometric(p, (len(field_ids), n_gap)) if revisit_nights > 1 else np.ones((len(field_ids), n_gap), int)
    gaps = gaps + np.where(rng.random((len(field_ids), n_gap)) < LONG_GAP_CHANCE,
                           rng.integers(4, 15, (len(field_ids), n_gap)), 0)
    back = np.concatenate([np.zeros((len(field_ids), 1), int), np.cumsum(gaps, axis=1)], axis=1)
    night = nights - 1 - back
    r, c = np.nonzero(night >= 0)
    out[r, night[r, c]] = True
    return out


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


def _night_band_plan(night_bands, nights):
    """``{night: list of band sequences}`` with night indices made non-negative, checked."""
    plan = {}
    for key, seqs in (night_bands or {}).items():
        n = int(key)
        night = n + nights if n < 0 else n
        if not 0 <= night < nights:
            raise ValueError(f"night_bands: night {key} is outside the {nights} nights")
        seqs = [seqs] if isinstance(seqs, str) else list(seqs)
        if not seqs:
            raise ValueError(f"night_bands: night {key} has no band sequence")
        for seq in seqs:
            if not 1 <= len(seq) <= len(VISITS_PER_NIGHT) or set(seq) - set(DEPTH):
                raise ValueError(f"night_bands: {seq!r} is not 1 to {len(VISITS_PER_NIGHT)} bands of "
                                 f"{''.join(DEPTH)}")
        plan[night] = ["".join(x) for x in seqs]
    return plan


def make_cadence(nights=1, *, seed=0, start_mjd=61100.0, fields=None, visits_per_night=None,
                 revisit_nights=3, night_bands=None) -> pd.DataFrame:
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
        A field is observed on about one night in this many (plus interruptions, see
        :data:`LONG_GAP_CHANCE`). With ``fields``, the last night observes every field.
    night_bands : dict, optional
        Band sequence of chosen nights, ``{night: bands}``: the night's index (negative
        counts from the end, ``-1`` is the last night) and either one sequence of bands
        (a string, ``"gr"``: each field observed that night gets a g visit, then an r visit)
        or a list of such strings dealt to the night's fields in turn, in order of field id
        (``["gr", "ri"]``). A sequence has 1 to 3 bands, so it also sets the number of
        visits; the times of the visits are drawn as on other nights. Rubin's baseline
        takes a field's same-night visits in two filters like this, for colours. Other
        nights, and every night by default, draw bands from :data:`BAND_FRACTION`.

    Returns
    -------
    pandas.DataFrame
        One row per visit, in time order: ``expId``, ``mjd`` (mid-exposure),
        ``band``, ``fieldId``, ``ra``, ``dec`` (field centre), ``seeing``
        (arcsec FWHM), ``m5`` (5-sigma depth), ``skySigma`` (nJy per pixel),
        ``rotation`` (deg), ``night``.

    Examples
    --------
    >>> from lsstuk_kit.simulate.cadence import make_cadence
    >>> exp = make_cadence(3, seed=1, fields=[15, 237], night_bands={-1: "gr"})
    >>> last = exp[exp["night"] == 2]
    >>> last.groupby("fieldId")["band"].agg(lambda b: "".join(b.astype(str))).to_dict()
    {15: 'gr', 237: 'gr'}
    """
    plan = _night_band_plan(night_bands, nights)
    rng = np.random.default_rng(seed)
    allf = survey_fields()
    if fields is not None:
        allf = allf[allf["fieldId"].isin(np.atleast_1d(fields))]
        planned = _field_nights(rng, allf["fieldId"].to_numpy(), nights, revisit_nights)
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
            if night < nights - 1 and rng.random() < WEATHER_LOSS:
                continue  # clouds: the whole night lost
            chosen = cand[rng.random(len(cand)) < 1.0 / revisit_nights]
        else:
            chosen = allf[planned[:, night]]
        if len(chosen) == 0:
            continue
        cap = (visits_per_night or 800) // 2
        if len(chosen) > cap:
            chosen = chosen.iloc[np.sort(rng.choice(len(chosen), cap, replace=False))]
        m = len(chosen)
        # each field is observed near transit, then revisited 1, 2 or 3 times (see VISITS_PER_NIGHT)
        ha = (chosen["ra"].to_numpy() - lst0) % 360
        ha = np.where(ha > 300, ha - 360, ha)
        t_first = t0 + np.clip(ha / 360.0 * 0.9973, 0.0, night_len - 0.11)
        t_first = t_first + rng.uniform(0, 0.002, m)
        n_vis = rng.choice(np.arange(1, len(VISITS_PER_NIGHT) + 1), m, p=VISITS_PER_NIGHT)
        n_vis = np.where(np.cumsum(n_vis) <= 2 * cap, n_vis, 0)  # the night's visit budget
        gaps = np.exp(rng.uniform(np.log(PAIR_GAP_MIN[0]), np.log(PAIR_GAP_MIN[1]), (m, len(VISITS_PER_NIGHT) - 1)))
        gaps = gaps / 1440.0 / np.arange(1, len(VISITS_PER_NIGHT))[None, :]  # a third visit splits the span
        times = t_first[:, None] + np.concatenate([np.zeros((m, 1)), np.cumsum(gaps, axis=1)], axis=1)
        band1 = rng.choice(list(BAND_FRACTION), m, p=list(BAND_FRACTION.values()))
        seq = None
        if night in plan:  # the night's band sequence: one visit per band, fields in turn (by field id)
            deal = np.argsort(np.argsort(chosen["fieldId"].to_numpy(), kind="stable"), kind="stable")
            seq = [plan[night][j % len(plan[night])] for j in deal]
            n_vis = np.array([len(x) for x in seq])
            n_vis = np.where(np.cumsum(n_vis) <= 2 * cap, n_vis, 0)
        for k in range(len(VISITS_PER_NIGHT)):
            on = n_vis > k
            same = rng.random(m) < 0.5
            b = np.where(same | (k == 0), band1, rng.choice(list(BAND_FRACTION), m, p=list(BAND_FRACTION.values())))
            if seq is not None:
                b = np.array([x[min(k, len(x) - 1)] for x in seq])  # (visits past a sequence's end are off)
            seeing = np.clip(rng.lognormal(np.log(SEEING_MEDIAN), 0.2, m), 0.6, 2.5)
            m5 = np.array([DEPTH[x] for x in b]) - SEEING_DEPTH_SLOPE * np.log10(np.maximum(seeing, 0.7) / 0.7) \
                + rng.normal(0, 0.15, m)
            rot = rng.uniform(0, 360, m)
            rows.append(pd.DataFrame({
                "mjd": times[on, k], "band": b[on], "fieldId": chosen["fieldId"].to_numpy()[on],
                "ra": chosen["ra"].to_numpy()[on], "dec": chosen["dec"].to_numpy()[on],
                "seeing": seeing[on], "m5": m5[on], "rotation": rot[on],
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
