"""A machine-learning real/bogus classifier for difference-image detections.

- :func:`make_training_set`: labelled cutout triplets from the simulator's stamp
  model (real point sources with hosts and variable stars; dipoles, cosmic
  rays, hot pixels, bad columns, bright-star residuals, edges), fixed seed.
- :class:`StampFeatures`: features vectorised over stacks of triplets (the
  shape measures of :mod:`lsstuk_kit.cutouts`, pixel statistics, a dipole
  measure, saturation/edge measures, S/N); :class:`NormalisedPixels`: the
  central pixels, noise-normalised, for a pixel-based model.
- :func:`make_model`: a scikit-learn Pipeline (``"features"``: gradient-boosted
  trees on features, the default; ``"pixels"``: the same learner on pixels).
- :func:`evaluate`: ROC and AUC, FPR at 1 % missed-detection rate and MDR at
  1 % FPR (the Pan-STARRS and ATLAS convention), precision and recall against
  threshold (Rubin's convention), by bogus type and by S/N; ``plot_*`` draw them.
- :func:`save_model` / :func:`load_model` use skops and refuse every type outside an
  explicit list of exact names (:data:`TRUSTED`, plus ``trusted=``).
- :func:`default_model` trains deterministically on first use and caches it, with
  its SHA-256 recorded and checked before each load;
  :func:`score_batch` scores an AlertBatch.
- Real stamps: :func:`real_stamp_set` labels real alerts by the survey's own score
  (ZTF ``drb``, Rubin ``reliability``); :func:`evaluate_with_intervals` gives the metrics
  with bootstrap intervals over objects; :func:`compare_models` scores the
  simulation-trained, real-trained and combined models on the same real alerts, split by
  object; :func:`threshold_sensitivity` shows how the figures move with the thresholds.

Stamps are 30x30; larger ones (ZTF 63x63) are cut to their central 30x30.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import ModelFileError, UntrustedModelError

__all__ = ["make_training_set", "StampFeatures", "NormalisedPixels", "make_model", "evaluate", "plot_roc",
           "plot_precision_recall", "plot_breakdown", "save_model", "load_model", "default_model",
           "score_batch", "batch_stamps", "TRUSTED", "ModelFileError", "UntrustedModelError",
           "real_stamp_set", "RealStampSet", "evaluate_with_intervals", "grouped_folds", "compare_models",
           "threshold_sensitivity", "format_table", "plot_real_roc", "LABEL_SOURCES", "THRESHOLDS"]

SIZE = 30


def _centre(stack, size=SIZE):
    ny, nx = stack.shape[-2:]
    if ny == size and nx == size:
        return stack
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    return stack[..., y0:y0 + size, x0:x0 + size]


def make_training_set(n=50_000, seed=0, real_fraction=0.5, chunk=10_000):
    """Labelled cutout triplets drawn from the simulator's stamp model.

    Returns
    -------
    stamps : ndarray (n, 3, 30, 30) float32
        science, template, difference.
    labels : DataFrame
        ``real`` (1/0), ``bogusType`` ("" for real), ``snr``, ``kind`` (real source kind).

    Examples
    --------
    >>> X, labels = make_training_set(200, seed=1)
    >>> X.shape, X.dtype
    ((200, 3, 30, 30), dtype('float32'))
    >>> labels.columns.tolist()
    ['real', 'bogusType', 'snr', 'kind']
    >>> bool(((labels["bogusType"] == "") == (labels["real"] == 1)).all())   # only bogus stamps have a type
    True
    >>> X2, _ = make_training_set(200, seed=1)   # the same seed gives the same stamps
    >>> np.array_equal(X, X2, equal_nan=True)      # (edge stamps hold NaN)
    True
    """
    from .simulate.stamps import BOGUS_TYPES, make_triplets

    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, SIZE, SIZE), np.float32)
    rows = []
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        real = rng.random(m) < real_fraction
        seeing_px = rng.uniform(0.5, 1.5, m) / 0.2 / 2.3548
        sky = rng.lognormal(np.log(20.0), 0.5, m)
        noise_flux = sky * np.sqrt(4 * np.pi) * seeing_px  # PSF-fit flux error
        snr = np.where(real, np.exp(rng.uniform(np.log(5), np.log(100), m)), rng.uniform(5, 30, m))
        sign = np.where(real & (rng.random(m) < 0.25), -1.0, 1.0)  # fading variables give negative differences
        flux = sign * snr * noise_flux
        kind = np.where(rng.random(m) < 0.4, "variable", np.where(rng.random(m) < 0.6, "transient", "moving"))
        star = np.where(real & (kind == "variable"), np.abs(flux) * rng.lognormal(1.0, 1.0, m), 0.0)
        host = np.where(real & (kind == "transient"), noise_flux * rng.lognormal(1.5, 1.0, m), 0.0)
        host_re = rng.uniform(1.0, 6.0, m)
        off = rng.gamma(2.0, 0.6, m) * host_re
        ang = rng.uniform(0, 2 * np.pi, m)
        bogus = np.where(real, "", rng.choice(list(BOGUS_TYPES), m))
        sci, tmpl, diff, _, _ = make_triplets(rng, flux, star, host, host_re, off * np.cos(ang), off * np.sin(ang),
                                              seeing_px, sky, bogus=bogus)
        out[a:a + m, 0], out[a:a + m, 1], out[a:a + m, 2] = sci, tmpl, diff
        rows.append(pd.DataFrame({"real": real.astype(int), "bogusType": bogus, "snr": snr,
                                  "kind": np.where(real, kind, "bogus")}))
    return out, pd.concat(rows, ignore_index=True)


def _robust_sigma(x):
    from .cutouts import _noise

    med, sig = _noise(np.asarray(x, np.float32))
    return med.astype(np.float32), sig.astype(np.float32)


class StampFeatures(TransformerMixin, BaseEstimator):
    """Features of cutout triplets, vectorised over a stack ``X`` of shape (n, 3, ny, nx).

    Shape measures of the difference stamp (FWHM, ellipticity, peak offset,
    negative-pixel fraction, PSF chi^2, peak S/N), a dipole measure, central
    concentration and sharpness, column structure (bad columns), empty-pixel
    fraction (edges), template brightness at the centre (bright stars,
    saturation), and the science/template correlation.

    Examples
    --------
    >>> X, labels = make_training_set(100, seed=1)
    >>> F = StampFeatures().fit_transform(X)
    >>> F.shape, F.dtype
    ((100, 16), dtype('float32'))
    >>> names = StampFeatures().get_feature_names_out().tolist()
    >>> names[:3]
    ['fwhm', 'ellipticity', 'peakOffset']
    >>> dipole = F[:, names.index("dipole")]    # near 1 for a positive source, near 0 for a dipole
    >>> bool(dipole[labels["real"] == 1].mean() > dipole[labels["bogusType"] == "dipole"].mean())
    True

    Larger stamps (ZTF's 63x63) are cut to their central 30x30:

    >>> ztf_like = np.pad(X, ((0, 0), (0, 0), (16, 17), (16, 17)))
    >>> np.array_equal(StampFeatures().transform(ztf_like), F)
    True
    """

    def fit(self, X, y=None):  # noqa: D102
        return self

    def transform(self, X):  # noqa: D102
        X = _centre(np.asarray(X, np.float32))
        n = len(X)
        workers = min(os.cpu_count() or 1, 4)
        if n >= 4000 and workers > 1:
            # numpy releases the GIL: chunks of the stack run on all cores
            from concurrent.futures import ThreadPoolExecutor

            parts = np.array_split(np.arange(n), workers)
            with ThreadPoolExecutor(workers) as ex:
                return np.concatenate(list(ex.map(lambda idx: self._transform(X[idx]), parts)))
        return self._transform(X)

    def _transform(self, X):
        from .cutouts import shape_measures

        sci, tmpl, diff = X[:, 0], X[:, 1], X[:, 2]
        n = len(X)
        med, sig = _robust_sigma(diff)
        z = (np.nan_to_num(diff) - med[:, None, None]) / sig[:, None, None]
        c = SIZE // 2
        core = z[:, c - 2:c + 3, c - 2:c + 3]
        sign = np.where(core.sum(axis=(1, 2)) >= 0, 1.0, -1.0)
        zs = z * sign[:, None, None]
        shapes = shape_measures(zs, None, None, normalised=True)
        mid = zs[:, c - 5:c + 5, c - 5:c + 5]
        pos, neg = np.clip(mid, 0, None).sum(axis=(1, 2)), np.clip(-mid, 0, None).sum(axis=(1, 2))
        dipole = (pos - neg) / np.maximum(pos + neg, 1e-6)
        c3 = zs[:, c - 1:c + 2, c - 1:c + 2].sum(axis=(1, 2))
        c7 = zs[:, c - 3:c + 4, c - 3:c + 4].sum(axis=(1, 2))
        peak = zs.reshape(n, -1).max(axis=1)
        col = np.abs(zs.mean(axis=1)).max(axis=1)  # strongest column mean (bad columns)
        row = np.abs(zs.mean(axis=2)).max(axis=1)
        empty = ((sci == 0) | ~np.isfinite(sci)).reshape(n, -1).mean(axis=1)
        tmed, tsig = _robust_sigma(np.nan_to_num(tmpl))
        tz = (np.nan_to_num(tmpl) - tmed[:, None, None]) / tsig[:, None, None]
        tcore = tz[:, c - 2:c + 3, c - 2:c + 3].max(axis=(1, 2))
        smed, ssig = _robust_sigma(np.nan_to_num(sci))
        sz = (np.nan_to_num(sci) - smed[:, None, None]) / ssig[:, None, None]
        sc, tc = sz[:, c - 5:c + 5, c - 5:c + 5].reshape(n, -1), tz[:, c - 5:c + 5, c - 5:c + 5].reshape(n, -1)
        sc = sc - sc.mean(axis=1, keepdims=True)
        tc = tc - tc.mean(axis=1, keepdims=True)
        corr = (sc * tc).sum(axis=1) / np.maximum(np.sqrt((sc**2).sum(axis=1) * (tc**2).sum(axis=1)), 1e-6)
        feats = np.column_stack([
            shapes["fwhm"], shapes["ellipticity"], shapes["peakOffset"], shapes["negFraction"],
            np.log10(np.maximum(shapes["psfChi2"], 1e-3)), shapes["snrPeak"], dipole,
            c3 / np.maximum(np.abs(c7), 1e-3), peak / np.maximum(np.abs(c3), 1e-3), col, row,
            col / np.maximum(peak, 1e-3),
            empty, np.log10(np.maximum(tcore, 1e-3)), corr, np.log10(np.maximum(np.abs(c7), 1e-3)),
        ])
        return np.nan_to_num(feats, nan=0.0, posinf=1e3, neginf=-1e3).astype(np.float32)

    FEATURE_NAMES = ["fwhm", "ellipticity", "peakOffset", "negFraction", "log_psfChi2", "snrPeak", "dipole",
                     "concentration", "sharpness", "maxColumn", "maxRow", "columnToPeak", "emptyFraction",
                     "log_templateCore", "sciTemplateCorr", "log_coreSum"]

    def get_feature_names_out(self, input_features=None):  # noqa: D102
        return np.array(self.FEATURE_NAMES)


class NormalisedPixels(TransformerMixin, BaseEstimator):
    """The central ``size`` x ``size`` pixels of each stamp, divided by the difference stamp's noise.

    Examples
    --------
    >>> X, labels = make_training_set(100, seed=1)
    >>> NormalisedPixels().fit_transform(X).shape      # 3 stamps x 15 x 15 pixels each
    (100, 675)
    >>> NormalisedPixels(size=5).transform(X).shape
    (100, 75)
    """

    def __init__(self, size=15):
        self.size = size

    def fit(self, X, y=None):  # noqa: D102
        return self

    def transform(self, X):  # noqa: D102
        X = _centre(np.asarray(X, np.float32))
        med, sig = _robust_sigma(np.nan_to_num(X[:, 2]))
        norm = (np.nan_to_num(X) - med[:, None, None, None]) / sig[:, None, None, None]
        return _centre(norm, self.size).reshape(len(X), -1).astype(np.float32)


def make_model(kind="features", seed=0):
    """A scikit-learn Pipeline: ``"features"`` (default) or ``"pixels"``, then gradient-boosted trees.

    Examples
    --------
    >>> [name for name, _ in make_model().steps], make_model("pixels").steps[0][0]
    (['features', 'classifier'], 'pixels')
    >>> X, labels = make_training_set(300, seed=1)
    >>> X_test, labels_test = make_training_set(200, seed=2)
    >>> model = make_model().set_params(classifier__max_iter=20)   # fewer trees: a quick example
    >>> model = model.fit(X, labels["real"])
    >>> model.predict_proba(X_test).shape
    (200, 2)
    >>> bool(model.score(X_test, labels_test["real"]) > 0.8)       # accuracy on unseen stamps
    True
    >>> make_model("cnn")
    Traceback (most recent call last):
    ...
    ValueError: kind must be 'features' or 'pixels'
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    if kind == "features":
        return Pipeline([("features", StampFeatures()),
                         ("classifier", HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1,
                                                                       max_leaf_nodes=31, random_state=seed))])
    if kind == "pixels":
        return Pipeline([("pixels", NormalisedPixels()),
                         ("classifier", HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1,
                                                                       random_state=seed))])
    raise ValueError("kind must be 'features' or 'pixels'")


