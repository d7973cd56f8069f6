#!/usr/bin/python3
"""Checks the golden vectors in schemas/golden with an independent msgpack implementation.

For every <name>.msgpack and its <name>.json twin:
  1. the msgpack bytes decode to exactly the JSON twin (bin as {"$bin": base64}), with
     types compared strictly: an int is not a float and a bool is not an int;
  2. packing the JSON twin back (with {"$bin"} as bytes, str as str) gives the .msgpack
     bytes byte for byte, which proves the encoding is canonical msgpack that any
     implementation following PROTOCOL.md can reproduce.

Usage: test_golden.py [GOLDEN_DIR]   (default: schemas/golden beside this checkout)
Exits 0 when every vector passes, 1 otherwise.
"""
import base64
import json
import pathlib
import sys

import msgpack

DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "golden"
EVENT_KINDS_MIN = 21
COMMAND_KINDS_MIN = 6


def to_json_model(value):
    """msgpack value -> the JSON twin's model: bytes become {"$bin": base64}."""
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {key: to_json_model(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json_model(item) for item in value]
    return value


def from_json_model(value):
    """JSON twin -> msgpack value: {"$bin": base64} becomes bytes."""
    if isinstance(value, dict):
        if list(value.keys()) == ["$bin"]:
            return base64.b64decode(value["$bin"], validate=True)
        return {key: from_json_model(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json_model(item) for item in value]
    return value


def strict_diff(left, right, path="$"):
    """First difference between two JSON models, comparing types and key order; None if equal."""
    if type(left) is not type(right):
        return f"{path}: {type(left).__name__} {left!r} != {type(right).__name__} {right!r}"
    if isinstance(left, dict):
        if list(left.keys()) != list(right.keys()):
            return f"{path}: keys {list(left.keys())} != {list(right.keys())}"
        for key in left:
            found = strict_diff(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list):
        if len(left) != len(right):
            return f"{path}: length {len(left)} != {len(right)}"
        for index, (a, b) in enumerate(zip(left, right)):
            found = strict_diff(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    if left != right:
        return f"{path}: {left!r} != {right!r}"
    return None


def check_vector(msgpack_path):
    """Returns a list of failure messages for one vector (empty when it passes)."""
    failures = []
    json_path = msgpack_path.with_suffix(".json")
    if not json_path.exists():
        return [f"missing JSON twin {json_path.name}"]
    raw = msgpack_path.read_bytes()
    with json_path.open(encoding="utf-8") as handle:
        twin = json.load(handle)

    decoded = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    difference = strict_diff(to_json_model(decoded), twin)
    if difference:
        failures.append(f"msgpack does not match its JSON twin: {difference}")

    prefix, _, kind = msgpack_path.stem.partition(".")
    if decoded.get("kind") != kind:
        failures.append(f"file names kind {kind!r} but the message says {decoded.get('kind')!r}")
    if decoded.get("v") != 1:
        failures.append(f"v is {decoded.get('v')!r}, want 1")
    expected_keys = {
        "event": ["v", "kind", "node", "incarnation", "seq", "ts_ms", "episode", "data"],
        "command": ["v", "kind", "id", "node", "ts_ms", "episode", "data"],
    }.get(prefix)
    if expected_keys is None:
        failures.append(f"file name prefix {prefix!r} is neither 'event' nor 'command'")
    elif list(decoded.keys()) != expected_keys:
        failures.append(f"envelope keys {list(decoded.keys())} != {expected_keys}")

    repacked = msgpack.packb(from_json_model(twin), use_bin_type=True)
    if repacked != raw:
        at = next((i for i, (a, b) in enumerate(zip(repacked, raw)) if a != b),
                  min(len(repacked), len(raw)))
        failures.append(f"JSON twin packs to different bytes (first difference at offset {at}, "
                        f"{len(repacked)} vs {len(raw)} bytes)")
    return failures


def main(argv):
    golden_dir = pathlib.Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    vectors = sorted(golden_dir.glob("*.msgpack"))
    events = [path for path in vectors if path.name.startswith("event.")]
    commands = [path for path in vectors if path.name.startswith("command.")]
    coverage_ok = len(events) >= EVENT_KINDS_MIN and len(commands) >= COMMAND_KINDS_MIN
    if not coverage_ok:
        print(f"FAIL {golden_dir}: {len(events)} event and {len(commands)} command vectors, "
              f"want at least {EVENT_KINDS_MIN} and {COMMAND_KINDS_MIN}")
    failed = 0
    for path in vectors:
        try:
            failures = check_vector(path)
        except Exception as problem:  # a vector that crashes the check is a failure, not an abort
            failures = [f"{type(problem).__name__}: {problem}"]
        if failures:
            failed += 1
            for failure in failures:
                print(f"FAIL {path.name}: {failure}")
        else:
            print(f"ok   {path.name}")
    print(f"{len(vectors) - failed} of {len(vectors)} golden vectors pass")
    if not coverage_ok:
        failed += 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
