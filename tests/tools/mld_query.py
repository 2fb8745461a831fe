#!/usr/bin/env python3
"""mld_query.py IFACE [TIMEOUT]: sends one MLDv2 general query (RFC 3810) on IFACE from a
link-local address, with the hop-by-hop router alert and hop limit 1, as a multicast
router would, then waits up to TIMEOUT seconds (default 2) for an MLDv2 report from
another host on the link. Prints `report from MAC: GROUP ...` and exits 0 when one
arrives, exits 1 otherwise. Raw AF_PACKET socket, Python standard library only; the
test bed's namespaces only (the frame never leaves IFACE's link).
"""

import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def main():
    iface = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    mac = s.getsockname()[4][:6]
    # fe80::/64 with the modified EUI-64 of our MAC.
    eui = bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    src = b"\xfe\x80" + b"\0" * 6 + eui
    dst = b"\xff\x02" + b"\0" * 13 + b"\x01"  # all nodes
    # MLDv2 query: type 130, max response code 1000 ms, general (group ::), QQIC 125.
    query = struct.pack("!BBHHH16sBBH", 130, 0, 0, 1000, 0, b"\0" * 16, 2, 125, 0)
    pseudo = src + dst + struct.pack("!I3xB", len(query), 58)
    query = query[:2] + struct.pack("!H", csum(pseudo + query)) + query[4:]
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])  # router alert (MLD), padding
    payload = hbh + query
    ip6 = struct.pack("!IHBB", 6 << 28, len(payload), 0, 1) + src + dst
    eth = b"\x33\x33\x00\x00\x00\x01" + mac + struct.pack("!H", ETH_P_IPV6)
    s.send(eth + ip6 + payload)
    s.settimeout(0.1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if len(f) < 62 or f[6:12] == mac or f[12:14] != b"\x86\xdd":
            continue
        nh, off = f[20], 54
        if nh == 0:  # skip the hop-by-hop header
            nh, off = f[54], 54 + (f[55] + 1) * 8
        if nh != 58 or len(f) < off + 8 or f[off] != 143:
            continue
        n = struct.unpack("!H", f[off + 6:off + 8])[0]
        groups = [socket.inet_ntop(socket.AF_INET6, f[off + 8 + 20 * i + 4:off + 8 + 20 * i + 20])
                  for i in range(n) if len(f) >= off + 8 + 20 * (i + 1)]
        print(f"report from {f[6:12].hex(':')}: {' '.join(groups)}")
        return 0
    print("no MLDv2 report", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
