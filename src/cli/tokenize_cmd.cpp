// `emotune tokenize`: one JSON object of ids and tokens (and with --offsets, each token's code points
// [start, end) in the line, as Hugging Face's offset_mapping) per input line.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/io.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"
#include "text/utf8.h"

namespace emotune::cli {

namespace {

struct TokenizeArgs {
  std::string model_dir;
  bool offline = false;
  std::string vocab_file;
  std::size_t max_length = 512;
  std::string input;
  bool offsets = false;
};

int tokenize(const TokenizeArgs& args) {
  const text::TokenizerPtr tokenizer =
      args.model_dir.empty() ? std::make_shared<text::WordPiece>(text::WordPiece::from_vocab_file(args.vocab_file))
                             : text::load_tokenizer(args.model_dir);
  std::size_t invalid_lines = 0;
  std::string out;
  for_each_input_line(args.input, [&](const std::string& line) {
    if (!text::is_valid_utf8(line)) ++invalid_lines;
    const text::Encoding enc = tokenizer->encode(line, args.max_length);
    out = "{\"ids\":[";
    for (std::size_t i = 0; i < enc.ids.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(enc.ids[i]);
    }
    out += "],\"tokens\":[";
    for (std::size_t i = 0; i < enc.ids.size(); ++i) {
      if (i) out += ',';
      out += nlohmann::json(tokenizer->token(enc.ids[i])).dump();
    }
    out += ']';
    if (args.offsets) {
      out += ",\"offsets\":[";
      const auto spans = tokenizer->token_spans(line, args.max_length);
      for (std::size_t i = 0; i < spans.size(); ++i) {
        if (i) out += ',';
        out += '[' + std::to_string(spans[i].start) + ',' + std::to_string(spans[i].end) + ']';
      }
      out += ']';
    }
    out += "}\n";
    std::cout << out;
  });
  std::cout.flush();
  if (invalid_lines > 0) std::cerr << "emotune: " << invalid_lines << " input line(s) had invalid UTF-8 (replaced)\n";
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, Action& action) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print token ids and tokens, one JSON object per input line");
  auto* model = cmd->add_option("--model", args->model_dir, "Model or tokenizer directory");
  auto* vocab = cmd->add_option("--vocab", args->vocab_file, "A bare vocab.txt (uncased defaults)");
  model->excludes(vocab);
  cmd->add_option("--max-length", args->max_length, "Maximum tokens including [CLS] and [SEP]")
      ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 30));
  cmd->add_option("--input", args->input, "Input file (default: stdin), one text per line");
  cmd->add_flag("--offsets", args->offsets, "Add each token's code points [start, end) in the line ([0,0]: special)");
  add_offline_flag(cmd, args->offline);
  cmd->callback([args, &action] {
    if (args->model_dir.empty() && args->vocab_file.empty()) throw CLI::RequiredError("--model or --vocab");
    action = [args] {
      args->model_dir = resolve_model_flag(args->model_dir, args->offline, "--model");
      return tokenize(*args);
    };
  });
}

}  // namespace emotune::cli
