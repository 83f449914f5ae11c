"""The simulated population and its light curves, vectorised over objects and epochs.

Classes (``cls``) and subtypes:

- ``SN`` ``Ia``: rest-frame rise/decline template (rise time 17 d, decline 20 d
  in r, slower in redder bands; u and g follow the published g-r colour curve
  :data:`IA_GR`, reaching g-r ~ +0.95 at +30 d), stretch ``s`` with the Phillips relation
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
density x (1 + 30 exp(-``|b|`` / 8 deg)).

Fluxes are nJy. The difference flux is the flux minus that in the template
(the mean for variables, the host alone for transients).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..surveys.common import BANDS

__all__ = ["make_population", "difference_flux", "difference_flux_pairs", "template_flux", "template_flux_pairs",
           "stellar_density"]

BAND_IDX = {b: i for i, b in enumerate(BANDS)}
# per-band colour (mag relative to the reference band) and crude K-term (mag per unit z)
_IA_COLOUR = np.array([0.4, 0.0, 0.1, 0.6, 0.7, 0.8])
_IA_KTERM = np.array([2.0, 1.0, 0.3, -0.2, -0.3, -0.3])
_IA_DECLINE = np.array([1.0, 1.0, 1.0, 1.3, 1.4, 1.5])  # decline-time scale per band (u, g: colour curve below)
#: Rest-frame g-r of SNe Ia against phase (days from peak), piecewise linear: red in the first days, then
#: about -0.15 from ~13 d before peak (Bulla et al. 2020: nearly constant from 6 d after first light), -0.1 at
#: peak, reddening to about +0.95 at +30 d, then bluer again along the Lira law.
#: The knots approximate (by eye, not a fit) published colour curves: Bulla et al. (2020, ApJ 902, 48; early
#: ZTF g-r of SNe Ia), Burns et al. (2014, ApJ 789, 32; CSP intrinsic colours, reddest near +30 d) and
#: Phillips et al. (1999, AJ 118, 1766; the Lira law, a linear blueing after +35 d, here carried to g-r).
IA_GR_PHASE = np.array([-20.0, -15.0, -10.0, -3.0, 0.0, 10.0, 20.0, 30.0, 40.0, 80.0])
IA_GR = np.array([0.3, -0.05, -0.15, -0.15, -0.1, 0.3, 0.75, 0.95, 0.85, 0.45])
_IA_GR_SCALE = np.array([1.6, 1.0, 0.0, 0.0, 0.0, 0.0])  # u follows g-r x 1.6; r and redder keep their decline
#: Magnitude offset of the templates of pulsators and AGN below their mean (in units of the amplitude):
#: real templates are coadds that rarely sit at the bright extreme, so negative differences are a minority
#: (7.8 % of real Rubin alerts have psfFlux < 0).
VARIABLE_TEMPLATE_PHASE = 0.25
AGN_TEMPLATE_SIGMA = 0.9
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
    """Relative stellar density at (ra, dec): 1 + 30 exp(-``|b|`` / 8 deg).

    Examples
    --------
    At the north galactic pole and at the galactic centre:

    >>> from lsstuk_kit.simulate.population import stellar_density
    >>> stellar_density([192.859, 266.405], [27.128, -28.936]).round(2).tolist()
    [1.0, 31.0]
    """
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

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.simulate.population import make_population
    >>> fields = pd.DataFrame({"fieldId": [1], "ra": [150.0], "dec": [-30.0]})
    >>> objects, hosts = make_population(fields, seed=0, scale=0.5)
    >>> len(objects), len(hosts)
    (44, 24)
    >>> sorted(objects["cls"].unique())
    ['AGN', 'CV', 'Flare', 'SN', 'VS']
    >>> bool(objects.loc[objects["cls"] == "SN", "hostId"].isin(hosts["hostId"]).all())  # every SN has a host
    True
    >>> make_population(fields, scale=0)
    Traceback (most recent call last):
    ...
    ValueError: empty population: raise `scale` or observe more fields
    """
    rng = np.random.default_rng(seed)
    dens = stellar_density(fields["ra"].to_numpy(), fields["dec"].to_numpy())
    subs = np.array(list(RATES))
    stellar = np.isin(subs, list(STELLAR))
    lam = scale * np.array(list(RATES.values()))[None, :] * np.where(stellar[None, :], dens[:, None], 1.0)
    counts = rng.poisson(lam).ravel()
    if counts.sum() == 0:
        raise ValueError("empty population: raise `scale` or observe more fields")
    fi = np.repeat(np.repeat(np.arange(len(fields)), len(subs)), counts)
    si = np.repeat(np.tile(np.arange(len(subs)), len(fields)), counts)
    ra, dec = _in_circle(rng, fields["ra"].to_numpy()[fi], fields["dec"].to_numpy()[fi], radius_deg, len(fi))
    obj = pd.DataFrame({"subtype": subs[si], "fieldId": fields["fieldId"].to_numpy()[fi], "ra": ra, "dec": dec})
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
    obj.loc[m, "amp"] = rng.lognormal(np.log(1.5), 0.9, m.sum())  # flare peak / quiescent (r): mostly small flares
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
    # categorical labels: fast to subset (Arrow-backed strings are slow to take per field)
    obj["cls"] = obj["cls"].astype("category")
    obj["subtype"] = obj["subtype"].astype("category")
    return obj, hosts


