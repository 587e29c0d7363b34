// EXPECT_THROW_MESSAGE(statement, Type, part): `statement` throws a Type whose message (what(), or
// the message field of errors that are not std::exceptions, such as serve::HttpError) contains
// `part`. A test of an error checks which error it was, not only that one came.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>

namespace emotune::tests {

// What `f` threw (a std::exception's what()), or "" when it threw nothing.
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

template <class Error>
std::string message_of_error(const Error& e) {
  if constexpr (requires { e.what(); })
    return e.what();
  else
    return e.message;
}

}  // namespace emotune::tests

#define EXPECT_THROW_MESSAGE(statement, Type, part)                                                      \
  EXPECT_THROW(                                                                                          \
      {                                                                                                  \
        try {                                                                                            \
          statement;                                                                                     \
        } catch (const Type& thrown_for_message) {                                                      \
          const std::string message_thrown = emotune::tests::message_of_error(thrown_for_message);       \
          EXPECT_NE(message_thrown.find(part), std::string::npos) << "the message: " << message_thrown;  \
          throw;                                                                                         \
        }                                                                                                \
      },                                                                                                 \
      Type)
