#!/usr/bin/env bash
# The S3 test bed: one S3-compatible server (s3s-fs) in ${P}srv answering on the four
# storage members 198.18.2.11-14:9000, for appliance/configs/s3.toml (pool `s3`).
#
#   ${P}client ── [ rouge: s3 198.18.1.100:443 (TLS), s3-plain :80 ] ── ${P}srv
#                                                                       s3s-fs 0.0.0.0:9000
#                                                                       (198.18.2.11-14)
#
# Usage:
#   scripts/s3pool.sh install                    build s3s-fs and the boto3 venv (once; reused)
#   scripts/s3pool.sh up   [PREFIX]              start the server (the test bed must be up)
#   scripts/s3pool.sh down [PREFIX]              stop it (its PID only), remove its data
#   scripts/s3pool.sh status [PREFIX]            the server's PID and the dead members
#   scripts/s3pool.sh kill-member   ADDR [PREFIX]  ADDR:9000 resets every connection
#   scripts/s3pool.sh revive-member ADDR [PREFIX]  ADDR:9000 answers again
#   scripts/s3pool.sh counters [PREFIX]          bytes and connections per member (JSON)
#   scripts/s3pool.sh env                        print the client settings (for `eval`)
#
# PREFIX (default `rg-`) is the test bed's (scripts/testbed.sh up PREFIX).
#
# One process serves all four addresses: s3s-fs takes one --host, so it listens on
# 0.0.0.0:9000 inside ${P}srv, where 198.18.2.11-14 are the addresses of s0. (Several
# processes over one data directory corrupt each other's objects through shared
# temporary-file names; one process over one directory is what the pool needs anyway:
# every member serves the same objects, as the nodes of a storage cluster do.)
# Credentials: access key `rouge-test`, secret `rouge-test-secret`; virtual-hosted
# requests for `<bucket>.s3.rouge.test` are understood (--domain s3.rouge.test).
# Data, PID file and log live in /tmp/rouge-s3pool-${P}/.
#
# A member "dies" by nftables rules in ${P}srv (table inet rouge_s3pool): packets to a
# dead ADDR:9000 are answered with a TCP reset (connections in progress are reset at the
# peer's next segment, new ones refused) and the server's own segments from ADDR:9000 are
# dropped, so nothing of a dead member reaches the appliance. The same table counts the
# bytes to and from each member and the connections opened to it (`counters`: the
# nodes' view of the traffic).
#
# Tools (`install`; setup.sh runs it): s3s-fs 0.14.1 from crates.io with its `binary`
# feature in target/tools/bin, and a Python venv with boto3 >= 1.36 from PyPI in
# target/tools/s3venv (its default checksums stream `aws-chunked` bodies; Debian's
# python3-boto3 and awscli do not).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TOOLS=$REPO/target/tools
S3S=$TOOLS/bin/s3s-fs
VENV=$TOOLS/s3venv
PORT=9000
MEMBERS=(198.18.2.11 198.18.2.12 198.18.2.13 198.18.2.14)
ACCESS_KEY=rouge-test
SECRET_KEY=rouge-test-secret
DOMAIN=s3.rouge.test

usage() {
    sed -n '/^# Usage:/,/^# PREFIX/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
CMD=$1
shift
ADDR=
case "$CMD" in
    kill-member | revive-member)
        [[ $# -ge 1 ]] || usage
        ADDR=$1
        shift
        [[ " ${MEMBERS[*]} " == *" $ADDR "* ]] ||
            { echo "$0: $ADDR is not a member (${MEMBERS[*]})" >&2; exit 2; }
        ;;
esac
P=${1:-rg-}
SRV=${P}srv
STATE=/tmp/rouge-s3pool-${P}
PIDFILE=$STATE/s3s-fs.pid
TABLE=rouge_s3pool

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$0: needs root (network namespaces)" >&2
        exit 1
    fi
}

need_srv() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$SRV" ||
        { echo "$0: namespace $SRV is absent: run scripts/testbed.sh up $P first" >&2; exit 1; }
}

install() {
    if ! [[ -x $S3S ]]; then
        echo "s3pool: building s3s-fs 0.14.1 into $TOOLS (once)" >&2
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        cargo install -q --locked --root "$TOOLS" s3s-fs --version 0.14.1 --features binary
    fi
    if ! "$VENV/bin/python" -c 'import boto3, sys; sys.exit(tuple(map(int, boto3.__version__.split(".")[:2])) < (1, 36))' 2>/dev/null; then
        echo "s3pool: creating $VENV with boto3 >= 1.36 (once)" >&2
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check 'boto3>=1.36'
    fi
}

# The PID of this prefix's server if it runs (and is s3s-fs), else nothing.
running_pid() {
    [[ -f $PIDFILE ]] || return 0
    local pid
    pid=$(cat "$PIDFILE")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$S3S" ]]; then
        echo "$pid"
    fi
}

