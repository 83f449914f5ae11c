"""Cutout stamps: decode the FITS bytes that alerts carry, only when asked.

Rubin alerts carry plain FITS: a PRIMARY image (30x30, nJy, with a WCS), an
``UNCERT`` extension (variance) and a ``PSFIMAGE`` extension. ZTF alerts carry
gzip-compressed single-HDU FITS (63x63) in ``stampData``.
"""

from __future__ import annotations

import gzip
import io
import warnings
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
    """
    if data is None:
        return None
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    raw = bytes(data)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
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
            w = WCS(hdr, naxis=2)
            if w.has_celestial:
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
