"""emotune's models against Hugging Face transformers (the test-only oracle, from PyPI): logits of
DistilBERT and BERT classifiers of several shapes loaded with from_pretrained from the very
directories emotune writes (no missing or unexpected keys), directories written by save_pretrained
(safetensors and pytorch_model.bin) loaded by emotune, BERT base checkpoints in both layouts, the real
all-MiniLM-L6-v2 weights, F16/BF16 checkpoints, and bad checkpoints.
Usage: check_model.py EMOTUNE_BINARY [CLASS...]   (shared data from $EMOTUNE_SHARED; exit 77 = skipped)
CTest runs it as two tests, by class (tests/CMakeLists.txt): a new class must be named there too."""
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForMaskedLM,
                          BertForPreTraining, BertForSequenceClassification, BertModel, DistilBertConfig,
                          DistilBertForSequenceClassification, RobertaConfig, RobertaForMaskedLM,
                          RobertaForSequenceClassification)
from transformers.utils import logging as hf_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FAMILIES, SHARED, TOKENIZER_DIR, family_config, family_tokenizer, main, run, missing  # noqa: E402

TOL = 1e-4  # on max(1, |logit|)
torch.manual_seed(0)
hf_logging.set_verbosity_error()
GOEMOTIONS_LABELS = [l.strip() for l in open(os.path.join(SHARED, "data", "goemotions", "emotions.txt"))] \
    if SHARED else []


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


ROBERTA_TOKENIZER_DIR = os.path.join(SHARED, "models", "roberta-base")
MPNET_TOKENIZER_DIR = os.path.join(SHARED, "models", "sentence-transformers--all-mpnet-base-v2")
SAMLOWE_DIR = os.path.join(SHARED, "models", "SamLowe--roberta-base-go_emotions")


def write_config(path, family="distilbert", **sizes):
    write_json(path, family_config(family, **sizes))


def transformers_logits(model_dir, texts, testcase=None):
    """Logits from transformers' own classes and tokenizer, loaded with from_pretrained from model_dir."""
    model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True)
    if testcase is not None:
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
            testcase.assertEqual(list(info[kind]), [], f"{kind} loading {model_dir} in transformers")
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = []
    with torch.no_grad():
        # Padded batches of mixed lengths, so that the padding mask is exercised too.
        for i in range(0, len(texts), 5):
            enc = tok(texts[i:i + 5], padding=True, truncation=True, max_length=512, return_tensors="pt")
            out.append(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits)
    return torch.cat(out), model


def emotune_logits(model_dir, texts, batch_size=7, testcase=None):
    p = run("predict", "--model", model_dir, "--logits", "--format", "jsonl", "--batch-size", str(batch_size),
            "--threads", "2", input_text="\n".join(texts) + "\n")
    rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
    if testcase is not None:
        testcase.assertEqual(len(rows), len(texts))
    return torch.tensor([r["logits"] for r in rows]), rows


def assert_parity(testcase, model_dir, texts):
    got, rows = emotune_logits(model_dir, texts, testcase=testcase)
    want, _ = transformers_logits(model_dir, texts, testcase)
    diff = ((got - want).abs() / want.abs().clamp(min=1)).max().item()
    print(f"  {os.path.basename(model_dir)}: max |logit diff| / max(1, |logit|) = {diff:.2e} over {len(texts)} texts, "
          f"max |logit| {want.abs().max().item():.2f}")
    testcase.assertLessEqual(diff, TOL)
    return rows


class ModelParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_model_test_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def init_model(self, name, labels="goemotions", seed=3, family="distilbert", **sizes):
        cfg = os.path.join(self.tmp, name + ".json")
        write_config(cfg, family, **sizes)
        out = os.path.join(self.tmp, name)
        run("init", "--config", cfg, "--tokenizer", family_tokenizer(family), "--labels", labels, "--out", out,
            "--seed", str(seed))
        return out

    def emotune_logits(self, model_dir, texts, batch_size=7):
        return emotune_logits(model_dir, texts, batch_size, self)

    def assert_parity(self, model_dir, texts):
        return assert_parity(self, model_dir, texts)

    def test_small_and_medium_shapes(self):
        texts = sample_texts(40)
        self.assert_parity(self.init_model("small"), texts)
        self.assert_parity(self.init_model("medium", labels="ekman", dim=64, n_layers=3, n_heads=8, hidden_dim=256,
                                           max_position_embeddings=512), texts)

    def test_bert_shapes(self):
        texts = sample_texts(40)
        self.assert_parity(self.init_model("bert_small", family="bert"), texts)
        self.assert_parity(self.init_model("bert_medium", labels="ekman", family="bert", hidden_size=64,
                                           num_hidden_layers=3, num_attention_heads=8, intermediate_size=256,
                                           layer_norm_eps=1e-7, hidden_act="relu"), texts)
        # initializer_range 0.25: logits of several units, so the tolerance on max(1, |logit|) is really
        # tested. (At 0.5 attention saturates and float32 itself, transformers' too, is ~3e-4 from float64.)
        self.assert_parity(self.init_model("bert_wide", family="bert", hidden_size=48, num_hidden_layers=4,
                                           num_attention_heads=6, intermediate_size=96, initializer_range=0.25), texts)

    def test_every_family_small_and_sharp(self):
        """Each family of tests/families.json at its small shape and with weights large enough for
        logits of several units; the 700-word text is cut at 512 tokens (MPNet: relative distances far
        past its 128 maximum)."""
        texts = sample_texts(40)
        for family in FAMILIES:
            with self.subTest(family=family):
                self.assert_parity(self.init_model("table_" + family, family=family), texts)
                self.assert_parity(self.init_model("table_sharp_" + family, family=family, seed=5,
                                                   initializer_range=0.25), texts)

    def test_mpnet_shapes(self):
        texts = sample_texts(40)
        self.assert_parity(self.init_model("mpnet_medium", labels="ekman", family="mpnet", hidden_size=64,
                                           num_hidden_layers=3, num_attention_heads=8, intermediate_size=256,
                                           layer_norm_eps=1e-7, hidden_act="relu"), texts)
        # More buckets than transformers looks up: the table is larger, the buckets stay 32.
        self.assert_parity(self.init_model("mpnet_buckets", family="mpnet", relative_attention_num_buckets=40,
                                           initializer_range=0.2), texts)

    def test_transformers_pipeline_reads_written_directories(self):
        """What Python users run on a model emotune wrote: pipeline("text-classification", top_k=None)
        gives emotune's scores (sigmoid: problem_type is multi-label)."""
        from transformers import pipeline
        texts = sample_texts(8)[:-1]  # the pipeline would not truncate the 700-word text
        for family in FAMILIES:
            d = self.init_model("pipe_" + family, family=family, initializer_range=0.2)
            _, rows = self.emotune_logits(d, texts)
            pipe = pipeline("text-classification", model=d, top_k=None, device=-1)
            for row, answer in zip(rows, pipe(texts)):
                theirs = {a["label"]: a["score"] for a in answer}
                self.assertEqual(set(theirs), set(row["scores"]))
                for label, score in row["scores"].items():
                    self.assertAlmostEqual(theirs[label], score, places=4, msg=f"{family} {label}")

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
        tensors = load_file(os.path.join(src, "model.safetensors"))
        texts = sample_texts(20)
        for name, dtype in (("F16", torch.float16), ("BF16", torch.bfloat16)):
            dst = os.path.join(self.tmp, "half_" + name)
            shutil.copytree(src, dst)
            save_file({k: v.to(dtype) for k, v in tensors.items()}, os.path.join(dst, "model.safetensors"),
                      metadata={"format": "pt"})
            self.assert_parity(dst, texts)  # the oracle reads the same rounded values

    def test_base_checkpoint_gets_a_fresh_head(self):
        src = self.init_model("base_src", dim=32, n_layers=2, n_heads=4, hidden_dim=64)
        tensors = load_file(os.path.join(src, "model.safetensors"))
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
        save_file(mlm, os.path.join(base, "model.safetensors"), metadata={"format": "pt"})

        out = os.path.join(self.tmp, "from_base")
        p = run("init", "--base", base, "--labels", "sentiment", "--out", out, "--seed", "5")
        log = p.stderr.decode()
        self.assertIn("vocab_projector.bias", log)  # unused tensors, listed in one line
        self.assertIn("classifier.weight", log)  # missing tensors, initialised
        loaded = load_file(os.path.join(out, "model.safetensors"))
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
        self.assertTrue(torch.equal(load_file(os.path.join(out2, "model.safetensors"))["classifier.weight"], w))
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


