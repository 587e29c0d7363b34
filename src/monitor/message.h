// The monitor's input: one JSON object per line, {"time": ISO-8601, "source": "...", "text": "..."},
// and the time and duration notations it uses.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace emotune::monitor {

// A line that is not a message; what() says why (without the line number, which the reader adds).
struct BadLine : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Message {
  std::int64_t time_ms = 0;  // milliseconds since 1970-01-01T00:00:00Z
  std::string source;
  std::string text;
};

// "2026-11-27T10:15:00Z", "2026-11-27 10:15:00.250+02:00", "2026-11-27T10:15", "2026-11-27" (a date
// alone is its midnight; no zone means UTC) -> milliseconds since the epoch; nullopt for anything else
// (including impossible dates and times).
std::optional<std::int64_t> parse_time(std::string_view s);
// Milliseconds since the epoch -> "2026-11-27T10:15:00Z" (".250" when there are milliseconds).
std::string format_time(std::int64_t ms);
// "90s", "30m", "12h", "7d", "2w" -> milliseconds; nullopt for anything else, zero or absurd (> 100 years).
std::optional<std::int64_t> parse_duration(std::string_view s);

// One input line -> a message; throws BadLine. "source" may be absent ("default"); "time" and "text"
// are required strings; other fields are ignored.
Message parse_message(std::string_view line);

}  // namespace emotune::monitor
