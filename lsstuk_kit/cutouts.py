"""Cutout stamps: decode the FITS bytes that alerts carry, only when asked.

Rubin alerts carry plain FITS: a PRIMARY image (30x30, nJy, with a WCS), an
``UNCERT`` extension (variance) and a ``PSFIMAGE`` extension. ZTF alerts carry
gzip-compressed single-HDU FITS (63x63) in ``stampData``.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Cutouts", "decode_stamp"]

STAMPS = ("science", "template", "difference")


@dataclass
class Stamp:
    """One decoded stamp: image, optional variance and PSF, header and WCS."""

    image: np.ndarray
    variance: np.ndarray | None = None
    psf: np.ndarray | None = None
    header: object = None
    wcs: object = None


#: a cutout (30x30 Rubin, 63x63 ZTF, a few HDUs) is tens of KB; a gzip one expanding past this is refused
_MAX_STAMP_BYTES = 64 * 2**20


def decode_stamp(data: bytes | None) -> Stamp | None:
    """Decode one cutout (plain or gzip-compressed FITS) into a :class:`Stamp`.

    Parameters
    ----------
    data : bytes or None
        The cutout bytes of an alert; ``None`` gives ``None``.

    Returns
    -------
    Stamp or None

    Raises
    ------
    ValueError
        If the bytes are not FITS.

    Examples
    --------
    A small FITS file with an image and a variance extension, plain and gzip-compressed:

    >>> import gzip, io
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from lsstuk_kit.cutouts import decode_stamp
    >>> buf = io.BytesIO()
    >>> fits.HDUList([fits.PrimaryHDU(np.arange(9.0).reshape(3, 3)),
    ...               fits.ImageHDU(np.ones((3, 3)), name="UNCERT")]).writeto(buf)
    >>> stamp = decode_stamp(buf.getvalue())
    >>> stamp.image.shape, float(stamp.variance.sum()), stamp.psf is None, stamp.wcs is None
    ((3, 3), 9.0, True, True)
    >>> np.array_equal(decode_stamp(gzip.compress(buf.getvalue())).image, stamp.image)   # as ZTF sends them
    True
    >>> decode_stamp(None) is None
    True
    >>> decode_stamp(b"not a FITS file")
    Traceback (most recent call last):
    ...
    ValueError: cutout is not FITS (starts with b'not a FI')
    """
    if data is None:
        return None
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    raw = bytes(data)
    if raw[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = d.decompress(raw, _MAX_STAMP_BYTES + 1)
        except zlib.error as exc:
            raise ValueError(f"cutout is not readable gzip ({exc})") from None
        if len(raw) > _MAX_STAMP_BYTES:
            raise ValueError(f"gzip-compressed cutout expands past {_MAX_STAMP_BYTES:,} bytes; refused")
    if raw[:6] != b"SIMPLE":
        raise ValueError(f"cutout is not FITS (starts with {raw[:8]!r})")
    with warnings.catch_warnings():
        # ZTF stamps carry a SIMPLE card astropy finds non-standard; the data are fine
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdul = fits.open(io.BytesIO(raw), memmap=False)
        hdul.verify("silentfix")
    with hdul:
        primary = hdul[0]
        image = np.asarray(primary.data, dtype=float)
        header = primary.header.copy()
        variance = psf = None
        for hdu in hdul[1:]:
            name = hdu.name.upper()
            if name in ("UNCERT", "VARIANCE") and hdu.data is not None:
                variance = np.asarray(hdu.data, dtype=float)
            elif name in ("PSFIMAGE", "PSF") and hdu.data is not None:
                psf = np.asarray(hdu.data, dtype=float)
    wcs = None
    if "CTYPE1" in header or "CRVAL1" in header:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            hdr = header.copy()
            # Rubin cutout headers give CRVAL/PC without CTYPE: the projection is TAN
            if "CTYPE1" not in hdr:
                hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
                hdr.setdefault("CUNIT1", "deg")
                hdr.setdefault("CUNIT2", "deg")
            try:
                w = WCS(hdr, naxis=2)
            except Exception:  # noqa: BLE001 - e.g. ATLAS stamps' PV distortion terms astropy refuses
                w = None  # the image still decodes, without sky coordinates
            if w is not None and w.has_celestial:
                wcs = w
    return Stamp(image=image, variance=variance, psf=psf, header=header, wcs=wcs)


@dataclass
class Cutouts:
    """The cutout triplet of one alert.

    Attributes
    ----------
    science, template, difference : ndarray or None
        2-D float images; ``None`` where the alert carries no such cutout.
    variance : dict
        Variance image per stamp name, where the FITS has one (Rubin ``UNCERT``).
    psf : ndarray or None
        PSF image (Rubin ``PSFIMAGE``, from the difference or science stamp).
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the science stamp (else of the difference stamp).
    headers : dict
        FITS header per stamp name.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> batch = load_sample()
    >>> c = batch.cutouts(batch.sources.index[0])
    >>> type(c).__name__, c.keys()
    ('Cutouts', ['science', 'template', 'difference', 'variance', 'psf', 'wcs'])
    >>> c.difference.shape, c["difference"] is c.difference, sorted(c.variance), c.psf.shape
    ((30, 30), True, ['difference', 'science', 'template'], (21, 21))
    >>> c.headers["science"]["BUNIT"]
    'nJy'

    :meth:`from_bytes` decodes the FITS bytes an alert carries; missing cutouts stay ``None``:

    >>> import io
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from lsstuk_kit.cutouts import Cutouts
    >>> buf = io.BytesIO()
    >>> fits.PrimaryHDU(np.zeros((5, 5))).writeto(buf)
    >>> only = Cutouts.from_bytes(difference=buf.getvalue())
    >>> only.keys(), only.science is None
    (['difference'], True)
    """

    science: np.ndarray | None = None
    template: np.ndarray | None = None
    difference: np.ndarray | None = None
    variance: dict = field(default_factory=dict)
    psf: np.ndarray | None = None
    wcs: object = None
    headers: dict = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, science=None, template=None, difference=None):
        """Decode the three cutouts of an alert."""
        out = cls()
        for name, data in (("science", science), ("template", template), ("difference", difference)):
            stamp = decode_stamp(data)
            if stamp is None:
                continue
            setattr(out, name, stamp.image)
            out.headers[name] = stamp.header
            if stamp.variance is not None:
                out.variance[name] = stamp.variance
            if stamp.psf is not None and (out.psf is None or name == "difference"):
                out.psf = stamp.psf
            if stamp.wcs is not None and (out.wcs is None or name == "science"):
                out.wcs = stamp.wcs
        return out

    def __getitem__(self, key):
        return getattr(self, key)

    def keys(self):
        """Names of the parts present."""
        names = [n for n in STAMPS if getattr(self, n) is not None]
        if self.variance:
            names.append("variance")
        if self.psf is not None:
            names.append("psf")
        if self.wcs is not None:
            names.append("wcs")
        return names


# --------------------------------------------------------------------------- display
STRETCHES = ("zscale", "asinh", "percentile")


def _norm(img, stretch):
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch, PercentileInterval, ZScaleInterval

    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return None
    if stretch == "zscale":
        return ImageNormalize(finite, interval=ZScaleInterval(), stretch=LinearStretch())
    if stretch == "asinh":
        return ImageNormalize(finite, interval=PercentileInterval(99.5), stretch=AsinhStretch(0.1))
    if stretch == "percentile":
        return ImageNormalize(finite, interval=PercentileInterval(99.0), stretch=LinearStretch())
    raise ValueError(f"stretch must be one of {STRETCHES}, not {stretch!r}")


def north_up(image, wcs):
    """Resample a stamp onto a north-up, east-left grid of the same size and pixel scale.

    Returns the resampled image (NaN outside the original) or the input when
    there is no celestial WCS.
    """
    if wcs is None or image is None:
        return image
    from astropy.wcs.utils import proj_plane_pixel_scales
    from scipy.ndimage import map_coordinates

    ny, nx = image.shape
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    centre = wcs.pixel_to_world(cx, cy)
    scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)))  # deg / pixel
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    # target grid: east to the left (x increases westwards), north up (y increases northwards)
    from astropy import units as u

    d_east = -(xx - cx) * scale
    d_north = (yy - cy) * scale
    sky = centre.spherical_offsets_by(d_east.ravel() * u.deg, d_north.ravel() * u.deg)
    px, py = wcs.world_to_pixel(sky)
    return map_coordinates(np.asarray(image, float), [np.reshape(py, image.shape), np.reshape(px, image.shape)],
                           order=1, cval=np.nan)


def plot_cutouts(batch, diaSourceId, fig=None, *, stretch="zscale", north=True, colorbar=True, cmap="gray"):
    """Draw the science, template and difference stamps of one alert; return the Figure.

    Parameters
    ----------
    batch : AlertBatch
    diaSourceId : int or str
    fig : matplotlib Figure, optional
        Drawn into (cleared); a new one otherwise.
    stretch : {"zscale", "asinh", "percentile"}
    north : bool
        Resample north up, east left where the stamp has a WCS.
    colorbar : bool
        A colour bar (nJy) under each panel.

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.cutouts import plot_cutouts
    >>> batch = load_sample()
    >>> fig = plot_cutouts(batch, batch.sources.index[0])
    >>> len(fig.axes) >= 3
    True
    """
    if fig is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        fig = plt.figure(figsize=(9, 3.4))
    else:
        fig.clear()
    c = batch.cutouts(diaSourceId)
    axes = fig.subplots(1, 3)
    notes: set[str] = set()
    for ax, name in zip(axes, STAMPS):
        img = c[name]
        ax.set_xticks([])
        ax.set_yticks([])
        if img is None:
            ax.text(0.5, 0.5, f"no {name}", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(name)
            continue
        rotated = north and c.wcs is not None
        shown = north_up(img, c.wcs) if rotated else img
        masked = np.ma.masked_invalid(np.asarray(shown, float))
        n_bad = int(np.ma.count_masked(masked))
        cm = _cmap_with_bad(cmap)
        im = ax.imshow(masked, origin="lower", cmap=cm, norm=_norm(shown, stretch), interpolation="nearest")
        ny, nx = shown.shape
        ax.plot([(nx - 1) / 2], [(ny - 1) / 2], marker="+", color="C1", ms=14, mew=1.2)
        ax.set_title(f"{name}" + (" (N up, E left)" if rotated else ""), fontsize=9)
        if rotated and n_bad:
            notes.add("blue-grey corners: no data after north-up resampling")
        if colorbar:
            cb = fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.06, pad=0.04)
            _compact_colorbar(cb)
            unit = (c.headers.get(name) or {}).get("BUNIT", "")
            cb.set_label(unit, fontsize=7)
    fig.suptitle(f"diaSourceId {diaSourceId}" + "".join(f"  ({n})" for n in sorted(notes)), fontsize=10)
    return fig


_BAD_COLOUR = "#b7c4cf"  # neutral blue-grey: not a data value in a grey or viridis map


def _cmap_with_bad(cmap):
    """A copy of ``cmap`` that shows masked / NaN pixels in a neutral colour."""
    import matplotlib

    cm = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    return cm.with_extremes(bad=_BAD_COLOUR)


def _compact_colorbar(cb):
    """At most four ticks with short labels (e.g. ``1.2k``), so they cannot run together under any stretch."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    def short(v, _pos=None):
        a = abs(v)
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{v / div:.3g}{suffix}"
        return f"{v:.0f}" if a >= 10 else (f"{v:.2g}" if a else "0")

    cb.locator = MaxNLocator(nbins=3, min_n_ticks=2)
    cb.formatter = FuncFormatter(short)
    cb.ax.tick_params(labelsize=7)


