"""emotune's DistilBERT against the PyTorch oracle: logits for random models of several sizes,
F16/BF16 checkpoints, base checkpoints, round trips by Hugging Face names, and bad checkpoints.
Usage: check_model.py EMOTUNE_BINARY   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SHARED, TOKENIZER_DIR, main, run  # noqa: E402
from bert_tokenizer_ref import ReferenceBertTokenizer  # noqa: E402
from distilbert_ref import batch, load_classifier, read_safetensors, write_safetensors  # noqa: E402

TOL = 1e-4
torch.manual_seed(0)  # the random extra tensors of the base-checkpoint test


def sample_texts(n):
    with open(os.path.join(SHARED, "data", "goemotions", "dev.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[0] for _, line in zip(range(n), f)]
    return texts + ["", "Héllo [NAME]!! 😀 中文", "so " * 700]  # empty, unicode, truncated at 512


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def write_config(path, **sizes):
    config = {"model_type": "distilbert", "vocab_size": 30522, "max_position_embeddings": 512, "dim": 32,
              "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "dropout": 0.1, "attention_dropout": 0.1,
              "seq_classif_dropout": 0.2, "initializer_range": 0.02, "pad_token_id": 0, "activation": "gelu"}
    config.update(sizes)
    write_json(path, config)


class ModelParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_model_test_")
        cls.tok = ReferenceBertTokenizer(os.path.join(TOKENIZER_DIR, "vocab.txt"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def init_model(self, name, labels="goemotions", seed=3, **sizes):
        cfg = os.path.join(self.tmp, name + ".json")
        write_config(cfg, **sizes)
        out = os.path.join(self.tmp, name)
        run("init", "--config", cfg, "--tokenizer", TOKENIZER_DIR, "--labels", labels, "--out", out,
            "--seed", str(seed))
        return out

    def emotune_logits(self, model_dir, texts, batch_size=7):
        p = run("predict", "--model", model_dir, "--logits", "--format", "jsonl", "--batch-size", str(batch_size),
                "--threads", "2", input_text="\n".join(texts) + "\n")
        rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertEqual(len(rows), len(texts))
        return torch.tensor([r["logits"] for r in rows]), rows

    def reference_logits(self, model_dir, texts):
        model, _ = load_classifier(model_dir)
        ids = [self.tok.encode(t, 512)[0] for t in texts]
        with torch.no_grad():
            # Padded batches of mixed lengths, so that the padding mask is exercised too.
            return torch.cat([model(*batch(ids[i:i + 5])) for i in range(0, len(ids), 5)])

    def assert_parity(self, model_dir, texts):
        got, rows = self.emotune_logits(model_dir, texts)
        want = self.reference_logits(model_dir, texts)
        diff = (got - want).abs().max().item()
        print(f"  {os.path.basename(model_dir)}: max |logit diff| = {diff:.2e} over {len(texts)} texts")
        self.assertLessEqual(diff, TOL)
        return rows

    def test_small_and_medium_shapes(self):
        texts = sample_texts(40)
        self.assert_parity(self.init_model("small"), texts)
        self.assert_parity(self.init_model("medium", labels="ekman", dim=64, n_layers=3, n_heads=8, hidden_dim=256,
                                           max_position_embeddings=512), texts)

    def test_full_distilbert_shape(self):
        rows = self.assert_parity(self.init_model("full", dim=768, n_layers=6, n_heads=12, hidden_dim=3072),
                                  sample_texts(10))
        self.assertTrue(rows[-1].get("truncated"))

    def test_probabilities_labels_and_thresholds(self):
        model = self.init_model("probs")
        texts = sample_texts(5)
        got, rows = self.emotune_logits(model, texts)
        names = read_json(os.path.join(model, "config.json"))["id2label"]
        for logits, row in zip(got, rows):
            probs = torch.sigmoid(logits)
            self.assertEqual(list(row["scores"].keys()), [names[str(i)] for i in range(len(names))])
            for i, p in enumerate(probs.tolist()):
                self.assertAlmostEqual(row["scores"][names[str(i)]], p, places=5)
            want = sorted([names[str(i)] for i, p in enumerate(probs.tolist()) if p >= 0.5],
                          key=lambda n: -row["scores"][n])
            self.assertEqual(row["labels"], want)
        # --threshold and --top-k
        p = run("predict", "--model", model, "--threshold", "0", "--top-k", "3", "--format", "jsonl", "hello")
        self.assertEqual(len(json.loads(p.stdout)["labels"]), 3)
        # thresholds.json in the model directory is honoured
        with open(os.path.join(model, "thresholds.json"), "w") as f:
            json.dump({"values": [1.0] * 28}, f)
        p = run("predict", "--model", model, "--format", "jsonl", "hello")
        self.assertEqual(json.loads(p.stdout)["labels"], [])
        os.remove(os.path.join(model, "thresholds.json"))

    def test_half_precision_checkpoints(self):
        src = self.init_model("half_src", dim=64, n_layers=2, n_heads=4, hidden_dim=128)
        tensors, _ = read_safetensors(os.path.join(src, "model.safetensors"))
        texts = sample_texts(20)
        for dtype in ("F16", "BF16"):
            dst = os.path.join(self.tmp, "half_" + dtype)
            shutil.copytree(src, dst)
            write_safetensors(os.path.join(dst, "model.safetensors"), tensors, dtype)
            self.assert_parity(dst, texts)  # the oracle reads the same rounded values

    def test_base_checkpoint_gets_a_fresh_head(self):
        src = self.init_model("base_src", dim=32, n_layers=2, n_heads=4, hidden_dim=64)
        tensors, _ = read_safetensors(os.path.join(src, "model.safetensors"))
        base = os.path.join(self.tmp, "base")
        os.makedirs(base)
        for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(TOKENIZER_DIR, f), base)
        cfg = read_json(os.path.join(src, "config.json"))
        for k in ("id2label", "label2id", "problem_type"):
            cfg.pop(k)
        cfg["architectures"] = ["DistilBertForMaskedLM"]
        write_json(os.path.join(base, "config.json"), cfg)
        mlm = {k: v for k, v in tensors.items() if k.startswith("distilbert.")}
        mlm["vocab_transform.weight"] = torch.randn(32, 32)
        mlm["vocab_transform.bias"] = torch.randn(32)
        mlm["vocab_layer_norm.weight"] = torch.ones(32)
        mlm["vocab_layer_norm.bias"] = torch.zeros(32)
        mlm["vocab_projector.bias"] = torch.zeros(30522)
        write_safetensors(os.path.join(base, "model.safetensors"), mlm)

        out = os.path.join(self.tmp, "from_base")
        p = run("init", "--base", base, "--labels", "sentiment", "--out", out, "--seed", "5")
        log = p.stderr.decode()
        self.assertIn("vocab_projector.bias", log)  # unused tensors, listed in one line
        self.assertIn("classifier.weight", log)  # missing tensors, initialised
        loaded, _ = read_safetensors(os.path.join(out, "model.safetensors"))
        for k, v in mlm.items():
            if k.startswith("distilbert."):
                self.assertTrue(torch.equal(loaded[k], v), k)
        w = loaded["classifier.weight"]
        self.assertEqual(tuple(w.shape), (4, 32))
        self.assertTrue(0.01 < w.std().item() < 0.03)
        self.assertTrue(torch.all(loaded["classifier.bias"] == 0))
        self.assert_parity(out, sample_texts(10))
        # same seed, same head
        out2 = os.path.join(self.tmp, "from_base2")
        run("init", "--base", base, "--labels", "sentiment", "--out", out2, "--seed", "5")
        self.assertTrue(torch.equal(read_safetensors(os.path.join(out2, "model.safetensors"))[0]["classifier.weight"], w))
        # A base checkpoint cannot predict: it has no labels.
        p = run("predict", "--model", base, "hello", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("id2label", p.stderr.decode())

    def test_written_directory_is_complete(self):
        model = self.init_model("complete")
        cfg = read_json(os.path.join(model, "config.json"))
        self.assertEqual(cfg["architectures"], ["DistilBertForSequenceClassification"])
        self.assertEqual(cfg["problem_type"], "multi_label_classification")
        self.assertEqual(cfg["id2label"]["27"], "neutral")
        self.assertEqual(cfg["label2id"]["admiration"], 0)
        for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            self.assertTrue(os.path.exists(os.path.join(model, f)), f)
        with open(os.path.join(model, "model.safetensors"), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        self.assertEqual((8 + n) % 8, 0)
        # an existing output is never overwritten without --overwrite
        cfg_path = os.path.join(self.tmp, "complete.json")
        p = run("init", "--config", cfg_path, "--tokenizer", TOKENIZER_DIR, "--out", model, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--overwrite", p.stderr.decode())
        run("init", "--config", cfg_path, "--tokenizer", TOKENIZER_DIR, "--out", model, "--overwrite", "--seed", "9")


class BadCheckpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_bad_test_")
        cfg = os.path.join(cls.tmp, "c.json")
        write_config(cfg)
        cls.good = os.path.join(cls.tmp, "good")
        run("init", "--config", cfg, "--tokenizer", TOKENIZER_DIR, "--out", cls.good)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def variant(self, name):
        d = os.path.join(self.tmp, name)
        shutil.copytree(self.good, d)
        return d

    def assert_one_line_error(self, model_dir, *needles, args=("hello",)):
        p = run("predict", "--model", model_dir, *args, check=False)
        err = [l for l in p.stderr.decode().splitlines() if "error" in l]
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        self.assertEqual(len(err), 1, p.stderr.decode())
        for n in needles:
            self.assertIn(n, err[0])
        self.assertEqual(p.stdout, b"")

    def rewrite_header(self, d, edit):
        path = os.path.join(d, "model.safetensors")
        data = read_bytes(path)
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        edit(header)
        text = json.dumps(header).encode()
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
        write_bytes(path, struct.pack("<Q", len(text)) + text + data[8 + n:])

    def test_missing_files(self):
        self.assert_one_line_error(os.path.join(self.tmp, "nowhere"), "nowhere")
        d = self.variant("no_weights")
        os.remove(os.path.join(d, "model.safetensors"))
        self.assert_one_line_error(d, "model.safetensors")
        d = self.variant("no_config")
        os.remove(os.path.join(d, "config.json"))
        self.assert_one_line_error(d, "config.json")
        d = self.variant("no_vocab")
        os.remove(os.path.join(d, "vocab.txt"))
        self.assert_one_line_error(d, "vocab.txt")

    def test_truncated_file(self):
        d = self.variant("truncated")
        path = os.path.join(d, "model.safetensors")
        data = read_bytes(path)
        write_bytes(path, data[: len(data) // 2])
        self.assert_one_line_error(d, "model.safetensors")
        write_bytes(path, data[:5])
        self.assert_one_line_error(d, "truncated")

    def test_header_length_past_end(self):
        d = self.variant("header_len")
        path = os.path.join(d, "model.safetensors")
        data = bytearray(read_bytes(path))
        data[:8] = struct.pack("<Q", len(data) * 2)
        write_bytes(path, data)
        self.assert_one_line_error(d, "header length")

    def test_offsets_outside_file(self):
        d = self.variant("offsets")
        self.rewrite_header(d, lambda h: h["classifier.bias"].update(data_offsets=[10**12, 10**12 + 112]))
        self.assert_one_line_error(d, "classifier.bias", "outside")

    def test_unknown_and_unsupported_dtypes(self):
        d = self.variant("dtype")
        self.rewrite_header(d, lambda h: h["classifier.bias"].update(dtype="F33"))
        self.assert_one_line_error(d, "F33")
        d = self.variant("dtype_i32")
        self.rewrite_header(d, lambda h: h["classifier.bias"].update(dtype="I32"))
        self.assert_one_line_error(d, "I32")

    def test_invalid_header_json(self):
        d = self.variant("json")
        path = os.path.join(d, "model.safetensors")
        data = bytearray(read_bytes(path))
        data[8] = ord("!")
        write_bytes(path, data)
        self.assert_one_line_error(d, "model.safetensors")

    def test_shape_disagrees_with_config(self):
        d = self.variant("shape")
        cfg = read_json(os.path.join(d, "config.json"))
        cfg["hidden_dim"] = 48
        write_json(os.path.join(d, "config.json"), cfg)
        self.assert_one_line_error(d, "distilbert.transformer.layer.0.ffn.lin1.weight", "[64, 32]", "[48, 32]")

    def test_other_architecture(self):
        d = self.variant("bert")
        cfg = read_json(os.path.join(d, "config.json"))
        cfg["model_type"] = "bert"
        write_json(os.path.join(d, "config.json"), cfg)
        self.assert_one_line_error(d, "model_type", "bert")

    def test_cuda_on_cpu_build(self):
        if torch.cuda.is_available():
            self.skipTest("a GPU is visible")
        self.assert_one_line_error(self.good, "cuda", args=("--device", "cuda", "hello"))


if __name__ == "__main__":
    main()
