// Package auth is shale's authentication and authorization logic, free of
// I/O: SCRAM-SHA-256/512 credentials and the server side of a SCRAM
// conversation (RFC 5802, RFC 7677), SASL/PLAIN checked against a stored
// SCRAM-SHA-256 credential (no password is ever stored), and Kafka-style
// ACLs (literal and prefixed patterns, allow/deny with deny winning).
//
// The agent (package agent) wires these to the Kafka protocol and the
// metastore keeps credentials and ACLs in etcd.
//
// # Invariants
//
//   - A Credential holds salt, iterations, StoredKey and ServerKey only.
//     StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
//     HMAC(SaltedPassword, "Server Key"); neither lets anyone log in
//     without the password (a stolen StoredKey cannot forge a proof).
//   - Unknown users follow the same code path as known ones: FakeCredential
//     derives a per-user salt and keys from a per-process secret, so the
//     server-first message and the time to fail do not reveal whether the
//     user exists. Every comparison of secrets is constant-time.
//   - Parsers never panic and bound what they accept (MaxMessageBytes).
//
// # Errors
//
// ErrAuthFailed is the only error a failed login reports to the client
// (wrong password, unknown user, bad proof, bad nonce); ErrMalformed
// wraps a message that does not parse.
package auth
