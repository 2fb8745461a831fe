#!/usr/bin/env bash
# Rouge's test bed: three network namespaces joined by two veth pairs.
#
#   ${P}client               ${P}lb (the appliance)                 ${P}srv
#   c0 198.18.1.2/24  <--->  lb-c           lb-s  <--->  s0 198.18.2.11-14/24
#   default via .1.1         (no kernel addresses; Rouge owns     default via .2.1
#                             198.18.1.1/24 and 198.18.2.1/24)
#   c0 2001:2:0:1::2/64                                          s0 2001:2:0:2::11-14/64
#   default via 2001:2:0:1::1 (Rouge owns 2001:2:0:1::1/64 and    default via 2001:2:0:2::1
#                             2001:2:0:2::1/64)
#
# Without --kernel, an nft `netdev` ingress chain in ${P}lb drops the kernel's own copy of
# every frame on lb-c and lb-s after Rouge's packet sockets (and AF_XDP redirects) have
# theirs, so the kernel never routes Rouge's traffic to nowhere (`scripts/image` removes
# it when it bridges the links to a VM).
#
# The peers' IPv6 addresses are added with `nodad` (and duplicate address detection is off
# on their links), so they are usable the moment `up` returns; the peers send no router
# solicitations and accept no router advertisements.
#
# Usage:
#   scripts/testbed.sh up     [PREFIX] [--kernel] [--queues N]   build it (tears down a previous copy first)
#   scripts/testbed.sh down   [PREFIX]              remove everything it made (idempotent)
#   scripts/testbed.sh status [PREFIX]              show what exists
#
# PREFIX (default `rg-`) names the namespaces, so tests build private copies side by side.
# Interface names inside the namespaces are the same in every copy; the veth pairs are
# created directly inside their namespaces, so nothing ever appears in the root namespace.
#
# --queues N gives every veth N transmit and N receive queues (default 1), so several
# AF_XDP workers can each drive a queue of lb-c and lb-s; the peers' kernels spread
# their flows over the queues.
#
# --kernel gives lb-c 198.18.1.1/24 and 2001:2:0:1::1/64, lb-s 198.18.2.1/24 and
# 2001:2:0:2::1/64 in the kernel with IPv4 and IPv6 forwarding on, for the kernel peers
# the benchmarks compare Rouge against.
#
# Offloads: TSO, GSO, GRO and transmit checksumming are turned off on every veth end
# (c0, lb-c, lb-s, s0). With them on, the kernel hands a veth 64 KiB super-frames that
# no real wire carries, and TCP/UDP packets whose checksum is only a partial sum
# (AF_PACKET flags them TP_STATUS_CSUMNOTREADY). With them off, every frame on the wire
# is at most the MTU and carries full checksums, as on a NIC. Rouge and its peers are
# measured under the same setting.
#
# Names: `ip netns exec` reads /etc/netns/${P}client/hosts in place of /etc/hosts, so
# `up` writes one that makes s3.rouge.test and the <bucket>.s3.rouge.test names of the S3
# tests and the demo (HOSTS_BUCKETS below) resolve to the virtual address 198.18.1.100
# inside ${P}client (appliance/configs/s3.toml, scripts/s3pool.sh); `down` removes it.
#
# Only addresses in 198.18.0.0/15 and 2001:2::/48 (the benchmarking ranges) are used.
set -euo pipefail

# The S3 virtual server and the buckets addressed virtual-hosted style
# (tests/tests/s3.rs, scripts/demo.sh).
S3_VIP=198.18.1.100
S3_DOMAIN=s3.rouge.test
HOSTS_BUCKETS=(rouge-data replica vhost-test chunked demo)

usage() {
    echo "usage: $0 up|down|status [PREFIX] [--kernel] [--queues N]" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
CMD=$1
shift
P=rg-
KERNEL=0
QUEUES=1
want_queues=0
for arg in "$@"; do
    if [[ $want_queues == 1 ]]; then
        [[ $arg =~ ^[1-9][0-9]?$ ]] || { echo "--queues wants 1 to 99, not '$arg'" >&2; usage; }
        QUEUES=$arg
        want_queues=0
        continue
    fi
    case "$arg" in
        --kernel) KERNEL=1 ;;
        --queues) want_queues=1 ;;
        -h | --help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) P=$arg ;;
    esac
