-- wrk script: single-text POST /v1/predict requests with GoEmotions-like texts (~20 tokens).
local texts = {
  "Thank you so much, this honestly made my whole day better!",
  "I can't believe they cancelled the show, I'm so annoyed right now.",
  "Wait, what? How did that even happen to you guys?",
  "I miss my grandmother so much, it still hurts every day.",
}
local i = 0
request = function()
  i = i + 1
  local body = '{"text":"' .. texts[(i % #texts) + 1] .. '"}'
  return wrk.format("POST", "/v1/predict", { ["Content-Type"] = "application/json" }, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
