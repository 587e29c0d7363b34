#include "serve/page.h"

namespace emotune::serve {

const char* const kIndexHtml = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>emotune</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 44rem; color: #1d1d1f; }
  h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
  label { font-weight: 600; display: block; margin-bottom: .3rem; }
  textarea { width: 100%; box-sizing: border-box; min-height: 6rem; font: inherit; padding: .5rem; }
  button { font: inherit; padding: .45rem 1rem; margin-top: .5rem; cursor: pointer; }
  button:focus-visible, [role=tab]:focus-visible, summary:focus-visible { outline: 3px solid #2f6fde; outline-offset: 2px; }
  [role=tablist] { display: flex; gap: .3rem; margin: 1rem 0 .5rem; flex-wrap: wrap; }
  [role=tab] { border: 1px solid #bbb; background: #f4f4f4; border-radius: .3rem; margin: 0; }
  [role=tab][aria-selected=true] { background: #2f6fde; color: #fff; border-color: #2f6fde; }
  .row { display: flex; align-items: center; gap: .5rem; margin: .25rem 0; }
  .name { width: 8rem; flex: none; }
  .track { flex: 1; background: #eee; border-radius: .2rem; height: 1.1rem; }
  .fill { background: #2f6fde; height: 100%; border-radius: .2rem; }
  .score { width: 3.5rem; text-align: right; font-variant-numeric: tabular-nums; }
  #meta { color: #666; font-size: .9rem; margin-top: .5rem; }
  #error { color: #b00020; }
  ul.all { columns: 2; padding-left: 1.2rem; font-size: .9rem; }
  @media (max-width: 30rem) { .name { width: 6rem; } ul.all { columns: 1; } }
</style>
</head>
<body>
<h1>emotune: which emotions are in this text?</h1>
<form id="form">
  <label for="text">Text</label>
  <textarea id="text" name="text" placeholder="Type a sentence, e.g. Thank you so much, this made my day!"></textarea>
  <button id="go" type="submit">Recognize</button>
</form>
<div role="tablist" aria-label="Label set">
  <button role="tab" id="tab-original" aria-selected="true" aria-controls="result" data-taxonomy="original">Emotions</button>
  <button role="tab" id="tab-ekman" aria-selected="false" aria-controls="result" data-taxonomy="ekman" tabindex="-1">Ekman</button>
  <button role="tab" id="tab-sentiment" aria-selected="false" aria-controls="result" data-taxonomy="sentiment" tabindex="-1">Sentiment</button>
</div>
<div id="result" role="tabpanel" aria-live="polite">
  <div id="bars"></div>
  <details id="all-scores"><summary>All scores</summary><ul class="all" id="all"></ul></details>
  <div id="meta"></div>
  <div id="error" role="alert"></div>
</div>
<script>
(function () {
  var taxonomy = "original";
  var tabs = Array.prototype.slice.call(document.querySelectorAll("[role=tab]"));
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function show(data, ms) {
    var p = data.predictions[0], bars = document.getElementById("bars"), all = document.getElementById("all");
    bars.innerHTML = ""; all.innerHTML = "";
    if (!p.labels.length) bars.appendChild(el("p", "", "No label above its threshold."));
    p.labels.forEach(function (l) {
      var row = el("div", "row"), track = el("div", "track"), fill = el("div", "fill");
      row.setAttribute("data-label", l.label);
      fill.style.width = (100 * l.score).toFixed(1) + "%";
      track.appendChild(fill);
      row.appendChild(el("span", "name", l.label)); row.appendChild(track); row.appendChild(el("span", "score", l.score.toFixed(3)));
      bars.appendChild(row);
    });
    Object.keys(p.scores).sort(function (a, b) { return p.scores[b] - p.scores[a]; }).forEach(function (k) {
      all.appendChild(el("li", "", k + ": " + p.scores[k].toFixed(3)));
    });
    document.getElementById("meta").textContent = "model " + data.model + " · server " + data.elapsed_ms.toFixed(1) +
      " ms · round trip " + ms.toFixed(0) + " ms" + (p.truncated ? " · text truncated" : "");
  }
  function recognize() {
    var text = document.getElementById("text").value, t0 = performance.now();
    document.getElementById("error").textContent = "";
    if (!text.trim()) { document.getElementById("error").textContent = "Type a text first."; return; }
    fetch("/v1/predict", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: text, taxonomy: taxonomy, return_all_scores: true }) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (r) {
        if (!r.ok) throw new Error(r.body.error ? r.body.error.message : "request failed");
        show(r.body, performance.now() - t0);
      })
      .catch(function (e) { document.getElementById("error").textContent = e.message; });
  }
  function select(tab) {
    tabs.forEach(function (t) { var on = t === tab; t.setAttribute("aria-selected", on); t.tabIndex = on ? 0 : -1; });
    taxonomy = tab.getAttribute("data-taxonomy");
    if (document.getElementById("text").value.trim()) recognize();
  }
  document.getElementById("form").addEventListener("submit", function (e) { e.preventDefault(); recognize(); });
  document.getElementById("text").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); recognize(); }
  });
  tabs.forEach(function (t, i) {
    t.addEventListener("click", function () { select(t); });
    t.addEventListener("keydown", function (e) {
      var j = e.key === "ArrowRight" ? (i + 1) % tabs.length : e.key === "ArrowLeft" ? (i + tabs.length - 1) % tabs.length : -1;
      if (j >= 0) { tabs[j].focus(); select(tabs[j]); }
    });
  });
})();
</script>
</body>
</html>
)HTML";

}  // namespace emotune::serve
