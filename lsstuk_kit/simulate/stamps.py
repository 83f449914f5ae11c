"""Cutout triplets for stacks of detections, and bogus patterns, all vectorised.

science = template scene + source x PSF (the visit's seeing) + noise;
template = the same scene (host galaxy, the star at its template flux), a deep
coadd whose pixel noise is :data:`TEMPLATE_NOISE` (0.24) of the science image's,
as measured on real Rubin alert cutouts (issue 13);
difference = science - template, plus the bogus pattern for artefacts.

Bogus types (``BOGUS_TYPES``):
``dipole`` (misaligned subtraction: +/- PSF pair), ``cosmic_ray`` (a sharp
2-8 pixel track, no PSF), ``hot_pixel`` (one pixel), ``bad_column`` (a segment
of a column), ``bright_star`` (ring residual and diffraction spikes of a bright
star), ``edge`` (part of the stamp off the detector: NaN-masked, as real Rubin
cutouts are), ``star_residual`` (a PSF-like residual on the wing of a bright
star a few pixels away), ``noise`` (a faint, PSF-like fluctuation of correlated
noise at S/N 5-6). The last two, most common among real bogus, look like real
point sources; only their context and S/N give them away.

The FITS bytes mimic real Rubin alert cutouts: PRIMARY (30x30 float32, nJy,
WCS with CRVAL at the source, PC matrix from the rotation), ``UNCERT``
(variance) and ``PSFIMAGE`` extensions.
"""

from __future__ import annotations

import numpy as np

from .cadence import PIXEL_SCALE

__all__ = ["BOGUS_TYPES", "STAMP", "make_triplets", "fits_stack"]

STAMP = 30
PSF_SIZE = 21
BOGUS_TYPES = ("dipole", "cosmic_ray", "hot_pixel", "bad_column", "bright_star", "edge", "star_residual", "noise")
#: Template pixel noise / science pixel noise (real Rubin alert cutouts: 0.24).
TEMPLATE_NOISE = 0.24
_C = (STAMP - 1) / 2.0


