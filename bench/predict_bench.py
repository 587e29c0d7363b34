"""Batch prediction over a whole GoEmotions split: `emotune predict` (wall clock of the command,
model load included) and the Python package (emotune.Model(...).predict(texts), load included, in
the build's Python: BUILD/pyenv with PYTHONPATH=BUILD/python, beside the program) against two Hugging
Face peers doing the same work, model load and tokenization included too: transformers' classifier in
a plain loop (texts sorted by length, batches of 32, inference mode), and
pipeline("text-classification", top_k=None, batch_size=32).
Usage: predict_bench.py EMOTUNE MODEL_DIR SPLIT.tsv [--threads N]"""
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()


def main():
    emotune, model_dir, split = sys.argv[1:4]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count()
    with open(split, encoding="utf-8") as f:
        texts = [l.split("\t")[0] for l in f]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        path = f.name
    t0 = time.perf_counter()
    p = subprocess.run([emotune, "predict", "--model", model_dir, "--input", path, "--format", "jsonl",
                        "--batch-size", "32", "--threads", str(threads)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, check=True)
    emotune_s = time.perf_counter() - t0
    assert len(p.stdout.splitlines()) == len(texts)

    # The package cannot share a process with this (peer) torch: it runs in the build's Python.
    build = os.path.dirname(os.path.abspath(emotune))
    package = subprocess.run(
        [os.path.join(build, "pyenv", "bin", "python"), "-c",
         "import sys, time\nt0 = time.perf_counter()\nimport emotune\n"
         "texts = [l.rstrip('\\n') for l in open(sys.argv[1], encoding='utf-8')]\n"
         f"out = emotune.Model(sys.argv[2], threads={threads}, batch_size=32).predict(texts)\n"
         "assert len(out) == len(texts)\nprint(time.perf_counter() - t0)", path, model_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True, text=True,
        env={**os.environ, "PYTHONPATH": os.path.join(build, "python")})
    package_s = float(package.stdout.split()[-1])
    os.unlink(path)

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for i in range(0, len(order), 32):
            enc = tok([texts[j] for j in order[i:i + 32]], padding=True, truncation=True, max_length=512,
                      return_tensors="pt")
            torch.sigmoid(model(**enc).logits)
    torch_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    pipe = pipeline("text-classification", model=model_dir, top_k=None, device=-1)
    out = pipe(texts, batch_size=32, truncation=True, max_length=512)
    pipeline_s = time.perf_counter() - t0
    assert len(out) == len(texts)
    print(json.dumps({"texts": len(texts), "threads": threads, "emotune_examples_per_s": len(texts) / emotune_s,
                      "package_examples_per_s": len(texts) / package_s, "package_ratio_vs_pipeline": pipeline_s / package_s,
                      "pytorch_examples_per_s": len(texts) / torch_s, "pipeline_examples_per_s": len(texts) / pipeline_s,
                      "ratio_vs_pytorch": torch_s / emotune_s, "ratio_vs_pipeline": pipeline_s / emotune_s}))


if __name__ == "__main__":
    main()
