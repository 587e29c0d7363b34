"""`emotune serve` on a loopback port: every route, every error, concurrent clients (answers equal
`emotune predict`), dynamic batching, and a clean SIGTERM shutdown.
Usage: check_serve.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import EMOTUNE, ROOT, TOKENIZER_DIR, http_call, main  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen([EMOTUNE, "serve", "--model", model, "--port", str(self.port), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not come up: " + self.proc.stderr.read().decode())

    def request(self, method, path, body=None, headers=None):
        status, got, raw = http_call(self.port, method, path, body, headers)
        return status, raw, got.get("content-type")

    def post(self, obj=None, raw=None):
        status, body, _ = self.request("POST", "/v1/predict", raw if raw is not None else json.dumps(obj).encode(),
                                       {"Content-Type": "application/json"})
        return status, json.loads(body)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err.decode()


class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_serve_test_")
        cls.model = os.path.join(cls.tmp, "model")
        subprocess.run([EMOTUNE, "init", "--config", os.path.join(ROOT, "configs", "distilbert-tiny.json"),
                        "--tokenizer", TOKENIZER_DIR, "--out", cls.model, "--seed", "2"], check=True,
                       stderr=subprocess.DEVNULL)
        cls.server = Server(cls.model, "--max-batch", "8", "--max-wait-ms", "20", "--max-text-chars", "2000",
                            "--max-body-bytes", "20000")

    @classmethod
    def tearDownClass(cls):
        if cls.server.proc.poll() is None:
            cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def predict_cli(self, texts):
        out = subprocess.run([EMOTUNE, "predict", "--model", self.model, "--format", "jsonl"],
                             input=("\n".join(texts) + "\n").encode(), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, check=True).stdout.decode()
        return [json.loads(l)["scores"] for l in out.splitlines()]

    def assert_error(self, status, body, want_status, code=None):
        self.assertEqual(status, want_status, body)
        self.assertIn("error", body)
        self.assertIn("message", body["error"])
        if code:
            self.assertEqual(body["error"]["code"], code)
        self.assertEqual(self.server.request("GET", "/health")[0], 200)  # the process is unaffected

    def test_routes(self):
        status, body, ctype = self.server.request("GET", "/health")
        self.assertEqual(status, 200)
        status, body, ctype = self.server.request("GET", "/v1/labels")
        labels = json.loads(body)
        self.assertEqual(len(labels["labels"]), 28)
        self.assertEqual(len(labels["thresholds"]), 28)
        self.assertIn("grief", labels["taxonomies"]["ekman"]["sadness"])
        status, body, ctype = self.server.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", ctype)
        self.assertIn(b"Recognize", body)
        self.assertNotIn(b"http://", body.replace(b"http://www.w3.org", b""))  # nothing fetched from elsewhere
        self.server.post({"text": "metrics please"})
        status, body, ctype = self.server.request("GET", "/metrics")
        text = body.decode()
        self.assertIn('emotune_requests_total{route="/v1/predict",status="200"}', text)
        for name in ("emotune_request_duration_seconds_bucket", "emotune_batch_size_bucket", "emotune_texts_total",
                     "emotune_model_load_seconds"):
            self.assertIn(name, text)

    def test_predict_matches_cli(self):
        texts = ["Thank you so much, this made my day!", "I am so angry right now", "", "Héllo 😀 [NAME]"]
        status, body = self.server.post({"texts": texts, "return_all_scores": True, "threshold": 0.5})
        self.assertEqual(status, 200)
        self.assertEqual(len(body["predictions"]), 4)
        self.assertIn("elapsed_ms", body)
        self.assertEqual(body["model"], "model")
        for pred, want in zip(body["predictions"], self.predict_cli(texts)):
            for label, score in want.items():
                self.assertAlmostEqual(pred["scores"][label], score, places=5)
            chosen = [l["label"] for l in pred["labels"]]
            self.assertEqual(chosen, sorted([l for l, s in pred["scores"].items() if s >= 0.5],
                                            key=lambda l: -pred["scores"][l]))
            self.assertFalse(pred["truncated"])
        status, body = self.server.post({"text": "hello", "top_k": 2, "threshold": 0.0})
        self.assertEqual(len(body["predictions"][0]["labels"]), 2)
        self.assertNotIn("scores", body["predictions"][0])

    def test_taxonomies_and_truncation(self):
        status, body = self.server.post({"text": "so sad and scared", "taxonomy": "ekman", "return_all_scores": True})
        self.assertEqual(status, 200)
        self.assertEqual(list(body["predictions"][0]["scores"].keys()),
                         ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"])
        status, body = self.server.post({"text": "ok", "taxonomy": "sentiment", "return_all_scores": True})
        self.assertEqual(len(body["predictions"][0]["scores"]), 4)
        status, body = self.server.post({"text": "word " * 300})
        self.assertEqual(status, 200)
        self.assertTrue(body["predictions"][0]["truncated"])

    def test_errors(self):
        self.assert_error(*self.server.post(raw=b"{not json"), 400, "invalid_json")
        self.assert_error(*self.server.post({"text": 5}), 400, "invalid_request")
        self.assert_error(*self.server.post({"texts": "one"}), 400, "invalid_request")
        self.assert_error(*self.server.post({"texts": ["a", 3]}), 400, "invalid_request")
        self.assert_error(*self.server.post({"text": "a", "texts": ["b"]}), 400, "invalid_request")
        self.assert_error(*self.server.post({"text": "a", "threshold": "high"}), 400, "invalid_request")
        self.assert_error(*self.server.post({"text": "a", "taxonomy": "plutchik"}), 400, "invalid_request")
        self.assert_error(*self.server.post({"texts": []}), 400, "empty_texts")
        self.assert_error(*self.server.post({"texts": ["x"] * 9}), 400, "too_many_texts")
        self.assert_error(*self.server.post(raw=b'{"text":"caf\xc3"}'), 400, "invalid_utf8")
        self.assert_error(*self.server.post({"text": "y" * 2001}), 413, "text_too_long")
        self.assert_error(*self.server.post({"text": "z" * 30000}), 413, "body_too_large")
        status, body, _ = self.server.request("GET", "/nowhere")
        self.assert_error(status, json.loads(body), 404, "not_found")
        status, body, _ = self.server.request("GET", "/v1/predict")
        self.assert_error(status, json.loads(body), 405, "method_not_allowed")
        status, body, _ = self.server.request("DELETE", "/health")
        self.assert_error(status, json.loads(body), 405, "method_not_allowed")

    def test_concurrent_clients_are_batched_and_answered_correctly(self):
        texts = [f"text number {i}: {'happy' if i % 2 else 'annoyed'} about thing {i}" for i in range(48)]
        want = self.predict_cli(texts)
        results, errors = {}, []

        def client(k):
            try:
                for i in range(k, len(texts), 8):
                    status, body = self.server.post({"text": texts[i], "return_all_scores": True})
                    assert status == 200, body
                    results[i] = body["predictions"][0]["scores"]
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for i, scores in results.items():
            for label, score in want[i].items():
                self.assertAlmostEqual(scores[label], score, places=5)
        metrics = self.server.request("GET", "/metrics")[1].decode()
        count = float(metrics.split("emotune_batch_size_count ")[1].split()[0])
        total = float(metrics.split("emotune_batch_size_sum ")[1].split()[0])
        self.assertGreater(total / count, 1.0, "concurrent requests were never batched together")

    def test_zz_sigterm_finishes_in_flight_and_exits_zero(self):
        server = Server(self.model, "--max-wait-ms", "300")
        result = {}

        def slow():
            result["answer"] = server.post({"text": "in flight"})

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.1)  # the request waits in the batcher for up to 300 ms
        code, err = server.stop()
        t.join()
        self.assertEqual(code, 0, err)
        self.assertEqual(result["answer"][0], 200)
        self.assertIn("access method=POST route=/v1/predict status=200", err)
        with self.assertRaises(OSError):
            server.request("GET", "/health")


if __name__ == "__main__":
    main()
