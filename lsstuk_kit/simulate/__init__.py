"""The firehose simulator: an LSST-like survey, its database tables and its Rubin alerts.

- :func:`simulate_survey`: cadence x population -> detections, objects, forced photometry, truth
- :func:`write_night`: those tables as survey database rows, per-visit alert files and truth
- :func:`simulate_packets`: quick schema-valid packets of any Rubin schema version (for tests)
"""

from .night import StampMaker, load_truth, simulate_to_folder, write_night
from .packets import fill_record, fits_bytes, simulate_packets
from .sample import SAMPLE_SEED, write_sample
from .survey import SurveyTables, association_radius, simulate_survey

__all__ = ["SAMPLE_SEED", "StampMaker", "SurveyTables", "association_radius", "fill_record", "fits_bytes",
           "load_truth", "simulate_packets", "simulate_survey", "simulate_to_folder", "write_night",
           "write_sample"]
