#!/usr/bin/env python3
"""UDP echo server: answers every datagram with b"<ADDR> " + the datagram. Bounded:
exits after SECONDS (default 120). usage: udp_echo.py ADDR PORT [SECONDS]"""
import socket
import sys
import time

addr, port = sys.argv[1], int(sys.argv[2])
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
s.settimeout(1.0)
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        continue
    s.sendto(addr.encode() + b" " + data, peer)
