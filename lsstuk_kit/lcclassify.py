"""A light-curve classifier trained on the simulator's truth, scored on held-out simulated nights and real alerts.

Classes (:data:`CLASSES`): ``SN Ia``, ``SN CC`` (core collapse: the simulator's IIP, Ibc, IIn), ``AGN``,
``VS`` (pulsating variable stars: RR Lyrae, Cepheids), ``Flare`` (M-dwarf flares) and ``CV`` (dwarf novae).
Asteroids and bogus detections are not classes here: the asteroid veto (:mod:`lsstuk_kit.asteroids`) and
the real/bogus model (:mod:`lsstuk_kit.realbogus`) remove them first.

- :func:`simulate_labelled` simulates nights with :func:`lsstuk_kit.simulate.simulate_survey` (any seed),
  writes their alerts without cutouts, reads them back and returns features (:func:`extract_features`, one row
  per alert, as of that alert) with the truth label of each alert;
- :func:`make_classifier` is a scikit-learn random forest (missing features are native to it: a feature a
  light curve is too short for stays NaN) on :data:`CLASSIFIER_FEATURES`, which avoid
  brightness (a simulated field is fainter than the real alerts a broker filter keeps) and take per-band
  features in each light curve's best-sampled band (``best_*``), so that they exist for ZTF and Rubin alike;
- :func:`score_classes` gives the confusion matrix and the accuracy per class with bootstrap intervals that
  resample objects (the alerts of one object are not independent);
- :func:`real_labels` gives reference classes for real alerts: the ZTF Bright Transient Survey type of a
  counterpart within 1.5" (:func:`bts_labels`) or Fink's SIMBAD cross-match (``cdsxmatch``,
  :data:`SIMBAD_CLASS`); a reference ``SN`` (a SIMBAD supernova of no subtype) accepts ``SN Ia`` and ``SN CC``.
- :func:`save_classifier` / :func:`load_classifier` use skops with the kit's allowlist
  (:func:`lsstuk_kit.realbogus.load_model`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from .context import _cluster_bootstrap
from .features import extract_features

__all__ = ["CLASSES", "CLASSIFIER_FEATURES", "SIMBAD_CLASS", "truth_classes", "simulate_labelled",
           "make_classifier", "fit_classifier", "predict_classes", "score_classes", "ClassScore", "real_labels",
           "bts_labels", "simbad_classes", "save_classifier", "load_classifier"]

CLASSES = ("SN Ia", "SN CC", "AGN", "VS", "Flare", "CV")
_SUBTYPE_CLASS = {"Ia": "SN Ia", "IIP": "SN CC", "Ibc": "SN CC", "IIn": "SN CC", "AGN": "AGN", "RRLyrae": "VS",
                  "Cepheid": "VS", "Mdwarf": "Flare", "dwarfnova": "CV"}
_SCALE_FREE = ("amplitude", "standard_deviation", "beyond_1_std", "cusum", "inter_percentile_range_10", "kurtosis",
               "linear_trend", "linear_fit_slope", "linear_fit_reduced_chi2", "magnitude_percentage_ratio_40_5",
               "magnitude_percentage_ratio_20_10", "maximum_slope", "median_absolute_deviation",
               "median_buffer_range_percentage_10", "percent_amplitude", "anderson_darling_normal", "chi2", "skew",
               "stetson_K", "riseRate", "declineRate", "bazin_fit_rise_time", "bazin_fit_fall_time",
               "bazin_fit_reference_time", "bazin_fit_reduced_chi2", "villar_fit_rise_time",
               "villar_fit_fall_time", "villar_fit_plateau_rel_amplitude", "villar_fit_plateau_duration",
               "villar_fit_reduced_chi2")
#: the features the classifier uses: band-free ones, then each per-band feature in the best-sampled band (so that
#: a model trained on Rubin's six bands applies to ZTF's g and r)
CLASSIFIER_FEATURES = (("nDetections", "nPositive", "fracNegative", "nBands", "duration", "age", "period",
                        "periodSNR", "riseRate", "declineRate", "colour_gr_mean", "colour_ri_mean")
                       + tuple(f"best_{f}" for f in _SCALE_FREE))
#: SIMBAD object types (Fink's ``cdsxmatch``) with a light-curve class; others (and ``Unknown``) are left out
SIMBAD_CLASS = {
    **dict.fromkeys(["BLLac", "Blazar", "Blazar_Candidate", "QSO", "QSO_Candidate", "AGN", "AGN_Candidate",
                     "Seyfert", "Seyfert_1", "Seyfert_2", "LINER"], "AGN"),
    **dict.fromkeys(["RRLyr", "Candidate_RRLyr", "Cepheid", "deltaCep", "PulsV*", "PulsV*delSct", "pulsV*SX",
                     "PulsV*WVir", "PulsV*RVTau", "PulsV*bCep", "Mira", "LPV*", "Candidate_LP*", "delSct*",
                     "gammaDor"], "VS"),
    **dict.fromkeys(["CataclyV*", "Candidate_CV*", "DwarfNova", "DN*"], "CV"),
    **dict.fromkeys(["Flare*", "flare*"], "Flare"),
    **dict.fromkeys(["SN", "Candidate_SN*", "SN*"], "SN"),
}
#: a reference class -> the predicted classes counted right
ACCEPT = {"SN": {"SN Ia", "SN CC"}}


def truth_classes(truth: pd.DataFrame) -> pd.Series:
    """The light-curve class of each alert from a simulation's truth table (NaN for asteroids and bogus).

    Examples
    --------
    >>> from lsstuk_kit import load_sample_truth
    >>> from lsstuk_kit.lcclassify import truth_classes
    >>> labels = truth_classes(load_sample_truth())
    >>> sorted(labels.dropna().unique())
    ['AGN', 'CV', 'Flare', 'SN CC', 'SN Ia', 'VS']
    """
    sub = truth["subtype"].astype(object)
    real = truth["isReal"].astype(bool) if "isReal" in truth else pd.Series(True, index=truth.index)
    return sub.map(_SUBTYPE_CLASS).where(real, np.nan).astype(object)


def simulate_labelled(seeds, *, nights=60, alert_nights=20, fields=(1201, 15, 237), scale=6.0,
                      start_mjd=61060.0, revisit_nights=2, features_kw=None, keep_batches=False):
    """Simulate nights (one survey per seed), extract features per alert and attach the truth class.

    Parameters
    ----------
    seeds : int or list of int
        One simulated survey per seed (different seeds: different populations, different nights).
    nights, alert_nights, fields, scale, start_mjd, revisit_nights
        Passed to :func:`lsstuk_kit.simulate.simulate_survey` / :func:`~lsstuk_kit.simulate.write_night`: the
        last ``alert_nights`` nights make alerts, their history reaching back through the earlier ones.
    features_kw : dict, optional
        Passed to :func:`extract_features`.
    keep_batches : bool
        Also return the AlertBatch of each seed (their alerts are in a temporary folder, removed when the
        batch is garbage-collected; without ``keep_batches`` the folder is removed before returning).

    Returns
    -------
    DataFrame
        Features per alert (indexed by ``diaSourceId``) plus ``label`` (:data:`CLASSES`, NaN for asteroids and
        bogus), ``subtype``, ``seed`` and ``object`` (a seed-unique object id for grouping). With
        ``keep_batches``, ``(frame, {seed: batch})``.

    Examples
    --------
    A few nights of one small field (the defaults simulate 60 nights of three fields):

    >>> from lsstuk_kit.lcclassify import CLASSES, simulate_labelled
    >>> frame = simulate_labelled(3, nights=4, alert_nights=2, fields=(15,), scale=0.3)
    >>> {"label", "subtype", "seed", "object", "nDetections"} <= set(frame.columns)
    True
    >>> set(frame["label"].dropna()) <= set(CLASSES), frame["seed"].unique().tolist()
    (True, [3])
    >>> bool(frame["object"].str.startswith("3:").all())     # object ids are unique across seeds
    True
    """
    from . import read_alerts
    from .simulate import load_truth, simulate_survey, write_night

    seeds = [seeds] if np.ndim(seeds) == 0 else list(seeds)
    frames, batches = [], {}
    for seed in seeds:
        tables = simulate_survey(nights, seed=int(seed), fields=list(fields), start_mjd=start_mjd, scale=scale,
                                 revisit_nights=revisit_nights)
        folder = Path(tempfile.mkdtemp(prefix=f"lsstuk_lc_{seed}_"))
        try:
            write_night(tables, folder, alert_nights=alert_nights, cutouts=False)
            batch = read_alerts(folder / "alerts")
            truth = load_truth(folder)
            feats = extract_features(batch, **(features_kw or {}))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if keep_batches:  # the batch reads its alerts back from the folder: removed when it is collected
            weakref.finalize(batch, shutil.rmtree, str(folder), True)
        else:
            del batch
            shutil.rmtree(folder, ignore_errors=True)
        tr = truth.reindex(feats.index)
        feats["label"] = truth_classes(tr)
        feats["subtype"] = tr["subtype"].astype(object)
        feats["seed"] = int(seed)
        feats["object"] = f"{seed}:" + feats["diaObjectId"].astype(str)
        frames.append(feats)
        if keep_batches:
            batches[int(seed)] = batch
    out = pd.concat(frames)
    return (out, batches) if keep_batches else out


def make_classifier(*, n_estimators=200, min_samples_leaf=2, n_jobs=2, seed=0):
    """The light-curve classifier: a random forest on :data:`CLASSIFIER_FEATURES` (missing values allowed).

    scikit-learn's forests split on missing values natively (a feature a light curve is too short for stays
    NaN); classes are weighted by their inverse frequency. Fit it on a frame that has those columns (extra
    columns are dropped by the first step). A forest, rather than gradient boosting, because it trains in
    seconds on a shared two-core machine (the boosted trees took minutes for the same accuracy).

    Examples
    --------
    >>> from lsstuk_kit.lcclassify import make_classifier
    >>> make_classifier().steps[-1][0]
    'forest'
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    select = ColumnTransformer([("lc", "passthrough", list(CLASSIFIER_FEATURES))], remainder="drop")
    forest = RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                    class_weight="balanced", n_jobs=n_jobs, random_state=seed)
    return Pipeline([("select", select), ("forest", forest)])


