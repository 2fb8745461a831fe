#!/usr/bin/env python3
"""GET URL N times, each on a new connection; print JSON {"bodies": {body: count}, "failed": n}.
Bounded by N and by DEADLINE seconds. usage: http_count.py URL N [DEADLINE]"""
import collections
import json
import sys
import time
import urllib.request

url, n = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) > 3 else 120.0)
bodies = collections.Counter()
failed = 0
for _ in range(n):
    if time.monotonic() > deadline:
        failed += 1
        continue
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            bodies[r.read().decode().strip()] += 1
    except Exception:
        failed += 1
print(json.dumps({"bodies": bodies, "failed": failed}))
