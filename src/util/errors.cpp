#include "util/errors.h"

#include <new>

namespace emotune {

Failure classify(const std::exception& e) {
  if (dynamic_cast<const InternalError*>(&e)) return Failure::Internal;
  if (dynamic_cast<const std::invalid_argument*>(&e)) return Failure::Setting;
  if (dynamic_cast<const InputError*>(&e)) return Failure::Input;
  if (dynamic_cast<const std::runtime_error*>(&e) || dynamic_cast<const std::bad_alloc*>(&e)) return Failure::System;
  return Failure::Internal;
}

std::string render_settings(const std::string& message, bool as_flags) {
  std::string out;
  out.reserve(message.size() + 16);
  std::size_t i = 0;
  while (i < message.size()) {
    const auto close = message[i] == '{' ? message.find('}', i) : std::string::npos;
    bool is_name = close != std::string::npos && close > i + 1 && message[i + 1] >= 'a' && message[i + 1] <= 'z';
    for (std::size_t k = i + 1; is_name && k < close; ++k) {
      const char c = message[k];
      is_name = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!is_name) {
      out += message[i++];
      continue;
    }
    std::string name = message.substr(i + 1, close - i - 1);
    if (as_flags) {
      for (char& c : name)
        if (c == '_') c = '-';
      out.append("--").append(name);
    } else {
      out += name;
    }
    i = close + 1;
  }
  return out;
}

}  // namespace emotune