def save_stamp(batch, diaSourceId, path, which="difference", stretch="zscale"):
    """Export one stamp: ``.png`` (stretched image) or ``.fits`` (the original FITS, decompressed)."""
    from pathlib import Path

    path = Path(path)
    if which not in STAMPS:
        raise ValueError(f"which must be one of {STAMPS}")
    if path.suffix.lower() in (".fits", ".fit"):
        raw = batch._cutout_bytes(diaSourceId)[which]
        if raw is None:
            raise ValueError(f"alert {diaSourceId} has no {which} cutout")
        raw = bytes(raw)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        path.write_bytes(raw)
        return path
    if path.suffix.lower() == ".png":
        img = batch.cutouts(diaSourceId)[which]
        if img is None:
            raise ValueError(f"alert {diaSourceId} has no {which} cutout")
        import matplotlib.pyplot as plt

        norm = _norm(img, stretch)
        plt.imsave(path, norm(img) if norm is not None else img, cmap="gray", origin="lower", vmin=0, vmax=1)
        return path
    raise ValueError(f"unsupported format {path.suffix!r}: use .png or .fits")


# --------------------------------------------------------------------------- shape measures
def stack_cutouts(batch, which="difference"):
    """Decode one stamp per alert into a stack (n, ny, nx) (NaN-filled where missing), plus PSFs.

    Returns
    -------
    ids : Index
    stack : ndarray (n, ny, nx)
    psfs : list of ndarray or None
    """
    ids = batch.sources.index
    images, psfs = [], []
    shape = None
    for sid in ids:
        c = batch.cutouts(sid)
        img = c[which]
        images.append(img)
        psfs.append(c.psf)
        if img is not None and shape is None:
            shape = img.shape
    shape = shape or (30, 30)
    stack = np.full((len(ids), *shape), np.nan)
    for k, img in enumerate(images):
        if img is not None and img.shape == shape:
            stack[k] = img
    return ids, stack, psfs


