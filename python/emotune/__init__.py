"""emotune from Python: the same C++ core as the `emotune` program, in this process.

    import emotune
    model = emotune.Model("runs/minilm")        # a model directory (emotune's or transformers'), or a hub name
    model.predict(["I miss her so much"])       # what pipeline("text-classification", top_k=None) returns
    model.scores(texts)                         # NumPy [n, labels] of probabilities
    model.explain("I miss her so much")         # `emotune explain`'s JSON, as dicts
    emotune.train(base=..., data_dir=..., output="runs/m")   # the CLI's options as keyword arguments
    emotune.evaluate("runs/m", data_dir=..., split="test", thresholds="tuned")   # report.json, as a dict

Reference: docs/python.md. Errors are Python exceptions carrying the CLI's one-line messages:
FileNotFoundError (a path that is not there), ValueError (a setting or input emotune cannot use),
TypeError (an option no command has), OSError, MemoryError, RuntimeError (a bug in emotune).
"""
import importlib.abc
import json
import os
import re
import sys
import tempfile
import warnings

import numpy as np

from ._libtorch import LIBTORCH_VERSION


def _torch_version_at(package_dir):
    """torch's version as its version.py says, without importing it."""
    try:
        with open(os.path.join(package_dir, "version.py"), encoding="utf-8") as f:
            found = re.search(r"""__version__\s*=\s*['"]([^'"]+)""", f.read())
        return found.group(1) if found else ""
    except OSError:
        return ""


def _refuse_another_libtorch(version):
    # One process holds one libtorch: a second of another version (PyPI's torch 2.x beside Debian's
    # 1.13 this module links) has the same symbols, and the process aborts. Say so instead.
    if version and version.split("+")[0].split(".")[:2] != LIBTORCH_VERSION.split(".")[:2]:
        raise ImportError(f"torch {version} cannot share a process with emotune, which runs on libtorch "
                          f"{LIBTORCH_VERSION}: use the torch of that version (Debian's python3-torch), or keep "
                          "emotune and this torch in separate processes (docs/python.md)")


