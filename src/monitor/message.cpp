#include "monitor/message.h"

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "text/utf8.h"
#include "util/json_file.h"

namespace emotune::monitor {

namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's formula).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Reads exactly `n` digits at s[i..]; advances i.
std::optional<unsigned> digits(std::string_view s, std::size_t& i, std::size_t n) {
  if (i + n > s.size()) return std::nullopt;
  unsigned v = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const char c = s[i + k];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  i += n;
  return v;
}

}  // namespace

std::optional<std::int64_t> parse_time(std::string_view s) {
  std::size_t i = 0;
  const auto y = digits(s, i, 4);
  if (!y || i >= s.size() || s[i++] != '-') return std::nullopt;
  const auto mo = digits(s, i, 2);
  if (!mo || i >= s.size() || s[i++] != '-') return std::nullopt;
  const auto d = digits(s, i, 2);
  if (!d || *mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo)) return std::nullopt;
  std::int64_t ms = days_from_civil(*y, *mo, *d) * 86400000;
  if (i == s.size()) return ms;
  if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
  ++i;
  const auto h = digits(s, i, 2);
  if (!h || i >= s.size() || s[i++] != ':') return std::nullopt;
  const auto mi = digits(s, i, 2);
  if (!mi || *h > 23 || *mi > 59) return std::nullopt;
  ms += (static_cast<std::int64_t>(*h) * 3600 + static_cast<std::int64_t>(*mi) * 60) * 1000;
  if (i < s.size() && s[i] == ':') {
    ++i;
    const auto sec = digits(s, i, 2);
    if (!sec || *sec > 60) return std::nullopt;  // 60: a leap second, counted as the next one
    ms += static_cast<std::int64_t>(*sec) * 1000;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
      ++i;
      std::int64_t frac = 0, scale = 100;
      const std::size_t start = i;
      for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) frac += (s[i] - '0') * scale;
      if (i == start || i - start > 9) return std::nullopt;
      ms += frac;
    }
  }
  if (i == s.size()) return ms;
  if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) return ms;
  if (s[i] != '+' && s[i] != '-') return std::nullopt;
  const int sign = s[i++] == '+' ? 1 : -1;
  const auto oh = digits(s, i, 2);
  if (!oh) return std::nullopt;
  if (i < s.size() && s[i] == ':') ++i;
  const auto om = digits(s, i, 2);
  if (!om || i != s.size() || *oh > 23 || *om > 59) return std::nullopt;
  return ms - sign * (static_cast<std::int64_t>(*oh) * 60 + *om) * 60000;
}

std::string format_time(std::int64_t ms) {
  std::int64_t days = ms / 86400000, rem = ms % 86400000;
  if (rem < 0) rem += 86400000, --days;
  const Civil c = civil_from_days(days);
  const auto secs = rem / 1000, milli = rem % 1000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", static_cast<long long>(c.y), c.m, c.d,
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  std::string out = buf;
  if (milli) {
    std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(milli));
    out += buf;
  }
  return out + "Z";
}

std::optional<std::int64_t> parse_duration(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, n);
  if (ec != std::errc() || end != s.data() + s.size() - 1 || n <= 0) return std::nullopt;
  std::int64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60000; break;
    case 'h': unit = 3600000; break;
    case 'd': unit = 86400000; break;
    case 'w': unit = 7 * 86400000LL; break;
    default: return std::nullopt;
  }
  constexpr std::int64_t kCentury = 100LL * 366 * 86400000;
  if (n > kCentury / unit) return std::nullopt;
  return n * unit;
}

Message parse_message(std::string_view line) {
  if (!text::is_valid_utf8(line)) throw BadLine("not valid UTF-8");
  const auto j = util::parse_json(line);
  if (j.is_discarded()) throw BadLine(util::not_json_reason());
  if (!j.is_object()) throw BadLine("not a JSON object");
  Message m;
  if (!j.contains("time") || !j["time"].is_string()) throw BadLine("\"time\" must be an ISO-8601 string");
  const auto t = parse_time(j["time"].get<std::string>());
  if (!t) throw BadLine("\"time\" is not an ISO-8601 time: " + j["time"].get<std::string>().substr(0, 40));
  m.time_ms = *t;
  if (!j.contains("text") || !j["text"].is_string()) throw BadLine("\"text\" must be a string");
  m.text = j["text"].get<std::string>();
  if (j.contains("source")) {
    if (!j["source"].is_string()) throw BadLine("\"source\" must be a string");
    m.source = j["source"].get<std::string>();
  }
  if (m.source.empty()) m.source = "default";
  return m;
}

}  // namespace emotune::monitor
