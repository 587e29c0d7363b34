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

std::string printable(const std::string& text) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      out.append("\\x").push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {  // U+0080..U+009F in UTF-8
      const auto c1 = static_cast<unsigned char>(text[++i]);
      out.append("\\u{").push_back(digits[c1 >> 4]);
      out.push_back(digits[c1 & 15]);
      out.push_back('}');
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace emotune
