#!/usr/bin/env python3
"""Raw HTTP/1.1 request heads against an HTTP virtual server, for its limits and its
header timeout; prints one JSON object: {"status": <first status code or null>,
"closed": <the server closed the connection>, "seconds": <until the answer or close>,
"head": <the first response line>}.

usage: http_limits.py [--host NAME] [--port N] [--cafile CA] [--plain] CMD ARG
  headers N    a GET with N extra header fields (the server's field limit: 431)
  line LEN     a GET whose request line is LEN bytes long (the line limit: 400)
  slow SECS    half a request head, then nothing; waits up to SECS for the answer (408)
The connection goes to HOST:PORT (default s3.rouge.test:443, TLS verified against CA,
SNI HOST; --plain: no TLS, port 80 by default). Bounded: every wait has a deadline."""
import argparse
import json
import socket
import ssl
import sys
import time


def connect(args):
    port = args.port or (80 if args.plain else 443)
    s = socket.create_connection((args.host, port), timeout=10)
    if args.plain:
        return s
    ctx = ssl.create_default_context(cafile=args.cafile)
    return ctx.wrap_socket(s, server_hostname=args.host)


def read_answer(s, limit):
    """Reads until the server closes or `limit` seconds pass: (first line, closed)."""
    deadline = time.monotonic() + limit
    data, closed = b"", False
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ConnectionResetError, ssl.SSLError, OSError):
            closed = True
            break
        if not d:
            closed = True
            break
        data += d
        # The whole answer is in once the head and its Content-Length of body are.
        if b"\r\n\r\n" in data and closed is False:
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip() or 0)
            if len(body) >= length:
                # Wait briefly for the close that follows an error answer.
                limit_close = time.monotonic() + 2
                while time.monotonic() < limit_close:
                    s.settimeout(max(0.05, limit_close - time.monotonic()))
                    try:
                        d = s.recv(65536)
                    except (socket.timeout, TimeoutError):
                        break
                    except (ConnectionResetError, ssl.SSLError, OSError):
                        closed = True
                        break
                    if not d:
                        closed = True
                        break
                break
    first = data.split(b"\r\n", 1)[0].decode("latin-1")
    return first, closed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="s3.rouge.test")
    p.add_argument("--port", type=int)
    p.add_argument("--cafile")
    p.add_argument("--plain", action="store_true")
    p.add_argument("cmd", choices=["headers", "line", "slow"])
    p.add_argument("arg", type=float)
    args = p.parse_args()
    s = connect(args)
    t0 = time.monotonic()
    host = f"Host: {args.host}\r\n".encode()
    if args.cmd == "headers":
        fields = b"".join(b"X-Rouge-Test-%d: value-%d\r\n" % (i, i) for i in range(int(args.arg)))
        s.sendall(b"GET / HTTP/1.1\r\n" + host + fields + b"\r\n")
        first, closed = read_answer(s, 10)
    elif args.cmd == "line":
        line = b"GET /" + b"a" * max(0, int(args.arg) - len(b"GET / HTTP/1.1")) + b" HTTP/1.1\r\n"
        s.sendall(line + host + b"\r\n")
        first, closed = read_answer(s, 10)
    else:
        s.sendall(b"GET /rouge-data/slow HTTP/1.1\r\n" + host + b"X-Half: ")
        first, closed = read_answer(s, args.arg)
    parts = first.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    print(json.dumps({"status": status, "closed": closed, "seconds": round(time.monotonic() - t0, 3), "head": first}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
