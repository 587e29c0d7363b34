"""`emotune explain`, `predict --explain` and `serve`'s /v1/explain: the JSON each writes, token and word
offsets into the text, completeness of integrated gradients (on random models of two families and on
all-MiniLM-L6-v2 fine-tuned here for a few hundred steps), label choice, the three methods, errors,
and a deletion test: removing each dev text's 3 words of highest attribution lowers the label's
probability more, on average, than removing 3 random words.
Usage: check_explain.py EMOTUNE_BINARY [TEST...]  (shared data from $EMOTUNE_SHARED, the MiniLM base
from $EMOTUNE_MINILM; exit 77 = skipped). EMOTUNE_EXPLAIN_MODEL=DIR uses that fine-tuned model instead
of the short fine-tune (bench/QUALITY.md records the deletion test on a fully trained one)."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import (EMOTUNE, FAMILIES, GOEMOTIONS, SHARED, TOKENIZER_DIR, family_config, missing, family_tokenizer,  # noqa: E402
                     init_model, main, run)
from check_serve import Server  # noqa: E402

TEXT = "I can't believe it's over... 😢 Ça va? Thanks anyway!!"


def explain(model, *args, texts=(TEXT,)):
    out = run("explain", "--model", model, "--format", "jsonl", *args, *texts).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def dev_texts(count, min_words=1, seed=0):
    with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f]
    texts = [t for t in texts if len(t.split()) >= min_words and len(t) < 300]
    random.Random(seed).shuffle(texts)
    return texts[:count]


class Explain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_explain_")
        # One small random classifier per family of tests/families.json.
        cls.models = [init_model(os.path.join(cls.tmp, family), seed=3 + i, tokenizer=family_tokenizer(family),
                                 **family_config(family, initializer_range=0.1))
                      for i, family in enumerate(FAMILIES)]
        cls.distilbert = os.path.join(cls.tmp, "distilbert")
        cls.roberta = os.path.join(cls.tmp, "roberta")
        cls.tuned = os.environ.get("EMOTUNE_EXPLAIN_MODEL") or None
        base = os.environ.get("EMOTUNE_MINILM", "")
        if not cls.tuned and base and os.path.isdir(base):
            cls.tuned = os.path.join(cls.tmp, "minilm")
            start = time.time()
            # The main job's loss: with plain BCE, 400 steps leave every label at its base rate.
            run("train", "--base", base, "--data-dir", GOEMOTIONS, "--output", cls.tuned, "--max-steps", "400",
                "--lr", "1e-4", "--max-length", "64", "--loss", "weighted-bce", "--eval-every", "none", "--seed", "42")
            print(f"fine-tuned all-MiniLM-L6-v2 for 400 steps in {time.time() - start:.0f} s", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def need_tuned(self):
        if not self.tuned:
            missing("EMOTUNE_MINILM is not set (scripts/test.sh sets it)")

    def test_json_and_offsets(self):
        for model in self.models:
            got = explain(model, "--top-k", "2")
            self.assertEqual(len(got), 2)
            spans = json.loads(run("tokenize", "--offsets", "--model", model, input_text=TEXT + "\n").stdout)
            want = [s for s in spans["offsets"] if s != [0, 0]]
            for e in got:
                for key in ("text", "label", "score", "logit", "baseline_logit", "method", "steps", "tokens",
                            "attributions", "words", "delta"):
                    self.assertIn(key, e)
                self.assertEqual(e["text"], TEXT)
                self.assertEqual(e["method"], "integrated-gradients")
                self.assertEqual(e["steps"], 32)
                self.assertEqual(len(e["tokens"]), len(e["attributions"]))
                self.assertEqual([[t["start"], t["end"]] for t in e["tokens"]], want, model)
                for w in e["words"]:
                    self.assertEqual(w["word"], TEXT[w["start"]:w["end"]])
                    inside = [a for t, a in zip(e["tokens"], e["attributions"])
                              if w["start"] <= t["start"] and t["end"] <= w["end"] and t["end"] > t["start"]]
                    self.assertAlmostEqual(w["attribution"], sum(inside), places=9)
                words = [w["word"] for w in e["words"]]
                self.assertIn("Thanks", words)
                self.assertIn("Ça", words)
                self.assertIn("😢", words)
                self.assertIn(words[-1], ("!", "!!"))  # WordPiece splits "!!", byte-level BPE has the pair

    def assert_complete(self, model, texts, steps):
        """|delta| <= 2% of |logit - baseline_logit| (of 0.5 where the gap is smaller: a relative error of
        a near-zero gap says nothing)."""
        got = explain(model, "--steps", steps, "--top-k", "1", texts=texts)
        self.assertEqual(len(got), len(texts))
        worst = 0.0
        for e in got:
            gap = e["logit"] - e["baseline_logit"]
            self.assertAlmostEqual(e["delta"], sum(e["attributions"]) - gap, places=6)
            worst = max(worst, abs(e["delta"]) / max(abs(gap), 0.5))
        self.assertLess(worst, 0.02, f"{model}: worst |delta| / max(|logit - baseline_logit|, 0.5) = {worst:.4f}")
        return worst

    def test_completeness_random_models(self):
        for model in self.models:
            # Random weights this large make the logit far from linear in the inputs: more steps.
            worst = self.assert_complete(model, dev_texts(10), "256")
            print(f"{os.path.basename(model)}: worst relative completeness gap {worst:.2e} (256 steps)", file=sys.stderr)

    def test_completeness_fine_tuned(self):
        self.need_tuned()
        worst = self.assert_complete(self.tuned, dev_texts(20), "64")
        print(f"fine-tuned MiniLM: worst relative completeness gap {worst:.2e} over 20 dev texts (64 steps)",
              file=sys.stderr)

    def test_label_choice(self):
        scores = json.loads(run("predict", "--model", self.distilbert, "--format", "jsonl", TEXT).stdout)["scores"]
        ranked = sorted(scores, key=lambda k: -scores[k])
        self.assertEqual([e["label"] for e in explain(self.distilbert, "--top-k", "3")], ranked[:3])
        self.assertEqual([e["label"] for e in explain(self.distilbert, "--label", "grief", "--label", "joy")],
                         ["grief", "joy"])
        # Default: the labels predict gives (at their thresholds), or the top one when there are none.
        predicted = json.loads(run("predict", "--model", self.distilbert, "--format", "jsonl", "--threshold", "0.5",
                                   TEXT).stdout)["labels"]
        self.assertEqual([e["label"] for e in explain(self.distilbert)], predicted or ranked[:1])

    def test_methods_and_baselines(self):
        ig = explain(self.distilbert, "--label", "joy")[0]
        occ = explain(self.distilbert, "--label", "joy", "--method", "occlusion")[0]
        self.assertNotIn("delta", occ)
        self.assertEqual(occ["steps"], len(occ["tokens"]))
        self.assertAlmostEqual(occ["logit"], ig["logit"], places=5)
        gxi = explain(self.distilbert, "--label", "joy", "--method", "gradient-x-input")[0]
        self.assertEqual(gxi["steps"], 1)
        self.assertNotIn("delta", gxi)
        masked = explain(self.distilbert, "--label", "joy", "--baseline", "mask")[0]
        self.assertNotAlmostEqual(masked["baseline_logit"], ig["baseline_logit"], places=6)
        self.assertEqual(explain(self.roberta, "--label", "joy", "--baseline", "mask")[0]["label"], "joy")

    def test_bad_input(self):
        for args, needle in ((["--label", "nope"], "nope"), (["--steps", "0"], "--steps"), (["--steps", "5000"], "--steps"),
                             (["--method", "lime"], "--method"), (["--label", "joy", "--top-k", "2"], "--top-k"),
                             (["--max-length", "1"], "--max-length")):
            p = run("explain", "--model", self.distilbert, *args, TEXT, check=False)
            err = [line for line in p.stderr.decode().strip().splitlines() if not line.startswith("[")]  # logs
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(len(err), 1, err)
            self.assertIn(needle, err[0])
        p = run("explain", "--model", os.path.join(self.tmp, "missing"), TEXT, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing", p.stderr.decode())
        # A huge text is explained up to the model's length, and says so.
        long = explain(self.distilbert, "--label", "joy", "--method", "gradient-x-input", texts=("word " * 2000,))[0]
        self.assertTrue(long["truncated"])
        self.assertEqual(len(long["tokens"]), 510)

    def test_predict_explain(self):
        out = run("predict", "--model", self.distilbert, "--explain", "--threshold", "0.5", "--format", "jsonl",
                  TEXT).stdout
        p = json.loads(out)
        self.assertEqual([e["label"] for e in p["explanations"]], p["labels"])
        for e in p["explanations"]:
            alone = explain(self.distilbert, "--label", e["label"])[0]
            self.assertNotIn("text", e)
            self.assertEqual(e["words"], alone["words"])
        occ = json.loads(run("predict", "--model", self.distilbert, "--explain", "--explain-method", "occlusion",
                             "--top-k", "1", "--threshold", "0", TEXT).stdout)
        self.assertEqual(occ["explanations"][0]["method"], "occlusion")
        p = run("predict", "--model", self.distilbert, "--explain", "--format", "pretty", TEXT, check=False)
        self.assertEqual(p.returncode, 2)

    def test_serve_explain(self):
        server = Server(self.roberta)
        try:
            body = {"texts": [TEXT, "so happy for you"], "label": "joy", "method": "gradient-x-input"}
            status, raw, _ = server.request("POST", "/v1/explain", json.dumps(body).encode(),
                                            {"Content-Type": "application/json"})
            self.assertEqual(status, 200, raw)
            got = json.loads(raw)["explanations"]
            self.assertEqual([e["text"] for e in got], [TEXT, "so happy for you"])
            cli = explain(self.roberta, "--label", "joy", "--method", "gradient-x-input",
                          texts=(TEXT, "so happy for you"))
            for a, b in zip(got, cli):
                self.assertEqual(a["tokens"], b["tokens"])
                for x, y in zip(a["attributions"], b["attributions"]):
                    self.assertAlmostEqual(x, y, places=6)
            for bad, code in (({"text": "x", "label": "nope"}, "unknown_label"),
                              ({"text": "x", "steps": 100000}, "invalid_request"),
                              ({"text": "x", "method": "lime"}, "invalid_request"),
                              ({"text": "x", "taxonomy": "ekman"}, "invalid_request"),
                              ({"texts": []}, "empty_texts")):
                status, raw, _ = server.request("POST", "/v1/explain", json.dumps(bad).encode(),
                                                {"Content-Type": "application/json"})
                self.assertEqual(status, 400, bad)
                self.assertEqual(json.loads(raw)["error"]["code"], code)
            self.assertTrue(json.loads(server.request("GET", "/v1/labels")[1])["explain"])
        finally:
            self.assertEqual(server.stop()[0], 0)
        server = Server(self.roberta, "--no-explain")
        try:
            self.assertEqual(server.request("POST", "/v1/explain", b'{"text": "x"}',
                                                {"Content-Type": "application/json"})[0], 404)
            self.assertFalse(json.loads(server.request("GET", "/v1/labels")[1])["explain"])
        finally:
            server.stop()

    def test_deletion_of_top_words_lowers_the_label_more_than_random_words(self):
        self.need_tuned()
        rng = random.Random(7)
        texts = dev_texts(80, min_words=8, seed=1)
        explained = explain(self.tuned, "--top-k", "1", texts=texts)
        top_variants, random_variants = [], []
        for e in explained:
            words = [w for w in e["words"] if any(c.isalnum() for c in w["word"])]
            top = sorted(words, key=lambda w: -w["attribution"])[:3]
            top_variants.append(remove(e["text"], top))
            random_variants.append(remove(e["text"], rng.sample(words, 3)))
        scores = [json.loads(line)["scores"] for line in run(
            "predict", "--model", self.tuned, "--format", "jsonl", "--input", "-",
            input_text="\n".join(top_variants + random_variants) + "\n").stdout.decode().splitlines()]
        n = len(explained)
        top_drop = [e["score"] - scores[i][e["label"]] for i, e in enumerate(explained)]
        random_drop = [e["score"] - scores[n + i][e["label"]] for i, e in enumerate(explained)]
        mean_top, mean_random = sum(top_drop) / n, sum(random_drop) / n
        wins = sum(a > b for a, b in zip(top_drop, random_drop))
        labels = sorted({e["label"] for e in explained})
        print(f"deletion on {n} dev texts (labels explained: {', '.join(labels)}): mean probability drop "
              f"{mean_top:.4g} removing the top-3 words by attribution vs {mean_random:.4g} removing 3 random "
              f"words; top-3 dropped more on {wins}/{n} texts", file=sys.stderr)
        self.assertGreater(mean_top, mean_random)
        self.assertGreater(wins, 0.6 * n)

    def test_a_long_texts_last_sentence_is_heard_in_windows(self):
        """Issue 36: a ~2,000-token text whose only emotional sentence is at its end gets that emotion with
        --long-text window, and not when it is cut to the model's window."""
        self.need_tuned()
        rng = random.Random(3)
        filler = ["The quarterly report lists the shipping schedule for the northern warehouse.",
                  "Trucks leave the depot at six and return after the last delivery.",
                  "The committee reviewed the parking allocation and the updated floor plan.",
                  "Inventory counts are recorded in the spreadsheet every Monday morning."]
        words = []
        while len(" ".join(words).split()) < 1700:
            words.append(rng.choice(filler))
        text = " ".join(words) + " Thank you so much for everything, I am so grateful for your help!"
        rows = {}
        for mode in ("truncate", "window"):
            p = run("predict", "--model", self.tuned, "--format", "jsonl", "--long-text", mode, input_text=text + "\n")
            rows[mode] = json.loads(p.stdout.decode())
        tokens = json.loads(run("tokenize", "--model", self.tuned, "--max-length", "100000",
                                input_text=text + "\n").stdout)["ids"]
        self.assertGreater(len(tokens), 1900)
        print(f"a {len(tokens)}-token text ending in thanks: gratitude {rows['truncate']['scores']['gratitude']:.4f} "
              f"cut, {rows['window']['scores']['gratitude']:.4f} in {len(rows['window']['windows'])} windows",
              file=sys.stderr)
        self.assertNotIn("gratitude", rows["truncate"]["labels"])
        self.assertIn("gratitude", rows["window"]["labels"])
        source = rows["window"]["windows"][rows["window"]["window_of"]["gratitude"]]  # one of the last two
        self.assertIn("grateful", text[source["start"]:source["end"]])


def remove(text, words):
    keep, at = [], 0
    for w in sorted(words, key=lambda w: w["start"]):
        keep.append(text[at:w["start"]])
        at = w["end"]
    keep.append(text[at:])
    return " ".join("".join(keep).split())


if __name__ == "__main__":
    main()