def _crop_centre(img, size):
    ny, nx = img.shape[-2:]
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    return img[..., y0:y0 + size, x0:x0 + size]


def _noise(st):
    """Background level and noise per stamp from its border (outer 4 pixels), with one 3-sigma clip."""
    n = st.shape[0]
    border = np.concatenate([st[:, :4].reshape(n, -1), st[:, -4:].reshape(n, -1),
                             st[:, 4:-4, :4].reshape(n, -1), st[:, 4:-4, -4:].reshape(n, -1)], axis=1)
    border = border.astype(np.float64)
    m = border.mean(axis=1)
    sd = border.std(axis=1)
    keep = np.abs(border - m[:, None]) <= 3 * np.maximum(sd, 1e-30)[:, None]
    k = np.maximum(keep.sum(axis=1), 1)
    m2 = (border * keep).sum(axis=1) / k
    var = ((border - m2[:, None]) ** 2 * keep).sum(axis=1) / np.maximum(k - 1, 1)
    sd2 = np.sqrt(var)
    return m2, np.where(sd2 > 0, sd2, 1.0)


def shape_measures(stack, psfs=None, sign=None, box=11, normalised=False):
    """Shape measures of difference stamps, vectorised over a stack (n, ny, nx).

    Columns: ``fwhm`` (pixels, from second moments), ``ellipticity`` (1 - b/a),
    ``peakOffset`` (pixels from the stamp centre to the peak of the
    PSF-smoothed stamp), ``negFraction`` (share of significant pixels that are
    negative: ~0 for a clean source, ~0.5 for a dipole), ``psfChi2`` (reduced
    chi-square of the best-scaled PSF model in the central ``box`` pixels: the
    alert's PSF where given, else a Gaussian of the measured FWHM), ``snrPeak``.

    Parameters
    ----------
    stack : ndarray (n, ny, nx)
    psfs : list of ndarray or None, optional
    sign : array of +-1, optional
        Sign of the source (negative differences are flipped first).
    box : int
        Size of the central box for the PSF fit (and of the moment window).
    normalised : bool
        The stack is already in units of its noise, with zero background.
    """
    from scipy.ndimage import uniform_filter

    st = np.nan_to_num(np.asarray(stack, np.float32), nan=0.0)
    n, ny, nx = st.shape
    if sign is not None:
        st = st * np.asarray(sign, np.float32)[:, None, None]
    if normalised:
        z = st
    else:
        med, sigma = _noise(st)
        z = (st - med[:, None, None].astype(np.float32)) / sigma[:, None, None].astype(np.float32)
    smooth = uniform_filter(z, size=(1, 3, 3), mode="constant")
    flat_smooth = smooth.reshape(n, -1)
    peak = flat_smooth.argmax(axis=1)
    py, px = np.divmod(peak, nx)
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    offset = np.hypot(py - cy, px - cx)
    pos_sig = (z > 3).sum(axis=(1, 2))
    neg_sig = (z < -3).sum(axis=(1, 2))
    neg_frac = np.where(pos_sig + neg_sig > 0, neg_sig / np.maximum(pos_sig + neg_sig, 1), 0.0)
    # second moments of the positive signal in a box around the peak
    half = box // 2
    d = np.arange(-half, half + 1)
    yy = np.clip(py[:, None] + d[None, :], 0, ny - 1)
    xx = np.clip(px[:, None] + d[None, :], 0, nx - 1)
    win = z[np.arange(n)[:, None, None], yy[:, :, None], xx[:, None, :]]
    dy, dx = np.meshgrid(d, d, indexing="ij")
    inside = (dx**2 + dy**2) <= 25
    w = np.where(inside[None] & (win > 1), win, 0.0)
    tot = w.sum(axis=(1, 2))
    tot = np.where(tot > 0, tot, np.nan)
    mx = (w * dx).sum(axis=(1, 2)) / tot
    my = (w * dy).sum(axis=(1, 2)) / tot
    ixx = (w * dx**2).sum(axis=(1, 2)) / tot - mx**2
    iyy = (w * dy**2).sum(axis=(1, 2)) / tot - my**2
    ixy = (w * dx * dy).sum(axis=(1, 2)) / tot - mx * my
    tr, det = ixx + iyy, ixx * iyy - ixy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    l1, l2 = np.maximum(tr / 2 + disc, 1e-6), np.maximum(tr / 2 - disc, 1e-6)
    fwhm = 2.3548 * np.sqrt((l1 + l2) / 2)
    ellip = 1 - np.sqrt(l2 / l1)
    # PSF-likeness: chi^2 of the best-scaled model in the central box
    sig_g = np.clip(np.nan_to_num(fwhm / 2.3548, nan=2.0), 0.5, 10)
    models = np.exp(-(dx[None] ** 2 + dy[None] ** 2) / (2 * sig_g[:, None, None] ** 2)).astype(np.float32)
    if psfs is not None:
        for k, p in enumerate(psfs):
            if p is not None and min(p.shape) >= box:
                models[k] = _crop_centre(np.asarray(p, np.float32), box)
    data = _crop_centre(z, box)
    mm = (models * models).sum(axis=(1, 2))
    amp = (models * data).sum(axis=(1, 2)) / np.where(mm > 0, mm, 1)
    resid = data - amp[:, None, None] * models
    chi2 = (resid**2).sum(axis=(1, 2)) / (box * box - 1)
    import pandas as pd

    return pd.DataFrame({"fwhm": fwhm, "ellipticity": ellip, "peakOffset": offset, "negFraction": neg_frac,
                         "psfChi2": chi2, "snrPeak": flat_smooth.max(axis=1) * 3.0})


