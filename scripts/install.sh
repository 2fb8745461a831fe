#!/usr/bin/env bash
# Installs Rouge on a Debian server (bare metal or a VM with its own NICs) as a systemd
# service. See docs/appliance.md for which NICs it drives and how to choose its cores.
#
# Usage: sudo scripts/install.sh [options]
#   --root DIR        install into DIR instead of / (a scratch root: no packages, no
#                     systemctl, no sysctl; used by the tests and to build packages)
#   --rouge BIN       the rouge binary (default: $ROUGE_BIN, else cargo build --release)
#   --config FILE     configuration installed as /etc/rouge/rouge.toml when none exists
#                     (default: appliance/configs/testbed.toml; an existing one is kept)
#   --cores LIST      worker cores, e.g. 2,3 (written to /etc/default/rouge; default: the
#                     config's [system] cores, else the last core)
#   --nic NAME=MAC    name the NIC with address MAC NAME (e.g. lb-c=3c:fd:fe:00:00:01) with
#                     a systemd .link file, so the config's interface names match; repeat
#   --hugepages N     2 MiB hugepages reserved at boot (default 256; for the DPDK driver)
#   --no-start        enable the service but do not start it now
#   --uninstall       remove what an install put there (keeps /etc/rouge/rouge.toml)
#
# What it installs:
#   /usr/local/bin/rouge                   the binary
#   /etc/rouge/rouge.toml                  the configuration (`rouge config save` writes it);
#                                          the test bed's TLS files replaced by the device's
#   /etc/rouge/tls/device{,-rsa}.{crt,key} the server's own self-signed TLS certificates
#                                          (made once with openssl; provided ones are kept)
#   /etc/default/rouge                     ROUGE_ARGS (e.g. --cores 2,3 --idle busy)
#   /usr/local/lib/rouge/rouge-nics        run before rouge: the config's NICs up, no
#                                          offloads, no kernel IPv6/ARP answers on them
#   /usr/local/lib/rouge/afpacket-nics.awk its AF_PACKET NICs (shared with the image)
#   /etc/systemd/system/rouge.service      Restart=on-failure, after the NICs are named
#   /etc/systemd/network/10-rouge-*.link   --nic names
#   /etc/sysctl.d/90-rouge.conf            hugepages
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=""
ROUGE=${ROUGE_BIN:-}
CONFIG="$ROOT_DIR/appliance/configs/testbed.toml"
CORES=""
NICS=()
HUGEPAGES=256
START=1
UNINSTALL=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() { echo "install: error: $*" >&2; exit 1; }
log() { echo "install: $*"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) DEST=$2; shift ;;
        --rouge) ROUGE=$2; shift ;;
        --config) CONFIG=$2; shift ;;
        --cores) CORES=$2; shift ;;
        --nic) NICS+=("$2"); shift ;;
        --hugepages) HUGEPAGES=$2; shift ;;
        --no-start) START=0 ;;
        --uninstall) UNINSTALL=1 ;;
        -h | --help) usage ;;
        *) echo "install: unknown option $1" >&2; usage ;;
    esac
    shift