def _frame(features):
    X = features.reindex(columns=list(CLASSIFIER_FEATURES)).apply(pd.to_numeric, errors="coerce").astype(float)
    return X.replace([np.inf, -np.inf], np.nan)


def fit_classifier(features, labels=None, **kwargs):
    """Fit :func:`make_classifier` on labelled feature rows (``labels`` default: the ``label`` column).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from lsstuk_kit.lcclassify import fit_classifier, predict_classes
    >>> rng = np.random.default_rng(0)
    >>> feats = pd.DataFrame({"amplitude": np.r_[rng.normal(1, 0.1, 40), rng.normal(3, 0.1, 40)],
    ...                       "duration": np.r_[rng.normal(10, 1, 40), rng.normal(200, 10, 40)],
    ...                       "label": ["SN Ia"] * 40 + ["AGN"] * 40})
    >>> model = fit_classifier(feats, n_estimators=20)     # two toy classes, two features
    >>> predict_classes(model, feats.drop(columns="label").iloc[[0, -1]])["predicted"].tolist()
    ['SN Ia', 'AGN']
    """
    y = features["label"] if labels is None else pd.Series(labels, index=features.index)
    keep = y.notna().to_numpy()
    model = make_classifier(**kwargs)
    X = _frame(features[keep])
    X[X.columns[X.isna().all().to_numpy()]] = 0.0  # a feature never measured in training: constant, never split on
    model.fit(X, y[keep].astype(str).to_numpy())
    return model


