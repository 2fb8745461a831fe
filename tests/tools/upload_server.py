#!/usr/bin/env python3
"""A tiny HTTP server for upload tests: GET answers with the server's name, POST reads
the whole body and answers with its length and SHA-256.

usage: upload_server.py ADDRESS PORT NAME SECONDS
Serves for at most SECONDS, then exits. Only used inside a test bed namespace.
"""
import hashlib
import http.server
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def _reply(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(self.server.name + "\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        left = n
        while left:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        self._reply("%d %s\n" % (n - left, h.hexdigest()))

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def main():
    addr, port, name, seconds = sys.argv[1:5]
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    Server.address_family = fam
    srv = Server((addr, int(port)), Handler)
    srv.name = name
    threading.Timer(float(seconds), srv.shutdown).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