done
[[ $HUGEPAGES =~ ^[0-9]+$ ]] || die "--hugepages takes a number"
[[ -z $CORES || $CORES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--cores takes a list like 2,3"
if [[ -n $DEST ]]; then
    mkdir -p "$DEST"
    DEST=$(cd "$DEST" && pwd)
else
    [[ $(id -u) -eq 0 ]] || die "run as root (or give --root DIR)"
fi

if [[ $UNINSTALL -eq 1 ]]; then
    if [[ -z $DEST ]]; then
        systemctl disable --now rouge.service >/dev/null 2>&1 || true
        # The kernel gets its data NICs back (rouge-nics' ingress drop goes).
        nft delete table netdev rouge_owned >/dev/null 2>&1 || true
    fi
    rm -f "$DEST/usr/local/bin/rouge" "$DEST/usr/local/lib/rouge/rouge-nics" \
        "$DEST/usr/local/lib/rouge/afpacket-nics.awk" \
        "$DEST/etc/systemd/system/rouge.service" "$DEST/etc/sysctl.d/90-rouge.conf" \
        "$DEST/etc/default/rouge" "$DEST"/etc/systemd/network/10-rouge-*.link
    rmdir "$DEST/usr/local/lib/rouge" 2>/dev/null || true
    [[ -z $DEST ]] && systemctl daemon-reload
    log "removed (kept $DEST/etc/rouge/rouge.toml)"
    exit 0
fi

if [[ -z $ROUGE ]]; then
    log "building rouge (release)"
    (cd "$ROOT_DIR" && cargo build --release -q -p rouge-appliance --bin rouge)
    ROUGE="${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/rouge"
fi
[[ -x $ROUGE ]] || die "no rouge binary at $ROUGE"
"$ROUGE" check --config-only --config "$CONFIG" >/dev/null || die "$CONFIG is not a valid configuration"

if [[ -z $DEST ]]; then
    # What the service runs besides rouge: ip, ethtool, sysctl.
    missing=()
    for p in iproute2 ethtool procps; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

install -D -m 0755 "$ROUGE" "$DEST/usr/local/bin/rouge"
if [[ -e $DEST/etc/rouge/rouge.toml ]]; then
    log "keeping the existing $DEST/etc/rouge/rouge.toml"
else
    # The test bed's TEST-ONLY certificates (public keys) are not installed: the copy
    # names the device's own, made below.
    rewritten=$(mktemp)
    sh "$ROOT_DIR/scripts/image-root/sbin/rouge-device-cert" --rewrite "$CONFIG" "$rewritten"
    install -D -m 0640 "$rewritten" "$DEST/etc/rouge/rouge.toml"
    rm -f "$rewritten"
fi
# The server's own self-signed TLS certificates in /etc/rouge/tls (kept when present).
sh "$ROOT_DIR/scripts/image-root/sbin/rouge-device-cert" "$DEST/etc/rouge/tls"
"$ROUGE" check --config-only --config "$DEST/etc/rouge/rouge.toml" >/dev/null ||
    die "$DEST/etc/rouge/rouge.toml is not valid there (relative TLS paths are resolved against $DEST/etc/rouge)"
args=""
[[ -n $CORES ]] && args="--cores $CORES"
install -d "$DEST/etc/default"
cat > "$DEST/etc/default/rouge" <<EOF
# Options of \`rouge run\` for rouge.service, e.g. ROUGE_ARGS="--cores 2,3 --idle busy".
# Give the workers cores of their own (keep them off the kernel's busy cores, e.g. with
# isolcpus= on the kernel command line); core 0 is best left to the kernel.
ROUGE_ARGS="$args"
EOF

install -d "$DEST/usr/local/lib/rouge"
install -m 0644 "$ROOT_DIR/scripts/image-root/lib/rouge/afpacket-nics.awk" "$DEST/usr/local/lib/rouge/afpacket-nics.awk"
cat > "$DEST/usr/local/lib/rouge/rouge-nics" <<'EOF'
#!/bin/sh
# Prepares the data NICs named in the configuration for Rouge's AF_PACKET ports: link up,
# no offloads (frames at most the MTU with full checksums), no kernel IPv6, ARP answers or
# reverse-path filtering on them. Run by rouge.service before rouge starts.
set -eu
CONFIG=${1:-/etc/rouge/rouge.toml}
nics=$(awk '/^\[\[/ { inif = ($0 ~ /^\[\[interface\]\]/) } inif && /^[ \t]*name[ \t]*=/ { gsub(/.*=[ \t]*"|".*/, ""); print }' "$CONFIG")
[ -n "$nics" ] || { echo "rouge-nics: no [[interface]] in $CONFIG" >&2; exit 1; }
for n in $nics; do
    if [ ! -e "/sys/class/net/$n" ]; then
        echo "rouge-nics: no NIC named $n (name it with a systemd .link file: scripts/install.sh --nic $n=MAC)" >&2
        exit 1
    fi
    sysctl -qw "net.ipv6.conf.$n.disable_ipv6=1" "net.ipv4.conf.$n.arp_ignore=8" \
        "net.ipv4.conf.$n.arp_announce=2" "net.ipv4.conf.$n.rp_filter=0" >/dev/null 2>&1 || true
    ethtool -K "$n" tso off gso off gro off lro off tx off >/dev/null 2>&1 ||
        ethtool -K "$n" gro off >/dev/null 2>&1 || true
    ip link set dev "$n" up
done
# Rouge's AF_PACKET sockets get their copy of every frame before the kernel's stack does;
# the stack has no address on these NICs, yet it would still route each frame to nowhere
# (ip_rcv, a route lookup, ip_error: about 3 % of a worker's CPU). An nft netdev ingress
# chain, which runs after the packet sockets, drops the kernel's copy on the NICs driven
# by AF_PACKET (not on AF_XDP ones, whose program passes to the kernel what no socket
# takes). Without nft the kernel keeps routing its copy: slower, never wrong. The table is
# replaced on every start, so a NIC moved to another driver loses its drop.
afpacket=""
for n in $(awk -f "$(dirname "$0")/afpacket-nics.awk" "$CONFIG"); do
    afpacket="$afpacket${afpacket:+, }$n"
done
command -v nft >/dev/null 2>&1 && { nft delete table netdev rouge_owned >/dev/null 2>&1 || true; }
if [ -n "$afpacket" ]; then
    if command -v nft >/dev/null 2>&1; then
        printf 'table netdev rouge_owned {\n    chain ingress {\n        type filter hook ingress devices = { %s } priority 0; policy drop;\n    }\n}\n' "$afpacket" | nft -f - ||
            echo "rouge-nics: warning: no ingress drop on $afpacket: the kernel routes its copy of every frame to nowhere" >&2
    else
        echo "rouge-nics: nft is not installed: the kernel routes its copy of every frame on $afpacket to nowhere (apt-get install nftables)" >&2
    fi
fi
echo "rouge-nics: ready: $nics"
EOF
chmod 0755 "$DEST/usr/local/lib/rouge/rouge-nics"

install -d "$DEST/etc/systemd/system"
cat > "$DEST/etc/systemd/system/rouge.service" <<'EOF'
[Unit]
Description=Rouge application delivery controller (data plane on its own cores)
Documentation=file:///usr/local/share/doc/rouge/appliance.md
Wants=network-pre.target
After=network-pre.target systemd-udev-settle.service

[Service]
Type=simple
EnvironmentFile=-/etc/default/rouge
ExecStartPre=/usr/local/bin/rouge check --config /etc/rouge/rouge.toml
ExecStartPre=/usr/local/lib/rouge/rouge-nics /etc/rouge/rouge.toml
ExecStart=/usr/local/bin/rouge run --config /etc/rouge/rouge.toml $ROUGE_ARGS
KillSignal=SIGTERM
TimeoutStopSec=20
Restart=on-failure
RestartSec=2
LimitMEMLOCK=infinity
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
EOF

for spec in "${NICS[@]}"; do
    name=${spec%%=*}
    mac=${spec#*=}
    [[ $name =~ ^[A-Za-z0-9_.-]{1,15}$ && $mac =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] ||
        die "--nic takes NAME=MAC (e.g. lb-c=3c:fd:fe:00:00:01), not $spec"
    install -d "$DEST/etc/systemd/network"
    printf '# Written by Rouge'"'"'s install.sh: the NIC with this address is %s.\n[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n' \
        "$name" "$mac" "$name" > "$DEST/etc/systemd/network/10-rouge-$name.link"
done

install -d "$DEST/etc/sysctl.d"
printf '# Rouge: 2 MiB hugepages for the DPDK driver (unused by AF_PACKET, harmless).\nvm.nr_hugepages = %s\n' \
    "$HUGEPAGES" > "$DEST/etc/sysctl.d/90-rouge.conf"
if [[ -f $ROOT_DIR/docs/appliance.md ]]; then
    install -D -m 0644 "$ROOT_DIR/docs/appliance.md" "$DEST/usr/local/share/doc/rouge/appliance.md"
fi

if [[ -n $DEST ]]; then
    log "installed into $DEST (no service started)"
    exit 0
fi
sysctl -q -p /etc/sysctl.d/90-rouge.conf >/dev/null 2>&1 || true
[[ ${#NICS[@]} -gt 0 ]] && log "NIC names from .link files apply at the next boot (or: udevadm trigger --action=add -s net)"
systemctl daemon-reload
systemctl enable rouge.service >/dev/null 2>&1
if [[ $START -eq 1 ]]; then
    systemctl restart rouge.service
    log "rouge.service started: systemctl status rouge; rouge show interfaces; rouge console"
else
    log "rouge.service enabled; start it with: systemctl start rouge"
fi
