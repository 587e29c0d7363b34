"""The tokenizers library (Rust, as transformers' fast tokenizers use it) on the same texts as
build/tokenize_bench, one thread, best of 5: the peer for `bench/run.sh tokenize`. Like for like:
ids only (encode_batch_fast, tokenizers >= 0.21, computes no offsets, as emotune's bench asks for
none), and both sides' BPE word caches hold 10,000 words (tokenizers' default, emotune's size).
Usage: tokenize_peer.py MODEL_DIR FILE.tsv [FILE.tsv ...]   -> one JSON line"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
import tokenizers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = []
for path in sys.argv[2:]:
    with open(path, encoding="utf-8") as f:
        texts += [line.split("\t")[0] for line in f]
size = sum(len(t.encode()) for t in texts)
encode = getattr(tok._tokenizer, "encode_batch_fast", tok._tokenizer.encode_batch)
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    ids = encode(texts)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"impl": f"tokenizers {tokenizers.__version__} " + type(tok).__name__, "texts": len(texts), "bytes": size,
                  "seconds": best, "mb_per_s": size / best / 1e6}))
