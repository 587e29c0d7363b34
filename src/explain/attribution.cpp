#include "explain/attribution.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

#include "infer/predictor.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/errors.h"

namespace emotune::explain {

std::optional<Method> method_named(const std::string& name) {
  if (name == "integrated-gradients") return Method::IntegratedGradients;
  if (name == "gradient-x-input") return Method::GradientXInput;
  if (name == "occlusion") return Method::Occlusion;
  return std::nullopt;
}

std::string method_name(Method method) {
  switch (method) {
    case Method::IntegratedGradients:
      return "integrated-gradients";
    case Method::GradientXInput:
      return "gradient-x-input";
    case Method::Occlusion:
      return "occlusion";
  }
  return "?";
}

std::optional<Baseline> baseline_named(const std::string& name) {
  if (name == "pad") return Baseline::Pad;
  if (name == "mask") return Baseline::Mask;
  return std::nullopt;
}

Options options_named(const std::string& method, std::size_t steps, const std::string& baseline,
                      std::size_t max_length) {
  Options o;
  const auto m = method_named(method);
  if (!m) throw std::invalid_argument("unknown explanation method '" + method + "'");
  const auto b = baseline_named(baseline);
  if (!b) throw std::invalid_argument("unknown baseline '" + baseline + "' (pad, mask)");
  o.method = *m;
  o.steps = steps;
  o.baseline = *b;
  o.max_length = max_length;
  return o;
}

model::ModelBundle load_model_to_explain(const std::filesystem::path& dir, torch::Device device) {
  model::LoadOptions load;
  load.require_all_weights = true;
  model::ModelBundle bundle = model::load_model_dir(dir, load);
  bundle.model->to(device);
  return bundle;
}

namespace {

std::int32_t baseline_token(const text::Tokenizer& tokenizer, Baseline baseline) {
  if (baseline == Baseline::Pad) return tokenizer.pad_id();
  const auto mask = tokenizer.mask_id();
  if (!mask) throw SettingError("{baseline} mask: the tokenizer has no mask token");
  return *mask;
}

torch::Device model_device(model::SequenceClassifierImpl& model) {
  const auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// One text, tokenized, as tensors on the model's device.
struct Prepared {
  text::Encoding encoding;
  std::vector<text::TokenSpan> spans;
  torch::Tensor ids;          // [1, n] int64
  torch::Tensor baseline_ids;  // [1, n]: the text's tokens replaced by the baseline token
  std::vector<std::int64_t> text_positions;  // positions that are the text's tokens (not special)
};

Prepared prepare(const text::Tokenizer& tokenizer, const std::string& text, std::size_t max_length,
                 std::int32_t baseline_id, torch::Device device) {
  Prepared p;
  p.encoding = tokenizer.encode(text, max_length);
  p.spans = tokenizer.token_spans(text, max_length);
  if (p.spans.size() != p.encoding.ids.size()) throw std::logic_error("token spans disagree with the encoding");
  std::vector<std::int64_t> ids(p.encoding.ids.begin(), p.encoding.ids.end()), base = ids;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (p.spans[i].special) continue;
    base[i] = baseline_id;
    p.text_positions.push_back(static_cast<std::int64_t>(i));
  }
  const auto n = static_cast<std::int64_t>(ids.size());
  p.ids = torch::tensor(ids, torch::kInt64).view({1, n}).to(device);
  p.baseline_ids = torch::tensor(base, torch::kInt64).view({1, n}).to(device);
  return p;
}

torch::Tensor all_ones_mask(std::int64_t rows, std::int64_t n, torch::Device device) {
  return torch::ones({rows, n}, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

// Per label: sum over the given alphas of dlogit/d(inputs_embeds) at b + alpha (x - b), [n, hidden]
// each, running at most `rows_per_pass` interpolated sequences per forward/backward pass.
std::vector<torch::Tensor> summed_gradients(model::SequenceClassifierImpl& model, const torch::Tensor& x,
                                            const torch::Tensor& b, const std::vector<double>& alphas,
                                            const std::vector<std::size_t>& labels, std::size_t rows_per_pass,
                                            const StopRequested& stop) {
  const auto n = x.size(0);
  std::vector<torch::Tensor> sums(labels.size());
  for (auto& s : sums) s = torch::zeros_like(x);
  for (std::size_t first = 0; first < alphas.size(); first += rows_per_pass) {
    stop_if_asked(stop);
    const std::size_t rows = std::min(rows_per_pass, alphas.size() - first);
    const auto a = torch::tensor(std::vector<double>(alphas.begin() + static_cast<std::ptrdiff_t>(first),
                                                     alphas.begin() + static_cast<std::ptrdiff_t>(first + rows)),
                                 x.options())
                       .view({-1, 1, 1});
    auto inputs = (b + a * (x - b)).detach().requires_grad_(true);
    const auto logits = model.forward_embeds(inputs, all_ones_mask(static_cast<std::int64_t>(rows), n, x.device()));
    for (std::size_t l = 0; l < labels.size(); ++l) {
      const auto target = logits.select(1, static_cast<std::int64_t>(labels[l])).sum();
      const auto grad = torch::autograd::grad({target}, {inputs}, {}, /*retain_graph=*/l + 1 < labels.size())[0];
      sums[l] += grad.sum(0);
    }
  }
  return sums;
}

// logit(x) - logit(x with token i's vector replaced by the baseline's), for each of the text's positions.
torch::Tensor occlusion_drops(model::SequenceClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& b,
                              const std::vector<std::int64_t>& positions, const torch::Tensor& full_logits,
                              std::size_t rows_per_pass, const StopRequested& stop) {
  const auto n = x.size(0);
  const auto count = static_cast<std::int64_t>(positions.size());
  auto drops = torch::zeros({n, full_logits.size(0)}, full_logits.options());
  for (std::int64_t first = 0; first < count; first += static_cast<std::int64_t>(rows_per_pass)) {
    stop_if_asked(stop);
    const auto rows = std::min<std::int64_t>(static_cast<std::int64_t>(rows_per_pass), count - first);
    auto inputs = x.unsqueeze(0).repeat({rows, 1, 1});
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto pos = positions[static_cast<std::size_t>(first + r)];
      inputs[r][pos] = b[pos];
    }
    const auto logits = model.forward_embeds(inputs, all_ones_mask(rows, n, x.device()));
    for (std::int64_t r = 0; r < rows; ++r) drops[positions[static_cast<std::size_t>(first + r)]] = full_logits - logits[r];
  }
  return drops;
}

std::string text_between(const std::u32string& cps, std::size_t start, std::size_t end) {
  return text::encode_utf8(std::u32string_view(cps).substr(start, end - start));
}

bool only(const std::u32string& cps, std::size_t start, std::size_t end, bool (*in_class)(char32_t)) {
  for (std::size_t i = start; i < end; ++i)
    if (!in_class(cps[i])) return false;
  return true;
}

bool is_symbol(char32_t c) { return !text::is_letter(c) && !text::is_number(c) && !text::is_unicode_whitespace(c); }

std::vector<WordAttribution> group_words(const std::vector<TokenAttribution>& tokens, const std::u32string& cps) {
  std::vector<WordAttribution> words;
  bool previous_symbol = false;
  for (const auto& t : tokens) {
    if (t.end <= t.start || t.end > cps.size() || only(cps, t.start, t.end, text::is_unicode_whitespace)) continue;
    const bool symbol = only(cps, t.start, t.end, is_symbol);
    // A token sharing a character with the previous one (byte-level pieces of one emoji) always joins it.
    const bool joins = !words.empty() && (t.start < words.back().end ||
                                          (t.start == words.back().end && !symbol && !previous_symbol));
    if (joins) {
      words.back().end = std::max(words.back().end, t.end);
      words.back().attribution += t.attribution;
    } else {
      words.push_back({"", t.start, t.end, t.attribution});
    }
    previous_symbol = symbol;
  }
  for (auto& w : words) w.word = text_between(cps, w.start, w.end);
  return words;
}

}  // namespace

void stop_if_asked(const StopRequested& stop) {
  if (stop && stop()) throw Cancelled("the explanation was stopped: its client has gone");
}

Explainer::Explainer(model::ModelBundle& bundle, Options options)
    : bundle_(bundle), options_(options), calibration_(infer::load_model_calibration(bundle)) {
  max_length_ = bundle.config().choose_max_length(options_.max_length);
  if (options_.method == Method::IntegratedGradients && (options_.steps < 1 || options_.steps > kMaxSteps))
    throw std::invalid_argument("{steps} must be between 1 and " + std::to_string(kMaxSteps));
  if (options_.max_batch_tokens < 1) throw std::invalid_argument("max_batch_tokens must be positive");
  baseline_id_ = baseline_token(*bundle.tokenizer, options_.baseline);
  bundle_.model->eval();
  for (auto& p : bundle_.model->parameters()) p.set_requires_grad(false);
}

std::vector<float> Explainer::scores(const std::string& text) const {
  const auto enc = bundle_.tokenizer->encode(text, max_length_);
  const auto logits = infer::compute_logits(bundle_.model, {&enc.ids}, 1, bundle_.tokenizer->pad_id(),
                                            model_device(*bundle_.model));
  const auto scores = infer::scores_from_logits(logits, bundle_.config(), calibration_).contiguous();
  return {scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel()};
}

std::vector<Explanation> Explainer::explain(const std::string& text, const std::vector<std::size_t>& labels,
                                            const StopRequested& stop) const {
  auto& model = *bundle_.model;
  const auto num_labels = bundle_.labels().size();
  for (auto l : labels)
    if (l >= num_labels) throw std::out_of_range("label id " + std::to_string(l) + " is not one of the model's");
  const auto device = model_device(model);
  const Prepared p = prepare(*bundle_.tokenizer, text, max_length_, baseline_id_, device);
  const auto n = p.ids.size(1);
  const std::size_t rows_per_pass = std::max<std::size_t>(1, options_.max_batch_tokens / static_cast<std::size_t>(n));

  // Every logit comes from word vectors (inputs_embeds), the text's and the baseline's at the same
  // positions: from ids, RoBERTa would give [PAD] tokens the padding position and move the baseline.
  torch::Tensor ends;  // logits [2, labels] at the text and at the baseline
  torch::Tensor x, b;  // word vectors [n, hidden]
  {
    torch::NoGradGuard no_grad;
    auto table = model.input_embeddings()->weight;
    x = table.index_select(0, p.ids[0]);
    b = table.index_select(0, p.baseline_ids[0]);
    ends = model.forward_embeds(torch::stack({x, b}), all_ones_mask(2, n, device));
  }
  const auto scores = infer::scores_from_logits(ends.slice(0, 0, 1), bundle_.config(), calibration_).to(torch::kCPU);

  // Attributions [n, labels.size()], one column per label asked for.
  torch::Tensor attributions;
  std::size_t steps = 0;
  if (options_.method == Method::Occlusion) {
    torch::NoGradGuard no_grad;
    const auto drops = occlusion_drops(model, x, b, p.text_positions, ends[0], rows_per_pass, stop);
    std::vector<std::int64_t> cols(labels.begin(), labels.end());
    attributions = drops.index_select(1, torch::tensor(cols, torch::kInt64).to(device));
    steps = p.text_positions.size();
  } else {
    std::vector<double> alphas;
    if (options_.method == Method::GradientXInput) {
      alphas = {1.0};
    } else {
      for (std::size_t k = 0; k < options_.steps; ++k) alphas.push_back((static_cast<double>(k) + 0.5) / static_cast<double>(options_.steps));
    }
    steps = alphas.size();
    const auto sums = summed_gradients(model, x, b, alphas, labels, rows_per_pass, stop);
    std::vector<torch::Tensor> columns;
    for (const auto& s : sums) columns.push_back(((x - b) * s).sum(1) / static_cast<double>(alphas.size()));
    attributions = columns.empty() ? torch::zeros({n, 0}) : torch::stack(columns, 1);
  }
  attributions = attributions.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto end_logits = ends.to(torch::kCPU, torch::kFloat64).contiguous();

  std::u32string cps;
  text::decode_utf8(text, cps);
  std::vector<Explanation> out;
  for (std::size_t l = 0; l < labels.size(); ++l) {
    Explanation e;
    e.label = labels[l];
    e.method = options_.method;
    e.steps = steps;
    e.truncated = p.encoding.truncated;
    e.logit = end_logits[0][static_cast<std::int64_t>(labels[l])].item<double>();
    e.baseline_logit = end_logits[1][static_cast<std::int64_t>(labels[l])].item<double>();
    e.score = scores[0][static_cast<std::int64_t>(labels[l])].item<double>();
    double total = 0;
    for (auto pos : p.text_positions) {
      const auto& span = p.spans[static_cast<std::size_t>(pos)];
      const double a = attributions[pos][static_cast<std::int64_t>(l)].item<double>();
      total += a;
      e.tokens.push_back({bundle_.tokenizer->token(p.encoding.ids[static_cast<std::size_t>(pos)]), span.start, span.end, a});
    }
    e.words = group_words(e.tokens, cps);
    if (options_.method == Method::IntegratedGradients) e.delta = total - (e.logit - e.baseline_logit);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::size_t> labels_to_explain(const std::vector<float>& scores, const std::vector<float>& thresholds,
                                           std::size_t top_k, const std::vector<std::size_t>& named) {
  if (!named.empty()) return named;
  const std::vector<float> any(scores.size(), 0.0f);  // every probability reaches 0: ranks them all
  if (top_k > 0) return infer::select_labels(scores, any, top_k);
  const auto chosen = infer::select_labels(scores, thresholds, 0);
  return chosen.empty() ? infer::select_labels(scores, any, 1) : chosen;
}

nlohmann::ordered_json to_json(const Explanation& e, const std::string& text, const std::vector<std::string>& labels) {
  using ordered_json = nlohmann::ordered_json;
  ordered_json tokens = ordered_json::array(), attributions = ordered_json::array(), words = ordered_json::array();
  for (const auto& t : e.tokens) {
    tokens.push_back(ordered_json{{"token", t.token}, {"start", t.start}, {"end", t.end}});
    attributions.push_back(t.attribution);
  }
  for (const auto& w : e.words)
    words.push_back(ordered_json{{"word", w.word}, {"start", w.start}, {"end", w.end}, {"attribution", w.attribution}});
  ordered_json j = {{"text", text},
                      {"label", labels.at(e.label)},
                      {"score", e.score},
                      {"logit", e.logit},
                      {"baseline_logit", e.baseline_logit},
                      {"method", method_name(e.method)},
                      {"steps", e.steps},
                      {"tokens", tokens},
                      {"attributions", attributions},
                      {"words", words}};
  if (e.delta) j["delta"] = *e.delta;
  if (e.truncated) j["truncated"] = true;
  return j;
}

}  // namespace emotune::explain
