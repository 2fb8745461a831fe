#!/usr/bin/env bash
# Rouge's whole test suite, exactly what CI runs (it first installs what is missing):
#   formatting, clippy, unit + in-memory + end-to-end tests (network namespaces, root),
#   the appliance image check (scripts/image check: boots the VM image under qemu),
#   a few seconds of each fuzz target, and a smoke run of each benchmark scenario.
# Usage (as root): scripts/test.sh [--quick]   (--quick: no fuzzing, no benchmark smoke)
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
    # Not root: re-run through sudo where it exists (a root shell needs none).
    command -v sudo >/dev/null 2>&1 && exec sudo -E "$0" "$@"
    echo "$0: run as root (network namespaces, packages)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
# Each step says when it starts and how long the suite has run (the suite's budget is
# 30 minutes on 2 cores: the times show where it goes).
SUITE_START=$SECONDS
step() { printf '\n== %s  [%s, +%d s]\n' "$*" "$(date -u +%H:%M:%S)" $((SECONDS - SUITE_START)); }

# The suite's release builds (end-to-end tests, benchmark smoke, image check) need correct
# binaries, not the shipped profile's speed: no fat LTO, parallel codegen, no debug info.
# (Benchmarks that publish figures build with the shipped profile: perf/run.) The dev
# profile keeps line tables only, enough for a backtrace's file and line.
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only

# Setup downloads and installs packages and builds two tools: it runs in the background
# beside the format, lint, doc and release-build steps, which need none of it.
step "setup (packages, hugepages, cargo-fuzz, S3 tools: only what is missing; in the background)"
bash scripts/setup.sh > /tmp/rouge-setup.log 2>&1 &
SETUP_PID=$!
wait_for_setup() {
    step "waiting for setup"
    if ! wait "$SETUP_PID"; then
        cat /tmp/rouge-setup.log
        echo "setup failed (log: /tmp/rouge-setup.log)"
        exit 1
    fi
    cat /tmp/rouge-setup.log
}

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --workspace
step "build (release binaries for the end-to-end tests and benchmarks)"
cargo build --release -q -p rouge-appliance --bin rouge
# The image check measures forwarding in the VM with rouge-pktgen when it is built.
cargo build --release -q -p rouge-perf --bin rouge-pktgen
export ROUGE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/rouge"
wait_for_setup
step "cargo test --workspace (one build; the test binaries run in two lanes: scripts/test-lanes.py)"
# One build of every test binary with the whole workspace's features, then the binaries
# side by side in two lanes (the end-to-end ones mostly wait on namespaces and peers),
# then the doc tests. Each binary's output stays whole in the log.
tests_failed=0
cargo test --workspace -q --no-run --message-format=json-render-diagnostics > /tmp/rouge-test-bins.json
python3 scripts/test-lanes.py /tmp/rouge-test-bins.json /tmp/rouge-test.log 2 || tests_failed=1
cargo test --workspace -q --doc >> /tmp/rouge-test.log 2>&1 || tests_failed=1
grep -E "^test result" /tmp/rouge-test.log | tail -n 1
if [[ $tests_failed -ne 0 ]] || grep -qE "test result: FAILED|^error" /tmp/rouge-test.log; then
    echo "tests failed (full log: /tmp/rouge-test.log)"
    exit 1
fi
passed=$(grep -oE "test result: ok. [0-9]+ passed" /tmp/rouge-test.log | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE "[0-9]+ failed" /tmp/rouge-test.log | awk '{s+=$1} END {print s+0}')

step "DPDK port (feature dpdk): clippy and tests over net_ring and net_af_packet vdevs"
cargo clippy -q -p rouge-drivers --features dpdk --all-targets -- -D warnings
# The whole drivers crate builds and passes with the feature; only the DPDK binary's
# tests are new (the others ran above), so only its result line joins the counted log.
cargo test -p rouge-drivers --features dpdk > /tmp/rouge-test-dpdk.log 2>&1 || true
grep -E "^(test result|error|---- )|panicked" /tmp/rouge-test-dpdk.log || true
if grep -qE "test result: FAILED|^error" /tmp/rouge-test-dpdk.log; then
    echo "tests failed (full log: /tmp/rouge-test-dpdk.log)"
    exit 1
fi
awk '/Running tests\/dpdk.rs/ {d=1} d && /^test result: ok/ {print; exit}' /tmp/rouge-test-dpdk.log >> /tmp/rouge-test.log
passed=$(grep -oE "test result: ok. [0-9]+ passed" /tmp/rouge-test.log | awk '{s+=$4} END {print s+0}')

step "rouge with --features dpdk: clippy, the appliance's unit tests, the DPDK end-to-end suite (net_af_packet vdevs on the test bed)"
cargo clippy -q -p rouge-appliance -p rouge-tests --features rouge-appliance/dpdk,rouge-tests/dpdk --all-targets -- -D warnings
# A debug build (the release one above stays the default rouge): the end-to-end test
# starts it as ROUGE_DPDK_BIN.
cargo build -q -p rouge-appliance --features dpdk --bin rouge
cp "${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge" "${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge-dpdk"
export ROUGE_DPDK_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge-dpdk"
{
    cargo test -p rouge-appliance --features dpdk --lib 2>&1
    # Only the DPDK variant: the afpacket and afxdp ones ran with the workspace.
    cargo test -p rouge-tests --features dpdk --test drivers dpdk 2>&1
} > /tmp/rouge-test-dpdk-e2e.log || true
grep -E "^(test result|error|---- )|panicked" /tmp/rouge-test-dpdk-e2e.log || true
if grep -qE "test result: FAILED|^error" /tmp/rouge-test-dpdk-e2e.log; then
    echo "tests failed (full log: /tmp/rouge-test-dpdk-e2e.log)"
    exit 1
