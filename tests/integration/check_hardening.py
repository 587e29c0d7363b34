"""Hardening: every case of bad input, broken runs and hostile files gets one clear error line and a
non-zero exit, nothing is lost and nothing hangs. Each test is one probe of the hardening issue."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import EMOTUNE, GOEMOTIONS, first_lines, http_call, init_model, main, run, wait_for_lines  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

TINY = dict(dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=64)


def writer_tag():
    """The tag emotune's temporary names carry on this host (util/atomic_file.cpp): FNV-1a 64 of
    hostname/boot_id/PID-namespace inode, first 12 hex digits."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.readline().rstrip("\n")
    identity = f"{socket.gethostname()}/{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    h = 14695981039346656037
    for c in identity.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return f"{h:016x}"[:12]


class Case(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_hardening_")
        cls.model = init_model(os.path.join(cls.tmp, "model"), **TINY)
        cls.train_tsv = cls.head(os.path.join(GOEMOTIONS, "train.tsv"), 48, "train.tsv")
        cls.dev_tsv = cls.head(os.path.join(GOEMOTIONS, "dev.tsv"), 16, "dev.tsv")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def head(cls, src, n, name):
        return first_lines(src, n, os.path.join(cls.tmp, name))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def copy_model(self, name):
        dst = self.path(name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(self.model, dst)
        return dst

    def train(self, out, *extra, timeout=120):
        """`emotune train` of the tiny model on the small splits; a flag in `extra` replaces its default."""
        defaults = {"--model": self.model, "--train-file": self.train_tsv, "--dev-file": self.dev_tsv,
                    "--max-steps": "2"}
        i, rest = 0, []
        while i < len(extra):
            if extra[i] in defaults and i + 1 < len(extra):
                defaults[extra[i]] = extra[i + 1]
                i += 2
            else:
                rest.append(extra[i])
                i += 1
        args = ["train", *[x for kv in defaults.items() for x in kv], "--output", out, *rest]
        return subprocess.run([EMOTUNE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def assert_error(self, p, *needles):
        # Bad input is the caller's failure: exit code 2 (1 would say emotune itself failed).
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        lines = [l for l in err.splitlines() if "error" in l]
        self.assertEqual(len(lines), 1, err)
        for n in needles:
            self.assertIn(n, lines[0])

    def predict(self, model, *extra):
        return run("predict", "--model", model, "--format", "jsonl", *extra, "I am so happy today", check=False)


class NoLostRuns(Case):
    def finished_run(self, name):
        out = self.path(name)
        shutil.rmtree(out, ignore_errors=True)
        p = self.train(out)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(os.path.join(out, "model.safetensors"), "rb") as f:
            return out, f.read()

    def assert_unchanged(self, out, weights):
        with open(os.path.join(out, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), weights)
        self.assertTrue(os.path.isfile(os.path.join(out, "metrics.jsonl")))

    def test_overwrite_keeps_the_old_run_when_the_new_one_fails_validation(self):
        out, weights = self.finished_run("run")
        self.assert_error(self.train(out, "--overwrite", "--train-file", self.path("missing.tsv")), "missing.tsv")
        self.assert_unchanged(out, weights)
        bad = self.path("bad_label.tsv")
        with open(bad, "w") as f:
            f.write("text\t99\tid\n")
        self.assert_error(self.train(out, "--overwrite", "--train-file", bad), "bad_label.tsv:1")
        self.assert_unchanged(out, weights)
        self.assertFalse([n for n in os.listdir(self.tmp) if ".emotune-" in n])

    def test_overwrite_gives_the_old_run_back_on_divergence_and_keeps_it_past_a_stop(self):
        out, weights = self.finished_run("replaced")
        kept = self.path(".replaced.emotune-kept")
        p = self.train(out, "--overwrite", "--lr", "1e30", "--max-steps", "50", timeout=60)
        self.assert_error(p, "diverged", "is back in")
        self.assert_unchanged(out, weights)
        self.assertFalse(os.path.exists(kept))
        # Stopped (SIGTERM): the new run stays resumable and the old one is kept beside it...
        args = ["--overwrite", "--max-steps", "3000", "--log-every", "1", "--eval-every", "none"]
        proc = subprocess.Popen([EMOTUNE, "train", "--model", self.model, "--train-file", self.train_tsv, "--dev-file",
                                 self.dev_tsv, "--output", out, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 3, 60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err.decode())
        self.assertIn("kept in " + kept, err.decode())
        with open(os.path.join(kept, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), weights)
        # ...until the resumed run finishes.
        p = self.train(out, "--max-steps", "3000", "--log-every", "1", "--eval-every", "none", "--resume", timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertFalse(os.path.exists(kept))
        with open(os.path.join(out, "model.safetensors"), "rb") as f:
            self.assertNotEqual(f.read(), weights)

    def test_output_that_holds_the_input_model_is_refused(self):
        model = self.copy_model("input_model")
        with open(os.path.join(model, "model.safetensors"), "rb") as f:
            weights = f.read()
        for output in (model, model + "/", os.path.dirname(model) if False else model + "/."):
            p = subprocess.run([EMOTUNE, "train", "--model", model, "--train-file", self.train_tsv, "--dev-file",
                                self.dev_tsv, "--max-steps", "1", "--output", output, "--overwrite"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            self.assert_error(p, "--output", "own input")
        outer = self.path("outer")
        os.makedirs(outer, exist_ok=True)
        inner = os.path.join(outer, "model")
        shutil.rmtree(inner, ignore_errors=True)
        shutil.copytree(model, inner)
        p = subprocess.run([EMOTUNE, "train", "--model", inner, "--train-file", self.train_tsv, "--dev-file",
                            self.dev_tsv, "--max-steps", "1", "--output", outer, "--overwrite"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assert_error(p, "own input")
        with open(os.path.join(model, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), weights)
        self.assertTrue(os.path.isfile(os.path.join(inner, "model.safetensors")))

    def test_output_that_holds_the_data_is_refused(self):
        outer = self.path("data_inside")
        os.makedirs(outer, exist_ok=True)
        data = os.path.join(outer, "data")
        os.makedirs(data, exist_ok=True)
        for split in ("train", "dev"):
            shutil.copy(self.train_tsv if split == "train" else self.dev_tsv, os.path.join(data, split + ".tsv"))
        for flag, value in (("--data-dir", data), ("--train-file", os.path.join(data, "train.tsv")),
                            ("--dev-file", os.path.join(data, "dev.tsv"))):
            extra = ["--train-file", self.train_tsv] if flag != "--train-file" else []
            p = subprocess.run([EMOTUNE, "train", "--model", self.model, *extra, flag, value, "--max-steps", "1",
                                "--output", outer, "--overwrite"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            self.assert_error(p, "--output", flag, "delete the data")
        self.assertEqual(sorted(os.listdir(data)), ["dev.tsv", "train.tsv"])

    def test_a_run_that_fails_validation_leaves_no_output_directory(self):
        out = self.path("never_made")
        self.assert_error(self.train(out, "--train-file", self.path("missing.tsv")), "missing.tsv")
        self.assertFalse(os.path.exists(out))

    def test_a_diverging_run_stops_with_a_checkpoint(self):
        for extra in (["--eval-every", "1"], ["--eval-every", "none"]):
            out = self.path("diverged")
            shutil.rmtree(out, ignore_errors=True)
            p = self.train(out, "--lr", "1e30", "--max-steps", "50", *extra, timeout=60)
            self.assert_error(p, "diverged", "--lr")
            kept = os.listdir(os.path.join(out, "checkpoints"))
            self.assertEqual(len(kept), 1, kept)
            self.assertTrue(os.path.isfile(os.path.join(out, "checkpoints", kept[0], "model.safetensors")))

    def test_absurd_step_numbers(self):
        self.assert_error(self.train(self.path("x"), "--eval-every", "99999999999999999999"), "--eval-every")
        self.assert_error(self.train(self.path("x"), "--eval-every", "-3"), "--eval-every")
        out = self.path("huge_step")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "checkpoints", "step-99999999999999999999"))
        self.assert_error(self.train(out, "--resume"), "no checkpoint")

    def interrupted_run(self, name):
        out = self.path(name)
        shutil.rmtree(out, ignore_errors=True)
        p = self.train(out, "--max-steps", "4", "--save-every", "2", "--save-total-limit", "0")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        shutil.rmtree(os.path.join(out, "checkpoints", "step-4"), ignore_errors=True)
        return out

    def test_tampered_trainer_state_is_refused_and_metrics_kept(self):
        out = self.interrupted_run("tampered")
        newest = max(os.listdir(os.path.join(out, "checkpoints")), key=lambda n: int(n.split("-")[1]))
        state_path = os.path.join(out, "checkpoints", newest, "trainer_state.json")
        with open(state_path) as f:
            state = json.load(f)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            metrics = f.read()
        for field, value, needle in (("step", -5, "step"), ("step", 1000000, "step"), ("step", "two", "step"),
                                     ("rng_state", "zz", "rng_state"), ("rng_state", "00", "rng_state")):
            with open(state_path, "w") as f:
                json.dump({**state, field: value}, f)
            self.assert_error(self.train(out, "--max-steps", "4", "--resume"), "trainer_state.json", needle)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                self.assertEqual(f.read(), metrics)
        with open(state_path, "w") as f:
            f.write("{not json")
        self.assert_error(self.train(out, "--max-steps", "4", "--resume"), "trainer_state.json")

    def test_garbled_metrics_stop_the_resume_and_are_kept(self):
        out = self.interrupted_run("garbled_metrics")
        path = os.path.join(out, "metrics.jsonl")
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
        self.assertGreaterEqual(len(lines), 2)
        garbled = "".join([lines[0], "{\"step\": oops\n", *lines[1:]])
        with open(path, "w") as f:
            f.write(garbled)
        self.assert_error(self.train(out, "--max-steps", "4", "--resume"), "metrics.jsonl line 2")
        with open(path) as f:
            self.assertEqual(f.read(), garbled)
        # A last line cut short by a kill (no newline) is the one thing dropped: the resume goes on.
        with open(path, "w") as f:
            f.write("".join(lines) + "{\"step\": 3, \"lo")
        p = self.train(out, "--max-steps", "4", "--resume")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(path) as f:
            records = [json.loads(line) for line in f]
        self.assertEqual(max(r["step"] for r in records), 4)

    def test_temporaries_of_a_killed_save_are_removed_on_resume(self):
        out = self.interrupted_run("killed")
        dead_pid = "4194000"
        stale = os.path.join(out, "checkpoints", f".step-3.emotune-tmp.{writer_tag()}.{dead_pid}")
        os.makedirs(stale)
        with open(os.path.join(stale, "model.safetensors"), "wb") as f:
            f.write(b"partial")
        p = self.train(out, "--max-steps", "4", "--resume")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertFalse(os.path.exists(stale))


class NoSilentNonsense(Case):
    def edit_config(self, name, **changes):
        model = self.copy_model(name)
        with open(os.path.join(model, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(changes)
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(cfg, f)
        return model

    def edit_weights(self, name, change):
        model = self.copy_model(name)
        path = os.path.join(model, "model.safetensors")
        tensors = load_file(path)
        change(tensors)
        save_file(tensors, path)
        return model

    def test_missing_or_non_finite_weights_are_refused_for_inference(self):
        no_head = self.edit_weights("no_head", lambda t: t.pop("classifier.weight"))
        self.assert_error(self.predict(no_head), "classifier.weight")

        def nan(t):
            t["distilbert.transformer.layer.0.ffn.lin1.weight"][0, 0] = float("nan")
        self.assert_error(self.predict(self.edit_weights("nan_weights", nan)), "NaN")
        self.assert_error(run("eval", "--model", self.path("nan_weights"), "--data", self.dev_tsv, check=False), "NaN")
        self.assert_error(self.predict(self.edit_weights("empty", lambda t: [t.pop(k) for k in list(t)[1:]])), "lacks")
        self.assert_error(self.predict(self.edit_config("more_layers", n_layers=2)), "lacks")
        started = time.time()
        self.assert_error(self.predict(self.edit_config("huge", n_layers=1000000)), "n")
        self.assertLess(time.time() - started, 10)
        # The same check for a pickle (pytorch_model.bin), before anything is allocated.
        # (512 layers of 1024 x 4096: 6 G parameters, 25 GB, were it allocated.)
        pickled = self.edit_config("huge_pickle", n_layers=512, dim=1024, hidden_dim=4096, n_heads=16)
        torch.save(load_file(os.path.join(pickled, "model.safetensors")), os.path.join(pickled, "pytorch_model.bin"))
        os.remove(os.path.join(pickled, "model.safetensors"))
        started = time.time()
        self.assert_error(self.predict(pickled), "pytorch_model.bin holds", "parameters but config.json describes")
        self.assertLess(time.time() - started, 10)
        self.assert_error(self.predict(self.edit_config("huge_dim", dim=16 * 100000, hidden_dim=32)), "config.json")

    def test_config_fields_are_checked(self):
        self.assert_error(self.predict(self.edit_config("float_dim", dim=32.7)), "'dim'", "integer")
        labels = {str(i): f"l{i}" for i in range(28)}
        labels["00"] = labels.pop("0")
        self.assert_error(self.predict(self.edit_config("id_00", id2label=labels)), "id2label", "'00'")
        self.assert_error(self.predict(self.edit_config("bad_problem", problem_type="regression")), "problem_type")
        as_dir = self.copy_model("config_dir")
        os.remove(os.path.join(as_dir, "config.json"))
        os.makedirs(os.path.join(as_dir, "config.json"))
        self.assert_error(self.predict(as_dir), "config.json", "directory")

    def test_deeply_nested_json_is_refused_not_a_crash(self):
        """Copying or printing a value recurses: 300,000 nested lists in config.json overflowed the stack."""
        deep = "[" * 300000 + "]" * 300000
        for name, file in (("deep_config", "config.json"), ("deep_tokenizer", "tokenizer_config.json")):
            model = self.copy_model(name)
            with open(os.path.join(model, file)) as f:
                text = f.read().rstrip()
            with open(os.path.join(model, file), "w") as f:
                f.write(text[:-1] + ', "deep": ' + deep + "}")
            self.assert_error(self.predict(model), file, "nested")

    def test_tokenizer_files_are_bounded_and_typed(self):
        zero = self.copy_model("dev_zero")
        os.remove(os.path.join(zero, "tokenizer_config.json"))
        os.symlink("/dev/zero", os.path.join(zero, "tokenizer_config.json"))
        started = time.time()
        self.assert_error(self.predict(zero), "tokenizer_config.json")
        self.assertLess(time.time() - started, 10)
        typed = self.copy_model("typed")
        with open(os.path.join(typed, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": "yes"}, f)
        self.assert_error(self.predict(typed), "tokenizer_config.json")

    def test_thresholds_file_is_checked(self):
        for values, needle in (({"joy": 1.5}, "joy"), ({"joy": "high"}, "joy"), ({"happiness": 0.3}, "happiness"),
                               ([0.5] * 27 + [-0.1], "[0, 1]")):
            model = self.copy_model("thresholds")
            with open(os.path.join(model, "thresholds.json"), "w") as f:
                json.dump({"values": values}, f)
            self.assert_error(self.predict(model), "thresholds.json", needle)
        model = self.copy_model("thresholds_dir")
        os.makedirs(os.path.join(model, "thresholds.json"))
        self.assert_error(self.predict(model), "thresholds.json", "directory")

    def test_non_finite_and_negative_flags_are_refused(self):
        out = self.path("flags")
        for flag in ("--lr", "--weight-decay", "--warmup-ratio", "--max-grad-norm", "--dropout", "--focal-gamma"):
            for value in ("nan", "inf", "1e999"):
                self.assert_error(self.train(out, flag, value), flag)
        self.assert_error(self.predict(self.model, "--threshold", "nan"), "--threshold")
        self.assert_error(self.predict(self.model, "--top-k", "-1"), "--top-k")
        p = run("serve", "--model", self.model, "--port", "0", "--max-wait-ms", "nan", check=False)
        self.assert_error(p, "--max-wait-ms")
        self.assertFalse(os.path.exists(out))

    def test_long_runs_of_combining_marks_take_linear_time(self):
        # Quadratic canonical ordering took ~15 s for 100,000 marks; 400,000 would take minutes.
        path = self.path("marks.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("a" + "\u0301\u0316" * 200000 + " happy\n")
        p = subprocess.run([EMOTUNE, "predict", "--model", self.model, "--format", "jsonl", "--input", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_max_length_beyond_the_positions_is_named(self):
        self.assert_error(self.predict(self.model, "--max-length", "65"), "--max-length", "64")
        bench = ("bench", "infer", "--model", self.model, "--steps", "1", "--warmup", "0", "--threads", "1")
        long_tsv = self.path("long.tsv")
        with open(long_tsv, "w") as f:
            f.write(" ".join(["happy"] * 200) + "\t17\tx1\n")
        self.assert_error(run(*bench, "--data", long_tsv, "--max-length", "65", check=False), "--max-length", "64")
        # Without the flag, bench truncates to the model's 64 positions (its 128 default would not fit).
        p = run(*bench, "--data", long_tsv, check=False)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_more_threads_than_cpus_are_refused_not_hung(self):
        p = subprocess.run([EMOTUNE, "predict", "--model", self.model, "--threads", "1000", "hello"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assert_error(p, "--threads 1000", "CPU threads")
        self.assert_error(run("eval", "--model", self.model, "--data", self.dev_tsv, "--max-length", "65",
                              check=False), "--max-length", "64")

    def test_single_label_models_give_softmax_everywhere(self):
        out = self.path("single")
        shutil.rmtree(out, ignore_errors=True)
        p = self.train(out, "--objective", "single-label", "--eval-every", "1")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        for model in (out, os.path.join(out, "best")):
            with open(os.path.join(model, "config.json")) as f:
                self.assertEqual(json.load(f)["problem_type"], "single_label_classification")
            scores = json.loads(self.predict(model).stdout.decode().splitlines()[0])["scores"]
            self.assertAlmostEqual(sum(scores.values()), 1.0, places=4)


class HostileClients(Case):
    def start(self, *extra, model=None):
        proc = subprocess.Popen([EMOTUNE, "serve", "--model", model or self.model, "--port", "0", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "serving" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
                break
        else:
            raise AssertionError("serve never said where it listens")
        import threading
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # access lines must not fill the pipe
        self.addCleanup(lambda: (proc.terminate(), proc.wait(timeout=30)))
        return proc, port

    def raw(self, port, data, timeout=10):
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            try:
                s.sendall(data)
            except OSError:
                pass
            out = b""
            try:
                while not out.endswith(b"}") or b"\r\n\r\n" not in out:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except OSError:
                pass
            return out

    @staticmethod
    def call(port, method, path, obj=None, headers=None, timeout=60):
        """(status, headers, body as JSON or bytes)."""
        h = {"Content-Type": "application/json"} if obj is not None else {}
        h.update(headers or {})
        status, got, raw = http_call(port, method, path, obj, h, timeout)
        try:
            return status, got, json.loads(raw)
        except ValueError:
            return status, got, raw

    def test_deeply_nested_bodies_get_400(self):
        _, port = self.start()
        for path, field in (("/v1/predict", "text"), ("/predict", "inputs"), ("/v1/explain", "text")):
            body = ('{"%s": "hi", "x": %s}' % (field, "[" * 400000 + "]" * 400000)).encode()
            status, _, answer = self.call(port, "POST", path, body)
            self.assertIn(status, (400, 422), answer)
            self.assertIn("nests deeper", json.dumps(answer))
        self.assertIn(b" 200 ", self.raw(port, self.PREDICT).split(b"\r\n")[0])

    def test_post_bodies_must_say_json(self):
        """A browser page can POST text/plain or a form to localhost without a CORS preflight."""
        _, port = self.start()
        for path in ("/v1/predict", "/v1/explain", "/predict", "/"):
            for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
                status, _, body = self.call(port, "POST", path, {"text": "hi", "inputs": "hi"},
                                            {"Content-Type": ctype} if ctype else {"Content-Type": ""})
                self.assertEqual(status, 415, (path, ctype, body))
                self.assertIn("application/json", json.dumps(body))
        status, _, body = self.call(port, "POST", "/v1/predict", {"text": "hi"},
                                    {"Content-Type": "Application/JSON; charset=utf-8"})
        self.assertEqual(status, 200, body)

    def test_foreign_host_names_are_refused_on_loopback(self):
        """DNS rebinding: a page from evil.example, its name now resolving to 127.0.0.1, sends its own Host."""
        _, port = self.start()
        for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example", "localhost.evil.example",
                     "10.0.0.1"):
            for method, path, obj in (("GET", "/v1/labels", None), ("POST", "/v1/predict", {"text": "hi"}),
                                      ("GET", "/", None), ("POST", "/predict", {"inputs": "hi"})):
                status, _, body = self.call(port, method, path, obj, {"Host": host})
                self.assertEqual(status, 403, (host, path, body))
        for host in ("localhost", "LOCALHOST:%d" % port, "127.0.0.1:%d" % port, "127.5.6.7", "[::1]:%d" % port,
                     "app.localhost"):
            status, _, body = self.call(port, "POST", "/v1/predict", {"text": "hi"}, {"Host": host})
            self.assertEqual(status, 200, (host, body))

    def test_api_key_guards_every_route_but_health(self):
        key_file = os.path.join(self.tmp, "api-key")
        with open(key_file, "w") as f:
            f.write("s3cret-key-123\n")
        _, port = self.start("--api-key-file", key_file)
        self.assertEqual(self.call(port, "GET", "/health")[0], 200)
        for auth in (None, "Bearer wrong", "Bearer s3cret-key-12", "Bearer s3cret-key-1234", "Basic s3cret-key-123",
                     "s3cret-key-123"):
            for method, path, obj in (("GET", "/v1/labels", None), ("GET", "/metrics", None), ("GET", "/info", None),
                                      ("POST", "/v1/predict", {"text": "hi"}), ("POST", "/predict", {"inputs": "hi"})):
                status, headers, body = self.call(port, method, path, obj, {"Authorization": auth} if auth else {})
                self.assertEqual(status, 401, (auth, path, body))
                self.assertEqual(headers.get("www-authenticate"), "Bearer")
        good = {"Authorization": "Bearer s3cret-key-123"}
        self.assertEqual(self.call(port, "GET", "/v1/labels", None, good)[0], 200)
        self.assertEqual(self.call(port, "POST", "/v1/predict", {"text": "hi"}, good)[0], 200)
        self.assertEqual(self.call(port, "POST", "/predict", {"inputs": "hi"}, {"Authorization": "bearer s3cret-key-123"})[0], 200)
        empty = os.path.join(self.tmp, "empty-key")
        open(empty, "w").close()
        for bad in (empty, os.path.join(self.tmp, "no-such-key")):
            p = subprocess.run([EMOTUNE, "serve", "--model", self.model, "--port", "0", "--api-key-file", bad],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 2)
            self.assert_error(p, "--api-key-file", bad)

    def test_chunk_extensions_and_trailers_are_bounded(self):
        """Beast bounds neither: without a limit one line grows the buffer for the whole read timeout."""
        import socket
        _, port = self.start("--read-timeout", "60")
        head = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        for flood in (b"1;" + b"a" * 400000,                                # one chunk line without its end
                      b"".join(b"1;%s\r\nx\r\n" % (b"e" * 1000) for _ in range(100)),  # many modest extensions
                      b"0\r\nX-Trailer: " + b"t" * 400000):                  # a trailer without its end
            started = time.time()
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                try:
                    s.sendall(head + flood)
                except OSError:
                    pass
                answer = b""
                try:
                    while b"\r\n\r\n" not in answer:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                except OSError:
                    pass
            self.assertIn(b" 431 ", answer.split(b"\r\n")[0], flood[:20])
            self.assertLess(time.time() - started, 10)
        self.assertIn(b" 200 ", self.raw(port, self.PREDICT).split(b"\r\n")[0])

    def test_weights_truncated_under_a_running_server_do_not_kill_it(self):
        # Mapped pages of a file truncated in place raise SIGBUS when read: the server keeps no mapping.
        model = self.copy_model("truncated_under_serve")
        proc, port = self.start(model=model)
        texts = {"texts": ["so happy today", "this is awful", "words the first request never used: zebra quartz"]}
        before = self.call(port, "POST", "/v1/predict", texts)
        self.assertEqual(before[0], 200, before[2])
        with open(os.path.join(model, "model.safetensors"), "r+b") as f:
            f.truncate(8)
        after = self.call(port, "POST", "/v1/predict", texts)
        self.assertEqual(after[0], 200, after[2])
        self.assertEqual(after[2]["predictions"], before[2]["predictions"])
        self.assertIsNone(proc.poll(), "the server died")

    def test_explanations_are_bounded_and_keep_to_their_own_slots(self):
        _, port = self.start("--explain-max-work", "10000000", "--max-concurrent-explanations", "1",
                             "--max-concurrent-requests", "1")
        # 5,000 repeats of one label: one explanation, not 5,000.
        status, _, body = self.call(port, "POST", "/v1/explain", {"text": "so happy today", "label": ["joy"] * 5000})
        self.assertEqual(status, 200, body)
        self.assertEqual([e["label"] for e in body["explanations"]], ["joy"])
        # Over the work budget: 413 before any work, with the budget in the message.
        status, _, body = self.call(port, "POST", "/v1/explain", {"texts": ["so very happy " * 18] * 32, "steps": 256})
        self.assertEqual(status, 413, body)
        self.assertEqual(body["error"]["code"], "too_much_work")
        self.assertIn("10000000", body["error"]["message"])
        self.assertIn("--explain-max-work", body["error"]["message"])
        # A long explanation runs: predictions still have their one slot; a second explanation waits its turn.
        import threading
        slow = {}
        t = threading.Thread(target=lambda: slow.update(answer=self.call(
            port, "POST", "/v1/explain", {"texts": ["so very happy " * 8] * 32, "steps": 256, "threshold": 0})))
        t.start()
        time.sleep(0.5)
        self.assertEqual(self.call(port, "POST", "/v1/predict", {"text": "hi"})[0], 200)
        status, _, body = self.call(port, "POST", "/v1/explain", {"text": "hi", "label": "joy"})
        self.assertEqual(status, 429, body)
        self.assertIn("--max-concurrent-explanations", body["error"]["message"])
        t.join()
        self.assertEqual(slow["answer"][0], 200, slow["answer"][2])
        self.assertEqual(len(slow["answer"][2]["explanations"]), 32 * 28)

    def test_an_explanation_stops_when_its_client_hangs_up(self):
        _, port = self.start("--explain-max-work", "1000000000", "--max-concurrent-explanations", "1", "--max-batch", "96")
        # 96 texts of the model's 64 positions, every label, 256 steps: ~25 s of work whole.
        body = json.dumps({"texts": ["so very happy " * 30] * 96, "steps": 256, "threshold": 0}).encode()
        head = ("POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head + body)
            time.sleep(0.5)  # it has started: the one explanation slot is taken
            status, _, answer = self.call(port, "POST", "/v1/explain", {"text": "hi", "label": "joy"})
            self.assertEqual(status, 429, answer)
        # Gone: the work stops between passes and frees the slot (it had minutes of work left).
        hung_up = time.monotonic()
        while True:
            status, _, answer = self.call(port, "POST", "/v1/explain", {"text": "hi", "label": "joy"})
            if status != 429 or time.monotonic() - hung_up > 20:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200, answer)
        self.assertLess(time.monotonic() - hung_up, 5)
        _, _, metrics = self.call(port, "GET", "/metrics")
        self.assertIn(b'emotune_requests_total{route="/v1/explain",status="499"} 1', metrics)

    def test_port_zero_is_reported_and_a_taken_port_refused(self):
        _, port = self.start()
        self.assertGreater(port, 0)
        p = subprocess.run([EMOTUNE, "serve", "--model", self.model, "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assert_error(p, "cannot listen", str(port))

    def test_chunked_body_meets_the_body_limit(self):
        _, port = self.start("--max-body-bytes", "1000")
        chunk = b"x" * 60000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(200))  # 12 MB
        answer = self.raw(port, b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        self.assertIn(b" 413 ", answer.split(b"\r\n")[0])
        self.assertIn(b"body_too_large", answer)
        ok = self.raw(port, b'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"hi"}')
        self.assertIn(b" 200 ", ok.split(b"\r\n")[0])

    def test_token_budget(self):
        _, port = self.start("--max-batch-tokens", "20")
        long_text = json.dumps({"text": "so very happy " * 30}).encode()
        answer = self.raw(port, b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" %
                          (len(long_text), long_text))
        self.assertIn(b" 413 ", answer.split(b"\r\n")[0])
        self.assertIn(b"too_many_tokens", answer)
        ok = self.raw(port, b'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"hi"}')
        self.assertIn(b" 200 ", ok.split(b"\r\n")[0])

    def test_too_many_requests_in_progress_get_429(self):
        import threading
        _, port = self.start("--max-concurrent-requests", "1", "--max-wait-ms", "3000", "--max-batch", "64")
        request = b'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"hi"}'
        first = {}
        t = threading.Thread(target=lambda: first.update(answer=self.raw(port, request)))
        t.start()
        time.sleep(1.0)  # the first waits up to 3 s for its batch to fill
        second = self.raw(port, request)
        t.join()
        self.assertIn(b" 429 ", second.split(b"\r\n")[0])
        self.assertIn(b"overloaded", second)
        self.assertIn(b"Retry-After", second)
        self.assertIn(b" 200 ", first["answer"].split(b"\r\n")[0])

    @staticmethod
    def read_answers(sock, n, bodiless=()):
        """Reads n HTTP answers (Content-Length framed; those numbered in `bodiless` answer a HEAD) from
        a socket: [(status, headers, body)]."""
        data, answers = b"", []
        while len(answers) < n:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return answers
                data += chunk
            head, data = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            if lines[0].split()[1] == "100":
                continue
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
            length = 0 if len(answers) in bodiless else int(headers.get("content-length", 0))
            while len(data) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            answers.append((int(lines[0].split()[1]), headers, data[:length]))
            data = data[length:]
        return answers

    PREDICT = b'POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"hi"}'

    def test_oversized_heads_get_431_at_any_header_count(self):
        _, port = self.start()
        many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 90) for i in range(2000))  # 200 KB in short lines
        answer = self.raw(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
        self.assertIn(b" 431 ", answer.split(b"\r\n")[0])
        self.assertIn(b"headers_too_large", answer)
        answer = self.raw(port, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"v" * 100000 + b"\r\n\r\n")
        self.assertIn(b" 431 ", answer.split(b"\r\n")[0])
        self.assertIn(b" 400 ", self.raw(port, b"NOT HTTP AT ALL\r\n\r\n").split(b"\r\n")[0])
        self.assertIn(b" 200 ", self.raw(port, self.PREDICT).split(b"\r\n")[0])

    def test_pipelined_requests_are_all_answered_in_order(self):
        import socket
        _, port = self.start()
        requests = (self.PREDICT + b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n" + b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n" +
                    b"HEAD /v1/labels HTTP/1.1\r\nHost: localhost\r\n\r\n" + self.PREDICT)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(requests)
            answers = self.read_answers(s, 5, bodiless=(3,))
        self.assertEqual([a[0] for a in answers], [200, 200, 404, 200, 200])
        self.assertIn(b"predictions", answers[0][2])
        self.assertEqual(answers[1][2], b'{"status":"ok"}')
        self.assertIn(b"not_found", answers[2][2])
        self.assertGreater(int(answers[3][1]["content-length"]), 100)  # HEAD: the length of the GET, no body
        self.assertIn(b"predictions", answers[4][2])

    def test_expect_100_continue(self):
        import socket
        _, port = self.start()
        body = json.dumps({"text": "waiting for the go-ahead"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                      % len(body))
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 100 Continue"))
            s.sendall(body)
            self.assertEqual(self.read_answers(s, 1)[0][0], 200)

    def test_slow_clients_neither_block_service_nor_stop(self):
        """Slowloris: 150 clients send a header line every 0.5 s and never finish; others are served at
        once, the slow ones are dropped after --read-timeout, and SIGTERM does not wait on them."""
        import socket
        import threading
        proc, port = self.start("--read-timeout", "3")
        slow, stop = [], threading.Event()
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
            slow.append(s)
        self.addCleanup(lambda: [s.close() for s in slow])
        dropped = []

        def dribble():
            i = 0
            while not stop.is_set() and len(dropped) < len(slow):
                for s in slow:
                    if s in dropped:
                        continue
                    try:
                        s.sendall(b"X-Slow-%d: 1\r\n" % i)
                    except OSError:
                        dropped.append(s)
                i += 1
                stop.wait(0.5)

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        started = time.time()
        for _ in range(10):
            self.assertIn(b" 200 ", self.raw(port, self.PREDICT, timeout=5).split(b"\r\n")[0])
        self.assertLess(time.time() - started, 5.0, "slow clients held up the service")
        t.join(timeout=15)
        stop.set()
        self.assertEqual(len(dropped), len(slow), "slow clients were not dropped after --read-timeout")
        # Again, then stop while they dribble: the server waits at most for their read timeout.
        slow[:] = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        for s in slow:
            s.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.time()
        proc.terminate()
        proc.wait(timeout=15)
        self.assertEqual(proc.returncode, 0)
        self.assertLess(time.time() - started, 6.0)

    def test_a_second_signal_stops_at_once(self):
        import socket
        proc, port = self.start()  # --read-timeout 30 s: the draining server would wait that long for this body
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 20\r\n\r\n{\"text\":")
            time.sleep(0.2)
            proc.terminate()
            time.sleep(0.5)
            self.assertIsNone(proc.poll(), "the first signal should wait for the request on its way")
            started = time.time()
            proc.terminate()
            proc.wait(timeout=10)
            self.assertLess(time.time() - started, 3.0)
            self.assertEqual(proc.returncode, 0)

    def test_sigterm_drops_heads_still_arriving(self):
        """A client trickling its head has sent no request yet: a draining server does not wait for it."""
        import socket
        proc, port = self.start()  # --read-timeout 30 s
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\n")
            time.sleep(0.3)
            started = time.time()
            proc.terminate()
            proc.wait(timeout=20)
            self.assertLess(time.time() - started, 3.0)
            self.assertEqual(proc.returncode, 0)

    def test_sigterm_answers_every_request_already_sent(self):
        import socket
        import threading
        proc, port = self.start("--max-wait-ms", "200", "--max-batch", "64")
        n, answers, sent = 120, [], threading.Barrier(121)
        lock = threading.Lock()

        def client():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(self.PREDICT)
                    sent.wait()
                    got = self.read_answers(s, 1)
            except OSError as e:
                got = [(repr(e), None, None)]
            with lock:
                answers.append(got[0][0] if got else "no answer")

        threads = [threading.Thread(target=client) for _ in range(n)]
        for t in threads:
            t.start()
        sent.wait()
        proc.terminate()
        for t in threads:
            t.join(timeout=60)
        proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(answers, [200] * n)


class BlasKernels(unittest.TestCase):
    def test_fallback_kernels_are_corrected_before_work_starts(self):
        """OpenBLAS 0.3.21 falls back to Prescott kernels on CPUs it does not know; emotune then reruns itself
        with OPENBLAS_CORETYPE set. A preloaded shim plays the unknown CPU's OpenBLAS."""
        import platform
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        if platform.machine() != "x86_64" or " avx2" not in flags or " fma" not in flags:
            self.skipTest("needs an x86-64 CPU with AVX2 and FMA")
        tmp = tempfile.mkdtemp(prefix="emotune_blas_")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src, lib = os.path.join(tmp, "shim.c"), os.path.join(tmp, "shim.so")
        with open(src, "w") as f:
            f.write('#include <stdlib.h>\n'
                    'char* openblas_get_corename(void) { return getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "Prescott"; }\n')
        subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, src], check=True)
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        env["LD_PRELOAD"] = lib
        p = subprocess.run([EMOTUNE, "--version"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^emotune 0\.1\.0 \(libtorch [^\n]+\)\n$")  # the rerun did the work, once
        lines = [l for l in p.stderr.splitlines() if "OpenBLAS" in l]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("Prescott", lines[0])
        self.assertRegex(lines[0], "OPENBLAS_CORETYPE=(SkylakeX|Haswell)")
        env["OPENBLAS_CORETYPE"] = "Prescott"  # set by the user: left alone
        p = subprocess.run([EMOTUNE, "--version"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        self.assertNotIn("OpenBLAS", p.stderr)


if __name__ == "__main__":
    main()
