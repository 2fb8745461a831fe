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
# Each step says when it starts, how long the suite has run and how many CPU-seconds
# have gone idle so far (the suite's budget is 30 minutes on 2 cores, and it is
# throughput-bound: the figures show where the time goes and where a core waits).
SUITE_START=$SECONDS
idle_ticks() { awk '/^cpu / { print $5 + $6; exit }' /proc/stat; }
IDLE_START=$(idle_ticks)
step() {
    printf '\n== %s  [%s, +%d s, %d CPU-s idle]\n' "$*" "$(date -u +%H:%M:%S)" \
        $((SECONDS - SUITE_START)) $((($(idle_ticks) - IDLE_START) / $(getconf CLK_TCK)))
}

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
# The fuzz targets' build (coverage-instrumented, a compile of its own) runs from here in
# the background under SCHED_IDLE: it takes only the CPU time the tests leave idle (the
# end-to-end tests mostly wait), and yields at once to any test that wants a core. The
# fuzz step waits for it. It is a dev build (--dev: unoptimised, debug assertions and
# overflow checks on): cargo fuzz's optimised build (one codegen unit, debug info)
# costs twice the CPU (336 against 168 CPU-s), which a few seconds a target never earn
# back.
FUZZ_TARGET_DIR=${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
FUZZ_PID=
if [[ $QUICK -eq 0 ]]; then
    # In a process group of its own (job control on for this one job), so that the suite
    # can stop the build and its compilers together; its exit status lands in
    # rouge-fuzz-build.rc. Not in a session of its own (setsid): with the kernel's
    # autogroups every session is a scheduling group of equal weight, and SCHED_IDLE
    # inside its own group took half the CPU from the suite's builds (clippy with DPDK
    # 87 -> 174 s).
    rm -f /tmp/rouge-fuzz-build.rc
    set -m
    (status=0
        cd fuzz && RUSTC_BOOTSTRAP=1 chrt --idle 0 cargo fuzz build --dev -s none --target-dir "$FUZZ_TARGET_DIR" || status=$?
        echo "$status" > /tmp/rouge-fuzz-build.rc) > /tmp/rouge-fuzz-build.log 2>&1 &
    FUZZ_PID=$!
    set +m
fi
TAIL_PID=
# A suite that stops early stops its background work too (each started here, by PID or
# by the process group it was started in).
trap '[[ -n $FUZZ_PID ]] && kill -- "-$FUZZ_PID" 2>/dev/null; [[ -n $TAIL_PID ]] && kill "$TAIL_PID" 2>/dev/null; true' EXIT

step "cargo clippy with cargo feature dpdk (the DPDK port, the appliance that opens it, its end-to-end tests)"
# The DPDK driver is a crate of its own (drivers/dpdk), so the feature rechecks only it,
# the appliance and the end-to-end tests, not rouge-drivers and the data plane.
cargo clippy -q -p rouge-dpdk -p rouge-appliance -p rouge-tests \
    --features rouge-dpdk/dpdk,rouge-appliance/dpdk,rouge-tests/dpdk --all-targets -- -D warnings

step "cargo test --workspace --features dpdk (one build; the test binaries run in two lanes: scripts/test-lanes.py)"
# One debug build of every test binary, with DPDK (the release rouge above is the build
# without): the DPDK port's unit tests over net_ring, the appliance's with the feature,
# and the end-to-end DPDK variants (net_af_packet vdevs on the test bed), which start
# this build's rouge as ROUGE_DPDK_BIN. Then the binaries side by side in two lanes (the
# end-to-end ones mostly wait on namespaces and peers), then the doc tests. Each
# binary's output stays whole in the log.
FEATURES=rouge-appliance/dpdk,rouge-tests/dpdk
CANARY=rouge-perf/callgrind_canary
tests_failed=0
cargo test --workspace -q --features "$FEATURES" --no-run --message-format=json-render-diagnostics > /tmp/rouge-test-bins.json
cargo build --workspace -q --features "$FEATURES" --bins
cp "${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge" "${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge-dpdk"
export ROUGE_DPDK_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/rouge-dpdk"
# The callgrind canary (a debug build of its own, then valgrind: CPU, no network) runs
# later, beside the image checks.
python3 scripts/test-lanes.py /tmp/rouge-test-bins.json /tmp/rouge-test.log 2 --skip "$CANARY" || tests_failed=1
cargo test --workspace -q --features "$FEATURES" --doc >> /tmp/rouge-test.log 2>&1 || tests_failed=1
grep -E "^test result" /tmp/rouge-test.log | tail -n 1
if [[ $tests_failed -ne 0 ]] || grep -qE "test result: FAILED|^error" /tmp/rouge-test.log; then
    echo "tests failed (full log: /tmp/rouge-test.log)"
    exit 1
fi
# The DPDK tests must have run, not been left out by a feature that did not reach them.
for t in "dpdk_ping_forwarding_and_fastl4_vip" "dpdk_two_workers_hand_each_flow_to_its_owner"; do
    if ! grep -q "^test $t ... ok" /tmp/rouge-test.log; then
        echo "the DPDK end-to-end test $t did not run (full log: /tmp/rouge-test.log)"
        exit 1
    fi
done
if ! grep -q "Running tests/dpdk.rs" /tmp/rouge-test.log; then
    echo "the DPDK port's tests (drivers/dpdk/tests/dpdk.rs) did not run (full log: /tmp/rouge-test.log)"
    exit 1
fi
# Two tracks side by side, each about one core, each printed whole when both have ended:
# - in the background (not with --quick), the benchmark smoke (every scenario with every
#   peer on the test bed), then the fuzz smoke;
# - in the foreground, the appliance images under qemu (software emulation where KVM
#   fails: one busy vCPU thread), the in-memory runs at full size (release), then the
#   callgrind canary (valgrind: CPU, no network).
# The benchmark smoke's figures are never judged (its tables say how CPU was charged on a
# busy machine): it proves that every scenario runs and every system delivers, so it can
# share the machine with the images, whose boots wait minutes for what takes seconds.
# The suite fails if either track fails.
benchmark_and_fuzz_smoke() {
    set -uo pipefail
    local status=0
    if [[ -x perf/run ]]; then
        step "benchmark smoke (perf/run --smoke)"
        local smoke_out
        smoke_out=$(mktemp -d)
        # Every scenario (`all`), each with every peer: a missing peer tool or a void
        # system fails the run. forward and fastl4 run over IPv4 and IPv6 (--smoke's
        # default --family 4,6).
        perf/run --smoke --out "$smoke_out" all || status=1
        # Rouge and testpmd on AF_XDP ports (net_af_xdp vdevs), beside the kernel.
        perf/run --smoke --no-build --out "$smoke_out" forward fastl4 --driver afxdp --family 4 || status=1
        # The full proxy and HTTP with Rouge on AF_XDP ports (the peers, which use no
        # driver, ran above in the same scenarios).
        perf/run --smoke --no-build --out "$smoke_out" stream proxy http --driver afxdp --systems rouge || status=1
        rm -rf "$smoke_out"
        [[ $status -eq 0 ]] || echo "the benchmark smoke failed (its log is above)"
    fi
    step "fuzz smoke (each target for a few seconds)"
    # The targets were built in the background (above), without AddressSanitizer: ten
    # seconds a target prove that each builds and runs its seeds and a few thousand
    # mutations, with Rust's bounds and overflow checks on (cargo fuzz keeps debug
    # assertions). The sanitizer made the step half again as long; a real campaign runs
    # `cargo fuzz run TARGET` with it (the packet buffers in drivers/src/buf.rs hold
    # unsafe code the targets reach).
    # Until the build has written its status (or has gone without one).
    while [[ ! -s /tmp/rouge-fuzz-build.rc ]] && kill -0 "$FUZZ_PID" 2>/dev/null; do
        sleep 1
    done
    if [[ $(cat /tmp/rouge-fuzz-build.rc 2>/dev/null) != 0 ]]; then
        cat /tmp/rouge-fuzz-build.log
        echo "the fuzz targets did not build (log: /tmp/rouge-fuzz-build.log)"
        return 1
    fi
    local target corpus
    for target in frame config tcp_segment proxy_ops tls_records http_engine; do
        corpus=$(mktemp -d)
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --dev -s none --target-dir "$FUZZ_TARGET_DIR" "$target" "$corpus" "seeds/$target" -- \
            -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 2>&1 | tail -n 2) || status=1
        rm -rf "$corpus"
    done
    return $status
}
: > /tmp/rouge-tail.log
if [[ $QUICK -eq 0 ]]; then
    benchmark_and_fuzz_smoke > /tmp/rouge-tail.log 2>&1 &
    TAIL_PID=$!
