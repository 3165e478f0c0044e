#!/usr/bin/python3
"""Round trip through shale with kafka-python (the pure-Python client, Debian's
python3-kafka 2.0.2), driven by tests/interop (TestKafkaPythonRoundTrip).

kafka-python picks its request versions from the broker version it infers
from ApiVersions, and it uses older versions than the other clients here
(Produce v7, Fetch v4, ListOffsets v1, JoinGroup v2, SyncGroup and Heartbeat
v1, OffsetCommit v2 at the broker version 2.5 it infers from shale), so
this run covers them.

Produces SHALE_COUNT keyed records with headers and explicit timestamps to
SHALE_TOPIC through SHALE_PRODUCE_BOOTSTRAP (acks=all, gzip), then reads them
in the consumer group SHALE_GROUP through SHALE_CONSUME_BOOTSTRAP until each
partition's position reaches its end offset, and commits.

Prints JSON lines on stdout as tests/python/roundtrip.py does: one
{"kind":"ack"} per acknowledged record, one {"kind":"record"} per consumed
record, then one {"kind":"summary"} (eof_partitions: the partitions read to
their end offset; committed: the offsets the group committed, as
kafka-python reads them back). Diagnostics go to stderr. Every loop is
bounded by SHALE_READ_TIMEOUT seconds.

Record i: key "key-%05d", value "value-%05d-" + "x" * (i % 61), headers
idx=<i> and src=<SHALE_SRC>, timestamp 1_700_000_000_000 + i ms.
"""

import hashlib
import json
import os
import sys
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

BASE_TS = 1_700_000_000_000


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def record(i, src):
    return ("key-%05d" % i, "value-%05d-" % i + "x" * (i % 61),
            [("idx", str(i)), ("src", src)], BASE_TS + i)


def produce(bootstrap, topic, count, src, deadline):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                      compression_type="gzip", linger_ms=5,
                      client_id="shale-interop-kafka-python")
    print("kafka-python %s, broker version inferred %s" % (kafka.__version__, p.config["api_version"]),
          file=sys.stderr)
    acked, failed = [0], []
    futures = []
    for i in range(count):
        key, value, headers, ts = record(i, src)
        f = p.send(topic, key=key.encode(), value=value.encode(),
                   headers=[(k, v.encode()) for k, v in headers], timestamp_ms=ts)
        futures.append((i, f))
    p.flush(max(deadline - time.monotonic(), 1))
    for i, f in futures:
        try:
            md = f.get(timeout=max(deadline - time.monotonic(), 0.1))
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed.append("record %d: %r" % (i, e))
            continue
        acked[0] += 1
        out({"kind": "ack", "i": i, "partition": md.partition, "offset": md.offset})
    p.close()
    return acked[0], failed


def consume(bootstrap, topic, group, partitions, want, deadline):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      client_id="shale-interop-kafka-python")
    got, errors = 0, []
    digest = hashlib.sha256()
    eof = []
    while time.monotonic() < deadline:
        batches = c.poll(timeout_ms=500)
        for tp, msgs in batches.items():
            for msg in msgs:
                key = msg.key.decode() if msg.key is not None else None
                value = msg.value.decode() if msg.value is not None else None
                headers = [[k, v.decode() if v is not None else None] for k, v in (msg.headers or [])]
                rec = {"kind": "record", "partition": msg.partition, "offset": msg.offset,
                       "key": key, "value": value, "headers": headers, "timestamp": msg.timestamp,
                       "tstype": msg.timestamp_type}
                digest.update(json.dumps([rec["partition"], rec["offset"], key, value, headers, msg.timestamp],
                                         separators=(",", ":")).encode())
                digest.update(b"\n")
                out(rec)
                got += 1
        assigned = c.assignment()
        if got >= want and len(assigned) == partitions:
            ends = c.end_offsets(list(assigned))
            eof = sorted(tp.partition for tp in assigned if c.position(tp) >= ends[tp])
            if len(eof) == partitions:
                break
    committed = {}
    try:
        c.commit()
        for tp in sorted(c.assignment()):
            committed[str(tp.partition)] = c.committed(tp)
    except Exception as e:  # noqa: BLE001
        errors.append("commit: %r" % e)
    c.close()
    return got, eof, errors, digest.hexdigest(), committed


def main():
    produce_bs = os.environ["SHALE_PRODUCE_BOOTSTRAP"]
    consume_bs = os.environ["SHALE_CONSUME_BOOTSTRAP"]
    topic = os.environ["SHALE_TOPIC"]
    count = int(os.environ["SHALE_COUNT"])
    partitions = int(os.environ["SHALE_PARTITIONS"])
    src = os.environ.get("SHALE_SRC", "kafka-python")
    group = os.environ.get("SHALE_GROUP", "kafka-python")
    timeout = float(os.environ.get("SHALE_READ_TIMEOUT", "30"))

    acked, failed = produce(produce_bs, topic, count, src, time.monotonic() + timeout)
    for f in failed[:5]:
        print("produce failure: " + f, file=sys.stderr)
    consumed, eof, errors, sha, committed = consume(consume_bs, topic, group, partitions, acked,
                                                    time.monotonic() + timeout)
    out({"kind": "summary", "produced": count, "acked": acked, "failed": len(failed),
         "consumed": consumed, "eof_partitions": eof, "errors": errors[:5],
         "sha256": sha, "committed": committed})


if __name__ == "__main__":
    main()
