#!/usr/bin/env python3
"""One bulk TCP transfer with its bytes verified, for the loss tests and measurements.

Usage (run inside a test-bed namespace):
  tcp_loss.py download HOST PORT BYTES   read BYTES from a chargen server (RFC 864 pattern)
                                         and check the pattern all the way
  tcp_loss.py upload HOST PORT BYTES     send BYTES to a discard server, half-close, wait
                                         for its FIN (every byte acknowledged)
  tcp_loss.py echo HOST PORT BYTES       send BYTES of a fixed pattern through an echo
                                         server while reading them back, check every byte
  tcp_loss.py serve ADDR                 the kernel's side: chargen :19, discard :9 and echo
                                         :7 on ADDR, one thread per connection, until killed;
                                         TCP_CC=cubic (or bbr, reno) picks the kernel's
                                         congestion control (default: the host's)

Every client prints one JSON line: {"mode", "bytes", "seconds", "ok", "error"} and exits
non-zero on a mismatch, an early close or a timeout (60 s without progress).
"""

import json
import os
import socket
import sys
import threading
import time

CHUNK = 1 << 20
CC = os.environ.get("TCP_CC", "")


def chargen_pattern():
    line = lambda k: bytes(32 + (k + i) % 95 for i in range(72)) + b"\r\n"
    return b"".join(line(k) for k in range(95))


PATTERN = chargen_pattern()  # 7,030 bytes, then it repeats
BIG = PATTERN * (2 + 2 * CHUNK // len(PATTERN))
# The echo payload: bytes that do not repeat on any short period (a mismatch at the
# wrong offset is caught).
ECHO_BLOCK = bytes((i * 7919 + (i >> 8) * 31) & 0xFF for i in range(CHUNK))
ECHO_TWICE = ECHO_BLOCK * 2


def result(mode, n, t0, ok, err=None):
    print(json.dumps({"mode": mode, "bytes": n, "seconds": round(time.monotonic() - t0, 3),
                      "ok": ok, "error": err}), flush=True)
    sys.exit(0 if ok else 1)


def download(host, port, want):
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    got, off = 0, 0
    while got < want:
        d = s.recv(CHUNK)
        if not d:
            result("download", got, t0, False, "closed early")
        d = d[: want - got]
        n = len(d)
        if d != BIG[off: off + n]:
            result("download", got, t0, False, "pattern mismatch at byte %d" % got)
        got += n
        off = (off + n) % len(PATTERN)
    secs = time.monotonic() - t0
    s.close()
    print(json.dumps({"mode": "download", "bytes": got, "seconds": round(secs, 3), "ok": True,
                      "error": None}), flush=True)


def upload(host, port, want):
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sent = 0
    while sent < want:
        n = min(CHUNK, want - sent)
        s.sendall(BIG[:n])
        sent += n
    s.shutdown(socket.SHUT_WR)
    # The server closes after our FIN: everything was received and acknowledged.
    while s.recv(65536):
        pass
    result("upload", sent, t0, True)


def echo(host, port, want):
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=60)
    err = []

    def writer():
        sent = 0
        try:
            while sent < want:
                n = min(CHUNK, want - sent)
                s.sendall(ECHO_BLOCK[:n])
                sent += n
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(str(e))

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    got = 0
    while got < want:
        d = s.recv(CHUNK)
        if not d:
            result("echo", got, t0, False, "closed early" + (": " + err[0] if err else ""))
        pos = 0
        while pos < len(d):
            off = (got + pos) % CHUNK
            take = min(len(d) - pos, CHUNK)
            if d[pos: pos + take] != ECHO_TWICE[off: off + take]:
                result("echo", got + pos, t0, False, "mismatch near byte %d" % (got + pos))
            pos += take
        got += len(d)
    w.join(10)
    result("echo", got, t0, True)


def serve(addr):
    def chargen(c):
        try:
            while True:
                c.sendall(BIG[:CHUNK - CHUNK % len(PATTERN)])
        except OSError:
            pass
        finally:
            c.close()

    def discard(c):
        try:
            while c.recv(CHUNK):
                pass
        except OSError:
            pass
        finally:
            c.close()

    def echo_srv(c):
        try:
            while True:
                d = c.recv(CHUNK)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def listen(port, fn):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if CC:
            # Accepted sockets inherit the listener's congestion control.
            ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CC.encode())
        ls.bind((addr, port))
        ls.listen(64)
        while True:
            c, _ = ls.accept()
            threading.Thread(target=fn, args=(c,), daemon=True).start()

    for port, fn in ((19, chargen), (9, discard), (7, echo_srv)):
        threading.Thread(target=listen, args=(port, fn), daemon=True).start()
    print("serving", flush=True)
    while True:
        time.sleep(3600)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode = sys.argv[1]
    if mode == "serve":
        return serve(sys.argv[2])
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"download": download, "upload": upload, "echo": echo}[mode](host, port, n)


if __name__ == "__main__":
    main()
