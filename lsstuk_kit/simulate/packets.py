"""Build schema-valid Rubin alert packets from simulated light curves.

This is the packet-making layer of the simulator: it fills every field of an
official Rubin schema (any version shipped by ``lsst-alert-packet``), sets the
physically meaningful ones from a simple population (supernova-like transients
and periodic variables on a survey-like cadence), and writes cutouts as FITS
laid out like real Rubin alerts (PRIMARY in nJy with a WCS, UNCERT, PSFIMAGE).
"""

from __future__ import annotations

import numpy as np

from ..schema import latest_schema_version, load_rubin_schema
from ..surveys._avrotypes import collect_names, resolve
from ..surveys.common import BANDS

__all__ = ["fill_record", "fits_bytes", "make_stamps", "simulate_packets"]

PIXEL_SCALE = 0.2  # arcsec per pixel
STAMP = 30
#: 5-sigma point-source depths per band (AB mag), LSST single visits.
DEPTH = {"u": 23.9, "g": 25.0, "r": 24.7, "i": 24.0, "z": 23.3, "y": 22.1}

_DEFAULTS = {"long": 0, "int": 0, "float": 0.0, "double": 0.0, "boolean": False, "string": "",
             "bytes": b""}


def fill_record(rtype, names, values=None):
    """Return a dict valid for Avro record type ``rtype``, taking ``values`` where given.

    Nullable fields not in ``values`` are ``None``; others get a zero of their type.

    Examples
    --------
    >>> from lsstuk_kit.simulate import fill_record
    >>> point = {"type": "record", "name": "Point",
    ...          "fields": [{"name": "id", "type": "long"}, {"name": "flux", "type": ["null", "double"]},
    ...                     {"name": "band", "type": "string"}]}
    >>> fill_record(point, {}, {"band": "r"})
    {'id': 0, 'flux': None, 'band': 'r'}
    """
    kind, rec = resolve(rtype, names)
    if kind == "array":
        kind, rec = resolve(rec["items"], names)
    values = values or {}
    out = {}
    for f in rec["fields"]:
        name = f["name"]
        if name in values:
            out[name] = values[name]
            continue
        t = f["type"]
        if isinstance(t, list) and "null" in t:
            out[name] = None
            continue
        k, d = resolve(t, names)
        if k == "scalar":
            out[name] = _DEFAULTS.get(d if isinstance(d, str) else d.get("type"), None)
            if isinstance(d, dict) and d.get("type") == "enum":
                out[name] = d["symbols"][0]
        elif k == "bytes":
            out[name] = b""
        elif k == "array":
            out[name] = []
        elif k == "map":
            out[name] = {}
        elif k == "record":
            out[name] = fill_record(d, names)
        else:
            out[name] = None
    return out


def _card(key, value):
    if isinstance(value, bool):
        v = "T" if value else "F"
        return f"{key:<8}= {v:>20}".ljust(80)
    if isinstance(value, str):
        v = "'" + value.ljust(8) + "'"
        return f"{key:<8}= {v:<20}".ljust(80)
    if isinstance(value, (int, np.integer)):
        return f"{key:<8}= {int(value):>20}".ljust(80)
    return f"{key:<8}= {float(value):>20.12G}".ljust(80)


def _hdu(image, cards, primary):
    image = np.asarray(image)
    bitpix = -64 if image.dtype == np.float64 else -32
    head = [_card("SIMPLE", True)] if primary else [_card("XTENSION", "IMAGE")]
    head += [_card("BITPIX", bitpix), _card("NAXIS", 2), _card("NAXIS1", image.shape[1]),
             _card("NAXIS2", image.shape[0])]
    head += [_card("EXTEND", True)] if primary else [_card("PCOUNT", 0), _card("GCOUNT", 1)]
    head += [_card(k, v) for k, v in cards]
    head.append("END".ljust(80))
    text = "".join(head).encode("ascii")
    text += b" " * (-len(text) % 2880)
    data = image.astype(">f8" if bitpix == -64 else ">f4").tobytes()
    data += b"\0" * (-len(data) % 2880)
    return text + data