def predict_classes(model, features) -> pd.DataFrame:
    """Predicted class and the probability of each class, one row per feature row.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from lsstuk_kit.lcclassify import fit_classifier, predict_classes
    >>> rng = np.random.default_rng(0)
    >>> feats = pd.DataFrame({"amplitude": np.r_[rng.normal(1, 0.1, 40), rng.normal(3, 0.1, 40)],
    ...                       "duration": np.r_[rng.normal(10, 1, 40), rng.normal(200, 10, 40)],
    ...                       "label": ["SN Ia"] * 40 + ["AGN"] * 40})
    >>> model = fit_classifier(feats, n_estimators=20)     # two toy classes, two features
    >>> pred = predict_classes(model, feats.drop(columns="label"))
    >>> pred.columns.tolist(), float((pred["predicted"] == feats["label"]).mean())
    (['predicted', 'p_AGN', 'p_SN Ia'], 1.0)
    """
    X = _frame(features)
    proba = model.predict_proba(X)
    classes = model.classes_
    out = pd.DataFrame(proba, index=features.index, columns=[f"p_{c}" for c in classes])
    out.insert(0, "predicted", classes[np.argmax(proba, axis=1)])
    return out


class ClassScore:
    """Result of :func:`score_classes`.

    Attributes
    ----------
    per_class : DataFrame
        Per reference class: ``n`` alerts, ``objects``, ``correct``, ``accuracy`` with its bootstrap interval
        ``lo``/``hi`` and the commonest prediction.
    confusion : DataFrame
        Counts, reference (rows) x predicted (columns).
    accuracy, interval, balanced_accuracy : float, (float, float), float
    n, n_objects : int

    Examples
    --------
    >>> from lsstuk_kit.lcclassify import score_classes
    >>> s = score_classes(["AGN", "SN Ia"], ["AGN", "AGN"])
    >>> type(s).__name__, s.n, round(s.accuracy, 2)
    ('ClassScore', 2, 0.5)
    """

    def __init__(self, per_class, confusion, accuracy, interval, balanced, n, n_objects):
        self.per_class, self.confusion = per_class, confusion
        self.accuracy, self.interval, self.balanced_accuracy = accuracy, interval, balanced
        self.n, self.n_objects = n, n_objects

    def __repr__(self):
        return (f"ClassScore(accuracy={self.accuracy:.3f} [{self.interval[0]:.3f}, {self.interval[1]:.3f}], "
                f"balanced={self.balanced_accuracy:.3f}, n={self.n} alerts / {self.n_objects} objects)\n"
                f"{self.per_class.to_string()}")


