"""confluent-kafka (librdkafka) over SASL_SSL against shale, driven by
cli/security_test.go (TestPythonSCRAMOverTLS).

argv: bootstrap, CA file, mechanism, username, password, topic, count.
Produces `count` records (acks=all) to partition 0, then reads them back with
assign() from the beginning, and prints one JSON line:
{"acked": N, "consumed": N, "values_ok": bool, "error": "..."}.
A refused login ends with "error" set and exit code 1.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main():
    bootstrap, ca, mech, user, password, topic, count = sys.argv[1:8]
    count = int(count)
    common = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": mech,
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": ca,
    }
    result = {"acked": 0, "consumed": 0, "values_ok": False, "error": ""}
    errors = []

    def on_error(err):
        errors.append(str(err))

    p = Producer(dict(common, **{"acks": "all", "error_cb": on_error, "message.timeout.ms": 15000}))
    acked = []

    def delivered(err, msg):
        if err is None:
            acked.append(msg.offset())
        else:
            errors.append(str(err))

    for i in range(count):
        p.produce(topic, value=("value-%d" % i).encode(), partition=0, on_delivery=delivered)
        p.poll(0)
    p.flush(20)
    result["acked"] = len(acked)
    if len(acked) != count:
        result["error"] = "; ".join(errors[:3]) or "not every record acknowledged"
        print(json.dumps(result))
        return 1

    c = Consumer(dict(common, **{"group.id": "unused", "enable.auto.commit": False,
                                 "enable.partition.eof": True, "error_cb": on_error}))
    c.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.monotonic() + 20
    while len(values) < count and time.monotonic() < deadline:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        values.append(msg.value().decode())
    c.close()
    result["consumed"] = len(values)
    result["values_ok"] = values == ["value-%d" % i for i in range(count)]
    print(json.dumps(result))
    return 0 if result["values_ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        print(json.dumps({"acked": 0, "consumed": 0, "values_ok": False, "error": str(e)}))
        sys.exit(1)