fi
# The appliance's unit tests ran (and were counted) above already; count the DPDK
# end-to-end test, which must have run.
awk '/Running tests\/drivers.rs/ {d=1} d && /^test result: ok/ {print; exit}' /tmp/rouge-test-dpdk-e2e.log > /tmp/rouge-test-dpdk-e2e.result
if ! grep -q "ok. 2 passed" /tmp/rouge-test-dpdk-e2e.result; then
    echo "the DPDK end-to-end test did not run (full log: /tmp/rouge-test-dpdk-e2e.log)"
    exit 1
fi
cat /tmp/rouge-test-dpdk-e2e.result >> /tmp/rouge-test.log
passed=$(grep -oE "test result: ok. [0-9]+ passed" /tmp/rouge-test.log | awk '{s+=$4} END {print s+0}')

# The appliance image with DPDK (about a minute): DPDK's virtio PMD on the VM's NICs
# through vfio-pci behind a virtual IOMMU; the debug rouge-dpdk above, no extra build.
# (`scripts/image check --driver afxdp` passes too; it stays outside CI for time.)
step "appliance image with DPDK: scripts/image check --driver dpdk (vfio-pci, virtio PMD, ping, fastl4 VIP, console, power off)"
if timeout 600 bash scripts/image check --driver dpdk; then
    passed=$((passed + 1))
else
    echo "image check --driver dpdk failed (its console logs are kept in the folder printed above)"
    exit 1
fi

step "TCP harness at full size: 1 GiB at 0 %, 1 % and 5 % loss, hash-checked (release)"
ROUGE_TCP_FULL=1 cargo test --release -q -p rouge-pipelines --test tcp_harness 2>&1 | tee -a /tmp/rouge-test.log | grep -E "^test result|panicked" || true
step "proxy in memory at full size: 1 GiB each way through 1 % loss, duplication and reordering, and 1 GiB through TLS on both sides, hash-checked (release)"
ROUGE_PROXY_FULL=1 cargo test --release -q -p rouge-pipelines --lib -- proxy::tests::relays_both_ways proxy::tests::tls::tls_on_both_sides 2>&1 | tee -a /tmp/rouge-test.log | grep -E "^test result|panicked" || true
if grep -qE "test result: FAILED|^error" /tmp/rouge-test.log; then
    echo "tests failed (full log: /tmp/rouge-test.log)"
    exit 1
fi
passed=$(grep -oE "test result: ok. [0-9]+ passed" /tmp/rouge-test.log | awk '{s+=$4} END {print s+0}')

# The appliance image: one counted test (its own steps print ok/FAIL lines).
step "appliance image: scripts/image check (build, boot on a private test bed, console, power off, UEFI and BIOS disk boots, bare-metal install)"
image_failed=0
if timeout 1200 bash scripts/image check; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    image_failed=1
    echo "image check failed (its console logs are kept in the folder printed above)"
fi

if [[ $QUICK -eq 0 ]]; then
    step "fuzz smoke (each target for a few seconds)"
    # One build of every target, without AddressSanitizer: ten seconds a target prove that
    # each builds and runs its seeds and a few thousand mutations, with Rust's bounds and
    # overflow checks on (cargo fuzz keeps debug assertions). The sanitizer doubled the
    # step's time; a real campaign runs `cargo fuzz run TARGET` with it (the packet
    # buffers in drivers/src/buf.rs hold unsafe code the targets reach).
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -s none)
    for target in frame config tcp_segment proxy_ops tls_records http_engine; do
        corpus=$(mktemp -d)
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$target" "$corpus" "seeds/$target" -- \
            -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 2>&1 | tail -n 2)
        rm -rf "$corpus"
    done
    if [[ -x perf/run ]]; then
        step "benchmark smoke (perf/run --smoke)"
        smoke_out=$(mktemp -d)
        # Every scenario (`all`), each with every peer: a missing peer tool or a void
        # system fails the run. forward and fastl4 run over IPv4 and IPv6 (--smoke's
        # default --family 4,6).
        perf/run --smoke --out "$smoke_out" all
        # Rouge and testpmd on AF_XDP ports (net_af_xdp vdevs), beside the kernel.
        perf/run --smoke --no-build --out "$smoke_out" forward fastl4 --driver afxdp --family 4
        # The full proxy and HTTP with Rouge on AF_XDP ports (the peers, which use no
        # driver, ran above in the same scenarios).
        perf/run --smoke --no-build --out "$smoke_out" stream proxy http --driver afxdp --systems rouge
        rm -rf "$smoke_out"
    fi
fi
printf '\n%s passed, %s failed (%d s)\n' "$passed" "$failed" $((SECONDS - SUITE_START))
[[ $image_failed -eq 0 ]]
