// The monitor's pieces without a model: times and durations, message lines, rules files, windows,
// alerts once per crossing, and a timeline whose size stays bounded however long the stream.
#include <gtest/gtest.h>

#include "data/labels.h"
#include "monitor/message.h"
#include "monitor/monitor.h"
#include "monitor/rules.h"

namespace mon = emotune::monitor;

namespace {

const std::vector<std::string> kLabels = {"joy", "sadness", "fear"};
const std::vector<float> kThresholds = {0.5f, 0.5f, 0.5f};

mon::Message message(std::int64_t minute, const std::string& source = "a") {
  return {minute * 60000, source, ""};
}

}  // namespace

TEST(MonitorTime, ParsesIsoTimesWithZonesAndFractions) {
  EXPECT_EQ(mon::parse_time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(mon::parse_time("2026-11-27T10:15:00Z"), 1795774500000);
  EXPECT_EQ(mon::parse_time("2026-11-27 12:15:00+02:00"), 1795774500000);
  EXPECT_EQ(mon::parse_time("2026-11-27T05:15:00-0500"), 1795774500000);
  EXPECT_EQ(mon::parse_time("2026-11-27T10:15:00.25Z"), 1795774500250);
  EXPECT_EQ(mon::parse_time("2026-11-27T10:15"), 1795774500000);
  EXPECT_EQ(mon::parse_time("2026-11-27"), 1795737600000);
  EXPECT_EQ(mon::parse_time("1969-12-31T23:59:59Z"), -1000);
  EXPECT_EQ(mon::parse_time("2024-02-29"), 1709164800000);
  for (const char* bad : {"", "2026-11-27T", "2026-13-01", "2025-02-29", "2026-11-31", "2026-11-27T24:00",
                          "2026-11-27T10:60", "2026-11-27T10:15:00X", "27/11/2026", "2026-11-27T10:15:00+2",
                          "2026-11-27T10:15:00Zjunk", "2026-11-27T10:15:00."})
    EXPECT_FALSE(mon::parse_time(bad).has_value()) << bad;
}

TEST(MonitorTime, FormatsWhatItParses) {
  for (std::int64_t ms : {std::int64_t{0}, std::int64_t{1795774500000}, std::int64_t{1795774500250}, std::int64_t{-1000},
                          std::int64_t{951782400000}})
    EXPECT_EQ(mon::parse_time(mon::format_time(ms)), ms) << mon::format_time(ms);
  EXPECT_EQ(mon::format_time(1795774500250), "2026-11-27T10:15:00.250Z");
}

TEST(MonitorTime, Durations) {
  EXPECT_EQ(mon::parse_duration("90s"), 90000);
  EXPECT_EQ(mon::parse_duration("30m"), 1800000);
  EXPECT_EQ(mon::parse_duration("12h"), 43200000);
  EXPECT_EQ(mon::parse_duration("7d"), 604800000);
  EXPECT_EQ(mon::parse_duration("2w"), 1209600000);
  for (const char* bad : {"", "d", "0d", "-1d", "1.5d", "7", "7y", "99999999999d"})
    EXPECT_FALSE(mon::parse_duration(bad).has_value()) << bad;
}

TEST(MonitorMessage, ReadsALineOrSaysWhyNot) {
  const auto m = mon::parse_message(R"({"time":"2026-11-27T10:15:00Z","source":"chat-1","text":"hi","extra":1})");
  EXPECT_EQ(m.time_ms, 1795774500000);
  EXPECT_EQ(m.source, "chat-1");
  EXPECT_EQ(m.text, "hi");
  EXPECT_EQ(mon::parse_message(R"({"time":"2026-11-27","text":"x"})").source, "default");
  for (const char* bad : {"", "[]", "{", R"({"text":"x"})", R"({"time":"yesterday","text":"x"})",
                          R"({"time":"2026-11-27","text":3})", R"({"time":"2026-11-27","text":"x","source":[]})",
                          "{\"time\":\"2026-11-27\",\"text\":\"\xff\"}"})
    EXPECT_THROW(mon::parse_message(bad), mon::BadLine) << bad;
}

TEST(MonitorRules, ParseAndNameTheirMistakes) {
  const auto rules = mon::parse_rules(
      R"({"rules":[{"name":"distress","labels":["sadness","fear"],"stat":"mean_max_probability","above":0.4,
          "over_last":20,"min_messages":10},{"name":"calm","labels":["joy"],"stat":"share","below":0.1,"over":"24h"}]})",
      kLabels, "rules.json");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].labels, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(rules[0].over_last, 20u);
  EXPECT_EQ(rules[1].over_ms, 86400000);
  EXPECT_EQ(rules[1].stat, mon::Stat::Share);
  auto error = [&](const std::string& json) {
    try {
      mon::parse_rules(json, kLabels, "rules.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error(R"([{"name":"r","labels":["grief"],"above":0.4,"over_last":5}])").find("\"grief\" is not one of"), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"over_last":5}])").find("exactly one of \"above\" or \"below\""), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"above":1,"over_last":5,"over":"1h"}])").find("over_last"), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"above":1,"over":"soon"}])").find("duration"), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"above":1,"over_last":5,"min_messages":6}])").find("never fire"), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"above":1,"over_last":5,"treshold":1}])").find("unknown field \"treshold\""), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"above":1,"over_last":5},{"name":"r","labels":["joy"],"above":1,"over_last":5}])")
                .find("two rules are named 'r'"), std::string::npos);
  EXPECT_NE(error(R"([{"name":"r","labels":["joy"],"stat":"median","above":1,"over_last":5}])").find("\"stat\""), std::string::npos);
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error(R"([{"labels":["joy"]}])").find("rule 1"), std::string::npos);
}