def template_flux_pairs(obj: pd.DataFrame, oi, b) -> np.ndarray:
    """Template flux (nJy) for (object, band index) pairs (host excluded).

    Examples
    --------
    The same fluxes as :func:`template_flux`, for chosen (object row, band index) pairs:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from lsstuk_kit.simulate.population import make_population
    >>> fields = pd.DataFrame({"fieldId": [1], "ra": [150.0], "dec": [-30.0]})
    >>> objects, hosts = make_population(fields, seed=0, scale=0.5)
    >>> from lsstuk_kit.simulate.population import BAND_IDX, template_flux, template_flux_pairs
    >>> rows = np.arange(len(objects))
    >>> pairs = template_flux_pairs(objects, rows, np.full(len(objects), BAND_IDX["r"]))
    >>> bool(np.array_equal(pairs, template_flux(objects, ["r"])[:, 0]))
    True
    """
    sub = obj["subtype"].to_numpy(dtype=object)[oi]
    mag0 = obj["mag0"].to_numpy(float)[oi]
    colour = np.where(sub == "Mdwarf", _MDWARF_COLOUR[b], np.where(sub == "dwarfnova", _CV_COLOUR[b], 0.0))
    return np.where(np.isnan(mag0), 0.0, mag_to_njy(np.nan_to_num(mag0, nan=40) + colour))


def template_flux(obj: pd.DataFrame, bands) -> np.ndarray:
    """Flux of each object in the template image (n_obj x n_epoch), nJy (host excluded).

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.simulate.population import make_population
    >>> fields = pd.DataFrame({"fieldId": [1], "ra": [150.0], "dec": [-30.0]})
    >>> objects, hosts = make_population(fields, seed=0, scale=0.5)
    >>> from lsstuk_kit.simulate.population import template_flux
    >>> flux = template_flux(objects, ["g", "r"])
    >>> flux.shape
    (44, 2)
    >>> float(flux[(objects["cls"] == "SN").to_numpy()].max())  # a supernova is not in its template
    0.0
    >>> bool((flux[(objects["cls"] == "VS").to_numpy()] > 0).all())  # a variable star is
    True
    """
    b = np.array([BAND_IDX[x] for x in bands])
    sub = obj["subtype"].to_numpy()[:, None]
    mag0 = obj["mag0"].to_numpy()[:, None]
    colour = np.where(sub == "Mdwarf", _MDWARF_COLOUR[b][None, :],
                      np.where(sub == "dwarfnova", _CV_COLOUR[b][None, :], 0.0))
    out = np.where(np.isnan(mag0), 0.0, mag_to_njy(np.nan_to_num(mag0, nan=40) + colour))
    return out


