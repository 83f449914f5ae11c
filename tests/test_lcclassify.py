"""The light-curve classifier: trained on one simulated survey, scored on another, applied to real alerts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("light_curve")

from lsstuk_kit import lcclassify as L  # noqa: E402


@pytest.fixture(scope="module")
def train_test():
    kw = dict(nights=50, alert_nights=15, scale=4.0)
    return L.simulate_labelled([11], **kw), L.simulate_labelled([12], **kw)


@pytest.fixture(scope="module")
def model(train_test):
    return L.fit_classifier(train_test[0])


def test_truth_classes(truth):
    lab = L.truth_classes(truth)
    assert lab[truth["subtype"].astype(str) == "Ia"].eq("SN Ia").all()
    assert lab[truth["cls"].astype(str).isin(["SSO", "bogus"])].isna().all()


def test_held_out_survey_beats_chance_and_shuffled_labels(train_test, model):
    tr, te = train_test
    k = te["label"].notna()
    pred = L.predict_classes(model, te[k])
    score = L.score_classes(pred["predicted"], te.loc[k, "label"], groups=te.loc[k, "object"])
    assert score.n >= 300 and set(score.per_class.index) <= set(L.CLASSES)
    assert score.balanced_accuracy > 0.45  # six classes: chance is 1/6
    lo, hi = score.interval
    assert lo <= score.accuracy <= hi
    shuffled = tr.copy()
    shuffled["label"] = np.random.default_rng(0).permutation(tr["label"].to_numpy())
    bad = L.predict_classes(L.fit_classifier(shuffled), te[k])
    worse = L.score_classes(bad["predicted"], te.loc[k, "label"])
    assert worse.balanced_accuracy < score.balanced_accuracy - 0.15


def test_save_and_load_with_skops(tmp_path, train_test, model):
    te = train_test[1]
    path = L.save_classifier(model, tmp_path / "lc.skops")
    again = L.load_classifier(path)
    np.testing.assert_array_equal(again.predict(L._frame(te)), model.predict(L._frame(te)))


def test_score_classes_accepts_sn_for_either_supernova():
    s = L.score_classes(["SN Ia", "SN CC", "AGN"], ["SN", "SN", "SN"])
    assert s.per_class.loc["SN", "correct"] == 2


def test_real_labels_and_scores(real_alerts, model):
    import lsstuk_kit as lk
    from lsstuk_kit.features import extract_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = lk.read_alerts(real_alerts, errors="skip")
    z = b[(b.sources["survey"] == "ztf").to_numpy()]
    bts = real_alerts.parent / "catalogs" / "ZTFBTS_TransientTable.csv"
    lab = L.real_labels(z, bts=bts if bts.is_file() else None)
    # Fink's SIMBAD classes: BL Lacs and QSOs dominate (the file was selected by Fink's blazar filter)
    counts = lab["reference"].value_counts()
    assert counts.get("AGN", 0) >= 100 and counts.get("VS", 0) >= 20
    if bts.is_file():
        assert (lab["source"] == "BTS").sum() >= 1
    pred = L.predict_classes(model, extract_features(z))
    score = L.score_classes(pred["predicted"], lab["reference"], groups=z.sources["diaObjectId"])
    assert score.n == int(lab["reference"].notna().sum())
    assert score.per_class.loc["AGN", "n"] >= 100
    assert pd.Series(pred["predicted"]).isin(L.CLASSES).all()


def test_simulate_labelled_leaves_no_folder_behind(tmp_path, monkeypatch):
    """Its alerts go to a temporary folder: removed before returning, or with the batch kept."""
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kw = dict(nights=4, alert_nights=2, fields=(15,), scale=0.3)
    frame = L.simulate_labelled(3, **kw)
    assert len(frame) > 0 and list(tmp_path.iterdir()) == []
    frame, batches = L.simulate_labelled(3, keep_batches=True, **kw)
    (folder,) = tmp_path.iterdir()
    assert len(batches[3]) == len(frame)
    first = next(iter(batches[3]))  # the raw alert, read back from the folder while the batch lives
    assert first["diaSource"]["diaSourceId"] == batches[3].sources.index[0]
    del batches
    gc.collect()
    assert not folder.exists()