TEST(MonitorRules, PerMessageValues) {
  mon::Rule r;
  r.labels = {1, 2};
  const std::vector<float> scores{0.9f, 0.2f, 0.6f};
  r.stat = mon::Stat::MeanMaxProbability;
  EXPECT_FLOAT_EQ(mon::rule_value(r, scores, kThresholds), 0.6f);
  r.stat = mon::Stat::MeanProbability;
  EXPECT_FLOAT_EQ(mon::rule_value(r, scores, kThresholds), 0.4f);
  r.stat = mon::Stat::Share;
  EXPECT_EQ(mon::rule_value(r, scores, kThresholds), 1.0);
  EXPECT_EQ(mon::rule_value(r, {0.9f, 0.2f, 0.4f}, kThresholds), 0.0);
}

TEST(Monitor, AlertsOncePerCrossingAndAgainAfterRecovery) {
  mon::Rule r;
  r.name = "sad";
  r.labels = {1};
  r.above = 0.5;
  r.over_last = 3;
  r.min_messages = 2;
  mon::Monitor m(kLabels, kThresholds, {10, 0}, {r}, false);
  const std::vector<float> sad{0.1f, 0.9f, 0.1f}, fine{0.8f, 0.1f, 0.1f};
  std::vector<std::size_t> fired_at;
  const std::vector<const std::vector<float>*> stream = {&sad, &sad, &sad, &sad, &fine, &fine, &fine, &sad, &sad, &sad};
  for (std::size_t i = 0; i < stream.size(); ++i) {
    const auto alerts = m.add(message(static_cast<std::int64_t>(i)), *stream[i]);
    for (const auto& a : alerts) {
      fired_at.push_back(i);
      EXPECT_EQ(a.rule, "sad");
      EXPECT_EQ(a.source, "a");
      EXPECT_GT(a.value, 0.5);
    }
  }
  // Not at message 0 (min_messages 2), at 1; held through 3; the mean falls below at 5, and rises
  // again at 8 (two sad of the last three).
  EXPECT_EQ(fired_at, (std::vector<std::size_t>{1, 8}));
  EXPECT_EQ(m.alerts_total(), 2u);
}

