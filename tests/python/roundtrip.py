#!/usr/bin/python3
"""Round trip through shale with confluent-kafka (librdkafka), driven by
tests/interop (TestPythonRoundTrip).

Produces SHALE_COUNT keyed records with headers and explicit timestamps to
SHALE_TOPIC through SHALE_PRODUCE_BOOTSTRAP, then reads every partition from
the beginning with assign() (no consumer group) through
SHALE_CONSUME_BOOTSTRAP until each partition reports end of partition.

Prints JSON lines on stdout: one {"kind":"ack"} per acknowledged record, one
{"kind":"record"} per consumed record, then one {"kind":"summary"} with
counts and a SHA-256 over the consumed records, so the Go test can tell a
short read from a lost line. Diagnostics go to stderr. Every loop is
bounded by SHALE_READ_TIMEOUT seconds.

Record i (the scheme every client follows): key "key-%05d", value
"value-%05d-" + "x" * (i % 61), headers idx=<i> and src=<SHALE_SRC>,
timestamp 1_700_000_000_000 + i ms.
"""

import hashlib
import json
import os
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError,
                             Producer, TopicPartition)

BASE_TS = 1_700_000_000_000


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def record(i, src):
    return ("key-%05d" % i, "value-%05d-" % i + "x" * (i % 61),
            [("idx", str(i)), ("src", src)], BASE_TS + i)


def produce(bootstrap, topic, count, src, deadline):
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "compression.type": "zstd",
        "linger.ms": 5,
        "client.id": "shale-interop-python",
    })
    acked, failed = [0], []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                failed.append("record %d: %s" % (i, err))
                return
            acked[0] += 1
            out({"kind": "ack", "i": i, "partition": msg.partition(), "offset": msg.offset()})
        return cb

    for i in range(count):
        key, value, headers, ts = record(i, src)
        while True:
            try:
                p.produce(topic, key=key, value=value, headers=headers,
                          timestamp=ts, on_delivery=on_delivery(i))
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise SystemExit("produce: local queue full until the deadline")
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(max(deadline - time.monotonic(), 1))
    if remaining:
        failed.append("%d records still unacknowledged at the deadline" % remaining)
    return acked[0], failed


def consume(bootstrap, topic, partitions, want, deadline):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        # confluent-kafka insists on a group.id; assign() and no commits
        # keep the group unused.
        "group.id": "shale-interop-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "client.id": "shale-interop-python",
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, eof, errors = 0, set(), []
    digest = hashlib.sha256()
    while time.monotonic() < deadline and (len(eof) < partitions or got < want):
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
            else:
                errors.append(str(msg.error()))
                print("consume error: %s" % msg.error(), file=sys.stderr)
            continue
        eof.discard(msg.partition())
        key = msg.key().decode() if msg.key() is not None else None
        value = msg.value().decode() if msg.value() is not None else None
        headers = [[k, v.decode() if v is not None else None] for k, v in (msg.headers() or [])]
        tstype, ts = msg.timestamp()
        rec = {"kind": "record", "partition": msg.partition(), "offset": msg.offset(),
               "key": key, "value": value, "headers": headers, "timestamp": ts,
               "tstype": tstype}
        digest.update(json.dumps([rec["partition"], rec["offset"], key, value, headers, ts],
                                 separators=(",", ":")).encode())
        digest.update(b"\n")
        out(rec)
        got += 1
    c.close()
    return got, sorted(eof), errors, digest.hexdigest()


def main():
    produce_bs = os.environ["SHALE_PRODUCE_BOOTSTRAP"]
    consume_bs = os.environ["SHALE_CONSUME_BOOTSTRAP"]
    topic = os.environ["SHALE_TOPIC"]
    count = int(os.environ["SHALE_COUNT"])
    partitions = int(os.environ["SHALE_PARTITIONS"])
    src = os.environ.get("SHALE_SRC", "python")
    timeout = float(os.environ.get("SHALE_READ_TIMEOUT", "30"))

    acked, failed = produce(produce_bs, topic, count, src, time.monotonic() + timeout)
    for f in failed[:5]:
        print("produce failure: " + f, file=sys.stderr)
    consumed, eof, errors, sha = consume(consume_bs, topic, partitions, acked,
                                         time.monotonic() + timeout)
    out({"kind": "summary", "produced": count, "acked": acked, "failed": len(failed),
         "consumed": consumed, "eof_partitions": eof, "errors": errors[:5],
         "sha256": sha})


if __name__ == "__main__":
    main()
