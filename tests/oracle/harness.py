"""What the command-level test scripts share: the emotune binary under test (argv[1]), the shared
data ($EMOTUNE_SHARED), running emotune, and CTest's skip protocol (exit 77) when either is missing,
except in CI (CI=true), where missing data or weights fail: CI must not go green by skipping."""
import json
import os
import subprocess
import sys
import time
import unittest

EMOTUNE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else ""
SHARED = os.environ.get("EMOTUNE_SHARED", "")
TOKENIZER_DIR = os.path.join(SHARED, "models", "distilbert-base-uncased")
GOEMOTIONS = os.path.join(SHARED, "data", "goemotions")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# The model families under test (tests/families.json): every per-family test iterates this table.
with open(os.path.join(ROOT, "tests", "families.json"), encoding="utf-8") as _f:
    FAMILIES = {k: v for k, v in json.load(_f).items() if k != "_"}


def family_tokenizer(family):
    """The directory of the real tokenizer files of `family` in $EMOTUNE_SHARED/models/."""
    return os.path.join(SHARED, "models", FAMILIES[family]["tokenizer"])


def family_config(family, **overrides):
    """The small config.json of `family` (tests/families.json) with `overrides` applied."""
    return {**FAMILIES[family]["small"], **overrides}


def run(*args, input_text=None, check=True):
    """Runs `emotune ARGS`; with check, a non-zero exit fails the test with emotune's stderr."""
    p = subprocess.run([EMOTUNE, *args], input=input_text.encode() if input_text is not None else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise AssertionError(f"emotune {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
    return p


def init_model(out, seed=42, tokenizer=None, **config):
    """`emotune init` of a small random classifier at `out` (GoEmotions labels), config given by keyword,
    with the tokenizer of directory `tokenizer` (distilbert-base-uncased's by default)."""
    cfg = {"model_type": "distilbert", "vocab_size": 30522, **config}
    path = out + ".config.json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    run("init", "--config", path, "--tokenizer", tokenizer or TOKENIZER_DIR, "--out", out, "--seed", str(seed))
    return out


def first_lines(src, n, path):
    """Writes the first `n` lines of file `src` to `path` (a small split of GoEmotions); returns `path`."""
    with open(src, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        for _ in range(n):
            out.write(f.readline())
    return path


def wait_for_lines(path, n, timeout):
    """Waits until file `path` has at least `n` lines (a run's metrics.jsonl), or `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and sum(1 for _ in open(path)) >= n:
            return True
        time.sleep(0.005)
    return False


IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing(what):
    """A test's input is absent: a skip on a developer's machine, a failure in CI."""
    if IN_CI:
        raise AssertionError(what + " (CI=true: missing inputs fail, they are not skipped)")
    raise unittest.SkipTest(what)


def main():
    if not EMOTUNE or not SHARED or not os.path.isdir(TOKENIZER_DIR):
        if IN_CI:
            print(f"FAIL: CI=true and {os.path.basename(sys.argv[0])} has no emotune binary or no $EMOTUNE_SHARED "
                  f"with models/distilbert-base-uncased")
            sys.exit(1)
        print(f"SKIPPED: usage {os.path.basename(sys.argv[0])} EMOTUNE_BINARY with EMOTUNE_SHARED set")
        sys.exit(77)
    # Then test names, to run a few. Skipped cases are named on one line that scripts/test.sh collects
    # into its summary: a green run says what it did not check.
    program = unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]], exit=False)
    skipped = program.result.skipped
    print(f"SKIPPED-CASES {os.path.basename(sys.argv[0])}: {len(skipped)}"
          + "".join(f"\n  {test.id()}: {why}" for test, why in skipped))
    sys.exit(0 if program.result.wasSuccessful() else 1)


def http_call(port, method, path, body=None, headers=None, timeout=60):
    """One request to a local emotune serve: (status, headers with lower-case names, raw body bytes).
    A dict or list body is sent as JSON with Content-Type application/json."""
    import http.client
    h = {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()