done

CLIENT=${P}client
LB=${P}lb
SRV=${P}srv

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

ns_exists() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"
}

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$0: needs root (network namespaces)" >&2
        exit 1
    fi
}

# Turns off segmentation, receive coalescing and transmit checksum offload on one link.
no_offloads() {
    local ns=$1 dev=$2
    in_ns "$ns" ethtool -K "$dev" tso off gso off gro off tx off >/dev/null 2>&1 ||
        in_ns "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 ||
        echo "warning: could not change offloads on $ns/$dev (is ethtool installed?)" >&2
}

sysctl_ns() {
    local ns=$1 key=$2 val=$3
    in_ns "$ns" sysctl -qw "$key=$val" >/dev/null 2>&1 || true
}

# /etc/netns/${CLIENT}/hosts: the S3 names at the virtual address, in ${CLIENT} only.
write_hosts() {
    local names=$S3_DOMAIN b
    for b in "${HOSTS_BUCKETS[@]}"; do
        names+=" $b.$S3_DOMAIN"
    done
    mkdir -p "/etc/netns/$CLIENT"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n' \
        "$S3_VIP" "$names" >"/etc/netns/$CLIENT/hosts"
}

down() {
    local ns
    rm -rf "/etc/netns/$CLIENT"
    for ns in "$CLIENT" "$LB" "$SRV"; do
        if ns_exists "$ns"; then
            # Deleting the namespace destroys its veths (and their peers).
            ip netns delete "$ns" 2>/dev/null || true
        fi
    done
}

