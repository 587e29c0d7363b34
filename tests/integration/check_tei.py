"""`emotune serve` speaks TEI's and the Inference API's protocol: Hugging Face's own
huggingface_hub.InferenceClient (pinned in tests/requirements.txt) against a running server, TEI's
POST /predict (one text, a list, nested lists, raw_scores, truncate), GET /info and TEI's error bodies.
Usage: check_tei.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import math
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import ROOT, TOKENIZER_DIR, main, run  # noqa: E402
from check_serve import Server  # noqa: E402

TEXT = "I am so grateful for your help"


class Tei(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_tei_test_")
        cls.model = os.path.join(cls.tmp, "model")
        # Weights large enough that the labels' scores differ clearly (a ranking worth comparing).
        config = json.load(open(os.path.join(ROOT, "configs", "distilbert-tiny.json")))
        config["initializer_range"] = 0.3
        path = os.path.join(cls.tmp, "config.json")
        json.dump(config, open(path, "w"))
        run("init", "--config", path, "--tokenizer", TOKENIZER_DIR, "--out", cls.model, "--seed", "5")
        cls.server = Server(cls.model, "--max-batch", "4", "--no-explain")
        cls.url = f"http://127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, path, obj):
        status, body, ctype = self.server.request(method, path, json.dumps(obj).encode(),
                                                  {"Content-Type": "application/json"})
        return status, json.loads(body)

    def v1_scores(self, text, logits=False):
        """emotune's own route: every label's probability (or logit) for `text`."""
        if logits:
            p = run("predict", "--model", self.model, "--logits", "--format", "jsonl", text)
            row = json.loads(p.stdout)
            id2label = json.load(open(os.path.join(self.model, "config.json")))["id2label"]
            return {id2label[str(i)]: v for i, v in enumerate(row["logits"])}
        status, answer = self.call("POST", "/v1/predict", {"text": text, "return_all_scores": True})
        self.assertEqual(status, 200)
        return answer["predictions"][0]["scores"]

    def assert_ranked_like(self, items, scores, count=None, tol=1e-6):
        self.assertEqual(len(items), count or len(scores))
        got = [(i["label"], i["score"]) for i in items]
        self.assertEqual([s for _, s in got], sorted((s for _, s in got), reverse=True), "sorted by score")
        want = sorted(scores.items(), key=lambda kv: -kv[1])[:len(got)]
        self.assertEqual([l for l, _ in got], [l for l, _ in want])
        for label, score in got:
            self.assertLess(abs(score - scores[label]), tol, label)

    def test_inference_client_text_classification(self):
        from huggingface_hub import InferenceClient
        client = InferenceClient(model=self.url)
        scores = self.v1_scores(TEXT)
        self.assert_ranked_like(client.text_classification(TEXT), scores)
        self.assert_ranked_like(client.text_classification(TEXT, top_k=3), scores, 3)
        # function_to_apply: softmax over the labels, as pipeline() computes it from the logits.
        logits = self.v1_scores(TEXT, logits=True)
        top = max(logits.values())
        total = sum(math.exp(v - top) for v in logits.values())
        softmax = {k: math.exp(v - top) / total for k, v in logits.items()}
        got = client.text_classification(TEXT, top_k=2, function_to_apply="softmax")
        self.assert_ranked_like(got, softmax, 2, tol=1e-5)  # the CLI prints logits to 6 decimals

    def test_inference_client_sends_the_api_key(self):
        """serve --api-key-file: the key as TEI's --api-key takes it, from the client's token."""
        from huggingface_hub import InferenceClient
        key_file = os.path.join(self.tmp, "key")
        with open(key_file, "w") as f:
            f.write("tei-key-42\n")
        guarded = Server(self.model, "--no-explain", "--api-key-file", key_file)
        try:
            url = f"http://127.0.0.1:{guarded.port}"
            got = InferenceClient(model=url, token="tei-key-42").text_classification(TEXT, top_k=2)
            self.assert_ranked_like(got, self.v1_scores(TEXT), 2)
            with self.assertRaises(Exception) as refused:
                InferenceClient(model=url, token="wrong").text_classification(TEXT)
            self.assertIn("401", str(refused.exception))
        finally:
            guarded.stop()

    def test_tei_predict_one_list_nested_and_raw(self):
        scores = self.v1_scores(TEXT)
        status, one = self.call("POST", "/predict", {"inputs": TEXT})
        self.assertEqual(status, 200)
        self.assert_ranked_like(one, scores)
        status, many = self.call("POST", "/predict", {"inputs": [TEXT, "so sad today"]})
        self.assertEqual(status, 200)
        self.assertEqual(len(many), 2)
        self.assert_ranked_like(many[0], scores)
        self.assert_ranked_like(many[1], self.v1_scores("so sad today"))
        status, nested = self.call("POST", "/predict", {"inputs": [[TEXT], ["so sad today"]]})
        self.assertEqual((status, nested), (200, many))
        status, raw = self.call("POST", "/predict", {"inputs": TEXT, "raw_scores": True})
        self.assertEqual(status, 200)
        self.assert_ranked_like(raw, self.v1_scores(TEXT, logits=True), tol=1e-5)

    def test_truncation_follows_tei(self):
        long_text = "happy " * 600
        status, err = self.call("POST", "/predict", {"inputs": long_text})
        self.assertEqual((status, err["error_type"]), (413, "Validation"))
        self.assertIn("truncate", err["error"])
        status, right = self.call("POST", "/predict", {"inputs": long_text, "truncate": True})
        self.assertEqual(status, 200)
        status, left = self.call("POST", "/predict", {"inputs": "sad " * 10 + long_text, "truncate": True,
                                                      "truncation_direction": "left"})
        self.assertEqual(status, 200)
        # Kept from the end, "sad" at the start is gone: the same tokens as the all-"happy" text.
        for a, b in zip(right, left):
            self.assertEqual(a["label"], b["label"])
            self.assertLess(abs(a["score"] - b["score"]), 1e-6)

    def test_info(self):
        status, body, _ = self.server.request("GET", "/info")
        self.assertEqual(status, 200)
        info = json.loads(body)
        labels = json.load(open(os.path.join(self.model, "config.json")))["id2label"]
        self.assertEqual(info["model_type"]["classifier"]["id2label"], labels)
        self.assertEqual(info["max_client_batch_size"], 4)
        self.assertEqual(info["max_input_length"], json.load(open(os.path.join(self.model, "config.json")))["max_position_embeddings"])
        for key in ("model_id", "max_concurrent_requests", "max_batch_tokens", "version"):
            self.assertIn(key, info)

    def test_bodies_tei_refuses_get_its_errors(self):
        cases = [("/predict", {"inputs": []}, 400, "Empty"),
                 ("/predict", {"inputs": ["a", "b", "c", "d", "e"]}, 413, "Validation"),
                 ("/predict", {"inputs": [["a", "b"]]}, 422, "Validation"),
                 ("/predict", {"text": "no inputs"}, 422, "Validation"),
                 ("/predict", {"inputs": 3}, 422, "Validation"),
                 ("/predict", {"inputs": "x", "truncation_direction": "up"}, 422, "Validation"),
                 ("/", {"inputs": "x", "parameters": {"top_k": 0}}, 422, "Validation"),
                 ("/", {"inputs": "x", "parameters": {"function_to_apply": "relu"}}, 422, "Validation")]
        for path, body, status, kind in cases:
            with self.subTest(path=path, body=body):
                got_status, err = self.call("POST", path, body)
                self.assertEqual((got_status, err["error_type"]), (status, kind), err)
                self.assertTrue(err["error"])
        status, body, _ = self.server.request("POST", "/predict", b"{not json", {"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)["error_type"]), (422, "Validation"))


if __name__ == "__main__":
    main()