def score_classes(predicted, reference, *, groups=None, accept=None, n_boot=2000, level=0.95, seed=0):
    """Confusion matrix and accuracy per reference class, with bootstrap intervals resampling objects.

    Parameters
    ----------
    predicted, reference : array-like
        Predicted and reference classes per alert (NaN/None references are left out).
    groups : array-like, optional
        Object per alert (default: each alert its own).
    accept : dict, optional
        Reference class -> predicted classes counted right (default :data:`ACCEPT`: ``SN`` accepts both SNe).

    Examples
    --------
    >>> from lsstuk_kit.lcclassify import score_classes
    >>> s = score_classes(["AGN", "VS", "SN Ia", "AGN"], ["AGN", "AGN", "SN", None])
    >>> s.per_class["accuracy"].to_dict(), s.n
    ({'AGN': 0.5, 'SN': 1.0}, 3)
    """
    got = np.asarray(pd.Series(predicted, dtype=object).astype(str))
    ref = pd.Series(reference, dtype=object).to_numpy()
    if len(ref) != len(got):
        raise ValueError(f"reference has {len(ref)} rows for {len(got)} predictions")
    grp = np.arange(len(got)) if groups is None else np.asarray(groups, dtype=object)
    keep = pd.notna(ref)
    ref_k, got_k, grp_k = ref[keep].astype(str), got[keep], grp[keep]
    rules = {**ACCEPT, **(accept or {})}
    ok = np.array([g in rules.get(r, {r}) for r, g in zip(ref_k, got_k)], bool)
    rng = np.random.default_rng(seed)
    rows = []
    for cls in [c for c in (*CLASSES, "SN") if c in set(ref_k)] + sorted(set(ref_k) - set(CLASSES) - {"SN"}):
        sel = ref_k == cls
        lo, hi = _cluster_bootstrap(ok[sel], grp_k[sel], n_boot, rng, level)
        rows.append({"class": cls, "n": int(sel.sum()), "objects": int(pd.Series(grp_k[sel]).nunique()),
                     "correct": int(ok[sel].sum()), "accuracy": float(ok[sel].mean()), "lo": lo, "hi": hi,
                     "most_common": pd.Series(got_k[sel]).value_counts().index[0]})
    per = pd.DataFrame(rows).set_index("class") if rows else pd.DataFrame(
        columns=["n", "objects", "correct", "accuracy", "lo", "hi", "most_common"])
    cols = [c for c in CLASSES if c in set(got_k)] + sorted(set(got_k) - set(CLASSES))
    conf = pd.crosstab(pd.Series(ref_k, name="reference"), pd.Series(got_k, name="predicted")).reindex(
        index=list(per.index), columns=cols, fill_value=0)
    overall = float(ok.mean()) if len(ok) else np.nan
    interval = _cluster_bootstrap(ok, grp_k, n_boot, rng, level)
    balanced = float(per["accuracy"].mean()) if len(per) else np.nan
    return ClassScore(per, conf, overall, interval, balanced, int(keep.sum()), int(pd.Series(grp_k).nunique()))


