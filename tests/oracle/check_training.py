"""`emotune train` against Hugging Face: transformers' own DistilBERT and BERT classifiers in the
standard PyTorch loop, and the Trainer itself (same checkpoint, same batches): losses step for step
and final weights; exact resume; SIGINT; bad input.
Usage: check_training.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          Trainer, TrainingArguments)
from transformers.utils import logging as hf_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EMOTUNE, FAMILIES, GOEMOTIONS, TOKENIZER_DIR, family_config, missing, family_tokenizer,  # noqa: E402
                     first_lines, init_model, main, run, wait_for_lines)

hf_logging.set_verbosity_error()
DROPOUT_FIELDS = {family: tuple(entry["dropouts"]) for family, entry in FAMILIES.items()}


def load_hf(model_dir, dropout=0.0):
    """transformers' classifier from model_dir (from_pretrained), every dropout set to `dropout`."""
    config = AutoConfig.from_pretrained(model_dir)
    for k in DROPOUT_FIELDS[config.model_type]:
        setattr(config, k, dropout)
    return AutoModelForSequenceClassification.from_pretrained(model_dir, config=config)


def read_tsv(tsv, tok):
    with open(tsv, encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f]
    return [(tok(r[0], truncation=True, max_length=128)["input_ids"], [int(x) for x in r[1].split(",")]) for r in rows]


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if "eval" in r]


class Reference:
    """The standard PyTorch loop: AdamW (decay groups), LambdaLR linear warm-up/decay, clip_grad_norm_."""

    def __init__(self, model_dir, dropout=0.0):
        self.model = load_hf(model_dir, dropout)
        self.model.train()
        self.tok = AutoTokenizer.from_pretrained(model_dir)

    def train(self, tsv, steps, bs, lr, wd, warmup, max_norm, objective="multi-label", loss="bce", accum=1,
              focal_gamma=2.0, asl=(4.0, 1.0, 0.05)):
        data = read_tsv(tsv, self.tok)
        L = self.model.config.num_labels
        decay = [p for n, p in self.model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n or "layer_norm" in n)]
        no_decay = [p for n, p in self.model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n or "layer_norm" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=lr, betas=(0.9, 0.999), eps=1e-8)

        def lam(s):
            if s < warmup:
                return s / max(1, warmup)
            return max(0.0, (steps - s) / max(1, steps - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        counts = torch.zeros(L)
        for _, labels in data:
            counts[sorted(set(labels))] += 1
        pos_weight = (len(data) - counts.clamp(min=1)) / counts.clamp(min=1)
        batches = [data[i:i + bs] for i in range(0, len(data), bs)]
        steps_per_epoch = math.ceil(len(batches) / accum)
        losses, norms = [], []
        for step in range(steps):
            k = step % steps_per_epoch
            micro = batches[k * accum:(k + 1) * accum]
            total = 0.0
            for b in micro:
                enc = self.tok.pad({"input_ids": [x[0] for x in b]}, return_tensors="pt")  # right-padded
                ids, mask = enc["input_ids"], enc["attention_mask"]
                targets = torch.zeros(len(b), L)
                for i, (_, labels) in enumerate(b):
                    targets[i, labels] = 1
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                if objective == "single-label":
                    l = F.cross_entropy(logits, torch.tensor([x[1][0] for x in b]))
                elif loss == "weighted-bce":
                    l = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
                elif loss == "focal":
                    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
                    p = torch.sigmoid(logits)
                    p_t = p * targets + (1 - p) * (1 - targets)
                    l = ((1 - p_t) ** focal_gamma * bce).mean()
                elif loss == "asl":  # Ridnik et al. 2021, the paper's defaults; mean instead of sum
                    gamma_neg, gamma_pos, clip = asl
                    p = torch.sigmoid(logits)
                    p_neg = (1 - p + clip).clamp(max=1)
                    pt = p * targets + p_neg * (1 - targets)
                    gamma = gamma_pos * targets + gamma_neg * (1 - targets)
                    ll = targets * torch.log(p.clamp(min=1e-8)) + (1 - targets) * torch.log(p_neg.clamp(min=1e-8))
                    l = -((1 - pt) ** gamma * ll).mean()
                else:
                    l = F.binary_cross_entropy_with_logits(logits, targets)
                (l / len(micro)).backward()
                total += l.item()
            norms.append(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm).item())
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(total / len(micro))
        return losses, norms


def trainer_run(model_dir, tsv, out, steps, bs, lr, wd, warmup, max_norm):
    """Hugging Face's Trainer on model_dir (dropout 0) over tsv in file order: (loss of each step, model)."""
    model = load_hf(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    L = model.config.num_labels
    examples = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [1.0 if i in labels else 0.0 for i in range(L)]}
                for ids, labels in read_tsv(tsv, tok)]
    recorded = []

    class InOrderTrainer(Trainer):
        def _get_train_sampler(self):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, *args, **kwargs):
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            recorded.append((loss[0] if isinstance(loss, tuple) else loss).item())
            return loss

    args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=bs, learning_rate=lr,
                             weight_decay=wd, warmup_steps=warmup, lr_scheduler_type="linear", max_grad_norm=max_norm,
                             adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, optim="adamw_torch",
                             save_strategy="no", report_to=[], use_cpu=True, seed=11, logging_steps=1,
                             disable_tqdm=True, dataloader_drop_last=False)
    InOrderTrainer(model=model, args=args, train_dataset=examples, data_collator=DataCollatorWithPadding(tok)).train()
    return recorded, model


