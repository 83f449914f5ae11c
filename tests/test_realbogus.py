from __future__ import annotations

import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit import realbogus as rb
from lsstuk_kit.simulate.stamps import BOGUS_TYPES


class Stranger:
    """A type no allowlist knows."""

    def __init__(self):
        self.payload = 1


@pytest.fixture(scope="module")
def trained():
    X, lab = rb.make_training_set(12_000, seed=3)
    model = rb.make_model("features", seed=0).fit(X, lab["real"].to_numpy())
    Xt, lt = rb.make_training_set(6_000, seed=4)
    return model, Xt, lt


def test_training_set_is_labelled_and_reproducible():
    X1, l1 = rb.make_training_set(500, seed=9)
    X2, l2 = rb.make_training_set(500, seed=9)
    assert X1.shape == (500, 3, 30, 30) and np.array_equal(X1, X2, equal_nan=True) and l1.equals(l2)
    assert set(l1.loc[l1["real"] == 0, "bogusType"]) == set(BOGUS_TYPES)
    assert 0.4 < l1["real"].mean() < 0.6
    assert (l1.loc[l1["real"] == 1, "bogusType"] == "").all()


def test_feature_model_meets_the_atlas_target(trained):
    model, Xt, lt = trained
    score = model.predict_proba(Xt)[:, 1]
    r = rb.evaluate(lt["real"], score, lt["bogusType"], lt["snr"])
    assert r["auc"] > 0.995
    assert set(r["by_bogus_type"].index) == set(BOGUS_TYPES)
    # artefacts (every bogus type but the S/N 5-6 noise fluctuations, which look like faint real sources,
    # as on real data since issue 13) meet the ATLAS target
    art = (lt["bogusType"] != "noise").to_numpy()
    ra = rb.evaluate(lt["real"][art], score[art])
    assert ra["auc"] > 0.995
    assert ra["fpr_at_mdr"] <= 0.01  # FPR at 1% missed-detection rate (ATLAS: 0.72% median)
    assert ra["mdr_at_fpr"] <= 0.05
    assert r["by_bogus_type"].idxmax() == "noise"  # the hard case
    # faint real sources are the ones missed
    assert r["by_snr"].iloc[0] >= r["by_snr"].iloc[-1]


def test_evaluate_against_known_scores():
    y = np.array([1] * 100 + [0] * 100)
    s = np.concatenate([np.linspace(0.5, 1.0, 100), np.linspace(0.0, 0.6, 100)])
    r = rb.evaluate(y, s)
    t = np.quantile(s[:100], 0.01)
    assert r["threshold_mdr"] == pytest.approx(t)
    assert r["fpr_at_mdr"] == pytest.approx((s[100:] >= t).mean())
    assert r["mdr_at_fpr"] == pytest.approx((s[:100] < np.quantile(s[100:], 0.99)).mean())


def test_pixel_model_same_api():
    X, lab = rb.make_training_set(4_000, seed=5)
    m = rb.make_model("pixels").fit(X[:3000], lab["real"].to_numpy()[:3000])
    p = m.predict_proba(X[3000:])
    assert p.shape == (1000, 2)
    assert rb.evaluate(lab["real"].to_numpy()[3000:], p[:, 1])["auc"] > 0.95
    with pytest.raises(ValueError):
        rb.make_model("cnn")


def test_skops_round_trip_and_refusal(trained, tmp_path):
    model, Xt, _ = trained
    path = rb.save_model(model, tmp_path / "rb.skops")
    again = rb.load_model(path)
    assert np.allclose(again.predict_proba(Xt[:200]), model.predict_proba(Xt[:200]))
    # a file with a type outside the allowlist is refused
    import skops.io as sio

    sio.dump({"model": model, "odd": Stranger()}, tmp_path / "odd.skops")
    with pytest.raises(ValueError, match="untrusted"):
        rb.load_model(tmp_path / "odd.skops")


def test_scores_on_the_sample_night(trained):
    model, _, _ = trained
    batch = lk.load_sample()
    truth = lk.load_sample_truth().loc[batch.sources.index]
    score = rb.score_batch(batch, model)
    assert score.index.equals(batch.sources.index) and score.between(0, 1).all()
    real = truth["isReal"].to_numpy()
    assert score[real].median() > 0.9 and score[~real].median() < 0.5
    none = rb.score_batch(batch[batch.sources["mag"] < 0], model)  # a filter that kept nothing
    assert len(none) == 0 and none.name == "realbogus"


def test_scores_real_alerts(trained, real_alerts):
    model, _, _ = trained
    for rel in ["lsst/part-2-918301.avro", "ztf/part-3-305711.avro"]:
        b = lk.read_alerts(real_alerts / rel)
        X = rb.batch_stamps(b)
        assert X.shape == (len(b), 3, 30, 30)  # ZTF 63x63 cut to the central 30x30
        s = rb.score_batch(b, model)
        assert s.notna().all() and s.between(0, 1).all()


def test_default_model_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LSSTUK_KIT_CACHE", str(tmp_path))
    m1 = rb.default_model(n=3000)
    files = list(tmp_path.glob("realbogus-*.skops"))
    assert len(files) == 1
    m2 = rb.default_model(n=3000)
    X, _ = rb.make_training_set(100, seed=8)
    assert np.allclose(m1.predict_proba(X), m2.predict_proba(X))


def test_default_model_key_changes_with_code_not_with_wording(tmp_path, monkeypatch):
    """The cached model's name carries a hash of the simulator's and features' code: rewording a
    docstring or a comment keeps the model, changing what the code does retrains it."""
    from pathlib import Path

    from lsstuk_kit.simulate import stamps

    src = Path(stamps.__file__).read_text(encoding="utf-8")
    base = rb._code_tag()
    reworded = src.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n"
    changed = src + "\nSIZE_FOR_TEST = 1\n"
    for text, same in ((reworded, True), (changed, False)):
        copy = tmp_path / "stamps.py"
        copy.write_text(text, encoding="utf-8")
        monkeypatch.setattr(stamps, "__file__", str(copy))
        assert (rb._code_tag() == base) is same
