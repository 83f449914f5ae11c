"""Per-survey field mappings: names, bands, and flux <-> magnitude.

Every survey lands in the same Rubin-named columns (``diaSourceId``, ``ra``,
``dec``, ``midpointMjdTai``, ``band``, ``psfFlux``/``psfFluxErr`` in nJy, ...).
"""

from .common import BAND_COLORS, BANDS, flux_to_mag, mag_to_flux

__all__ = ["BANDS", "BAND_COLORS", "flux_to_mag", "mag_to_flux"]