class TrainerParity:
    """emotune train against the Hugging Face Trainer; the class sets tmp, init (a classifier directory)
    and train_tsv in setUpClass."""

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def emotune_train(self, name, *extra, steps=12, bs=8, lr=5e-4, wd=0.01, warmup=3, max_norm=0.1):
        out = os.path.join(self.tmp, name)
        run("train", "--model", self.init, "--train-file", self.train_tsv, "--no-shuffle", "--dropout", "0",
            "--max-steps", str(steps), "--batch-size", str(bs), "--lr", str(lr), "--weight-decay", str(wd),
            "--warmup-steps", str(warmup), "--max-grad-norm", str(max_norm), "--log-every", "1",
            "--eval-every", "none", "--threads", "1", "--output", out, *extra)
        return out

    def compare(self, out, ref_losses, ref_model, ref_norms=None, weights_tol=1e-6):
        logged, _ = read_metrics(out)
        self.assertEqual(len(logged), len(ref_losses))
        worst = 0.0
        for row, want in zip(logged, ref_losses):
            rel = abs(row["loss"] - want) / abs(want)
            worst = max(worst, rel)
            self.assertLessEqual(rel, 1e-4, f"step {row['step']}: {row['loss']} vs {want}")
        if ref_norms:
            for row, want in zip(logged, ref_norms):
                self.assertLessEqual(abs(row["grad_norm"] - want) / want, 1e-3)
        got = load_file(os.path.join(out, "model.safetensors"))
        diff = max((got[n] - p.detach()).abs().max().item() for n, p in ref_model.named_parameters())
        print(f"  {os.path.basename(out)}: {len(ref_losses)} steps, worst loss rel diff {worst:.1e}, "
              f"max |weight diff| {diff:.1e}")
        # Against the PyTorch loop observed up to 1.5e-7 (float summation order); one step of a wrong
        # decay rule moves a weight by lr x decay x weight, ~1e-3 in the heavy-decay case.
        self.assertLessEqual(diff, weights_tol)

    def test_hugging_face_trainer_gives_the_same_losses_and_weights(self):
        """The report's training stack: Trainer with the same arguments (lr, linear schedule with
        warm-up, batch size, fixed order, no dropout, weight decay, clipping), batches padded by
        DataCollatorWithPadding."""
        out = self.emotune_train("vs_trainer", steps=10, bs=8, lr=5e-4, wd=0.01, warmup=3, max_norm=0.1)
        losses, model = trainer_run(self.init, self.train_tsv, os.path.join(self.tmp, "hf_trainer"), steps=10, bs=8,
                                    lr=5e-4, wd=0.01, warmup=3, max_norm=0.1)
        # The Trainer pads and sums in its own order: observed up to 1.5e-6 (MPNet, the real MiniLM).
        self.compare(out, losses, model, weights_tol=5e-6)


