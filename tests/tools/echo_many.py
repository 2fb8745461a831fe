#!/usr/bin/env python3
"""Open N connections to an echo service at once, send each a distinct message, and
check every byte comes back. Bounded: gives up after DEADLINE seconds.

usage: echo_many.py HOST PORT N [DEADLINE]
Prints JSON {"ok": n_ok, "bad": n_bad, "failed": n_failed, "seconds": t}.
"""
import json
import selectors
import socket
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline_s = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
start = time.monotonic()
sel = selectors.DefaultSelector()
conns = {}
failed = 0
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect_ex((host, port))
    except OSError:
        failed += 1
        continue
    msg = (f"conn {i} " + "rouge-echo-" * (1 + i % 50) + "\n").encode()
    conns[s] = {"out": msg, "want": msg, "got": b""}
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
ok = bad = 0
while conns and time.monotonic() - start < deadline_s:
    for key, ev in sel.select(timeout=1.0):
        s = key.fileobj
        st = conns.get(s)
        if st is None:
            continue
        try:
            if ev & selectors.EVENT_WRITE and st["out"]:
                sent = s.send(st["out"])
                st["out"] = st["out"][sent:]
                if not st["out"]:
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed early")
                st["got"] += data
                if len(st["got"]) >= len(st["want"]):
                    if st["got"] == st["want"]:
                        ok += 1
                    else:
                        bad += 1
                    sel.unregister(s)
                    s.close()
                    del conns[s]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            failed += 1
            sel.unregister(s)
            s.close()
            del conns[s]
failed += len(conns)
print(json.dumps({"ok": ok, "bad": bad, "failed": failed, "seconds": round(time.monotonic() - start, 3)}))
