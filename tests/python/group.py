#!/usr/bin/python3
"""Consumer group through shale with confluent-kafka (librdkafka), driven by
tests/interop (TestPythonConsumerGroup).

Subscribes to SHALE_TOPIC in group SHALE_GROUP through SHALE_CONSUME_BOOTSTRAP
(broker-side coordinator: FindCoordinator, JoinGroup, SyncGroup, Heartbeat),
reads until SHALE_COUNT distinct records were seen, committing synchronously
after each message batch, then closes (LeaveGroup). Prints JSON lines on
stdout: {"kind":"record"} per consumed record, then one {"kind":"summary"}
with the offsets the group committed (read back with committed()). Bounded
by SHALE_READ_TIMEOUT seconds.
"""

import os
import time

from confluent_kafka import Consumer, TopicPartition

from shale_common import out


def main():
    bs = os.environ["SHALE_CONSUME_BOOTSTRAP"]
    topic = os.environ["SHALE_TOPIC"]
    group = os.environ["SHALE_GROUP"]
    count = int(os.environ["SHALE_COUNT"])
    partitions = int(os.environ["SHALE_PARTITIONS"])
    deadline = time.monotonic() + float(os.environ.get("SHALE_READ_TIMEOUT", "30"))
    c = Consumer({
        "bootstrap.servers": bs,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "client.id": "shale-interop-python-group",
    })
    c.subscribe([topic])
    seen, errors = set(), []
    while time.monotonic() < deadline and len(seen) < count:
        msgs = c.consume(num_messages=500, timeout=0.5)
        for m in msgs:
            if m.error():
                errors.append(str(m.error()))
                continue
            seen.add((m.partition(), m.offset()))
            out({"kind": "record", "partition": m.partition(), "offset": m.offset(),
                 "key": m.key().decode() if m.key() is not None else None})
        if msgs:
            try:
                c.commit(asynchronous=False)
            except Exception as e:  # noqa: BLE001 - reported to the test
                errors.append("commit: %s" % e)
    committed = {}
    try:
        for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10):
            committed[str(tp.partition)] = tp.offset
    except Exception as e:  # noqa: BLE001
        errors.append("committed: %s" % e)
    c.close()
    out({"kind": "summary", "consumed": len(seen), "errors": errors[:5], "committed": committed})


if __name__ == "__main__":
    main()
