"""Browser test of `emotune serve`'s page in Debian's headless Chromium, driven by playwright (PyPI):
keyboard-only use (type, Recognize, bars appear, switch tabs with arrow keys), the full score list,
the explanation view (pick a label, Explain, words highlighted; readable in light and dark: every
highlighted word's text keeps a WCAG AA contrast over its colour), a phone-sized window, and the
dashboard `emotune monitor --report` writes (charts per source with the alerts marked, the alert
table, light and dark). A missing browser or driver fails the test; only missing shared data skips.
Usage: check_page.py EMOTUNE_BINARY SCREENSHOT_DIR    (exit 77 = skipped)"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base, server):
    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError(f"emotune serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("emotune serve did not become healthy in 30 s")


def main():
    emotune, shots = os.path.abspath(sys.argv[1]), sys.argv[2]
    shared = os.environ.get("EMOTUNE_SHARED", "")
    tokenizer = os.path.join(shared, "models", "distilbert-base-uncased")
    if not shared or not os.path.isdir(tokenizer):
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            print("FAIL: CI=true and EMOTUNE_SHARED is not set (or lacks models/distilbert-base-uncased)")
            sys.exit(1)
        print("SKIPPED: EMOTUNE_SHARED not set")
        sys.exit(77)
    if not os.path.exists(CHROMIUM):
        print(f"FAIL: {CHROMIUM} is not installed (scripts/install-deps.sh installs chromium)")
        sys.exit(1)
    os.makedirs(shots, exist_ok=True)
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        subprocess.run([emotune, "init", "--config", os.path.join(ROOT, "configs", "distilbert-tiny.json"),
                        "--tokenizer", tokenizer, "--out", model, "--seed", "3"], check=True,
                       stderr=subprocess.DEVNULL)
        port = free_port()
        log = open(os.path.join(tmp, "serve.log"), "w+")
        server = subprocess.Popen([emotune, "serve", "--model", model, "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, server)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    run_page_checks(browser, base, shots, check)
                finally:
                    browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
        check(code == 0, f"server exits 0 on SIGTERM ({code})")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                check_dashboard(browser, emotune, model, tmp, shots, check)
            finally:
                browser.close()
        if failures:
            log.seek(0)
            print("".join(log.readlines()[-5:]))
    sys.exit(1 if failures else 0)


def run_page_checks(browser, base, shots, check):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base + "/")
    # Keyboard only: Tab into the text box, type, Tab to the button, Enter.
    page.keyboard.press("Tab")
    check(page.evaluate("document.activeElement.id") == "text", "Tab reaches the text box first")
    page.keyboard.type("Thank you so much, this made my day!")
    page.keyboard.press("Tab")
    check(page.evaluate("document.activeElement.id") == "go", "Tab reaches the Recognize button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#meta:not(:empty)", timeout=20000)
    rows = len(page.query_selector_all("#bars .row"))
    all_scores = len(page.query_selector_all("#all li"))
    check(all_scores == 28, f"all 28 scores listed ({all_scores})")
    check("ms" in page.text_content("#meta"), f"result drawn ({rows} bars) with response time")
    check(page.eval_on_selector("#all-scores", "d => !d.open"), "the full score list starts collapsed")
    page.screenshot(path=os.path.join(shots, "serve-page.png"), full_page=True)
    # Arrow keys switch the label-set tabs, and the result follows.
    page.focus("#tab-original")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelectorAll('#all li').length === 7", timeout=20000)
    check(page.eval_on_selector("#tab-ekman", "t => t.getAttribute('aria-selected') === 'true'"),
          "ArrowRight selects Ekman")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelectorAll('#all li').length === 4", timeout=20000)
    sentiment = [li.text_content() for li in page.query_selector_all("#all li")]
    check(page.eval_on_selector("#tab-sentiment", "t => t.getAttribute('aria-selected') === 'true'")
          and all(any(name in s for s in sentiment) for name in ("positive", "negative", "ambiguous", "neutral")),
          f"ArrowRight again selects sentiment, whose 4 scores are listed ({sentiment})")
    page.focus("#tab-original")
    page.keyboard.press("Home")
    page.click("#tab-original")
    page.wait_for_function("document.querySelectorAll('#all li').length === 28", timeout=20000)
    check_explanation_view(page, base, shots, check)
    check(not errors, f"no page errors ({'; '.join(errors)})")
    # A phone-sized window: nothing wider than the screen.
    phone = browser.new_page(viewport={"width": 375, "height": 667})
    phone.goto(base + "/")
    phone.fill("#text", "I miss my grandmother so much.")
    phone.click("#go")
    phone.wait_for_selector("#meta:not(:empty)", timeout=20000)
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    check(overflow <= 0, f"no horizontal scrolling at 375 px (overflow {overflow})")
    phone.screenshot(path=os.path.join(shots, "serve-page-phone.png"), full_page=True)
    print(f"screenshots: {shots}/serve-page.png {shots}/serve-page-phone.png {shots}/serve-explain-light.png "
          f"{shots}/serve-explain-dark.png")


def check_dashboard(browser, emotune, model, tmp, shots, check):
    import json
    stream, rules, report = (os.path.join(tmp, n) for n in ("stream.jsonl", "rules.json", "report"))
    texts = ["I am so happy today", "This is terrible", "Thanks a lot!", "I'm scared", "whatever", "love it"]
    with open(stream, "w") as f:
        for i in range(120):
            f.write(json.dumps({"time": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
                                "source": ["team-a", "team-b"][i % 2], "text": texts[i % len(texts)]}) + "\n")
    with open(rules, "w") as f:  # holds from each source's first message on: one alert per source
        json.dump([{"name": "any emotion", "labels": ["joy", "sadness"], "stat": "mean_max_probability", "above": 0,
                    "over_last": 3}], f)
    p = subprocess.run([emotune, "monitor", "--model", model, "--input", stream, "--rules", rules, "--report", report],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.returncode == 0, f"monitor writes the report ({p.stderr.decode()[-300:]})")
    alerts = [json.loads(line) for line in p.stdout.decode().splitlines()]
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto("file://" + os.path.join(report, "index.html"))
    sections = page.eval_on_selector_all("section", "ss => ss.map(s => [s.querySelector('h2').textContent, "
                                         "s.querySelectorAll('svg').length, "
                                         "Array.from(s.querySelectorAll('svg')).map(g => g.querySelectorAll('line.marker').length)])")
    check([s[0] for s in sections] == ["team-a", "team-b"], f"one section per source ({[s[0] for s in sections]})")
    check(all(s[1] == 2 for s in sections), "Ekman and sentiment charts for each source")
    for name, _, markers in sections:
        want = sum(a["source"] == name for a in alerts)
        check(all(m == want for m in markers) and want > 0, f"{name}: {markers} alert markers per chart for {want} alerts")
    rows = len(page.query_selector_all("table tr")) - 1
    check(rows == len(alerts), f"the alert table lists every alert ({rows})")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=os.path.join(shots, f"monitor-dashboard-{scheme}.png"), full_page=True)
    fg = page.evaluate("getComputedStyle(document.querySelector('.tick')).fill")
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    check(bg != "rgb(255, 255, 255)" and fg != "rgb(0, 0, 0)", f"dark mode: dark page ({bg}), light chart text ({fg})")
    print(f"screenshots: {shots}/monitor-dashboard-light.png {shots}/monitor-dashboard-dark.png")


CONTRAST_JS = """() => {
  const rgba = s => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const page = rgba(getComputedStyle(document.body).backgroundColor);
  return Array.from(document.querySelectorAll('#highlight mark')).map(m => {
    const bg = rgba(getComputedStyle(m).backgroundColor), fg = rgba(getComputedStyle(m).color);
    const over = [0, 1, 2].map(i => bg[i] * bg[3] + page[i] * (1 - bg[3]));
    const a = lum(over), b = lum(fg);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  });
}"""


def check_explanation_view(page, base, shots, check):
    """Keyboard: from the label list, pick a label, Tab to Explain, Enter; the text comes back with one
    highlight per word of /v1/explain's answer, the strongest word the most coloured."""
    import json
    page.wait_for_selector("#why:not([hidden])", timeout=20000)
    page.focus("#why-label")
    page.keyboard.press("ArrowDown")  # the second-highest label
    label = page.eval_on_selector("#why-label", "s => s.value")
    page.keyboard.press("Tab")
    check(page.evaluate("document.activeElement.id") == "why-go", "Tab reaches the Explain button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#highlight mark", timeout=20000)
    text = page.input_value("#text")
    check(page.text_content("#highlight") == text, "the highlighted text is the text, unchanged")
    req = urllib.request.Request(base + "/v1/explain", data=json.dumps({"text": text, "label": label}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        want = json.loads(r.read())["explanations"][0]
    marks = page.eval_on_selector_all("#highlight mark", "ms => ms.map(m => [m.textContent, +m.dataset.attribution, "
                                                         "+m.style.getPropertyValue('--a')])")
    check([m[0] for m in marks] == [w["word"] for w in want["words"]], f"one highlight per word for '{label}'")
    strongest = max(range(len(marks)), key=lambda i: abs(marks[i][1]))
    check(marks[strongest][2] == max(m[2] for m in marks), "the word with the largest attribution is the most coloured")
    page.focus("#highlight mark")
    check(page.evaluate("document.activeElement.tagName") == "MARK" and
          "by" in page.evaluate("document.activeElement.getAttribute('aria-label')"),
          "highlighted words are reachable by keyboard and say their effect")
    check(len(page.query_selector_all("#words tbody tr")) == min(8, len(marks)), "the strongest words are listed in a table")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        ratios = page.evaluate(CONTRAST_JS)
        check(min(ratios) >= 4.5, f"{scheme}: every highlighted word has contrast >= 4.5 (lowest {min(ratios):.2f})")
        page.screenshot(path=os.path.join(shots, f"serve-explain-{scheme}.png"), full_page=True)
    dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    check(dark_bg != "rgb(255, 255, 255)", f"the page turns dark in dark mode ({dark_bg})")
    page.emulate_media(color_scheme="light")


if __name__ == "__main__":
    main()
