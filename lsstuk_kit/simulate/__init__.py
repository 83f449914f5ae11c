"""The firehose simulator: an LSST-like survey, its database tables and its Rubin alerts.

- :func:`simulate_survey`: cadence x population -> detections, objects, forced photometry, truth
- :func:`write_night`: those tables as survey database rows, per-visit alert files and truth
- :func:`simulate_packets`: quick schema-valid packets of any Rubin schema version (for tests)
- :func:`compare_with_real` / :func:`plot_sim_vs_real`: the simulated night measured beside real alerts
  (:mod:`lsstuk_kit.simulate.realism`)
"""

from .night import StampMaker, load_truth, simulate_to_folder, write_night
from .packets import fill_record, fits_bytes, simulate_packets
from .realism import compare_with_real, plot_sim_vs_real
from .sample import SAMPLE_SEED, write_sample
from .survey import SurveyTables, association_radius, simulate_survey

__all__ = ["SAMPLE_SEED", "StampMaker", "SurveyTables", "association_radius", "compare_with_real", "fill_record",
           "fits_bytes", "load_truth", "plot_sim_vs_real", "simulate_packets", "simulate_survey", "simulate_to_folder",
           "write_night", "write_sample"]