def bts_labels(alerts, bts, *, radius_arcsec=1.5) -> pd.Series:
    """The BTS class (``SN Ia``, ``SN CC``) of each alert with a BTS transient within ``radius_arcsec``.

    Parameters
    ----------
    alerts : DataFrame
        With ``ra``, ``dec`` (degrees).
    bts : DataFrame or path
        The ZTF Bright Transient Survey table (``RA``/``Dec`` sexagesimal, ``type``), e.g.
        ``ZTFBTS_TransientTable.csv``.

    Returns
    -------
    Series
        ``SN Ia`` for SN Ia of any subtype, ``SN CC`` for SN II/Ib/Ic/IIn/IIb (not SLSNe), NaN otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> from lsstuk_kit.lcclassify import bts_labels
    >>> bts = pd.DataFrame({"RA": ["08:13:16.95"], "Dec": ["+22:38:53.9"], "type": ["SN Ia-91T"]})
    >>> bts_labels(pd.DataFrame({"ra": [123.320625, 10.0], "dec": [22.648306, 0.0]}), bts).tolist()
    ['SN Ia', nan]
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if not isinstance(bts, pd.DataFrame):
        bts = pd.read_csv(bts)
    missing = {"RA", "Dec", "type"} - set(bts.columns)
    if missing:
        raise ValueError(f"the BTS table lacks columns {sorted(missing)}")
    typ = bts["type"].astype(str).str.strip()
    cls = np.where(typ.str.match(r"^SN Ia"), "SN Ia",
                   np.where(typ.str.match(r"^SN I[Ibc]|^SN II|^SN Ib|^SN Ic"), "SN CC", None))
    out = pd.Series(np.nan, index=alerts.index, dtype=object)
    if len(alerts) == 0 or len(bts) == 0:
        return out
    cat = SkyCoord(bts["RA"].astype(str).to_numpy(), bts["Dec"].astype(str).to_numpy(), unit=(u.hourangle, u.deg))
    pos = SkyCoord(alerts["ra"].to_numpy(float) * u.deg, alerts["dec"].to_numpy(float) * u.deg)
    idx, d2, _ = pos.match_to_catalog_sky(cat)
    near = d2.arcsec <= radius_arcsec
    vals = cls[idx]
    out[near] = vals[near]
    return out.where(out.notna(), np.nan)


def simbad_classes(otypes) -> pd.Series:
    """Light-curve class of SIMBAD object types (:data:`SIMBAD_CLASS`), NaN where none.

    Examples
    --------
    >>> from lsstuk_kit.lcclassify import simbad_classes
    >>> simbad_classes(["BLLac", "RRLyr", "CataclyV*", "Unknown", "SN"]).tolist()
    ['AGN', 'VS', 'CV', nan, 'SN']
    """
    s = pd.Series(otypes, dtype=object)
    return s.map(lambda x: SIMBAD_CLASS.get(str(x).strip(), np.nan) if pd.notna(x) else np.nan).astype(object)


def real_labels(batch, *, bts=None, radius_arcsec=1.5) -> pd.DataFrame:
    """Reference classes of real alerts: BTS type (where ``bts`` is given and matches) else SIMBAD (``cdsxmatch``).

    Returns
    -------
    DataFrame
        ``reference`` (class or NaN) and ``source`` (``BTS``, ``SIMBAD`` or None), indexed like ``batch.sources``.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.lcclassify import real_labels
    >>> labels = real_labels(lk.read_alerts(lk.real_alerts_path()))   # the source tree's real alerts
    >>> labels.columns.tolist(), sorted(labels["source"].dropna().unique())
    (['reference', 'source'], ['SIMBAD'])
    """
    s = batch.sources
    ref = pd.Series(np.nan, index=s.index, dtype=object)
    src = pd.Series(None, index=s.index, dtype=object)
    if bts is not None:
        b = bts_labels(s, bts, radius_arcsec=radius_arcsec)
        src[b.notna()] = "BTS"
        ref = b.copy()
    if "cdsxmatch" in s:
        sim = simbad_classes(s["cdsxmatch"])
        fill = ref.isna() & sim.notna()
        ref[fill] = sim[fill]
        src[fill] = "SIMBAD"
    return pd.DataFrame({"reference": ref, "source": src})


#: the types skops must build for a fitted :func:`make_classifier` (beyond what it trusts itself)
TRUSTED = ("sklearn.tree._tree.Tree",)


def save_classifier(model, path):
    """Save a fitted classifier with skops (no pickle); see :func:`lsstuk_kit.realbogus.save_model`.

    Examples
    --------
    Saving writes the file; :func:`load_classifier` shows the round trip.

    >>> import pathlib, tempfile
    >>> import pandas as pd
    >>> from lsstuk_kit.lcclassify import fit_classifier, save_classifier
    >>> feats = pd.DataFrame({"amplitude": [1.0, 1.1, 3.0, 3.1] * 5, "label": ["SN Ia", "SN Ia", "AGN", "AGN"] * 5})
    >>> model = fit_classifier(feats, n_estimators=5)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_classifier(model, pathlib.Path(d) / "lc.skops")
    ...     path.name, path.stat().st_size > 0
    ('lc.skops', True)
    """
    from .realbogus import save_model

    return save_model(model, path)


def load_classifier(path, *, sha256=None):
    """Load a classifier saved by :func:`save_classifier`, refusing any type outside the kit's allowlist.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from lsstuk_kit.lcclassify import fit_classifier, load_classifier, predict_classes, save_classifier
    >>> rng = np.random.default_rng(0)
    >>> feats = pd.DataFrame({"amplitude": np.r_[rng.normal(1, 0.1, 40), rng.normal(3, 0.1, 40)],
    ...                       "duration": np.r_[rng.normal(10, 1, 40), rng.normal(200, 10, 40)],
    ...                       "label": ["SN Ia"] * 40 + ["AGN"] * 40})
    >>> model = fit_classifier(feats, n_estimators=20)     # two toy classes, two features
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_classifier(model, pathlib.Path(d) / "lc.skops")
    ...     loaded = load_classifier(path)
    >>> predict_classes(loaded, feats.drop(columns="label").head(2))["predicted"].tolist()
    ['SN Ia', 'SN Ia']
    """
    from .realbogus import load_model

    return load_model(path, trusted=list(TRUSTED), sha256=sha256)
