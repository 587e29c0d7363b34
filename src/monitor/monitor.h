// `emotune monitor`'s state: per source, the recent messages' scores (a window of the last N messages
// or of a duration), each rule's rolling average and whether it holds, and a coarse timeline for the
// dashboard. Memory grows with the number of sources (at most max_sources: the least recently active
// one makes room for a new one) and the window, never with the stream: texts are kept only when
// asked, and the timeline merges its buckets as time goes on.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/labels.h"
#include "monitor/message.h"
#include "monitor/rules.h"

namespace emotune::monitor {

struct Window {
  std::size_t last = 0;      // the last N messages of a source, or
  std::int64_t span_ms = 0;  // those of the last span (by the messages' own times)
};

struct Alert {
  std::int64_t time_ms = 0;
  std::string source, rule;
  double value = 0;
  std::size_t messages = 0;  // in the rule's window when it fired
};

nlohmann::ordered_json alert_json(const Alert& a);

// Mean probabilities per bucket of time, for the dashboard's charts; at most kMaxBuckets buckets, each
// twice as long once the span would need more.
struct Timeline {
  static constexpr std::size_t kMaxBuckets = 120;
  struct Bucket {
    std::size_t count = 0;
    std::vector<double> sums;  // per series
  };
  std::int64_t bucket_ms = 60000;
  std::map<std::int64_t, Bucket> buckets;  // by bucket start

  void add(std::int64_t time_ms, const std::vector<double>& values);
};

class Monitor {
 public:
  // labels and thresholds: the model's; grouped: the labels are GoEmotions' 28 (Ekman and sentiment views).
  Monitor(std::vector<std::string> labels, std::vector<float> thresholds, Window window, std::vector<Rule> rules,
          bool keep_text, std::size_t max_sources = kDefaultMaxSources);
  static constexpr std::size_t kDefaultMaxSources = 10000;
  // A duration window keeps at most this many of a source's latest messages.
  static constexpr std::size_t kMaxSpanMessages = 100000;

  // Adds a scored message; returns the alerts it set off (rules that start to hold).
  std::vector<Alert> add(const Message& m, const std::vector<float>& scores);

  // Per source: messages seen, and over the window: messages, first and last time, per label the share
  // of messages carrying it (at its threshold) and the mean probability, the same for the Ekman and
  // sentiment groups (a group's probability is its members' largest; it is carried when a member is),
  // and the rules' current values; with keep_text, the window's texts.
  nlohmann::ordered_json summary() const;

  // The series the timeline holds (Ekman groups then sentiment groups for GoEmotions models; the
  // labels otherwise) and the timelines and alerts per source, for the dashboard.
  const std::vector<std::string>& series_names() const { return series_names_; }
  std::size_t ekman_series() const { return grouped_ ? 7 : 0; }  // the first N series are Ekman's
  struct SourceView {
    const std::string* name;
    std::size_t total;
    const Timeline* timeline;
  };
  std::vector<SourceView> sources_by_activity() const;
  const std::deque<Alert>& recent_alerts() const { return alerts_; }
  std::size_t alerts_total() const { return alerts_total_; }
  std::size_t messages_total() const { return messages_total_; }
  // Sources forgotten to make room for new ones (max_sources).
  std::size_t sources_dropped() const { return sources_dropped_; }
  static constexpr std::size_t kKeptAlerts = 10000;

 private:
  struct Entry {
    std::int64_t time_ms;
    std::vector<float> scores;
    std::string text;  // keep_text only
  };
  struct RuleState {
    std::deque<std::pair<std::int64_t, double>> values;
    double sum = 0;
    bool holds = false;
  };
  struct Source {
    std::size_t total = 0;
    std::int64_t latest = INT64_MIN;
    std::deque<Entry> window;
    std::vector<RuleState> rules;
    Timeline timeline;
    std::list<std::string>::iterator recency;  // its place in recency_
  };

  std::vector<double> series_values(const std::vector<float>& scores) const;
  void trim_window(Source& s) const;
  std::vector<Alert> update_rules(Source& s, const std::string& name, std::int64_t time_ms,
                                  const std::vector<float>& scores);

  std::vector<std::string> labels_;
  std::vector<float> thresholds_;
  Window window_;
  std::vector<Rule> rules_;
  bool keep_text_;
  bool grouped_;
  struct GroupView {  // Ekman and sentiment, for GoEmotions models
    data::Taxonomy taxonomy;
    std::vector<int> map;  // each label's group
    std::vector<std::string> groups;
  };
  std::vector<GroupView> views_;
  std::vector<std::string> series_names_;
  std::unordered_map<std::string, Source> sources_;
  std::list<std::string> recency_;  // source names, most recently active first
  std::size_t max_sources_;
  std::deque<Alert> alerts_;
  std::size_t alerts_total_ = 0, messages_total_ = 0, sources_dropped_ = 0;

  Source& source_of(const std::string& name);
};

}  // namespace emotune::monitor
