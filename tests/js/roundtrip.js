// The kafkajs round trip through shale, driven by tests/interop
// (TestKafkaJSRoundTrip).
//
// Produces SHALE_COUNT keyed records with headers and explicit timestamps
// to SHALE_TOPIC through SHALE_PRODUCE_BOOTSTRAP with kafkajs's idempotent
// producer (acks=all, gzip), then asks kafkajs's admin, through
// SHALE_CONSUME_BOOTSTRAP, for the topic's offsets, and reads every record
// back through it with a kafkajs consumer (in a group: kafkajs has no other
// kind), printing a {"kind":"record"} line per record for the Go test to
// check.
//
// Partitions are chosen by kafkajs's DefaultPartitioner (Java-compatible
// murmur2 of the key), called here so that each record's acknowledged offset
// is known: within one send(), a partition's records get consecutive
// offsets from the baseOffset its response names.
//
// Prints JSON lines on stdout: one {"kind":"ack"} per acknowledged record,
// then one {"kind":"summary"}. Diagnostics go to stderr. Bounded by
// SHALE_READ_TIMEOUT seconds.
//
// Record i (the scheme every client follows): key "key-%05d", value
// "value-%05d-" + "x" * (i % 61), headers idx=<i> and src=<SHALE_SRC>,
// timestamp 1_700_000_000_000 + i ms.
'use strict'

const { Kafka, logLevel, CompressionTypes, Partitioners } = require('kafkajs')

const BASE_TS = 1700000000000
const BATCH = 500

const env = (name) => {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set`)
  return v
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const pad5 = (i) => String(i).padStart(5, '0')

function record (i, src) {
  return {
    key: `key-${pad5(i)}`,
    value: `value-${pad5(i)}-` + 'x'.repeat(i % 61),
    headers: { idx: String(i), src },
    timestamp: String(BASE_TS + i)
  }
}

async function main () {
  const produceBS = env('SHALE_PRODUCE_BOOTSTRAP')
  const consumeBS = env('SHALE_CONSUME_BOOTSTRAP')
  const topic = env('SHALE_TOPIC')
  const count = parseInt(env('SHALE_COUNT'), 10)
  const src = process.env.SHALE_SRC || 'kafkajs'
  const timeout = parseFloat(process.env.SHALE_READ_TIMEOUT || '30')
  setTimeout(() => {
    process.stderr.write(`roundtrip.js: not done within ${timeout}s\n`)
    process.exit(3)
  }, timeout * 1000).unref()

  const common = {
    clientId: 'shale-interop-js',
    logLevel: logLevel.WARN,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 5 }
  }
  const errors = []
  let acked = 0
  let failed = 0

  const kafka = new Kafka({ ...common, brokers: [produceBS] })
  const admin = kafka.admin()
  await admin.connect()
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  await admin.disconnect()
  const partitionMetadata = md.topics[0].partitions
  const partitioner = Partitioners.DefaultPartitioner()

  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    // Unlimited retries, as an idempotent producer wants; the timeout above
    // bounds the run.
    retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5000 }
  })
  await producer.connect()
  for (let start = 0; start < count; start += BATCH) {
    const batch = []
    for (let i = start; i < Math.min(start + BATCH, count); i++) {
      const m = record(i, src)
      m.partition = partitioner({ topic, partitionMetadata, message: m })
      batch.push({ i, m })
    }
    try {
      const res = await producer.send({
        topic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: batch.map((b) => b.m)
      })
      const base = new Map(res.map((r) => [r.partition, BigInt(r.baseOffset)]))
      const next = new Map()
      for (const { i, m } of batch) {
        if (!base.has(m.partition)) {
          failed++
          errors.push(`record ${i}: no result for partition ${m.partition}`)
          continue
        }
        const k = next.get(m.partition) || 0n
        next.set(m.partition, k + 1n)
        out({ kind: 'ack', i, partition: m.partition, offset: Number(base.get(m.partition) + k) })
        acked++
      }
    } catch (err) {
      failed += batch.length
      errors.push(`send records ${start}..${start + batch.length - 1}: ${err.message}`)
      process.stderr.write(`send: ${err.stack}\n`)
    }
  }
  await producer.disconnect()

  const kafkaB = new Kafka({ ...common, brokers: [consumeBS] })
  const adminB = kafkaB.admin()
  await adminB.connect()
  const offsets = await adminB.fetchTopicOffsets(topic)
  await adminB.disconnect()
  const hw = {}
  for (const o of offsets) hw[String(o.partition)] = parseInt(o.high, 10)

  // Read everything back through agent B with a kafkajs consumer (kafkajs
  // has no consumer without a group; shale coordinates the group).
  const consumed = await consumeAll(kafkaB, topic, acked, errors)

  out({ kind: 'summary', produced: count, acked, failed, consumed, errors: errors.slice(0, 5), high_watermarks: hw })
}

// consumeAll reads want records from the beginning and prints a
// {"kind":"record"} line per record, in the order kafkajs delivers them
// (per partition, offset order).
async function consumeAll (kafka, topic, want, errors) {
  const consumer = kafka.consumer({ groupId: `${topic}-roundtrip`, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let got = 0
  await new Promise((resolve, reject) => {
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const headers = Object.entries(message.headers || {}).map(([k, v]) => [k, v === null || v === undefined ? null : v.toString()])
        out({
          kind: 'record',
          partition,
          offset: parseInt(message.offset, 10),
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString(),
          headers,
          timestamp: parseInt(message.timestamp, 10)
        })
        got++
        if (got >= want) resolve()
      }
    }).catch(reject)
  })
  await consumer.disconnect().catch((err) => errors.push(`consumer disconnect: ${err.message}`))
  return got
}

main().catch((err) => {
  process.stderr.write(`roundtrip.js: ${err.stack}\n`)
  process.exit(1)
})
