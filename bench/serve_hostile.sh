#!/usr/bin/env bash
# `emotune serve` under hostile clients, on loopback: wrk's single-text predictions at 8 connections
# alone, then with N slow clients that each send a header line every 2 s and never finish (slowloris),
# then with a flood of M connections each holding a complete request; then SIGTERM with the slow
# clients still connected, timed until the process exits.
#   bench/serve_hostile.sh [SECONDS per level] [N slow clients] [M flood connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-8}"; slow="${2:-1000}"; flood="${3:-2000}"
shared="${EMOTUNE_SHARED:-../shared}"
model="${EMOTUNE_BENCH_MODEL:-/tmp/emotune-bench-distilbert}"
[ -f "$model/model.safetensors" ] || build/emotune init --config "$shared/models/distilbert-base-uncased" \
  --labels goemotions --out "$model" --seed 1 2>/dev/null
ulimit -n 65536 2>/dev/null || true
port=18182
build/emotune serve --model "$model" --port $port --max-batch 32 --max-wait-ms 5 2>/dev/null &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
load() { wrk -t2 -c8 -d"${secs}s" --timeout 30s -s bench/serve_post.lua "http://127.0.0.1:$port" | grep RESULT; }
echo -n "alone:                       "; load
python3 - "$port" "$slow" "$flood" "$secs" <<'PY' &
import socket, sys, time
port, slow, flood, secs = (int(a) for a in sys.argv[1:])
conns = []
for i in range(slow):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
    conns.append(s)
print(f"{slow} slow clients connected", flush=True)
i = 0
while True:  # a header line every 2 s from each, until the server drops it
    time.sleep(2)
    for s in list(conns):
        try:
            s.sendall(b"X-Slow-%d: 1\r\n" % i)
        except OSError:
            conns.remove(s)
    i += 1
PY
sleep 5
echo -n "with $slow slow clients:      "; load
python3 - "$port" "$flood" <<'PY'
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"text": "flooded with requests"}).encode()
req = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
t0 = time.time()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for s in socks:
    s.sendall(req)
codes = {}
for s in socks:
    s.settimeout(60)
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    code = head.split(b" ")[1].decode() if head else "none"
    codes[code] = codes.get(code, 0) + 1
print(f"flood of {n} connections, one request each: answers {codes} in {time.time() - t0:.1f} s")
PY
start=$(date +%s%N)
kill -TERM $pid
rc=0; wait $pid || rc=$?
echo "SIGTERM with the slow clients connected: exit $rc after $(( ($(date +%s%N) - start) / 1000000 )) ms"
