// Reads Parquet data files of a shale Iceberg table with DuckDB, an
// independent Parquet reader, and prints one JSON object per row, ordered
// by partition and offset:
//   {"p": partition, "o": offset, "t": timestamp in Unix ms,
//    "k": key as hex or null, "v": value as hex or null,
//    "h": [{"k": header key, "v": header value as hex or null}, ...]}
// With --json first (a json mode table: _partition, _offset, _timestamp,
// _key, _raw, _headers and value columns), "v" is _raw and "c" is an
// object of every other column (null when the row has none; files
// without a newer column read it as null: union_by_name).
// Usage: node duckdb_read.mjs [--json] FILE.parquet... (no network: parquet
// and json are built into DuckDB's Node bindings; extension downloads are
// disabled).
import { DuckDBInstance } from '@duckdb/node-api';

let files = process.argv.slice(2);
const jsonMode = files[0] === '--json';
if (jsonMode) files = files.slice(1);
if (files.length === 0) {
  console.error('usage: node duckdb_read.mjs [--json] FILE.parquet...');
  process.exit(2);
}
const instance = await DuckDBInstance.create(':memory:', {
  autoinstall_known_extensions: 'false',
  autoload_known_extensions: 'false',
});
const conn = await instance.connect();
const list = '[' + files.map((f) => "'" + f.replaceAll("'", "''") + "'").join(', ') + ']';
const ident = (n) => '"' + n.replaceAll('"', '""') + '"';
const str = (s) => "'" + s.replaceAll("'", "''") + "'";
let sql;
if (jsonMode) {
  const src = `read_parquet(${list}, union_by_name = true)`;
  const desc = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`);
  const meta = new Set(['_partition', '_offset', '_timestamp', '_key', '_raw', '_headers']);
  const cols = desc.getRows().map((r) => r[0]).filter((n) => !meta.has(n));
  const obj = cols.length ? 'json_object(' + cols.map((n) => `${str(n)}, ${ident(n)}`).join(', ') + ')' : 'NULL';
  sql = `
  SELECT to_json({p: "_partition", o: "_offset", t: epoch_ms("_timestamp"),
                  k: hex("_key"), v: hex("_raw"),
                  h: list_transform("_headers", x -> {k: x."key", v: hex(x."value")}),
                  c: ${obj}})::VARCHAR
  FROM ${src}
  ORDER BY "_partition", "_offset"`;
} else {
  sql = `
  SELECT to_json({p: "partition", o: "offset", t: epoch_ms("timestamp"),
                  k: hex("key"), v: hex("value"),
                  h: list_transform("headers", x -> {k: x."key", v: hex(x."value")})})::VARCHAR
  FROM read_parquet(${list})
  ORDER BY "partition", "offset"`;
}
const reader = await conn.runAndReadAll(sql);
const out = reader.getRows().map((r) => r[0]).join('\n');
process.stdout.write(out + (out ? '\n' : ''));
