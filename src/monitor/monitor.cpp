#include "monitor/monitor.h"

#include <algorithm>
#include <climits>

#include "data/labels.h"

namespace emotune::monitor {

using ordered_json = nlohmann::ordered_json;

ordered_json alert_json(const Alert& a) {
  return ordered_json{{"time", format_time(a.time_ms)}, {"source", a.source}, {"rule", a.rule},
                      {"value", a.value}, {"messages", a.messages}};
}

void Timeline::add(std::int64_t time_ms, const std::vector<double>& values) {
  auto start_of = [&](std::int64_t t) { return (t >= 0 ? t / bucket_ms : (t - bucket_ms + 1) / bucket_ms) * bucket_ms; };
  auto& b = buckets[start_of(time_ms)];
  if (b.sums.empty()) b.sums.assign(values.size(), 0.0);
  ++b.count;
  for (std::size_t i = 0; i < values.size(); ++i) b.sums[i] += values[i];
  // Too long a span for the buckets: twice as long each, merged, until it fits.
  while ((buckets.rbegin()->first - buckets.begin()->first) / bucket_ms + 1 > static_cast<std::int64_t>(kMaxBuckets)) {
    bucket_ms *= 2;
    std::map<std::int64_t, Bucket> merged;
    for (auto& [start, old] : buckets) {
      auto& m = merged[start_of(start)];
      if (m.sums.empty()) m.sums.assign(old.sums.size(), 0.0);
      m.count += old.count;
      for (std::size_t i = 0; i < old.sums.size(); ++i) m.sums[i] += old.sums[i];
    }
    buckets = std::move(merged);
  }
}

namespace {

// Per group of a taxonomy (`map`: each label's group): its members' largest probability, and whether
// any member is carried.
void group_view(const std::vector<int>& map, std::size_t groups, const std::vector<float>& scores,
                const std::vector<float>& thresholds, std::vector<double>& probability, std::vector<bool>& carried) {
  probability.assign(groups, 0.0);
  carried.assign(groups, false);
  for (std::size_t e = 0; e < map.size(); ++e) {
    const auto g = static_cast<std::size_t>(map[e]);
    probability[g] = std::max(probability[g], static_cast<double>(scores[e]));
    carried[g] = carried[g] || scores[e] >= thresholds[e];
  }
}

}  // namespace

Monitor::Monitor(std::vector<std::string> labels, std::vector<float> thresholds, Window window, std::vector<Rule> rules,
                 bool keep_text, std::size_t max_sources)
    : labels_(std::move(labels)), thresholds_(std::move(thresholds)), window_(window), rules_(std::move(rules)),
      keep_text_(keep_text), grouped_(labels_ == data::goemotions_labels()), max_sources_(std::max<std::size_t>(max_sources, 1)) {
  if (grouped_) {
    for (auto t : {data::Taxonomy::ekman, data::Taxonomy::sentiment}) {
      views_.push_back({t, data::taxonomy_map(t), data::taxonomy_labels(t)});
      for (const auto& g : views_.back().groups) series_names_.push_back(g);
    }
  } else {
    series_names_ = labels_;
  }
}

std::vector<double> Monitor::series_values(const std::vector<float>& scores) const {
  if (!grouped_) return std::vector<double>(scores.begin(), scores.end());
  std::vector<double> out, p;
  std::vector<bool> carried;
  for (const auto& v : views_) {
    group_view(v.map, v.groups.size(), scores, thresholds_, p, carried);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

void Monitor::trim_window(Source& s) const {
  if (window_.last) {
    while (s.window.size() > window_.last) s.window.pop_front();
  } else {
    while (!s.window.empty() && s.window.front().time_ms < s.latest - window_.span_ms) s.window.pop_front();
    while (s.window.size() > kMaxSpanMessages) s.window.pop_front();
  }
}

std::vector<Alert> Monitor::update_rules(Source& s, const std::string& name, std::int64_t time_ms,
                                         const std::vector<float>& scores) {
  std::vector<Alert> fired;
  for (std::size_t r = 0; r < rules_.size(); ++r) {
    const Rule& rule = rules_[r];
    RuleState& st = s.rules[r];
    const double v = rule_value(rule, scores, thresholds_);
    st.values.emplace_back(time_ms, v);
    st.sum += v;
    auto too_old = [&] {
      return rule.over_last ? st.values.size() > rule.over_last : st.values.front().first < s.latest - rule.over_ms;
    };
    while (!st.values.empty() && too_old()) {
      st.sum -= st.values.front().second;
      st.values.pop_front();
    }
    if (st.values.empty()) st.sum = 0;
    const std::size_t n = st.values.size();
    const double mean = n ? st.sum / static_cast<double>(n) : 0.0;
    const bool holds = n >= rule.min_messages && (rule.above ? mean > *rule.above : mean < *rule.below);
    if (holds && !st.holds) fired.push_back({time_ms, name, rule.name, mean, n});
    st.holds = holds;
  }
  return fired;
}

Monitor::Source& Monitor::source_of(const std::string& name) {
  if (auto it = sources_.find(name); it != sources_.end()) {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    return it->second;
  }
  if (sources_.size() >= max_sources_) {  // the least recently active source makes room
    sources_.erase(recency_.back());
    recency_.pop_back();
    ++sources_dropped_;
  }
  recency_.push_front(name);
  Source& s = sources_[name];
  s.rules.resize(rules_.size());
  s.recency = recency_.begin();
  return s;
}

std::vector<Alert> Monitor::add(const Message& m, const std::vector<float>& scores) {
  Source& s = source_of(m.source);
  ++s.total;
  ++messages_total_;
  s.latest = std::max(s.latest, m.time_ms);
  s.window.push_back({m.time_ms, scores, keep_text_ ? m.text : std::string()});
  trim_window(s);
  s.timeline.add(m.time_ms, series_values(scores));
  auto fired = update_rules(s, m.source, m.time_ms, scores);
  for (const auto& a : fired) {
    alerts_.push_back(a);
    if (alerts_.size() > kKeptAlerts) alerts_.pop_front();
    ++alerts_total_;
  }
  return fired;
}

ordered_json Monitor::summary() const {
  ordered_json out = ordered_json::object();
  std::vector<std::string> names;
  for (const auto& [name, s] : sources_) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const Source& s = sources_.at(name);
    const double n = static_cast<double>(s.window.size());
    ordered_json src{{"messages", s.total}};
    ordered_json win{{"messages", s.window.size()}};
    if (!s.window.empty()) {
      std::int64_t first = s.window.front().time_ms, last = first;
      for (const auto& e : s.window) first = std::min(first, e.time_ms), last = std::max(last, e.time_ms);
      win["from"] = format_time(first);
      win["to"] = format_time(last);
    }
    auto view = [&](const std::vector<std::string>& groups, auto per_message) {
      std::vector<double> share(groups.size(), 0.0), mean(groups.size(), 0.0), p;
      std::vector<bool> carried;
      for (const auto& e : s.window) {
        per_message(e.scores, p, carried);
        for (std::size_t g = 0; g < groups.size(); ++g) {
          mean[g] += p[g];
          share[g] += carried[g] ? 1.0 : 0.0;
        }
      }
      ordered_json sh = ordered_json::object(), mn = ordered_json::object();
      for (std::size_t g = 0; g < groups.size(); ++g) {
        sh[groups[g]] = n ? share[g] / n : 0.0;
        mn[groups[g]] = n ? mean[g] / n : 0.0;
      }
      return ordered_json{{"share", sh}, {"mean_probability", mn}};
    };
    win["labels"] = view(labels_, [&](const std::vector<float>& sc, std::vector<double>& p, std::vector<bool>& c) {
      p.assign(sc.begin(), sc.end());
      c.resize(sc.size());
      for (std::size_t i = 0; i < sc.size(); ++i) c[i] = sc[i] >= thresholds_[i];
    });
    for (const auto& v : views_)
      win[data::taxonomy_name(v.taxonomy)] =
          view(v.groups, [&](const std::vector<float>& sc, std::vector<double>& p, std::vector<bool>& c) {
            group_view(v.map, v.groups.size(), sc, thresholds_, p, c);
          });
    if (keep_text_) {
      win["texts"] = ordered_json::array();
      for (const auto& e : s.window) win["texts"].push_back(ordered_json{{"time", format_time(e.time_ms)}, {"text", e.text}});
    }
    src["window"] = std::move(win);
    ordered_json rules = ordered_json::object();
    for (std::size_t r = 0; r < rules_.size(); ++r) {
      const auto& st = s.rules[r];
      const std::size_t k = st.values.size();
      rules[rules_[r].name] = ordered_json{{"value", k ? st.sum / static_cast<double>(k) : 0.0}, {"messages", k},
                                           {"holds", st.holds}};
    }
    if (!rules_.empty()) src["rules"] = std::move(rules);
    out[name] = std::move(src);
  }
  return out;
}

std::vector<Monitor::SourceView> Monitor::sources_by_activity() const {
  std::vector<SourceView> v;
  for (const auto& [name, s] : sources_) v.push_back({&name, s.total, &s.timeline});
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.total != b.total ? a.total > b.total : *a.name < *b.name; });
  return v;
}

}  // namespace emotune::monitor
