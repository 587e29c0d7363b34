#!/usr/bin/env bash
# `emotune monitor` over a long generated stream (GoEmotions texts, 100 sources, a message a minute)
# against `emotune predict` over the same texts, in the same run: messages per second and peak RSS,
# at N and at N/10 messages (memory must not grow with the stream).
#   bench/monitor_bench.sh MODEL_DIR [N]     (default N = 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; n="${2:-200000}"
data="${EMOTUNE_SHARED:-../shared}/data/goemotions"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; model: $model"
python3 - "$data" "$n" "$tmp" <<'PY'
import json, sys, datetime
data, n, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
texts = [l.split("\t")[0] for l in open(f"{data}/train.tsv", encoding="utf-8")]
t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
for count, name in ((n // 10, "small"), (n, "large")):
    with open(f"{tmp}/{name}.jsonl", "w") as f, open(f"{tmp}/{name}.txt", "w") as g:
        for i in range(count):
            t = (t0 + datetime.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(json.dumps({"time": t, "source": f"user-{i % 100}", "text": texts[i % len(texts)]}) + "\n")
            g.write(texts[i % len(texts)].replace("\n", " ") + "\n")
PY
echo '[{"name":"distress","labels":["sadness","grief","fear","nervousness"],"stat":"mean_max_probability","above":0.4,"over_last":20,"min_messages":10}]' > "$tmp/rules.json"
measure() {  # LABEL COUNT COMMAND...
  local label="$1" count="$2"; shift 2
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" > /dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
  read -r secs kb < "$tmp/time"
  python3 -c "import sys; s,k,c=float(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]); print(f'{sys.argv[4]:<28} {c:>8} messages  {c/s:8.0f} msg/s  peak RSS {k/1024:6.0f} MB')" "$secs" "$kb" "$count" "$label"
}
for size in small large; do
  count=$(wc -l < "$tmp/$size.jsonl")
  measure "predict ($size)" "$count" build/emotune predict --model "$model" --input "$tmp/$size.txt" --format jsonl
  measure "monitor --last 50 ($size)" "$count" build/emotune monitor --model "$model" --input "$tmp/$size.jsonl" --last 50 \
    --rules "$tmp/rules.json" --report "$tmp/report-$size"
  measure "monitor --window 7d ($size)" "$count" build/emotune monitor --model "$model" --input "$tmp/$size.jsonl" --window 7d \
    --rules "$tmp/rules.json" --report "$tmp/report-$size-7d"
done
