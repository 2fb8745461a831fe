#!/usr/bin/env bash
# The demo: Rouge as the TLS front door of an S3 storage cluster, with live figures.
#
#   rgdemo-client ── lb-c [ rouge: https://s3.rouge.test ] lb-s ── rgdemo-srv
#   boto3 uploads and downloads          198.18.1.100:443           s3s-fs on the four
#   (s3.rouge.test = 198.18.1.100)       TLS, HTTP/1.1, OneConnect,  members
#                                        S3 resume                   198.18.2.11-14:9000
#
# Builds Rouge, sets up the test bed (scripts/testbed.sh) and the S3 pool
# (scripts/s3pool.sh), starts `rouge run` in rgdemo-lb with appliance/configs/s3.toml, then
# for about DEMO_SECONDS (default 40) drives S3 traffic through the TLS virtual server
# with a real S3 client (boto3): DEMO_OBJECTS (default 4) objects of DEMO_MIB (default
# 128) MiB uploaded in parallel (multipart, Expect: 100-continue), then downloaded over and
# over by three clients. Meanwhile one member is drained (`rouge pool member disable`)
# during the uploads and another is killed (its connections reset) in the middle of the
# downloads, then both come back. Once a second it prints the figures of the virtual
# server (requests/s, Mbit/s, connections, resumes), of the pool and of every member
# (state, connections, Mbit/s as the nodes count them). At the end every object is read
# back once more and every download's checksum is checked. Everything is bounded in count
# and time and torn down at the end, also on Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${DEMO_SECONDS:-40}
OBJECTS=${DEMO_OBJECTS:-4}
MIB=${DEMO_MIB:-128}
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
    bash scripts/s3pool.sh down "$P" >/dev/null 2>&1 || true
    bash scripts/testbed.sh down "$P" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

