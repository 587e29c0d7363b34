#include "eval/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace emotune::eval::svg {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string fmt2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string header(double w, double h, const std::string& title) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + num(w) + "\" height=\"" + num(h) +
         "\" viewBox=\"0 0 " + num(w) + " " + num(h) + "\" role=\"img\" aria-label=\"" + escape(title) + "\">" +
         "<text x=\"" + num(w / 2) + "\" y=\"20\" text-anchor=\"middle\" class=\"title\">" + escape(title) + "</text>";
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle", const char* cls = "tick") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" class=\"" + cls + "\">" +
         escape(s) + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const char* cls = "axis") {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" class=\"" +
         cls + "\"/>";
}

std::string legend(double x, double y, const std::vector<Series>& series) {
  std::string out;
  for (const auto& s : series) {
    out += "<rect x=\"" + num(x) + "\" y=\"" + num(y - 9) + "\" width=\"12\" height=\"12\" fill=\"" + s.color + "\"/>";
    out += text(x + 16, y + 1, s.name, "start", "legend");
    x += 24 + 8.0 * static_cast<double>(s.name.size());
  }
  return out;
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string grouped_bars(const std::string& title, const std::vector<std::string>& categories,
                         const std::vector<Series>& series) {
  const double left = 120, right = 30, top = 50, row = 8.0 * static_cast<double>(series.size()) + 8, plot_w = 520;
  const double h = top + row * static_cast<double>(categories.size()) + 40, w = left + plot_w + right;
  std::string out = header(w, h, title) + legend(left, 40, series);
  for (int k = 0; k <= 10; k += 2) {
    const double x = left + plot_w * k / 10.0;
    out += line(x, top, x, h - 35, "grid") + text(x, h - 22, fmt2(k / 10.0));
  }
  for (std::size_t c = 0; c < categories.size(); ++c) {
    const double y0 = top + row * static_cast<double>(c);
    out += text(left - 6, y0 + row / 2 + 3, categories[c], "end");
    for (std::size_t s = 0; s < series.size(); ++s) {
      const double v = std::clamp(series[s].values[c], 0.0, 1.0);
      out += "<rect class=\"bar\" x=\"" + num(left) + "\" y=\"" + num(y0 + 4 + 8.0 * static_cast<double>(s)) +
             "\" width=\"" + num(plot_w * v) + "\" height=\"7\" fill=\"" + series[s].color + "\"><title>" +
             escape(categories[c] + " " + series[s].name + " " + fmt2(v)) + "</title></rect>";
    }
  }
  out += line(left, top, left, h - 35) + line(left, h - 35, left + plot_w, h - 35);
  out += text(left + plot_w / 2, h - 6, "score", "middle", "label");
  return out + "</svg>";
}

std::string lines(const std::string& title, const std::string& x_label, const std::string& y_label,
                  const std::vector<double>& x, const std::vector<Series>& series, bool unit_y) {
  const double left = 60, right = 20, top = 50, bottom = 45, pw = 520, ph = 260;
  const double w = left + pw + right, h = top + ph + bottom;
  double xmin = x.empty() ? 0 : *std::min_element(x.begin(), x.end());
  double xmax = x.empty() ? 1 : *std::max_element(x.begin(), x.end());
  if (xmax <= xmin) xmax = xmin + 1;
  double ymin = 0, ymax = 1;
  if (!unit_y) {
    ymin = 1e300;
    ymax = -1e300;
    for (const auto& s : series)
      for (double v : s.values)
        if (std::isfinite(v)) {
          ymin = std::min(ymin, v);
          ymax = std::max(ymax, v);
        }
    if (ymin > ymax) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-9) ymax = ymin + 1;
    const double pad = (ymax - ymin) * 0.05;
    ymin -= pad;
    ymax += pad;
  }
  auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double v) { return top + ph - (v - ymin) / (ymax - ymin) * ph; };
  std::string out = header(w, h, title) + legend(left, 40, series);
  for (int k = 0; k <= 5; ++k) {
    const double yv = ymin + (ymax - ymin) * k / 5.0, xv = xmin + (xmax - xmin) * k / 5.0;
    out += line(left, Y(yv), left + pw, Y(yv), "grid") + text(left - 6, Y(yv) + 4, fmt2(yv), "end");
    out += text(X(xv), top + ph + 16, std::abs(xv) >= 100 ? num(xv).substr(0, num(xv).size() - 2) : fmt2(xv));
  }
  for (const auto& s : series) {
    std::string pts;
    for (std::size_t i = 0; i < x.size() && i < s.values.size(); ++i)
      if (std::isfinite(s.values[i])) pts += num(X(x[i])) + "," + num(Y(s.values[i])) + " ";
    out += "<polyline class=\"series\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\" points=\"" + pts + "\"/>";
  }
  out += line(left, top, left, top + ph) + line(left, top + ph, left + pw, top + ph);
  out += text(left + pw / 2, h - 8, x_label, "middle", "label");
  out += "<text transform=\"translate(14," + num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">" +
         escape(y_label) + "</text>";
  return out + "</svg>";
}

