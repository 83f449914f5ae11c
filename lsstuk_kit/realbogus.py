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

Stamps are 30x30; larger ones (ZTF 63x63) are cut to their central 30x30.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import ModelFileError, UntrustedModelError

__all__ = ["make_training_set", "StampFeatures", "NormalisedPixels", "make_model", "evaluate", "plot_roc",
           "plot_precision_recall", "plot_breakdown", "save_model", "load_model", "default_model",
           "score_batch", "batch_stamps", "TRUSTED", "ModelFileError", "UntrustedModelError"]

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
    """The central ``size`` x ``size`` pixels of each stamp, divided by the difference stamp's noise."""

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
    """A scikit-learn Pipeline: ``"features"`` (default) or ``"pixels"``, then gradient-boosted trees."""
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
    """ROC curve (false-positive rate vs missed-detection rate, log axes, as ATLAS and Pan-STARRS plot it)."""
    from sklearn.metrics import roc_curve

    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5, 4)).subplots()
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
    """Precision and recall against threshold (Rubin's convention)."""
    from sklearn.metrics import precision_recall_curve

    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5, 4)).subplots()
    p, r, t = precision_recall_curve(np.asarray(y_true).astype(int), score)
    ax.plot(t, p[:-1], label="precision")
    ax.plot(t, r[:-1], label="recall")
    ax.set_xlabel("threshold")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax


def plot_breakdown(result, fig=None):
    """Bar charts of :func:`evaluate`'s pass rate per bogus type and MDR per S/N bin."""
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.5))
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
    >>> model = make_model().fit(X, labels["real"].to_numpy())
    >>> path = save_model(model, pathlib.Path(tempfile.mkdtemp()) / "rb.skops")
    >>> bool((load_model(path).predict(X) == model.predict(X)).all())
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


def default_model(n=20_000, seed=0, retrain=False):
    """The default feature model: trained deterministically on first use (seconds) and cached.

    The cache folder is ``$LSSTUK_KIT_CACHE`` (default ``~/.cache/lsstuk_kit``).
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
    """
    import json
    import warnings

    import sklearn
    import skops
    import skops.io as sio

    from . import __version__

    path = _cache_dir() / f"realbogus-features-{__version__}-sk{sklearn.__version__}-n{n}-s{seed}.skops"
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


def batch_stamps(batch):
    """The (n, 3, 30, 30) triplet stack of a batch (ZTF stamps cut to their central 30x30)."""
    from .cutouts import fast_stack, stack_cutouts

    stacks = []
    for which in ("science", "template", "difference"):
        st = fast_stack(batch, which)  # one vectorised decode where the stamps share a layout
        if st is None:
            st = stack_cutouts(batch, which)[1]
        stacks.append(_centre(st))
    return np.stack(stacks, axis=1)


def score_batch(batch, model=None):
    """Real/bogus score (probability of being real) of each alert, as a Series by ``diaSourceId``.

    A :class:`~lsstuk_kit.scale.DaskAlerts` gives a Dask Series, scored partition by partition.
    """
    from .scale import _is_lazy

    model = default_model() if model is None else model
    if _is_lazy(batch):
        return batch.map_batches(score_batch, model=model)
    if len(batch) == 0:
        return pd.Series(np.zeros(0), index=batch.sources.index, name="realbogus")
    X = batch_stamps(batch)
    return pd.Series(model.predict_proba(X)[:, 1], index=batch.sources.index, name="realbogus")