down() {
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$SRV"; then
        ip netns exec "$SRV" nft delete table inet "$TABLE" 2>/dev/null || true
    fi
    rm -rf "$STATE"
}

# The nftables table of dead members, with a byte counter per member and direction
# (created empty; idempotent).
table() {
    local m n rules_in="" rules_out="" counters=""
    for m in "${MEMBERS[@]}"; do
        n=${m##*.}
        counters+="    counter m${n}_in { }"$'\n'"    counter m${n}_out { }"$'\n'"    counter m${n}_syn { }"$'\n'
        rules_in+="        ip daddr $m tcp dport $PORT counter name m${n}_in"$'\n'
        rules_in+="        ip daddr $m tcp dport $PORT tcp flags & (syn | ack) == syn counter name m${n}_syn"$'\n'
        rules_out+="        ip saddr $m tcp sport $PORT counter name m${n}_out"$'\n'
    done
    ip netns exec "$SRV" nft -f - <<EOF
table inet $TABLE {
$counters
    set dead { type ipv4_addr; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr @dead tcp dport $PORT reject with tcp reset
$rules_in    }
    chain output {
        type filter hook output priority 0; policy accept;
        ip saddr @dead tcp sport $PORT tcp flags & rst == 0 drop
$rules_out    }
}
EOF
}

# The members' counters as JSON: {"198.18.2.11": {"in": bytes, "out": bytes, "syn":
# connections}, ...} (in: bytes toward the member, i.e. uploads and requests; out: bytes
# from it, i.e. downloads; syn: connections opened to it, counted by their SYN).
counters() {
    ip netns exec "$SRV" nft -j list counters table inet "$TABLE" | /usr/bin/python3 -c '
import json, sys
out = {}
for item in json.load(sys.stdin).get("nftables", []):
    c = item.get("counter")
    if c:
        n, d = c["name"][1:].split("_")
        out.setdefault("198.18.2." + n, {})[d] = c["packets" if d == "syn" else "bytes"]
print(json.dumps(out))'
}

up() {
    need_srv
    [[ -x $S3S ]] || install
    down
    mkdir -p "$STATE/data"
    table
    # `ip netns exec` execs the server, so $! is its PID.
    ip netns exec "$SRV" "$S3S" --host 0.0.0.0 --port "$PORT" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" --domain "$DOMAIN" \
        "$STATE/data" </dev/null >"$STATE/s3s-fs.log" 2>&1 &
    echo $! >"$PIDFILE"
    local m ok=0
    for _ in $(seq 100); do
        ok=1
        for m in "${MEMBERS[@]}"; do
            # Any HTTP answer will do (anonymous requests get 403).
            ip netns exec "$SRV" curl -s -o /dev/null --max-time 1 "http://$m:$PORT/" || { ok=0; break; }
        done
        [[ $ok -eq 1 ]] && break
        [[ -n $(running_pid) ]] || break
        sleep 0.1
    done
    if [[ $ok -ne 1 ]]; then
        echo "$0: s3s-fs did not answer on ${MEMBERS[*]}:$PORT; its log:" >&2
        cat "$STATE/s3s-fs.log" >&2 || true
        down
        exit 1
    fi
    echo "s3 pool ${P} up: s3s-fs (pid $(cat "$PIDFILE")) on ${MEMBERS[*]}:$PORT in $SRV, data $STATE/data"
}

member() {
    need_srv
    ip netns exec "$SRV" nft list table inet "$TABLE" >/dev/null 2>&1 || table
    case "$1" in
        kill) ip netns exec "$SRV" nft add element inet "$TABLE" dead "{ $ADDR }"
              echo "member $ADDR:$PORT dead (connections reset)" ;;
        revive) ip netns exec "$SRV" nft delete element inet "$TABLE" dead "{ $ADDR }" 2>/dev/null || true
                echo "member $ADDR:$PORT alive" ;;
    esac
}

status() {
    local pid
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        echo "s3 pool ${P}: not running"
        return 1
    fi
    echo "s3 pool ${P}: s3s-fs pid $pid, data $STATE/data"
    ip netns exec "$SRV" nft list set inet "$TABLE" dead 2>/dev/null | grep -o 'elements = .*' |
        sed 's/^/dead members: /' || echo "dead members: none"
}

case "$CMD" in
    install) install ;;
    up) need_root; up ;;
    down) need_root; down ;;
    status) status ;;
    kill-member) need_root; member kill ;;
    revive-member) need_root; member revive ;;
    counters) need_root; need_srv; counters ;;
    env)
        echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=us-east-1"
        echo "export AWS_CA_BUNDLE=$REPO/appliance/configs/tls/ca.crt S3_ENDPOINT=https://$DOMAIN"
        echo "export S3_PYTHON=$VENV/bin/python"
        ;;
    *) usage ;;
esac