class _OtherLibtorchGuard(importlib.abc.MetaPathFinder):
    """Refuses `import torch` of another libtorch version once emotune is loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.origin:
                    _refuse_another_libtorch(_torch_version_at(os.path.dirname(spec.origin)))
                    return spec
        return None


if "torch" in sys.modules:
    _refuse_another_libtorch(getattr(sys.modules["torch"], "__version__", ""))
elif not any(isinstance(f, _OtherLibtorchGuard) for f in sys.meta_path):
    sys.meta_path.insert(0, _OtherLibtorchGuard())

from . import _emotune  # noqa: E402 -- after the guard: loading it beside another libtorch aborts

__all__ = ["Model", "train", "evaluate", "calibrate", "run", "LIBTORCH_VERSION"]
__version__ = _emotune.__version__

_better_core = _emotune.better_blas_kernels()
if _better_core:
    warnings.warn(f"OpenBLAS chose its {_emotune.blas_core_name()} kernels, older than this CPU's: start Python "
                  f"with OPENBLAS_CORETYPE={_better_core} for faster products (the emotune program does this itself)",
                  RuntimeWarning, stacklevel=2)


def _texts(texts):
    """A list of str from one str or an iterable of them (a list, a pandas Series)."""
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"texts must be a string or an iterable of strings, not {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, not a string")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"texts[{i}] is not valid Unicode: {e.reason} at character {e.start}") from None
    return items


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} (got {value})")
    return value


class Model:
    """A fine-tuned emotion classifier loaded for inference.

    path: a model directory (written by `emotune train` or transformers' save_pretrained), or a hub
    name ("org/name", downloaded into emotune's cache unless offline). precision: "f32", "bf16" or
    "int8" (dynamic int8, CPU). threads: libtorch's pool for this process, 0 for every core.
    max_length: tokens a text is cut to (default the model's maximum); long_text="window" scores
    longer texts in overlapping windows instead (window_stride tokens apart, combined per label by
    window_combine "max" or "mean").

    One model may be shared by several Python threads: calls run one at a time, without the GIL.
    """

    def __init__(self, path, *, device="cpu", precision="f32", threads=0, offline=False, max_length=None,
                 batch_size=32, long_text="truncate", window_stride=None, window_combine="max"):
        o = _emotune.ModelOptions()
        o.path = os.fspath(path)
        o.device, o.precision, o.long_text, o.window_combine = device, precision, long_text, window_combine
        o.threads = _count("threads", threads, 0)
        o.offline = bool(offline)
        o.max_length = 0 if max_length is None else _count("max_length", max_length, 2)
        o.batch_size = _count("batch_size", batch_size, 1)
        o.window_stride = 0 if window_stride is None else _count("window_stride", window_stride, 1)
        self._native = _emotune.Model(o)
        self.path = self._native.directory
        self.labels = list(self._native.labels)
        with open(os.path.join(self.path, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)

    def __repr__(self):
        return f"emotune.Model({self.path!r}, {len(self.labels)} labels)"

    def scores(self, texts):
        """Probabilities [n, labels] (float32), calibrated when the directory has calibration.json."""
        items = _texts(texts)
        probs, _, _ = self._native.scores(items)
        return probs

    def logits(self, texts):
        """The model's logits [n, labels] (float32), before any calibration."""
        _, logits, _ = self._native.scores(_texts(texts))
        return logits

    def predict(self, texts, top_k=None, thresholds=None):
        """Per text, a list of {"label", "score"}, highest score first: what transformers'
        pipeline("text-classification", top_k=None) returns, for one text or many (a list per text).

        top_k: at most that many labels. thresholds: None keeps every label; "tuned" keeps the labels
        at or above their thresholds.json values (0.5 where the directory has none); a number keeps
        those at or above it.
        """
        if top_k is not None:
            _count("top_k", top_k, 1)
        cut = self._thresholds(thresholds)
        probs = self.scores(texts)
        out = []
        for row in probs:
            order = np.argsort(-row, kind="stable")
            if cut is not None:
                order = order[row[order] >= cut[order]]
            if top_k is not None:
                order = order[:top_k]
            out.append([{"label": self.labels[j], "score": float(row[j])} for j in order])
        return out

    __call__ = predict

    def _thresholds(self, thresholds):
        if thresholds is None:
            return None
        if isinstance(thresholds, str):
            if thresholds != "tuned":
                raise ValueError(f'thresholds must be None, "tuned" or a number in [0, 1], not {thresholds!r}')
            return np.asarray(self._native.tuned_thresholds, dtype=np.float32)
        if isinstance(thresholds, bool) or not isinstance(thresholds, (int, float)) or not 0 <= thresholds <= 1:
            raise ValueError(f'thresholds must be None, "tuned" or a number in [0, 1], not {thresholds!r}')
        return np.full(len(self.labels), thresholds, dtype=np.float32)

    def explain(self, text, label=None, *, top_k=None, method="integrated-gradients", steps=32, baseline="pad"):
        """Which words gave a label its logit: a list of `emotune explain`'s JSON objects (dicts), one per
        label: `label` (a name or a list of names) when given, else the top_k highest, else the labels
        at or above their tuned thresholds (the highest when none is). method: "integrated-gradients",
        "gradient-x-input" or "occlusion"; baseline: "pad" or "mask"."""
        if not isinstance(text, str):
            raise TypeError(f"explain takes one text (a string), not {type(text).__name__}")
        (text,) = _texts([text])
        names = [] if label is None else [label] if isinstance(label, str) else list(label)
        ids = []
        for name in names:
            if name not in self.labels:
                raise ValueError(f"label {name!r} is not one of this model's labels: {', '.join(self.labels)}")
            ids.append(self.labels.index(name))
        k = 0 if top_k is None else _count("top_k", top_k, 1)
        return json.loads(self._native.explain(text, ids, k, method, _count("steps", steps, 1), baseline))


def _flags(options):
    """Keyword arguments as the CLI's flags: max_length=64 -> --max-length=64; True -> the bare flag;
    False and None -> nothing; a list -> the flag once per item."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or v is False:
                continue
            if v is True:
                args.append(flag)
            else:
                args.append(f"{flag}={os.fspath(v) if isinstance(v, os.PathLike) else v}")
    return args


def run(command, *args, **options):
    """Runs an emotune command here, as the program would (`run("tokenize", "a text", model=DIR)`);
    returns its exit code. What it prints goes to this process's stdout and stderr."""
    return _emotune.run_command([command, *map(str, args), *_flags(options)])


class _ProgressBar:
    """tqdm's bar over train's steps, when tqdm is installed."""

    def __init__(self):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm, self._bar = tqdm, None

    def __call__(self, progress):
        step, total, epoch, epochs, loss, rate = progress
        try:
            if self._bar is None:
                self._bar = self._tqdm(total=total, initial=step - 1, unit="step", desc="train")
            self._bar.n = step
            self._bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{loss:.4f}", ex_s=f"{rate:.1f}", refresh=True)
        except Exception:  # a bar that cannot draw must not stop training
            self._tqdm = None

    def close(self):
        if self._bar is not None:
            self._bar.close()


def train(*, progress=True, **options):
    """Fine-tunes a checkpoint: `emotune train` with its options as keyword arguments (base=,
    data_dir=, output=, lr=, epochs=, loss="weighted-bce", ...; docs/commands.md). Returns the output
    directory. progress: a tqdm bar over the steps (when tqdm is installed). Ctrl-C stops after saving
    a checkpoint and raises KeyboardInterrupt; the same call with resume=True continues it."""
    if options.get("nproc_per_node"):
        raise ValueError("nproc_per_node starts workers that are copies of the emotune program, which this Python "
                         "process is not: run `emotune train --nproc-per-node N`, or this script under torchrun "
                         "(each process calling emotune.train joins the run)")
    bar = _ProgressBar() if progress else None
    try:
        code = _emotune.run_command(["train", *_flags(options)], bar if bar and bar._tqdm else None)
    finally:
        if bar:
            bar.close()
    if code == 130:
        raise KeyboardInterrupt(f"training stopped; a checkpoint is saved in {options.get('output')}: "
                                "the same call with resume=True continues it")
    if code != 0:
        raise RuntimeError(f"emotune train ended with exit code {code}")
    return os.fspath(options["output"])


def _model_path(model):
    return model.path if isinstance(model, Model) else os.fspath(model)


def evaluate(model, *, report=None, **options):
    """Scores a model on a GoEmotions split: `emotune eval` with its options as keyword arguments
    (data_dir=, split="test", thresholds="tuned", ...). Returns report.json as a dict; report= a
    directory also keeps report.json, report.md and report.html there."""
    with tempfile.TemporaryDirectory(prefix="emotune-eval-") as scratch:
        where = os.fspath(report) if report is not None else scratch
        code = _emotune.run_command(["eval", f"--model={_model_path(model)}", f"--report={where}", *_flags(options)])
        if code != 0:
            raise RuntimeError(f"emotune eval ended with exit code {code}")
        with open(os.path.join(where, "report.json"), encoding="utf-8") as f:
            return json.load(f)


def calibrate(model, **options):
    """Fits calibrated probabilities on dev: `emotune calibrate` with its options as keyword arguments
    (data_dir= or dev_file=, fit="auto"). Returns the calibration.json it wrote, as a dict."""
    path = _model_path(model)
    code = _emotune.run_command(["calibrate", f"--model={path}", *_flags(options)])
    if code != 0:
        raise RuntimeError(f"emotune calibrate ended with exit code {code}")
    with open(os.path.join(path, "calibration.json"), encoding="utf-8") as f:
        return json.load(f)
