"""The firehose simulator: schema-valid Rubin alerts from a simulated population."""

from .packets import fill_record, fits_bytes, simulate_packets
from .sample import SAMPLE_SEED, write_sample

__all__ = ["SAMPLE_SEED", "fill_record", "fits_bytes", "simulate_packets", "write_sample"]