namespace {

std::string time_tick(double seconds, double span) {
  const auto t = static_cast<std::time_t>(std::floor(seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, span > 3 * 86400 ? "%Y-%m-%d" : "%m-%d %H:%M", &tm);
  return buf;
}

}  // namespace

std::string time_lines(const std::string& title, const std::string& y_label, const std::vector<double>& t,
                       const std::vector<Series>& series, const std::vector<Marker>& markers) {
  const double left = 60, right = 20, top = 50, bottom = 45, pw = 640, ph = 220;
  const double w = left + pw + right, h = top + ph + bottom;
  double tmin = t.empty() ? 0 : *std::min_element(t.begin(), t.end());
  double tmax = t.empty() ? 1 : *std::max_element(t.begin(), t.end());
  for (const auto& m : markers) tmin = std::min(tmin, m.x), tmax = std::max(tmax, m.x);
  if (tmax <= tmin) tmax = tmin + 60;
  auto X = [&](double v) { return left + (v - tmin) / (tmax - tmin) * pw; };
  auto Y = [&](double v) { return top + ph - std::clamp(v, 0.0, 1.0) * ph; };
  std::string out = header(w, h, title) + legend(left, 40, series);
  for (int k = 0; k <= 5; ++k) {
    out += line(left, Y(k / 5.0), left + pw, Y(k / 5.0), "grid") + text(left - 6, Y(k / 5.0) + 4, fmt2(k / 5.0), "end");
    if (k % 2 == 0 || tmax - tmin <= 3 * 86400) {
      const double tv = tmin + (tmax - tmin) * k / 5.0;
      out += text(X(tv), top + ph + 16, time_tick(tv, tmax - tmin));
    }
  }
  for (const auto& m : markers)
    out += "<line class=\"marker\" x1=\"" + num(X(m.x)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(X(m.x)) + "\" y2=\"" +
           num(top + ph) + "\"><title>" + escape(m.label) + "</title></line>";
  for (const auto& s : series) {
    std::string pts;
    auto flush = [&] {
      if (!pts.empty())
        out += "<polyline class=\"series\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\" points=\"" + pts + "\"><title>" +
               escape(s.name) + "</title></polyline>";
      pts.clear();
    };
    for (std::size_t i = 0; i < t.size() && i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) {
        flush();
        continue;
      }
      pts += num(X(t[i])) + "," + num(Y(s.values[i])) + " ";
    }
    flush();
  }
  out += line(left, top, left, top + ph) + line(left, top + ph, left + pw, top + ph);
  out += text(left + pw / 2, h - 8, "time (UTC)", "middle", "label");
  out += "<text transform=\"translate(14," + num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">" +
         escape(y_label) + "</text>";
  return out + "</svg>";
}

std::string reliability(const std::string& title, const std::vector<double>& mean_probability,
                        const std::vector<double>& positive_rate, const std::vector<double>& share) {
  const double left = 60, top = 40, pw = 320, ph = 320, w = left + pw + 30, h = top + ph + 50;
  auto X = [&](double v) { return left + v * pw; };
  auto Y = [&](double v) { return top + ph - v * ph; };
  std::string out = header(w, h, title);
  for (int k = 0; k <= 5; ++k) {
    const double v = k / 5.0;
    out += line(X(0), Y(v), X(1), Y(v), "grid") + text(left - 6, Y(v) + 4, fmt2(v), "end") + text(X(v), top + ph + 16, fmt2(v));
  }
  const double bw = pw / static_cast<double>(std::max<std::size_t>(share.size(), 1));
  for (std::size_t b = 0; b < share.size(); ++b) {
    const double hgt = std::clamp(share[b], 0.0, 1.0) * ph;
    out += "<rect class=\"bar share\" x=\"" + num(left + bw * static_cast<double>(b) + 1) + "\" y=\"" + num(top + ph - hgt) +
           "\" width=\"" + num(bw - 2) + "\" height=\"" + num(hgt) + "\" fill=\"#d9d9d9\"><title>" +
           fmt2(share[b] * 100) + "% of predictions</title></rect>";
  }
  out += "<line x1=\"" + num(X(0)) + "\" y1=\"" + num(Y(0)) + "\" x2=\"" + num(X(1)) + "\" y2=\"" + num(Y(1)) +
         "\" class=\"diagonal\"/>";
  std::string pts;
  for (std::size_t b = 0; b < mean_probability.size(); ++b) {
    if (share[b] <= 0) continue;
    pts += num(X(mean_probability[b])) + "," + num(Y(positive_rate[b])) + " ";
    out += "<circle class=\"point\" cx=\"" + num(X(mean_probability[b])) + "\" cy=\"" + num(Y(positive_rate[b])) +
           "\" r=\"4\" fill=\"#1f77b4\"><title>predicted " + fmt2(mean_probability[b]) + ", observed " +
           fmt2(positive_rate[b]) + "</title></circle>";
  }
  out += "<polyline class=\"series\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"" + pts + "\"/>";
  out += line(left, top, left, top + ph) + line(left, top + ph, left + pw, top + ph);
  out += text(left + pw / 2, h - 14, "mean predicted probability (grey: share of predictions)", "middle", "label");
  out += "<text transform=\"translate(14," + num(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">"
         "observed positive rate</text>";
  return out + "</svg>";
}

std::string heatmap(const std::string& title, const std::string& row_label, const std::string& col_label,
                    const std::vector<std::string>& labels, const std::vector<std::vector<double>>& values) {
  const double n = static_cast<double>(labels.size());
  const double cell = n > 10 ? 14 : 36, left = 110, top = 40 + 100, size = cell * n;
  const double w = left + size + 20, h = top + size + 40;
  std::string out = header(w, h, title);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out += text(left - 4, top + cell * (static_cast<double>(i) + 0.7), labels[i], "end");
    const double x = left + cell * (static_cast<double>(i) + 0.7);
    out += "<text transform=\"translate(" + num(x) + "," + num(top - 4) + ") rotate(-60)\" class=\"tick\">" +
           escape(labels[i]) + "</text>";
  }
  for (std::size_t r = 0; r < values.size(); ++r) {
    const double row_max = std::max(1e-12, *std::max_element(values[r].begin(), values[r].end()));
    for (std::size_t c = 0; c < values[r].size(); ++c) {
      const double v = values[r][c] / row_max;
      const int shade = static_cast<int>(255 - 200 * v);
      out += "<rect class=\"cell\" x=\"" + num(left + cell * static_cast<double>(c)) + "\" y=\"" +
             num(top + cell * static_cast<double>(r)) + "\" width=\"" + num(cell - 1) + "\" height=\"" + num(cell - 1) +
             "\" fill=\"rgb(" + std::to_string(shade) + "," + std::to_string(shade) + ",255)\"><title>" +
             escape(labels[r] + " / " + labels[c] + ": " + num(values[r][c])) + "</title></rect>";
    }
  }
  out += text(left + size / 2, h - 12, col_label + " (columns), rows scaled to their maximum", "middle", "label");
  out += "<text transform=\"translate(12," + num(top + size / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">" +
         escape(row_label) + "</text>";
  return out + "</svg>";
}

}  // namespace emotune::eval::svg