class TrainingParity(TrainerParity, unittest.TestCase):
    INIT = {"model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64,
            "max_position_embeddings": 128}
    TOKENIZER = None  # distilbert-base-uncased's

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_train_test_")
        cls.init = init_model(os.path.join(cls.tmp, "init"), seed=11, tokenizer=cls.TOKENIZER, **cls.INIT)
        cls.train_tsv = os.path.join(cls.tmp, "train.tsv")
        with open(os.path.join(GOEMOTIONS, "train.tsv"), encoding="utf-8") as f, open(cls.train_tsv, "w") as out:
            for _, line in zip(range(60), f):  # 60 lines: the last batch of 8 is short
                out.write(line)
        cls.dev_tsv = os.path.join(cls.tmp, "dev.tsv")
        with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f, open(cls.dev_tsv, "w") as out:
            for _, line in zip(range(50), f):
                out.write(line)

    def test_multilabel_bce_with_schedule_clipping_and_decay(self):
        out = self.emotune_train("bce")
        ref = Reference(self.init)
        losses, norms = ref.train(self.train_tsv, 12, 8, 5e-4, 0.01, 3, 0.1)
        self.compare(out, losses, ref.model, norms)
        logged, _ = read_metrics(out)
        self.assertEqual(logged[0]["lr"], 0.0)  # warm-up starts from zero, as LambdaLR does
        self.assertAlmostEqual(logged[3]["lr"], 5e-4)
        self.assertTrue(any(r["grad_norm"] > 0.1 for r in logged))  # clipping was exercised

    def test_heavy_decay_spares_biases_and_layer_norms(self):
        """Weight decay 0.5 at a high rate, clipping binding at every step: decaying a LayerNorm weight
        or a bias (which the reference's no-decay group spares), or skipping a decayed weight, moves
        the weights by ~1e-3 per step, far outside the tolerance."""
        out = self.emotune_train("heavy_decay", steps=5, lr=2e-3, wd=0.5, warmup=0, max_norm=0.05)
        ref = Reference(self.init)
        losses, norms = ref.train(self.train_tsv, 5, 8, 2e-3, 0.5, 0, 0.05)
        self.compare(out, losses, ref.model, norms)
        logged, _ = read_metrics(out)
        self.assertTrue(all(r["grad_norm"] > 0.05 for r in logged))  # clipping bound at every step

    def test_single_label_with_gradient_accumulation(self):
        out = self.emotune_train("single", "--objective", "single-label", "--grad-accum", "2", steps=6, warmup=0)
        ref = Reference(self.init)
        losses, _ = ref.train(self.train_tsv, 6, 8, 5e-4, 0.01, 0, 0.1, objective="single-label", accum=2)
        self.compare(out, losses, ref.model)

    def test_weighted_focal_and_asymmetric_losses(self):
        for loss in ("weighted-bce", "focal", "asl"):
            out = self.emotune_train(loss, "--loss", loss, steps=5)
            ref = Reference(self.init)
            losses, _ = ref.train(self.train_tsv, 5, 8, 5e-4, 0.01, 3, 0.1, loss=loss)
            self.compare(out, losses, ref.model)
        # ASL's own settings reach the loss
        out = self.emotune_train("asl_custom", "--loss", "asl", "--asl-gamma-neg", "2", "--asl-gamma-pos", "0",
                                 "--asl-clip", "0", steps=3)
        ref = Reference(self.init)
        losses, _ = ref.train(self.train_tsv, 3, 8, 5e-4, 0.01, 3, 0.1, loss="asl", asl=(2.0, 0.0, 0.0))
        self.compare(out, losses, ref.model)

    def resumable_args(self, out, steps):
        return ["train", "--model", self.init, "--train-file", self.train_tsv, "--dev-file", self.dev_tsv,
                "--max-steps", str(steps), "--batch-size", "8", "--lr", "1e-3", "--log-every", "1",
                "--eval-every", "5", "--save-every", "4", "--threads", "1", "--output", out]

    def test_resume_gives_identical_losses(self):
        # Shuffling and dropout on: resume must restore the data order and the RNG.
        whole = os.path.join(self.tmp, "whole")
        run(*self.resumable_args(whole, 10))
        cut = os.path.join(self.tmp, "cut")
        run(*self.resumable_args(cut, 10))
        shutil.rmtree(os.path.join(cut, "checkpoints", "step-8"))  # as if killed after step 4..7
        os.remove(os.path.join(cut, "model.safetensors"))
        run(*self.resumable_args(cut, 10), "--resume")
        a, a_eval = read_metrics(whole)
        b, b_eval = read_metrics(cut)
        self.assertEqual([r["loss"] for r in a], [r["loss"] for r in b])
        self.assertEqual([r["step"] for r in b], list(range(1, 11)))
        self.assertEqual(a_eval, b_eval)
        wa = load_file(os.path.join(whole, "model.safetensors"))
        wb = load_file(os.path.join(cut, "model.safetensors"))
        self.assertTrue(all(torch.equal(wa[k], wb[k]) for k in wa))
        self.assertTrue(os.path.exists(os.path.join(cut, "best", "model.safetensors")))

    def test_sigint_saves_and_resume_finishes_identically(self):
        whole = os.path.join(self.tmp, "sig_whole")
        run(*self.resumable_args(whole, 300))
        out = os.path.join(self.tmp, "sig")
        proc = subprocess.Popen([EMOTUNE, *self.resumable_args(out, 300)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 12, 60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            self.skipTest("the run finished before the signal arrived")
        self.assertEqual(proc.returncode, 130, err.decode())
        self.assertIn("--resume", err.decode())
        run(*self.resumable_args(out, 300), "--resume")
        a, _ = read_metrics(whole)
        b, _ = read_metrics(out)
        self.assertEqual([r["loss"] for r in a], [r["loss"] for r in b])


# The same checks on every other family of tests/families.json (BERT: token types, pooler; RoBERTa and
# MPNet: positions from padding_idx + 1, the dense-tanh-out_proj head; MPNet: the relative-position
# bias and its gradient), each with its own real tokenizer.
for _family in FAMILIES:
    if _family != TrainingParity.INIT["model_type"]:
        _name = _family.capitalize() + "TrainingParity"
        globals()[_name] = type(_name, (TrainingParity,), {
            "INIT": family_config(_family, max_position_embeddings=family_config(_family)["max_position_embeddings"]
                                  - 512 + 128, initializer_range=0.02),
            "TOKENIZER": family_tokenizer(_family)})


class RealMiniLMTrainingParity(TrainerParity, unittest.TestCase):
    """all-MiniLM-L6-v2's real weights with a fresh head (path in $EMOTUNE_MINILM, set by scripts/test.sh):
    10 Trainer steps, the same losses and weights."""

    @classmethod
    def setUpClass(cls):
        base = os.environ.get("EMOTUNE_MINILM", "")
        if not base:
            missing("EMOTUNE_MINILM is not set (scripts/test.sh sets it)")
        cls.tmp = tempfile.mkdtemp(prefix="emotune_minilm_train_")
        cls.init = os.path.join(cls.tmp, "init")
        run("init", "--base", base, "--out", cls.init, "--seed", "3")
        cls.train_tsv = os.path.join(cls.tmp, "train.tsv")
        with open(os.path.join(GOEMOTIONS, "train.tsv"), encoding="utf-8") as f, open(cls.train_tsv, "w") as out:
            out.writelines(line for _, line in zip(range(80), f))


def cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return " avx512_bf16" in flags or " amx_bf16" in flags


class Bf16Training(unittest.TestCase):
    """`train --precision bf16` (bfloat16 products, float32 master weights) on all-MiniLM-L6-v2's real
    weights with dropout: step for step within bfloat16's reach of the float32 run, its updates
    pointing the same way, and a float32 model saved."""

    @classmethod
    def setUpClass(cls):
        base = os.environ.get("EMOTUNE_MINILM", "")
        if not base:
            missing("EMOTUNE_MINILM is not set (scripts/test.sh sets it)")
        if not cpu_has_bf16():
            raise unittest.SkipTest("this CPU has neither AVX512_BF16 nor AMX")
        if "oneDNN: no" in run("--version").stdout.decode():
            raise unittest.SkipTest("this emotune has no oneDNN (the libtorch 2.x build): CPU bf16 is oneDNN's")
        cls.tmp = tempfile.mkdtemp(prefix="emotune_bf16_train_")
        cls.init = os.path.join(cls.tmp, "init")
        run("init", "--base", base, "--out", cls.init, "--seed", "3")
        cls.train_tsv = first_lines(os.path.join(GOEMOTIONS, "train.tsv"), 640, os.path.join(cls.tmp, "train.tsv"))
        cls.dev_tsv = first_lines(os.path.join(GOEMOTIONS, "dev.tsv"), 200, os.path.join(cls.tmp, "dev.tsv"))
        cls.runs = {}
        for precision in ("f32", "bf16"):
            out = os.path.join(cls.tmp, precision)
            run("train", "--model", cls.init, "--train-file", cls.train_tsv, "--dev-file", cls.dev_tsv,
                "--max-steps", "40", "--lr", "5e-5", "--log-every", "1", "--eval-every", "40", "--seed", "5",
                "--precision", precision, "--output", out)
            cls.runs[precision] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_losses_follow_the_float32_run(self):
        (f32, f32_eval), (bf16, bf16_eval) = (read_metrics(self.runs[p]) for p in ("f32", "bf16"))
        self.assertEqual(len(f32), 40)
        self.assertEqual(len(bf16), 40)
        rel = [abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(f32, bf16)]
        print(f"  per-step loss: max relative difference {max(rel):.2e}, mean {sum(rel) / len(rel):.2e}")
        self.assertLess(max(rel), 0.01)
        self.assertGreater(max(rel), 0.0, "bf16 changed nothing: were the products still float32?")
        self.assertAlmostEqual(f32_eval[-1]["eval"]["loss"], bf16_eval[-1]["eval"]["loss"], delta=0.02 * f32_eval[-1]["eval"]["loss"])

    def test_updates_point_the_same_way_and_weights_stay_float32(self):
        w0 = load_file(os.path.join(self.init, "model.safetensors"))
        w = {p: load_file(os.path.join(self.runs[p], "model.safetensors")) for p in ("f32", "bf16")}
        d32 = torch.cat([(w["f32"][k] - w0[k]).flatten() for k in w0])
        d16 = torch.cat([(w["bf16"][k] - w0[k]).flatten() for k in w0])
        cosine = torch.nn.functional.cosine_similarity(d32, d16, dim=0).item()
        print(f"  cosine of the two runs' weight updates: {cosine:.4f}")
        self.assertGreater(cosine, 0.9)
        self.assertTrue(all(t.dtype == torch.float32 for t in w["bf16"].values()))
        with open(os.path.join(self.runs["bf16"], "training_args.json")) as f:
            self.assertEqual(json.load(f)["precision"], "bf16")

    def test_int8_training_is_refused(self):
        p = run("train", "--model", self.init, "--train-file", self.train_tsv, "--max-steps", "1", "--precision",
                "int8", "--output", os.path.join(self.tmp, "int8"), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--precision", p.stderr.decode())


class Learning(unittest.TestCase):
    """A tiny model from random initialisation learns GoEmotions in a CI-sized run: its dev macro-F1
    (threshold 0.5) clearly beats the best constant predictor's (a learning test, not a quality claim)."""

    def test_tiny_model_beats_best_constant_predictor(self):
        tmp = tempfile.mkdtemp(prefix="emotune_learn_")
        try:
            config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs",
                                  "distilbert-tiny.json")
            init = os.path.join(tmp, "init")
            run("init", "--config", config, "--tokenizer", TOKENIZER_DIR, "--out", init, "--seed", "1")
            out = os.path.join(tmp, "run")
            run("train", "--model", init, "--data-dir", GOEMOTIONS, "--max-steps", "1200", "--batch-size", "32",
                "--lr", "5e-4", "--warmup-ratio", "0.05", "--loss", "weighted-bce", "--log-every", "100",
                "--output", out)
            _, evals = read_metrics(out)
            macro_f1 = evals[-1]["eval"]["macro"]["f1"]
            # Best constant predictor: per label, always-yes (F1 = 2p/(1+p)) beats always-no (F1 = 0).
            counts, n = [0] * 28, 0
            with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
                for line in f:
                    n += 1
                    for i in set(line.split("\t")[1].split(",")):
                        counts[int(i)] += 1
            constant = sum(2 * (c / n) / (1 + c / n) for c in counts) / 28
            print(f"  dev macro-F1 {macro_f1:.4f} vs best constant predictor {constant:.4f}")
            self.assertGreater(macro_f1, 1.5 * constant)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class BadTrainingInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_train_bad_")
        cls.init = init_model(os.path.join(cls.tmp, "init"), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                              max_position_embeddings=64)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, tsv_bytes, *extra, out="out"):
        tsv = os.path.join(self.tmp, "t.tsv")
        with open(tsv, "wb") as f:
            f.write(tsv_bytes)
        return run("train", "--model", self.init, "--train-file", tsv, "--eval-every", "none", "--max-steps", "1",
                   "--output", os.path.join(self.tmp, out), "--overwrite", *extra, check=False)

    def assert_error(self, p, *needles):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        lines = [l for l in err.splitlines() if "error" in l]
        self.assertEqual(len(lines), 1, err)
        for n in needles:
            self.assertIn(n, lines[0])

    def test_malformed_lines_name_file_and_line(self):
        good = b"fine text\t1\tid1\n"
        self.assert_error(self.train(good + b"no label column\n"), "t.tsv:2", "label")
        self.assert_error(self.train(good + good + b"x\t28\tid\n"), "t.tsv:3", "out of range")
        self.assert_error(self.train(b"x\tjoy\tid\n"), "t.tsv:1", "not a number")
        self.assert_error(self.train(good + b"bad \xff utf8\t1\tid\n"), "t.tsv:2", "UTF-8")
        p = self.train(good + b"no label column\n" + good, "--skip-bad-lines")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("skipped 1 bad line", p.stderr.decode())

    def test_missing_files_and_bad_flag_values(self):
        self.assert_error(run("train", "--model", self.init, "--train-file", "/nonexistent.tsv", "--eval-every", "none",
                              "--output", os.path.join(self.tmp, "o"), check=False), "/nonexistent.tsv")
        self.assert_error(self.train(b"a\t1\tx\n", "--objective", "sideways"), "objective")
        self.assert_error(self.train(b"a\t1\tx\n", "--eval-every", "sometimes"), "eval-every")
        self.assert_error(run("train", "--model", "/nonexistent-model", "--data-dir", GOEMOTIONS,
                              "--output", os.path.join(self.tmp, "o2"), check=False), "/nonexistent-model")

    def test_other_architecture_is_refused(self):
        other = os.path.join(self.tmp, "other")
        shutil.copytree(self.init, other)
        with open(os.path.join(other, "config.json")) as f:
            cfg = json.load(f)
        cfg["model_type"] = "gpt2"
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.assert_error(run("train", "--base", other, "--data-dir", GOEMOTIONS, "--output",
                              os.path.join(self.tmp, "o3"), check=False), "gpt2")

    def test_existing_output_is_kept_without_overwrite(self):
        out = os.path.join(self.tmp, "kept")
        os.makedirs(out)
        with open(os.path.join(out, "precious.txt"), "w") as f:
            f.write("keep me")
        p = run("train", "--model", self.init, "--data-dir", GOEMOTIONS, "--output", out, check=False)
        self.assert_error(p, "--overwrite")
        with open(os.path.join(out, "precious.txt")) as f:
            self.assertEqual(f.read(), "keep me")


if __name__ == "__main__":
    main()
