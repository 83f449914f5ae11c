"""Replay a night of per-visit alert files in time order.

Modes:

- ``"visit"``: one batch per visit, as Rubin's stream delivers them;
- ``"daily"``: one batch per night (the pull mode of surveys that publish
  once a day);
- ``"twice-daily"``: each night in two batches (split at its median visit time).

At ``speed=None`` batches come as fast as they can be read; ``speed=60`` waits
between batches 1/60 of the real time between their visits.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_alerts

__all__ = ["ReplayBatch", "replay", "visit_index"]

MODES = ("visit", "daily", "twice-daily")


@dataclass
class ReplayBatch:
    """One replayed batch: its files, time and alerts.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.replay import replay
    >>> first = next(replay(lk.sample_path()))
    >>> len(first) == len(first.batch), len(first.files)
    (True, 1)
    """

    key: object
    mjd: float
    files: list
    batch: object = None

    def __len__(self):
        return 0 if self.batch is None else len(self.batch)


def visit_index(folder) -> pd.DataFrame:
    """The per-visit file index of an alert folder (``index.csv``, or rebuilt from the files).

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.replay import visit_index
    >>> index = visit_index(lk.sample_path())
    >>> index.columns.tolist()[:3], bool(index["mjd"].is_monotonic_increasing)
    (['visit', 'mjd', 'n_alerts'], True)
    """
    folder = Path(folder)
    if (folder / "alerts").is_dir():
        folder = folder / "alerts"
    idx_path = folder / "index.csv"
    if idx_path.is_file():
        idx = pd.read_csv(idx_path)
    else:
        files = sorted(folder.glob("*.avro"))
        if not files:
            raise FileNotFoundError(f"no per-visit .avro files in {folder}")
        mjd = [float(read_alerts(f, columns=[], cutouts=False).sources["midpointMjdTai"].min()) for f in files]
        idx = pd.DataFrame({"visit": range(len(files)), "mjd": mjd, "n_alerts": -1, "file": [f.name for f in files]})
    idx = idx.sort_values("mjd", kind="stable").reset_index(drop=True)
    idx["path"] = [str(folder / f) for f in idx["file"]]
    return idx


def replay(folder, *, speed=None, mode="visit", to=None, load=True, columns=None, sleep=time.sleep):
    """Yield batches of a simulated (or recorded) night in time order.

    Parameters
    ----------
    folder : path
        A folder of per-visit ``.avro`` files (or a simulation folder holding ``alerts/``).
    speed : float, optional
        Real-time factor (60 = one hour of survey time per minute); ``None`` is full speed.
    mode : {"visit", "daily", "twice-daily"}
        Batch per visit, per night or per half night.
    to : path, optional
        Copy each batch's files into this folder as it is replayed.
    load : bool
        Read each batch into an AlertBatch (``ReplayBatch.batch``); ``False`` only
        yields the files.
    columns : list, optional
        Column projection passed to :func:`read_alerts`.
    sleep : callable
        Used to wait between batches (tests pass a recorder).

    Yields
    ------
    ReplayBatch

    Examples
    --------
    >>> from lsstuk_kit import sample_path
    >>> from lsstuk_kit.replay import replay
    >>> batches = list(replay(sample_path(), load=False))
    >>> all(a.mjd <= b.mjd for a, b in zip(batches, batches[1:]))
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (or None for full speed)")
    idx = visit_index(folder)
    if mode == "visit":
        keys = idx["visit"].to_numpy()
    elif mode == "daily":
        keys = np.floor(idx["mjd"].to_numpy()).astype(int)  # a simulated night lies within one MJD
    else:
        mjd = idx["mjd"].to_numpy()
        night = np.floor(mjd)
        half = np.array([np.median(mjd[night == n]) for n in night])  # split each night at its median visit
        keys = (night * 2 + (mjd > half)).astype(int)
    if to is not None:
        Path(to).mkdir(parents=True, exist_ok=True)
    prev = None
    for key, grp in idx.groupby(keys, sort=False):
        mjd = float(grp["mjd"].iloc[-1] if mode != "visit" else grp["mjd"].iloc[0])
        if speed is not None and prev is not None and mjd > prev:
            sleep((mjd - prev) * 86400.0 / speed)
        prev = mjd
        files = grp["path"].tolist()
        if to is not None:
            for f in files:
                shutil.copy2(f, Path(to) / Path(f).name)
        batch = read_alerts(files, columns=columns) if load else None
        yield ReplayBatch(key=key, mjd=mjd, files=files, batch=batch)