TEST(Monitor, SourcesAreIndependentAndDurationWindowsFollowMessageTimes) {
  mon::Rule r;
  r.name = "fear";
  r.labels = {2};
  r.stat = mon::Stat::Share;
  r.above = 0.5;
  r.over_ms = 10 * 60000;  // ten minutes
  mon::Monitor m(kLabels, kThresholds, {0, 30 * 60000}, {r}, false);
  const std::vector<float> afraid{0.1f, 0.1f, 0.9f}, calm{0.9f, 0.1f, 0.1f};
  EXPECT_TRUE(m.add(message(0, "a"), afraid).size() == 1);
  EXPECT_TRUE(m.add(message(1, "b"), calm).empty());  // another source: its own state
  EXPECT_TRUE(m.add(message(5, "a"), calm).empty());  // 1 of 2 in ten minutes: not above 0.5; re-armed
  EXPECT_TRUE(m.add(message(20, "a"), afraid).size() == 1);  // the others left the ten minutes
  const auto s = m.summary();
  EXPECT_EQ(s["a"]["messages"], 3);
  EXPECT_EQ(s["a"]["window"]["messages"], 3);  // thirty minutes keep all three
  EXPECT_NEAR(s["a"]["window"]["labels"]["share"]["fear"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(s["a"]["window"]["labels"]["mean_probability"]["joy"].get<double>(), (0.1 + 0.9 + 0.1) / 3, 1e-6);
  EXPECT_EQ(s["a"]["rules"]["fear"]["messages"], 1);
  m.add(message(60, "a"), calm);  // forty minutes on: only this one is in the window
  EXPECT_EQ(m.summary()["a"]["window"]["messages"], 1);
  EXPECT_EQ(m.summary()["b"]["window"]["messages"], 1);
}

TEST(Monitor, GoEmotionsModelsGetTheEkmanAndSentimentViews) {
  const auto& labels = emotune::data::goemotions_labels();
  mon::Monitor m(labels, std::vector<float>(labels.size(), 0.5f), {5, 0}, {}, true);
  std::vector<float> scores(labels.size(), 0.0f);
  scores[25] = 0.8f;  // sadness
  scores[16] = 0.3f;  // grief
  m.add({0, "x", "so sad"}, scores);
  const auto s = m.summary()["x"]["window"];
  EXPECT_NEAR(s["ekman"]["mean_probability"]["sadness"].get<double>(), 0.8, 1e-6);
  EXPECT_EQ(s["ekman"]["share"]["sadness"], 1.0);
  EXPECT_NEAR(s["sentiment"]["mean_probability"]["negative"].get<double>(), 0.8, 1e-6);
  EXPECT_EQ(s["texts"][0]["text"], "so sad");
  EXPECT_EQ(m.series_names().size(), 11u);  // 7 Ekman groups and 4 sentiment groups
}

TEST(Monitor, TheTimelineStaysBoundedHoweverLongTheStream) {
  mon::Monitor m(kLabels, kThresholds, {3, 0}, {}, false);
  const std::vector<float> scores{0.2f, 0.3f, 0.4f};
  for (std::int64_t minute = 0; minute < 200000; minute += 7) m.add(message(minute), scores);
  const auto sources = m.sources_by_activity();
  ASSERT_EQ(sources.size(), 1u);
  const auto& tl = *sources[0].timeline;
  EXPECT_LE(tl.buckets.size(), mon::Timeline::kMaxBuckets);
  std::size_t counted = 0;
  for (const auto& [start, b] : tl.buckets) {
    counted += b.count;
    EXPECT_NEAR(b.sums[1] / static_cast<double>(b.count), 0.3, 1e-6);
  }
  EXPECT_EQ(counted, sources[0].total);
  EXPECT_EQ(m.summary()["a"]["window"]["messages"], 3);
}

TEST(Monitor, KeepsAtMostMaxSourcesDroppingTheLeastRecentlyActive) {
  mon::Monitor m(kLabels, kThresholds, {3, 0}, {}, false, 3);
  const std::vector<float> scores{0.2f, 0.3f, 0.4f};
  m.add(message(0, "a"), scores);
  m.add(message(1, "b"), scores);
  m.add(message(2, "c"), scores);
  m.add(message(3, "a"), scores);  // a is active again: b is now the least recent
  m.add(message(4, "d"), scores);
  const auto s = m.summary();
  EXPECT_EQ(s.size(), 3u);
  EXPECT_TRUE(s.contains("a") && s.contains("c") && s.contains("d"));
  EXPECT_EQ(s["a"]["messages"], 2);
  EXPECT_EQ(m.sources_dropped(), 1u);
  // A stream of ever new sources stays at the bound.
  for (int i = 0; i < 1000; ++i) m.add(message(10 + i, "s" + std::to_string(i)), scores);
  EXPECT_EQ(m.sources_by_activity().size(), 3u);
  EXPECT_EQ(m.sources_dropped(), 1001u);
  EXPECT_EQ(m.messages_total(), 1005u);
}

TEST(Monitor, ADurationWindowKeepsABoundedNumberOfMessages) {
  mon::Monitor m(kLabels, kThresholds, {0, 24 * 60 * 60000LL}, {}, false);
  const std::vector<float> scores{0.2f, 0.3f, 0.4f};
  for (std::size_t i = 0; i < mon::Monitor::kMaxSpanMessages + 50; ++i) m.add({0, "a", ""}, scores);  // all at once
  EXPECT_EQ(m.summary()["a"]["window"]["messages"], mon::Monitor::kMaxSpanMessages);
}
