"""`emotune eval` against scikit-learn on the probabilities it dumps, threshold tuning recomputed
independently, taxonomy grouping, the reports' structure, and errors.
Usage: check_eval.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from sklearn import metrics as skm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EMOTUNE, GOEMOTIONS, init_model, main, run  # noqa: E402


def load_dump(path, n_labels):
    gold, probs = [], []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            y = np.zeros(n_labels, dtype=int)
            y[row["gold"]] = 1
            gold.append(y)
            probs.append(row["probs"])
    return np.array(gold), np.array(probs, dtype=np.float64)


class Eval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_eval_test_")
        # A wide initialisation spreads the probabilities, so every metric sees real variety.
        cls.model = init_model(os.path.join(cls.tmp, "model"), seed=4, dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                               max_position_embeddings=128, initializer_range=0.6)
        cls.report = os.path.join(cls.tmp, "report")
        cls.test_dump = os.path.join(cls.tmp, "test.jsonl")
        cls.dev_dump = os.path.join(cls.tmp, "dev.jsonl")
        run("eval", "--model", cls.model, "--data", os.path.join(GOEMOTIONS, "dev.tsv"), "--dump-probs", cls.dev_dump)
        cls.out = run("eval", "--model", cls.model, "--data-dir", GOEMOTIONS, "--split", "test", "--thresholds",
                      "tuned", "--report", cls.report, "--dump-probs", cls.test_dump).stdout.decode()
        with open(os.path.join(cls.report, "report.json")) as f:
            cls.r = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_report_fields_and_provenance(self):
        r = self.r
        for k in ("split", "n_examples", "loss", "exact_match", "hamming_loss", "micro", "macro", "weighted",
                  "roc_auc_macro", "ece", "top1_accuracy_first_label", "top1_accuracy_any_label", "thresholds",
                  "per_label"):
            self.assertIn(k, r)
        self.assertEqual(r["split"], "test")
        self.assertEqual(r["n_examples"], 5427)
        self.assertEqual(r["thresholds"]["source"], "dev")
        self.assertEqual(len(r["per_label"]), 28)
        self.assertEqual(len(r["model"]["sha256"]), 64)
        self.assertEqual(r["data"]["sha256"], "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4")
        self.assertIn("macro", self.out)  # the headline table on the terminal

    def test_metrics_match_scikit_learn(self):
        r = self.r
        y, p = load_dump(self.test_dump, 28)
        t = np.array(r["thresholds"]["values"])
        pred = (p >= t).astype(int)
        for avg in ("micro", "macro", "weighted"):
            pr, rc, f1, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
            self.assertAlmostEqual(r[avg]["precision"], pr, places=9, msg=avg)
            self.assertAlmostEqual(r[avg]["recall"], rc, places=9, msg=avg)
            self.assertAlmostEqual(r[avg]["f1"], f1, places=9, msg=avg)
        self.assertAlmostEqual(r["exact_match"], skm.accuracy_score(y, pred), places=12)
        self.assertAlmostEqual(r["hamming_loss"], skm.hamming_loss(y, pred), places=12)
        pr, rc, f1, sup = skm.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
        aucs = []
        for l, row in enumerate(r["per_label"]):
            self.assertAlmostEqual(row["f1"], f1[l], places=9)
            self.assertEqual(row["support"], sup[l])
            self.assertEqual(row["predicted"], pred[:, l].sum())
            if 0 < y[:, l].sum() < len(y):
                auc = skm.roc_auc_score(y[:, l], p[:, l])
                self.assertAlmostEqual(row["roc_auc"], auc, places=6)
                aucs.append(auc)
            else:
                self.assertIsNone(row["roc_auc"])
        self.assertAlmostEqual(r["roc_auc_macro"], np.mean(aucs), places=6)
        # The loss is the model's objective, BCE on the logits (which `predict --logits` gives).
        import torch
        with open(os.path.join(GOEMOTIONS, "test.tsv"), encoding="utf-8") as f:
            texts = "".join(l.split("\t")[0] + "\n" for l in f)
        out = subprocess.run([EMOTUNE, "predict", "--model", self.model, "--logits", "--format", "jsonl"],
                             input=texts.encode(), stdout=subprocess.PIPE, check=True).stdout.decode()
        logits = torch.tensor([json.loads(l)["logits"] for l in out.splitlines()])
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(y, dtype=torch.float32))
        self.assertAlmostEqual(r["loss"], bce.item(), places=4)
        # ECE over all label probabilities, 15 equal-width bins
        flat_p, flat_y = p.ravel(), y.ravel()
        bins = np.minimum((flat_p * 15).astype(int), 14)
        ece = sum(abs(flat_y[bins == b].mean() - flat_p[bins == b].mean()) * (bins == b).sum()
                  for b in range(15) if (bins == b).any()) / flat_p.size
        self.assertAlmostEqual(r["ece"], ece, places=5)
        # single-label figures
        first = []
        with open(os.path.join(GOEMOTIONS, "test.tsv"), encoding="utf-8") as f:
            first = [int(l.split("\t")[1].split(",")[0]) for l in f]
        top1 = p.argmax(1)
        self.assertAlmostEqual(r["top1_accuracy_first_label"], float(np.mean(top1 == np.array(first))), places=12)
        self.assertAlmostEqual(r["top1_accuracy_any_label"], float(np.mean(y[np.arange(len(y)), top1])), places=12)

    def test_thresholds_tuned_on_dev_and_saved(self):
        y, p = load_dump(self.dev_dump, 28)
        grid = np.round(np.arange(1, 100) / 100, 2)
        want = []
        for l in range(28):
            f1s = [skm.f1_score(y[:, l], (p[:, l] >= np.float32(t)).astype(int), zero_division=0) for t in grid]
            best = max(f1s)
            want.append(max(t for t, f in zip(grid, f1s) if f == best))  # ties: the larger threshold
        got = self.r["thresholds"]["values"]
        self.assertTrue(np.allclose(got, want, atol=1e-6), (got, want))
        with open(os.path.join(self.model, "thresholds.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["values"], got)
        # predict now uses them
        out = json.loads(run("predict", "--model", self.model, "--format", "jsonl", "hello there").stdout)
        chosen = [l for l, s in out["scores"].items()]
        labels = [row["label"] for row in self.r["per_label"]]
        expect = sorted([lab for lab, t in zip(labels, got) if out["scores"][lab] >= t - 5e-7],
                        key=lambda lab: -out["scores"][lab])
        self.assertEqual(set(out["labels"]), set(expect))
        self.assertEqual(len(chosen), 28)

    def test_never_tuned_on_the_reported_split(self):
        p = run("eval", "--model", self.model, "--data-dir", GOEMOTIONS, "--split", "dev", "--thresholds", "tuned",
                check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("never tuned", p.stderr.decode())

    def test_bad_arguments(self):
        p = run("eval", "--model", self.model, "--data-dir", GOEMOTIONS, "--thresholds", "1.5", check=False)
        self.assertEqual(p.returncode, 2)
        p = run("eval", "--model", self.model, "--data", "/nonexistent.tsv", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent.tsv", p.stderr.decode())

    def test_taxonomy_groups_take_the_max_over_members(self):
        for taxonomy, mapping in (("ekman", "ekman_mapping.json"), ("sentiment", "sentiment_mapping.json")):
            dump = os.path.join(self.tmp, f"{taxonomy}.jsonl")
            run("eval", "--model", self.model, "--data", os.path.join(GOEMOTIONS, "dev.tsv"), "--taxonomy", taxonomy,
                "--dump-probs", dump)
            with open(os.path.join(GOEMOTIONS, mapping)) as f:
                groups = json.load(f)
            with open(os.path.join(GOEMOTIONS, "emotions.txt")) as f:
                names = f.read().split()
            _, p28 = load_dump(self.dev_dump, 28)
            gy, gp = load_dump(dump, len(groups) + 1)
            for g, members in enumerate(groups.values()):
                want = p28[:, [names.index(m) for m in members]].max(1)
                self.assertTrue(np.allclose(gp[:, g], want, atol=1e-7), taxonomy)
            self.assertTrue(np.allclose(gp[:, -1], p28[:, 27]))  # neutral stays neutral

    def test_html_report_draws_every_chart(self):
        class Charts(html.parser.HTMLParser):
            def __init__(self):
                super().__init__()
                self.figures, self.current = {}, None

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "figure":
                    self.current = a.get("id")
                    self.figures[self.current] = 0
                elif self.current and tag in ("rect", "polyline", "circle", "line"):
                    self.figures[self.current] += 1

            def handle_endtag(self, tag):
                if tag == "figure":
                    self.current = None

        parser = Charts()
        with open(os.path.join(self.report, "report.html"), encoding="utf-8") as f:
            text = f.read()
        parser.feed(text)
        for fig in ("per-label", "threshold", "calibration", "cooccurrence", "confusion"):
            self.assertGreater(parser.figures.get(fig, 0), 10, fig)
        self.assertNotIn("http://", text.replace("http://www.w3.org/2000/svg", ""))  # self-contained
        with open(os.path.join(self.report, "report.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn("1.686", md)
        self.assertIn("52.4", md)


if __name__ == "__main__":
    main()
