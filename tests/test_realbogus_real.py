"""Real/bogus scored on real stamps (issue 13): labelled real sets, object-bootstrap intervals, model comparison.

The real sets (``../shared/real-alerts``) are small and were selected by brokers' filters, so they hold few
bogus alerts; the tests on them skip where that folder is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import lsstuk_kit as lk
from lsstuk_kit import realbogus as rb


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tree fitting with one OpenMP thread: on a shared machine many threads thrash (this is not a speed test)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def everything(real_alerts):
    """All real alerts in the folder and their stamps, decoded once."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Fink ZTF file's lossy prv_candidates ids are reported, not needed here
        batch = lk.read_alerts(real_alerts, errors="skip")
    return batch, rb.batch_stamps(batch)


# ------------------------------------------------------------------ intervals on synthetic scores
def test_perfect_separation_gives_one():
    y = np.repeat([1, 0], [150, 50])
    groups = np.arange(200) // 2
    r = rb.evaluate_with_intervals(y, np.where(y == 1, 0.8, 0.2), groups, n_boot=200)
    assert (r["auc"], r["auc_lo"], r["auc_hi"]) == (1.0, 1.0, 1.0)
    assert r["fpr_at_mdr"] == 0.0 and r["mdr_at_fpr"] == 0.0
    assert (r["n_real"], r["n_bogus"], r["objects_real"], r["objects_bogus"]) == (150, 50, 75, 25)
    reversed_ = rb.evaluate_with_intervals(y, np.where(y == 1, 0.2, 0.8), groups, n_boot=100)
    assert reversed_["auc"] == 0.0 and reversed_["fpr_at_mdr"] == 1.0


def test_random_scores_give_a_half_inside_the_interval():
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.3).astype(int)
    r = rb.evaluate_with_intervals(y, rng.random(600), np.arange(600), n_boot=500)
    assert abs(r["auc"] - 0.5) < 0.07
    assert r["auc_lo"] < 0.5 < r["auc_hi"]
    assert 0.05 < r["auc_hi"] - r["auc_lo"] < 0.25


def test_known_auc_is_recovered_and_agrees_with_evaluate():
    rng = np.random.default_rng(2)
    d = 1.5  # two unit Gaussians d apart: AUC = Phi(d / sqrt 2) = 0.856
    true_auc = norm.cdf(d / np.sqrt(2))
    covered = []
    for _ in range(40):  # the 95 % interval should hold the true AUC in about 95 % of samples
        y = np.repeat([1, 0], [150, 50])
        s = np.where(y == 1, rng.normal(d, 1, 200), rng.normal(0, 1, 200))
        r = rb.evaluate_with_intervals(y, s, np.arange(200), n_boot=200, seed=int(rng.integers(1 << 30)))
        covered.append(r["auc_lo"] <= true_auc <= r["auc_hi"])
    assert 0.85 <= np.mean(covered) <= 1.0
    plain = rb.evaluate(y, s)
    assert r["auc"] == pytest.approx(plain["auc"])
    assert r["fpr_at_mdr"] == pytest.approx(plain["fpr_at_mdr"])
    assert r["mdr_at_fpr"] == pytest.approx(plain["mdr_at_fpr"])


def test_bootstrap_resamples_objects_not_alerts():
    rng = np.random.default_rng(3)
    y0 = np.repeat([1, 0], 30)
    s0 = np.where(y0 == 1, rng.normal(1, 1, 60), rng.normal(0, 1, 60))
    # every object seen 10 times with the same score: 600 alerts, but only 60 independent objects
    y, s, g = np.repeat(y0, 10), np.repeat(s0, 10), np.repeat(np.arange(60), 10)
    by_object = rb.evaluate_with_intervals(y, s, g, n_boot=400)
    by_alert = rb.evaluate_with_intervals(y, s, np.arange(600), n_boot=400)
    assert by_object["auc"] == pytest.approx(by_alert["auc"])
    assert (by_object["auc_hi"] - by_object["auc_lo"]) > 2 * (by_alert["auc_hi"] - by_alert["auc_lo"])
    assert by_object["objects_real"] == 30 and by_alert["objects_real"] == 300