def difference_flux(obj: pd.DataFrame, mjd, bands, rng) -> np.ndarray:
    """True difference-image flux of each object at each epoch, nJy (n_obj x n_epoch).

    ``mjd`` and ``bands`` are the epochs; ``rng`` draws the stochastic parts
    (AGN random walks, flare times).

    Examples
    --------
    A type Ia supernova 40 days before, at and 60 days after its peak:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from lsstuk_kit.simulate.population import make_population
    >>> fields = pd.DataFrame({"fieldId": [1], "ra": [150.0], "dec": [-30.0]})
    >>> objects, hosts = make_population(fields, seed=0, scale=0.5)
    >>> from lsstuk_kit.simulate.population import difference_flux
    >>> ia = objects[objects["subtype"] == "Ia"].head(1)
    >>> peak = ia["peakMjd"].iloc[0]
    >>> difference_flux(ia, [peak - 40, peak, peak + 60], ["r", "r", "r"], np.random.default_rng(1)).round()
    array([[  0., 519.,  88.]])
    >>> difference_flux(objects, [61100.0, 61101.0, 61102.0], ["g", "r", "i"], np.random.default_rng(1)).shape
    (44, 3)
    """
    n, m = len(obj), len(mjd)
    oi = np.repeat(np.arange(n), m)
    t = np.tile(np.asarray(mjd, float), n)
    b = np.tile(np.array([BAND_IDX[x] for x in bands]), n)
    return difference_flux_pairs(obj, oi, t, b, rng).reshape(n, m)


