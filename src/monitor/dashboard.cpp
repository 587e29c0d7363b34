#include "monitor/dashboard.h"

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "eval/svg.h"
#include "util/atomic_file.h"

namespace emotune::monitor {

namespace svg = eval::svg;

namespace {

// Distinguishable on white and on the dashboard's dark background alike; the groups keep one colour
// each (joy and positive green, anger and negative red) across charts.
const char* const kColors[] = {"#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#7f7f7f",
                               "#17becf", "#bcbd22", "#e377c2"};

std::string color_of(const std::string& name, std::size_t k) {
  static const std::map<std::string, std::string> named = {
      {"anger", "#d62728"},   {"disgust", "#8c564b"}, {"fear", "#9467bd"},    {"joy", "#2ca02c"},
      {"sadness", "#1f77b4"}, {"surprise", "#ff7f0e"}, {"neutral", "#7f7f7f"}, {"positive", "#2ca02c"},
      {"negative", "#d62728"}, {"ambiguous", "#9467bd"}};
  const auto it = named.find(name);
  return it != named.end() ? it->second : kColors[k % 10];
}
constexpr std::size_t kSourcesDrawn = 50;

std::string chart(const Timeline& tl, const std::vector<std::string>& names, std::size_t first, std::size_t count,
                  const std::string& title, const std::vector<svg::Marker>& markers) {
  std::vector<double> t;
  std::vector<svg::Series> series;
  for (std::size_t k = 0; k < count; ++k) series.push_back({names[first + k], color_of(names[first + k], k), {}});
  for (const auto& [start, b] : tl.buckets) {
    t.push_back(static_cast<double>(start + tl.bucket_ms / 2) / 1000.0);
    for (std::size_t k = 0; k < count; ++k) series[k].values.push_back(b.sums[first + k] / static_cast<double>(b.count));
  }
  return svg::time_lines(title, "mean probability", t, series, markers);
}

}  // namespace

std::string dashboard_html(const Monitor& m, const ReportInfo& info) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
       "content=\"width=device-width, initial-scale=1\"><title>emotune monitor</title><style>"
       ":root{color-scheme:light dark;--fg:#222;--bg:#fff;--line:#ccc;--head:#f3f3f3;--grid:#eee}"
       "@media (prefers-color-scheme: dark){:root{--fg:#e8e8ec;--bg:#17181c;--line:#444;--head:#25272e;--grid:#2c2e35}}"
       "body{font-family:system-ui,sans-serif;margin:2em;color:var(--fg);background:var(--bg);max-width:1100px}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid var(--line);padding:3px 8px;text-align:left}"
       "th{background:var(--head)}.charts{display:flex;flex-wrap:wrap;gap:16px}"
       ".chart{border:1px solid var(--line);max-width:100%;height:auto}.title{font-size:15px;font-weight:600;fill:var(--fg)}"
       ".tick{font-size:11px;fill:var(--fg)}.label{font-size:12px;fill:var(--fg)}.legend{font-size:12px;fill:var(--fg)}"
       ".axis{stroke:var(--fg)}.grid{stroke:var(--grid)}.marker{stroke:#e4007c;stroke-width:2;stroke-dasharray:5 3}"
       "section{margin-bottom:2em}</style></head><body>";
  o << "<h1>emotune monitor</h1><p>" << m.messages_total() << " messages from " << m.sources_by_activity().size()
    << " sources; window " << svg::escape(info.window) << "; " << m.alerts_total()
    << (m.alerts_total() == 1 ? " alert" : " alerts");
  if (info.bad_lines) o << "; " << info.bad_lines << " malformed lines skipped";
  o << ". Model <code>" << svg::escape(info.model) << "</code>. Dashed lines mark alerts.</p>";

  // Alerts per source, for the markers.
  std::map<std::string, std::vector<svg::Marker>> marks;
  for (const auto& a : m.recent_alerts())
    marks[a.source].push_back({static_cast<double>(a.time_ms) / 1000.0, a.rule + " at " + format_time(a.time_ms)});

  const auto sources = m.sources_by_activity();
  const auto& names = m.series_names();
  const std::size_t ekman = m.ekman_series();
  std::size_t drawn = 0;
  for (const auto& s : sources) {
    if (drawn == kSourcesDrawn) break;
    ++drawn;
    const auto& mk = marks[*s.name];
    o << "<section><h2>" << svg::escape(*s.name) << "</h2><p>" << s.total << (s.total == 1 ? " message, " : " messages, ")
      << mk.size() << (mk.size() == 1 ? " alert" : " alerts") << "</p><div class=\"charts\">";
    if (ekman) {
      o << chart(*s.timeline, names, 0, ekman, *s.name + ": Ekman emotions", mk);
      o << chart(*s.timeline, names, ekman, names.size() - ekman, *s.name + ": sentiment", mk);
    } else {
      for (std::size_t first = 0; first < names.size(); first += 7)
        o << chart(*s.timeline, names, first, std::min<std::size_t>(7, names.size() - first), *s.name + ": labels", mk);
    }
    o << "</div></section>";
  }
  if (sources.size() > drawn)
    o << "<p>" << sources.size() - drawn << " less active sources are not drawn (see summary.json).</p>";

  o << "<h2>Alerts</h2>";
  if (m.recent_alerts().empty()) {
    o << "<p>None.</p>";
  } else {
    if (m.alerts_total() > m.recent_alerts().size())
      o << "<p>The last " << m.recent_alerts().size() << " of " << m.alerts_total() << ".</p>";
    o << "<table><tr><th>time (UTC)</th><th>source</th><th>rule</th><th>value</th><th>messages</th></tr>";
    for (const auto& a : m.recent_alerts()) {
      char v[32];
      std::snprintf(v, sizeof v, "%.3f", a.value);
      o << "<tr><td>" << format_time(a.time_ms) << "</td><td>" << svg::escape(a.source) << "</td><td>"
        << svg::escape(a.rule) << "</td><td>" << v << "</td><td>" << a.messages << "</td></tr>";
    }
    o << "</table>";
  }
  o << "</body></html>\n";
  return o.str();
}

void write_report(const Monitor& m, const ReportInfo& info, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json j{{"messages", m.messages_total()}, {"bad_lines", info.bad_lines}, {"window", info.window},
                           {"alerts", m.alerts_total()}, {"sources", m.summary()}};
  util::write_text_atomically(dir / "summary.json", j.dump(2) + "\n");
  util::write_text_atomically(dir / "index.html", dashboard_html(m, info));
}

}  // namespace emotune::monitor
