#!/usr/bin/env python3
"""UDP latency probe: sends COUNT datagrams, one every INTERVAL seconds, to ADDR:PORT
(an echo server behind the appliance), from BIND if given, and prints one JSON line:
{"sent", "received", "p50_us", "p99_us", "max_us"} of the round-trip times. Bounded by
COUNT × INTERVAL + 1 s. usage: udp_probe.py ADDR PORT COUNT INTERVAL [BIND]"""
import json
import select
import socket
import sys
import time

addr, port = sys.argv[1], int(sys.argv[2])
count, interval = int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 5:
    s.bind((sys.argv[5], 0))
s.setblocking(False)
sent_at = {}
rtts = []
start = time.monotonic()
deadline = start + count * interval + 1.0
seq = 0
next_send = start
while time.monotonic() < deadline:
    now = time.monotonic()
    if seq < count and now >= next_send:
        s.sendto(b"probe %08d" % seq, (addr, port))
        sent_at[seq] = time.monotonic()
        seq += 1
        next_send += interval
    elif seq >= count and len(rtts) >= count:
        break
    wait = max(0.0, min(next_send - time.monotonic(), deadline - time.monotonic()))
    r, _, _ = select.select([s], [], [], wait if seq < count else 0.05)
    while r:
        try:
            data, _ = s.recvfrom(2048)
        except BlockingIOError:
            break
        t = time.monotonic()
        try:
            k = int(data.rsplit(b" ", 1)[-1])
        except ValueError:
            continue
        if k in sent_at:
            rtts.append((t - sent_at.pop(k)) * 1e6)
rtts.sort()


def pct(q):
    return rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else None


print(json.dumps({"sent": seq, "received": len(rtts), "p50_us": pct(0.5),
                  "p99_us": pct(0.99), "max_us": rtts[-1] if rtts else None}))
