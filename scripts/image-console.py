#!/usr/bin/env python3
"""Talks to a Rouge VM through qemu's sockets (used by scripts/image).

  image-console.py console SOCKET [--timeout S] LINE...
      Sends each LINE on the serial console and prints what came back until the next
      prompt (`rouge> `, the menu, or a shell prompt), without terminal escapes.
      A LINE that starts with `expect:` waits for that text instead of sending.
  image-console.py qmp SOCKET COMMAND [--timeout S]
      Runs one QMP command (e.g. system_powerdown) and prints the answer.

Exits 1 when a prompt or expected text does not arrive in time.
"""

import json
import re
import socket
import sys
import time

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")
ECHO_SECONDS = 8
PROMPTS = ("rouge> ", "`poweroff`: ", "rouge-shell# ")


def clean(data: bytes) -> str:
    return ANSI.sub(b"", data).decode("utf-8", "replace")


class Serial:
    def __init__(self, path: str, timeout: float):
        self.path = path
        self.timeout = timeout
        self.connect()

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)
        self.buf = b""

    def reconnect(self):
        # qemu drops what it has not handed to the UART yet when the client goes.
        self.sock.close()
        self.connect()

    def read_until(self, markers, deadline: float, after: str = "", keep: bool = False) -> str:
        """Reads until a marker shows up in the cleaned output (after the last echo of
        `after` and a line break, when given); returns the output past `after`."""
        while True:
            text = clean(self.buf)
            rest = text
            if after:
                # The echo of the line ends with a line break; a prompt may contain
                # the same word (`shell` in `rouge-shell# `).
                i = text.find(after + "\n")
                rest = text[i + len(after):] if i >= 0 else ""
            for m in markers:
                if m in rest:
                    if not keep:
                        self.buf = b""
                    return rest
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(text[-2000:])
            self.sock.settimeout(min(left, 0.5))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise TimeoutError("console closed: " + text[-2000:])
            self.buf += chunk

    def send(self, line: str):
        # Byte by byte with small gaps, as a person types (a precaution for the emulated
        # 115200 baud UART and its 16-byte receive FIFO).
        for b in (line + "\r").encode():
            self.sock.sendall(bytes([b]))
            time.sleep(0.005)


def command(s: Serial, line: str, deadline: float) -> str:
    """Types a line and returns its output up to the next prompt. Under emulation the
    guest's UART now and then stops taking input; a line that is not echoed within
    ECHO_SECONDS is typed again on a fresh connection, after Ctrl-U clears whatever
    part of it did arrive (at most 3 tries)."""
    for attempt in range(3):
        s.buf = b""
        s.send(line)
        echo_by = time.monotonic() + ECHO_SECONDS
        try:
            if line and attempt < 2:
                s.read_until([line[: max(1, len(line) // 2)]], min(echo_by, deadline), keep=True)
            return s.read_until(PROMPTS, deadline, after=line)
        except (TimeoutError, OSError):
            if attempt == 2 or time.monotonic() >= deadline:
                raise
            print(f"image-console: `{line}` not echoed within {ECHO_SECONDS} s; typing it again", file=sys.stderr)
            s.reconnect()
            s.sock.sendall(b"\x15")
            time.sleep(0.5)
    raise TimeoutError("no answer")


def wake(s: Serial, deadline: float):
    """Wakes the line up and waits for any prompt. The emulated UART now and then takes
    no input (the same stall `command` works around): without a prompt within
    ECHO_SECONDS, the line is woken again on a fresh connection, until the deadline."""
    while True:
        s.send("")
        try:
            s.read_until(PROMPTS, min(deadline, time.monotonic() + ECHO_SECONDS))
            return
        except (TimeoutError, OSError):
            if time.monotonic() >= deadline:
                raise
            print(f"image-console: no prompt within {ECHO_SECONDS} s; waking the line again", file=sys.stderr)
            s.reconnect()


def console(path: str, lines, timeout: float) -> int:
    s = Serial(path, timeout)
    deadline = time.monotonic() + timeout
    try:
        wake(s, deadline)
        for line in lines:
            if line.startswith("expect:"):
                s.read_until([line[len("expect:"):]], deadline)
                continue
            text = command(s, line, deadline)
            for p in PROMPTS:
                text = text.rsplit(p, 1)[0] if text.rstrip().endswith(p.strip()) else text
            print(f">>> {line}")
            print(text.strip("\n"))
            sys.stdout.flush()
    except TimeoutError as e:
        print(f"image-console: timed out; last output:\n{e}", file=sys.stderr)
        return 1
    return 0


def qmp(path: str, command: str, timeout: float) -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    f = s.makefile("rwb")
    json.loads(f.readline())  # greeting
    for cmd in ("qmp_capabilities", command):
        f.write(json.dumps({"execute": cmd}).encode() + b"\n")
        f.flush()
        while True:
            answer = json.loads(f.readline())
            if "event" not in answer:
                break
    print(json.dumps(answer))
    return 0 if "return" in answer else 1


def main(argv) -> int:
    if len(argv) < 3 or argv[0] not in ("console", "qmp"):
        print(__doc__, file=sys.stderr)
        return 2
    timeout = 30.0
    args = list(argv[1:])
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i : i + 2]
    if argv[0] == "console":
        return console(args[0], args[1:], timeout)
    return qmp(args[0], args[1], timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
