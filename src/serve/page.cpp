#include "serve/page.h"

namespace emotune::serve {

const char* const kIndexHtml = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>emotune</title>
<style>
  :root { color-scheme: light dark; --fg: #1d1d1f; --bg: #ffffff; --muted: #5f6368; --track: #e8e8ea; --accent: #2f6fde;
          --tab: #f4f4f4; --border: #bbb; --error: #b00020; --pos: 14, 100%, 50%; --neg: 212, 100%, 50%; }
  @media (prefers-color-scheme: dark) {
    :root { --fg: #ececf1; --bg: #17181c; --muted: #a8abb3; --track: #30323a; --accent: #6d9eff;
            --tab: #25272e; --border: #555; --error: #ff8a8a; --pos: 14, 85%, 40%; --neg: 212, 85%, 42%; }
  }
  body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 44rem; color: var(--fg); background: var(--bg); }
  textarea, select, button { color: inherit; background: var(--bg); border: 1px solid var(--border); border-radius: .3rem; }
  h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
  label { font-weight: 600; display: block; margin-bottom: .3rem; }
  textarea { width: 100%; box-sizing: border-box; min-height: 6rem; font: inherit; padding: .5rem; }
  button { font: inherit; padding: .45rem 1rem; margin-top: .5rem; cursor: pointer; }
  button:focus-visible, [role=tab]:focus-visible, summary:focus-visible, select:focus-visible, mark:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  [role=tablist] { display: flex; gap: .3rem; margin: 1rem 0 .5rem; flex-wrap: wrap; }
  [role=tab] { border: 1px solid var(--border); background: var(--tab); border-radius: .3rem; margin: 0; }
  [role=tab][aria-selected=true] { background: var(--accent); color: #fff; border-color: var(--accent); }
  .row { display: flex; align-items: center; gap: .5rem; margin: .25rem 0; }
  .name { width: 8rem; flex: none; }
  .track { flex: 1; background: var(--track); border-radius: .2rem; height: 1.1rem; }
  .fill { background: var(--accent); height: 100%; border-radius: .2rem; }
  .score { width: 3.5rem; text-align: right; font-variant-numeric: tabular-nums; }
  #meta, .hint { color: var(--muted); font-size: .9rem; margin-top: .5rem; }
  #error, #why-error { color: var(--error); }
  #why { margin-top: 1.5rem; border-top: 1px solid var(--border); padding-top: .5rem; }
  #why h2 { font-size: 1.1rem; margin: .3rem 0 .6rem; }
  #why .controls { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
  #why select { font: inherit; padding: .35rem; }
  #why button { margin-top: 0; }
  #highlight { line-height: 2; font-size: 1.05rem; margin: .8rem 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  #highlight mark { color: inherit; border-radius: .2rem; padding: .05rem .1rem; }
  #highlight mark.pos { background: hsla(var(--pos), var(--a)); border-bottom: 2px solid hsl(var(--pos)); }
  #highlight mark.neg { background: hsla(var(--neg), var(--a)); border-bottom: 2px dotted hsl(var(--neg)); }
  .legend { font-size: .85rem; color: var(--muted); }
  .legend mark { color: var(--fg); padding: 0 .3rem; border-radius: .2rem; }
  .legend .pos { background: hsla(var(--pos), .5); } .legend .neg { background: hsla(var(--neg), .5); }
  table.words { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
  table.words td, table.words th { padding: .15rem .6rem; text-align: left; border-bottom: 1px solid var(--track); }
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
<section id="why" aria-labelledby="why-title" hidden>
  <h2 id="why-title">Why this label?</h2>
  <div class="controls">
    <label for="why-label" style="display:inline;margin:0">Label</label>
    <select id="why-label"></select>
    <button id="why-go" type="button">Explain</button>
  </div>
  <p class="hint">Integrated gradients: how much each word moved the label's score, compared with a text of blank tokens.</p>
  <div id="highlight" aria-live="polite"></div>
  <p class="legend" id="legend" hidden><mark class="pos">raises</mark> the label &nbsp; <mark class="neg">lowers</mark> it &nbsp; (stronger colour: larger effect)</p>
  <table class="words" id="words" hidden><thead><tr><th scope="col">Word</th><th scope="col">Attribution</th></tr></thead><tbody></tbody></table>
  <div id="why-meta" class="hint"></div>
  <div id="why-error" role="alert"></div>
</section>
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
    if (taxonomy === "original") fillLabels(p.scores);
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
  var explainedText = "";
  function fillLabels(scores) {
    var sel = document.getElementById("why-label"), keep = sel.value;
    sel.innerHTML = "";
    Object.keys(scores).sort(function (a, b) { return scores[b] - scores[a]; }).forEach(function (k) {
      var o = el("option", "", k + " (" + scores[k].toFixed(2) + ")"); o.value = k; sel.appendChild(o);
    });
    if (keep && scores.hasOwnProperty(keep) && explainedText === document.getElementById("text").value) sel.value = keep;
    document.getElementById("why").hidden = !explainAvailable;
  }
  var explainAvailable = true;
  function signed(v) { return (v >= 0 ? "+" : "\u2212") + (Math.abs(v) >= 0.01 || v === 0 ? Math.abs(v).toFixed(3) : Math.abs(v).toPrecision(2)); }
  function drawExplanation(x, text) {
    var box = document.getElementById("highlight"), cps = Array.from(text), at = 0, top = 1e-9;
    box.innerHTML = "";
    x.words.forEach(function (w) { top = Math.max(top, Math.abs(w.attribution)); });
    x.words.forEach(function (w) {
      if (w.start > at) box.appendChild(document.createTextNode(cps.slice(at, w.start).join("")));
      var m = el("mark", w.attribution >= 0 ? "pos" : "neg", cps.slice(w.start, w.end).join(""));
      var strength = Math.abs(w.attribution) / top;
      m.style.setProperty("--a", (0.08 + 0.62 * strength).toFixed(3));
      m.tabIndex = 0;
      m.title = signed(w.attribution);
      m.setAttribute("aria-label", w.word + ": " + (w.attribution >= 0 ? "raises " : "lowers ") + x.label + " by " +
        signed(Math.abs(w.attribution)).slice(1));
      m.setAttribute("data-attribution", w.attribution);
      box.appendChild(m);
      at = w.end;
    });
    if (at < cps.length) box.appendChild(document.createTextNode(cps.slice(at).join("")));
    var body = document.querySelector("#words tbody");
    body.innerHTML = "";
    x.words.slice().sort(function (a, b) { return Math.abs(b.attribution) - Math.abs(a.attribution); }).slice(0, 8).forEach(function (w) {
      var tr = el("tr");
      tr.appendChild(el("td", "", w.word)); tr.appendChild(el("td", "", signed(w.attribution)));
      body.appendChild(tr);
    });
    document.getElementById("legend").hidden = false;
    document.getElementById("words").hidden = false;
    document.getElementById("why-meta").textContent = x.label + ": score " + x.score.toFixed(3) + " · logit " +
      x.logit.toFixed(2) + " vs " + x.baseline_logit.toFixed(2) + " for the blank text" +
      (x.delta !== undefined ? " · completeness gap " + x.delta.toFixed(3) : "");
  }
  function explainLabel() {
    var text = document.getElementById("text").value, label = document.getElementById("why-label").value;
    document.getElementById("why-error").textContent = "";
    if (!text.trim() || !label) { document.getElementById("why-error").textContent = "Recognize a text first."; return; }
    fetch("/v1/explain", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: text, label: label }) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (r) {
        if (!r.ok) throw new Error(r.body.error ? r.body.error.message : "request failed");
        explainedText = text;
        drawExplanation(r.body.explanations[0], text);
      })
      .catch(function (e) { document.getElementById("why-error").textContent = e.message; });
  }
  document.getElementById("why-go").addEventListener("click", explainLabel);
  fetch("/v1/labels").then(function (r) { return r.json(); })
    .then(function (j) { explainAvailable = j.explain === true; }).catch(function () { explainAvailable = false; });
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
