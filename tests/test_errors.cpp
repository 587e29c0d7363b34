// The kinds of failure (util/errors.h) and their one translation at each boundary: the CLI's exit
// code and line (cli/errors.h), the server's HTTP status (serve/server.h).
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <new>
#include <nlohmann/json.hpp>
#include <system_error>

#include "cli/errors.h"
#include "serve/request.h"
#include "serve/server.h"
#include "util/errors.h"

namespace {

using emotune::Failure;

template <typename E>
std::exception_ptr thrown(E e) {
  return std::make_exception_ptr(std::move(e));
}

nlohmann::json::exception json_library_error() {
  try {
    const auto never = nlohmann::json::parse("{");
    (void)never;
  } catch (const nlohmann::json::parse_error& e) {
    return e;
  }
  throw std::logic_error("nlohmann parsed '{'");
}

TEST(Errors, EachExceptionTypeIsOneKindOfFailure) {
  EXPECT_EQ(emotune::classify(emotune::SettingError("x")), Failure::Setting);
  EXPECT_EQ(emotune::classify(std::invalid_argument("x")), Failure::Setting);
  EXPECT_EQ(emotune::classify(emotune::InputError("x")), Failure::Input);
  EXPECT_EQ(emotune::classify(emotune::NotFoundError("x")), Failure::Input);
  EXPECT_EQ(emotune::classify(std::runtime_error("x")), Failure::System);
  EXPECT_EQ(emotune::classify(std::system_error(std::make_error_code(std::errc::no_such_file_or_directory))),
            Failure::System);
  EXPECT_EQ(emotune::classify(std::bad_alloc()), Failure::System);
  EXPECT_EQ(emotune::classify(emotune::InternalError("x")), Failure::Internal);
  EXPECT_EQ(emotune::classify(std::out_of_range("x")), Failure::Internal);
  EXPECT_EQ(emotune::classify(json_library_error()), Failure::Internal);
}

TEST(Errors, SettingsAreWrittenAsFlagsOrAsFields) {
  const std::string m = "{max_length} 600 exceeds the model's 512 positions; {eval_every} none skips dev";
  EXPECT_EQ(emotune::render_settings(m, true), "--max-length 600 exceeds the model's 512 positions; --eval-every none skips dev");
  EXPECT_EQ(emotune::render_settings(m, false), "max_length 600 exceeds the model's 512 positions; eval_every none skips dev");
  // Only braces around a lower-case name are settings.
  for (const std::string kept : {"{\"a\": 1}", "{}", "{Max}", "{a b}", "{abc", "}{", "text {x-y}"})
    EXPECT_EQ(emotune::render_settings(kept, true), kept);
}

TEST(Errors, TheCliExitsTwoForTheCallersFailuresAndOneForOurs) {
  using emotune::cli::report_failure;
  auto r = report_failure(thrown(emotune::SettingError("{threads} 9 is more than this machine's 2 CPU threads")));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.line, "emotune: error: --threads 9 is more than this machine's 2 CPU threads");
  r = report_failure(thrown(emotune::InputError("data/train.tsv:3: a label id 99 is out of range\nmore")));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.line, "emotune: error: data/train.tsv:3: a label id 99 is out of range");
  // Input quoted in a message reaches the terminal without its escape sequences.
  r = report_failure(thrown(emotune::InputError("input line 2: \"time\" is not a time: \x1b[2J\x1b]0;x\x07")));
  EXPECT_EQ(r.line, "emotune: error: input line 2: \"time\" is not a time: \\x1b[2J\\x1b]0;x\\x07");
  r = report_failure(thrown(std::runtime_error("cannot write runs/m")));
  EXPECT_EQ(r.exit_code, 2);
  r = report_failure(thrown(std::bad_alloc()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.line.find("out of memory"), std::string::npos);
  for (const auto& ours : {thrown(emotune::InternalError("broken invariant")), thrown(std::out_of_range("vector")),
                           thrown(c10::Error("index out of range in self", "backtrace"))}) {
    r = report_failure(ours);
    EXPECT_EQ(r.exit_code, 1) << r.line;
    EXPECT_EQ(r.line.rfind("emotune: internal error: ", 0), 0u) << r.line;
    EXPECT_NE(r.line.find("please report it"), std::string::npos) << r.line;
    EXPECT_EQ(r.line.find('\n'), std::string::npos);
  }
}

TEST(Errors, TheServerAnswersFourHundredsForTheClientsFailuresAndFiveHundredOnlyForOurs) {
  using emotune::serve::error_status_for;
  auto s = error_status_for(thrown(emotune::serve::HttpError{413, "too_much_work", "over the budget"}));
  EXPECT_EQ(s.status, 413);
  EXPECT_EQ(s.code, "too_much_work");
  s = error_status_for(thrown(emotune::SettingError("{baseline} mask: the tokenizer has no mask token")));
  EXPECT_EQ(s.status, 400);
  EXPECT_EQ(s.message, "baseline mask: the tokenizer has no mask token");  // a field, not a flag
  s = error_status_for(thrown(std::invalid_argument("{steps} must be between 1 and 1024")));
  EXPECT_EQ(s.status, 400);
  s = error_status_for(thrown(emotune::InputError("the text is not UTF-8")));
  EXPECT_EQ(s.status, 422);
  for (const auto& ours : {thrown(std::runtime_error("cannot read /srv/models/m/model.safetensors")),
                           thrown(emotune::InternalError("broken invariant at /src/x.cpp")),
                           thrown(c10::Error("shape mismatch", "backtrace with /usr/lib paths"))}) {
    s = error_status_for(ours);
    EXPECT_EQ(s.status, 500);
    EXPECT_EQ(s.message.find('/'), std::string::npos) << "paths stay in the log: " << s.message;
    EXPECT_EQ(s.message.rfind("internal error E", 0), 0u) << s.message;
  }
}

}  // namespace

TEST(Printable, EscapesWhatATerminalWouldObey) {
  using emotune::printable;
  EXPECT_EQ(printable("plain text, tabs\tand ünïcödé 😀"), "plain text, tabs\tand ünïcödé 😀");
  EXPECT_EQ(printable("\x1b]0;pwned\x07\x1b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
  EXPECT_EQ(printable("c1 \xc2\x9b" "31m csi, del \x7f"), "c1 \\u{9b}31m csi, del \\x7f");
  EXPECT_EQ(printable("cut \xc2"), "cut \xc2");  // a lone lead byte is not a control character
}
