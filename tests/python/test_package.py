"""The Python package (python/emotune/) over the same core as the program: its answers equal the
CLI's and transformers' pipeline on the same directories; it is safe from several threads with the
GIL released; train/evaluate/calibrate take the CLI's options as keyword arguments; Ctrl-C leaves a
resumable run; bad input raises the CLI's one-line messages as Python exceptions."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import emotune
from conftest import EMOTUNE, FAMILIES, GOEMOTIONS, ROOT, cli, dev_texts, missing


def cli_scores(model_dir, texts, *flags):
    """`emotune predict`'s scores per text (rounded to 1e-6 by its writer)."""
    p = cli("predict", "--model", model_dir, "--format", "jsonl", "--threshold", "0", *flags,
            input_text="".join(t + "\n" for t in texts))
    return [json.loads(line)["scores"] for line in p.stdout.splitlines()]


def assert_answers_equal(ours, theirs, tol):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert [x["label"] for x in a] == [x["label"] for x in b] or \
            all(abs(x["score"] - y["score"]) < tol for x, y in zip(a, b))  # ties may order either way
        got = {x["label"]: x["score"] for x in a}
        for x in b:
            assert abs(got[x["label"]] - x["score"]) <= tol, x["label"]


def test_predict_equals_transformers_pipeline(models, minilm):
    from transformers import pipeline
    texts = dev_texts(12)
    for name, d in [*models.items(), ("minilm", minilm)]:
        pipe = pipeline("text-classification", model=d, top_k=None, device=-1)
        model = emotune.Model(d)
        assert_answers_equal(model.predict(texts), pipe(texts), 1e-5)
        # one string: the same nesting as the pipeline's (a list holding one answer)
        one = model.predict("I miss her so much")
        assert_answers_equal(one, pipe("I miss her so much"), 1e-5)
        assert len(one) == 1 and len(one[0]) == len(model.labels)
        assert model("I miss her so much") == one  # callable, as a pipeline


def test_scores_equal_the_cli(models):
    texts = dev_texts(20) + ["so " * 700]  # one text past 512 tokens: cut, as the CLI cuts it
    for family, d in models.items():
        model = emotune.Model(d)
        probs = model.scores(texts)
        assert probs.shape == (len(texts), len(model.labels)) and probs.dtype == np.float32
        for row, theirs in zip(probs, cli_scores(d, texts)):
            assert list(theirs) == model.labels
            np.testing.assert_allclose(row, list(theirs.values()), atol=1.5e-6, err_msg=family)
        np.testing.assert_allclose(probs, 1 / (1 + np.exp(-model.logits(texts).astype(np.float64))), atol=1e-6)
        # bf16 and int8 run the same core as the CLI's --precision
        for precision in ("bf16", "int8"):
            ours = emotune.Model(d, precision=precision).scores(texts[:6])
            theirs = cli_scores(d, texts[:6], "--precision", precision)
            np.testing.assert_allclose(ours, [list(t.values()) for t in theirs], atol=1.5e-6, err_msg=precision)


