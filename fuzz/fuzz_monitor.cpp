// The monitor's inputs: a message line (parsed, or refused with BadLine), the same bytes as a rules
// file (parsed, or refused with one error), and whatever parses fed through a monitor.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "monitor/message.h"
#include "monitor/monitor.h"
#include "monitor/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace emotune::monitor;
  const std::string input(reinterpret_cast<const char*>(data), size);
  static const std::vector<std::string> labels = {"joy", "sadness", "fear"};
  std::vector<Rule> rules;
  try {
    rules = parse_rules(input, labels, "rules");
    for (const auto& r : rules)
      if (r.labels.empty() || r.above.has_value() == r.below.has_value() || (r.over_last == 0) == (r.over_ms == 0))
        __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  Monitor monitor(labels, {0.5f, 0.5f, 0.5f}, {4, 0}, rules, true);
  try {
    const Message m = parse_message(input);
    if (parse_time(format_time(m.time_ms)) != m.time_ms) __builtin_trap();
    monitor.add(m, {0.2f, 0.7f, 0.4f});
    monitor.add(m, {0.9f, 0.1f, 0.1f});
    (void)monitor.summary();
  } catch (const BadLine&) {
  }
  return 0;
}
