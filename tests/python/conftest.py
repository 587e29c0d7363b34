"""What the Python package's tests share: the emotune program beside the package ($EMOTUNE_BIN, for
answers the CLI must match), the shared data ($EMOTUNE_SHARED), the real MiniLM ($EMOTUNE_MINILM),
and small random classifiers made by `emotune init`. A missing input skips here, and fails in CI
(CI=true), as in tests/oracle/harness.py."""
import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EMOTUNE = os.environ.get("EMOTUNE_BIN", os.path.join(ROOT, "build", "emotune"))
SHARED = os.environ.get("EMOTUNE_SHARED", "")
GOEMOTIONS = os.path.join(SHARED, "data", "goemotions")
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
with open(os.path.join(ROOT, "tests", "families.json"), encoding="utf-8") as f:
    FAMILIES = {k: v for k, v in json.load(f).items() if k != "_"}


def missing(what):
    if IN_CI:
        pytest.fail(what + " (CI=true: missing inputs fail, they are not skipped)")
    pytest.skip(what)


def cli(*args, input_text=None, check=True):
    """`emotune ARGS` as a subprocess; with check, a non-zero exit fails with its stderr."""
    p = subprocess.run([EMOTUNE, *map(str, args)], input=input_text, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"emotune {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def dev_texts(n):
    with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
        return [line.split("\t")[0] for _, line in zip(range(n), f)] + ["", "Héllo [NAME]!! 😀 中文"]


@pytest.fixture(scope="session")
def shared():
    if not SHARED or not os.path.isdir(GOEMOTIONS):
        missing("EMOTUNE_SHARED is not set to the shared data (scripts/test.sh sets it)")
    if not os.access(EMOTUNE, os.X_OK):
        missing(f"no emotune program at {EMOTUNE} (set EMOTUNE_BIN)")
    return SHARED


@pytest.fixture(scope="session")
def models(shared, tmp_path_factory):
    """One small random classifier per family of tests/families.json (sharp heads: scores spread)."""
    root = tmp_path_factory.mktemp("models")
    made = {}
    for i, (family, entry) in enumerate(FAMILIES.items()):
        out = str(root / family)
        config = root / f"{family}.config.json"
        config.write_text(json.dumps({**entry["small"], "initializer_range": 0.2}))
        cli("init", "--config", config, "--tokenizer", os.path.join(shared, "models", entry["tokenizer"]),
            "--out", out, "--seed", 11 + i)
        made[family] = out
    return made


@pytest.fixture(scope="session")
def minilm(shared, tmp_path_factory):
    """A classifier over the real all-MiniLM-L6-v2 (its head initialised by `emotune init`)."""
    base = os.environ.get("EMOTUNE_MINILM", "")
    if not base or not os.path.isdir(base):
        missing("EMOTUNE_MINILM is not set (scripts/test.sh sets it)")
    out = str(tmp_path_factory.mktemp("minilm") / "classifier")
    cli("init", "--base", base, "--out", out, "--seed", 3)
    return out
