"""librdkafka producer load for `make bench` (run by bench/rdkafka.go).

Usage: rdkafka_produce.py BOOTSTRAP TOPIC RATE DURATION SIZE [idempotent]
Offers RATE records/s (open loop: latency counts from each record's
intended send time) of SIZE bytes (half random) to TOPIC for DURATION
seconds with acks=all through confluent-kafka (librdkafka), then prints one
JSON line: records acknowledged, errors, latency percentiles in ms.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    rate, duration, size = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    idempotent = len(sys.argv) > 6 and sys.argv[6] == "idempotent"
    value = os.urandom(size // 2) + bytes(size - size // 2)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": idempotent,
                  "linger.ms": 5, "queue.buffering.max.messages": 1000000})
    lat, errors = [], [0]

    def done(err, _msg, t0):
        if err is not None:
            errors[0] += 1
        else:
            lat.append(time.monotonic() - t0)

    start = time.monotonic()
    i = 0
    while True:
        t0 = start + i / rate
        now = time.monotonic()
        if t0 - start >= duration:
            break
        if t0 > now:
            p.poll(t0 - now)
            continue
        p.produce(topic, value, on_delivery=lambda err, msg, t0=t0: done(err, msg, t0))
        i += 1
        p.poll(0)
    p.flush(60)
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else -1

    print(json.dumps({"records": len(lat), "errors": errors[0], "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                      "p999_ms": pct(0.999), "seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main()
