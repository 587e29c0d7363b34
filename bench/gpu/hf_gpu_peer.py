"""The Hugging Face peers of issue 20 on one CUDA card, one JSON line each.
  trainer   Trainer(bf16=True) fine-tuning the model directory on the GoEmotions TSV (multi-label BCE,
            batch 16, lr 2e-5, max_grad_norm 1, the data shuffled as Trainer does) for --steps steps:
            wall time, examples/s, and the time of 3 epochs at that rate
  pipeline  transformers' text-classification pipeline (sigmoid scores of every label) over the
            TSV's texts on the card, with batch size 32 and 1: wall time and texts/s
Usage: hf_gpu_peer.py (trainer|pipeline) --model DIR --data FILE [--steps N] [--texts N]"""
import argparse
import os
import contextlib
import json
import sys
import tempfile
import time

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, pipeline)
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the data loader forks after tokenizing
CUDA = torch.cuda.is_available()  # without a card the same runs go to the CPU (a smoke test only)


def finish_queued_work():
    if CUDA:
        torch.cuda.synchronize()


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def trainer(a):
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForSequenceClassification.from_pretrained(a.model, problem_type="multi_label_classification")
    labels = model.config.num_labels
    rows = read_tsv(a.data)
    examples = []
    for text, ids, *_ in rows:
        enc = tok(text, truncation=True, max_length=128)
        hot = [0.0] * labels
        for i in ids.split(","):
            hot[int(i)] = 1.0
        examples.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": hot})
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=a.steps, per_device_train_batch_size=16, learning_rate=2e-5,
                                 max_grad_norm=1.0, bf16=CUDA, use_cpu=not CUDA, save_strategy="no", report_to=[], disable_tqdm=True,
                                 logging_strategy="no", seed=42, dataloader_num_workers=2)
        run = Trainer(model=model, args=args, train_dataset=examples, data_collator=DataCollatorWithPadding(tok))
        with contextlib.redirect_stdout(sys.stderr):
            finish_queued_work()
            t0 = time.perf_counter()
            run.train()
            finish_queued_work()
            seconds = time.perf_counter() - t0
    per_s = a.steps * 16 / seconds
    print(json.dumps({"impl": "transformers-trainer", "precision": "bf16" if CUDA else "f32", "device": torch.cuda.get_device_name() if CUDA else "cpu",
                      "steps": a.steps, "seconds": seconds, "examples_per_s": per_s,
                      "three_epochs_s_at_this_rate": 3 * len(examples) / per_s}))


def pipe(a):
    texts = [r[0] for r in read_tsv(a.data)]
    texts = texts[:a.texts] if a.texts else texts
    for batch in (32, 1):
        clf = pipeline("text-classification", model=a.model, device=0 if CUDA else -1, top_k=None, function_to_apply="sigmoid")
        clf(texts[:64], batch_size=batch)  # warm-up
        finish_queued_work()
        t0 = time.perf_counter()
        clf(texts, batch_size=batch, truncation=True, max_length=128)
        finish_queued_work()
        seconds = time.perf_counter() - t0
        print(json.dumps({"impl": "transformers-pipeline", "batch_size": batch, "texts": len(texts),
                          "seconds": seconds, "texts_per_s": len(texts) / seconds}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["trainer", "pipeline"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--texts", type=int, default=0, help="pipeline: only the first N texts (0 = all)")
    a = ap.parse_args()
    trainer(a) if a.mode == "trainer" else pipe(a)


if __name__ == "__main__":
    main()
