"""The simulated population and its light curves, vectorised over objects and epochs.

Classes (``cls``) and subtypes:

- ``SN`` ``Ia``: rest-frame rise/decline template (rise time 17 d, decline 20 d
  in g, slower in redder bands), stretch ``s`` with the Phillips relation
  M_B = -19.3 - 1.5 (s - 1); apparent magnitude M + distance modulus (Planck18,
  astropy) + a colour and a crude K-term per band; time dilated by (1 + z).
- ``SN`` ``IIP`` / ``Ibc`` / ``IIn``: core-collapse, fainter (M -16.8, -17.5,
  -18.5), IIP with a 90-day plateau.
- Every SN sits in a host galaxy (``hosts`` table: position, redshift, r mag,
  half-light radius, axis ratio, position angle), offset from the nucleus by a
  gamma-distributed multiple of the half-light radius.
- ``AGN``: damped random walk (tau 100-400 d, sigma 0.1-0.25 mag) at a host's nucleus.
- ``VS`` ``RRLyrae`` (P 0.45-0.75 d, sawtooth) and ``Cepheid`` (P 3-30 d).
- ``Flare`` ``Mdwarf``: quiescent red star with flares (rise 3 min, decay 5-30
  min, blue-dominated).
- ``CV`` ``dwarfnova``: outbursts of 2.5-5 mag every 20-80 d lasting 5-12 d.
- ``SSO`` ``asteroid``: made per visit by the survey simulation (not here).

Stars (``VS``, ``Flare``, ``CV``) are denser toward the galactic plane:
density x (1 + 30 exp(-|b| / 8 deg)).

Fluxes are nJy. The difference flux is the flux minus that in the template
(the mean for variables, the host alone for transients).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..surveys.common import BANDS

__all__ = ["make_population", "difference_flux", "template_flux", "stellar_density"]

BAND_IDX = {b: i for i, b in enumerate(BANDS)}
# per-band colour (mag relative to the reference band) and crude K-term (mag per unit z)
_IA_COLOUR = np.array([0.4, 0.0, 0.1, 0.6, 0.7, 0.8])
_IA_KTERM = np.array([2.0, 1.0, 0.3, -0.2, -0.3, -0.3])
_IA_DECLINE = np.array([0.6, 0.8, 1.0, 1.3, 1.4, 1.5])  # decline-time scale per band
_CC_COLOUR = np.array([0.5, 0.1, 0.0, 0.0, 0.05, 0.1])
_STAR_AMP = np.array([1.3, 1.2, 0.9, 0.7, 0.6, 0.55])  # pulsation amplitude per band
_MDWARF_COLOUR = np.array([2.5, 1.5, 0.0, -1.0, -1.5, -1.8])
_FLARE_BOOST = np.array([10.0, 4.0, 1.5, 0.7, 0.5, 0.4])
_CV_COLOUR = np.array([-0.3, -0.1, 0.0, 0.1, 0.2, 0.3])

#: Objects per 9.6 deg^2 field at scale 1 (stellar classes before the density factor).
RATES = {"Ia": 6.0, "IIP": 4.0, "Ibc": 2.0, "IIn": 1.0, "AGN": 25.0,
         "RRLyrae": 2.0, "Cepheid": 0.3, "Mdwarf": 8.0, "dwarfnova": 0.6}
CLASS_OF = {"Ia": "SN", "IIP": "SN", "Ibc": "SN", "IIn": "SN", "AGN": "AGN",
            "RRLyrae": "VS", "Cepheid": "VS", "Mdwarf": "Flare", "dwarfnova": "CV"}
STELLAR = {"RRLyrae", "Cepheid", "Mdwarf", "dwarfnova"}


def mag_to_njy(m):
    """AB magnitude to nJy."""
    return 10.0 ** ((31.4 - np.asarray(m, float)) / 2.5)


_GRID = {}


def _cosmo(z, what):
    """Planck18 distance modulus or angular-diameter distance (kpc), interpolated on a z grid."""
    if not _GRID:
        from astropy.cosmology import Planck18

        zg = np.linspace(0.005, 3.0, 600)
        _GRID["z"] = zg
        _GRID["distmod"] = Planck18.distmod(zg).value
        _GRID["da_kpc"] = Planck18.angular_diameter_distance(zg).to_value("kpc")
    return np.interp(np.asarray(z, float), _GRID["z"], _GRID[what])


def stellar_density(ra, dec):
    """Relative stellar density at (ra, dec): 1 + 30 exp(-|b| / 8 deg)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    b = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg).galactic.b.deg
    return 1.0 + 30.0 * np.exp(-np.abs(b) / 8.0)


