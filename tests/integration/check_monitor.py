"""`emotune monitor` against a replay in Python: the alerts (once per crossing, per source, message and
duration windows, min_messages) and the per-source window statistics (labels, Ekman and sentiment
views) equal what the model's own scores (`emotune predict --logits`) give; malformed lines stop the
run with their line number, or are skipped and listed; --follow picks up lines appended to a growing
file and SIGTERM ends it with the report written; no text is kept unless asked; rule mistakes are one
error line; and memory does not grow with the stream.
Usage: check_monitor.py EMOTUNE_BINARY [TEST...]  (shared data from $EMOTUNE_SHARED; exit 77 = skipped)"""
import datetime
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import EMOTUNE, GOEMOTIONS, init_model, main, run  # noqa: E402

LABELS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
          "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
          "joy", "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness",
          "surprise", "neutral"]
EKMAN = {"anger": ["anger", "annoyance", "disapproval"], "disgust": ["disgust"],
         "fear": ["fear", "nervousness"],
         "joy": ["joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
                 "admiration", "desire", "caring"],
         "sadness": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
         "surprise": ["surprise", "realization", "confusion", "curiosity"], "neutral": ["neutral"]}
T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def iso(minutes):
    return (T0 + datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def make_stream(n, seed=1, sources=("alice", "bob", "support")):
    rng = random.Random(seed)
    with open(os.path.join(GOEMOTIONS, "dev.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f]
    minute, out = 0, []
    for i in range(n):
        minute += rng.choice([1, 5, 17, 60])
        out.append({"time": iso(minute), "source": rng.choice(sources), "text": rng.choice(texts)})
    return out


def write_jsonl(path, messages, extra_lines=None):
    lines = [json.dumps(m) for m in messages]
    for at, line in sorted(extra_lines or {}):  # at: the line's 0-based place in the file
        lines.insert(at, line)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def minutes_of(m):
    return (datetime.datetime.fromisoformat(m["time"].replace("Z", "+00:00")) - T0).total_seconds() / 60


class Replay:
    """What the monitor should say, from the model's scores, rule by rule."""

    def __init__(self, scores, thresholds=None):
        self.scores = scores
        self.thresholds = thresholds or [0.5] * len(LABELS)

    def value(self, rule, s):
        ids = [LABELS.index(l) for l in rule["labels"]]
        if rule["stat"] == "mean_max_probability":
            return max(s[i] for i in ids)
        if rule["stat"] == "mean_probability":
            return sum(s[i] for i in ids) / len(ids)
        return 1.0 if any(s[i] >= self.thresholds[i] for i in ids) else 0.0

    def alerts(self, messages, rules):
        state, out = {}, []
        for m, s in zip(messages, self.scores):
            now = minutes_of(m)
            for rule in rules:
                st = state.setdefault((m["source"], rule["name"]), {"values": [], "holds": False})
                st["values"].append((now, self.value(rule, s)))
                if "over_last" in rule:
                    st["values"] = st["values"][-rule["over_last"]:]
                else:
                    span = {"h": 60, "m": 1, "d": 1440}[rule["over"][-1]] * int(rule["over"][:-1])
                    latest = max(t for t, _ in st["values"])
                    st["values"] = [(t, v) for t, v in st["values"] if t >= latest - span]
                n = len(st["values"])
                mean = sum(v for _, v in st["values"]) / n
                holds = n >= rule.get("min_messages", 1) and (mean > rule["above"] if "above" in rule else mean < rule["below"])
                if holds and not st["holds"]:
                    out.append({"time": m["time"], "source": m["source"], "rule": rule["name"], "value": mean, "messages": n})
                st["holds"] = holds
        return out


def scores_of(model, messages):
    out = run("predict", "--model", model, "--format", "jsonl", "--logits", "--input", "-",
              input_text="\n".join(m["text"] for m in messages) + "\n").stdout.decode()
    return [[1 / (1 + math.exp(-x)) for x in json.loads(line)["logits"]] for line in out.splitlines()]


def split_threshold(values):
    """A threshold between two neighbouring values near the middle, far from both (no float ties)."""
    v = sorted(set(round(x, 9) for x in values))
    best = max(range(len(v) // 4, 3 * len(v) // 4), key=lambda i: v[i + 1] - v[i])
    return (v[best] + v[best + 1]) / 2


class Monitor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_monitor_")
        cls.model = init_model(os.path.join(cls.tmp, "model"), seed=5, dim=64, hidden_dim=128, n_layers=2, n_heads=4,
                               initializer_range=0.2)
        cls.messages = make_stream(400)
        cls.stream = os.path.join(cls.tmp, "stream.jsonl")
        write_jsonl(cls.stream, cls.messages)
        cls.scores = scores_of(cls.model, cls.messages)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def rules(self):
        replay = Replay(self.scores)
        distress = {"name": "sustained distress", "labels": ["sadness", "grief", "fear", "nervousness"],
                    "stat": "mean_max_probability", "over_last": 8, "min_messages": 4}
        joy = {"name": "joyful day", "labels": ["joy"], "stat": "share", "over": "6h", "min_messages": 2}
        calm = {"name": "calm", "labels": ["anger", "annoyance"], "stat": "mean_probability", "over_last": 3}
        # Thresholds from the scores themselves, so that each rule crosses several times.
        for rule, key in ((distress, "above"), (joy, "above"), (calm, "below")):
            values = [replay.value(rule, s) for s in self.scores]
            rule[key] = split_threshold(values) if rule["stat"] != "share" else 0.5
        return [distress, joy, calm]

    def monitor(self, *args, input_text=None, check=True):
        return run("monitor", "--model", self.model, *args, input_text=input_text, check=check)

    def test_alerts_equal_the_replay(self):
        rules = self.rules()
        path = os.path.join(self.tmp, "rules.json")
        with open(path, "w") as f:
            json.dump({"rules": rules}, f)
        got = [json.loads(line) for line in self.monitor("--input", self.stream, "--rules", path).stdout.decode().splitlines()]
        want = Replay(self.scores).alerts(self.messages, rules)
        self.assertGreater(len(want), 5, "the rules should fire several times")
        self.assertEqual([(a["time"], a["source"], a["rule"], a["messages"]) for a in got],
                         [(a["time"], a["source"], a["rule"], a["messages"]) for a in want])
        for a, b in zip(got, want):
            self.assertAlmostEqual(a["value"], b["value"], places=5)
        self.assertEqual(set(got[0]), {"time", "source", "rule", "value", "messages"})
        # --alerts appends to the file; stdout then stays empty.
        alerts = os.path.join(self.tmp, "alerts.jsonl")
        with open(alerts, "w") as f:
            f.write('{"earlier": "run"}\n')
        p = self.monitor("--input", self.stream, "--rules", path, "--alerts", alerts)
        self.assertEqual(p.stdout, b"")
        with open(alerts) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], '{"earlier": "run"}')
        self.assertEqual([json.loads(line)["rule"] for line in lines[1:]], [a["rule"] for a in want])

    def window_stats(self, source, last=None, span_minutes=None):
        rows = [(m, s) for m, s in zip(self.messages, self.scores) if m["source"] == source]
        if last:
            rows = rows[-last:]
        else:
            latest = max(minutes_of(m) for m, _ in rows)
            rows = [(m, s) for m, s in rows if minutes_of(m) >= latest - span_minutes]
        n = len(rows)
        labels = {l: sum(s[i] for _, s in rows) / n for i, l in enumerate(LABELS)}
        share = {l: sum(s[i] >= 0.5 for _, s in rows) / n for i, l in enumerate(LABELS)}
        ekman = {g: sum(max(s[LABELS.index(x)] for x in members) for _, s in rows) / n for g, members in EKMAN.items()}
        return n, labels, share, ekman

    def test_summary_equals_the_replay(self):
        for window_args, last, span in ((["--last", "40"], 40, None), (["--window", "12h"], None, 720)):
            report = os.path.join(self.tmp, "report-" + window_args[1])
            self.monitor("--input", self.stream, "--report", report, *window_args)
            with open(os.path.join(report, "summary.json")) as f:
                summary = json.load(f)
            self.assertEqual(summary["messages"], len(self.messages))
            for source in ("alice", "bob", "support"):
                n, labels, share, ekman = self.window_stats(source, last, span)
                got = summary["sources"][source]
                self.assertEqual(got["messages"], sum(m["source"] == source for m in self.messages))
                self.assertEqual(got["window"]["messages"], n)
                for l in LABELS:
                    self.assertAlmostEqual(got["window"]["labels"]["mean_probability"][l], labels[l], places=5)
                    self.assertAlmostEqual(got["window"]["labels"]["share"][l], share[l], places=9)
                for g in EKMAN:
                    self.assertAlmostEqual(got["window"]["ekman"]["mean_probability"][g], ekman[g], places=5)
                self.assertEqual(set(got["window"]["sentiment"]["share"]), {"positive", "negative", "ambiguous", "neutral"})
                self.assertNotIn("texts", got["window"])
            with open(os.path.join(report, "index.html")) as f:
                html = f.read()
            self.assertEqual(html.count("<svg"), 6)  # Ekman and sentiment for each of three sources
        keep = os.path.join(self.tmp, "report-keep")
        self.monitor("--input", self.stream, "--report", keep, "--last", "3", "--keep-text")
        with open(os.path.join(keep, "summary.json")) as f:
            texts = json.load(f)["sources"]["bob"]["window"]["texts"]
        self.assertEqual([t["text"] for t in texts], [m["text"] for m in self.messages if m["source"] == "bob"][-3:])

    def test_malformed_lines(self):
        path = os.path.join(self.tmp, "bad.jsonl")
        bad = {5: "{not json", 9: '{"time": "yesterday", "text": "x"}', 12: '{"time": "2026-11-01", "text": 7}',
               20: '"just a string"', 30: '{"time": "2026-11-01T00:00:00Z", "text": "' + "x" * (1 << 20) + '"}'}
        write_jsonl(path, self.messages[:60], extra_lines=bad.items())
        p = self.monitor("--input", path, check=False)
        err = [line for line in p.stderr.decode().splitlines() if "error" in line]
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(err), 1, err)
        self.assertIn("input line 6:", err[0])
        self.assertIn("--skip-bad-lines", err[0])
        report = os.path.join(self.tmp, "report-bad")
        p = self.monitor("--input", path, "--skip-bad-lines", "--report", report)
        log = p.stderr.decode()
        self.assertIn("5 malformed lines skipped (lines 6, 10, 13, 21, 31)", log)
        self.assertIn("longer than", log)
        with open(os.path.join(report, "summary.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["bad_lines"], 5)
        self.assertEqual(summary["messages"], 60)

    def test_follow_reads_a_growing_file_until_sigterm(self):
        rules = self.rules()
        rules_path = os.path.join(self.tmp, "rules-follow.json")
        with open(rules_path, "w") as f:
            json.dump(rules, f)
        want = Replay(self.scores).alerts(self.messages, rules)
        half = len(self.messages) // 2
        first = [a for a in want if self.messages.index(next(m for m in self.messages if m["time"] == a["time"])) < half]
        path, alerts, report = (os.path.join(self.tmp, n) for n in ("growing.jsonl", "follow-alerts.jsonl", "report-follow"))
        write_jsonl(path, self.messages[:half])
        proc = subprocess.Popen([EMOTUNE, "monitor", "--model", self.model, "--input", path, "--follow", "--rules",
                                 rules_path, "--alerts", alerts, "--report", report],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def alert_count():
                if not os.path.exists(alerts):
                    return 0
                with open(alerts) as f:
                    return len(f.read().splitlines())
            deadline = time.time() + 60
            while alert_count() < len(first) and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(alert_count(), len(first), "alerts of the first half while the file is still open")
            self.assertIsNone(proc.poll(), "--follow keeps running at the end of the file")
            summary = os.path.join(report, "summary.json")
            deadline = time.time() + 30
            while not os.path.exists(summary) and time.time() < deadline:
                time.sleep(0.1)
            with open(summary) as f:
                self.assertEqual(json.load(f)["messages"], half, "the report is kept up to date while following")
            with open(path, "a") as f:
                for m in self.messages[half:]:
                    f.write(json.dumps(m) + "\n")
            deadline = time.time() + 60
            while alert_count() < len(want) and time.time() < deadline:
                time.sleep(0.1)
            self.assertEqual(alert_count(), len(want))
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err.decode())
        with open(os.path.join(report, "summary.json")) as f:
            self.assertEqual(json.load(f)["messages"], len(self.messages))

    def test_rule_and_flag_mistakes_are_one_line(self):
        bad_rules = os.path.join(self.tmp, "bad-rules.json")
        with open(bad_rules, "w") as f:
            json.dump([{"name": "typo", "labels": ["saddness"], "above": 0.5, "over_last": 5}], f)
        for args, needle in ((["--rules", bad_rules], "rule 1 (rule 'typo'): \"labels\": \"saddness\""),
                             (["--rules", os.path.join(self.tmp, "none.json")], "none.json"),
                             (["--window", "7 days"], "--window"), (["--window", "7d", "--last", "5"], "--last"),
                             (["--alerts", "/nonexistent/dir/alerts.jsonl"], "--alerts"),
                             (["--input", os.path.join(self.tmp, "missing.jsonl")], "missing.jsonl")):
            p = self.monitor(*args, input_text="", check=False)
            err = [line for line in p.stderr.decode().splitlines() if not line.startswith("[")]
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(len(err), 1, err)
            self.assertIn(needle, err[0])

    def test_memory_does_not_grow_with_the_stream(self):
        def peak_rss_mb(n):
            messages = make_stream(n, seed=n, sources=[f"s{k}" for k in range(20)])
            path = os.path.join(self.tmp, f"long-{n}.jsonl")
            write_jsonl(path, messages)
            proc = subprocess.Popen([EMOTUNE, "monitor", "--model", self.model, "--input", path, "--last", "50",
                                     "--report", os.path.join(self.tmp, f"report-{n}")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.assertEqual(proc.returncode, 0)
            return usage.ru_maxrss / 1024
        small, large = peak_rss_mb(4000), peak_rss_mb(40000)
        print(f"peak RSS: {small:.0f} MB for 4,000 messages, {large:.0f} MB for 40,000", file=sys.stderr)
        self.assertLess(large - small, 15)


if __name__ == "__main__":
    main()