def test_interval_input_errors():
    with pytest.raises(ValueError, match="both real and bogus"):
        rb.evaluate_with_intervals(np.ones(5), np.ones(5), np.arange(5))
    with pytest.raises(ValueError, match="length"):
        rb.evaluate_with_intervals(np.ones(5), np.ones(4), np.arange(5))
    with pytest.raises(ValueError, match="0 .bogus. and 1"):
        rb.evaluate_with_intervals(np.array([0, 1, 2]), np.ones(3), np.arange(3))


# ------------------------------------------------------------------ labelled real sets
def test_mixed_folder_stamps_are_all_decoded(everything):
    batch, stamps = everything
    assert stamps.shape == (len(batch), 3, 30, 30)
    ztf = (batch.sources["survey"] == "ztf").to_numpy()
    # the folder mixes Rubin 30x30 and ZTF 63x63 stamps: each ZTF one is cut to its centre, none left empty
    empty = ~np.isfinite(stamps[:, 2]).any(axis=(1, 2))
    assert ztf.sum() == 584 and not empty[ztf].any()
    first = np.zeros(len(batch), bool)
    first[np.flatnonzero(ztf)[:3]] = True
    assert np.allclose(rb.batch_stamps(batch[first]), stamps[first], equal_nan=True)


def test_ztf_set_labelled_by_drb(everything):
    batch, stamps = everything
    rs = rb.real_stamp_set(batch, survey="ztf", stamps=stamps)
    X, y, groups, meta = rs
    assert X.shape == (len(y), 3, 30, 30) and len(groups) == len(meta) == len(y)
    assert (meta["labelSource"] == "drb").all() and (meta["survey"] == "ztf").all()
    drb = batch.sources.loc[meta.index, "drb"].to_numpy(float)
    assert np.array_equal(drb, meta["score"].to_numpy())
    assert (drb[y == 1] >= 0.9).all() and (drb[y == 0] <= 0.1).all()
    # the brokers' filters kept almost only real alerts: 538 real, 5 bogus, 41 left between the thresholds
    assert (int(y.sum()), int((y == 0).sum())) == (538, 5)
    assert meta.attrs["left_out"]["between_thresholds"] == 41
    assert np.array_equal(groups, batch.sources.loc[meta.index, "diaObjectId"].to_numpy())
    c = rs.counts().loc["ztf"]
    assert c["objects_bogus"] == 5 and c["objects"] == len(set(groups))


def test_thresholds_move_the_set(everything):
    batch, stamps = everything
    sets = {t: rb.real_stamp_set(batch, real_at=t[0], bogus_at=t[1], survey="ztf", stamps=stamps)
            for t in [(0.8, 0.2), (0.9, 0.1), (0.95, 0.05), (0.5, 0.5)]}
    n = {t: (int(s.y.sum()), int((s.y == 0).sum())) for t, s in sets.items()}
    assert n[(0.8, 0.2)][0] > n[(0.9, 0.1)][0] > n[(0.95, 0.05)][0]
    assert n[(0.95, 0.05)][1] <= n[(0.9, 0.1)][1] <= n[(0.8, 0.2)][1]
    assert sum(n[(0.5, 0.5)]) == 584  # one threshold labels every ZTF alert
    strict, loose = sets[(0.95, 0.05)], sets[(0.8, 0.2)]
    assert set(strict.meta.index) <= set(loose.meta.index)
    with pytest.raises(ValueError, match="bogus_at <= real_at"):
        rb.real_stamp_set(batch, real_at=0.1, bogus_at=0.9, stamps=stamps)
    with pytest.raises(ValueError, match="no column"):
        rb.real_stamp_set(batch, score="nonesuch", stamps=stamps)


