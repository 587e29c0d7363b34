"""Texts longer than the model's window against transformers: `--long-text window` scores the windows
transformers' own tokenizer and model give (one special token at each end of each window's tokens),
combined by max or mean per label, with the windows' places in the text; `truncate` (the default)
equals transformers' truncation and warns once; the server's `long_text` field, eval and monitor.
Usage: check_long_text.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EMOTUNE, GOEMOTIONS, family_config, family_tokenizer, http_call, init_model, main,  # noqa: E402
                     run)

TOL = 1e-4
POSITIONS = {"distilbert": 64, "roberta": 66}  # 64 tokens a window (RoBERTa's positions start at 2)


def dev_texts(n):
    with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
        return [line.split("\t")[0] for _, line in zip(range(n), f)]


def long_text(words):
    parts, i = [], 0
    texts = dev_texts(200)
    while sum(len(p.split()) for p in parts) < words:
        parts.append(texts[i % len(texts)])
        i += 1
    return " ".join(parts)


def windows_of(n_tokens, width, step):
    out, first = [], 0
    while True:
        end = min(first + width, n_tokens)
        out.append((first, end))
        if end == n_tokens:
            return out
        first += step


class LongText(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_long_text_")
        cls.models = {}
        for i, family in enumerate(POSITIONS):
            cls.models[family] = init_model(os.path.join(cls.tmp, family), seed=11 + i, tokenizer=family_tokenizer(family),
                                            **family_config(family, max_position_embeddings=POSITIONS[family],
                                                            initializer_range=0.2))
        cls.texts = [long_text(300), "a short one", long_text(120)]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def predict(self, model, *flags, texts=None):
        p = run("predict", "--model", model, "--format", "jsonl", "--logits", *flags,
                input_text="\n".join(texts or self.texts) + "\n")
        return [json.loads(line) for line in p.stdout.decode().splitlines()], p.stderr.decode()

    def transformers_windows(self, model_dir, text, width, step):
        """Logits of each window as transformers scores it, and each window's code points."""
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        spans = windows_of(len(ids), width - 2, step)
        with torch.no_grad():
            logits = torch.cat([
                model(input_ids=torch.tensor([tok.build_inputs_with_special_tokens(ids[a:b])])).logits for a, b in spans])
        return logits, [(offsets[a][0], offsets[b - 1][1], a, b) for a, b in spans]

    def test_windows_combine_as_transformers_scores_them(self):
        for family, model in self.models.items():
            for combine in ("max", "mean"):
                rows, _ = self.predict(model, "--long-text", "window", "--window-combine", combine)
                for text, row in zip(self.texts, rows):
                    want, places = self.transformers_windows(model, text, 64, 31)
                    got = torch.tensor(row["logits"])
                    if len(places) == 1:
                        self.assertNotIn("windows", row)
                        self.assertLess((got - want[0]).abs().max().item(), TOL, family)
                        continue
                    self.assertEqual([(w["start"], w["end"], *w["tokens"]) for w in row["windows"]],
                                     [tuple(p) for p in places], family)
                    combined = want.max(0).values if combine == "max" else want.mean(0)
                    self.assertLess((got - combined).abs().max().item(), TOL, f"{family} {combine}")
                    if combine == "max":
                        labels = list(row["scores"])
                        self.assertEqual([row["window_of"][label] for label in labels], want.argmax(0).tolist())
                    else:
                        self.assertNotIn("window_of", row)
                    for w in row["windows"]:  # the places are the text's own
                        self.assertLess(w["start"], w["end"])
                        self.assertLessEqual(w["end"], len(text))

    def test_the_stride_sets_the_step_and_the_last_window_reaches_the_end(self):
        model = self.models["distilbert"]
        rows, _ = self.predict(model, "--long-text", "window", "--window-stride", "10", texts=[self.texts[0]])
        windows = rows[0]["windows"]
        tokens = len(AutoTokenizer.from_pretrained(model)(self.texts[0], add_special_tokens=False)["input_ids"])
        self.assertEqual([w["tokens"] for w in windows], [list(w) for w in windows_of(tokens, 62, 10)])
        self.assertEqual(windows[-1]["tokens"][1], tokens)

    def test_truncate_is_the_default_equals_transformers_and_warns_once(self):
        model = self.models["distilbert"]
        rows, err = self.predict(model)
        tok = AutoTokenizer.from_pretrained(model)
        hf = AutoModelForSequenceClassification.from_pretrained(model).eval()
        with torch.no_grad():
            for text, row in zip(self.texts, rows):
                enc = tok(text, truncation=True, max_length=64, return_tensors="pt")
                want = hf(**enc).logits[0]
                self.assertLess((torch.tensor(row["logits"]) - want).abs().max().item(), TOL)
                self.assertEqual(row.get("truncated", False), text != "a short one")
                self.assertNotIn("windows", row)
        self.assertEqual(err.count("was cut"), 1, err)  # two long texts, one warning
        self.assertIn("--long-text window", err)

    def test_the_window_length_is_the_one_the_model_was_trained_on(self):
        model = os.path.join(self.tmp, "trained-at-32")
        shutil.copytree(self.models["distilbert"], model)
        with open(os.path.join(model, "training_args.json"), "w") as f:
            json.dump({"max_length": 32}, f)
        rows, _ = self.predict(model, "--long-text", "window", texts=[self.texts[2]])
        self.assertTrue(all(w["tokens"][1] - w["tokens"][0] <= 30 for w in rows[0]["windows"]))
        rows, _ = self.predict(model, "--long-text", "window", "--max-length", "48", texts=[self.texts[2]])
        self.assertEqual(max(w["tokens"][1] - w["tokens"][0] for w in rows[0]["windows"]), 46)

    def test_eval_and_monitor_take_the_flag(self):
        model = self.models["distilbert"]
        data = os.path.join(self.tmp, "long.tsv")
        with open(data, "w", encoding="utf-8") as f:
            for i, text in enumerate(self.texts):
                f.write(f"{text}\t{i}\tid{i}\n")
        for mode in ("truncate", "window"):
            dump = os.path.join(self.tmp, f"probs-{mode}.jsonl")
            run("eval", "--model", model, "--data", data, "--long-text", mode, "--dump-probs", dump)
            with open(dump) as f:
                probs = [json.loads(line)["probs"] for line in f]
            rows, _ = self.predict(model, "--long-text", mode)
            for p, row in zip(probs, rows):
                self.assertLess(max(abs(a - b) for a, b in zip(p, row["scores"].values())), 2e-6, mode)
        messages = "".join(json.dumps({"time": f"2026-01-01T00:00:0{i}Z", "source": "a", "text": t}) + "\n"
                           for i, t in enumerate(self.texts))
        report = os.path.join(self.tmp, "monitor")
        run("monitor", "--model", model, "--long-text", "window", "--report", report, input_text=messages)
        self.assertTrue(os.path.exists(os.path.join(report, "summary.json")))
        p = run("predict", "--model", model, "--long-text", "sideways", "x", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--long-text", p.stderr.decode())

    def test_the_server_takes_long_text_per_request(self):
        model = self.models["distilbert"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen([EMOTUNE, "serve", "--model", model, "--port", str(port), "--no-explain"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(300):
                try:
                    if http_call(port, "GET", "/health")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            window_rows, _ = self.predict(model, "--long-text", "window")
            status, _, body = http_call(port, "POST", "/v1/predict",
                                     {"texts": self.texts, "long_text": "window", "return_all_scores": True})
            self.assertEqual(status, 200, body)
            answers = json.loads(body)["predictions"]
            for answer, row in zip(answers, window_rows):
                self.assertEqual(answer.get("windows"), row.get("windows"))
                self.assertEqual(answer.get("window_of"), row.get("window_of"))
                for label, score in row["scores"].items():
                    self.assertAlmostEqual(answer["scores"][label], score, delta=2e-6)
            labels = json.loads(http_call(port, "GET", "/v1/labels")[2])
            self.assertEqual((labels["long_text"], labels["calibration"]), ("truncate", None))
            status, _, body = http_call(port, "POST", "/v1/predict", {"texts": self.texts})  # the server's default
            self.assertEqual(status, 200, body)
            self.assertTrue(json.loads(body)["predictions"][0]["truncated"])
            self.assertNotIn("windows", json.loads(body)["predictions"][0])
            status, _, body = http_call(port, "POST", "/v1/predict", {"text": "x", "long_text": 3})
            self.assertEqual(status, 400, body)
            self.assertIn("long_text", body.decode())
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
