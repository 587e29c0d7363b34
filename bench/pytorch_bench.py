"""The Hugging Face peers of `emotune bench`: transformers' own classifier (read with from_pretrained
from an emotune/Hugging Face model directory), the same random batches (splitmix64 over the seed),
padded to each batch's longest text, timed the same way.
  train    the plain PyTorch loop: forward, BCE, backward, clip_grad_norm_(1.0), AdamW(2e-5)
  trainer  Hugging Face Trainer (the report's training stack) over the same batches in order,
           padded by DataCollatorWithPadding, max_grad_norm 1, lr 2e-5; each optimizer step timed
  infer    forward in inference mode
  ddp      the train loop under torchrun with DistributedDataParallel (gloo): each rank takes its share
           of every global batch (python3 -m torch.distributed.run --nproc-per-node N pytorch_bench.py ddp ...)
With --compile the model runs through torch.compile (torch 2.x; the first --warmup steps, 5 by
default then, take the compilations). It runs under whichever torch the interpreter has: Debian's 1.13
(build/pyenv) or a current one (build/peersenv, bench/install-peers.sh); "impl" names the version.
Usage: pytorch_bench.py (train|trainer|infer|ddp) --model DIR --data FILE [--steps N] [--warmup N]
       [--batch-size N] [--seed N] [--threads N] [--precision f32|bf16] [--compile]"""
import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from batches import draw_batches, percentile, read_rows
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainerCallback, TrainingArguments)
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()


def flops_per_token(c, seq):
    d = c.hidden_size  # transformers maps DistilBERT's dim/n_layers to these names; not hidden_dim
    h = c.intermediate_size if hasattr(c, "intermediate_size") else c.hidden_dim
    return c.num_hidden_layers * (2 * (4 * d * d + 2 * d * h) + 4 * seq * d)


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "trainer", "infer", "ddp"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (2; 5 with --compile)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: CPU autocast to bfloat16 (train, trainer: TrainingArguments(bf16=True))")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch 2.x)")
    a = ap.parse_args()
    if a.warmup is None:
        a.warmup = 5 if a.compile else 2
    bf16 = a.precision == "bf16"
    torch.set_num_threads(a.threads)
    model = AutoModelForSequenceClassification.from_pretrained(a.model)
    rank, world = 0, 1
    if a.mode == "ddp":  # started by torchrun: each rank trains on its share of every global batch
        torch.distributed.init_process_group("gloo")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        model = torch.nn.parallel.DistributedDataParallel(model)
    if a.compile and a.mode != "trainer":
        model = torch.compile(model)
    tok = AutoTokenizer.from_pretrained(a.model)
    config = model.module.config if a.mode == "ddp" else model.config
    L = config.num_labels
    ex = draw_batches(tok, read_rows(a.data), a.seed, a.batch_size, a.warmup + a.steps)

    if a.mode == "trainer":
        examples = [{"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [1.0 if i in labels else 0.0 for i in range(L)]} for b in ex for ids, labels in b]

        class InOrderTrainer(Trainer):
            def _get_train_sampler(self, *_):  # transformers 5 passes the dataset
                return torch.utils.data.SequentialSampler(self.train_dataset)

        timer = StepTimer()
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(output_dir=out, max_steps=a.warmup + a.steps, per_device_train_batch_size=a.batch_size,
                                     learning_rate=2e-5, max_grad_norm=1.0, save_strategy="no", report_to=[],
                                     use_cpu=True, disable_tqdm=True, logging_strategy="no", bf16=bf16,
                                     torch_compile=a.compile)
            with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its summary; stdout is the JSON line
                InOrderTrainer(model=model, args=args, train_dataset=examples,
                               data_collator=DataCollatorWithPadding(tok), callbacks=[timer]).train()
        step_times = timer.times[a.warmup:]
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
        step_times = []
        for k, b in enumerate(ex):
            if a.mode == "ddp":
                each, extra = divmod(len(b), world)
                start = rank * each + min(rank, extra)
                b = b[start:start + each + (1 if rank < extra else 0)]
            enc = tok.pad({"input_ids": [e[0] for e in b]}, return_tensors="pt")  # right-padded to the longest
            ids, mask = enc["input_ids"], enc["attention_mask"]
            targets = torch.zeros(len(b), L)
            for i, e in enumerate(b):
                targets[i, e[1]] = 1
            t0 = time.perf_counter()
            if a.mode in ("train", "ddp"):
                model.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(input_ids=ids, attention_mask=mask).logits
                loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
            else:
                model.eval()
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model(input_ids=ids, attention_mask=mask)
            if k >= a.warmup:
                step_times.append(time.perf_counter() - t0)
    seconds = sum(step_times)
    real = padded = flops = 0.0
    for b in ex[a.warmup:]:
        n_real = sum(len(e[0]) for e in b)
        seq = max(len(e[0]) for e in b)
        real += n_real
        padded += seq * len(b)
        flops += n_real * flops_per_token(config, seq) * (1 if a.mode == "infer" else 3)
    if rank != 0:
        return
    impl = {"trainer": "transformers-trainer", "ddp": f"pytorch-ddp-{world}"}.get(a.mode, "pytorch")
    impl += "-" + torch.__version__.split("+")[0] + ("-compiled" if a.compile else "")
    print(json.dumps({"mode": a.mode, "impl": impl, "precision": a.precision,
                      "batch_size": a.batch_size, "steps": a.steps, "threads": torch.get_num_threads(),
                      "examples_per_s": a.steps * a.batch_size / seconds, "tokens_per_s": real / seconds,
                      "padded_tokens_per_s": padded / seconds, "gflops_per_s": flops / seconds / 1e9,
                      "step_ms_p50": percentile(step_times, 0.5) * 1000,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
