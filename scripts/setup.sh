#!/usr/bin/env bash
# Installs what Rouge's tests, demo and benchmarks need on a fresh Debian machine:
# the kernel tools and real peers (ping, arping, curl, socat, iperf3, ethtool, tcpdump,
# trafgen, dpdk-testpmd, HAProxy, nginx and its stream module, wrk), promtool, chromium
# and tmux for the management plane's tests, valgrind and perf, cargo-fuzz, hugepages, and
# what the appliance image needs (qemu, OVMF, GRUB, SYSLINUX, mtools, dosfstools, sfdisk),
# and the S3 test bed's clients and server (awscli, boto3, s3cmd; s3s-fs and a boto3
# venv built once into target/tools by scripts/s3pool.sh install).
# Idempotent; needs root. Packages already present are left as they are.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
    # Not root: re-run through sudo where it exists (a root shell needs none).
    command -v sudo >/dev/null 2>&1 && exec sudo -E "$0" "$@"
    echo "$0: run as root (installs packages, sets hugepages)" >&2
    exit 1
fi

PKGS=(iproute2 iputils-ping iputils-arping ndisc6 netcat-openbsd socat iperf3 ethtool tcpdump curl
      python3 netsniff-ng dpdk dpdk-dev haproxy nginx-light valgrind linux-perf procps coreutils
      iptables nftables
      # the proxy's peers and load (tests/tests/proxy.rs, perf/run proxy): nginx's stream
      # module (nginx as a TCP proxy), wrk (HTTP load generator)
      libnginx-mod-stream wrk
      # TLS offload (tests/tests/tls.rs): testssl.sh scans the VIP
      testssl.sh
      # the management plane's tests: promtool (prometheus) checks /metrics, headless
      # chromium opens the dashboard, tmux is the terminal of `rouge top`
      prometheus chromium tmux
      # the DPDK port (cargo feature `dpdk` of rouge-drivers): headers, bindgen's libclang
      libdpdk-dev libclang-dev pkg-config
      # the appliance image (scripts/image): qemu, UEFI firmware, boot loaders, disk tools
      qemu-system-x86 qemu-utils ovmf grub-efi-amd64-bin grub-pc-bin grub-common syslinux
      syslinux-common mtools dosfstools fdisk e2fsprogs cpio zstd kmod
      systemd binutils
      # TLS: openssl renews the test certificates (scripts/make-test-certs.sh)
      openssl
      # S3 delivery (tests/tests/s3.rs, scripts/demo.sh): real S3 clients, and python3-venv
      # for the boto3 >= 1.36 venv whose uploads stream aws-chunked (scripts/s3pool.sh)
      awscli python3-boto3 s3cmd python3-venv)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged nginx and HAProxy services are not wanted: benchmarks start their own.
# The same for the packaged Prometheus server: only its promtool is used.
for svc in nginx haproxy prometheus prometheus-node-exporter; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

# Hugepages for dpdk-testpmd (256 x 2 MiB); harmless for everything else.
if [[ -w /proc/sys/vm/nr_hugepages ]] && [[ $(cat /proc/sys/vm/nr_hugepages) -lt 256 ]]; then
    echo 256 > /proc/sys/vm/nr_hugepages || true
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true

# cargo-fuzz for the fuzz smoke run.
if ! command -v cargo-fuzz >/dev/null 2>&1 && ! [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]]; then
    echo "setup: installing cargo-fuzz"
    cargo install --locked -q cargo-fuzz
fi
# The S3 test bed's tools (once, reused): s3s-fs 0.14.1 from crates.io and a venv with
# boto3 >= 1.36 from PyPI, both in target/tools.
bash "$(dirname "$0")/s3pool.sh" install
echo "setup: ready"
