#!/usr/bin/python3
"""Transactions through shale with confluent-kafka (librdkafka), driven by
tests/interop (TestPythonTransactions).

Through SHALE_PRODUCE_BOOTSTRAP, a transactional producer (transactional.id
SHALE_TXN_ID) commits SHALE_COUNT records "c1-<i>", aborts as many "a-<i>",
commits as many "c2-<i>". A second producer with the same transactional.id
then initializes, which fences the first: the first's next transaction
must fail as fenced. The second commits "c3-<i>".

Then, through SHALE_CONSUME_BOOTSTRAP, a read_committed and a
read_uncommitted consumer read every partition of SHALE_TOPIC from the
beginning (assign(), no group) until each partition reports its end.

Prints one JSON line on stdout: {"committed": [...], "uncommitted": [...]}
(values with partition and offset, in read order per partition),
"fenced": the error the first producer got (null if none), "fenced_fatal",
and "errors". Diagnostics go to stderr. Every wait is bounded by
SHALE_READ_TIMEOUT seconds.
"""

import json
import os
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)


def producer(bootstrap, txn_id):
    return Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
        "client.id": "shale-interop-python-txn",
    })


def txn(p, topic, prefix, count, commit, timeout):
    p.begin_transaction()
    for i in range(count):
        p.produce(topic, key="k-%d" % i, value="%s-%d" % (prefix, i))
        p.poll(0)
    if commit:
        p.commit_transaction(timeout)
    else:
        p.flush(timeout)  # the records reach the log before the abort
        p.abort_transaction(timeout)


def consume(bootstrap, topic, partitions, isolation, deadline):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "shale-interop-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "client.id": "shale-interop-python-txn",
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, eof, errors = [], set(), []
    while time.monotonic() < deadline and len(eof) < partitions:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
            else:
                errors.append(str(msg.error()))
            continue
        eof.discard(msg.partition())
        got.append({"partition": msg.partition(), "offset": msg.offset(),
                    "value": msg.value().decode()})
    c.close()
    if len(eof) < partitions:
        errors.append("%s: end of partition reached for %d of %d partitions" % (isolation, len(eof), partitions))
    return got, errors


def main():
    produce_bs = os.environ["SHALE_PRODUCE_BOOTSTRAP"]
    consume_bs = os.environ["SHALE_CONSUME_BOOTSTRAP"]
    topic = os.environ["SHALE_TOPIC"]
    count = int(os.environ["SHALE_COUNT"])
    partitions = int(os.environ["SHALE_PARTITIONS"])
    txn_id = os.environ["SHALE_TXN_ID"]
    timeout = float(os.environ.get("SHALE_READ_TIMEOUT", "30"))
    errors = []

    p1 = producer(produce_bs, txn_id)
    p1.init_transactions(timeout)
    txn(p1, topic, "c1", count, True, timeout)
    txn(p1, topic, "a", count, False, timeout)
    txn(p1, topic, "c2", count, True, timeout)

    p2 = producer(produce_bs, txn_id)
    p2.init_transactions(timeout)
    fenced, fatal = None, False
    try:
        txn(p1, topic, "zombie", count, True, timeout)
        errors.append("the fenced producer committed a transaction")
    except KafkaException as e:
        fenced, fatal = str(e.args[0]), e.args[0].fatal()
    txn(p2, topic, "c3", count, True, timeout)
    p2.flush(timeout)

    committed, errs = consume(consume_bs, topic, partitions, "read_committed", time.monotonic() + timeout)
    errors += errs
    uncommitted, errs = consume(consume_bs, topic, partitions, "read_uncommitted", time.monotonic() + timeout)
    errors += errs
    sys.stdout.write(json.dumps({"committed": committed, "uncommitted": uncommitted,
                                 "fenced": fenced, "fenced_fatal": fatal,
                                 "errors": errors[:10]}) + "\n")


if __name__ == "__main__":
    main()
