// Package cost estimates what a cluster's bucket costs: `shale cost`
// gathers the inputs (etcd's index, a bucket listing, the agents'
// /metrics) and this package, pure functions over them, prices them.
//
// Choices (tested in cost_test.go):
//
//   - Bucket bytes come from the listing, not the index: object headers,
//     footers and bytes no entry covers cost money too. An object holding
//     several topics' chunks is split among them in proportion to the
//     bytes each references; objects no entry references (uploads never
//     committed or still in flight, data replaced by compaction or dropped by retention,
//     awaiting garbage collection) are counted apart as garbage.
//   - Requests: s3_requests_total has no topic label, so a topic's PUTs
//     and GETs per day are the cluster's times its share of referenced
//     bucket bytes, an estimate. PUT-class is put+list, GET-class get+head;
//     deletes are free. A rate is either the average since each agent's
//     process started (counters / uptime, the default) or the increase
//     over a sampling window. A month is 30 days; a GB is 2^30 bytes.
//   - Egress (optional) prices the record bytes agents returned to
//     consumers (bytes_out_total): what leaves the region when consumers
//     or agents sit outside it. Within a region S3 transfer to EC2 is free.
//   - What compaction and retention save: etcd records the index keys now
//     (compacted segments among them) and the offsets below each log
//     start (dropped by retention or DeleteRecords); the bytes dropped and
//     the index keys before compaction are not recorded there.
package cost