def _gauss(sigma, cx, cy, size=STAMP):
    """Unit-flux Gaussians, one per row: (n, size, size)."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    s = np.asarray(sigma, np.float32)[:, None, None]
    g = np.exp(-((x - np.asarray(cx, np.float32)[:, None, None]) ** 2
                 + (y - np.asarray(cy, np.float32)[:, None, None]) ** 2) / (2 * s * s))
    return g / (2 * np.pi * s * s)


def make_triplets(rng, diff_flux, star_flux, host_flux, host_re_px, host_dx, host_dy, seeing_px,
                  sky_sigma, bogus=None):
    """Science, template, difference and variance stacks (n, 30, 30), float32, nJy.

    Parameters
    ----------
    rng : numpy.random.Generator
    diff_flux : array (n,)
        Difference flux of the source (negative for fading variables).
    star_flux : array (n,)
        Flux of a point source present in the template (variable stars).
    host_flux, host_re_px, host_dx, host_dy : arrays (n,)
        Host galaxy total flux, size (pixels) and centre offset from the source.
    seeing_px : array (n,)
        PSF sigma in pixels.
    sky_sigma : array (n,)
        Science-image noise per pixel (nJy).
    bogus : array of str (n,), optional
        Bogus type per detection ("" for real).

    Returns
    -------
    science, template, difference, variance : ndarray (n, 30, 30) float32
        (NaN off the detector for ``edge`` bogus)
    psf : ndarray (n, 21, 21) float32

    Examples
    --------
    A real point source, and one whose stamp runs off the detector (``edge`` bogus):

    >>> import numpy as np
    >>> from lsstuk_kit.simulate.stamps import make_triplets
    >>> sci, tmpl, diff, var, psf = make_triplets(
    ...     np.random.default_rng(0), diff_flux=[5000.0, 5000.0], star_flux=[0.0, 0.0], host_flux=[0.0, 2e4],
    ...     host_re_px=[1.0, 4.0], host_dx=[0.0, 3.0], host_dy=[0.0, -2.0], seeing_px=[2.0, 2.0],
    ...     sky_sigma=[10.0, 10.0], bogus=["", "edge"])
    >>> diff.shape, psf.shape, diff.dtype
    ((2, 30, 30), (2, 21, 21), dtype('float32'))
    >>> np.isnan(diff).any(axis=(1, 2)).tolist()
    [False, True]
    >>> round(float(diff[0].sum()), -2)  # the source's flux, plus noise
    5000.0
    """
    n = len(diff_flux)
    f32 = np.float32
    dx, dy = rng.uniform(-0.5, 0.5, (2, n)).astype(f32)
    cx, cy = _C + dx, _C + dy
    psf = _gauss(seeing_px, cx, cy)
    host = _gauss(np.maximum(host_re_px, 0.5), cx + host_dx, cy + host_dy) * np.asarray(host_flux, f32)[:, None, None]
    scene = host + psf * np.asarray(star_flux, f32)[:, None, None]
    sky = np.asarray(sky_sigma, f32)[:, None, None]
    template = scene + rng.standard_normal((n, STAMP, STAMP), dtype=f32) * (sky * f32(TEMPLATE_NOISE))
    source = psf * np.asarray(diff_flux, f32)[:, None, None]
    science = scene + source + rng.standard_normal((n, STAMP, STAMP), dtype=f32) * sky
    art = np.zeros((n, STAMP, STAMP), f32)
    edge_mask = np.zeros((n, STAMP, STAMP), bool)
    if bogus is not None:
        bogus = np.asarray(bogus)
        amp = np.abs(np.asarray(diff_flux, f32))
        yy, xx = np.mgrid[:STAMP, :STAMP]
        for kind in BOGUS_TYPES:
            sel = np.flatnonzero(bogus == kind)
            if not len(sel):
                continue
            k = len(sel)
            if kind == "dipole":
                d = rng.uniform(0.6, 1.6, k).astype(f32)
                ang = rng.uniform(0, 2 * np.pi, k).astype(f32)
                ox, oy = d * np.cos(ang), d * np.sin(ang)
                s = np.asarray(seeing_px, f32)[sel]
                pair = _gauss(s, cx[sel] + ox, cy[sel] + oy) - _gauss(s, cx[sel] - ox, cy[sel] - oy)
                art[sel] = pair * (amp[sel] * 1.5)[:, None, None] - source[sel]
            elif kind == "cosmic_ray":
                # a track of 2-8 pixels at any angle, sharper than the PSF
                length = rng.uniform(2, 8, k).astype(f32)
                ang = rng.uniform(0, np.pi, k).astype(f32)
                ux, uy = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
                rx, ry = xx[None] - cx[sel, None, None], yy[None] - cy[sel, None, None]
                along = rx * ux + ry * uy
                across = -rx * uy + ry * ux
                track = (np.exp(-(across**2) / (2 * 0.35**2)) * (np.abs(along) <= length[:, None, None] / 2))
                track = track / np.maximum(track.sum(axis=(1, 2), keepdims=True), 1e-6)
                art[sel] = track * (amp[sel] * 1.2)[:, None, None] - source[sel]
            elif kind == "hot_pixel":
                x0 = np.rint(cx[sel]).astype(int)
                y0 = np.rint(cy[sel]).astype(int)
                spot = np.zeros((k, STAMP, STAMP), f32)
                spot[np.arange(k), y0, x0] = amp[sel] * 0.8
                art[sel] = spot - source[sel]
            elif kind == "bad_column":
                # a segment of a column (a charge trap or a bad amplifier column), 5-20 pixels
                col = np.rint(cx[sel]).astype(int)
                half = rng.integers(3, 11, k)
                seg = (xx[None] == col[:, None, None]) & (np.abs(yy[None] - cy[sel, None, None]) <= half[:, None, None])
                sign = np.where(rng.random(k) < 0.7, 1.0, -1.0).astype(f32)
                art[sel] = seg * (sign * amp[sel] * 0.3)[:, None, None] - source[sel]
            elif kind == "bright_star":
                s = np.asarray(seeing_px, f32)[sel]
                r = np.hypot(xx[None] - cx[sel, None, None], yy[None] - cy[sel, None, None])
                s3 = s[:, None, None]
                ring = np.exp(-((r - 2.5 * s3) ** 2) / 2.0) - 0.6 * np.exp(-(r**2) / (2 * s3**2))
                spikes = (np.abs(xx[None] - cx[sel, None, None]) < 0.7) | (np.abs(yy[None] - cy[sel, None, None]) < 0.7)
                art[sel] = (ring * 0.05 + spikes * 0.02) * (amp[sel] * 4)[:, None, None] - source[sel]
                science[sel] += _gauss(s, cx[sel], cy[sel]) * (amp[sel] * 200)[:, None, None]
                template[sel] += _gauss(s, cx[sel], cy[sel]) * (amp[sel] * 200)[:, None, None]
            elif kind == "edge":
                # off the detector past a cut (any side): NaN in every image, a bright strip at the edge
                cut = rng.integers(18, 27, k)
                side = rng.integers(0, 4, k)
                coord = np.where((side % 2 == 0)[:, None, None], xx[None], yy[None])
                coord = np.where((side >= 2)[:, None, None], STAMP - 1 - coord, coord)
                off = coord >= cut[:, None, None]
                strip = (coord == (cut - 1)[:, None, None]).astype(f32)
                art[sel] = strip * (amp[sel] * 0.3)[:, None, None] + source[sel] * 0.5 - source[sel]
                edge_mask[sel] = off
            elif kind == "star_residual":
                # a bright star 3-8 pixels away; the subtraction leaves a PSF-like residual on its wing
                s = np.asarray(seeing_px, f32)[sel]
                dist = rng.uniform(3, 8, k).astype(f32)
                ang = rng.uniform(0, 2 * np.pi, k).astype(f32)
                sx, sy = cx[sel] + dist * np.cos(ang), cy[sel] + dist * np.sin(ang)
                star = _gauss(s, sx, sy) * (amp[sel] * rng.uniform(30, 300, k).astype(f32))[:, None, None]
                science[sel] += star
                template[sel] += star
                width = s * rng.uniform(0.8, 1.3, k).astype(f32)
                resid = _gauss(width, cx[sel], cy[sel]) - 0.4 * _gauss(width * 1.5, sx, sy)
                art[sel] = resid * amp[sel][:, None, None] - source[sel]
            elif kind == "noise":
                # a faint fluctuation of correlated noise: a PSF-like bump, a little narrower or wider
                # its amplitude is that of a 5-6 sigma fluctuation, whatever flux was asked for
                s = np.asarray(seeing_px, f32)[sel] * rng.uniform(0.7, 1.2, k).astype(f32)
                ox, oy = rng.normal(0, 0.6, (2, k)).astype(f32)
                bump = rng.uniform(5.0, 6.0, k).astype(f32) * sky[sel, 0, 0] * np.float32(np.sqrt(4 * np.pi)) * s
                art[sel] = _gauss(s, cx[sel] + ox, cy[sel] + oy) * bump[:, None, None] - source[sel]
    science = science + art
    difference = science - template
    var_sci = np.broadcast_to(sky * sky, (n, STAMP, STAMP)).astype(f32)
    if edge_mask.any():
        science = np.where(edge_mask, np.nan, science)
        template = np.where(edge_mask, np.nan, template)
        difference = np.where(edge_mask, np.nan, difference)
        var_sci = np.where(edge_mask, np.nan, var_sci)
    psf_img = _gauss(seeing_px, np.full(n, (PSF_SIZE - 1) / 2.0), np.full(n, (PSF_SIZE - 1) / 2.0), PSF_SIZE)
    return (science.astype(f32), template.astype(f32), difference.astype(f32), var_sci,
            psf_img.astype(f32))


# a card with one "{:>20.13G}" placeholder (10 characters) formats to 80 characters
_PLACEHOLDER_LINE = 80 - 20 + len("{:>20.13G}")


def _placeholder(key, fmt, comment=""):
    """A card with a format placeholder, padded so that it formats to 80 characters."""
    return (f"{key:<8}= {fmt}" + (f" / {comment}" if comment else "")).ljust(80 - 20 + len(fmt))


def _card(key, value, comment=""):
    if isinstance(value, bool):
        v = f"{'T' if value else 'F':>20}"
    elif isinstance(value, str):
        v = f"{chr(39) + value.ljust(8) + chr(39):<20}"
    elif isinstance(value, (int, np.integer)):
        v = f"{int(value):>20}"
    else:
        v = f"{float(value):>20.13G}"
    card = f"{key:<8}= {v}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80)


def _header(cards):
    text = "".join(cards) + "END".ljust(80)
    text += " " * (-len(text) % 2880)
    return np.frombuffer(text.encode("ascii"), np.uint8)


def _pad(nbytes):
    return -nbytes % 2880


def _block(arr, dtype):
    n = arr.shape[0]
    raw = np.ascontiguousarray(arr.astype(dtype)).view(np.uint8).reshape(n, -1)
    return np.hstack([raw, np.zeros((n, _pad(raw.shape[1])), np.uint8)])


def fits_stack(images, variance, psf, ra, dec, rotation_deg, crpix_x, crpix_y, x=None, y=None):
    """FITS bytes for a stack of stamps, as an (n, nbytes) uint8 matrix (all equal length).

    ``x``, ``y`` (detector pixel of the source) set CUTMINX / CUTMINY, the cutout's corner.

    Examples
    --------
    >>> import numpy as np
    >>> from lsstuk_kit.cutouts import decode_stamp
    >>> from lsstuk_kit.simulate.stamps import fits_stack
    >>> images, variance = np.zeros((2, 30, 30)), np.ones((2, 30, 30))
    >>> psf = np.full((2, 21, 21), 1 / 441)
    >>> m = fits_stack(images, variance, psf, ra=np.array([150.0, 150.1]), dec=np.array([-30.0, -30.0]),
    ...                rotation_deg=np.zeros(2), crpix_x=np.full(2, 15.5), crpix_y=np.full(2, 15.5),
    ...                x=[100.0, 2000.0], y=[50.0, 3000.0])
    >>> m.shape, m.dtype, m.shape[1] % 2880
    ((2, 23040), dtype('uint8'), 0)
    >>> stamp = decode_stamp(m[1].tobytes())
    >>> stamp.image.shape, stamp.header["CRVAL1"], stamp.header["CUTMINX"]
    ((30, 30), 150.1, 1985)
    """
    n = images.shape[0]
    scale = PIXEL_SCALE / 3600.0
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    fixed = [_card("SIMPLE", True, "conforms to FITS standard"), _card("BITPIX", -32, "array data type"),
             _card("NAXIS", 2, "number of array dimensions"), _card("NAXIS1", STAMP), _card("NAXIS2", STAMP),
             _card("EXTEND", True)]
    template = "".join(fixed + [
        _placeholder("CUTMINX", "{:>20.0f}"),
        _placeholder("CUTMINY", "{:>20.0f}"),
        ("ROTPA   = {:>20.13G} / Pos angle in deg of focal plane +Y wrt North").ljust(_PLACEHOLDER_LINE),
        _card("BUNIT", "nJy"), _card("WCSAXES", 2, "Number of coordinate axes"),
        _card("CTYPE1", "RA---TAN"), _card("CTYPE2", "DEC--TAN"),
    ])
    numeric = [("CRPIX1", "Pixel coordinate of reference point"), ("CRPIX2", "Pixel coordinate of reference point"),
               ("PC1_1", ""), ("PC1_2", ""), ("PC2_1", ""), ("PC2_2", ""),
               ("CRVAL1", "Coordinate value at reference point"), ("CRVAL2", "Coordinate value at reference point")]
    for key, comment in numeric:
        template += (f"{key:<8}= " + "{:>20.13G}" + (f" / {comment}" if comment else "")).ljust(_PLACEHOLDER_LINE)
    tail = (_card("CDELT1", 1.0, "Coordinate increment at reference point")
            + _card("CDELT2", 1.0, "Coordinate increment at reference point")
            + _card("CUNIT1", "deg") + _card("CUNIT2", "deg")
            + _card("LATPOLE", 90.0, "[deg] Native latitude of celestial pole")
            + _card("MJDREF", 0.0, "[d] MJD of fiducial time"))
    x0 = np.floor(np.zeros(n) if x is None else np.asarray(x, float)) - STAMP // 2
    y0 = np.floor(np.zeros(n) if y is None else np.asarray(y, float)) - STAMP // 2
    values = np.column_stack([x0, y0, rotation_deg, crpix_x, crpix_y, -scale * c, scale * s, scale * s, scale * c,
                              ra, dec])
    end = "END".ljust(80)
    size = len(template.format(*values[0])) + len(tail) + 80 if n else 0
    pad = " " * (-size % 2880)
    text = "".join(template.format(*row) + tail + end + pad for row in values.tolist())
    heads = np.frombuffer(text.encode("ascii"), np.uint8).reshape(n, -1) if n else np.zeros((0, 2880), np.uint8)
    primary_head = heads
    uncert_head = _header([_card("XTENSION", "IMAGE", "Image extension"), _card("BITPIX", -32), _card("NAXIS", 2),
                           _card("NAXIS1", STAMP), _card("NAXIS2", STAMP), _card("PCOUNT", 0), _card("GCOUNT", 1),
                           _card("UTYPE", "VarianceUncertainty"), _card("EXTNAME", "UNCERT")])
    psf_head = _header([_card("XTENSION", "IMAGE", "Image extension"), _card("BITPIX", -32), _card("NAXIS", 2),
                        _card("NAXIS1", psf.shape[2]), _card("NAXIS2", psf.shape[1]), _card("PCOUNT", 0),
                        _card("GCOUNT", 1), _card("EXTNAME", "PSFIMAGE")])
    parts = [primary_head, _block(images, ">f4"), np.broadcast_to(uncert_head, (n, len(uncert_head))),
             _block(variance, ">f4"), np.broadcast_to(psf_head, (n, len(psf_head))), _block(psf, ">f4")]
    return np.hstack(parts)
