#!/usr/bin/env python3
"""Write the fuzzers' seed corpora (tests/fuzz/seeds/) from the shared vectors.

Run it again when ../shared/vectors changes; the seeds are committed so that
the fuzz smoke tests start from real protocol lines.
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.environ.get("OVMS_SHARED", os.path.join(here, "..", "..", "..", "shared"))
v = json.load(open(os.path.join(shared, "vectors", "ovms_vectors.json")))


def write(target, name, data):
    d = os.path.join(here, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode("latin-1") if isinstance(data, str) else data)


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for x in node.values():
            yield from strings(x)
    elif isinstance(node, list):
        for x in node:
            yield from strings(x)


# session: a car welcome then the d_transport car lines (section c key)
stream = v["a_car_digest"]["car_welcome_line"] + "".join(x["wire"] for x in v["d_transport"]["car_to_server"])
write("fuzz_session", "car_stream", "\x05" + stream)
write("fuzz_session", "paranoid_stream", "\x20" + v["a_car_digest"]["car_welcome_line"] +
      "".join(x["wire"] for x in v["e_paranoid"]["wire_sequence_car_to_server_fresh_session"]))
n = 0
for s in strings(v):
    t = s.rstrip("\r\n")
    if t.startswith(("MP-", "AP-", "GET ")):
        write("fuzz_welcome", "welcome%02d" % n, t)
        n += 1
    if t.startswith("MP-0 "):
        write("fuzz_message", "msg%02d" % n, t[5:])
        n += 1
write("fuzz_welcome", "watermarks", "NODE1:47,NODE2:17,NODE3:5")
write("fuzz_welcome", "params", v["j_auto_provision_22"]["params_plaintext"])
print("seeds written under", os.path.join(here, "seeds"), file=sys.stderr)
