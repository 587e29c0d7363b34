"""The PyTorch peer of `emotune bench`: the same model (read from an emotune/Hugging Face model
directory), the same random batches (splitmix64 over the seed), padded to each batch's longest text,
timed the same way. Training step = forward, BCE, backward, clip_grad_norm_(1.0), AdamW(2e-5).
Usage: pytorch_bench.py (train|infer) --model DIR --data FILE [--steps N] [--warmup N]
       [--batch-size N] [--seed N] [--threads N]"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
from bert_tokenizer_ref import ReferenceBertTokenizer  # noqa: E402
from distilbert_ref import batch, load_classifier  # noqa: E402

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def flops_per_token(c, seq):
    d, h = c["dim"], c["hidden_dim"]
    return c["n_layers"] * (2 * (4 * d * d + 2 * d * h) + 4 * seq * d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "infer"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, config = load_classifier(a.model)
    tok = ReferenceBertTokenizer(os.path.join(a.model, "vocab.txt"))
    with open(a.data, encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f]
    cache = {}

    def encoded(i):
        if i not in cache:
            cache[i] = (tok.encode(rows[i][0], 128)[0], [int(x) for x in rows[i][1].split(",")])
        return cache[i]

    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    real = padded = flops = seconds = 0.0
    for k in range(a.warmup + a.steps):
        picks = [splitmix64(a.seed * 1000003 + k * a.batch_size + j) % len(rows) for j in range(a.batch_size)]
        ex = [encoded(i) for i in picks]
        ids, mask = batch([e[0] for e in ex])
        targets = torch.zeros(len(ex), len(config["id2label"]))
        for i, e in enumerate(ex):
            targets[i, e[1]] = 1
        t0 = time.perf_counter()
        if a.mode == "train":
            model.train()
            loss = F.binary_cross_entropy_with_logits(model(ids, mask), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
        else:
            model.eval()
            with torch.inference_mode():
                model(ids, mask)
        dt = time.perf_counter() - t0
        if k < a.warmup:
            continue
        seconds += dt
        n_real = int(mask.sum())
        real += n_real
        padded += ids.numel()
        flops += n_real * flops_per_token(config, ids.shape[1]) * (3 if a.mode == "train" else 1)
    print(json.dumps({"mode": a.mode, "impl": "pytorch", "batch_size": a.batch_size, "steps": a.steps,
                      "threads": torch.get_num_threads(), "examples_per_s": a.steps * a.batch_size / seconds,
                      "tokens_per_s": real / seconds, "padded_tokens_per_s": padded / seconds,
                      "gflops_per_s": flops / seconds / 1e9,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
