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

With ``survey_context=True`` the alert's own context fields join in (ZTF: the
nearest Pan-STARRS1 source ``distpsnr1`` and its star/galaxy score ``sgscore1``,
Tachibana & Miller 2018; the known solar-system object ``ssnamenr``/``ssdistnr``;
Rubin: ``ssObjectId``), each rule after its catalogue counterpart:

====  ===========================  =========================================================
rule  context                      fires when (survey fields)
====  ===========================  =========================================================
SS    known solar-system object    ZTF ``ssdistnr <= ss_arcsec`` with a name, or Rubin ``ssObjectId``
VS    variable star                ``distpsnr1 <= star_arcsec`` and ``sgscore1 >= star_score``
NT    nuclear transient            ``distpsnr1 <= survey_nuclear_arcsec``, ``sgscore1 < star_score``
SN    supernova                    ``distpsnr1 <= survey_host_arcsec``, ``sgscore1 < star_score``
====  ===========================  =========================================================

(``match_catalog`` says which catalogue decided: "PS1 (alert)" for the survey
rules.) The star-score threshold 0.76 is Fink's (its asteroid module), on the
score of Tachibana & Miller (2018). A point-like PS1 source is a star *or a
quasar*: without a quasar catalogue, AGN on point-like hosts come out as
"variable star" (measured on real ZTF alerts: see :func:`score_context`).

Stars with proper motions (``pmra``, ``pmdec``, ``ref_epoch``: Hipparcos, a Gaia
export) are moved to each alert's epoch (``midpointMjdTai``) before matching.

