"""The bundled sample night: regenerable, byte for byte, from a fixed seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fastavro
import fastavro.schema
import numpy as np

from .packets import simulate_packets

__all__ = ["SAMPLE_SEED", "SAMPLE_FILES", "write_sample"]

SAMPLE_SEED = 20261124
SAMPLE_FILES = 4
SAMPLE_ALERTS = 160


def write_sample(folder, *, seed=SAMPLE_SEED, n_alerts=SAMPLE_ALERTS, n_files=SAMPLE_FILES):
    """Write the sample night into ``folder`` as ``n_files`` time-ordered Avro batches.

    The output is byte-identical for the same arguments (fixed seed, fixed sync
    markers, deflate compression).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    schema, alerts = simulate_packets(n_alerts, seed=seed)
    # the parsing canonical form is the same in every process (the loaded schema's
    # key order is not), so the files are byte-identical
    schema = fastavro.parse_schema(json.loads(fastavro.schema.to_parsing_canonical_form(schema)))
    bounds = np.linspace(0, len(alerts), n_files + 1).astype(int)
    paths = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        path = folder / f"alerts_{k:03d}.avro"
        sync = hashlib.sha256(f"lsstuk_kit sample {seed} {k}".encode()).digest()[:16]
        with open(path, "wb") as fh:
            fastavro.writer(fh, schema, alerts[a:b], codec="deflate",
                            sync_marker=sync)
        paths.append(path)
    return paths