def difference_flux_pairs(obj: pd.DataFrame, oi, t, b, rng) -> np.ndarray:
    """True difference flux (nJy) for (object, epoch) pairs: object row ``oi``, time ``t``, band index ``b``.

    Examples
    --------
    A type Ia supernova at and 60 days after its peak, in r:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from lsstuk_kit.simulate.population import make_population
    >>> fields = pd.DataFrame({"fieldId": [1], "ra": [150.0], "dec": [-30.0]})
    >>> objects, hosts = make_population(fields, seed=0, scale=0.5)
    >>> from lsstuk_kit.simulate.population import BAND_IDX, difference_flux_pairs
    >>> k = int(np.flatnonzero(objects["subtype"] == "Ia")[0])
    >>> peak = objects["peakMjd"].iloc[k]
    >>> r = BAND_IDX["r"]
    >>> difference_flux_pairs(objects, [k, k], [peak, peak + 60], [r, r], np.random.default_rng(1)).round()
    array([519.,  88.])
    """
    oi = np.asarray(oi, np.int64)
    t = np.asarray(t, float)
    b = np.asarray(b, np.int64)
    out = np.zeros(len(oi))
    sub_all = obj["subtype"].to_numpy(dtype=object)
    sub = sub_all[oi]
    col = {c: obj[c].to_numpy(dtype=float)[oi] for c in ("z", "peakMjd", "riseDays", "fallDays", "absMag",
                                                            "distmod", "mag0", "period", "phase", "amp")}
    # supernovae
    sn = np.isin(sub, ["Ia", "IIP", "Ibc", "IIn"])
    if sn.any():
        z = col["z"][sn]
        dt = (t[sn] - col["peakMjd"][sn]) / (1 + z)
        rise, fall = col["riseDays"][sn], col["fallDays"][sn]
        st = sub[sn]
        ia = st == "Ia"
        bb = b[sn]
        fall_b = np.where(ia, fall * _IA_DECLINE[bb], fall)
        shape_rise = np.exp(-((dt / (rise / 2.0)) ** 2))
        shape_fall = np.exp(-np.maximum(dt, 0) / fall_b)
        plateau = (st == "IIP") & (dt > 0)
        shape_iip = np.where(dt < 100, 10 ** (-0.4 * 0.008 * dt), 10 ** (-0.4 * (0.8 + 0.02 * (dt - 100))))
        shape = np.where(dt < 0, shape_rise, np.where(plateau, shape_iip, shape_fall))
        shape = np.where(dt < -3 * rise, 0.0, shape)
        gr = np.interp(dt, IA_GR_PHASE, IA_GR) - np.interp(0.0, IA_GR_PHASE, IA_GR)
        colour = np.where(ia, _IA_COLOUR[bb] + _IA_KTERM[bb] * z + _IA_GR_SCALE[bb] * gr, _CC_COLOUR[bb])
        out[sn] = mag_to_njy(col["absMag"][sn] + col["distmod"][sn] + colour) * shape
    # AGN: damped random walk in magnitude along each object's time-ordered epochs
    agn = sub == "AGN"
    if agn.any():
        idx = np.flatnonzero(agn)
        order = idx[np.lexsort((t[idx], oi[idx]))]
        obj_of = oi[order]
        first = np.r_[True, obj_of[1:] != obj_of[:-1]]
        rank = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        tau_all = obj["tau"].to_numpy(float)
        sig_all = obj["sigma"].to_numpy(float)
        x = {}
        state = np.zeros(len(obj))
        prev = np.zeros(len(obj))
        dm = np.empty(len(order))
        for k in range(int(rank.max()) + 1):
            sel = np.flatnonzero(rank == k)
            o = obj_of[sel]
            tt = t[order[sel]]
            if k == 0:
                state[o] = rng.normal(0, sig_all[o])
            else:
                a = np.exp(-(tt - prev[o]) / tau_all[o])
                state[o] = state[o] * a + sig_all[o] * np.sqrt(1 - a * a) * rng.normal(0, 1, len(o))
            prev[o] = tt
            dm[sel] = state[o]
        del x
        base = mag_to_njy(col["mag0"][order] + _CC_COLOUR[b[order]])
        tmpl = 10 ** (-0.4 * AGN_TEMPLATE_SIGMA * sig_all[obj_of])  # template fainter than the mean
        out[order] = base * (10 ** (-0.4 * dm) - tmpl)
    # pulsators: sawtooth (RR Lyrae) or skewed sine (Cepheid) in magnitude
    for name in ("RRLyrae", "Cepheid"):
        sel = sub == name
        if not sel.any():
            continue
        ph = ((t[sel] - 61000.0) / col["period"][sel] + col["phase"][sel]) % 1.0
        if name == "RRLyrae":
            shape = np.where(ph < 0.15, ph / 0.15, 1 - (ph - 0.15) / 0.85)
        else:
            shape = 0.5 + 0.5 * np.sin(2 * np.pi * ph + 0.4 * np.sin(2 * np.pi * ph))
        dm = -col["amp"][sel] * _STAR_AMP[b[sel]] * (shape - VARIABLE_TEMPLATE_PHASE)
        out[sel] = mag_to_njy(col["mag0"][sel]) * (10 ** (-0.4 * dm) - 1)
    # M-dwarf flares: Poisson flares (0.3 per day), fast rise, exponential decay
    sel = np.flatnonzero(sub == "Mdwarf")
    if len(sel):
        objs = np.unique(oi[sel])
        span0, span1 = t[sel].min() - 1.0, t[sel].max()
        nfl = rng.poisson(0.3 * (span1 - span0), len(objs))
        owner = np.repeat(objs, nfl)
        start = rng.uniform(span0, span1, len(owner))
        if len(owner):
            # a share of flares start just before one of the star's own visits, so some are caught
            caught = rng.random(len(owner)) < 0.08
            if caught.any():
                pick = rng.integers(0, len(sel), caught.sum())
                start[caught] = t[sel][pick] - rng.uniform(0.0005, 0.01, caught.sum())
                owner[caught] = oi[sel][pick]
            q = mag_to_njy(obj["mag0"].to_numpy(float)[owner])
            peak = q * obj["amp"].to_numpy(float)[owner]
            tau = obj["tau"].to_numpy(float)[owner]
            # pair each flare with the epochs of its star
            ep = pd.DataFrame({"o": oi[sel], "k": sel})
            fl = pd.DataFrame({"o": owner, "f": np.arange(len(owner))})
            j = ep.merge(fl, on="o")
            kk, ff = j["k"].to_numpy(), j["f"].to_numpy()
            dt = t[kk] - start[ff]
            rise = 3.0 / 1440.0
            prof = np.where(dt < 0, 0.0, np.where(dt < rise, dt / rise, np.exp(-np.maximum(dt - rise, 0) / tau[ff])))
            np.add.at(out, kk, peak[ff] * prof * _FLARE_BOOST[b[kk]])
    # dwarf novae: periodic outbursts
    sel = sub == "dwarfnova"
    if sel.any():
        per = col["period"][sel]
        tt = ((t[sel] - 61000.0) / per + col["phase"][sel]) % 1.0 * per
        fall = col["fallDays"][sel]
        amp = col["amp"][sel]
        dm = np.where(tt < 1.0, amp * tt, np.where(tt < 1.0 + fall, amp - 0.5 * amp * (tt - 1.0) / fall,
                                                   np.maximum(0.0, 0.5 * amp - 2.0 * (tt - 1.0 - fall))))
        out[sel] = mag_to_njy(col["mag0"][sel] + _CV_COLOUR[b[sel]]) * (10 ** (0.4 * dm) - 1)
    return out