def batch_shape_measures(batch, which="difference"):
    """:func:`shape_measures` for every alert of a batch, indexed by ``diaSourceId`` (join to ``sources``).

    Examples
    --------
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.cutouts import batch_shape_measures
    >>> batch = load_sample()
    >>> m = batch_shape_measures(batch[:5])
    >>> list(m.columns)[:3]
    ['fwhm', 'ellipticity', 'peakOffset']
    """
    ids, stack, psfs = stack_cutouts(batch, which)
    sign = np.sign(batch.sources["psfFlux"].to_numpy(float))
    sign[sign == 0] = 1
    out = shape_measures(stack, psfs, sign)
    out.index = ids
    return out


def _primary_layout(row):
    """The layout of a plain FITS cutout's PRIMARY image, ``None`` if it is not a 2-d float image.

    ``row`` is the cutout's bytes (uint8). Returns ``(END card offset, BITPIX, NAXIS1, NAXIS2,
    header bytes, data bytes)``.
    """
    if len(row) < 2880 or bytes(row[:6]) != b"SIMPLE":
        return None
    head = bytes(row[:min(len(row), 2880 * 8)])
    cards = {}
    end = None
    for k in range(0, len(head), 80):
        card = head[k:k + 80].decode("ascii", "replace")
        key = card[:8].strip()
        if key == "END":
            end = k
            break
        if card[8:10] == "= ":
            cards[key] = card[10:].split("/")[0].strip()
    if end is None:
        return None
    try:
        bitpix, naxis = int(cards["BITPIX"]), int(cards["NAXIS"])
        nx, ny = int(cards["NAXIS1"]), int(cards["NAXIS2"])
    except (KeyError, ValueError):
        return None
    if naxis != 2 or bitpix not in (-32, -64) or nx <= 0 or ny <= 0:
        return None
    return end, bitpix, nx, ny, (end // 2880 + 1) * 2880, nx * ny * abs(bitpix) // 8


def fast_primary_stack(blobs):
    """Decode the PRIMARY images of equal-layout plain-FITS cutouts in one vectorised step.

    ``blobs`` is an (n, L) uint8 matrix (every cutout ``L`` bytes) or a list of
    equal-length ``bytes``. Works when every header has the same length, BITPIX
    and shape (true of a survey's stamps); returns ``None`` otherwise, and the
    caller decodes one by one.
    """
    if isinstance(blobs, np.ndarray):
        mat = blobs
    else:
        if not blobs or any(b is None for b in blobs):
            return None
        lengths = {len(b) for b in blobs}
        if len(lengths) != 1:
            return None
        mat = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), -1)
    if mat.shape[0] == 0:
        return None
    layout = _primary_layout(mat[0])
    if layout is None:
        return None
    end, bitpix, nx, ny, hdr_len, nbytes = layout
    head = bytes(mat[0, :end])
    if mat.shape[1] < hdr_len + nbytes:
        return None
    # every row must have its END card, BITPIX and NAXISn cards in the same places
    card_pos = [end] + [k for k in range(0, end, 80) if head[k:k + 8].strip() in (b"BITPIX", b"NAXIS1", b"NAXIS2")]
    for pos in card_pos:
        if not (mat[:, pos:pos + 80] == mat[0, pos:pos + 80]).all():
            return None
    dtype = ">f4" if bitpix == -32 else ">f8"
    data = np.ascontiguousarray(mat[:, hdr_len:hdr_len + nbytes]).view(dtype).reshape(-1, ny, nx)
    return data.astype(np.float32)


def fast_stack(batch, which="difference"):
    """A (n, ny, nx) stack of one stamp per alert, vectorised where the cutouts allow it (else ``None``)."""
    store = batch._store
    arr = store.cutouts.get(which) if store.cutouts else None
    if arr is None or arr.null_count:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    sub = arr.take(pa.array(batch._pos))
    if not isinstance(sub, (pa.Array, pa.ChunkedArray)):  # zero-copy stamps (lsstuk_kit._stamps)
        lengths = sub.length
        if len(lengths) == 0 or not (lengths == lengths[0]).all():
            return None
        layout = _primary_layout(np.frombuffer(sub.value(0)[:2880 * 8], np.uint8))
        if layout is None or layout[4] + layout[5] > lengths[0]:
            return None
        return fast_primary_stack(sub.heads(layout[4] + layout[5]))  # only the PRIMARY HDU's bytes copied
    lengths = pc.binary_length(sub).to_numpy()
    if len(lengths) == 0 or not (lengths == lengths[0]).all():
        return None
    offsets = np.frombuffer(sub.buffers()[1], np.int32)[sub.offset:sub.offset + len(sub) + 1]
    data = np.frombuffer(sub.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return fast_primary_stack(data.reshape(len(sub), int(lengths[0])))
