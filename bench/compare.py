"""The ratios bench/run.sh leads with, from the JSON lines its runs printed (one file): for each of
emotune's results, the best current peer of the same mode and precision (a current PyTorch, eager or
compiled, its Trainer, ONNX Runtime), like for like; then the same against Debian's torch 1.13, the
peer the earlier figures used. Throughput ratios are emotune / peer in examples per second (above 1:
emotune is faster); latency ratios are peer p50 / emotune p50 (above 1: emotune answers sooner).
Usage: compare.py RESULTS.jsonl"""
import json
import sys

LEGACY = "pytorch-1.13"


def label(r):
    return f"{r['impl']} {r.get('precision', 'f32')}"


def main():
    with open(sys.argv[1]) as f:
        results = [json.loads(line) for line in f if line.strip()]
    for group in ("train", "infer", "latency"):
        mine = [r for r in results if r["group"] == group and r["impl"] == "emotune"]
        peers = [r for r in results if r["group"] == group and r["impl"] != "emotune"]
        for e in mine:
            p = e.get("precision", "f32")
            same = [r for r in peers if r.get("precision", "f32") == p]
            current = [r for r in same if not r["impl"].startswith(LEGACY)]
            legacy = [r for r in same if r["impl"].startswith(LEGACY)]
            for kind, pool in (("best current peer", current), ("torch 1.13 (earlier figures)", legacy)):
                if not pool:
                    continue
                if group == "latency":
                    best = min(pool, key=lambda r: r["step_ms_p50"])
                    print(f"{group} {p}: one text p50 emotune {e['step_ms_p50']:.2f} ms, {label(best)} "
                          f"{best['step_ms_p50']:.2f} ms ({kind}): {best['step_ms_p50'] / e['step_ms_p50']:.2f}x")
                else:
                    best = max(pool, key=lambda r: r["examples_per_s"])
                    print(f"{group} {p} batch {e['batch_size']}: emotune {e['examples_per_s']:.1f} ex/s, {label(best)} "
                          f"{best['examples_per_s']:.1f} ex/s ({kind}): {e['examples_per_s'] / best['examples_per_s']:.2f}x")


if __name__ == "__main__":
    main()