def fits_bytes(image, variance, psf, ra, dec, crpix=(15.5, 15.5), rotation_deg=0.0):
    """FITS bytes laid out like a Rubin alert cutout: PRIMARY (nJy, WCS), UNCERT, PSFIMAGE.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.cutouts import decode_stamp
    >>> from lsstuk_kit.simulate import fits_bytes
    >>> data = fits_bytes(np.zeros((30, 30)), np.ones((30, 30)), np.full((21, 21), 1 / 441), 150.0, -30.0)
    >>> len(data) % 2880  # whole FITS blocks
    0
    >>> stamp = decode_stamp(data)
    >>> stamp.image.shape, stamp.variance.shape, stamp.psf.shape, stamp.header["BUNIT"]
    ((30, 30), (30, 30), (21, 21), 'nJy')
    """
    scale = PIXEL_SCALE / 3600.0
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    wcs = [("BUNIT", "nJy"), ("WCSAXES", 2), ("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"),
           ("CUNIT1", "deg"), ("CUNIT2", "deg"),
           ("CRPIX1", float(crpix[0])), ("CRPIX2", float(crpix[1])),
           ("PC1_1", -scale * c), ("PC1_2", scale * s), ("PC2_1", scale * s), ("PC2_2", scale * c),
           ("CDELT1", 1.0), ("CDELT2", 1.0), ("CRVAL1", float(ra)), ("CRVAL2", float(dec)),
           ("ROTPA", float(rotation_deg))]
    return (_hdu(image.astype(np.float32), wcs, True)
            + _hdu(variance.astype(np.float32), [("UTYPE", "VarianceUncertainty"), ("EXTNAME", "UNCERT")], False)
            + _hdu(psf.astype(np.float64), [("EXTNAME", "PSFIMAGE")], False))


def _gauss(n, sigma, dx=0.0, dy=0.0):
    y, x = np.mgrid[:n, :n].astype(float)
    c = (n - 1) / 2.0
    g = np.exp(-((x - c - dx) ** 2 + (y - c - dy) ** 2) / (2 * sigma**2))
    return g / g.sum()


def make_stamps(rng, flux, sky_sigma, seeing_px, host_flux=0.0):
    """Science, template, difference (nJy) and the science variance for one detection.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.simulate.packets import make_stamps
    >>> rng = np.random.default_rng(0)
    >>> science, template, difference, variance = make_stamps(rng, 5000.0, sky_sigma=10.0, seeing_px=2.0)
    >>> difference.shape, float(variance[0, 0])
    ((30, 30), 100.0)
    >>> bool(abs(difference.sum() - 5000.0) < 1000.0)  # the source's flux, plus noise
    True
    """
    dx, dy = rng.uniform(-0.5, 0.5, 2)
    psf = _gauss(STAMP, seeing_px, dx, dy)
    host = host_flux * _gauss(STAMP, 2.5 * seeing_px, 1.5, -1.0) if host_flux else 0.0
    template = host + rng.normal(0, sky_sigma / 2.0, (STAMP, STAMP))
    science = host + flux * psf + rng.normal(0, sky_sigma, (STAMP, STAMP))
    difference = science - template
    variance = np.full((STAMP, STAMP), sky_sigma**2)
    return science, template, difference, variance


def _sn_flux(t, peak_mjd, peak_flux, rise=15.0, fall=30.0):
    dt = t - peak_mjd
    return peak_flux * np.where(dt < 0, np.exp(-(dt / rise) ** 2), np.exp(-dt / fall))