class TransformersDirectories(unittest.TestCase):
    """Directories written by transformers' own save_pretrained (random init) load in emotune and give
    transformers' logits: classifiers in safetensors and in pytorch_model.bin, and BERT base checkpoints
    in both layouts (bert.-prefixed with pre-training heads, and bare BertModel names)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_hf_dirs_")
        cls.texts = sample_texts(30)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def save(self, model, name, safe=True):
        out = os.path.join(self.tmp, name)
        model.save_pretrained(out, safe_serialization=safe)
        AutoTokenizer.from_pretrained(TOKENIZER_DIR).save_pretrained(out)
        return out

    def labelled(self, config):
        config.id2label = dict(enumerate(GOEMOTIONS_LABELS))
        config.label2id = {n: i for i, n in enumerate(GOEMOTIONS_LABELS)}
        config.problem_type = "multi_label_classification"
        return config

    def test_save_pretrained_classifiers_both_serialisations(self):
        torch.manual_seed(1)
        models = {
            "distilbert": DistilBertForSequenceClassification(self.labelled(DistilBertConfig(
                dim=48, n_layers=2, n_heads=4, hidden_dim=96, initializer_range=0.3))),
            "bert": BertForSequenceClassification(self.labelled(BertConfig(
                hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                initializer_range=0.3))),
        }
        for family, model in models.items():
            for safe in (True, False):
                d = self.save(model, f"{family}_{'safetensors' if safe else 'bin'}", safe)
                weights = "model.safetensors" if safe else "pytorch_model.bin"
                self.assertTrue(os.path.exists(os.path.join(d, weights)), os.listdir(d))
                assert_parity(self, d, self.texts)

    def test_roberta_save_pretrained_classifiers(self):
        torch.manual_seed(5)
        model = RobertaForSequenceClassification(self.labelled(RobertaConfig(
            vocab_size=50265, max_position_embeddings=514, pad_token_id=1, type_vocab_size=1, hidden_size=48,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, initializer_range=0.3)))
        for safe in (True, False):
            out = os.path.join(self.tmp, f"roberta_{safe}")
            model.save_pretrained(out, safe_serialization=safe)
            AutoTokenizer.from_pretrained(ROBERTA_TOKENIZER_DIR).save_pretrained(out)
            texts = self.texts + ["<mask> and <s> in text", "it's   spaced\tout"]
            assert_parity(self, out, texts)

    def test_samlowe_roberta_go_emotions_layout(self):
        """SamLowe/roberta-base-go_emotions' own config.json and tokenizer files (RoBERTa-base, 28 labels by
        name), with random weights of its shapes: predict gives transformers' logits, eval reads labels by name."""
        torch.manual_seed(6)
        config = AutoConfig.from_pretrained(SAMLOWE_DIR)
        model = RobertaForSequenceClassification(config)
        with torch.no_grad():
            model.classifier.out_proj.weight.normal_(0, 0.5)
        out = os.path.join(self.tmp, "samlowe")
        model.save_pretrained(out)
        for f in os.listdir(SAMLOWE_DIR):
            shutil.copy(os.path.join(SAMLOWE_DIR, f), out)
        assert_parity(self, out, sample_texts(20))
        from harness import GOEMOTIONS
        dev = os.path.join(self.tmp, "dev300.tsv")
        with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f, open(dev, "w", encoding="utf-8") as o:
            o.writelines(line for _, line in zip(range(300), f))
        evaluate = ("eval", "--data", dev, "--batch-size", "32", "--max-length", "64")
        p = run(*evaluate[:1], "--model", out, *evaluate[1:])
        self.assertIn("macro", p.stdout.decode())
        # The same model with its labels listed in another order (rows of out_proj to match): eval reads
        # the columns by name and reports the same numbers.
        shuffled = os.path.join(self.tmp, "samlowe_shuffled")
        shutil.copytree(out, shuffled)
        cfg = read_json(os.path.join(shuffled, "config.json"))
        order = list(range(28))[::-1]
        cfg["id2label"] = {str(i): cfg["id2label"][str(j)] for i, j in enumerate(order)}
        cfg["label2id"] = {name: int(i) for i, name in cfg["id2label"].items()}
        write_json(os.path.join(shuffled, "config.json"), cfg)
        tensors = load_file(os.path.join(shuffled, "model.safetensors"))
        for k in ("classifier.out_proj.weight", "classifier.out_proj.bias"):
            tensors[k] = tensors[k][order].contiguous()
        save_file(tensors, os.path.join(shuffled, "model.safetensors"), metadata={"format": "pt"})
        q = run(*evaluate[:1], "--model", shuffled, *evaluate[1:])
        self.assertEqual(p.stdout.decode(), q.stdout.decode())
        shutil.rmtree(out)
        shutil.rmtree(shuffled)

    def test_roberta_base_checkpoint_gets_a_head(self):
        torch.manual_seed(7)
        config = RobertaConfig(vocab_size=50265, max_position_embeddings=514, pad_token_id=1, type_vocab_size=1,
                               hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
        base = RobertaForMaskedLM(config)
        prefixed = os.path.join(self.tmp, "roberta_mlm")
        base.save_pretrained(prefixed)
        for f in os.listdir(ROBERTA_TOKENIZER_DIR):
            if f != "config.json":
                shutil.copy(os.path.join(ROBERTA_TOKENIZER_DIR, f), prefixed)
        out, log = self.base_to_classifier(prefixed, "roberta_from_mlm")
        self.assertIn("lm_head", log)
        self.assertIn("classifier.out_proj.weight", log)
        loaded = load_file(os.path.join(out, "model.safetensors"))
        for name, p in base.roberta.named_parameters():
            self.assertTrue(torch.equal(loaded["roberta." + name], p.detach()), name)
        assert_parity(self, out, self.texts)

    def test_mpnet_save_pretrained_classifiers(self):
        from transformers import MPNetConfig, MPNetForSequenceClassification
        torch.manual_seed(6)
        model = MPNetForSequenceClassification(self.labelled(MPNetConfig(
            vocab_size=30527, max_position_embeddings=514, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=96,
            initializer_range=0.3)))
        for safe in (True, False):
            out = os.path.join(self.tmp, f"mpnet_{safe}")
            model.save_pretrained(out, safe_serialization=safe)
            AutoTokenizer.from_pretrained(MPNET_TOKENIZER_DIR).save_pretrained(out)
            texts = self.texts + ["<mask> and <s> in text", "[UNK] <unk> <pad>", "it's   spaced\tout"]
            assert_parity(self, out, texts)

    def test_mpnet_base_checkpoints_in_both_layouts(self):
        """A bare MPNetModel as sentence-transformers saves all-mpnet-base-v2 (no prefix, a pooler that
        the classifier does not use) and an MPNetForMaskedLM (mpnet.-prefixed, lm_head ignored)."""
        from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel
        torch.manual_seed(8)
        config = MPNetConfig(vocab_size=30527, max_position_embeddings=514, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4,
                             intermediate_size=64)
        for kind, base, encoder in (("bare", MPNetModel(config), None), ("mlm", MPNetForMaskedLM(config), "mpnet")):
            d = os.path.join(self.tmp, f"mpnet_{kind}")
            base.save_pretrained(d)
            for f in os.listdir(MPNET_TOKENIZER_DIR):
                if f.endswith((".txt", ".json")) and f != "config.json":
                    shutil.copy(os.path.join(MPNET_TOKENIZER_DIR, f), d)
            out, log = self.base_to_classifier(d, f"mpnet_from_{kind}")
            self.assertIn("lm_head" if encoder else "pooler.dense.weight", log)
            self.assertEqual(log.count("pooler.dense.weight"), 0 if encoder else 1, log)
            self.assertIn("classifier.out_proj.weight", log)
            loaded = load_file(os.path.join(out, "model.safetensors"))
            module = getattr(base, encoder) if encoder else base
            for name, p in module.named_parameters():
                if not name.startswith("pooler."):
                    self.assertTrue(torch.equal(loaded["mpnet." + name], p.detach()), name)
            self.assertFalse(any(k.startswith("mpnet.pooler") for k in loaded))
            assert_parity(self, out, self.texts)

    def base_to_classifier(self, base, name):
        out = os.path.join(self.tmp, name)
        p = run("init", "--base", base, "--labels", "goemotions", "--out", out, "--seed", "4")
        return out, p.stderr.decode()

    def test_bert_base_checkpoints_in_both_layouts(self):
        torch.manual_seed(2)
        config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
        pretraining = BertForPreTraining(config)
        prefixed = self.save(pretraining, "bert_pretraining")
        out, log = self.base_to_classifier(prefixed, "from_prefixed")
        self.assertIn("cls.predictions", log)  # pre-training heads: unused, said
        self.assertIn("not used by BertForSequenceClassification", log)
        self.assertEqual(sum("initialised (not in the checkpoint)" in l for l in log.splitlines()), 1, log)
        self.assertIn("classifier.weight", log)
        loaded = load_file(os.path.join(out, "model.safetensors"))
        for name, p in pretraining.bert.named_parameters():
            self.assertTrue(torch.equal(loaded["bert." + name], p.detach()), name)
        assert_parity(self, out, self.texts)

        bare = BertModel(config)  # sentence-transformers' layout: no prefix, with the pooler
        out, log = self.base_to_classifier(self.save(bare, "bert_bare", safe=False), "from_bare")
        self.assertNotIn("pooler", log)
        loaded = load_file(os.path.join(out, "model.safetensors"))
        for name, p in bare.named_parameters():
            self.assertTrue(torch.equal(loaded["bert." + name], p.detach()), name)
        assert_parity(self, out, self.texts)

        no_pooler = BertModel(config, add_pooling_layer=False)
        out, log = self.base_to_classifier(self.save(no_pooler, "bert_no_pooler"), "from_no_pooler")
        self.assertIn("bert.pooler.dense.weight", log)  # missing: initialised, said once
        assert_parity(self, out, self.texts)

    def test_real_minilm_weights(self):
        """all-MiniLM-L6-v2's real weights (scripts/fetch-from-pypi.sh; path in $EMOTUNE_MINILM)."""
        base = os.environ.get("EMOTUNE_MINILM", "")
        if not base:
            missing("EMOTUNE_MINILM is not set (scripts/test.sh sets it)")
        out, _ = self.base_to_classifier(base, "minilm")
        # A larger head than the initialisation's, so the logits are not all near zero.
        path = os.path.join(out, "model.safetensors")
        tensors = load_file(path)
        tensors["classifier.weight"] = torch.randn_like(tensors["classifier.weight"])
        save_file(tensors, path, metadata={"format": "pt"})
        assert_parity(self, out, sample_texts(60))
        # The encoder is the pretrained one, tensor for tensor.
        original = load_file(os.path.join(base, "model.safetensors"))
        for name, t in original.items():
            if not name.endswith("position_ids"):
                self.assertTrue(torch.equal(tensors["bert." + name], t), name)


class EveryCommand(unittest.TestCase):
    """init, train (with dev evaluation, a checkpoint and resume), eval with tuned thresholds and a report,
    predict (float and int8), bench and serve, all on a BERT and on a RoBERTa classifier directory."""

    def test_every_family_through_every_command(self):
        for family, entry in FAMILIES.items():
            with self.subTest(family=family):
                self.every_command(family, family_tokenizer(family), entry["classifier"])

    def every_command(self, family, tokenizer_dir, architecture):
        import signal
        import socket
        import subprocess
        import urllib.request
        from harness import EMOTUNE, GOEMOTIONS
        tmp = tempfile.mkdtemp(prefix="emotune_bert_cmds_")
        try:
            cfg = os.path.join(tmp, "bert.json")
            write_config(cfg, family, max_position_embeddings=130)
            init = os.path.join(tmp, "init")
            run("init", "--config", cfg, "--tokenizer", tokenizer_dir, "--out", init, "--seed", "1")
            data = os.path.join(tmp, "data")
            os.makedirs(data)
            for split, n in (("train", 200), ("dev", 120), ("test", 120)):
                with open(os.path.join(GOEMOTIONS, f"{split}.tsv"), encoding="utf-8") as f, \
                        open(os.path.join(data, f"{split}.tsv"), "w", encoding="utf-8") as out:
                    out.writelines(line for _, line in zip(range(n), f))
            out = os.path.join(tmp, "run")
            args = ["train", "--model", init, "--data-dir", data, "--output", out, "--max-steps", "12",
                    "--batch-size", "16", "--lr", "1e-3", "--eval-every", "6", "--save-every", "6", "--loss", "asl"]
            run(*args)
            whole = load_file(os.path.join(out, "model.safetensors"))
            shutil.rmtree(os.path.join(out, "checkpoints", "step-12"))
            os.remove(os.path.join(out, "model.safetensors"))
            run(*args, "--resume")
            resumed = load_file(os.path.join(out, "model.safetensors"))
            self.assertTrue(all(torch.equal(whole[k], resumed[k]) for k in whole), "resume is exact")
            self.assertEqual(read_json(os.path.join(out, "config.json"))["architectures"], [architecture])
            short = sample_texts(10)[:11]  # dev texts, the empty one and a unicode one: within the positions
            want, _ = transformers_logits(out, short, self)
            got, _ = emotune_logits(out, short)
            self.assertLess(((got - want).abs() / want.abs().clamp(min=1)).max().item(), TOL)
            report = os.path.join(tmp, "report")
            run("eval", "--model", out, "--data-dir", data, "--split", "test", "--thresholds", "tuned",
                "--report", report)
            self.assertEqual(read_json(os.path.join(report, "report.json"))["n_examples"], 120)
            self.assertTrue(os.path.exists(os.path.join(out, "thresholds.json")))
            f32, _ = emotune_logits(out, sample_texts(10))
            for precision, tol in (("f32", 1e-4), ("bf16", 0.05), ("int8", 0.1)):
                p = run("predict", "--model", out, "--precision", precision, "--format", "jsonl", "--logits",
                        input_text="\n".join(sample_texts(10)) + "\n", check=False)
                if precision != "f32" and p.returncode != 0 and "this emotune has no oneDNN" in p.stderr.decode():
                    continue  # the libtorch 2.x (CUDA) build runs the CPU in float32 only, and says so
                if precision == "bf16" and p.returncode != 0:  # a CPU without AVX512_BF16 or AMX says so
                    self.assertIn("--precision bf16 needs a CPU with AVX512_BF16 or AMX", p.stderr.decode())
                    continue
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                got = torch.tensor([json.loads(l)["logits"] for l in p.stdout.decode().splitlines()])
                self.assertLess((got - f32).abs().max().item(), tol, precision)
                if precision != "f32":
                    self.assertGreater((got - f32).abs().max().item(), 0, precision + " is not float")
            for mode in ("train", "infer"):
                p = run("bench", mode, "--model", out, "--data", os.path.join(data, "train.tsv"), "--steps", "2",
                        "--warmup", "1")
                self.assertGreater(json.loads(p.stdout)["examples_per_s"], 0)
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            server = subprocess.Popen([EMOTUNE, "serve", "--model", out, "--port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                answer = None
                for _ in range(300):
                    try:
                        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict",
                                                     data=json.dumps({"text": "I love it"}).encode(),
                                                     headers={"Content-Type": "application/json"})
                        with urllib.request.urlopen(req, timeout=2) as r:
                            answer = json.loads(r.read())
                        break
                    except OSError:
                        time.sleep(0.1)
                self.assertIsNotNone(answer, "serve answered")
                self.assertEqual(len(answer["predictions"]), 1)
            finally:
                server.send_signal(signal.SIGTERM)
                self.assertEqual(server.wait(timeout=30), 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


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
        self.assert_one_line_error(d, "model.safetensors", "pytorch_model.bin")
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
        d = self.variant("gpt2")
        cfg = read_json(os.path.join(d, "config.json"))
        cfg["model_type"] = "gpt2"
        write_json(os.path.join(d, "config.json"), cfg)
        self.assert_one_line_error(d, "model_type", "gpt2", "distilbert, bert, roberta")

    def test_cuda_on_cpu_build(self):
        if torch.cuda.is_available():
            self.skipTest("a GPU is visible")
        self.assert_one_line_error(self.good, "cuda", args=("--device", "cuda", "hello"))


if __name__ == "__main__":
    main()
