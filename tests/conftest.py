from __future__ import annotations

from pathlib import Path

import fastavro
import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-alerts"
BROKERS = Path(__file__).resolve().parents[2] / "shared" / "brokers"


@pytest.fixture(scope="session")
def real_alerts() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real alerts folder {REAL} is absent (it lives beside the project, see DESIGN.md)")
    return REAL


@pytest.fixture(scope="session")
def brokers_ref() -> Path:
    """Brokers' reference material (Lasair schema and docs, ATLAS formats) beside the project."""
    if not BROKERS.is_dir():
        pytest.skip(f"brokers' reference folder {BROKERS} is absent (it lives beside the project, see DESIGN.md)")
    return BROKERS


@pytest.fixture(scope="session")
def batch():
    """The bundled sample night (read once per test session)."""
    import lsstuk_kit as lk

    return lk.load_sample()


@pytest.fixture(scope="session")
def truth():
    """The sample night's truth table."""
    import lsstuk_kit as lk

    return lk.load_sample_truth()


@pytest.fixture(scope="session")
def sim():
    """A small simulated night: (parsed schema, list of alert dicts) of the latest schema."""
    from lsstuk_kit.simulate import simulate_packets

    return simulate_packets(12, n_history=8, seed=3)


def write(path, schema, alerts, **kw):
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), alerts, **kw)
    return path


def raw_records(path):
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        return list(fastavro.reader(fh))
