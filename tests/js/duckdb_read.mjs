// Reads Parquet data files of a shale Iceberg table (key_value mode) with
// DuckDB, an independent Parquet reader, and prints one JSON object per row,
// ordered by partition and offset:
//   {"p": partition, "o": offset, "t": timestamp in Unix ms,
//    "k": key as hex or null, "v": value as hex or null,
//    "h": [{"k": header key, "v": header value as hex or null}, ...]}
// Usage: node duckdb_read.mjs FILE.parquet... (no network: parquet and json
// are built into DuckDB's Node bindings; extension downloads are disabled).
import { DuckDBInstance } from '@duckdb/node-api';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node duckdb_read.mjs FILE.parquet...');
  process.exit(2);
}
const instance = await DuckDBInstance.create(':memory:', {
  autoinstall_known_extensions: 'false',
  autoload_known_extensions: 'false',
});
const conn = await instance.connect();
const list = '[' + files.map((f) => "'" + f.replaceAll("'", "''") + "'").join(', ') + ']';
const reader = await conn.runAndReadAll(`
  SELECT to_json({p: "partition", o: "offset", t: epoch_ms("timestamp"),
                  k: hex("key"), v: hex("value"),
                  h: list_transform("headers", x -> {k: x."key", v: hex(x."value")})})::VARCHAR
  FROM read_parquet(${list})
  ORDER BY "partition", "offset"`);
const out = reader.getRows().map((r) => r[0]).join('\n');
process.stdout.write(out + (out ? '\n' : ''));
