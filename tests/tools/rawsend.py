#!/usr/bin/env python3
"""Send hand-made malformed frames on an interface through an AF_PACKET socket.

usage: rawsend.py IFACE DST_MAC SRC_IP DST_IP COUNT
Sends COUNT copies of each kind below, then prints the kinds as JSON.
Only used inside a test bed namespace, toward the appliance's self IP (the IPv6 kinds
toward the test bed's IPv6 self IP 2001:2:0:1::1 from 2001:2:0:1::2).
"""
import json
import socket
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def main():
    iface, dst_mac, src_ip, dst_ip, count = sys.argv[1:6]
    count = int(count)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    eth = mac(dst_mac) + src_mac
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x77, 1) + b"rouge-malformed!")
    struct.pack_into("!H", icmp, 2, csum(bytes(icmp)))

    def ip(payload, ihl=5, total=None, bad_sum=False):
        total = total if total is not None else 20 + len(payload)
        h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0, 64, 1, 0,
                                  socket.inet_aton(src_ip), socket.inet_aton(dst_ip)))
        struct.pack_into("!H", h, 10, csum(bytes(h)) ^ (0x1234 if bad_sum else 0))
        return bytes(h) + payload

    arp_bad_op = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 7, src_mac,
                             socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(dst_ip))
    icmp_bad = bytearray(icmp)
    icmp_bad[-1] ^= 0xFF
    src6 = socket.inet_pton(socket.AF_INET6, "2001:2:0:1::2")
    dst6 = socket.inet_pton(socket.AF_INET6, "2001:2:0:1::1")

    def icmp6(msg):
        m = bytearray(msg)
        ph = src6 + dst6 + struct.pack("!IxxxB", len(m), 58)
        struct.pack_into("!H", m, 2, csum(ph + bytes(m)))
        return bytes(m)

    def ip6(payload, nh=58, plen=None):
        plen = len(payload) if plen is None else plen
        return struct.pack("!IHBB", 0x60000000, plen, nh, 64) + src6 + dst6 + payload

    echo6 = icmp6(struct.pack("!BBHHH", 128, 0, 0, 0x77, 1) + b"rouge-malformed!")
    echo6_bad = bytearray(echo6)
    echo6_bad[-1] ^= 0xFF
    # Twelve destination-options headers in a chain: longer than any real packet's.
    chain = b"".join(struct.pack("!BB6x", 60, 0) for _ in range(11)) + struct.pack("!BB6x", 58, 0)
    kinds = {
        "ipv6_truncated": eth + b"\x86\xdd" + ip6(echo6)[:30],
        "ipv6_bad_payload_length": eth + b"\x86\xdd" + ip6(echo6, plen=900),
        "ipv6_ext_chain": eth + b"\x86\xdd" + ip6(chain + echo6, nh=60),
        "icmpv6_bad_checksum": eth + b"\x86\xdd" + ip6(bytes(echo6_bad)),
        # (A frame shorter than an Ethernet header cannot be sent through a veth: the
        # kernel refuses it, so eth_truncated is covered by the in-memory tests.)
        "ipv4_truncated": eth + b"\x08\x00" + ip(bytes(icmp))[:12],
        "ipv4_bad_checksum": eth + b"\x08\x00" + ip(bytes(icmp), bad_sum=True),
        "ipv4_bad_header_length": eth + b"\x08\x00" + ip(bytes(icmp), ihl=4),
        "ipv4_bad_total_length": eth + b"\x08\x00" + ip(bytes(icmp), total=999),
        "icmp_bad_checksum": eth + b"\x08\x00" + ip(bytes(icmp_bad)),
        "arp_malformed": eth + b"\x08\x06" + arp_bad_op,
        "eth_stacked_vlan": eth + b"\x81\x00\x00\x05\x81\x00\x00\x06\x08\x00" + ip(bytes(icmp)),
    }
    for _ in range(count):
        for frame in kinds.values():
            s.send(frame)
    print(json.dumps(sorted(kinds)))


if __name__ == "__main__":
    main()
