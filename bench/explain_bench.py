"""Time of one integrated-gradients explanation (32 steps, [PAD] baseline, one label) of a ~20-token
text: `emotune explain` against the same computation in PyTorch with transformers (the model read
with from_pretrained from the same directory; the 32 interpolated inputs_embeds in one batch, one
backward, as Captum's LayerIntegratedGradients does on the word embeddings), in the same run.
emotune's time per explanation excludes its start-up: (time for N+1 texts - time for 1 text) / N.
Usage: explain_bench.py EMOTUNE_BINARY MODEL_DIR DEV_TSV [N] [THREADS]"""
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()


def texts_of_about_20_tokens(tokenizer, path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = line.split("\t")[0]
            if 18 <= len(tokenizer(t)["input_ids"]) <= 22:
                out.append(t)
            if len(out) == n + 1:
                break
    return out


def emotune_seconds(binary, model, texts, threads):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
    try:
        start = time.perf_counter()
        p = subprocess.run([binary, "explain", "--model", model, "--input", f.name, "--format", "jsonl", "--top-k", "1",
                            "--threads", str(threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - start
        assert len(p.stdout.decode().splitlines()) == len(texts)
        return elapsed
    finally:
        os.unlink(f.name)


def torch_seconds(model_dir, texts, steps=32):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    table = model.get_input_embeddings().weight
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).view(-1, 1, 1)
    times = []
    for t in texts:
        start = time.perf_counter()
        ids = tok(t, return_tensors="pt")["input_ids"]
        base = ids.clone()
        base[0, 1:-1] = tok.pad_token_id
        with torch.no_grad():
            label = int(model(input_ids=ids).logits[0].argmax())
        x, b = table[ids[0]], table[base[0]]
        inputs = (b + alphas * (x - b)).requires_grad_(True)
        logits = model(inputs_embeds=inputs, attention_mask=torch.ones(steps, ids.shape[1], dtype=torch.long)).logits
        grad, = torch.autograd.grad(logits[:, label].sum(), inputs)
        attributions = ((x - b) * grad.mean(0)).sum(-1)
        assert attributions.shape[0] == ids.shape[1]
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / (len(times) - 1)  # the first one warms up


def main():
    binary, model, dev = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else os.cpu_count()
    torch.set_num_threads(threads)
    texts = texts_of_about_20_tokens(AutoTokenizer.from_pretrained(model), dev, n)
    one = min(emotune_seconds(binary, model, texts[:1], threads) for _ in range(2))
    many = emotune_seconds(binary, model, texts, threads)
    ours = (many - one) / n
    peer = torch_seconds(model, texts)
    print(json.dumps({"impl": "emotune", "ms_per_explanation": round(ours * 1000, 1), "texts": n, "steps": 32,
                      "startup_s": round(one, 2)}))
    print(json.dumps({"impl": "pytorch+transformers", "ms_per_explanation": round(peer * 1000, 1), "texts": n,
                      "steps": 32, "torch": torch.__version__}))
    print(f"ratio: emotune {peer / ours:.2f}x the speed of the PyTorch loop")


if __name__ == "__main__":
    main()
