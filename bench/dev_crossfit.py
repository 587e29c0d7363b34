"""Dev macro-F1 with per-label thresholds, without touching test: two-fold cross-fitting on dev.

Usage: dev_crossfit.py EMOTUNE MODEL_DIR DEV_TSV [--scores FILE.npy]

emotune's `eval --thresholds tuned` tunes on dev and reports another split, so it cannot score a
choice on dev itself. Scoring dev at 0.5 instead is unfair between losses that calibrate
differently (weighted and asymmetric losses push scores up on purpose). So: split dev into two
fixed halves (even and odd lines), tune each label's threshold on one half the way emotune does
(0.01..0.99, the best F1, ties to the larger threshold), apply it to the other half, and score
macro-F1 over the whole of dev with every text judged by thresholds it did not help choose.
Prints one line: cross-fitted macro-F1, micro-F1 and the same model's macro-F1 at 0.5; then the
same cross-fitted figures for a second grid, uniform in logits (sigmoid(-7..7, step 0.05)), which
reaches past 0.99 where weighted losses put their thresholds. --scores caches the model's dev scores
(read if the file exists, written if not).
"""
import os
import json
import subprocess
import sys

import numpy as np


def read_dev(path):
    texts, gold = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text, ids, _ = line.rstrip("\n").split("\t")
            texts.append(text)
            gold.append([int(i) for i in ids.split(",")])
    return texts, gold


def model_scores(emotune, model, texts):
    labels = json.load(open(f"{model}/config.json"))["id2label"]
    labels = [labels[str(i)] for i in range(len(labels))]
    out = subprocess.run([emotune, "predict", "--model", model, "--format", "jsonl", "--threshold", "0.5"],
                         input="\n".join(texts) + "\n", capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line)["scores"] for line in out.splitlines()]
    assert len(rows) == len(texts), f"predict gave {len(rows)} rows for {len(texts)} texts"
    return np.array([[r[name] for name in labels] for r in rows], dtype=np.float32)


def f1(pred, gold):
    tp = np.logical_and(pred, gold).sum(0)
    denom = pred.sum(0) + gold.sum(0)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


PROBABILITY_GRID = np.arange(1, 100, dtype=np.float32) / 100
LOGIT_GRID = (1 / (1 + np.exp(-np.arange(-140, 141) * 0.05))).astype(np.float32)


def tune(probs, gold, grid):
    best = np.full(probs.shape[1], 0.5, dtype=np.float32)
    best_f1 = np.full(probs.shape[1], -1.0)
    for t in grid:  # ascending, ">=": ties go to the larger threshold, as in emotune
        score = f1(probs >= t, gold)
        better = score >= best_f1
        best[better], best_f1[better] = t, score[better]
    return best


def cross_fitted(probs, gold, grid):
    halves = [np.arange(0, len(probs), 2), np.arange(1, len(probs), 2)]
    pred = np.zeros_like(gold)
    for tune_on, judge in (halves, halves[::-1]):
        pred[judge] = probs[judge] >= tune(probs[tune_on], gold[tune_on], grid)
    tp, n_pred, n_gold = np.logical_and(pred, gold).sum(), pred.sum(), gold.sum()
    return f1(pred, gold).mean(), 2 * tp / (n_pred + n_gold)


def main():
    emotune, model, dev = sys.argv[1:4]
    cache = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--scores" else None
    texts, gold_ids = read_dev(dev)
    if cache and os.path.exists(cache):
        probs = np.load(cache)
    else:
        probs = model_scores(emotune, model, texts)
        if cache:
            np.save(cache, probs)
    gold = np.zeros_like(probs, dtype=bool)
    for i, ids in enumerate(gold_ids):
        gold[i, ids] = True
    macro, micro = cross_fitted(probs, gold, PROBABILITY_GRID)
    print("%.4f (dev cross-fitted macro-F1; micro-F1 %.4f; macro-F1 @0.5 %.4f)"
          % (macro, micro, f1(probs >= 0.5, gold).mean()))
    macro, micro = cross_fitted(probs, gold, LOGIT_GRID)
    print("%.4f (the same on the logit grid; micro-F1 %.4f)" % (macro, micro))


if __name__ == "__main__":
    main()