up() {
    down
    local ns
    for ns in "$CLIENT" "$LB" "$SRV"; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done
    # Create each pair directly inside its two namespaces: no names in the root namespace.
    local q="numtxqueues $QUEUES numrxqueues $QUEUES"
    # shellcheck disable=SC2086 # $q is two option pairs
    ip link add c0 netns "$CLIENT" $q type veth peer name lb-c netns "$LB" $q
    # shellcheck disable=SC2086
    ip link add lb-s netns "$LB" $q type veth peer name s0 netns "$SRV" $q

    # The appliance namespace: no IPv6 on its links (no router solicitations or DAD
    # frames in the measurements), no kernel ARP replies, no reverse-path filtering.
    sysctl_ns "$LB" net.ipv6.conf.all.disable_ipv6 1
    sysctl_ns "$LB" net.ipv6.conf.default.disable_ipv6 1
    sysctl_ns "$LB" net.ipv4.conf.all.rp_filter 0
    sysctl_ns "$LB" net.ipv4.conf.default.rp_filter 0
    for dev in lb-c lb-s; do
        sysctl_ns "$LB" "net.ipv6.conf.$dev.disable_ipv6" 1
        sysctl_ns "$LB" "net.ipv4.conf.$dev.rp_filter" 0
        no_offloads "$LB" "$dev"
    done
    # The peers: IPv6 on, without duplicate address detection, router solicitations or
    # router advertisements, so their addresses work at once and the links carry little
    # beyond what the tests send.
    local pair
    for pair in "$CLIENT c0" "$SRV s0"; do
        set -- $pair
        for dev in all default "$2"; do
            sysctl_ns "$1" "net.ipv6.conf.$dev.disable_ipv6" 0
            sysctl_ns "$1" "net.ipv6.conf.$dev.accept_dad" 0
            sysctl_ns "$1" "net.ipv6.conf.$dev.dad_transmits" 0
            sysctl_ns "$1" "net.ipv6.conf.$dev.router_solicitations" 0
            sysctl_ns "$1" "net.ipv6.conf.$dev.accept_ra" 0
        done
        no_offloads "$1" "$2"
    done

    if [[ $KERNEL -eq 1 ]]; then
        in_ns "$LB" ip addr add 198.18.1.1/24 dev lb-c
        in_ns "$LB" ip addr add 198.18.2.1/24 dev lb-s
        for dev in all default lb-c lb-s; do
            sysctl_ns "$LB" "net.ipv6.conf.$dev.disable_ipv6" 0
            sysctl_ns "$LB" "net.ipv6.conf.$dev.accept_dad" 0
            sysctl_ns "$LB" "net.ipv6.conf.$dev.router_solicitations" 0
        done
        in_ns "$LB" ip -6 addr add 2001:2:0:1::1/64 dev lb-c nodad
        in_ns "$LB" ip -6 addr add 2001:2:0:2::1/64 dev lb-s nodad
        sysctl_ns "$LB" net.ipv4.ip_forward 1
        sysctl_ns "$LB" net.ipv6.conf.all.forwarding 1
    else
        # Userspace owns the addresses: the kernel must neither answer ARP for nor
        # forward anything it might see on these links.
        for dev in all lb-c lb-s; do
            sysctl_ns "$LB" "net.ipv4.conf.$dev.arp_ignore" 8
            sysctl_ns "$LB" "net.ipv4.conf.$dev.arp_announce" 2
        done
        sysctl_ns "$LB" net.ipv4.ip_forward 0
        # Rouge's packet sockets get their copy of every frame before the kernel's own
        # stack sees it; the stack has no address here, yet it still routed each frame
        # to nowhere (ip_rcv, a route lookup, a route entry made and freed, ip_error:
        # 3 % of the worker's CPU in a keep-alive proxy run, perf record on 2026-12-07).
        # The ingress hook runs after the packet sockets (and AF_XDP redirects before
        # both): it drops the kernel's copy only.
        in_ns "$LB" nft -f - <<'NFT' ||
table netdev rouge_owned {
    chain ingress {
        type filter hook ingress devices = { lb-c, lb-s } priority 0; policy drop;
    }
}
NFT
            echo "warning: no ingress drop on lb-c and lb-s (is nft installed?): the kernel routes every frame to nowhere" >&2
    fi
    in_ns "$LB" ip link set lb-c up
    in_ns "$LB" ip link set lb-s up

    in_ns "$CLIENT" ip addr add 198.18.1.2/24 dev c0
    in_ns "$CLIENT" ip link set c0 up
    in_ns "$CLIENT" ip route add default via 198.18.1.1
    in_ns "$CLIENT" ip -6 addr add 2001:2:0:1::2/64 dev c0 nodad
    in_ns "$CLIENT" ip -6 route add default via 2001:2:0:1::1

    in_ns "$SRV" ip addr add 198.18.2.11/24 dev s0
    for a in 12 13 14; do
        in_ns "$SRV" ip addr add "198.18.2.$a/24" dev s0
    done
    in_ns "$SRV" ip link set s0 up
    in_ns "$SRV" ip route add default via 198.18.2.1
    for a in 11 12 13 14; do
        in_ns "$SRV" ip -6 addr add "2001:2:0:2::$a/64" dev s0 nodad
    done
    in_ns "$SRV" ip -6 route add default via 2001:2:0:2::1

    write_hosts

    local mode=userspace
    [[ $KERNEL -eq 1 ]] && mode=kernel
    echo "test bed ${P} up ($mode): $CLIENT c0 <-> $LB lb-c | $LB lb-s <-> $SRV s0"
}

status() {
    local ns any=0
    for ns in "$CLIENT" "$LB" "$SRV"; do
        if ns_exists "$ns"; then
            any=1
            echo "== $ns"
            in_ns "$ns" ip -br addr show | grep -v '^lo ' || true
            in_ns "$ns" ip route show 2>/dev/null | sed 's/^/   route: /'
            in_ns "$ns" ip -6 route show 2>/dev/null | sed 's/^/   route6: /'
        else
            echo "== $ns (absent)"
        fi
    done
    [[ $any -eq 1 ]]
}

case "$CMD" in
    up) need_root; trap 'echo "testbed: up failed, tearing down" >&2; down' ERR; up ;;
    down) need_root; down ;;
    status) status ;;
    *) usage ;;
esac
