#!/usr/bin/python3
"""An admin session through shale with confluent-kafka's AdminClient
(librdkafka), driven by tests/interop (TestPythonAdminSession).

Through SHALE_PRODUCE_BOOTSTRAP (agent A): creates SHALE_TOPIC with
compression.type=zstd, alters it to lz4 and describes it; produces
SHALE_COUNT records with each of an lz4, a gzip and an uncompressed
producer; creates a topic with the deprecated message.format.version;
makes three groups: one never used, one whose consumer left, one made only
by committing offsets (a "simple" group), and lists them. Through
SHALE_CONSUME_BOOTSTRAP (agent B): reads the records back with assign().
Prints one JSON line per observation ({"kind": ...}); the Go test asserts.
Bounded by SHALE_READ_TIMEOUT seconds per wait.
"""

import os
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from shale_common import out, wait_all


def describe(admin, topic, names):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(timeout=30)
    return {n: {"value": configs[n].value, "source": int(configs[n].source)} for n in names if n in configs}


def main():
    bs = os.environ["SHALE_PRODUCE_BOOTSTRAP"]
    cbs = os.environ["SHALE_CONSUME_BOOTSTRAP"]
    topic = os.environ["SHALE_TOPIC"]
    count = int(os.environ["SHALE_COUNT"])
    timeout = float(os.environ.get("SHALE_READ_TIMEOUT", "30"))
    admin = AdminClient({"bootstrap.servers": bs, "client.id": "shale-interop-python-admin"})

    # compression.type: create zstd, alter to lz4, describe.
    created = wait_all(admin.create_topics([NewTopic(topic, 1, 1, config={"compression.type": "zstd"})]))
    out({"kind": "create", "errors": created, "configs": describe(admin, topic, ["compression.type"])})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"compression.type": "lz4"})
    altered = wait_all(admin.alter_configs([res]))
    out({"kind": "alter", "errors": altered, "configs": describe(admin, topic, ["compression.type", "compression.lz4.level"])})
    time.sleep(1.5)  # agents cache topic configs for a second

    # Records from lz4, gzip and uncompressed producers, in that order.
    values = []
    for codec in ["lz4", "gzip", "none"]:
        p = Producer({"bootstrap.servers": bs, "compression.codec": codec, "linger.ms": 20,
                      "enable.idempotence": True, "client.id": "shale-interop-python-" + codec})
        failed = []
        for i in range(count):
            v = "%s-%d %s" % (codec, i, "compressible " * 8)
            values.append(v)
            p.produce(topic, value=v.encode(), key=codec.encode(), partition=0,
                      on_delivery=lambda err, _m: failed.append(str(err)) if err else None)
        left = p.flush(timeout)
        out({"kind": "produced", "codec": codec, "failed": failed, "unflushed": left})

    c = Consumer({"bootstrap.servers": cbs, "group.id": "unused-" + topic, "enable.auto.commit": False,
                  "enable.partition.eof": True, "client.id": "shale-interop-python-admin-read"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, errors = [], []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < len(values):
        for m in c.consume(num_messages=500, timeout=0.5):
            if m.error():
                if m.error().code() != -191:  # _PARTITION_EOF
                    errors.append(str(m.error()))
                continue
            got.append(m.value().decode())
    c.close()
    out({"kind": "read", "match": got == values, "read": len(got), "want": len(values), "errors": errors})

    # A deprecated config Kafka 3.x accepts and ignores.
    old = topic + "-old"
    created = wait_all(admin.create_topics([NewTopic(old, 1, 1, config={"message.format.version": "0.10.0"})]))
    out({"kind": "deprecated", "errors": created, "configs": describe(admin, old, ["message.format.version"])})

    # Groups: never used, members left, simple.
    left, simple = topic + "-left", topic + "-simple"
    c = Consumer({"bootstrap.servers": bs, "group.id": left, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "client.id": "shale-interop-python-left"})
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline and n == 0:
        n = len([m for m in c.consume(num_messages=10, timeout=0.5) if not m.error()])
    c.commit(asynchronous=False)
    c.close()
    c = Consumer({"bootstrap.servers": bs, "group.id": simple, "client.id": "shale-interop-python-simple"})
    c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    c.close()
    groups = {}
    for g in [topic + "-never", left, simple]:
        try:
            for md in admin.list_groups(group=g, timeout=30):
                if md.id == g:
                    groups[g] = {"state": md.state, "protocol_type": md.protocol_type,
                                 "error": str(md.error) if md.error else None}
        except KafkaException as e:
            groups[g] = {"error": str(e)}
    listed = {md.id: {"state": md.state, "protocol_type": md.protocol_type}
              for md in admin.list_groups(timeout=30) if md.id in (left, simple, topic + "-never")}
    out({"kind": "groups", "described": groups, "listed": listed, "consumed": n})
    out({"kind": "summary"})


if __name__ == "__main__":
    main()
