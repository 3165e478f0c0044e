#!/usr/bin/python3
"""Topic configs of compacted topics through confluent-kafka's AdminClient
(librdkafka), driven by tests/interop (TestPythonCompactedTopicConfigs).

Through SHALE_PRODUCE_BOOTSTRAP (agent A): creates SHALE_TOPIC as Kafka
Connect creates its offsets topic (cleanup.policy=compact and the
compaction configs); produces a keyed record and a keyless one; alters it
to compact,delete; sets min.cleanable.dirty.ratio out of range. Through
SHALE_CONSUME_BOOTSTRAP (agent B): describes it. Prints one JSON line per
observation ({"kind": ...}); the Go test asserts.
"""

import os

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from shale_common import out, wait_all

CONFIGS = {
    "min.compaction.lag.ms": "1000",
    "max.compaction.lag.ms": "604800000",
    "delete.retention.ms": "3600000",
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": "3600000",
    "segment.bytes": "104857600",
    "min.insync.replicas": "1",
}


def main():
    topic = os.environ["SHALE_TOPIC"]
    a = AdminClient({"bootstrap.servers": os.environ["SHALE_PRODUCE_BOOTSTRAP"], "client.id": "shale-py-compact-a"})
    b = AdminClient({"bootstrap.servers": os.environ["SHALE_CONSUME_BOOTSTRAP"], "client.id": "shale-py-compact-b"})

    connect = dict(CONFIGS, **{"cleanup.policy": "compact"})
    out({"kind": "create-compact", "errors": wait_all(a.create_topics([NewTopic(topic, 1, 1, config=connect)]))})

    p = Producer({"bootstrap.servers": os.environ["SHALE_PRODUCE_BOOTSTRAP"], "client.id": "shale-py-compact-p",
                  "enable.idempotence": True, "message.send.max.retries": 2})
    results = {}

    def done(name):
        return lambda err, _m: results.__setitem__(name, str(err) if err else None)

    p.produce(topic, key=b"connector-1", value=b"{}", partition=0, on_delivery=done("keyed"))
    p.flush(30)
    p.produce(topic, value=b"no key", partition=0, on_delivery=done("keyless"))
    p.flush(30)
    out({"kind": "produce", "errors": results})

    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config=dict(connect, **{"cleanup.policy": "compact,delete"}))
    out({"kind": "alter-compact-delete", "errors": wait_all(a.alter_configs([res]))})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config=dict(connect, **{"min.cleanable.dirty.ratio": "1.5"}))
    out({"kind": "alter-ratio", "errors": wait_all(a.alter_configs([res]))})

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = b.describe_configs([res])[res].result(timeout=30)
    names = list(CONFIGS) + ["cleanup.policy"]
    out({"kind": "describe", "configs": {n: {"value": configs[n].value, "source": int(configs[n].source)}
                                         for n in names if n in configs}})
    out({"kind": "summary"})


if __name__ == "__main__":
    main()
