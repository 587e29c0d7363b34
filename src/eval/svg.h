// Small, dependency-free SVG charts for the HTML report: labelled axes, ticks and legends,
// readable without a network or scripts.
#pragma once

#include <string>
#include <vector>

namespace emotune::eval::svg {

struct Series {
  std::string name;
  std::string color;
  std::vector<double> values;
};

// Horizontal grouped bars: one row per category, one bar per series, values in [0, 1].
std::string grouped_bars(const std::string& title, const std::vector<std::string>& categories,
                         const std::vector<Series>& series);

// Lines over a shared x axis; y range from the data (or [0, 1] when unit_y).
std::string lines(const std::string& title, const std::string& x_label, const std::string& y_label,
                  const std::vector<double>& x, const std::vector<Series>& series, bool unit_y);

// A dashed vertical line at x (an event on a time axis), its label shown on hover.
struct Marker {
  double x;
  std::string label;
};

// Lines over time: t in seconds since the epoch (ticks as UTC dates, or times within a few days),
// y in [0, 1], with markers; points at NaN are gaps.
std::string time_lines(const std::string& title, const std::string& y_label, const std::vector<double>& t,
                       const std::vector<Series>& series, const std::vector<Marker>& markers);

// Reliability diagram: observed positive rate against mean predicted probability per bin, with
// the diagonal of perfect calibration and the share of predictions in each bin.
std::string reliability(const std::string& title, const std::vector<double>& mean_probability,
                        const std::vector<double>& positive_rate, const std::vector<double>& share);

// Square heat map of `values` (rows x cols), each row scaled to its own maximum.
std::string heatmap(const std::string& title, const std::string& row_label, const std::string& col_label,
                    const std::vector<std::string>& labels, const std::vector<std::vector<double>>& values);

std::string escape(const std::string& text);

}  // namespace emotune::eval::svg