def test_labels_config_and_pandas(models):
    pd = pytest.importorskip("pandas")
    d = models["bert"]
    model = emotune.Model(d, threads=1)
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert model.config == config
    assert model.labels == [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    column = pd.Series(dev_texts(8), index=range(100, 110))
    np.testing.assert_array_equal(model.scores(column), model.scores(list(column)))


def test_thresholds_and_top_k(models):
    d = models["distilbert"]
    texts = dev_texts(10)
    model = emotune.Model(d)
    probs = model.scores(texts)
    everything = model.predict(texts)
    for row, answer in zip(probs, model.predict(texts, top_k=3)):
        assert [a["label"] for a in answer] == [model.labels[j] for j in np.argsort(-row, kind="stable")[:3]]
    cut = float(np.median(probs))
    for row, answer in zip(probs, model.predict(texts, thresholds=cut)):
        assert {a["label"] for a in answer} == {model.labels[j] for j in np.flatnonzero(row >= cut)}
    # "tuned": the directory's thresholds.json, as `emotune predict` applies it by default
    tuned = {label: float(t) for label, t in zip(model.labels, np.linspace(0.3, 0.7, len(model.labels)))}
    tuned_dir = d + "-tuned"
    shutil.copytree(d, tuned_dir, dirs_exist_ok=True)
    with open(os.path.join(tuned_dir, "thresholds.json"), "w") as f:
        json.dump({"values": tuned}, f)
    p = cli("predict", "--model", tuned_dir, "--format", "jsonl", input_text="".join(t + "\n" for t in texts))
    cli_labels = [json.loads(line)["labels"] for line in p.stdout.splitlines()]
    ours = emotune.Model(tuned_dir).predict(texts, thresholds="tuned")
    assert [[a["label"] for a in answer] for answer in ours] == cli_labels
    assert len(everything[0]) == len(model.labels)


def test_calibrated_scores(models):
    d = models["roberta"] + "-calibrated"
    shutil.copytree(models["roberta"], d, dirs_exist_ok=True)
    plain = emotune.Model(d)
    labels = plain.labels
    temperature, bias = np.linspace(0.5, 2.0, len(labels)), np.linspace(-1, 1, len(labels))
    with open(os.path.join(d, "calibration.json"), "w") as f:
        json.dump({"fit": "platt-per-label", "labels": labels, "temperature": temperature.tolist(),
                   "bias": bias.tolist()}, f)
    texts = dev_texts(6)
    logits = plain.logits(texts).astype(np.float64)
    calibrated = emotune.Model(d)
    np.testing.assert_allclose(calibrated.scores(texts), 1 / (1 + np.exp(-(logits / temperature + bias))), atol=2e-6)
    np.testing.assert_allclose(calibrated.scores(texts), [list(s.values()) for s in cli_scores(d, texts)], atol=1.5e-6)


def test_long_texts_in_windows(models):
    d = models["bert"]
    texts = [" ".join(dev_texts(60)) * 3, "short one"]
    for combine in ("max", "mean"):
        model = emotune.Model(d, long_text="window", window_stride=100, window_combine=combine, max_length=128)
        theirs = cli_scores(d, texts, "--long-text", "window", "--window-stride", "100", "--window-combine", combine,
                            "--max-length", "128")
        np.testing.assert_allclose(model.scores(texts), [list(t.values()) for t in theirs], atol=1.5e-6)
    cut = emotune.Model(d, max_length=128).scores(texts[:1])
    assert not np.allclose(cut, emotune.Model(d, long_text="window", max_length=128).scores(texts[:1]), atol=1e-4)


def test_explain_equals_the_cli(models):
    d = models["distilbert"]
    model = emotune.Model(d)
    text = "Thank you so much, I love it!"
    for kwargs, flags in [({}, []), ({"label": "joy"}, ["--label", "joy"]), ({"top_k": 2}, ["--top-k", "2"]),
                          ({"label": ["anger", "love"], "method": "occlusion"}, ["--label", "anger", "--label", "love",
                                                                                "--method", "occlusion"]),
                          ({"top_k": 1, "method": "gradient-x-input", "baseline": "mask"},
                           ["--top-k", "1", "--method", "gradient-x-input", "--baseline", "mask"]),
                          ({"top_k": 1, "steps": 8}, ["--top-k", "1", "--steps", "8"])]:
        ours = model.explain(text, **kwargs)
        p = cli("explain", "--model", d, "--format", "jsonl", *flags, text)
        theirs = [json.loads(line) for line in p.stdout.splitlines()]
        assert [e["label"] for e in ours] == [e["label"] for e in theirs], kwargs
        for a, b in zip(ours, theirs):
            assert a["text"] == text and a["method"] == b["method"] and a["steps"] == b["steps"]
            assert [t["token"] for t in a["tokens"]] == [t["token"] for t in b["tokens"]]
            np.testing.assert_allclose(a["attributions"], b["attributions"], atol=1e-5, rtol=1e-4)
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_one_model_from_several_threads_without_the_gil(models):
    d = models["roberta"]
    model = emotune.Model(d)
    texts = dev_texts(40)
    want = model.scores(texts)
    results, failures = {}, []

    def worker(k):
        try:
            for i in range(4):
                part = texts[k::4]
                results[(k, i)] = (part, model.scores(part))
                model.explain(texts[k], top_k=1, steps=4)
        except Exception as e:  # noqa: BLE001 -- reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    index = {t: i for i, t in enumerate(texts)}
    for part, probs in results.values():
        np.testing.assert_allclose(probs, want[[index[t] for t in part]], atol=1e-6)

    # While one thread scores, another runs Python: the GIL is released during the work.
    big = emotune.Model(models["bert"])
    many = dev_texts(600) * 2
    ticks, done = [0], threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    start = ticks[0]
    big.scores(many)
    during = ticks[0] - start
    done.set()
    counter.join()
    assert during > 10000, f"the counting thread ran only {during} times while the model worked"


def small_split(tmp_path, n, name):
    path = tmp_path / name
    with open(os.path.join(GOEMOTIONS, "train.tsv"), encoding="utf-8") as f:
        path.write_text("".join(line for _, line in zip(range(n), f)), encoding="utf-8")
    return str(path)


def test_train_evaluate_calibrate_equal_the_cli(models, tmp_path):
    train_file, dev_file = small_split(tmp_path, 96, "train.tsv"), small_split(tmp_path, 48, "dev.tsv")
    options = dict(base=models["distilbert"], train_file=train_file, dev_file=dev_file, max_steps=6, batch_size=16,
                   lr=1e-3, max_length=32, seed=7, eval_every="none", loss="weighted-bce", no_calibrate=True)
    steps = []

    class Bar:  # stands for tqdm: what the progress bar is told
        def __init__(self, total, initial, **_):
            steps.append(("start", total, initial))

        def set_postfix(self, **kw):
            pass

        def close(self):
            pass

    bar = emotune._ProgressBar()
    bar._tqdm = Bar
    original = emotune._ProgressBar
    emotune._ProgressBar = lambda: bar
    try:
        ours = emotune.train(output=str(tmp_path / "ours"), **options)
    finally:
        emotune._ProgressBar = original
    assert ours == str(tmp_path / "ours")
    assert steps == [("start", 6, 0)] and bar._bar.n == 6
    flags = [f for k, v in options.items() for f in ([f"--{k.replace('_', '-')}"] if v is True else
                                                     [f"--{k.replace('_', '-')}", str(v)])]
    cli("train", "--output", tmp_path / "theirs", *flags)
    texts = dev_texts(10)
    np.testing.assert_array_equal(emotune.Model(ours).scores(texts), emotune.Model(tmp_path / "theirs").scores(texts))

    report = emotune.evaluate(ours, data=dev_file, thresholds=0.3)
    cli("eval", "--model", tmp_path / "theirs", "--data", dev_file, "--thresholds", "0.3", "--report", tmp_path / "rep")
    with open(tmp_path / "rep" / "report.json", encoding="utf-8") as f:
        theirs = json.load(f)
    assert report["macro"] == theirs["macro"] and report["n_examples"] == theirs["n_examples"]
    kept = emotune.evaluate(emotune.Model(ours), data=dev_file, report=tmp_path / "kept")
    assert os.path.exists(tmp_path / "kept" / "report.html") and kept["macro"]["f1"] >= 0

    calibration = emotune.calibrate(ours, dev_file=dev_file, fit="temperature")
    assert calibration["fit"] == "temperature" and calibration["labels"] == emotune.Model(ours).labels
    assert os.path.exists(os.path.join(ours, "thresholds.json"))


def test_ctrl_c_leaves_a_run_that_resumes(models, tmp_path):
    train_file = small_split(tmp_path, 400, "train.tsv")
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import emotune, sys
        try:
            emotune.train(base={models['bert']!r}, train_file={train_file!r}, output={str(out)!r}, max_steps=400,
                          batch_size=8, max_length=32, save_every=1, save_total_limit=1, log_every=1, seed=3, eval_every="none",
                          progress=False, resume=len(sys.argv) > 1)
        except KeyboardInterrupt as e:
            print("interrupted:", e)
            sys.exit(130)
        print("finished")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert "interrupted: training stopped" in stdout and "resume=True" in stdout
    assert os.listdir(out / "checkpoints"), "no checkpoint saved"
    resumed = subprocess.run([sys.executable, "-c", script, "resume"], capture_output=True, text=True, env=env,
                             timeout=600)
    assert resumed.returncode == 0 and "finished" in resumed.stdout, resumed.stderr
    assert os.path.exists(out / "model.safetensors")


def test_bad_input_raises_one_line_python_errors(models, tmp_path):
    d = models["distilbert"]
    model = emotune.Model(d)
    cases = [
        (lambda: emotune.Model(tmp_path / "nowhere"), FileNotFoundError, "model directory not found"),
        (lambda: emotune.Model(d, precision="f64"), ValueError, "precision"),
        (lambda: emotune.Model(d, device="tpu"), ValueError, "device"),
        (lambda: emotune.Model(d, max_length=100000), ValueError, "max_length"),
        (lambda: emotune.Model(d, long_text="slide"), ValueError, "long_text"),
        (lambda: emotune.Model(d, threads=-1), ValueError, "threads"),
        (lambda: emotune.Model(d, threads=10**6), ValueError, "threads"),
        (lambda: model.predict(123), TypeError, "texts must be"),
        (lambda: model.predict(["fine", None]), TypeError, r"texts\[1\] is a NoneType"),
        (lambda: model.predict(["\ud800"]), ValueError, r"texts\[0\] is not valid Unicode"),
        (lambda: model.predict(["x"], thresholds="best"), ValueError, "thresholds"),
        (lambda: model.predict(["x"], thresholds=1.5), ValueError, "thresholds"),
        (lambda: model.predict(["x"], top_k=0), ValueError, "top_k"),
        (lambda: model.explain("x", label="bliss"), ValueError, "label 'bliss' is not one of"),
        (lambda: model.explain("x", method="shap"), ValueError, "method"),
        (lambda: model.explain("x", steps=10**6), ValueError, "steps"),
        (lambda: model.explain(["x"]), TypeError, "one text"),
        (lambda: emotune.train(base=d, train_file=str(tmp_path / "none.tsv"), output=str(tmp_path / "o")),
         FileNotFoundError, "data file not found"),
        (lambda: emotune.train(base=d, data_dir=GOEMOTIONS, output=str(tmp_path / "o"), learning_rate=1), TypeError,
         "learning-rate"),
        (lambda: emotune.train(base=d, data_dir=GOEMOTIONS, output=str(tmp_path / "o"), lr=-1), ValueError, "lr"),
        (lambda: emotune.evaluate(d, data_dir=str(tmp_path / "none")), FileNotFoundError, "data directory not found"),
        (lambda: emotune.train(base=d, data_dir=GOEMOTIONS, output=str(tmp_path / "o"), nproc_per_node=2), ValueError,
         "torchrun"),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind) as caught:
            call()
        message = str(caught.value)
        assert re.search(words, message), (words, message)
        assert "\n" not in message, message
    # A config.json that is not JSON: a ValueError naming the file
    broken = tmp_path / "broken"
    shutil.copytree(d, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        emotune.Model(broken)
    # the model still answers after all that
    assert model.predict(["still here"])[0]


def test_readme_example_runs(minilm, tmp_path):
    """The README's pandas example, as written, on a model directory."""
    pytest.importorskip("pandas")
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    found = re.search(r"```python\n(.*?)```", readme, re.S)
    assert found, "README.md has no ```python example"
    code = found.group(1)
    assert 'emotune.Model("runs/goemotions-minilm")' in code
    (tmp_path / "runs").mkdir()
    os.symlink(minilm, tmp_path / "runs" / "goemotions-minilm")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "emotions" in p.stdout


def test_another_libtorch_in_the_process_is_refused_not_a_crash(tmp_path):
    """A torch of another libtorch version (PyPI's 2.x) beside emotune's would abort the process: either
    import order raises ImportError naming both versions; the process goes on."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from .version import __version__\n")
    (fake / "version.py").write_text("__version__ = '2.99.0+cpu'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path])}
    for first, second in (("torch", "emotune"), ("emotune", "torch")):
        code = (f"import {first}\ntry:\n    import {second}\nexcept ImportError as e:\n    print('refused:', e)\n"
                "print('still running')\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert re.search(r"refused: torch 2\.99\.0\+cpu cannot share a process with emotune, which runs on libtorch "
                         r"\d+\.\d+", p.stdout), (first, p.stdout)
        assert "still running" in p.stdout
    # The torch of emotune's own libtorch (Debian's python3-torch) is welcome, either order
    import torch
    assert torch.__version__.split(".")[:2] == emotune.LIBTORCH_VERSION.split(".")[:2]
