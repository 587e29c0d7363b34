"""How far --quantize int8 moves a model's answers from float: runs `emotune eval` on a split twice
(float, int8), dumping probabilities, and prints one JSON line: the largest probability difference,
the share of texts whose label set (threshold 0.5) is unchanged and whose top label is, macro-F1 of each, and wall times.
  bench/int8_agreement.py EMOTUNE MODEL_DIR DATA_DIR [dev|test]"""
import json
import os
import subprocess
import sys
import tempfile
import time


def run_eval(emotune, model, data_dir, split, out, quantize):
    t0 = time.perf_counter()
    subprocess.run([emotune, "eval", "--model", model, "--data-dir", data_dir, "--split", split,
                    "--dump-probs", os.path.join(out, "probs.jsonl"), "--report", out, "--quantize", quantize],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    with open(os.path.join(out, "probs.jsonl")) as f:
        probs = [json.loads(line)["probs"] for line in f]
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    return probs, report, seconds


def macro_f1(report):
    return report["macro"]["f1"]


def main():
    emotune, model, data_dir = sys.argv[1:4]
    split = sys.argv[4] if len(sys.argv) > 4 else "dev"
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        pf, rf, tf = run_eval(emotune, model, data_dir, split, a, "none")
        pq, rq, tq = run_eval(emotune, model, data_dir, split, b, "int8")
    diff = max(abs(x - y) for u, v in zip(pf, pq) for x, y in zip(u, v))
    same = sum(1 for u, v in zip(pf, pq) if [x >= 0.5 for x in u] == [y >= 0.5 for y in v]) / len(pf)
    top = sum(1 for u, v in zip(pf, pq) if u.index(max(u)) == v.index(max(v))) / len(pf)
    print(json.dumps({"split": split, "texts": len(pf), "max_prob_diff": diff, "label_set_agreement": same,
                      "top_label_agreement": top,
                      "macro_f1_float": macro_f1(rf), "macro_f1_int8": macro_f1(rq),
                      "eval_seconds_float": round(tf, 1), "eval_seconds_int8": round(tq, 1)}))


if __name__ == "__main__":
    main()
