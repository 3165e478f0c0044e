// Package assignor holds the server-side partition assignors of KIP-848
// consumer groups: "uniform" (Kafka's default, sticky: a partition stays
// with its member unless balance or subscriptions require a move) and
// "range" (per topic, contiguous ranges to the subscribed members in
// order, as Kafka's RangeAssignor). Pure logic, no I/O: the group
// coordinator (package agent, consumer_group*.go) resolves subscriptions
// to topics and hands this package the members and topics; this package
// returns each member's target assignment.
//
// Both assignors are deterministic: the same input gives the same output,
// whatever the order of members and topics given. Every partition of a
// topic that at least one member subscribes to is assigned to exactly one
// member subscribed to it.
//
// Balance: uniform gives every member, among the members subscribed to the
// same topics, floor(N/M) or floor(N/M)+1 partitions when all members
// subscribe to the same topics; with differing subscriptions it gives each
// partition to the least loaded member subscribed to its topic (Kafka's
// uniform assignor balances heterogeneous subscriptions further; shale's
// does not move partitions for that).
package assignor
