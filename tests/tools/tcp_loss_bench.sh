#!/usr/bin/env bash
# Single-connection TCP throughput under random loss, Rouge's stack beside the kernel's.
#
# Usage (as root, from anywhere):
#   tests/tools/tcp_loss_bench.sh [--bytes N] [--loss 0,0.5,2,5] [--systems rouge,kernel]
#                                 [--rouge PATH] [--prefix P] [--pcap DIR] [--reps N]
#
# For each system it builds a private test bed (scripts/testbed.sh up P, with --kernel
# for the kernel), starts the server in the lb namespace (Rouge with
# appliance/configs/testbed.toml, or `tcp_loss.py serve 198.18.1.1` for the kernel), and
# for each loss rate drops that percentage of TCP packets at random in the client
# namespace, both directions (nftables `numgen random mod 1000 < N drop` on input and
# output). Then it moves N bytes (default 256 MiB) once each way with the kernel's TCP as
# the client: `send` = the server sends (download from chargen :19, pattern checked),
# `recv` = the server receives (upload into discard :9, acknowledged to the last byte).
#
# --reps N repeats each transfer N times (default 1); the table shows the median.
# Output: one tab-separated line per (system, direction, loss, repetition):
#   system  direction  loss_pct  bytes  seconds  MB/s  [rouge tcp counter deltas as k=v]
# followed by a Markdown table. Throughput is the client's wall time for the whole
# transfer (connect to the last byte read, or to the server's FIN after the last byte).
# --pcap DIR records the client's c0 (first 200 bytes of each frame) for every run.
# TCP_CC=cubic (bbr, reno) in the environment sets the kernel server's congestion control
# (default: the host's net.ipv4.tcp_congestion_control); its rows are then `kernel-cubic`.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BYTES=$((256 << 20))
LOSSES=0,0.5,2,5
SYSTEMS=rouge,kernel
ROUGE=${ROUGE_BIN:-$REPO/target/release/rouge}
P=tlb$$-
PCAP=
REPS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bytes) BYTES=$2; shift 2 ;;
        --loss) LOSSES=$2; shift 2 ;;
        --systems) SYSTEMS=$2; shift 2 ;;
        --rouge) ROUGE=$2; shift 2 ;;
        --prefix) P=$2; shift 2 ;;
        --pcap) PCAP=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        *) sed -n '2,22p' "$0" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "$0: needs root (network namespaces)" >&2; exit 1; }
command -v nft >/dev/null || { echo "$0: nft not installed (apt-get install nftables)" >&2; exit 1; }

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    bash "$REPO/scripts/testbed.sh" down "$P" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

set_loss() {
    local permille=$1
    ip netns exec "${P}client" nft delete table inet rgloss 2>/dev/null || true
    [[ $permille -eq 0 ]] && return
    ip netns exec "${P}client" nft -f - <<EOF
table inet rgloss {
  chain in { type filter hook input priority 0; policy accept; meta l4proto tcp numgen random mod 1000 < $permille drop; }
  chain out { type filter hook output priority 0; policy accept; meta l4proto tcp numgen random mod 1000 < $permille drop; }
}
EOF
}

counters() {
    "$ROUGE" show stats --json --socket "$TMP/rouge.sock" 2>/dev/null |
        python3 -c 'import json,sys; t=json.load(sys.stdin)["tcp"]; print(json.dumps({k:v for k,v in t.items() if isinstance(v,int)}))' ||
        echo '{}'
}

delta() {
    python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
keys=["retransmits","retransmits_fast","retransmits_tlp","retransmits_rto","timeouts","fast_recoveries","tlp_probes","spurious_retransmits","undos"]
print(" ".join("%s=%d" % (k, b[k]-a.get(k,0)) for k in keys if k in b))' "$1" "$2"
}

ROWS=$TMP/rows
: >"$ROWS"
IFS=, read -r -a systems <<<"$SYSTEMS"
IFS=, read -r -a losses <<<"$LOSSES"
for sys in "${systems[@]}"; do
    if [[ $sys == kernel ]]; then
        bash "$REPO/scripts/testbed.sh" up "$P" --kernel >/dev/null
        ip netns exec "${P}lb" python3 "$HERE/tcp_loss.py" serve 198.18.1.1 >"$TMP/server.log" 2>&1 &
    else
        bash "$REPO/scripts/testbed.sh" up "$P" >/dev/null
        ip netns exec "${P}lb" "$ROUGE" run --config "$REPO/appliance/configs/testbed.toml" \
            --socket "$TMP/rouge.sock" >"$TMP/server.log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 100); do
        ip netns exec "${P}client" python3 -c 'import socket; socket.create_connection(("198.18.1.1", 9), timeout=1).close()' 2>/dev/null && break
        sleep 0.1
    done
    for loss in "${losses[@]}"; do
        permille=$(python3 -c "print(round(float('$loss') * 10))")
        set_loss "$permille"
        for rep in $(seq "$REPS"); do
        for dir in send recv; do
            mode=download port=19
            [[ $dir == recv ]] && mode=upload port=9
            before='{}'
            [[ $sys == rouge ]] && before=$(counters)
            cap_pid=
            if [[ -n $PCAP ]]; then
                mkdir -p "$PCAP"
                ip netns exec "${P}client" tcpdump -i c0 -s 200 -w "$PCAP/$sys-$dir-$loss.pcap" tcp >/dev/null 2>&1 &
                cap_pid=$!
                sleep 0.5
            fi
            out=$(ip netns exec "${P}client" timeout 600 python3 "$HERE/tcp_loss.py" "$mode" 198.18.1.1 "$port" "$BYTES" || true)
            [[ -n $cap_pid ]] && { sleep 0.2; kill "$cap_pid"; wait "$cap_pid" 2>/dev/null || true; }
            extra=
            [[ $sys == rouge ]] && extra=$(delta "$before" "$(counters)")
            label=$sys
            [[ $sys == kernel && -n ${TCP_CC:-} ]] && label=kernel-$TCP_CC
            line=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1] or "{}"); ok=r.get("ok")
s=r.get("seconds") or 0; b=r.get("bytes") or 0
print("%s\t%s\t%s\t%d\t%.2f\t%s" % (sys.argv[2], sys.argv[3], sys.argv[4], b, s, ("%.0f" % (b/s/1e6)) if ok and s else "FAILED:"+str(r.get("error"))))' "$out" "$label" "$dir" "$loss")
            echo -e "$line\t$extra" | tee -a "$ROWS"
        done
        done
    done
    set_loss 0
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    bash "$REPO/scripts/testbed.sh" down "$P" >/dev/null
done

python3 - "$ROWS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
import statistics
runs = {}
for r in rows:
    runs.setdefault((r[0], r[1], r[2]), []).append(r[5])
def med(xs):
    ok = [float(x) for x in xs if x[0].isdigit()]
    if len(ok) < len(xs):
        return "FAILED"
    return "%.0f" % statistics.median(ok)
v = {k: med(xs) for k, xs in runs.items()}
losses = sorted({r[2] for r in rows}, key=float)
systems = sorted({r[0] for r in rows})
cols = [(s, d) for d in ("send", "recv") for s in systems]
print("\n| loss each way | " + " | ".join(f"{s} {'sending' if d == 'send' else 'receiving'}" for s, d in cols) + " |")
print("| --- |" + " --- |" * len(cols))
for l in losses:
    cell = lambda s, d: v.get((s, d, l), "-") + (" MB/s" if v.get((s, d, l), "-")[0].isdigit() else "")
    print(f"| {l} % | " + " | ".join(cell(s, d) for s, d in cols) + " |")
EOF