bash scripts/testbed.sh up "$P" >/dev/null
bash scripts/s3pool.sh up "$P"
ip netns exec ${P}lb "$ROUGE" run --config appliance/configs/s3.toml --socket "$SOCK" 2>"$WORK/rouge.log" &
PIDS+=($!)
ready=0
for _ in $(seq 300); do
    code=$(ip netns exec ${P}client curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        --cacert appliance/configs/tls/ca.crt https://s3.rouge.test/ 2>/dev/null || true)
    [[ $code == 403 ]] && { ready=1; break; }   # the S3 server's answer to an anonymous request
    sleep 0.2
done
if [[ $ready -ne 1 ]]; then
    echo "rouge did not answer on https://s3.rouge.test; its log:" >&2
    cat "$WORK/rouge.log" >&2
    exit 1
fi
echo "rouge is up: https://s3.rouge.test (198.18.1.100:443) in front of pool s3"
"$ROUGE" show pool s3 --socket "$SOCK"
echo
echo "creating $OBJECTS objects of $MIB MiB..."
for i in $(seq "$OBJECTS"); do
    head -c "$((MIB << 20))" /dev/urandom > "$WORK/object-$i.bin"
done

# The driver: traffic, events and live figures, every step bounded in count and time.
rc=0
/usr/bin/python3 - "$ROUGE" "$SOCK" "$P" "$WORK" "$OBJECTS" "$SECONDS_TOTAL" "$PWD" <<'PY' || rc=$?
import hashlib, json, os, subprocess, sys, threading, time
rouge, sock, prefix, work, objects, total, repo = sys.argv[1:8]
objects, total = int(objects), int(total)
env = ["env", "AWS_ACCESS_KEY_ID=rouge-test", "AWS_SECRET_ACCESS_KEY=rouge-test-secret",
       "AWS_DEFAULT_REGION=us-east-1", f"AWS_CA_BUNDLE={repo}/appliance/configs/tls/ca.crt",
       "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"]
client = ["ip", "netns", "exec", prefix + "client", "timeout", "200"] + env + [
    "/usr/bin/python3", f"{repo}/tests/tools/s3client.py", "--endpoint", "https://s3.rouge.test",
    "--deadline", "190"]
t0 = time.monotonic()
log_lock = threading.Lock()
events = []

def note(text):
    with log_lock:
        events.append(text)
        print(f"  >> {time.monotonic() - t0:5.1f}s {text}", flush=True)

def s3(*args):
    p = subprocess.run(client + list(args), capture_output=True, text=True)
    try:
        v = json.loads(p.stdout)
    except ValueError:
        v = {"error": (p.stdout + p.stderr)[-300:]}
    return v

def cli(*args):
    p = subprocess.run([rouge, *args, "--socket", sock], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()

def show(what, name=None):
    args = [rouge, "show", what] + ([name] if name else []) + ["--json", "--socket", sock]
    p = subprocess.run(args, capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else None

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()

keys = [f"object-{i}.bin" for i in range(1, objects + 1)]
want = {k: sha(os.path.join(work, k)) for k in keys}
results = []          # (what, key, ok, detail)
res_lock = threading.Lock()
stop = threading.Event()

def record(what, key, ok, detail):
    with res_lock:
        results.append((what, key, ok, detail))
    if not ok:
        note(f"{what} {key} FAILED: {detail}")

# Figures: the virtual server, the pool and each member, once a second.
members = ["198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"]

def sample():
    v = show("virtual", "s3")
    v = v[0] if isinstance(v, list) and v else (v or {})
    pool = show("pool", "s3")
    pool = pool[0]["members"] if pool else []
    c = subprocess.run(["bash", f"{repo}/scripts/s3pool.sh", "counters", prefix],
                       capture_output=True, text=True)
    try:
        node = json.loads(c.stdout)
    except ValueError:
        node = {}
    return time.monotonic(), v, {m["address"].split(":")[0]: m for m in pool}, node

def figures():
    prev = sample()
    print(f"{'t':>5} | {'VS s3: req/s':>12} {'Mbit/s':>7} {'conns':>5} {'resumed':>7} | "
          f"{'pool s3: Mbit/s':>15} {'conns':>5} | " +
          " ".join(f"{'member .' + m.split('.')[-1]:>17}" for m in members), flush=True)
    while not stop.wait(1.0):
        cur = sample()
        dt = cur[0] - prev[0]
        v, pv = cur[1], prev[1]
        h, ph = v.get("http", {}), pv.get("http", {})
        req = (h.get("requests", 0) - ph.get("requests", 0)) / dt
        mbit = (v.get("bytes", 0) - pv.get("bytes", 0)) * 8 / dt / 1e6
        cols, pool_bits, pool_conns = [], 0.0, 0
        for m in members:
            st = cur[2].get(m, {})
            nb = cur[3].get(m, {})
            pb = prev[3].get(m, {})
            bits = sum(nb.get(d, 0) - pb.get(d, 0) for d in ("in", "out")) * 8 / dt / 1e6
            conns = st.get("current_connections", 0) or 0
            pool_bits += bits
            pool_conns += conns
            state = ("up" if st.get("monitor") == "up" else "DOWN") + \
                    ("" if st.get("admin", "enabled") == "enabled" else "/" + st.get("admin", "?")[:5])
            cols.append(f"{state:>6} {conns:2d}c {bits:5.0f}M")
        print(f"{cur[0] - t0:5.0f} | {req:12.0f} {mbit:7.0f} {v.get('current_connections', 0):5d} "
              f"{h.get('resumes_succeeded', 0):7d} | {pool_bits:15.0f} {pool_conns:5d} | " +
              " ".join(f"{c:>17}" for c in cols), flush=True)
        prev = cur

fig = threading.Thread(target=figures, daemon=True)
fig.start()

note(f"bucket demo, {objects} uploads in parallel (boto3 multipart, Expect: 100-continue)")
s3("mb", "demo")
def upload(k):
    v = s3("put", os.path.join(work, k), "demo", k, "--part-mib", "16")
    record("upload", k, "error" not in v, v.get("error") or f"{v.get('mib_per_s')} MiB/s")
ups = [threading.Thread(target=upload, args=(k,)) for k in keys]
for t in ups:
    t.start()
time.sleep(2)
drained = "198.18.2.12:9000"
note(f"drain member {drained} during the uploads: " + cli("pool", "member", "disable", "s3", drained))
for t in ups:
    t.join()
note("uploads done; three clients download the objects over and over")

end = t0 + total
def downloader(n):
    i = n
    while time.monotonic() < end - 3:
        k = keys[i % len(keys)]
        i += 1
        v = s3("get", "demo", k)
        ok = v.get("sha256") == want[k]
        record("download", k, ok, v.get("error") or f"sha256 {'ok' if ok else 'MISMATCH'}")
downs = [threading.Thread(target=downloader, args=(n,)) for n in range(3)]
for t in downs:
    t.start()

# Kill a member in the middle of a download: the one serving the flow that moved the
# most bytes (show connections), else the one with the most connections (not the drained).
time.sleep(min(4, max(1, end - time.monotonic() - 10)))
flows = [f for f in (show("connections") or []) if f.get("virtual") == "s3"
         and f.get("server") and f.get("server") != drained]
pool = {m["address"]: m for m in (show("pool", "s3") or [{"members": []}])[0]["members"]}
if flows:
    busy = max(flows, key=lambda f: f.get("bytes_out", 0))["server"]
else:
    busy = max((a for a in pool if a != drained), default="198.18.2.13:9000",
               key=lambda a: pool[a].get("current_connections", 0))
killed = busy.split(":")[0]
subprocess.run(["bash", f"{repo}/scripts/s3pool.sh", "kill-member", killed, prefix], capture_output=True)
note(f"KILL member {busy} mid-transfer (every segment to it answered with a reset)")
time.sleep(max(1, (end - time.monotonic()) / 2))
subprocess.run(["bash", f"{repo}/scripts/s3pool.sh", "revive-member", killed, prefix], capture_output=True)
note(f"member {busy} back; " + cli("pool", "member", "enable", "s3", drained))
for t in downs:
    t.join()
stop.set()
fig.join()

print()
print("every object read back once more and checked:")
for k in keys:
    v = s3("get", "demo", k)
    ok = v.get("sha256") == want[k]
    record("final check", k, ok, v.get("error") or "")
    print(f"  {k}: {v.get('bytes', 0) >> 20} MiB sha256 {v.get('sha256', '-')[:16]}… "
          f"{'ok' if ok else 'MISMATCH ' + str(v.get('error', ''))}")
v = show("virtual", "s3")
v = v[0] if isinstance(v, list) and v else (v or {})
h = v.get("http", {})
bad = [r for r in results if not r[2]]
n_up = sum(1 for r in results if r[0] == "upload")
n_down = sum(1 for r in results if r[0] == "download")
print()
print(f"uploads {n_up}, downloads {n_down}, final checks {len(keys)}: "
      f"{len(results) - len(bad)} verified, {len(bad)} failed")
print(f"virtual server s3: {h.get('requests', 0)} requests, server connections opened "
      f"{h.get('server_connections_opened', 0)} / reused {h.get('server_connections_reused', 0)}, "
      f"resumes attempted {h.get('resumes_attempted', 0)} succeeded {h.get('resumes_succeeded', 0)} "
      f"refused {h.get('resumes_refused', 0)}")
sys.exit(1 if bad else 0)
PY

echo
"$ROUGE" show virtual s3 --socket "$SOCK"
echo
"$ROUGE" show pool s3 --socket "$SOCK"
exit "$rc"
