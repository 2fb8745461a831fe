#!/usr/bin/env bash
# The demo: Rouge on the built-in test bed with live figures.
#
#   rg-client (198.18.1.2) ── lb-c [ rouge ] lb-s ── rg-srv (198.18.2.11-14)
#
# Builds Rouge, sets up the test bed (scripts/testbed.sh), starts `rouge run` in rg-lb
# with appliance/configs/testbed.toml, then for DEMO_SECONDS (default 20) drives bounded
# traffic from the client: pings to the appliance's self IP, pings and HTTP downloads
# through the forwarding virtual server to a server in rg-srv. Once a second it prints
# the appliance's own counters (packets per second by verdict, drops, ARP). Everything
# is torn down at the end, also on Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${DEMO_SECONDS:-20}
P=rgdemo-
SOCK=/tmp/rouge-demo.sock
if [[ $(id -u) -ne 0 ]]; then
    # Not root: re-run through sudo where it exists (a root shell needs none).
    command -v sudo >/dev/null 2>&1 && exec sudo -E "$0" "$@"
    echo "$0: run as root (network namespaces)" >&2
    exit 1
fi
bash scripts/setup.sh >/dev/null
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
echo "building rouge (release)..."
cargo build --release -q -p rouge-appliance --bin rouge
ROUGE=$PWD/target/release/rouge
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash scripts/testbed.sh down "$P" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

bash scripts/testbed.sh up "$P" >/dev/null
ip netns exec ${P}lb "$ROUGE" run --config appliance/configs/testbed.toml --socket "$SOCK" 2>"$WORK/rouge.log" &
PIDS+=($!)
for _ in $(seq 100); do "$ROUGE" show stats --socket "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
head -c 50000000 /dev/urandom > "$WORK/object.bin"
ip netns exec ${P}srv python3 -m http.server 8080 --bind 198.18.2.11 --directory "$WORK" >/dev/null 2>&1 &
PIDS+=($!)

for _ in $(seq 100); do
    ip netns exec ${P}client curl -s -o /dev/null --max-time 1 -I http://198.18.2.11:8080/ && break
    sleep 0.2
done
echo "rouge is up:"
"$ROUGE" show interfaces --socket "$SOCK"
echo
RUN=$((SECONDS_TOTAL + 2))
echo "traffic for ${SECONDS_TOTAL}s: ping flood to 198.18.1.1, pings and 50 MB HTTP GETs through to 198.18.2.11"
ip netns exec ${P}client timeout "$RUN" ping -f -q -w "$RUN" 198.18.1.1 >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec ${P}client timeout "$RUN" ping -q -i 0.01 -w "$RUN" 198.18.2.11 >/dev/null 2>&1 &
PIDS+=($!)
( end=$((SECONDS + RUN))
  while [[ $SECONDS -lt $end ]]; do
      ip netns exec ${P}client timeout 10 curl -s -o /dev/null --max-time 8 http://198.18.2.11:8080/object.bin || sleep 0.5
  done ) &
PIDS+=($!)

# Live figures: the appliance's own counters, sampled once a second, as rates.
python3 - "$ROUGE" "$SOCK" "$SECONDS_TOTAL" <<'PY'
import json, subprocess, sys, time
rouge, sock, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def sample():
    q = lambda what: json.loads(subprocess.run([rouge, "show", what, "--json", "--socket", sock],
                                               capture_output=True, text=True, check=True).stdout)
    s, i = q("stats"), q("interfaces")
    return (time.monotonic(), s["rx_packets"], s["forwarded"], s["answered"], s["dropped"],
            sum(x["tx_bytes"] for x in i))
print(f"{'t':>4} {'rx pkt/s':>11} {'fwd pkt/s':>11} {'answer/s':>10} {'drops':>7} {'Mbit/s out':>11}")
start = prev = sample()
while prev[0] - start[0] < total:
    time.sleep(1)
    cur = sample()
    dt = cur[0] - prev[0]
    rate = lambda k: (cur[k] - prev[k]) / dt
    print(f"{cur[0] - start[0]:4.0f} {rate(1):11.0f} {rate(2):11.0f} {rate(3):10.0f} {cur[4]:7d} {rate(5) * 8 / 1e6:11.1f}", flush=True)
    prev = cur
PY
echo
"$ROUGE" show stats --socket "$SOCK"
echo
"$ROUGE" show arp --socket "$SOCK"
