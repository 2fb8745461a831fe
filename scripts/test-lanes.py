#!/usr/bin/env python3
"""Runs the workspace's test binaries in parallel lanes (scripts/test.sh).

`cargo test` runs one test binary after another. Most of the suite's time is spent in the
end-to-end binaries (tests/tests/*.rs), which mostly wait on network namespaces, real
peers and timeouts, so two lanes of binaries side by side halve the wall time without
crowding the two cores. Every binary still runs whole, with its own test threads, and
its output is kept together in the log. Binaries that hold timing to a bound (SOLO) run
alone after the lanes.

usage: test-lanes.py ARTIFACTS.json LOG [LANES] [--skip KEY]... [--only KEY]... [--append]
  ARTIFACTS.json: the output of
      cargo test --workspace --no-run --message-format=json-render-diagnostics
  (one build of the whole workspace, so no binary is rebuilt with other features).
  LOG: every binary's full output, in the `cargo test` format (`Running …`, the test
  lines, `test result: …`). Prints the result lines and failures; exits 1 if any binary
  failed (all of them run regardless).
  --skip KEY: leave binary KEY ("package/target", e.g. rouge-perf/callgrind_canary) to a
  run of its own; --only KEY: run just the binaries named (in one lane). A KEY that names
  no binary is an error, so a renamed test cannot drop out unseen. --append: add to LOG.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

# Seconds each binary took in a whole-suite run (2 cores, 2026-12-07): used to balance
# the lanes, longest first. Binaries not named here count as short.
WEIGHTS = {
    "rouge-tests/s3": 112, "rouge-perf/callgrind_canary": 79, "rouge-tests/shaping": 69,
    "rouge-tests/tls": 33, "rouge-tests/proxy": 30, "rouge-tests/tcp_loss": 28,
    "rouge-tests/fastl4": 26, "rouge-tests/drivers": 24, "rouge-tests/l2l3": 23,
    "rouge-tests/ops": 16, "rouge-tests/ipv6": 14, "rouge-tests/tcp": 10,
    "rouge-drivers/afpacket": 6, "rouge-tests/https_monitor": 5,
}
DEFAULT_WEIGHT = 1
# Binaries that measure timing against a bound (the shaping test's priority class must
# wait less than half a weighted-round-robin round, about 121 us): they run alone, after
# the lanes, so a neighbour's load cannot take the worker's core from under them.
SOLO = {"rouge-tests/shaping"}


def test_binaries(artifacts_path):
    """(name, source path, executable, package dir) of every test executable built."""
    bins = []
    with open(artifacts_path) as f:
        for line in f:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
                continue
            if not msg.get("profile", {}).get("test"):
                continue
            target = msg["target"]
            bins.append((target["name"], target["src_path"], msg["executable"],
                         os.path.dirname(msg["manifest_path"]), msg["package_id"]))
    return bins


def package_name(package_id):
    """The name in a package id: "path+file:///…/pipelines#rouge-pipelines@0.1.0", or
    "path+file:///…/name#0.1.0" when the name is the folder's."""
    path, _, tail = package_id.rpartition("#")
    if "@" in tail:
        return tail.split("@", 1)[0]
    return path.rstrip("/").rsplit("/", 1)[-1]


def key(b):
    """The name WEIGHTS and SOLO use: "package/target"."""
    return f"{package_name(b[4])}/{b[0]}"


def weight(b):
    return WEIGHTS.get(key(b), DEFAULT_WEIGHT)


def split(bins, lanes):
    """Longest first, each to the lane with the least work so far."""
    out = [[] for _ in range(lanes)]
    load = [0] * lanes
    for b in sorted(bins, key=weight, reverse=True):
        i = load.index(min(load))
        out[i].append(b)
        load[i] += weight(b)
    return out


def package_env(pkg_dir, package_id):
    """The variables `cargo test` sets for a test binary it runs."""
    env = dict(os.environ)
    env["CARGO_MANIFEST_DIR"] = pkg_dir
    env["CARGO_PKG_NAME"] = package_name(package_id)
    env.setdefault("CARGO", "cargo")
    return env


def main():
    ap = argparse.ArgumentParser(description="Runs test binaries in parallel lanes.")
    ap.add_argument("artifacts")
    ap.add_argument("log")
    ap.add_argument("lanes", nargs="?", type=int, default=2)
    ap.add_argument("--skip", action="append", default=[])
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--append", action="store_true")
    a = ap.parse_args()
    bins = test_binaries(a.artifacts)
    if not bins:
        print("test-lanes: no test binaries in", a.artifacts, file=sys.stderr)
        return 1
    known = {key(b) for b in bins}
    unknown = [k for k in a.skip + a.only if k not in known]
    if unknown:
        print("test-lanes: no test binary named", " ".join(unknown), file=sys.stderr)
        return 1
    if a.only:
        bins = [b for b in bins if key(b) in a.only]
    bins = [b for b in bins if key(b) not in a.skip]
    lock = threading.Lock()
    failed = []
    finished = []
    log = open(a.log, "a" if a.append else "w")

    def run_lane(lane):
        for _name, src, exe, pkg_dir, pkg_id in lane:
            t0 = time.monotonic()
            try:
                p = subprocess.run([exe], cwd=pkg_dir, env=package_env(pkg_dir, pkg_id),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                text, status = p.stdout.decode(errors="replace"), p.returncode
            except OSError as e:
                # A binary that cannot start fails; the lane goes on with the next.
                text, status = f"test-lanes: cannot run {exe}: {e}\n", -1
            secs = time.monotonic() - t0
            rel = os.path.relpath(src, pkg_dir)
            with lock:
                finished.append(rel)
                log.write(f"     Running {rel} ({exe}) [{secs:.1f} s]\n{text}\n")
                log.flush()
                for line in text.splitlines():
                    if line.startswith(("test result", "failures", "---- ", "error")) \
                            or "panicked" in line:
                        print(f"{rel}: {line}", flush=True)
                if status != 0:
                    failed.append(rel)
                    if "test result" not in text:
                        # A crash before the harness printed its result still fails.
                        log.write(f"test result: FAILED. (the binary exited with status {status})\n")
                        print(f"{rel}: exited with status {status}", flush=True)

    shared = [b for b in bins if key(b) not in SOLO]
    threads = [threading.Thread(target=run_lane, args=(lane,)) for lane in split(shared, a.lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_lane([b for b in bins if key(b) in SOLO])
    log.close()
    if len(finished) != len(bins):
        # A lane that died (an error in this script) must not pass for a green suite.
        print(f"test-lanes: {len(finished)} of {len(bins)} test binaries ran", flush=True)
        return 1
    if failed:
        print("test-lanes: failed:", " ".join(failed), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
