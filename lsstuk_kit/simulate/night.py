"""Write a simulated survey as a survey would keep it, and as the alert stream it makes.

Layout of an output folder::

    tables/detections.parquet   survey database rows (ATLAS- or Pan-STARRS-like names)
    tables/objects.parquet
    tables/forced.parquet
    tables/exposures.parquet
    alerts/visit_<visit>.avro   Rubin-schema alerts, one file per visit, in time order
    alerts/index.csv            visit, mjd, n_alerts, file
    truth.parquet               per alert: class, subtype, real/bogus, bogus type, host, z, true flux
    hosts.parquet               host galaxies
    population.parquet          the simulated objects and their light-curve parameters
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._encode import FixedBytes
from ..convert import HISTORY_DAYS, tables_to_alerts, to_survey_tables
from .cadence import PIXEL_SCALE
from .population import mag_to_njy
from .stamps import TEMPLATE_NOISE, fits_stack, make_triplets
from .survey import SurveyTables, simulate_survey

__all__ = ["StampMaker", "write_night", "simulate_to_folder", "load_truth"]


class StampMaker:
    """Cutout triplets for alerts of a simulation (called by :func:`lsstuk_kit.convert.tables_to_alerts`).

    Parameters
    ----------
    tables : SurveyTables
        From :func:`simulate_survey`: the truth, exposures and hosts behind each detection.
    seed : int, optional
        Seed of the stamps' noise (default: the simulation's seed + 17).

    Examples
    --------
    A maker is called with a frame of diaSources (Rubin names) and gives one FITS file per row:

    >>> from lsstuk_kit.cutouts import decode_stamp
    >>> from lsstuk_kit.simulate import StampMaker, simulate_survey
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> sources = tables.detections.rename(columns={"detId": "diaSourceId", "expId": "visit"})
    >>> stamps = StampMaker(tables)(sources)
    >>> sorted(stamps)
    ['cutoutDifference', 'cutoutScience', 'cutoutTemplate']
    >>> stamps["cutoutScience"].data.shape  # 7 detections, FITS files of equal length
    (7, 23040)
    >>> stamp = decode_stamp(stamps["cutoutDifference"].data[0].tobytes())
    >>> stamp.image.shape, stamp.psf.shape, stamp.header["BUNIT"]
    ((30, 30), (21, 21), 'nJy')
    """

    def __init__(self, tables: SurveyTables, seed=None):
        self.truth = tables.truth.set_index("detId")
        self.exp = tables.exposures.set_index("expId")
        self.hosts = tables.hosts.set_index("hostId")
        self.rng = np.random.default_rng(tables.seed + 17 if seed is None else seed)

    def __call__(self, d: pd.DataFrame) -> dict:
        """Cutout FITS stacks for a frame of diaSources (Rubin names)."""
        ids = d["diaSourceId"].to_numpy()
        tr = self.truth.loc[ids]
        ex = self.exp.loc[d["visit"].to_numpy()]
        n = len(d)
        seeing_px = ex["seeing"].to_numpy() / PIXEL_SCALE / 2.3548
        host_id = tr["hostId"].to_numpy()
        has = host_id > 0
        host_flux = np.zeros(n)
        re_px = np.ones(n)
        hdx = np.zeros(n)
        hdy = np.zeros(n)
        if has.any():
            h = self.hosts.loc[host_id[has]]
            host_flux[has] = mag_to_njy(h["magR"].to_numpy())
            re_px[has] = h["reArcsec"].to_numpy() / PIXEL_SCALE
            dec = d["dec"].to_numpy()[has]
            hdx[has] = ((h["ra"].to_numpy() - d["ra"].to_numpy()[has] + 180) % 360 - 180) \
                * np.cos(np.radians(dec)) * 3600 / PIXEL_SCALE
            hdy[has] = (h["dec"].to_numpy() - dec) * 3600 / PIXEL_SCALE
        # artefacts are drawn at their detection significance (a dipole's net psfFlux is near zero)
        bogus = tr["bogusType"].to_numpy()
        flux = d["psfFlux"].to_numpy(float)
        if "snr" in d:
            sign = np.where(flux < 0, -1.0, 1.0)
            flux = np.where(bogus != "", sign * np.abs(d["snr"].to_numpy(float)) * d["psfFluxErr"].to_numpy(float),
                            flux)
        sci, tmpl, diff, var, psf = make_triplets(
            self.rng, flux, tr["templateFlux"].to_numpy(), host_flux, re_px, hdx, hdy,
            seeing_px, ex["skySigma"].to_numpy(), bogus=bogus)
        ra, dec = d["ra"].to_numpy(), d["dec"].to_numpy()
        rot = ex["rotation"].to_numpy()
        crx = 15.5 + self.rng.uniform(-0.5, 0.5, n)
        cry = 15.5 + self.rng.uniform(-0.5, 0.5, n)
        x = d["x"].to_numpy() if "x" in d else None
        y = d["y"].to_numpy() if "y" in d else None
        return {
            "cutoutScience": FixedBytes(fits_stack(sci, var, psf, ra, dec, rot, crx, cry, x, y)),
            "cutoutTemplate": FixedBytes(fits_stack(tmpl, var * TEMPLATE_NOISE**2, psf, ra, dec, rot, crx, cry, x, y)),
            "cutoutDifference": FixedBytes(fits_stack(diff, var * (1 + TEMPLATE_NOISE**2), psf, ra, dec, rot, crx, cry,
                                                      x, y)),
        }


def write_night(tables: SurveyTables, out, *, style="atlas", alert_nights=None, cutouts=True, codec="null",
                progress=False, chunk=20000, history_days=HISTORY_DAYS):
    """Write survey tables, per-visit alert files and the truth table into ``out``.

    Parameters
    ----------
    tables : SurveyTables
        From :func:`simulate_survey`.
    out : path
        Output folder.
    style : {"atlas", "panstarrs"}
        Column naming of the database tables.
    alert_nights : int, optional
        Only the last ``alert_nights`` nights make alerts (their history still
        reaches back through every earlier night). Default: every night.
    cutouts : bool
        Attach cutout triplets.
    codec : str
        Avro codec (``null`` or ``deflate``).
    history_days : float
        Reach of each alert's history (365 days; ``0`` gives "lite" alerts without history).

    Returns
    -------
    pandas.DataFrame
        The alert file index.

    Examples
    --------
    >>> import tempfile
    >>> from lsstuk_kit import read_alerts
    >>> from lsstuk_kit.simulate import load_truth, simulate_survey, write_night
    >>> tables = simulate_survey(1, seed=1, fields=[15], scale=0.5)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     index = write_night(tables, out)
    ...     batch = read_alerts(f"{out}/alerts")
    ...     truth = load_truth(out)
    >>> index[["n_alerts", "file"]].values.tolist()  # one file per visit
    [[2, 'visit_000006110000000.avro'], [2, 'visit_000006110000001.avro'], [3, 'visit_000006110000002.avro']]
    >>> len(batch) == len(truth) == len(tables.detections)
    True
    >>> bool((batch.sources["diaObjectId"] == truth.loc[batch.sources.index, "diaObjectId"]).all())
    True
    """
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    db = to_survey_tables(tables, style)
    for name, df in db.items():
        df.to_parquet(out / "tables" / f"{name}.parquet", index=False)
    exp = tables.exposures
    visits = None
    if alert_nights is not None:
        last = exp["night"].max()
        visits = exp.loc[exp["night"] > last - alert_nights, "expId"].to_numpy()
    index = tables_to_alerts(db, out / "alerts", mapping=style, stamps=StampMaker(tables) if cutouts else None,
                             visits=visits, codec=codec, progress=progress, chunk=chunk,
                             history_days=history_days)
    det_ids = tables.detections["detId"]
    if visits is not None:
        det_ids = det_ids[tables.detections["expId"].isin(visits)]
    truth = tables.truth.set_index("detId").loc[det_ids.to_numpy()].reset_index()
    truth = truth.rename(columns={"detId": "diaSourceId", "objectId": "diaObjectId"})
    truth.to_parquet(out / "truth.parquet", index=False)
    tables.hosts.to_parquet(out / "hosts.parquet", index=False)
    tables.population.to_parquet(out / "population.parquet", index=False)
    return index


def simulate_to_folder(out, *, nights=1, seed=0, alert_nights=None, progress=False, style="atlas",
                       codec="null", cutouts=True, **kwargs):
    """Simulate ``nights`` and write them to ``out`` (:func:`simulate_survey` + :func:`write_night`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from lsstuk_kit.simulate import simulate_to_folder
    >>> with tempfile.TemporaryDirectory() as out:
    ...     index = simulate_to_folder(out, nights=1, seed=1, fields=[15], scale=0.5, cutouts=False)
    ...     written = sorted(p.name for p in Path(out).iterdir())
    >>> written
    ['alerts', 'hosts.parquet', 'population.parquet', 'tables', 'truth.parquet']
    >>> int(index["n_alerts"].sum())
    7
    """
    tables = simulate_survey(nights, seed=seed, progress=progress, **kwargs)
    return write_night(tables, out, style=style, alert_nights=alert_nights, cutouts=cutouts, codec=codec,
                       progress=progress)


def load_truth(folder) -> pd.DataFrame:
    """The truth table written beside a simulated night, indexed by ``diaSourceId``.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, sample_path
    >>> from lsstuk_kit.simulate import load_truth
    >>> truth = load_truth(sample_path())
    >>> truth.index.name, len(truth) == len(load_sample())
    ('diaSourceId', True)
    >>> sorted(set(truth["cls"]))
    ['AGN', 'CV', 'Flare', 'SN', 'SSO', 'VS', 'bogus']
    """
    return pd.read_parquet(Path(folder) / "truth.parquet").set_index("diaSourceId")
