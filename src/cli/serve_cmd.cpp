// `emotune serve`: the HTTP service and web page (see serve/server.h).
#include "cli/commands.h"
#include "cli/model_flags.h"
#include "serve/server.h"

#include <boost/algorithm/string/trim.hpp>
#include <fstream>
#include <string>

namespace emotune::cli {

namespace {

// The key on the file's first line, without surrounding white space (never on the command line,
// where other users of the machine can read it).
std::string read_api_key(const std::string& path) {
  std::ifstream in(path);
  std::string key;
  if (!in || !std::getline(in, key)) throw InputError("--api-key-file " + path + ": cannot read it (a file with the key on its first line)");
  boost::algorithm::trim(key);
  if (key.empty()) throw InputError("--api-key-file " + path + ": the first line is empty; put the key there");
  return key;
}

}  // namespace

void add_serve_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<serve::ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over HTTP, with a web page");
  cmd->add_option("--model", o->model_dir, "Model directory")->required();
  cmd->add_option("--host", o->host, "Address to listen on");
  cmd->add_option("--port", o->port, "Port")->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", o->max_batch, "Most texts per model batch (and per request)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-batch-tokens", o->max_batch_tokens, "Most tokens per model batch (and per request)")
      ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 24));
  cmd->add_option("--max-wait-ms", o->max_wait_ms, "Longest wait for a batch to fill")->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-text-chars", o->max_text_chars, "Longest text accepted (characters)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-body-bytes", o->max_body_bytes, "Largest request body accepted (chunked ones too)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-concurrent-requests", o->max_concurrent_requests,
                  "Predictions in progress at once; more are answered 429")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  cmd->add_option("--read-timeout", o->read_timeout_s,
                  "Seconds a request may take to arrive, head and body; slower clients are dropped")
      ->check(CLI::Range(1, 3600));
  auto no_explain = std::make_shared<bool>(false);
  cmd->add_flag("--no-explain", *no_explain, "No /v1/explain: saves the float copy of the model it keeps");
  cmd->add_option("--explain-max-steps", o->explain_max_steps, "Most integrated-gradients steps a request may ask for")
      ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
  cmd->add_option("--explain-max-work", o->explain_max_work,
                  "Most work one explanation request may ask for: texts x labels x steps x tokens (413 beyond)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-concurrent-explanations", o->max_concurrent_explanations,
                  "Explanation requests queued or running at once; more are answered 429")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  auto api_key_file = std::make_shared<std::string>();
  cmd->add_option("--api-key-file", *api_key_file,
                  "File holding a key that every route but /health then requires as \"Authorization: Bearer KEY\"");
  auto long_text = std::make_shared<LongTextFlags>();
  add_long_text_options(cmd, *long_text);
  auto offline = std::make_shared<bool>(false);
  add_runtime_options(cmd, o->threads, o->device, o->precision, *offline);
  cmd->callback([o, offline, no_explain, api_key_file, long_text, &action] {
    o->explain = !*no_explain;
    o->long_text = long_text->options();
    action = [o, offline, api_key_file] {
      if (!api_key_file->empty()) o->api_key = read_api_key(*api_key_file);
      o->model_dir = resolve_model_flag(o->model_dir, *offline, "--model");
      return serve::run_server(*o);
    };
  });
}

}  // namespace emotune::cli