Scoring on real alerts: :func:`simbad_reference` and :func:`bts_reference` turn
SIMBAD object types (Fink's ``cdsxmatch``) and BTS spectroscopic types into the
context each should get, and :func:`score_context` gives the confusion matrix
and the accuracy per class with bootstrap intervals (resampling objects).
:func:`known_transients` flags alerts at the position of a catalogued transient
and whether they come from another epoch ("recurring").

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

from ._lazy import dask_aware
from .catalogs import _moves, associate_hosts, bright_star_veto, pairs_at_epoch
from .crossmatch import _positions, nearest_within

__all__ = ["CONTEXTS", "classify_context", "catalogs_from_simulation", "context_accuracy", "simbad_reference",
           "bts_reference", "score_context", "ContextScore", "known_transients", "REFERENCE_ACCEPT",
           "SURVEY_CONTEXTS", "SIMBAD_CONTEXT", "BTS_CONTEXT"]

CONTEXTS = {"BS": "bright star", "CV": "CV", "UN": "unclear", "VS": "variable star",
            "NT": "nuclear transient", "SN": "supernova", "OR": "orphan"}
#: Contexts only the alert's own fields give (``survey_context=True``); Sherlock has no such class.
SURVEY_CONTEXTS = {"SS": "known solar-system object"}


@dask_aware
def classify_context(alerts, *, stars=None, galaxies=None, cvs=None, bright_stars=True, bright_mag_limit=8.0,
                     star_arcsec=1.0, nuclear_arcsec=0.3, sn_max_distance=3.0, survey_context=False,
                     star_score=0.76, survey_nuclear_arcsec=0.5, survey_host_arcsec=5.0, ss_arcsec=5.0,
                     proper_motion=True) -> pd.DataFrame:
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
    survey_context : bool
        Also use the alert's own context fields (see the module notes): ZTF's Pan-STARRS1
        neighbour (``distpsnr1``, ``sgscore1``, ``objectidps1``) and known solar-system object
        (``ssnamenr``, ``ssdistnr``), Rubin's ``ssObjectId``. Alerts without them are unaffected.
    star_score, survey_nuclear_arcsec, survey_host_arcsec, ss_arcsec : float
        Thresholds of the survey rules (``sgscore1`` at or above ``star_score`` is point-like).
    proper_motion : bool
        Move catalogues that have ``pmra``, ``pmdec`` and ``ref_epoch`` (Hipparcos included) to
        each alert's epoch (``midpointMjdTai``) before matching
        (:func:`lsstuk_kit.catalogs.pairs_at_epoch`).

    Returns
    -------
    DataFrame
        Per alert: ``context``, ``rule``, ``match_id``, ``match_catalog``, ``sep_arcsec``.

    Notes
    -----
    What the offline catalogues can see: Hipparcos stars (complete to V ~ 7.3-9) and
    OpenNGC's ~13,000 bright galaxies. Most alerts' neighbours are fainter: on real ZTF
    alerts the catalogue rules alone call almost everything "orphan"; pass a Gaia export
    (:func:`lsstuk_kit.catalogs.load_gaia_csv`), a VSX export, a galaxy list, or use
    ``survey_context=True``.

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
    mjd = df["midpointMjdTai"].to_numpy(float) if proper_motion and "midpointMjdTai" in df else None
    return _classify(df, ra, dec, mjd, stars=stars, galaxies=galaxies, cvs=cvs, bright_stars=bright_stars,
                     bright_mag_limit=bright_mag_limit, star_arcsec=star_arcsec, nuclear_arcsec=nuclear_arcsec,
                     sn_max_distance=sn_max_distance, survey_context=survey_context, star_score=star_score,
                     survey_nuclear_arcsec=survey_nuclear_arcsec, survey_host_arcsec=survey_host_arcsec,
                     ss_arcsec=ss_arcsec)


def _survey_field(df, name):
    """A ZTF-style numeric context field with its -999 'none' sentinels (and negatives) as NaN."""
    if name not in df:
        return np.full(len(df), np.nan)
    v = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
    return np.where(v < 0, np.nan, v)


def _classify(df, ra, dec, mjd, *, stars, galaxies, cvs, bright_stars, bright_mag_limit, star_arcsec, nuclear_arcsec,
              sn_max_distance, survey_context, star_score, survey_nuclear_arcsec, survey_host_arcsec, ss_arcsec):
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
        pos = pd.DataFrame({"ra": ra, "dec": dec}, index=df.index)
        if mjd is not None:
            pos["midpointMjdTai"] = mjd
        veto = bright_star_veto(pos, bright_mag_limit, stars=None if bright_stars is True else bright_stars,
                                proper_motion=mjd is not None)
        assign(veto["vetoed"].to_numpy(), "BS", veto["HIP"].astype(str).to_numpy(), "bright stars",
               veto["sep_arcsec"].to_numpy())

    def nearest(cat, radius):
        if cat is None or len(cat) == 0:
            return np.zeros(n, bool), np.full(n, None, dtype=object), np.full(n, np.nan)
        if _moves(cat) and mjd is not None:  # stars moved to each alert's epoch
            i, j, sj = pairs_at_epoch(ra, dec, mjd, cat, radius)
            first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.zeros(0, bool)
            idx, s = np.full(n, -1, np.int64), np.full(n, np.nan)
            idx[i[first]], s[i[first]] = j[first], sj[first]
        else:
            idx, s = nearest_within(ra, dec, cat["ra"].to_numpy(float), cat["dec"].to_numpy(float), radius)
        hit = idx >= 0
        ids = np.full(n, None, dtype=object)
        ids[hit] = ids_of(cat, idx[hit])
        return hit, ids, s

    cv_hit, cv_id, cv_sep = nearest(cvs, star_arcsec)
    assign(cv_hit, "CV", cv_id, "CVs", cv_sep)
    no = np.zeros(n, bool)
    ps_star = ps_core = ps_host = no
    if survey_context:
        ss_dist = _survey_field(df, "ssdistnr")
        ss_name = df["ssnamenr"].astype("string").str.strip().fillna("").to_numpy(str) if "ssnamenr" in df \
            else np.full(n, "")
        ss_hit = (ss_dist <= ss_arcsec) & ~np.isin(ss_name, ["", "null", "None", "nan"])
        ss_id = ss_name.astype(object)
        if "ssObjectId" in df:  # Rubin: the pipeline associated the source with a known solar-system object
            sso = pd.to_numeric(df["ssObjectId"], errors="coerce").to_numpy(float)
            rubin = np.isfinite(sso) & (sso > 0)
            ss_hit = ss_hit | rubin
            rid = pd.Series(np.where(rubin, sso, np.nan)).round().astype("Int64").astype(str).to_numpy(object)
            if "ssSource_designation" in df:  # the MPC designation where the alert carries it
                des = df["ssSource_designation"].astype("string").to_numpy(object)
                rid = np.where(pd.notna(des), des, rid)
            ss_id = np.where(rubin, rid, ss_id)
            ss_dist = np.where(rubin, 0.0, ss_dist)
        assign(ss_hit, "SS", ss_id, "solar system (alert)", ss_dist)
        dist = _survey_field(df, "distpsnr1")
        score = _survey_field(df, "sgscore1")
        ps_id = (pd.to_numeric(df["objectidps1"], errors="coerce").round().astype("Int64").astype(str)
                 .to_numpy(object) if "objectidps1" in df else np.full(n, None, object))
        ps_star = (dist <= star_arcsec) & (score >= star_score)
        ps_core = (dist <= survey_nuclear_arcsec) & (score < star_score)
        ps_host = (dist <= survey_host_arcsec) & (score < star_score)
    st_hit, st_id, st_sep = nearest(stars, star_arcsec)
    core_hit, core_id, core_sep = nearest(galaxies, nuclear_arcsec)
    assign(st_hit & core_hit, "UN", st_id, "stars", st_sep)
    if survey_context:
        assign(ps_star & core_hit, "UN", ps_id, "PS1 (alert)", dist)
    assign(st_hit, "VS", st_id, "stars", st_sep)
    if survey_context:
        assign(ps_star, "VS", ps_id, "PS1 (alert)", dist)
    assign(core_hit, "NT", core_id, "galaxies", core_sep)
    if survey_context:
        assign(ps_core, "NT", ps_id, "PS1 (alert)", dist)
    if galaxies is not None and len(galaxies):
        host = associate_hosts(pd.DataFrame({"ra": ra, "dec": dec}, index=df.index), galaxies, sn_max_distance,
                               id_col="id" if "id" in galaxies else "name")
        has = host["host_index"].to_numpy() >= 0
        assign(has, "SN", host["host"].astype(str).to_numpy(), "galaxies", host["sep_arcsec"].to_numpy())
    if survey_context:
        assign(ps_host, "SN", ps_id, "PS1 (alert)", dist)
    rule[rule == ""] = "OR"
    names = {**CONTEXTS, **SURVEY_CONTEXTS}
    return pd.DataFrame({"context": pd.Series(rule).map(names).to_numpy(), "rule": rule, "match_id": match_id,
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

    Examples
    --------
    >>> import pandas as pd
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.context import catalogs_from_simulation
    >>> pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    >>> hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    >>> sorted(catalogs_from_simulation(pop, hosts))
    ['cvs', 'galaxies', 'stars']
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

    Examples
    --------
    >>> import pandas as pd
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.context import catalogs_from_simulation, classify_context, context_accuracy
    >>> pop = pd.read_parquet(lk.sample_path() / "population.parquet")
    >>> hosts = pd.read_parquet(lk.sample_path() / "hosts.parquet")
    >>> context = classify_context(lk.load_sample(), **catalogs_from_simulation(pop, hosts))
    >>> context_accuracy(context, lk.load_sample_truth()).columns.tolist()
    ['expected', 'alerts', 'correct', 'accuracy', 'most_common_error']
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


# --------------------------------------------------------------------------------------------------------------
# Scoring against real labels

#: SIMBAD object types (the long labels Fink's ``cdsxmatch`` carries) -> the context an alert on them should get.
#: Stars of every kind (any label with ``*``, plus YSOs, pulsating and eclipsing classes, X-ray binaries) ->
#: "variable star"; cataclysmic variables and novae -> "CV"; AGN, quasars, blazars, Seyferts, LINERs, radio
#: galaxies -> "nuclear transient"; galaxies -> "galaxy" (nuclear transient or supernova both right: a SIMBAD
#: galaxy within Fink's 1.5" is the host's catalogued position); supernovae -> "supernova"; "Unknown" (no SIMBAD
#: object within 1.5") -> "orphan". Left out (no context follows from them): wavelength-only classes (Radio, IR,
#: UV, X, Blue, ...), Fail, Inexistent, multiple_object, clusters, nebulae, planets, lensing systems.
SIMBAD_CONTEXT = {
    **dict.fromkeys(["CataclyV*", "Candidate_CV*", "Nova", "Candidate_Nova", "DwarfNova", "NovaLike", "CV*", "CV?",
                     "No*", "No?"], "CV"),
    **dict.fromkeys(["SN", "SN*", "Candidate_SN*", "SN?"], "supernova"),
    **dict.fromkeys(["AGN", "AGN_Candidate", "QSO", "QSO_Candidate", "BLLac", "BLLac_Candidate", "Blazar",
                     "Blazar_Candidate", "Seyfert", "Seyfert_1", "Seyfert_2", "LINER", "RadioG", "Sy1", "Sy2",
                     "BLL", "Bla", "LIN", "Q?", "AG?", "Bz?", "BL?"], "nuclear transient"),
    **dict.fromkeys(["Galaxy", "G", "GinPair", "GinCl", "GinGroup", "HII_G", "EmG", "StarburstG", "BlueCompG",
                     "LSB_G", "PairG", "IG", "GroupG", "PartofG", "Compact_Gr_G", "BClG", "LensingG", "G?"],
                    "galaxy"),
    **dict.fromkeys(["Star", "YSO", "Candidate_YSO", "RRLyr", "Candidate_RRLyr", "Mira", "deltaCep", "Cepheid",
                     "gammaDor", "EllipVar", "BYDra", "RSCVn", "HotSubdwarf", "Candidate_Hsd", "OH/IR", "XB",
                     "HMXB", "LMXB", "Candidate_XB*", "WhiteDwarf_Candidate", "post-AGB*"], "variable star"),
    "Unknown": "orphan",
}

#: BTS / TNS spectroscopic types -> context. Supernovae of every type, superluminous SNe, and the gap
#: transients and impostors (LBV, ILRT, LRN, Ca-rich) sit in galaxies off their nuclei -> "supernova";
#: TDEs -> "nuclear transient"; novae -> "CV" (BTS novae are mostly in M31: their surroundings are a
#: galaxy, so the kit's "supernova" there is the right *surroundings* and the wrong *class*).
BTS_CONTEXT = {"TDE": "nuclear transient", "nova": "CV", "AGN": "nuclear transient", "CV": "CV",
               "varstar": "variable star"}

#: Which kit contexts count as right for each reference class (the confusion matrix shows them all).
REFERENCE_ACCEPT = {"variable star": {"variable star", "bright star", "unclear"}, "CV": {"CV"},
                    "nuclear transient": {"nuclear transient", "unclear"},
                    "galaxy": {"nuclear transient", "supernova", "unclear"}, "supernova": {"supernova"},
                    "orphan": {"orphan"}, "known solar-system object": {"known solar-system object"}}


def simbad_reference(otypes) -> pd.Series:
    """The context each SIMBAD object type calls for (:data:`SIMBAD_CONTEXT`); NaN where none follows.

    Types not listed that contain ``*`` (a star of some kind, e.g. ``Candidate_LP*``) map to
    "variable star".

    Examples
    --------
    >>> from lsstuk_kit.context import simbad_reference
    >>> simbad_reference(["BLLac", "EB*", "Candidate_CV*", "Galaxy", "Unknown", "Radio", None]).tolist()
    ['nuclear transient', 'variable star', 'CV', 'galaxy', 'orphan', nan, nan]
    """
    s = pd.Series(otypes, dtype=object)
    s = s.where(s.notna(), None).astype("string").str.strip()
    out = s.map(SIMBAD_CONTEXT)
    starlike = s.str.contains("*", regex=False).fillna(False) & out.isna()
    out = out.astype(object).where(~starlike.to_numpy(bool), "variable star")
    return out.where(out.notna(), np.nan).astype(object)


def bts_reference(types) -> pd.Series:
    """The context each BTS/TNS spectroscopic type calls for; NaN for empty or "other".

    :data:`BTS_CONTEXT`, and SN*, SLSN*, LBV, ILRT, LRN, Ca-rich -> "supernova".

    Examples
    --------
    >>> from lsstuk_kit.context import bts_reference
    >>> bts_reference(["SN Ia", "SLSN-I", "TDE", "nova", "LBV", "other", ""]).tolist()
    ['supernova', 'supernova', 'nuclear transient', 'CV', 'supernova', nan, nan]
    """
    s = pd.Series(types, dtype=object).astype("string").str.strip()
    out = s.map(BTS_CONTEXT).astype(object)
    sn = s.str.match(r"^(SN|SLSN|LBV|ILRT|LRN|Ca-rich|Ia|Ib|Ic|II)").fillna(False).to_numpy(bool)
    out = out.where(~(sn & out.isna().to_numpy()), "supernova")
    return out.where(out.notna(), np.nan).astype(object)


class ContextScore:
    """Result of :func:`score_context`.

    Attributes
    ----------
    per_class : DataFrame
        Per reference class: ``n`` alerts, ``objects``, ``correct``, ``accuracy`` and its
        bootstrap interval ``lo``/``hi``, ``accepted`` contexts and ``most_common``
        kit context.
    confusion : DataFrame
        Counts: reference classes (rows) x kit contexts (columns).
    accuracy, interval : float, (float, float)
        Over all scored alerts.
    n, n_objects, n_excluded : int
        Scored alerts, their objects, and alerts without a reference class.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.context import score_context
    >>> s = score_context(pd.Series(["supernova", "orphan"]), pd.Series(["supernova", "supernova"]))
    >>> type(s).__name__, s.n, round(s.accuracy, 2)
    ('ContextScore', 2, 0.5)
    """

    def __init__(self, per_class, confusion, accuracy, interval, n, n_objects, n_excluded):
        self.per_class, self.confusion = per_class, confusion
        self.accuracy, self.interval = accuracy, interval
        self.n, self.n_objects, self.n_excluded = n, n_objects, n_excluded

    def __repr__(self):
        return (f"ContextScore(accuracy={self.accuracy:.3f} [{self.interval[0]:.3f}, {self.interval[1]:.3f}], "
                f"n={self.n} alerts / {self.n_objects} objects, excluded={self.n_excluded})\n"
                f"{self.per_class.to_string()}")


def _cluster_bootstrap(correct, groups, n_boot, rng, level):
    """Percentile interval of the mean of ``correct``, resampling whole groups (objects)."""
    codes, uniq = pd.factorize(pd.Series(groups, dtype=object))
    k = len(uniq)
    if k == 0:
        return np.nan, np.nan
    hits = np.bincount(codes, weights=correct.astype(float), minlength=k)
    size = np.bincount(codes, minlength=k).astype(float)
    draw = rng.integers(0, k, size=(n_boot, k))
    acc = hits[draw].sum(1) / size[draw].sum(1)
    a = (1 - level) / 2
    return float(np.quantile(acc, a)), float(np.quantile(acc, 1 - a))


def score_context(context, reference, *, groups=None, accept=None, n_boot=2000, level=0.95,
                  seed=0) -> ContextScore:
    """Confusion matrix and accuracy per reference class, with bootstrap intervals.

    Parameters
    ----------
    context : DataFrame or Series
        :func:`classify_context`'s result (its ``context`` column) or the contexts themselves.
    reference : Series or array
        The reference class per alert, aligned with ``context`` (e.g. :func:`simbad_reference`,
        :func:`bts_reference`); NaN/None rows are left out (and counted).
    groups : array, optional
        An object id per alert: the bootstrap resamples objects, not alerts (alerts of one
        object are not independent). Default: each alert its own group.
    accept : dict, optional
        Reference class -> set of kit contexts counted right (default :data:`REFERENCE_ACCEPT`;
        a class not in it accepts only itself).
    n_boot, level, seed
        Bootstrap resamples, interval level, random seed.

    Returns
    -------
    ContextScore

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.context import score_context
    >>> got = pd.Series(["variable star", "orphan", "supernova", "variable star"])
    >>> ref = pd.Series(["variable star", "variable star", "supernova", None])
    >>> s = score_context(got, ref)
    >>> s.per_class["accuracy"].to_dict(), s.n, s.n_excluded
    ({'supernova': 1.0, 'variable star': 0.5}, 3, 1)
    """
    got = context["context"] if isinstance(context, pd.DataFrame) else pd.Series(context)
    got = got.astype(str).to_numpy()
    ref = pd.Series(reference).to_numpy(dtype=object)
    if len(ref) != len(got):
        raise ValueError(f"reference has {len(ref)} rows for {len(got)} contexts")
    grp = np.arange(len(got)) if groups is None else np.asarray(groups, dtype=object)
    if len(grp) != len(got):
        raise ValueError(f"groups has {len(grp)} rows for {len(got)} contexts")
    keep = pd.notna(ref)
    ref_k = ref[keep].astype(str)
    got_k, grp_k = got[keep], grp[keep]
    rules = {**REFERENCE_ACCEPT, **(accept or {})}
    ok = np.array([g in rules.get(r, {r}) for r, g in zip(ref_k, got_k)], bool)  # at most a few thousand rows
    rng = np.random.default_rng(seed)
    rows = []
    for cls in sorted(set(ref_k)):
        sel = ref_k == cls
        lo, hi = _cluster_bootstrap(ok[sel], grp_k[sel], n_boot, rng, level)
        wrong = pd.Series(got_k[sel])
        rows.append({"class": cls, "n": int(sel.sum()), "objects": int(pd.Series(grp_k[sel]).nunique()),
                     "correct": int(ok[sel].sum()), "accuracy": float(ok[sel].mean()), "lo": lo, "hi": hi,
                     "accepted": ", ".join(sorted(rules.get(cls, {cls}))),
                     "most_common": wrong.value_counts().index[0]})
    per = pd.DataFrame(rows).set_index("class") if rows else pd.DataFrame(
        columns=["n", "objects", "correct", "accuracy", "lo", "hi", "accepted", "most_common"])
    known = list(CONTEXTS.values()) + list(SURVEY_CONTEXTS.values())
    cols = [c for c in known if c in set(got_k)] + sorted(set(got_k) - set(known))
    conf = pd.crosstab(pd.Series(ref_k, name="reference"), pd.Series(got_k, name="kit context")).reindex(
        columns=cols, fill_value=0)
    overall = float(ok.mean()) if len(ok) else np.nan
    interval = _cluster_bootstrap(ok, grp_k, n_boot, rng, level)
    return ContextScore(per, conf, overall, interval, int(keep.sum()), int(pd.Series(grp_k).nunique()),
                        int((~keep).sum()))


# --------------------------------------------------------------------------------------------------------------
# Known and recurring transients


@dask_aware
def known_transients(alerts, catalog, radius_arcsec=1.5, min_gap_days=365.0, time_col="midpointMjdTai"):
    """Flag alerts at the position of a catalogued transient, and those from another epoch ("recurring").

    An alert within ``radius_arcsec`` of a known transient (a TNS export, the BTS table) is
    "known": it gets that transient's name, type and catalogued epoch. If the alert is more than
    ``min_gap_days`` away from that epoch it is "recurring": something new at an old
    transient's position (catalogued as a supernova, seen again years later: not that supernova
    now; an AGN flare, a variable star or a new event in the same galaxy nucleus).

    Parameters
    ----------
    alerts : AlertBatch or DataFrame
        ``ra``, ``dec`` and ``time_col`` (MJD).
    catalog : DataFrame
        ``name``, ``type``, ``ra``, ``dec``, ``mjd`` (discovery or peak epoch), e.g.
        :func:`lsstuk_kit.catalogs.load_tns` or :func:`~lsstuk_kit.catalogs.load_bts`.
    radius_arcsec, min_gap_days : float

    Returns
    -------
    DataFrame
        Per alert: ``known``, ``known_name``, ``known_type``, ``known_mjd``, ``sep_arcsec``,
        ``days_since`` (alert minus catalogue epoch), ``recurring``, ``note``.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.context import known_transients
    >>> cat = pd.DataFrame({"name": ["SN 2019abc"], "type": ["SN Ia"], "ra": [150.0], "dec": [2.0],
    ...                     "mjd": [58600.0]})
    >>> alerts = pd.DataFrame({"ra": [150.0, 150.0, 151.0], "dec": [2.0, 2.0, 2.0],
    ...                        "midpointMjdTai": [58620.0, 60700.0, 60700.0]})
    >>> known_transients(alerts, cat)[["known", "recurring"]].values.tolist()
    [[True, False], [True, True], [False, False]]
    """
    df, ra, dec = _positions(alerts)
    for col in ("name", "type", "ra", "dec", "mjd"):
        if col not in catalog:
            raise ValueError(f"known_transients: the catalogue has no {col!r} column "
                             f"(columns: {list(catalog.columns)})")
    if time_col not in df:
        raise ValueError(f"known_transients: the alerts have no {time_col!r} column (the alert's epoch, MJD)")
    t = pd.to_numeric(df[time_col], errors="coerce").to_numpy(float)
    idx, sep = nearest_within(ra, dec, catalog["ra"].to_numpy(float), catalog["dec"].to_numpy(float), radius_arcsec)
    hit = idx >= 0
    j = np.where(hit, idx, 0)
    name = np.where(hit, catalog["name"].astype(str).to_numpy()[j], None)
    typ = np.where(hit, catalog["type"].astype(str).to_numpy()[j], None)
    mjd = np.where(hit, catalog["mjd"].to_numpy(float)[j], np.nan)
    since = t - mjd
    recurring = hit & (np.abs(since) > min_gap_days)
    out = pd.DataFrame({"known": hit, "known_name": name, "known_type": typ, "known_mjd": mjd, "sep_arcsec": sep,
                        "days_since": since, "recurring": recurring}, index=df.index)
    label = out["known_type"].fillna("").replace("", "transient")
    base = label + " " + out["known_name"].fillna("") + " (catalogued MJD " + out["known_mjd"].round(0).astype(
        "Int64").astype(str) + "), " + out["days_since"].round(0).astype("Int64").astype(str) + " d from it"
    out["note"] = np.where(recurring, "recurring: " + base + ": not that " + label + " now",
                           np.where(hit, "known: " + base, ""))
    return out
