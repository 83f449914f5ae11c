"""Photometric conventions shared by every survey."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["AB_ZEROPOINT_NJY", "BANDS", "BAND_COLORS", "RELIABILITY_SOURCES", "flux_to_mag", "mag_to_flux",
           "pick_score"]

#: AB magnitude of a 1 nJy source: m = 31.4 - 2.5 log10(f / nJy).
AB_ZEROPOINT_NJY = 31.4

#: Bands in wavelength order (Rubin ugrizy; ZTF g, r, i map onto these).
BANDS = ("u", "g", "r", "i", "z", "y")

#: The one band -> colour map used by every plot in the kit.
BAND_COLORS = {
    "u": "#56b4e9",
    "g": "#009e73",
    "r": "#d55e00",
    "i": "#cc79a7",
    "z": "#7f3c8d",
    "y": "#4d4d4d",
    # ATLAS's wide filters (not Rubin bands: kept out of BANDS)
    "c": "#17becf",
    "o": "#e69f00",
}

_LN10_OVER_2P5 = np.log(10.0) / 2.5

#: Values of the ``reliabilitySource`` column: which survey score each row's
#: ``reliability`` holds (``None`` where no score was computed: ``reliability`` is NaN).
RELIABILITY_SOURCES = {
    "reliability": "Rubin diaSource.reliability (schema 5.0 on; a probability from 8.0 on)",
    "drb": "ZTF deep-learning real/bogus score (schema 3.3 on, with a drbversion)",
    "rb": "ZTF random-forest real/bogus score (where no drb was computed)",
    "realbogus_factor": "ATLAS (QUB) pixel-based real/bogus score, 0-1, 1 = real",
    "atlas_rb": "ALeRCE ATLAS-stream rb (their writer puts 0.0 everywhere: read as missing)",
}


def pick_score(*candidates):
    """Per row, the first usable score among ``(label, values)`` pairs, and its label.

    A value is usable when it is finite; NaN/None mean "not computed" (survey
    fillers must be turned into NaN before this is called).

    Parameters
    ----------
    *candidates : (str, array_like)
        Scores in order of preference, all of the same length.

    Returns
    -------
    score : ndarray of float
        The chosen score, NaN where none is usable.
    source : ndarray of object
        The label of the chosen score, ``None`` where none is usable.

    Examples
    --------
    >>> from lsstuk_kit.surveys.common import pick_score
    >>> score, source = pick_score(("drb", [0.9, None, None]), ("rb", [0.5, 0.4, float("nan")]))
    >>> score.tolist(), source.tolist()
    ([0.9, 0.4, nan], ['drb', 'rb', None])
    """
    n = len(candidates[0][1])
    score = np.full(n, np.nan)
    source = np.full(n, None, dtype=object)
    for label, values in candidates:
        v = pd.Series(values).to_numpy(dtype=float, na_value=np.nan)
        take = np.isnan(score) & np.isfinite(v)
        score[take] = v[take]
        source[take] = label
    return score, source


def flux_to_mag(flux, flux_err=None):
    """Convert difference-image fluxes in nJy to AB magnitudes.

    The magnitude is that of ``|flux|`` (as ZTF's ``magpsf`` is for negative
    differences); the sign stays in the flux. Zero flux gives NaN.

    Parameters
    ----------
    flux : array_like
        Flux in nJy.
    flux_err : array_like, optional
        1-sigma flux error in nJy.

    Returns
    -------
    mag : ndarray
        AB magnitude.
    mag_err : ndarray
        Magnitude error (only when ``flux_err`` is given).

    Examples
    --------
    >>> from lsstuk_kit.surveys import flux_to_mag
    >>> float(flux_to_mag(3631e9))
    0.0
    >>> mag, err = flux_to_mag([1000.0, -1000.0], [100.0, 100.0])
    >>> mag.round(3).tolist(), err.round(4).tolist()
    ([23.9, 23.9], [0.1086, 0.1086])
    """
    flux = np.abs(np.asarray(flux, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(flux > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan)
        if flux_err is None:
            return mag
        err = np.where(flux > 0, np.asarray(flux_err, dtype=float) / (flux * _LN10_OVER_2P5), np.nan)
    return mag, err


def mag_to_flux(mag, mag_err=None):
    """Convert AB magnitudes to flux in nJy (the inverse of :func:`flux_to_mag`).

    Examples
    --------
    >>> from lsstuk_kit.surveys import mag_to_flux
    >>> round(float(mag_to_flux(23.9)), 6)
    1000.0
    """
    mag = np.asarray(mag, dtype=float)
    flux = 10.0 ** ((AB_ZEROPOINT_NJY - mag) / 2.5)
    if mag_err is None:
        return flux
    return flux, flux * np.asarray(mag_err, dtype=float) * _LN10_OVER_2P5
