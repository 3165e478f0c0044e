"""Helpers shared by the interop scripts in this directory (each script runs
as `python3 tests/python/<script>.py`, so this directory is on sys.path)."""

import json
import sys


def out(obj):
    """Writes obj as one JSON line on stdout, flushed (the Go test reads
    the lines as they come)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def wait_all(futures):
    """Returns {key: error string or None} for a dict of futures."""
    res = {}
    for k, f in futures.items():
        try:
            f.result(timeout=30)
            res[str(k)] = None
        except Exception as e:  # noqa: BLE001 - reported to the test
            res[str(k)] = str(e)
    return res