# ------------------------------------------------------------------------ evaluation
def evaluate(y_true, score, bogus_type=None, snr=None, mdr=0.01, fpr=0.01):
    """Real/bogus metrics.

    Returns
    -------
    dict
        ``auc``; ``fpr_at_mdr`` (bogus share passing the threshold that misses
        ``mdr`` of reals) and its ``threshold_mdr``; ``mdr_at_fpr`` and
        ``threshold_fpr``; ``by_bogus_type`` (pass rate per type at ``threshold_mdr``);
        ``by_snr`` (missed-detection rate per S/N bin at ``threshold_mdr``).

    Examples
    --------
    Toy scores: reals score high, cosmic rays low, dipoles in between.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 100)
    >>> bogus_type = np.repeat(["", "cosmic_ray", "dipole"], [100, 50, 50])
    >>> score = np.where(y == 1, rng.uniform(0.4, 1.0, 200),
    ...                  np.where(bogus_type == "dipole", rng.uniform(0.3, 0.6, 200), rng.uniform(0.0, 0.2, 200)))
    >>> r = evaluate(y, score, bogus_type=bogus_type)
    >>> r["n_real"], r["n_bogus"], round(r["auc"], 3), r["fpr_at_mdr"]
    (100, 100, 0.949, 0.32)
    >>> r["by_bogus_type"].to_dict()     # share of each type kept at the threshold missing 1 % of reals
    {'cosmic_ray': 0.0, 'dipole': 0.64}
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, float)
    real, bog = s[y == 1], s[y == 0]
    t_mdr = np.quantile(real, mdr)
    t_fpr = np.quantile(bog, 1 - fpr)
    out = {"auc": float(roc_auc_score(y, s)), "threshold_mdr": float(t_mdr),
           "fpr_at_mdr": float((bog >= t_mdr).mean()), "threshold_fpr": float(t_fpr),
           "mdr_at_fpr": float((real < t_fpr).mean()), "n_real": int(len(real)), "n_bogus": int(len(bog))}
    if bogus_type is not None:
        bt = pd.Series(np.asarray(bogus_type))[y == 0]
        out["by_bogus_type"] = pd.Series(bog >= t_mdr, index=bt.index).groupby(bt.to_numpy()).mean().rename(
            "pass_rate_at_1pct_mdr")
    if snr is not None:
        sn = np.asarray(snr, float)[y == 1]
        bins = pd.cut(sn, [0, 7, 10, 20, 50, np.inf])
        out["by_snr"] = pd.Series(real < t_mdr).groupby(bins, observed=False).mean().rename("mdr")
    return out


def plot_roc(y_true, score, ax=None, label=None):
    """ROC curve (false-positive rate vs missed-detection rate, log axes, as ATLAS and Pan-STARRS plot it).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 100)
    >>> score = np.clip(rng.normal(np.where(y == 1, 0.7, 0.3), 0.15), 0, 1)
    >>> ax = plot_roc(y, score, label="toy")
    >>> ax.get_xscale(), ax.get_yscale(), len(ax.lines)    # the curve and the two 1 % guides
    ('log', 'log', 3)
    >>> ax.get_legend().get_texts()[0].get_text()
    'toy'
    >>> plt.close("all")
    """
    from sklearn.metrics import roc_curve

    if ax is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        ax = plt.figure(figsize=(5, 4)).subplots()
    f, t, _ = roc_curve(np.asarray(y_true).astype(int), score)
    ax.plot(np.maximum(f, 1e-5), np.maximum(1 - t, 1e-5), label=label)
    ax.axvline(0.01, color="0.6", ls=":")
    ax.axhline(0.01, color="0.6", ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false-positive rate (bogus kept)")
    ax.set_ylabel("missed-detection rate (real lost)")
    if label:
        ax.legend()
    return ax


def plot_precision_recall(y_true, score, ax=None):
    """Precision and recall against threshold (Rubin's convention).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 100)
    >>> score = np.clip(rng.normal(np.where(y == 1, 0.7, 0.3), 0.15), 0, 1)
    >>> ax = plot_precision_recall(y, score)
    >>> [line.get_label() for line in ax.lines], ax.get_xlabel()
    (['precision', 'recall'], 'threshold')
    >>> plt.close("all")
    """
    from sklearn.metrics import precision_recall_curve

    if ax is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        ax = plt.figure(figsize=(5, 4)).subplots()
    p, r, t = precision_recall_curve(np.asarray(y_true).astype(int), score)
    ax.plot(t, p[:-1], label="precision")
    ax.plot(t, r[:-1], label="recall")
    ax.set_xlabel("threshold")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax


def plot_breakdown(result, fig=None):
    """Bar charts of :func:`evaluate`'s pass rate per bogus type and MDR per S/N bin.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 100)
    >>> bogus_type = np.repeat(["", "cosmic_ray", "dipole"], [100, 50, 50])
    >>> score = np.clip(rng.normal(np.where(y == 1, 0.7, 0.3), 0.15), 0, 1)
    >>> snr = rng.uniform(5, 60, 200)
    >>> fig = plot_breakdown(evaluate(y, score, bogus_type=bogus_type, snr=snr))
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['bogus kept at 1% MDR', 'missed-detection rate']
    >>> len(fig.axes[0].patches), len(fig.axes[1].patches)   # one bar per bogus type, per S/N bin
    (2, 5)
    >>> plt.close("all")
    """
    if fig is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        fig = plt.figure(figsize=(9, 3.5))
    a, b = fig.subplots(1, 2)
    if "by_bogus_type" in result:
        result["by_bogus_type"].plot.bar(ax=a, color="C3")
        a.set_ylabel("bogus kept at 1% MDR")
    if "by_snr" in result:
        result["by_snr"].plot.bar(ax=b, color="C0")
        b.set_ylabel("missed-detection rate")
        b.set_xlabel("S/N")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ persistence
#: The exact types, beyond those skops trusts by itself, that the kit's own pipelines
#: (:func:`make_model`, both kinds, fitted or not) put in a model file: found with
#: ``skops.io.get_untrusted_types`` on them (tests/test_security.py checks the list stays exact).
#: Nothing is trusted by prefix: a name such as ``sklearn.utils._testing.<function>`` can run code.
TRUSTED = (
    "lsstuk_kit.realbogus.StampFeatures",
    "lsstuk_kit.realbogus.NormalisedPixels",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def save_model(model, path):
    """Save a fitted model with skops (no pickle).

    Parameters
    ----------
    model : estimator
        A fitted scikit-learn estimator or Pipeline (e.g. from :func:`make_model`).
    path : str or Path

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> X, labels = make_training_set(200, seed=1)
    >>> model = make_model().set_params(classifier__max_iter=20).fit(X, labels["real"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_model(model, Path(d) / "models" / "rb.skops")   # missing folders are made
    ...     loaded = load_model(path)
    ...     path.name, path.is_file()
    ('rb.skops', True)
    >>> bool((loaded.predict_proba(X) == model.predict_proba(X)).all())
    True
    """
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def load_model(path, trusted=None, *, sha256=None):
    """Load a skops model file, refusing any type outside an explicit allowlist.

    skops trusts plain containers, numpy arrays and scikit-learn's estimators by
    itself; beyond those only the exact names in :data:`TRUSTED` (the types the
    kit's own pipelines use) and in ``trusted`` are accepted. A file naming
    anything else is refused before any of it is built, so a crafted file cannot
    run code.

    Parameters
    ----------
    path : str or Path
    trusted : list of str, optional
        More exact type names to accept (as the error lists them); no prefixes.
    sha256 : str, optional
        The expected SHA-256 (hex) of the file; checked before its content is parsed.

    Returns
    -------
    object
        The model.

    Raises
    ------
    UntrustedModelError
        If the file names types that are not trusted (listed in ``types`` and the message).
    ModelFileError
        If the file is not a skops file, or its SHA-256 differs from ``sha256``.
    TypeError
        If ``trusted`` is not a list of names.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> X, labels = make_training_set(300, seed=1)
    >>> model = make_model().set_params(classifier__max_iter=20).fit(X, labels["real"].to_numpy())
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_model(model, pathlib.Path(d) / "rb.skops")
    ...     loaded = load_model(path)
    >>> bool((loaded.predict(X) == model.predict(X)).all())
    True
    """
    import skops.io as sio

    if trusted is None:
        trusted = []
    elif isinstance(trusted, (str, bytes)) or not all(isinstance(t, str) for t in trusted):
        raise TypeError("trusted must be a list of exact type names, e.g. trusted=['mypackage.MyTransformer']")
    try:
        data = Path(path).read_bytes()  # read once: what is checked is what is loaded
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != str(sha256).lower():
        raise ModelFileError(path, f"its SHA-256 {hashlib.sha256(data).hexdigest()} is not the expected {sha256}")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a zip, JSON or skops-protocol error: not a model file
        raise ModelFileError(path, f"not a readable skops file ({type(exc).__name__}: {exc})") from None
    allowed = set(TRUSTED) | set(trusted)
    refused = [t for t in untrusted if t not in allowed]
    if refused:
        raise UntrustedModelError(path, refused)
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise ModelFileError(path, f"cannot be loaded ({type(exc).__name__}: {exc})") from exc


def _cache_dir():
    return Path(os.environ.get("LSSTUK_KIT_CACHE", Path.home() / ".cache" / "lsstuk_kit"))


def _sidecar(path):
    """The JSON file next to a cached model recording its SHA-256."""
    return path.with_name(path.name + ".json")


def _write_atomic(path, data: bytes):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _code_tag():
    """A short hash of the code a trained model depends on (the stamp simulator and this module).

    It is part of the cached model's file name, so changing the simulator or the features
    retrains the default model instead of silently reusing one trained on the old stamps.
    Only the code counts: comments, docstrings and layout are left out (:func:`_code_only`),
    so a change of wording does not retrain the model.
    """
    from .simulate import stamps

    h = hashlib.sha256()
    for f in (Path(stamps.__file__), Path(__file__)):
        h.update(_code_only(f.read_text(encoding="utf-8")).encode())
    return h.hexdigest()[:12]


def _code_only(source: str) -> str:
    r"""Python source as its syntax tree without docstrings (comments and layout are not in the tree).

    Examples
    --------
    >>> a = "def f(x):\n    'Twice x.'\n    return 2 * x  # doubled\n"
    >>> b = "def f(x):\n    'Two times x, reworded.'\n\n    return 2*x\n"
    >>> _code_only(a) == _code_only(b), _code_only(a) == _code_only(a.replace("2 * x", "3 * x"))
    (True, False)
    """
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def default_model(n=20_000, seed=0, retrain=False):
    """The default feature model: trained deterministically on first use (seconds) and cached.

    The cache folder is ``$LSSTUK_KIT_CACHE`` (default ``~/.cache/lsstuk_kit``); the file
    name carries a hash of the stamp simulator's and this module's source, so a changed
    simulator retrains it.
    Next to the model file, a JSON file records its SHA-256 when it is built; a
    cached file whose hash does not match (replaced, corrupted, or made by an
    older kit without the record) is rebuilt, with a warning. The cached file is
    loaded with :func:`load_model`'s allowlist as well, so a file forged together
    with its record still cannot run code (:class:`UntrustedModelError`).

    Parameters
    ----------
    n : int
        Training-set size.
    seed : int
    retrain : bool
        Rebuild even when a verified cached model exists.

    Returns
    -------
    sklearn.pipeline.Pipeline

    Examples
    --------
    Here the cache is a temporary folder and the training set small (``n=100``), to keep
    the example quick; ``default_model()`` trains on 20,000 stamps.

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"LSSTUK_KIT_CACHE": cache}):
    ...     model = default_model(n=100)    # trained, then cached
    ...     again = default_model(n=100)    # loaded from the cache, its SHA-256 checked
    ...     sorted(p.suffix for p in Path(cache).iterdir())
    ['.json', '.skops']
    >>> [name for name, _ in model.steps]
    ['features', 'classifier']
    >>> X, labels = make_training_set(50, seed=5)
    >>> bool((again.predict_proba(X) == model.predict_proba(X)).all())
    True
    """
    import json
    import warnings

    import sklearn
    import skops
    import skops.io as sio

    from . import __version__

    path = (_cache_dir() / f"realbogus-features-{__version__}-sk{sklearn.__version__}-n{n}-s{seed}"
                           f"-{_code_tag()}.skops")
    record = _sidecar(path)
    if path.is_file() and not retrain:
        try:
            expected = json.loads(record.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            expected = None
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if expected == actual:
            return load_model(path, sha256=actual)
        why = "has no recorded SHA-256" if expected is None else "does not match the SHA-256 recorded when it was built"
        warnings.warn(f"cached real/bogus model {path} {why}; rebuilding it", UserWarning, stacklevel=2)
    X, labels = make_training_set(n, seed=seed)
    model = make_model("features", seed=seed).fit(X, labels["real"].to_numpy())
    data = sio.dumps(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    info = {"sha256": hashlib.sha256(data).hexdigest(), "n": n, "seed": seed, "lsstuk_kit": __version__,
            "sklearn": sklearn.__version__, "skops": skops.__version__}
    _write_atomic(record, (json.dumps(info, indent=1) + "\n").encode())
    return model


def _fit_stamp(img):
    """One stamp as a SIZE x SIZE float32 image: larger ones cut to their centre, smaller ones NaN-padded."""
    out = np.full((SIZE, SIZE), np.nan, np.float32)
    if img is None:
        return out
    img = np.asarray(img, np.float32)
    if img.ndim != 2:
        return out
    img = _centre(img) if min(img.shape) >= SIZE else img
    ny, nx = min(img.shape[0], SIZE), min(img.shape[1], SIZE)
    y0, x0 = (SIZE - ny) // 2, (SIZE - nx) // 2
    out[y0:y0 + ny, x0:x0 + nx] = img[:ny, :nx]
    return out


def batch_stamps(batch):
    """The (n, 3, 30, 30) triplet stack of a batch (science, template, difference).

    ZTF stamps (63x63) are cut to their central 30x30. A batch mixing layouts
    (e.g. Rubin 30x30 and ZTF 63x63 read from one folder) is decoded alert by
    alert, each stamp cut to its own centre; missing stamps are NaN.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> batch = lk.load_sample()[:5]
    >>> X = batch_stamps(batch)
    >>> X.shape, X.dtype
    ((5, 3, 30, 30), dtype('float32'))
    >>> first = batch.sources.index[0]
    >>> np.array_equal(X[0, 2], batch.cutouts(first).difference)   # [:, 2] is the difference stamp
    True
    """
    from .cutouts import fast_stack

    whiches = ("science", "template", "difference")
    stacks = [fast_stack(batch, which) for which in whiches]  # one vectorised decode where the layouts agree
    if all(st is not None and min(st.shape[-2:]) >= SIZE for st in stacks):
        return np.stack([_centre(st) for st in stacks], axis=1)
    out = np.empty((len(batch), 3, SIZE, SIZE), np.float32)
    for k, sid in enumerate(batch.sources.index):  # gzip FITS stamps of varying length: no columnar decode
        c = batch.cutouts(sid)
        for j, which in enumerate(whiches):
            out[k, j] = _fit_stamp(c[which])
    return out


def score_batch(batch, model=None):
    """Real/bogus score (probability of being real) of each alert, as a Series by ``diaSourceId``.

    A :class:`~lsstuk_kit.scale.DaskAlerts` gives a Dask Series, scored partition by partition.

    Examples
    --------
    Without ``model``, :func:`default_model` scores; here a quick model trained on 300 stamps:

    >>> import lsstuk_kit as lk
    >>> X, labels = make_training_set(300, seed=1)
    >>> model = make_model().set_params(classifier__max_iter=20).fit(X, labels["real"])
    >>> batch = lk.load_sample()[:10]
    >>> s = score_batch(batch, model)
    >>> s.name, len(s), s.index.equals(batch.sources.index), bool(s.between(0, 1).all())
    ('realbogus', 10, True, True)
    """
    from ._lazy import _is_lazy

    model = default_model() if model is None else model
    if _is_lazy(batch):
        return batch.map_batches(score_batch, model=model)
    if len(batch) == 0:
        return pd.Series(np.zeros(0), index=batch.sources.index, name="realbogus")
    X = batch_stamps(batch)
    with _one_thread_if_small(len(X)):
        p = model.predict_proba(X)[:, 1]
    return pd.Series(p, index=batch.sources.index, name="realbogus")


_SMALL_PREDICT = 20_000  # rows below which scikit-learn's OpenMP threads cost more than they give
_THREADS = []  # the threadpoolctl controller, made on first use (it lists the loaded libraries once)


def _one_thread_if_small(n):
    """A context that keeps OpenMP (the trees' prediction) to one thread for ``n`` < 20,000 rows.

    A stream's chunk is a few hundred to a few thousand alerts: splitting it over OpenMP threads
    gains little, and when the other cores are busy (a loader thread decoding the next chunk)
    a thread team waits for a descheduled member at every barrier.
    """
    import contextlib

    if n >= _SMALL_PREDICT:
        return contextlib.nullcontext()
    try:
        if not _THREADS:
            from threadpoolctl import ThreadpoolController

            _THREADS.append(ThreadpoolController())
        return _THREADS[0].limit(limits=1, user_api="openmp")
    except Exception:  # noqa: BLE001 - a tuning only: never fail a score for it  # pragma: no cover
        return contextlib.nullcontext()


# ------------------------------------------------------------------------ real stamps
#: Which score labels each survey's real alerts (``reliabilitySource`` as the readers set it): ZTF's
#: ``drb`` (braai, the deep real/bogus score; Duev et al. 2019, MNRAS 489, 3582) and Rubin's own
#: ``reliability``. ZTF's older random-forest ``rb`` (Mahabal et al. 2019, PASP 131, 038002) is not used.
LABEL_SOURCES = {"ztf": "drb", "lsst": "reliability"}

#: Label thresholds shown by :func:`threshold_sensitivity` (``(real_at, bogus_at)``).
THRESHOLDS = ((0.8, 0.2), (0.9, 0.1), (0.95, 0.05))


class RealStampSet(tuple):
    """A labelled set of real stamps: ``X, y, groups, meta = real_stamp_set(batch)``.

    Attributes
    ----------
    X : ndarray (n, 3, 30, 30) float32
        science, template, difference (the triplets the model eats).
    y : ndarray (n,) int
        1 real, 0 bogus.
    groups : ndarray (n,)
        ``diaObjectId``: split and resample by it, never by alert.
    meta : DataFrame
        One row per alert (index ``diaSourceId``): ``diaObjectId``, ``survey``, ``broker``, ``band``,
        ``score`` (the label's score), ``labelSource``, ``snr``, ``real``. ``meta.attrs`` holds
        ``real_at``, ``bogus_at`` and ``left_out`` (alerts not labelled, by reason).

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> rs = real_stamp_set(lk.load_sample())
    >>> rs
    RealStampSet(real >= 0.9, bogus <= 0.1; lsst: 71 real / 121 bogus (176 objects))
    >>> X, y, groups, meta = rs
    >>> X is rs.X, X.shape[1:], int(y.sum()), len(meta)
    (True, (3, 30, 30), 71, 192)
    >>> rs.counts()[["n_real", "n_bogus", "objects"]]
            n_real  n_bogus  objects
    survey
    lsst        71      121      176
    >>> bright = rs.subset("snr > 20")
    >>> bool((bright.meta["snr"] > 20).all()), len(bright.y) < len(rs.y)
    (True, True)
    """

    __slots__ = ()

    def __new__(cls, X, y, groups, meta):  # noqa: D102
        return super().__new__(cls, (X, y, groups, meta))

    X = property(lambda self: self[0])
    y = property(lambda self: self[1])
    groups = property(lambda self: self[2])
    meta = property(lambda self: self[3])

    def subset(self, mask):
        """The alerts where ``mask`` (boolean array or query string on ``meta``) holds."""
        if isinstance(mask, str):
            mask = self.meta.eval(mask).to_numpy(bool)
        mask = np.asarray(mask, bool)
        meta = self.meta[mask].copy()
        meta.attrs = dict(self.meta.attrs)
        return RealStampSet(self.X[mask], self.y[mask], self.groups[mask], meta)

    def counts(self):
        """Alerts and objects per class, as a one-row-per-survey DataFrame."""
        m = self.meta
        rows = []
        for survey, g in m.groupby("survey", sort=True):
            rows.append({"survey": survey, "n_real": int(g["real"].sum()), "n_bogus": int((g["real"] == 0).sum()),
                         "objects_real": g.loc[g["real"] == 1, "diaObjectId"].nunique(),
                         "objects_bogus": g.loc[g["real"] == 0, "diaObjectId"].nunique(),
                         "objects": g["diaObjectId"].nunique()})
        return pd.DataFrame(rows).set_index("survey") if rows else pd.DataFrame()

    def __repr__(self):
        c = self.counts()
        parts = [f"{s}: {r.n_real} real / {r.n_bogus} bogus ({r.objects} objects)" for s, r in c.iterrows()]
        return (f"RealStampSet(real >= {self.meta.attrs.get('real_at')}, bogus <= {self.meta.attrs.get('bogus_at')}; "
                + "; ".join(parts) + ")")


def real_stamp_set(batch, *, real_at=0.9, bogus_at=0.1, score=None, survey=None, stamps=None):
    """Real alerts labelled real or bogus by their survey's own real/bogus score.

    ZTF alerts are labelled by ``drb`` (braai; Duev et al. 2019) and Rubin alerts by
    ``reliability``: ``score >= real_at`` is real, ``score <= bogus_at`` bogus, the
    ambiguous middle is left out. The default 0.9 / 0.1 leaves out only the
    uncertain tail of a strongly bimodal score (on the 584 real ZTF alerts in
    ``../shared/real-alerts``, 523 have ``drb >= 0.95`` and 46 lie between 0.1 and 0.9),
    so a label is wrong only where the survey's own classifier is confidently wrong;
    :func:`threshold_sensitivity` shows how results move with the thresholds.
    ZTF alerts with only the older random-forest ``rb`` (``reliabilitySource == "rb"``) are
    left out by default: ``rb`` is compressed (0.33-0.98 on those 584 alerts, never
    below 0.1, so the same thresholds would find no bogus) and its rank correlation
    with ``drb`` there is only 0.51; pass ``score="rb"`` to label by it deliberately.

    The real sets available are small and were selected by brokers' filters (Fink
    keeps alerts that already passed the survey's real/bogus cut), so they hold few
    bogus alerts: say so beside any figure made from them.

    Parameters
    ----------
    batch : AlertBatch
        Real alerts with stamps (e.g. ``read_alerts("../shared/real-alerts", errors="skip")``).
    real_at, bogus_at : float
        Thresholds, ``0 <= bogus_at <= real_at <= 1``.
    score : str, array or Series, optional
        Label every alert by this column (e.g. ``"rb"``) or these values (aligned on
        ``diaSourceId`` if a Series) instead of :data:`LABEL_SOURCES`.
    survey : str, optional
        Keep only this survey (``"ztf"`` or ``"lsst"``).
    stamps : ndarray (len(batch), 3, 30, 30), optional
        The batch's stamps if already decoded (:func:`batch_stamps`), to avoid decoding twice.

    Returns
    -------
    RealStampSet
        ``(X, y, groups, meta)``, a tuple with those attributes.

    Raises
    ------
    ValueError
        If the thresholds are out of order or outside [0, 1], the batch lacks the score
        column, or ``stamps`` does not match the batch.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> batch = lk.load_sample()   # simulated: labelled by its simulated reliability
    >>> X, y, groups, meta = real_stamp_set(batch)
    >>> X.shape[1:], bool(set(y) <= {0, 1}), bool((meta["score"][y == 1] >= 0.9).all())
    ((3, 30, 30), True, True)
    """
    if not (0.0 <= bogus_at <= real_at <= 1.0):
        raise ValueError(f"thresholds must satisfy 0 <= bogus_at <= real_at <= 1; got bogus_at={bogus_at}, "
                         f"real_at={real_at}")
    src = batch.sources
    n = len(src)
    surv = (src["survey"].astype("string").fillna("unknown") if "survey" in src
            else pd.Series("unknown", index=src.index, dtype="string"))
    left_out = {}
    other = np.zeros(n, bool)
    if score is None:
        if "reliability" not in src:
            raise ValueError("the batch has no 'reliability' column to label alerts by; pass score=")
        s = pd.to_numeric(src["reliability"], errors="coerce").to_numpy(float)
        label_src = (src["reliabilitySource"].astype("string") if "reliabilitySource" in src
                     else pd.Series("reliability", index=src.index, dtype="string"))
        expected = surv.map(LABEL_SOURCES).fillna("reliability")
        ok = (label_src == expected).fillna(False).to_numpy(bool)
        other = ~ok & ~np.isnan(s)
        if other.any():
            left_out["other_score_source"] = int(other.sum())  # e.g. ZTF alerts with only rb
        s = np.where(ok, s, np.nan)
        label_src = label_src.fillna("none").to_numpy(object)
    else:
        if isinstance(score, str):
            if score not in src:
                raise ValueError(f"the batch has no column {score!r} to label alerts by")
            s = pd.to_numeric(src[score], errors="coerce").to_numpy(float)
            label_src = np.full(n, score, object)
        else:
            if isinstance(score, pd.Series):
                score = score.reindex(src.index)
            s = np.asarray(score, float)
            if s.shape != (n,):
                raise ValueError(f"score has shape {s.shape}; the batch has {n} alerts")
            label_src = np.full(n, "given", object)
    keep = np.ones(n, bool)
    if survey is not None:
        keep &= (surv == survey).to_numpy(bool)
    left_out["no_score"] = int((keep & np.isnan(s) & ~other).sum())
    if "other_score_source" in left_out:
        left_out["other_score_source"] = int((keep & other).sum())
    is_real = s >= real_at
    is_bogus = (s <= bogus_at) & ~is_real
    left_out["between_thresholds"] = int((keep & ~np.isnan(s) & ~is_real & ~is_bogus).sum())
    keep &= is_real | is_bogus
    if stamps is None:
        X = batch_stamps(batch[keep]) if keep.any() else np.empty((0, 3, SIZE, SIZE), np.float32)
    else:
        stamps = np.asarray(stamps)
        if stamps.shape != (n, 3, SIZE, SIZE):
            raise ValueError(f"stamps has shape {stamps.shape}; expected ({n}, 3, {SIZE}, {SIZE}) for this batch")
        X = stamps[keep]
    X = np.asarray(X, np.float32)
    has_stamp = np.isfinite(X[:, 2]).any(axis=(1, 2)) if len(X) else np.zeros(0, bool)
    left_out["no_stamp"] = int((~has_stamp).sum())
    idx = np.flatnonzero(keep)[has_stamp]
    X = X[has_stamp]
    y = is_real[idx].astype(int)
    groups = (src["diaObjectId"].to_numpy()[idx] if "diaObjectId" in src else src.index.to_numpy()[idx])
    meta = pd.DataFrame({"diaObjectId": groups, "survey": surv.to_numpy()[idx],
                         "broker": src["broker"].astype("string").to_numpy()[idx] if "broker" in src else pd.NA,
                         "band": src["band"].to_numpy()[idx] if "band" in src else pd.NA,
                         "score": s[idx], "labelSource": label_src[idx],
                         "snr": pd.to_numeric(src["snr"], errors="coerce").to_numpy(float)[idx] if "snr" in src
                         else np.nan, "real": y},
                        index=src.index[idx])
    meta.attrs = {"real_at": real_at, "bogus_at": bogus_at, "left_out": left_out}
    return RealStampSet(X, y, groups, meta)


def _auc_fast(y, s):
    """Mann-Whitney AUC (ties count half); NaN without both classes."""
    from scipy.stats import rankdata

    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _point_metrics(y, s, mdr, fpr):
    real, bog = s[y == 1], s[y == 0]
    if len(real) == 0 or len(bog) == 0:
        return np.nan, np.nan, np.nan
    t_mdr = np.quantile(real, mdr)  # as evaluate() defines them
    t_fpr = np.quantile(bog, 1 - fpr)
    return _auc_fast(y, s), float((bog >= t_mdr).mean()), float((real < t_fpr).mean())


def evaluate_with_intervals(y, score, groups, n_boot=1000, seed=0, *, mdr=0.01, fpr=0.01, level=0.95):
    """AUC, FPR at 1 % MDR and MDR at 1 % FPR with bootstrap intervals that resample objects.

    Alerts of one object are not independent (same source, same host, same
    artefact), so the bootstrap draws whole objects (``groups``) with replacement,
    separately among objects that hold a bogus alert and those that do not (so each
    replicate keeps both classes), and recomputes the metrics as :func:`evaluate`
    defines them. Intervals are percentile intervals.

    Parameters
    ----------
    y : array of 0/1
    score : array of float
        Higher means more likely real.
    groups : array
        Object of each alert (``diaObjectId``).
    n_boot : int
    seed : int
    mdr, fpr : float
        The missed-detection and false-positive rates the thresholds are set at.
    level : float
        Interval coverage.

    Returns
    -------
    dict
        ``auc``, ``auc_lo``, ``auc_hi``, ``fpr_at_mdr`` (+ ``_lo``/``_hi``), ``mdr_at_fpr``
        (+ ``_lo``/``_hi``), ``n_real``, ``n_bogus`` (alerts), ``objects_real``,
        ``objects_bogus``, ``n_boot``.

    Raises
    ------
    ValueError
        If the arrays differ in length, ``y`` is not 0/1, or a class is missing.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 200); groups = np.arange(400) // 2
    >>> r = evaluate_with_intervals(y, np.where(y == 1, 0.9, 0.1), groups, n_boot=200)
    >>> r["auc"], r["auc_lo"], r["fpr_at_mdr"]
    (1.0, 1.0, 0.0)
    >>> r = evaluate_with_intervals(y, rng.random(400), groups, n_boot=200)
    >>> bool(r["auc_lo"] < 0.5 < r["auc_hi"])
    True
    """
    y = np.asarray(y)
    s = np.asarray(score, float)
    g = np.asarray(groups)
    if not (len(y) == len(s) == len(g)):
        raise ValueError(f"y, score and groups differ in length ({len(y)}, {len(s)}, {len(g)})")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0 (bogus) and 1 (real) only")
    y = y.astype(int)
    if np.isnan(s).any():
        raise ValueError(f"score holds {int(np.isnan(s).sum())} NaN values")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"need both real and bogus alerts to evaluate; got {int(y.sum())} real, "
                         f"{int(len(y) - y.sum())} bogus")
    auc, f_at_m, m_at_f = _point_metrics(y, s, mdr, fpr)
    # objects -> alert index ranges, then whole objects drawn per stratum
    codes, uniq = pd.factorize(g)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has_bogus = np.bincount(codes, weights=(y == 0), minlength=len(uniq)) > 0
    strata = [np.flatnonzero(has_bogus), np.flatnonzero(~has_bogus)]
    rng = np.random.default_rng(seed)
    stats = np.full((n_boot, 3), np.nan)
    for b in range(n_boot):  # one replicate per pass; everything inside is vectorised
        drawn = np.concatenate([rng.choice(st, len(st)) for st in strata if len(st)])
        lens = counts[drawn]
        offs = np.repeat(starts[drawn] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        idx = order[offs + np.arange(lens.sum())]
        stats[b] = _point_metrics(y[idx], s[idx], mdr, fpr)
    lo, hi = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {"auc": auc, "auc_lo": float(lo[0]), "auc_hi": float(hi[0]),
            "fpr_at_mdr": f_at_m, "fpr_at_mdr_lo": float(lo[1]), "fpr_at_mdr_hi": float(hi[1]),
            "mdr_at_fpr": m_at_f, "mdr_at_fpr_lo": float(lo[2]), "mdr_at_fpr_hi": float(hi[2]),
            "n_real": int(y.sum()), "n_bogus": int(len(y) - y.sum()),
            "objects_real": int(pd.unique(g[y == 1]).size), "objects_bogus": int(pd.unique(g[y == 0]).size),
            "n_boot": int(n_boot)}


def grouped_folds(real_set, n_splits=5, seed=0):
    """Cross-validation folds split by object, stratified by class: a list of (train, test) index arrays.

    No object has alerts on both sides of a fold. The number of folds is lowered to
    the number of objects holding a bogus (or real) alert where that is smaller, so
    every test fold holds both classes; fewer than 2 such objects gives ``[]``.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> rs = real_stamp_set(lk.load_sample())
    >>> folds = grouped_folds(rs, n_splits=3)
    >>> len(folds)
    3
    >>> train, test = folds[0]
    >>> set(rs.groups[train]) & set(rs.groups[test])    # no object on both sides
    set()
    >>> sorted(set(rs.y[test].tolist()))                # both classes in the test fold
    [0, 1]
    >>> grouped_folds(rs.subset(rs.y == 1))              # reals only: no folds
    []
    """
    from sklearn.model_selection import StratifiedGroupKFold

    X, y, groups, _ = real_set
    y = np.asarray(y)
    k = min(n_splits, pd.unique(groups[y == 0]).size, pd.unique(groups[y == 1]).size)
    if k < 2:
        return []
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y, groups)]


@functools.lru_cache(maxsize=2)
def _sim_features(n, seed):
    X, lab = make_training_set(n, seed=seed)
    F = StampFeatures().transform(X)
    F.setflags(write=False)
    y = lab["real"].to_numpy()
    y.setflags(write=False)
    return F, y


def _small_real_model():
    """The real-only learner: few bogus examples, so a regularised linear model on the stamp features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))


#: Below this many objects in the smaller class, :func:`compare_models` flags its intervals as indicative only.
FEW_OBJECTS = 5

MODEL_NAMES = {"sim": "(a) simulation-trained", "real": "(b) real only", "sim+real": "(c) simulated + real"}


def compare_models(real_set, *, models=("sim", "real", "sim+real"), sim_model=None, n_sim=20_000, sim_seed=0,
                   n_splits=5, seed=0, n_boot=1000, real_weight=10.0, return_scores=False):
    """Three real/bogus models scored on the same real alerts, out of fold, split by object.

    (a) ``"sim"``: the simulation-trained model (``sim_model``, default :func:`default_model`),
    which never saw a real stamp, scores every alert. (b) ``"real"``: trained on real
    stamps only (a balanced logistic regression on :class:`StampFeatures`: the sets
    hold a handful of bogus alerts, too few for trees). (c) ``"sim+real"``: the default
    learner trained on ``n_sim`` simulated triplets plus the real training fold, each
    real stamp weighted ``real_weight``. (b) and (c) are scored by grouped,
    class-stratified cross-validation (:func:`grouped_folds`): each alert is scored by
    a model that saw no alert of its object. Metrics and object-bootstrap intervals
    come from :func:`evaluate_with_intervals` on the pooled out-of-fold scores, so all
    three rows describe the same alerts.

    Parameters
    ----------
    real_set : RealStampSet or tuple (X, y, groups, meta)
    models : sequence of {"sim", "real", "sim+real"}
    sim_model : estimator, optional
        Fitted pipeline taking (n, 3, 30, 30) stamps. After changing the simulator, pass
        ``default_model(retrain=True)`` (the cache does not know the simulator changed).
    n_sim, sim_seed : int
        Simulated training set of model (c) (:func:`make_training_set`).
    n_splits, seed : int
        Folds (lowered where the set has fewer bogus objects) and their shuffle.
    n_boot : int
    real_weight : float
        Sample weight of each real stamp in model (c) (simulated stamps weigh 1).
    return_scores : bool
        Also return the scores (DataFrame by ``diaSourceId``, one column per model, NaN where unscored).

    Returns
    -------
    DataFrame (or (DataFrame, DataFrame) with ``return_scores``)
        One row per model: ``model``, ``trained_on``, ``folds``, the counts and the metrics
        with intervals of :func:`evaluate_with_intervals`, and ``note`` where a metric
        cannot be computed (e.g. no bogus alert at these thresholds) or rests on fewer than
        :data:`FEW_OBJECTS` objects of a class.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> rs = real_stamp_set(lk.load_sample(), real_at=0.5, bogus_at=0.5)
    >>> t = compare_models(rs, models=("real",), n_boot=50)
    >>> list(t.index), bool(t.loc["real", "auc"] > 0.5)
    (['real'], True)
    """
    from sklearn.base import clone

    X, y, groups, meta = real_set
    y = np.asarray(y).astype(int)
    bad = set(models) - set(MODEL_NAMES)
    if bad:
        raise ValueError(f"unknown models {sorted(bad)}; choose from {list(MODEL_NAMES)}")
    index = meta.index if isinstance(meta, pd.DataFrame) else pd.RangeIndex(len(y))
    scores = pd.DataFrame(np.nan, index=index, columns=list(models))
    F = StampFeatures().transform(X) if len(X) else np.zeros((0, len(StampFeatures.FEATURE_NAMES)), np.float32)
    folds = grouped_folds((X, y, groups, meta), n_splits, seed)
    notes = {}
    if "sim" in models and len(X):
        model = default_model() if sim_model is None else sim_model
        scores["sim"] = model.predict_proba(X)[:, 1]
    if ("real" in models or "sim+real" in models) and not folds:
        for m in ("real", "sim+real"):
            notes[m] = "fewer than 2 objects with a bogus (or real) alert: no grouped cross-validation"
    if "sim+real" in models and folds:
        Fs, ys = _sim_features(n_sim, sim_seed)
        hgb = make_model("features", seed=seed).named_steps["classifier"]
    for tr, te in folds:
        if "real" in models:
            m = _small_real_model().fit(F[tr], y[tr])
            scores.iloc[te, scores.columns.get_loc("real")] = m.predict_proba(F[te])[:, 1]
        if "sim+real" in models:
            w = np.concatenate([np.ones(len(ys)), np.full(len(tr), float(real_weight))])
            m = clone(hgb).fit(np.concatenate([Fs, F[tr]]), np.concatenate([ys, y[tr]]), sample_weight=w)
            scores.iloc[te, scores.columns.get_loc("sim+real")] = m.predict_proba(F[te])[:, 1]
    trained = {"sim": f"simulated ({'default_model()' if sim_model is None else 'given model'})",
               "real": "real (out of fold)",
               "sim+real": f"{n_sim:,} simulated + real (out of fold, weight {real_weight:g})"}
    rows = []
    for m in models:
        row = {"model": m, "name": MODEL_NAMES[m], "trained_on": trained[m], "folds": len(folds) if m != "sim" else 0,
               "n_real": int(y.sum()), "n_bogus": int(len(y) - y.sum()),
               "objects_real": int(pd.unique(np.asarray(groups)[y == 1]).size),
               "objects_bogus": int(pd.unique(np.asarray(groups)[y == 0]).size)}
        s = scores[m].to_numpy()
        if m in notes:
            row["note"] = notes[m]
        elif y.sum() == 0 or y.sum() == len(y):
            row["note"] = f"only one class ({int(y.sum())} real, {int(len(y) - y.sum())} bogus): no metric"
        else:
            row.update(evaluate_with_intervals(y, s, groups, n_boot=n_boot, seed=seed))
            few = min(row["objects_bogus"], row["objects_real"])
            row["note"] = (f"only {few} objects in the smaller class: the interval resamples the scores, not the "
                           "training, and is indicative only" if few < FEW_OBJECTS else "")
        rows.append(row)
    cols = ["model", "name", "trained_on", "folds", "n_real", "n_bogus", "objects_real", "objects_bogus",
            "auc", "auc_lo", "auc_hi", "fpr_at_mdr", "fpr_at_mdr_lo", "fpr_at_mdr_hi",
            "mdr_at_fpr", "mdr_at_fpr_lo", "mdr_at_fpr_hi", "n_boot", "note"]
    table = pd.DataFrame(rows).reindex(columns=cols).set_index("model")
    return (table, scores) if return_scores else table


def threshold_sensitivity(batch, thresholds=THRESHOLDS, *, survey=None, models=("sim",), stamps=None, **kwargs):
    """How the labelled set and the metrics move with the label thresholds.

    Parameters
    ----------
    batch : AlertBatch
    thresholds : sequence of (real_at, bogus_at)
    survey : str, optional
    models : sequence
        Passed to :func:`compare_models` (default: the simulation-trained model only, fast).
    stamps : ndarray, optional
        ``batch_stamps(batch)``, decoded once for all thresholds (decoded here if absent).
    **kwargs
        More :func:`compare_models` arguments (``n_boot``, ``sim_model``, ...).

    Returns
    -------
    DataFrame
        One row per (thresholds, model), with ``real_at``, ``bogus_at``, ``left_out`` (alerts
        between the thresholds) and :func:`compare_models`'s columns.

    Examples
    --------
    The real-only model here (quick); the default ``models=("sim",)`` scores with :func:`default_model`.

    >>> import lsstuk_kit as lk
    >>> t = threshold_sensitivity(lk.load_sample(), [(0.8, 0.2), (0.9, 0.1)], models=("real",), n_boot=50)
    >>> t[["real_at", "bogus_at", "left_out", "model", "n_real", "n_bogus"]]
       real_at  bogus_at  left_out model  n_real  n_bogus
    0      0.8       0.2       320  real     131      228
    1      0.9       0.1       487  real      71      121
    >>> bool(t["auc"].between(0.5, 1).all())
    True
    """
    stamps = batch_stamps(batch) if stamps is None else stamps
    out = []
    for real_at, bogus_at in thresholds:
        rs = real_stamp_set(batch, real_at=real_at, bogus_at=bogus_at, survey=survey, stamps=stamps)
        t = compare_models(rs, models=models, **kwargs).reset_index()
        t.insert(0, "bogus_at", bogus_at)
        t.insert(0, "real_at", real_at)
        t.insert(2, "left_out", rs.meta.attrs["left_out"]["between_thresholds"])
        out.append(t)
    return pd.concat(out, ignore_index=True)


def format_table(table):
    """A compact text version of :func:`compare_models` / :func:`threshold_sensitivity` output.

    Each metric as ``value [lo, hi]``, with the counts: alerts (objects) per class.

    Examples
    --------
    >>> import lsstuk_kit as lk
    >>> rs = real_stamp_set(lk.load_sample())
    >>> text = format_table(compare_models(rs, models=("real",), n_boot=50))
    >>> text.columns.tolist()
    ['model', 'real (obj)', 'bogus (obj)', 'AUC [95%]', 'FPR@1%MDR [95%]', 'MDR@1%FPR [95%]']
    >>> text.loc[0, "model"], text.loc[0, "real (obj)"], text.loc[0, "bogus (obj)"]
    ('(b) real only', '71 (55)', '121 (121)')
    """
    t = table.reset_index() if "model" not in table.columns else table.copy()

    def fmt(r, k, pct):
        v = r.get(k)
        if v is None or pd.isna(v):
            return "-"
        f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
        return f"{f(v)} [{f(r[k + '_lo'])}, {f(r[k + '_hi'])}]"

    rows = []
    for _, r in t.iterrows():
        d = {k: r[k] for k in ("real_at", "bogus_at", "left_out") if k in t.columns}
        d.update({"model": r.get("name", r["model"]),
                  "real (obj)": f"{r['n_real']} ({r['objects_real']})",
                  "bogus (obj)": f"{r['n_bogus']} ({r['objects_bogus']})",
                  "AUC [95%]": fmt(r, "auc", False), "FPR@1%MDR [95%]": fmt(r, "fpr_at_mdr", True),
                  "MDR@1%FPR [95%]": fmt(r, "mdr_at_fpr", True)})
        if isinstance(r.get("note"), str) and r["note"]:
            d["note"] = r["note"]
        rows.append(d)
    return pd.DataFrame(rows).fillna("")


def plot_real_roc(real_set, scores, table=None, ax=None):
    """ROC curves (true-positive against false-positive rate) of each model's scores on a real set.

    ``scores`` is :func:`compare_models`'s second output (``return_scores=True``); the
    legend gives each model's AUC with its interval from ``table`` when given.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import lsstuk_kit as lk
    >>> rs = real_stamp_set(lk.load_sample())
    >>> table, scores = compare_models(rs, models=("real",), n_boot=50, return_scores=True)
    >>> ax = plot_real_roc(rs, scores, table)
    >>> ax.get_legend().get_texts()[0].get_text()
    '(b) real only: AUC 0.99 [0.98, 0.99]'
    >>> plt.close("all")
    """
    from sklearn.metrics import roc_curve

    if ax is None:
        import matplotlib.pyplot as plt  # a pyplot figure, so that it shows inline in a notebook

        ax = plt.figure(figsize=(5, 4.5)).subplots()
    y = np.asarray(real_set[1]).astype(int)
    for k, m in enumerate(scores.columns):
        s = scores[m].to_numpy()
        ok = ~np.isnan(s)
        if not ok.any() or len(set(y[ok])) < 2:
            continue
        f, t, _ = roc_curve(y[ok], s[ok])
        label = MODEL_NAMES.get(m, m)
        if table is not None and m in table.index and pd.notna(table.loc[m, "auc"]):
            r = table.loc[m]
            label += f": AUC {r['auc']:.2f} [{r['auc_lo']:.2f}, {r['auc_hi']:.2f}]"
        ax.step(f, t, where="post", color=f"C{k}", label=label)
    ax.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
    ax.set_xlabel("false-positive rate (bogus kept)")
    ax.set_ylabel("true-positive rate (real kept)")
    ax.legend(fontsize=8, loc="lower right")
    return ax