def simulate_packets(n_alerts=200, *, n_history=30, min_history=0, detect_all=False, seed=1, version=None, cutouts=True,
                     mjd=61100.0, ra_range=(150.0, 160.0), dec_range=(-35.0, -25.0)):
    """Simulate one night's alerts as Rubin alert dicts of a given schema version.

    Each object is a supernova-like transient (60 %) or a periodic variable;
    its history holds up to ``n_history`` earlier detections and as many forced
    photometry points over the previous year, drawn on a random cadence.

    Parameters
    ----------
    n_alerts : int
        Number of alerts (objects alert several times in the night).
    n_history : int
        Maximum previous epochs per alert.
    min_history : int
        Minimum previous epochs per alert.
    detect_all : bool
        Make every previous epoch a detection (as for the bright, long-lived
        objects whose real alerts carry hundreds of previous detections).
    seed : int
        Random seed; the same seed gives the same packets.
    version : (int, int), optional
        Schema version (default: the latest in ``lsst-alert-packet``).
    cutouts : bool
        Attach FITS cutouts.
    mjd : float
        Start of the night (MJD TAI).

    Returns
    -------
    schema : dict
        The parsed writer schema.
    alerts : list of dict
        The alert packets, in time order.

    Examples
    --------
    >>> import fastavro
    >>> from lsstuk_kit.simulate import simulate_packets
    >>> schema, alerts = simulate_packets(4, n_history=2, min_history=1, detect_all=True, seed=1, cutouts=False)
    >>> len(alerts), [len(a["prvDiaSources"]) for a in alerts]
    (4, [2, 2, 1, 1])
    >>> times = [a["diaSource"]["midpointMjdTai"] for a in alerts]
    >>> times == sorted(times)
    True
    >>> parsed = fastavro.parse_schema(schema)
    >>> all(fastavro.validation.validate(a, parsed) for a in alerts)
    True
    """
    rng = np.random.default_rng(seed)
    major, minor = version or latest_schema_version()
    schema = load_rubin_schema(major, minor)
    names = collect_names(schema)
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    src_t, fsrc_t, obj_t = fields["diaSource"], fields["prvDiaSources"], fields["diaObject"]
    forced_t = fields.get("prvDiaForcedSources")
    legacy = major < 5
    time_key, band_key, dec_key = (("midPointTai", "filterName", "decl") if legacy
                                   else ("midpointMjdTai", "band", "dec"))
    flux_key, err_key = ("psFlux", "psFluxErr") if legacy else ("psfFlux", "psfFluxErr")

    n_obj = max(1, n_alerts // 2)
    obj_ra = rng.uniform(*ra_range, n_obj)
    obj_dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(dec_range)), n_obj)))
    is_sn = rng.random(n_obj) < 0.6
    peak_mjd = mjd + rng.uniform(-40, 20, n_obj)
    peak_mag = rng.uniform(18.5, 23.5, n_obj)
    period = rng.uniform(0.3, 30, n_obj)
    mean_mag = rng.uniform(17.5, 22.5, n_obj)
    amp = rng.uniform(0.2, 1.0, n_obj)
    first_id = 170000000000000000 + int(rng.integers(0, 10**12))

    def true_flux(k, t):
        if is_sn[k]:
            return _sn_flux(t, peak_mjd[k], 10 ** ((31.4 - peak_mag[k]) / 2.5))
        base = 10 ** ((31.4 - mean_mag[k]) / 2.5)
        return base * amp[k] * np.sin(2 * np.pi * (t - mjd) / period[k])  # difference flux

    alert_obj = np.sort(rng.integers(0, n_obj, n_alerts))
    alert_t = np.sort(mjd + rng.uniform(0.0, 0.4, n_alerts))
    rng.shuffle(alert_obj)
    band_of = rng.choice(list(BANDS), n_alerts, p=[0.05, 0.2, 0.25, 0.25, 0.15, 0.1])
    alerts = []
    for j in range(n_alerts):
        k = int(alert_obj[j])
        t = float(alert_t[j])
        band = str(band_of[j])
        sigma = 10 ** ((31.4 - DEPTH[band]) / 2.5) / 5.0
        seeing = rng.uniform(0.6, 1.2) / PIXEL_SCALE / 2.355
        f = float(true_flux(k, t)) + rng.normal(0, sigma)
        if abs(f) < 5 * sigma:  # alerts need a 5-sigma detection
            f = float(np.sign(f) or 1.0) * 5.5 * sigma * rng.uniform(1.0, 1.6)
        obj_id = first_id + k
        src_id = first_id + 10**9 + j
        ra = float((obj_ra[k] + rng.normal(0, 0.05 / 3600)) % 360)
        dec = float(obj_dec[k] + rng.normal(0, 0.05 / 3600))
        values = {
            "diaSourceId": src_id, "diaObjectId": obj_id, "ra": ra, dec_key: dec,
            time_key: t, band_key: band, flux_key: f, err_key: sigma,
            "snr": abs(f) / sigma, "reliability": float(rng.beta(8, 1.5)),
            "visit": int(2026030500000 + j // 20), "detector": int(rng.integers(0, 189)),
            "x": float(rng.uniform(0, 4000)), "y": float(rng.uniform(0, 4000)),
            "apFlux": f, "apFluxErr": sigma * 1.2, "extendedness": float(rng.uniform(0, 0.2)),
            "isDipole": False, "isNegative": f < 0, "ccdVisitId": int(j // 20),
        }
        src = fill_record(src_t, names, values)
        n_prev = int(rng.integers(min_history, max(n_history, min_history) + 1))
        times = np.sort(t - rng.uniform(0.5, 365.0, n_prev))
        prv = []
        forced = []
        for i, tp in enumerate(times):
            b = str(rng.choice(list(BANDS)))
            sp = 10 ** ((31.4 - DEPTH[b]) / 2.5) / 5.0
            fp = float(true_flux(k, tp)) + rng.normal(0, sp)
            common = {"diaObjectId": obj_id, "ra": ra, dec_key: dec, time_key: float(tp),
                      band_key: b, flux_key: fp, err_key: sp,
                      "visit": int(2026000000000 + i), "detector": 1, "ccdVisitId": i}
            if detect_all or abs(fp) > 5 * sp:
                prv.append(fill_record(fsrc_t, names, {**common, "diaSourceId": src_id - 10**6 * (i + 1),
                                                       "snr": abs(fp) / sp,
                                                       "reliability": float(rng.beta(8, 1.5))}))
            if forced_t is not None:
                forced.append(fill_record(forced_t, names, {**common,
                                                            "diaForcedSourceId": src_id + 10**7 * (i + 1)}))
        obj_vals = {"diaObjectId": obj_id, "ra": float(obj_ra[k]), dec_key: float(obj_dec[k]),
                    "nDiaSources": len(prv) + 1, "firstDiaSourceMjdTai": float(times[0]) if n_prev else t,
                    "lastDiaSourceMjdTai": t, "validityStartMjdTai": t}
        alert_vals = {
            "diaSourceId": src_id, "alertId": src_id, "diaSource": src, "prvDiaSources": prv,
            "prvDiaForcedSources": forced, "diaObject": fill_record(obj_t, names, obj_vals),
        }
        if cutouts:
            # per-pixel noise consistent with the PSF-fit flux error
            sci, tmpl, diff, var = make_stamps(rng, f, sigma / (np.sqrt(4 * np.pi) * seeing), seeing,
                                               host_flux=5000.0 if is_sn[k] else 0.0)
            psf = _gauss(21, seeing)
            crpix = (15.5 + rng.uniform(-0.5, 0.5), 15.5 + rng.uniform(-0.5, 0.5))
            rot = float(rng.uniform(0, 360))
            alert_vals["cutoutScience"] = fits_bytes(sci, var, psf, ra, dec, crpix, rot)
            alert_vals["cutoutTemplate"] = fits_bytes(tmpl, var / 4, psf, ra, dec, crpix, rot)
            alert_vals["cutoutDifference"] = fits_bytes(diff, var * 1.25, psf, ra, dec, crpix, rot)
        alerts.append(fill_record(schema, names, alert_vals))
    return schema, alerts