def test_rubin_set_labelled_by_reliability_and_rb_left_out(everything):
    batch, stamps = everything
    rs = rb.real_stamp_set(batch, survey="lsst", real_at=0.8, bogus_at=0.2, stamps=stamps)
    assert (rs.meta["labelSource"] == "reliability").all() and len(rs.y) == 15
    src = batch.sources.loc[rs.meta.index]
    assert np.array_equal(src["reliability"].to_numpy(float), rs.meta["score"].to_numpy())
    # a ZTF alert whose only score is rb is left out, and counted
    b2 = batch[np.ones(len(batch), bool)]  # a view with its own sources table
    one = b2.sources.index[(b2.sources["survey"] == "ztf") & (b2.sources["drb"] >= 0.9)][0]
    b2.sources.loc[one, "reliabilitySource"] = "rb"
    assert batch.sources.loc[one, "reliabilitySource"] == "drb"
    r2 = rb.real_stamp_set(b2, survey="ztf", stamps=stamps)
    assert one not in r2.meta.index and r2.meta.attrs["left_out"]["other_score_source"] == 1
    assert len(r2.y) == 542


def test_grouped_folds_never_share_an_object(everything):
    batch, stamps = everything
    rs = rb.real_stamp_set(batch, survey="ztf", real_at=0.5, bogus_at=0.5, stamps=stamps)
    folds = rb.grouped_folds(rs, n_splits=5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(seen), np.arange(len(rs.y)))
    for tr, te in folds:
        assert not set(rs.groups[tr]) & set(rs.groups[te])
        assert set(rs.y[te]) == {0, 1}
    # objects holding several alerts exist, so a split by alert would have leaked
    assert pd.Series(rs.groups).value_counts().max() > 1


# ------------------------------------------------------------------ the three models on real stamps
def test_compare_models_on_real_ztf(everything):
    batch, stamps = everything
    rs = rb.real_stamp_set(batch, survey="ztf", stamps=stamps)
    table, scores = rb.compare_models(rs, n_sim=2000, n_boot=200, return_scores=True)
    assert list(table.index) == ["sim", "real", "sim+real"]
    assert (table["n_real"] == 538).all() and (table["n_bogus"] == 5).all()
    assert scores.notna().all().all() and scores.index.equals(rs.meta.index)
    for m, r in table.iterrows():
        assert r["auc_lo"] <= r["auc"] <= r["auc_hi"], m
    assert table.loc["sim", "folds"] == 0 and table.loc["real", "folds"] == 5
    text = rb.format_table(table)
    assert text["AUC [95%]"].str.contains(r"\[").all()


def test_real_trained_model_beats_chance_on_held_out_objects(everything):
    batch, stamps = everything
    # every ZTF alert labelled at drb 0.5: 15 bogus objects, enough for the claim to be testable
    rs = rb.real_stamp_set(batch, survey="ztf", real_at=0.5, bogus_at=0.5, stamps=stamps)
    r = rb.compare_models(rs, models=("real",), n_boot=300).loc["real"]
    n1, n0 = r["n_real"], r["n_bogus"]
    null_sd = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))  # Mann-Whitney AUC under no skill
    assert r["auc"] > 0.5 + 1.645 * null_sd  # one-sided 5 % test against chance


def test_rubin_without_bogus_reports_no_metric(everything):
    batch, stamps = everything
    rs = rb.real_stamp_set(batch, survey="lsst", stamps=stamps)  # 0.9 / 0.1: no Rubin alert below 0.1
    table = rb.compare_models(rs, models=("sim", "real"), n_boot=50)
    assert (table["n_bogus"] == 0).all() and table["auc"].isna().all()
    assert table["note"].str.len().gt(0).all()


def test_threshold_sensitivity_rows(everything):
    batch, stamps = everything
    t = rb.threshold_sensitivity(batch, survey="ztf", stamps=stamps, n_boot=100)
    assert list(zip(t["real_at"], t["bogus_at"])) == list(rb.THRESHOLDS)
    assert t["n_real"].is_monotonic_decreasing and t["left_out"].is_monotonic_increasing