def _in_circle(rng, ra0, dec0, radius_deg, n):
    """Uniform points in a circle around (ra0, dec0) (arrays of length n)."""
    r = radius_deg * np.sqrt(rng.random(n))
    phi = rng.uniform(0, 2 * np.pi, n)
    dec = np.clip(dec0 + r * np.sin(phi), -89.999, 89.999)
    ra = (ra0 + r * np.cos(phi) / np.maximum(np.cos(np.radians(dec)), 1e-3)) % 360.0
    return ra, dec


def _counts(rng, lo, hi, n, slope=0.3):
    """Magnitudes with number counts rising as 10**(slope m) between lo and hi."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


def make_population(fields: pd.DataFrame, *, seed=0, scale=1.0, mjd_range=(61000.0, 61200.0),
                    radius_deg=1.75):
    """Draw the objects in each field.

    Parameters
    ----------
    fields : DataFrame
        ``fieldId``, ``ra``, ``dec`` of the fields observed.
    seed : int
        Random seed.
    scale : float
        Multiplies every rate (:data:`RATES`).
    mjd_range : (float, float)
        Transients peak in this interval.

    Returns
    -------
    objects : DataFrame
        One row per object: ``truthId``, ``cls``, ``subtype``, ``fieldId``, ``ra``,
        ``dec``, ``hostId`` (-1 without a host), ``z`` and light-curve parameters.
    hosts : DataFrame
        Host galaxies: ``hostId``, ``ra``, ``dec``, ``z``, ``magR``, ``reArcsec``,
        ``axisRatio``, ``pa``.
    """
    rng = np.random.default_rng(seed)
    dens = stellar_density(fields["ra"].to_numpy(), fields["dec"].to_numpy())
    rows = []
    for (_, f), d in zip(fields.iterrows(), dens):
        for sub, rate in RATES.items():
            lam = rate * scale * (d if sub in STELLAR else 1.0)
            n = rng.poisson(lam)
            if n == 0:
                continue
            ra, dec = _in_circle(rng, f["ra"], f["dec"], radius_deg, n)
            rows.append(pd.DataFrame({"subtype": sub, "fieldId": int(f["fieldId"]), "ra": ra, "dec": dec}))
    if not rows:
        raise ValueError("empty population: raise `scale` or observe more fields")
    obj = pd.concat(rows, ignore_index=True)
    n = len(obj)
    obj.insert(0, "truthId", np.arange(n, dtype=np.int64) + 1)
    obj.insert(1, "cls", obj["subtype"].map(CLASS_OF))
    sub = obj["subtype"].to_numpy()
    t0, t1 = mjd_range
    for col in ("z", "peakMjd", "absMag", "stretch", "mag0", "period", "amp", "phase", "tau", "sigma",
                "riseDays", "fallDays"):
        obj[col] = np.nan
    # --- supernovae
    is_sn = obj["cls"].to_numpy() == "SN"
    zmax = np.where(sub == "Ia", 0.8, 0.3)
    z = zmax * rng.random(n) ** (1 / 3)  # ~ uniform in volume
    z = np.maximum(z, 0.02)
    obj.loc[is_sn, "z"] = z[is_sn]
    obj.loc[is_sn, "peakMjd"] = rng.uniform(t0, t1, is_sn.sum())
    s = np.clip(rng.normal(1.0, 0.1, n), 0.7, 1.3)
    absmag = np.select([sub == "Ia", sub == "IIP", sub == "Ibc", sub == "IIn"],
                       [-19.3 - 1.5 * (s - 1), rng.normal(-16.8, 0.8, n), rng.normal(-17.5, 0.6, n),
                        rng.normal(-18.5, 0.8, n)], np.nan)
    obj["stretch"] = np.where(sub == "Ia", s, np.nan)
    obj["absMag"] = np.where(is_sn, absmag, np.nan)
    obj["riseDays"] = np.select([sub == "Ia", sub == "IIP", sub == "Ibc", sub == "IIn"],
                                [17.0 * s, 8.0, 12.0, 20.0], np.nan)
    obj["fallDays"] = np.select([sub == "Ia", sub == "IIP", sub == "Ibc", sub == "IIn"],
                                [20.0 * s, 90.0, 15.0, 80.0], np.nan)
    # --- AGN
    is_agn = sub == "AGN"
    obj.loc[is_agn, "z"] = rng.uniform(0.1, 2.5, is_agn.sum())
    obj.loc[is_agn, "mag0"] = _counts(rng, 18.5, 24.0, is_agn.sum())
    obj.loc[is_agn, "tau"] = rng.uniform(100, 400, is_agn.sum())
    obj.loc[is_agn, "sigma"] = rng.uniform(0.1, 0.25, is_agn.sum())
    # --- stars
    m = sub == "RRLyrae"
    obj.loc[m, "period"] = rng.uniform(0.45, 0.75, m.sum())
    obj.loc[m, "amp"] = rng.uniform(0.5, 1.0, m.sum())
    obj.loc[m, "mag0"] = _counts(rng, 15.5, 23.0, m.sum())
    m = sub == "Cepheid"
    obj.loc[m, "period"] = np.exp(rng.uniform(np.log(3), np.log(30), m.sum()))
    obj.loc[m, "amp"] = rng.uniform(0.4, 0.8, m.sum())
    obj.loc[m, "mag0"] = _counts(rng, 14.0, 21.0, m.sum())
    m = sub == "Mdwarf"
    obj.loc[m, "mag0"] = _counts(rng, 17.0, 24.0, m.sum())
    obj.loc[m, "amp"] = rng.lognormal(np.log(3.0), 0.8, m.sum())  # flare peak / quiescent (r)
    obj.loc[m, "tau"] = rng.uniform(5, 30, m.sum()) / 1440.0  # decay, days
    m = sub == "dwarfnova"
    obj.loc[m, "mag0"] = _counts(rng, 19.0, 24.5, m.sum())
    obj.loc[m, "amp"] = rng.uniform(2.5, 5.0, m.sum())
    obj.loc[m, "period"] = rng.uniform(20, 80, m.sum())
    obj.loc[m, "riseDays"] = 1.0
    obj.loc[m, "fallDays"] = rng.uniform(5, 12, m.sum())
    obj["phase"] = rng.random(n)

    # --- hosts (for SNe and AGN)
    has_host = is_sn | is_agn
    hz = obj.loc[has_host, "z"].to_numpy()
    nh = int(has_host.sum())
    d_a = _cosmo(hz, "da_kpc")
    re = np.clip(rng.lognormal(np.log(3.0), 0.4, nh) / d_a * 206265.0, 0.3, 8.0)
    host_abs = rng.normal(-20.8, 0.8, nh)
    host_mag = host_abs + _cosmo(hz, "distmod")
    host_id = np.arange(nh, dtype=np.int64) + 1
    offset = np.where(is_agn[has_host], 0.0, rng.gamma(2.0, 0.6, nh) * re)
    ang = rng.uniform(0, 2 * np.pi, nh)
    sn_ra = obj.loc[has_host, "ra"].to_numpy()
    sn_dec = obj.loc[has_host, "dec"].to_numpy()
    h_dec = sn_dec - offset / 3600.0 * np.sin(ang)
    h_ra = (sn_ra - offset / 3600.0 * np.cos(ang) / np.cos(np.radians(sn_dec))) % 360
    hosts = pd.DataFrame({"hostId": host_id, "ra": h_ra, "dec": h_dec, "z": hz, "magR": host_mag,
                          "reArcsec": re, "axisRatio": rng.uniform(0.3, 1.0, nh),
                          "pa": rng.uniform(0, 180, nh)})
    obj["hostId"] = -1
    obj.loc[has_host, "hostId"] = host_id
    obj["hostOffsetArcsec"] = np.nan
    obj.loc[has_host, "hostOffsetArcsec"] = offset
    obj["distmod"] = np.nan
    obj.loc[has_host, "distmod"] = _cosmo(hz, "distmod")
    return obj, hosts


def template_flux(obj: pd.DataFrame, bands) -> np.ndarray:
    """Flux of each object in the template image (n_obj x n_epoch), nJy (host excluded)."""
    b = np.array([BAND_IDX[x] for x in bands])
    sub = obj["subtype"].to_numpy()[:, None]
    mag0 = obj["mag0"].to_numpy()[:, None]
    colour = np.where(sub == "Mdwarf", _MDWARF_COLOUR[b][None, :],
                      np.where(sub == "dwarfnova", _CV_COLOUR[b][None, :], 0.0))
    out = np.where(np.isnan(mag0), 0.0, mag_to_njy(np.nan_to_num(mag0, nan=40) + colour))
    return out


def difference_flux(obj: pd.DataFrame, mjd, bands, rng) -> np.ndarray:
    """True difference-image flux of each object at each epoch, nJy (n_obj x n_epoch).

    ``mjd`` and ``bands`` are the epochs (sorted by time); ``rng`` draws the
    stochastic parts (AGN random walks, flare times).
    """
    t = np.asarray(mjd, float)[None, :]
    b = np.array([BAND_IDX[x] for x in bands])
    n, m = len(obj), t.shape[1]
    sub = obj["subtype"].to_numpy()
    out = np.zeros((n, m))

    # supernovae
    sn = obj["cls"].to_numpy() == "SN"
    if sn.any():
        o = obj[sn]
        z = o["z"].to_numpy()[:, None]
        dt = (t - o["peakMjd"].to_numpy()[:, None]) / (1 + z)
        rise = o["riseDays"].to_numpy()[:, None]
        fall = o["fallDays"].to_numpy()[:, None]
        st = o["subtype"].to_numpy()[:, None]
        ia = st == "Ia"
        fall_b = np.where(ia, fall * _IA_DECLINE[b][None, :], fall)
        shape_rise = np.exp(-((dt / (rise / 2.0)) ** 2))
        shape_fall = np.exp(-dt / fall_b)
        plateau = (st == "IIP") & (dt > 0)
        shape_iip = np.where(dt < 100, 10 ** (-0.4 * 0.008 * dt), 10 ** (-0.4 * (0.8 + 0.02 * (dt - 100))))
        shape = np.where(dt < 0, shape_rise, np.where(plateau, shape_iip, shape_fall))
        shape = np.where(dt < -3 * rise, 0.0, shape)
        colour = np.where(ia, _IA_COLOUR[b][None, :] + _IA_KTERM[b][None, :] * z, _CC_COLOUR[b][None, :])
        peak_mag = o["absMag"].to_numpy()[:, None] + o["distmod"].to_numpy()[:, None] + colour
        out[sn] = mag_to_njy(peak_mag) * shape

    # AGN: damped random walk in magnitude, evaluated along the (sorted) epochs
    agn = sub == "AGN"
    if agn.any():
        o = obj[agn]
        tau = o["tau"].to_numpy()
        sig = o["sigma"].to_numpy()
        x = rng.normal(0, sig)
        dm = np.empty((len(o), m))
        prev = t[0, 0]
        for j in range(m):
            a = np.exp(-(t[0, j] - prev) / tau)
            x = x * a + sig * np.sqrt(1 - a * a) * rng.normal(0, 1, len(o))
            dm[:, j] = x
            prev = t[0, j]
        base = mag_to_njy(o["mag0"].to_numpy()[:, None] + _CC_COLOUR[b][None, :])
        out[agn] = base * (10 ** (-0.4 * dm) - 1)

    # pulsators: sawtooth (RR Lyrae) or skewed sine (Cepheid) in magnitude
    for name in ("RRLyrae", "Cepheid"):
        sel = sub == name
        if not sel.any():
            continue
        o = obj[sel]
        ph = ((t - 61000.0) / o["period"].to_numpy()[:, None] + o["phase"].to_numpy()[:, None]) % 1.0
        if name == "RRLyrae":
            shape = np.where(ph < 0.15, ph / 0.15, 1 - (ph - 0.15) / 0.85)
        else:
            shape = 0.5 + 0.5 * np.sin(2 * np.pi * ph + 0.4 * np.sin(2 * np.pi * ph))
        amp = o["amp"].to_numpy()[:, None] * _STAR_AMP[b][None, :]
        dm = -amp * (shape - 0.5)
        base = mag_to_njy(o["mag0"].to_numpy()[:, None])
        out[sel] = base * (10 ** (-0.4 * dm) - 1)

    # M-dwarf flares: Poisson flares (0.3 per day), fast rise, exponential decay
    sel = sub == "Mdwarf"
    if sel.any():
        o = obj[sel]
        k = len(o)
        span0, span1 = t.min() - 1.0, t.max()
        nfl = rng.poisson(0.3 * (span1 - span0), k)
        owner = np.repeat(np.arange(k), nfl)
        start = rng.uniform(span0, span1, len(owner))
        # make sure some flares are caught: a share start just before a visit
        if len(owner):
            caught = rng.random(len(owner)) < 0.15
            start[caught] = t[0, rng.integers(0, m, caught.sum())] - rng.uniform(0.0005, 0.01, caught.sum())
        q = mag_to_njy(o["mag0"].to_numpy())
        peak = q[owner] * o["amp"].to_numpy()[owner]
        tau = o["tau"].to_numpy()[owner]
        flux = np.zeros((k, m))
        dt = t[0][None, :] - start[:, None]
        rise = 3.0 / 1440.0
        prof = np.where(dt < 0, 0.0, np.where(dt < rise, dt / rise, np.exp(-np.maximum(dt - rise, 0.0) / tau[:, None])))
        np.add.at(flux, owner, peak[:, None] * prof)
        out[sel] = flux * _FLARE_BOOST[b][None, :]

    # dwarf novae: periodic outbursts
    sel = sub == "dwarfnova"
    if sel.any():
        o = obj[sel]
        per = o["period"].to_numpy()[:, None]
        tt = ((t - 61000.0) / per + o["phase"].to_numpy()[:, None]) % 1.0 * per  # days since outburst
        fall = o["fallDays"].to_numpy()[:, None]
        amp = o["amp"].to_numpy()[:, None]
        dm = np.where(tt < 1.0, amp * tt, np.where(tt < 1.0 + fall, amp - 0.5 * amp * (tt - 1.0) / fall,
                                                   np.maximum(0.0, 0.5 * amp - 2.0 * (tt - 1.0 - fall))))
        q = mag_to_njy(o["mag0"].to_numpy()[:, None] + _CV_COLOUR[b][None, :])
        out[sel] = q * (10 ** (0.4 * dm) - 1)
    return out