fi
# The images' forwarding figures (software-emulated, never judged): 2 s each.
export IMAGE_FIGURE_SECONDS=2

# The appliance image with DPDK (about a minute): DPDK's virtio PMD on the VM's NICs
# through vfio-pci behind a virtual IOMMU; the debug rouge-dpdk above, no extra build.
# (`scripts/image check --driver afxdp` passes too; it stays outside CI for time.)
step "appliance image with DPDK: scripts/image check --driver dpdk (vfio-pci, virtio PMD, ping, fastl4 VIP, console, power off)"
image_failed=0 images_passed=0 failed=0
if timeout 600 bash scripts/image check --driver dpdk; then
    images_passed=$((images_passed + 1))
else
    failed=$((failed + 1))
    image_failed=1
    echo "image check --driver dpdk failed (its console logs are kept in the folder printed above)"
fi

# The appliance image: one counted test (its own steps print ok/FAIL lines).
step "appliance image: scripts/image check (build, boot on a private test bed, console, power off, UEFI and BIOS disk boots, bare-metal install)"
if timeout 1200 bash scripts/image check; then
    images_passed=$((images_passed + 1))
else
    failed=$((failed + 1))
    image_failed=1
    echo "image check failed (its console logs are kept in the folder printed above)"
fi

step "TCP harness at full size: 1 GiB at 0 %, 1 % and 5 % loss, hash-checked (release)"
ROUGE_TCP_FULL=1 cargo test --release -q -p rouge-pipelines --test tcp_harness 2>&1 | tee -a /tmp/rouge-test.log | grep -E "^test result|panicked" || tests_failed=1
step "proxy in memory at full size: 1 GiB each way through 1 % loss, duplication and reordering, and 1 GiB through TLS on both sides, hash-checked (release)"
ROUGE_PROXY_FULL=1 cargo test --release -q -p rouge-pipelines --lib -- proxy::tests::relays_both_ways proxy::tests::tls::tls_on_both_sides 2>&1 | tee -a /tmp/rouge-test.log | grep -E "^test result|panicked" || tests_failed=1
step "callgrind canary (perf/run callgrind counts Rouge's own code: a loop built into the forwarding path shows)"
python3 scripts/test-lanes.py /tmp/rouge-test-bins.json /tmp/rouge-test.log 1 --only "$CANARY" --append || tests_failed=1

tail_failed=0
if [[ -n $TAIL_PID ]]; then
    step "waiting for the background track (benchmark smoke, fuzz smoke)"
    wait "$TAIL_PID" || tail_failed=1
    TAIL_PID=
fi
# The background track waited for the fuzz build's status unless it failed first.
[[ -s /tmp/rouge-fuzz-build.rc ]] && FUZZ_PID=
cat /tmp/rouge-tail.log
if [[ $tail_failed -ne 0 || $tests_failed -ne 0 ]] || grep -qE "test result: FAILED|^error" /tmp/rouge-test.log; then
    echo "the in-memory runs at full size, the callgrind canary, the benchmark smoke or the fuzz smoke failed (log above; tests: /tmp/rouge-test.log)"
    exit 1
fi
passed=$(( $(grep -oE "test result: ok. [0-9]+ passed" /tmp/rouge-test.log | awk '{s+=$4} END {print s+0}') + images_passed ))

step "done"
printf '\n%s passed, %s failed (%d s)\n' "$passed" "$failed" $((SECONDS - SUITE_START))
[[ $image_failed -eq 0 ]]
