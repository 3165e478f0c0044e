// Consumer-group half of the kafkajs round trip through shale, driven by
// tests/interop (TestKafkaJSConsumerGroup).
//
// Joins group SHALE_GROUP through SHALE_CONSUME_BOOTSTRAP with a kafkajs
// consumer (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit),
// subscribes to SHALE_TOPIC from the beginning and reads until SHALE_COUNT
// distinct records were seen, committing after each batch; then disconnects
// (LeaveGroup) and reads the group's committed offsets with the admin
// client. Prints JSON lines on stdout: one {"kind":"record"} per record and
// one {"kind":"summary"}. Bounded by SHALE_READ_TIMEOUT seconds.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const env = (name) => {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set`)
  return v
}
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main () {
  const bs = env('SHALE_CONSUME_BOOTSTRAP')
  const topic = env('SHALE_TOPIC')
  const group = env('SHALE_GROUP')
  const count = parseInt(env('SHALE_COUNT'), 10)
  const timeout = parseFloat(process.env.SHALE_READ_TIMEOUT || '30')
  setTimeout(() => {
    process.stderr.write(`group.js: not done within ${timeout}s\n`)
    process.exit(3)
  }, timeout * 1000).unref()

  const kafka = new Kafka({ clientId: 'shale-interop-js-group', brokers: [bs], logLevel: logLevel.WARN, retry: { retries: 5 } })
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 10000 })
  const errors = []
  const seen = new Set()
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const m of batch.messages) {
        seen.add(`${batch.partition}/${m.offset}`)
        out({ kind: 'record', partition: batch.partition, offset: Number(m.offset), key: m.key ? m.key.toString() : null })
        resolveOffset(m.offset)
      }
      if (batch.messages.length > 0) {
        const next = (BigInt(batch.messages[batch.messages.length - 1].offset) + 1n).toString()
        try {
          await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }])
        } catch (err) {
          errors.push(`commit: ${err.message}`)
        }
      }
      await heartbeat()
      if (seen.size >= count) resolveDone()
    }
  })
  await done
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const fetched = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  const committed = {}
  for (const t of fetched) {
    for (const p of t.partitions) committed[String(p.partition)] = parseInt(p.offset, 10)
  }
  out({ kind: 'summary', consumed: seen.size, errors: errors.slice(0, 5), committed })
}

main().catch((err) => {
  process.stderr.write(`group.js: ${err.stack}\n`)
  process.exit(1)
})
