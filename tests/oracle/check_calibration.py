"""`emotune calibrate` against PyTorch: on dev labels drawn from a known calibration of a small model's
own logits, the fits equal torch's minimisers of binary cross-entropy; the choice between fits is the
cross-fitted log-loss's; predict, eval and explain show the calibrated scores; train calibrates at its
end; bad calibration files are refused.
Usage: check_calibration.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import GOEMOTIONS, first_lines, init_model, main, run  # noqa: E402

FITS = ["temperature", "temperature-per-label", "platt", "platt-per-label"]


def emotune_logits(model, texts):
    p = run("predict", "--model", model, "--format", "jsonl", "--logits", "--threshold", "0.5",
            input_text="\n".join(texts) + "\n")
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    return rows


def torch_fit(z, y, fit):
    """The minimiser of mean BCE(sigmoid(a z + c), y) by L-BFGS in float64: per label or pooled;
    temperature = 1 / a, bias = c."""
    per_label, with_bias = fit.endswith("-per-label"), fit.startswith("platt")
    z, y = torch.tensor(z, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    if not per_label:
        z, y = z.reshape(-1, 1), y.reshape(-1, 1)
    a = torch.ones(z.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    params = [a, c] if with_bias else [a]
    opt = torch.optim.LBFGS(params, lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z * a + c, y, reduction="sum")
        loss.backward()
        return loss
    opt.step(closure)
    n_labels = 28
    a, c = a.detach().expand(n_labels).numpy(), c.detach().expand(n_labels).numpy()
    if not with_bias:  # calibration.json's bounds; for a convex function of one variable, the clamped optimum
        a = np.clip(a, 1e-3, 1e3)
    return 1 / a, c


def bce(z, y, temperature, bias):
    s = torch.tensor(z / temperature + bias, dtype=torch.float64)
    return torch.nn.functional.binary_cross_entropy_with_logits(s, torch.tensor(y, dtype=torch.float64)).item()


def ece(p, y, bins=15):
    p, y = p.ravel(), y.ravel()
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).sum() / len(p)
               for b in range(bins) if (idx == b).any())


class Calibrate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_calibration_test_")
        cls.model = init_model(os.path.join(cls.tmp, "model"), seed=4, dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                               max_position_embeddings=128, initializer_range=0.25)
        with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
            cls.texts = [line.split("\t")[0] for line in f][:3000]
        rows = emotune_logits(cls.model, cls.texts)
        cls.z = np.array([r["logits"] for r in rows], dtype=np.float64)
        # Gold labels drawn from a known per-label calibration of the model's own logits.
        rng = np.random.default_rng(7)
        cls.true_t = rng.uniform(0.5, 2.0, 28)
        cls.true_b = rng.uniform(-3.0, 0.0, 28)
        p = 1 / (1 + np.exp(-(cls.z / cls.true_t + cls.true_b)))
        cls.y = (rng.random(p.shape) < p).astype(np.float64)
        cls.dev = os.path.join(cls.tmp, "dev.tsv")
        with open(cls.dev, "w", encoding="utf-8") as f:
            for i, text in enumerate(cls.texts):
                ids = [str(l) for l in np.flatnonzero(cls.y[i])] or ["27"]
                if ids == ["27"]:
                    cls.y[i, 27] = 1  # a text with no label is neutral's, as GoEmotions has none without one
                f.write(f"{text}\t{','.join(ids)}\tid{i}\n")
        cls.out = run("calibrate", "--model", cls.model, "--dev-file", cls.dev).stdout.decode()
        with open(os.path.join(cls.model, "calibration.json")) as f:
            cls.cal = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_each_fit_is_torchs_minimiser_of_binary_cross_entropy(self):
        heldout = self.cal["fitted_on"]["heldout_log_loss"]
        self.assertEqual(list(heldout), FITS)
        even, odd = np.arange(0, len(self.z), 2), np.arange(1, len(self.z), 2)
        for fit in FITS:
            total = 0.0
            for fit_rows, score_rows in ((even, odd), (odd, even)):
                t, b = torch_fit(self.z[fit_rows], self.y[fit_rows], fit)
                total += bce(self.z[score_rows], self.y[score_rows], t, b) * len(score_rows)
            self.assertAlmostEqual(heldout[fit], total / len(self.z), delta=2e-6, msg=fit)
        chosen = min(heldout, key=heldout.get)
        self.assertEqual(self.cal["fit"], chosen)
        self.assertEqual(chosen, "platt-per-label")  # the labels were drawn per label with a bias
        t, b = torch_fit(self.z, self.y, chosen)
        np.testing.assert_allclose(self.cal["temperature"], t, rtol=1e-4)
        np.testing.assert_allclose(self.cal["bias"], b, rtol=1e-4, atol=1e-4)
        # and the fit finds what the labels were drawn from (3,000 texts: the scales within sampling noise)
        np.testing.assert_allclose(self.cal["bias"], self.true_b, atol=0.5)
        scales = 1 / np.array(self.cal["temperature"])
        self.assertGreater(np.corrcoef(scales, 1 / self.true_t)[0, 1], 0.8)
        self.assertIn("<- chosen", self.out)

    def test_a_named_fit_is_that_fit(self):
        model = os.path.join(self.tmp, "one-temperature")
        shutil.copytree(self.model, model)
        run("calibrate", "--model", model, "--dev-file", self.dev, "--fit", "temperature")
        with open(os.path.join(model, "calibration.json")) as f:
            cal = json.load(f)
        self.assertEqual(cal["fit"], "temperature")
        self.assertEqual(len(set(cal["temperature"])), 1)
        self.assertEqual(set(cal["bias"]), {0})
        t, _ = torch_fit(self.z, self.y, "temperature")
        self.assertAlmostEqual(cal["temperature"][0], t[0], delta=1e-4 * t[0])

    def test_predict_and_explain_show_calibrated_scores(self):
        rows = emotune_logits(self.model, self.texts[:50])
        t, b = np.array(self.cal["temperature"]), np.array(self.cal["bias"])
        labels = self.cal["labels"]
        for row in rows:
            z = np.array(row["logits"])
            want = 1 / (1 + np.exp(-(z / t + b)))
            got = np.array([row["scores"][label] for label in labels])
            np.testing.assert_allclose(got, want, atol=2e-6)
        p = run("explain", "--model", self.model, "--format", "jsonl", "--method", "occlusion", "--label", labels[3],
                self.texts[0])
        explanation = json.loads(p.stdout.decode().splitlines()[0])
        z = emotune_logits(self.model, self.texts[:1])[0]["logits"][3]
        self.assertAlmostEqual(explanation["score"], 1 / (1 + np.exp(-(z / t[3] + b[3]))), delta=1e-5)

    def test_thresholds_are_retuned_on_the_calibrated_scores(self):
        with open(os.path.join(self.model, "thresholds.json")) as f:
            thresholds = json.load(f)
        t, b = np.array(self.cal["temperature"]), np.array(self.cal["bias"])
        p = 1 / (1 + np.exp(-(self.z / t + b)))
        grid = np.arange(1, 100) / 100
        for label in range(28):
            f1 = []
            for g in grid:
                pred = p[:, label] >= g - 1e-7
                tp = (pred & (self.y[:, label] == 1)).sum()
                f1.append(2 * tp / (pred.sum() + self.y[:, label].sum()) if tp else 0.0)
            best = max(range(len(grid)), key=lambda k: (f1[k], k))
            self.assertAlmostEqual(f1[int(round(thresholds["values"][label] * 100)) - 1], f1[best], delta=0.005)

    def test_eval_reports_ece_as_served_and_uncalibrated(self):
        report = os.path.join(self.tmp, "report")
        dump = os.path.join(self.tmp, "probs.jsonl")
        run("eval", "--model", self.model, "--data", self.dev, "--report", report, "--dump-probs", dump)
        with open(os.path.join(report, "report.json")) as f:
            r = json.load(f)
        with open(dump) as f:
            probs = np.array([json.loads(line)["probs"] for line in f])
        self.assertAlmostEqual(r["ece"], ece(probs, self.y), places=6)
        self.assertAlmostEqual(r["ece_uncalibrated"], ece(1 / (1 + np.exp(-self.z)), self.y), places=5)
        self.assertEqual(r["calibration"], self.cal["fit"])
        self.assertLess(r["ece"], r["ece_uncalibrated"] / 3)
        with open(os.path.join(report, "report.html")) as f:
            page = f.read()
        self.assertIn('id="calibration-before"', page)
        self.assertIn('id="calibration"', page)

    def test_train_calibrates_at_its_end_unless_told_not_to(self):
        train = first_lines(os.path.join(GOEMOTIONS, "train.tsv"), 64, os.path.join(self.tmp, "train.tsv"))
        dev = first_lines(os.path.join(GOEMOTIONS, "dev.tsv"), 64, os.path.join(self.tmp, "dev64.tsv"))
        init = init_model(os.path.join(self.tmp, "init"), seed=1, dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                          max_position_embeddings=128)
        for extra, calibrated in (([], True), (["--no-calibrate"], False)):
            out = os.path.join(self.tmp, "run-" + str(calibrated))
            run("train", "--model", init, "--train-file", train, "--dev-file", dev, "--output", out,
                "--max-steps", "2", "--batch-size", "16", *extra)
            self.assertEqual(os.path.exists(os.path.join(out, "calibration.json")), calibrated)
            self.assertEqual(os.path.exists(os.path.join(out, "thresholds.json")), calibrated)
        with open(os.path.join(self.tmp, "run-True", "calibration.json")) as f:
            self.assertEqual(json.load(f)["fitted_on"]["file"], dev)

    def test_bad_calibration_files_are_refused_by_name(self):
        model = os.path.join(self.tmp, "broken")
        shutil.copytree(self.model, model)
        path = os.path.join(model, "calibration.json")
        good = dict(self.cal)
        cases = [
            ({**good, "temperature": [0.0] * 28}, "\"temperature\" must hold numbers in [0.001, 1000"),
            ({**good, "bias": [1.0] * 27}, "\"bias\" must be a list of 28 numbers"),
            ({**good, "labels": good["labels"][:-1] + ["joy"]}, "is listed twice"),
            ({**good, "labels": good["labels"][:-1] + ["bliss"]}, "\"bliss\" is not one of the model's labels"),
            ({**good, "fit": "isotonic"}, "\"fit\" must be one of"),
        ]
        for body, needle in cases:
            with open(path, "w") as f:
                json.dump(body, f)
            p = run("predict", "--model", model, "hello", check=False)
            self.assertEqual(p.returncode, 2, p.stderr.decode())
            err = p.stderr.decode().strip()
            self.assertEqual(len([line for line in err.splitlines() if line.startswith("emotune:")]), 1, err)
            self.assertIn("calibration.json", err)
            self.assertIn(needle, err)
        with open(path, "w") as f:
            f.write("{\"fit\": ")
        p = run("predict", "--model", model, "hello", check=False)
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        self.assertIn("calibration.json", p.stderr.decode())
        p = run("calibrate", "--model", model, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--data-dir", p.stderr.decode())

    def test_labels_are_matched_by_name(self):
        model = os.path.join(self.tmp, "reordered")
        shutil.copytree(self.model, model)
        order = list(reversed(range(28)))
        body = {**self.cal, "labels": [self.cal["labels"][i] for i in order],
                "temperature": [self.cal["temperature"][i] for i in order], "bias": [self.cal["bias"][i] for i in order]}
        with open(os.path.join(model, "calibration.json"), "w") as f:
            json.dump(body, f)
        self.assertEqual(emotune_logits(model, self.texts[:5]), emotune_logits(self.model, self.texts[:5]))


if __name__ == "__main__":
    main()
