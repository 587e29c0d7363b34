"""Batch prediction over a whole GoEmotions split: `emotune predict` (wall clock of the command,
model load included) against the PyTorch peer doing the same work (reference tokenizer, texts sorted
by length, batches of 32, inference mode; its model load and tokenization included too).
Usage: predict_bench.py EMOTUNE MODEL_DIR SPLIT.tsv [--threads N]"""
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
from bert_tokenizer_ref import ReferenceBertTokenizer  # noqa: E402
from distilbert_ref import batch, load_classifier  # noqa: E402


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
    os.unlink(path)

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, _ = load_classifier(model_dir)
    tok = ReferenceBertTokenizer(os.path.join(model_dir, "vocab.txt"))
    ids = sorted((tok.encode(t, 512)[0] for t in texts), key=len)
    with torch.inference_mode():
        for i in range(0, len(ids), 32):
            torch.sigmoid(model(*batch(ids[i:i + 32])))
    torch_s = time.perf_counter() - t0
    print(json.dumps({"texts": len(texts), "threads": threads, "emotune_examples_per_s": len(texts) / emotune_s,
                      "pytorch_examples_per_s": len(texts) / torch_s, "ratio": torch_s / emotune_s}))


if __name__ == "__main__":
    main()
