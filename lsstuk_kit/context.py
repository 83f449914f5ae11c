"""Context classification in the spirit of Sherlock: what kind of thing is near each alert.

Rules, applied in this order (the first that fires decides):

====  ===================  ===============================================================
rule  context              fires when
====  ===================  ===============================================================
BS    bright star          within a bright star's veto radius (:mod:`lsstuk_kit.catalogs`)
CV    CV                   within ``star_arcsec`` of a known cataclysmic variable
UN    unclear              within ``star_arcsec`` of a star *and* ``nuclear_arcsec`` of a galaxy core
VS    variable star        within ``star_arcsec`` of a (point-like) star
NT    nuclear transient    within ``nuclear_arcsec`` of a galaxy's centre (AGN, TDE, nuclear SN)
SN    supernova            inside ``sn_max_distance`` normalised ellipse radii of a galaxy, off its nucleus
OR    orphan               nothing matched
====  ===================  ===============================================================

The result names the matched object, its catalogue, the separation and the rule.
The nuclear radius defaults to 0.3 arcsec (about 3 sigma of LSST single-visit
astrometry for faint sources): a supernova closer than that to its host's
centre cannot be told from a nuclear transient by position alone.
:func:`catalogs_from_simulation` makes the star, galaxy and CV catalogues a
simulated night implies (as Gaia, a galaxy catalogue and a CV list would for real
data), so the classification can be scored against the simulator's truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .catalogs import associate_hosts, bright_star_veto
from .crossmatch import _positions, nearest_within
from .scale import dask_aware

__all__ = ["CONTEXTS", "classify_context", "catalogs_from_simulation", "context_accuracy"]

CONTEXTS = {"BS": "bright star", "CV": "CV", "UN": "unclear", "VS": "variable star",
            "NT": "nuclear transient", "SN": "supernova", "OR": "orphan"}


@dask_aware
def classify_context(alerts, *, stars=None, galaxies=None, cvs=None, bright_stars=True, bright_mag_limit=8.0,
                     star_arcsec=1.0, nuclear_arcsec=0.3, sn_max_distance=3.0) -> pd.DataFrame:
    """Classify each alert by its surroundings.

    Parameters
    ----------
    alerts : AlertBatch or DataFrame (``ra``, ``dec``)
    stars, cvs : DataFrame, optional
        ``ra``, ``dec`` and optionally ``id`` of point sources (e.g. Gaia stars) and known CVs.
    galaxies : DataFrame, optional
        ``ra``, ``dec``, ``a_arcsec``, ``b_arcsec``, ``pa`` and optionally ``id``.
    bright_stars : bool or DataFrame
        ``True`` uses Hipparcos 2 brighter than ``bright_mag_limit``; a DataFrame
        (``ra``, ``dec``, ``Hpmag``) replaces it; ``False`` skips the veto.

    Returns
    -------
    DataFrame
        Per alert: ``context``, ``rule``, ``match_id``, ``match_catalog``, ``sep_arcsec``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.context import classify_context
    >>> gal = pd.DataFrame({"id": ["G1"], "ra": [10.0], "dec": [-30.0], "a_arcsec": [10.0], "b_arcsec": [5.0],
    ...                     "pa": [0.0]})
    >>> pts = pd.DataFrame({"ra": [10.0, 10.0, 50.0], "dec": [-30.0 + 0.1 / 3600, -30.0 + 4 / 3600, 10.0]})
    >>> classify_context(pts, galaxies=gal, bright_stars=False)["context"].tolist()
    ['nuclear transient', 'supernova', 'orphan']
    """
    df, ra, dec = _positions(alerts)
    n = len(df)
    rule = np.full(n, "", dtype=object)
    match_id = np.full(n, None, dtype=object)
    catalog = np.full(n, None, dtype=object)
    sep = np.full(n, np.nan)

    def assign(mask, code, ids, cat, seps):
        free = mask & (rule == "")
        rule[free] = code
        match_id[free] = np.asarray(ids, dtype=object)[free]
        catalog[free] = cat
        sep[free] = np.asarray(seps, float)[free]

    def ids_of(cat, idx):
        """The ids of catalogue rows ``idx`` (row numbers where the catalogue has no ``id``)."""
        return (cat["id"].iloc[idx].to_numpy() if "id" in cat else idx).astype(str)

    if bright_stars is not False and bright_stars is not None:
        veto = bright_star_veto(df.assign(ra=ra, dec=dec), bright_mag_limit,
                                stars=None if bright_stars is True else bright_stars)
        assign(veto["vetoed"].to_numpy(), "BS", veto["HIP"].astype(str).to_numpy(), "bright stars",
               veto["sep_arcsec"].to_numpy())

    def nearest(cat, radius):
        if cat is None or len(cat) == 0:
            return np.zeros(n, bool), np.full(n, None, dtype=object), np.full(n, np.nan)
        idx, s = nearest_within(ra, dec, cat["ra"].to_numpy(float), cat["dec"].to_numpy(float), radius)
        hit = idx >= 0
        ids = np.full(n, None, dtype=object)
        ids[hit] = ids_of(cat, idx[hit])
        return hit, ids, s

    cv_hit, cv_id, cv_sep = nearest(cvs, star_arcsec)
    assign(cv_hit, "CV", cv_id, "CVs", cv_sep)
    st_hit, st_id, st_sep = nearest(stars, star_arcsec)
    core_hit, core_id, core_sep = nearest(galaxies, nuclear_arcsec)
    assign(st_hit & core_hit, "UN", st_id, "stars", st_sep)
    assign(st_hit, "VS", st_id, "stars", st_sep)
    assign(core_hit, "NT", core_id, "galaxies", core_sep)
    if galaxies is not None and len(galaxies):
        host = associate_hosts(df.assign(ra=ra, dec=dec), galaxies, sn_max_distance,
                               id_col="id" if "id" in galaxies else "name")
        has = host["host_index"].to_numpy() >= 0
        assign(has, "SN", host["host"].astype(str).to_numpy(), "galaxies", host["sep_arcsec"].to_numpy())
    rule[rule == ""] = "OR"
    return pd.DataFrame({"context": [CONTEXTS[r] for r in rule], "rule": rule, "match_id": match_id,
                         "match_catalog": catalog, "sep_arcsec": sep}, index=df.index)


def catalogs_from_simulation(population: pd.DataFrame, hosts: pd.DataFrame, cv_completeness=1.0, seed=0):
    """Star, galaxy and CV catalogues implied by a simulated population (stand-ins for Gaia etc.).

    Stars: every simulated star (variables, flare stars, CVs) at its position;
    galaxies: the hosts, with semi-axes from the half-light radius and axis
    ratio; CVs: a ``cv_completeness`` share of the simulated CVs (a known-CV list).

    Returns
    -------
    dict of DataFrame
        ``stars``, ``galaxies``, ``cvs``.
    """
    rng = np.random.default_rng(seed)
    cls = population["cls"].astype(str)
    st = population[cls.isin(["VS", "Flare", "CV"])]
    stars = pd.DataFrame({"id": "star" + st["truthId"].astype(str), "ra": st["ra"], "dec": st["dec"]})
    cv = population[cls == "CV"]
    cv = cv[rng.random(len(cv)) < cv_completeness]
    cvs = pd.DataFrame({"id": "cv" + cv["truthId"].astype(str), "ra": cv["ra"], "dec": cv["dec"]})
    a = hosts["reArcsec"].to_numpy() * 1.5
    galaxies = pd.DataFrame({"id": "host" + hosts["hostId"].astype(str), "ra": hosts["ra"], "dec": hosts["dec"],
                             "a_arcsec": a, "b_arcsec": a * hosts["axisRatio"].to_numpy(), "pa": hosts["pa"],
                             "z": hosts["z"]})
    return {"stars": stars.reset_index(drop=True), "galaxies": galaxies.reset_index(drop=True),
            "cvs": cvs.reset_index(drop=True)}


#: The context a simulated class should get.
EXPECTED = {"SN": "supernova", "AGN": "nuclear transient", "VS": "variable star", "Flare": "variable star",
            "CV": "CV", "SSO": "orphan"}


def context_accuracy(context: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per simulated class: the share of its alerts given the expected context.

    ``truth`` is indexed like ``context`` with a ``cls`` column (e.g. from
    :func:`lsstuk_kit.simulate.load_truth`).
    """
    t = truth.loc[context.index, "cls"].astype(str)
    rows = []
    for cls, expected in EXPECTED.items():
        sel = t == cls
        if sel.any():
            got = context.loc[sel, "context"]
            rows.append({"class": cls, "expected": expected, "alerts": int(sel.sum()),
                         "correct": int((got == expected).sum()), "accuracy": float((got == expected).mean()),
                         "most_common_error": got[got != expected].value_counts().index[0]
                         if (got != expected).any() else ""})
    return pd.DataFrame(rows).set_index("class")
