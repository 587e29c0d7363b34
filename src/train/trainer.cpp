#include "train/trainer.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <regex>
#include <thread>

#include "data/batch.h"
#include "data/goemotions.h"
#include "dist/group.h"
#include "eval/calibrate.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "infer/predictor.h"
#include "model/checkpoint.h"
#include "runtime/runtime.h"
#include "weights/safetensors.h"
#include "train/step.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/stop_signals.h"
#include "util/json_file.h"

namespace emotune::train {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// The lines of a run's metrics.jsonl for steps up to `step` (later ones are about to be recomputed on
// resume). A line that is not a metrics record stops the resume, naming it, with the file untouched;
// only a last line without its newline (an append cut short by a kill) is dropped, with a warning.
std::string metrics_up_to(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string kept;
  std::size_t begin = 0;
  for (int64_t number = 1; begin < text.size(); ++number) {
    const std::size_t end = text.find('\n', begin);
    const std::string line = text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    begin = end == std::string::npos ? text.size() : end + 1;
    const auto j = util::parse_json(line);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) {
      if (end == std::string::npos) {
        spdlog::warn("{}: dropping its last line, cut short (no newline): {:.60}", path.string(), line);
        break;
      }
      throw std::runtime_error(path.string() + " line " + std::to_string(number) +
                               " is not a metrics record (a JSON object with an integer \"step\"); fix or remove "
                               "that line, then resume again (the file is left as it is)");
    }
    if (j["step"].get<int64_t>() <= step) kept += line + "\n";
  }
  return kept;
}

// ---- small helpers ----
std::string hex_encode(const torch::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  const auto t = bytes.contiguous();
  const auto* p = t.data_ptr<uint8_t>();
  std::string s;
  s.reserve(static_cast<std::size_t>(t.numel()) * 2);
  for (int64_t i = 0; i < t.numel(); ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

torch::Tensor hex_decode(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size() / 2)}, torch::kUInt8);
  auto* p = t.data_ptr<uint8_t>();
  auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < s.size() / 2; ++i) p[i] = static_cast<uint8_t>(val(s[2 * i]) << 4 | val(s[2 * i + 1]));
  return t;
}

// The generator dropout draws from on `device`: the CPU's (which also seeds the CPU's hashed masks),
// or an accelerator's own.
at::Generator generator_of(const torch::Device& device) {
  return device.is_cpu() ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
}

torch::Tensor rng_state(const torch::Device& device = torch::kCPU) {
  auto gen = generator_of(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Tensor& state, const torch::Device& device = torch::kCPU) {
  auto gen = generator_of(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// What trainer_state.json records beside the tensors of a checkpoint.
struct ResumeState {
  int64_t step = 0, total_steps = 0, optimizer_steps = 0, window_steps = 0;
  double best_macro_f1 = -1, window_loss = 0;
  std::string rng_state;                     // hex; rank 0's in a run of several processes
  std::vector<std::string> rank_rng_states;  // every rank's, in rank order (runs of several processes)
  std::string device_rng_state;              // hex; the accelerator's generator (one process on a GPU)
};

ResumeState read_resume_state(const fs::path& path) {
  const json j = util::read_json_file(path);
  const std::string where = path.string();
  auto field = [&](const char* key) -> const json& {
    if (!j.is_object() || !j.contains(key)) throw std::runtime_error(where + ": no field '" + key + "'");
    return j.at(key);
  };
  auto integer = [&](const char* key, int64_t least) {
    const json& v = field(key);
    if (!v.is_number_integer() || v.get<int64_t>() < least)
      throw std::runtime_error(where + ": '" + key + "' must be an integer of at least " + std::to_string(least));
    return v.get<int64_t>();
  };
  auto number = [&](const char* key) {
    const json& v = field(key);
    if (!v.is_number()) throw std::runtime_error(where + ": '" + key + "' must be a number");
    return v.get<double>();
  };
  auto is_hex = [](const json& v) {
    return v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().size() % 2 == 0 &&
           v.get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  ResumeState s;
  s.step = integer("step", 1);
  s.total_steps = integer("total_steps", 1);
  s.optimizer_steps = integer("optimizer_steps", 0);
  s.window_steps = integer("window_steps", 0);
  s.best_macro_f1 = number("best_macro_f1");
  s.window_loss = number("window_loss");
  const json& rng = field("rng_state");
  if (!is_hex(rng)) throw std::runtime_error(where + ": 'rng_state' must be a hex string");
  s.rng_state = rng.get<std::string>();
  if (j.contains("rank_rng_states")) {
    const json& all = j.at("rank_rng_states");
    if (!all.is_array() || !std::all_of(all.begin(), all.end(), is_hex))
      throw std::runtime_error(where + ": 'rank_rng_states' must be a list of hex strings");
    for (const auto& r : all) s.rank_rng_states.push_back(r.get<std::string>());
  }
  if (j.contains("device_rng_state")) {
    if (!is_hex(j.at("device_rng_state"))) throw std::runtime_error(where + ": 'device_rng_state' must be a hex string");
    s.device_rng_state = j.at("device_rng_state").get<std::string>();
  }
  return s;
}

// The order of examples in an epoch: a seeded Fisher-Yates shuffle, so that it can be rebuilt
// from (seed, epoch) on resume. Written out rather than std::shuffle, whose algorithm is unspecified.
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

// Rank `rank`'s rows of the `n` rows starting at `begin`: contiguous shares, the first n % size ranks
// one row more, so that the ranks' shares in rank order are the rows of the whole batch in order.
struct Shard {
  std::size_t begin = 0, count = 0;
};
Shard shard_of(std::size_t begin, std::size_t n, int rank, int size) {
  const auto r = static_cast<std::size_t>(rank), w = static_cast<std::size_t>(size);
  const std::size_t each = n / w, extra = n % w;
  return Shard{begin + r * each + std::min(r, extra), each + (r < extra ? 1 : 0)};
}

// Parses a step count ("--eval-every 500", a folder name) without wrapping or throwing std::out_of_range.
std::optional<int64_t> parse_steps(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

// The checkpoints/step-N directories under `dir`, oldest first.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> all;
  if (!fs::is_directory(dir)) return all;
  const std::regex pattern("step-([0-9]+)");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    if (const auto step = parse_steps(m[1])) all.emplace_back(*step, e.path());
  }
  std::sort(all.begin(), all.end());
  return all;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", static_cast<long>(s / 3600), static_cast<long>(s / 60 % 60),
                static_cast<long>(s % 60));
  return buf;
}

fs::path without_trailing_slash(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  return p.has_filename() || p.parent_path().empty() ? p : p.parent_path();
}

// True when `inner` is `outer` or lies inside it (paths made absolute and normal first).
bool inside(const fs::path& inner, const fs::path& outer) {
  const auto a = fs::weakly_canonical(fs::absolute(inner)), b = fs::weakly_canonical(fs::absolute(outer));
  auto i = a.begin();
  for (auto o = b.begin(); o != b.end(); ++o, ++i)
    if (o->empty()) continue;
    else if (i == a.end() || *i != *o) return false;
  return true;
}


class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : o_(o), out_(without_trailing_slash(o.output)) {}

  int run();
  const dist::Group& group() const { return group_; }

 private:
  void find_resume_checkpoint();
  void check_output_target() const;
  void prepare_output();
  void load_model();
  void load_data();
  void plan_steps();
  void join_group();
  int threads_per_process() const;
  void build_step_runner();
  void check_ranks_agree();
  int64_t restore_checkpoint();  // returns the step to start from
  void restore_device_rng_state(const std::string& hex);
  double train_step(int64_t step, double& grad_norm);
  json evaluate();
  torch::Tensor dev_logits();
  void calibrate_on_dev();
  void save_checkpoint(int64_t step);
  [[noreturn]] void stop_diverged(int64_t done, const std::string& what);
  void append_metrics(const json& line);
  void write_training_args() const;
  void progress(int64_t step, double loss, double examples_per_s, double eta_s, bool force_line);

  TrainOptions o_;
  fs::path out_;
  dist::Group group_;  // this process alone, unless launched as one rank of several
  int local_rank_ = 0, local_world_size_ = 1;  // this host's share of the ranks
  torch::Device device_{torch::kCPU};
  std::optional<model::ModelBundle> bundle_;
  std::vector<std::string> labels_;
  static constexpr std::size_t kDefaultMaxLength = 128;  // --max-length when not given (capped at the model's)
  std::size_t max_length_ = kDefaultMaxLength;
  data::EncodedDataset train_, dev_;
  fs::path dev_path_;
  bool has_dev_ = false;
  Loss loss_;
  std::unique_ptr<StepRunner> runner_;
  LinearSchedule schedule_;
  int64_t batches_per_epoch_ = 0, steps_per_epoch_ = 0, total_steps_ = 0, eval_interval_ = 0;
  double best_macro_f1_ = -1;
  double window_loss_ = 0;  // losses since the last log line
  int64_t window_steps_ = 0;
  int64_t current_epoch_ = -1;
  std::vector<std::size_t> order_;
  fs::path resume_from_;
  std::optional<util::KeptRun> replaced_run_;  // the old output directory under --overwrite, until we finish
  bool tty_ = false;
};

void Trainer::find_resume_checkpoint() {
  const fs::path ckpts = out_ / "checkpoints";
  if (!group_.is_writer()) {
    // Rank 0 chooses; the others read the same checkpoint (the output directory must be shared).
    resume_from_ = group_.writer_value("resume_from", "");
    if (!fs::exists(resume_from_ / "trainer_state.json"))
      throw std::runtime_error("{resume}: rank 0 resumes from " + resume_from_.string() +
                               ", which this host cannot read ({output} must be on storage every rank shares)");
    return;
  }
  if (const auto n = util::clean_up_after_dead_writers(out_) + util::clean_up_after_dead_writers(ckpts))
    spdlog::info("{}: removed {} temporary file(s) left by a killed run", out_.string(), n);
  for (const auto& [step, path] : list_checkpoints(ckpts))
    if (fs::exists(path / "trainer_state.json")) resume_from_ = path;  // the newest complete one
  if (resume_from_.empty()) throw std::runtime_error("{resume}: no checkpoint in " + ckpts.string());
  group_.writer_value("resume_from", resume_from_.string());
}

// Refuses, before anything is loaded, an output that would destroy the input or an earlier run.
void Trainer::check_output_target() const {
  if (o_.output.empty()) throw std::invalid_argument("{output} is required");
  for (const auto& [flag, input] : {std::pair{"{model}", o_.model_dir}, {"{base}", o_.base_dir}})
    if (!input.empty() && inside(input, out_))
      throw std::invalid_argument("{output} " + out_.string() + " holds the " + flag + " model " + input +
                                  ": training would replace its own input; choose another {output}");
  for (const auto& [flag, input] : {std::pair{"{data_dir}", o_.data_dir}, {"{train_file}", o_.train_file},
                                    {"{dev_file}", o_.dev_file}})
    if (!input.empty() && inside(input, out_))
      throw std::invalid_argument("{output} " + out_.string() + " holds the " + flag + " " + input +
                                  ": {overwrite} would delete the data; choose another {output}");
  if (group_.is_writer() && !o_.resume && fs::exists(out_) && !o_.overwrite)
    throw std::runtime_error("output directory " + out_.string() + " already exists (use {overwrite} to replace it, "
                             "or {resume} to continue it)");
}

// Called once the model, the data and the plan are known to be good: an old run is moved aside (and
// comes back if this one fails) rather than deleted up front.
void Trainer::prepare_output() {
  if (o_.resume || !group_.is_writer()) return;
  if (!out_.parent_path().empty()) util::clean_up_after_dead_writers(out_.parent_path());
  if (fs::exists(out_)) replaced_run_.emplace(out_);
  fs::create_directories(out_ / "checkpoints");
}

void Trainer::load_model() {
  labels_ = data::taxonomy_labels(o_.taxonomy);
  model::LoadOptions lo = model::training_options(o_.precision, device_);
  lo.seed = o_.seed;
  lo.dropout = o_.dropout;
  lo.labels = labels_;
  fs::path dir;
  if (!resume_from_.empty())
    dir = resume_from_;
  else if (!o_.model_dir.empty())
    dir = o_.model_dir;
  else if (!o_.base_dir.empty())
    dir = o_.base_dir;
  else
    throw std::invalid_argument("give {base} DIR (a base or classifier checkpoint) or {model} DIR");
  bundle_.emplace(model::load_model_dir(dir, lo));
  if (bundle_->labels() != labels_)
    throw std::runtime_error(dir.string() + " classifies " + std::to_string(bundle_->labels().size()) +
                             " labels, not the " + std::to_string(labels_.size()) + " of {taxonomy} " +
                             data::taxonomy_name(o_.taxonomy));
  if (!o_.model_dir.empty() && !o_.base_dir.empty()) throw std::invalid_argument("give {base} or {model}, not both");
  max_length_ = bundle_->config().choose_max_length(o_.max_length.value_or(0), kDefaultMaxLength);
  bundle_->model->config.single_label = o_.objective == Objective::single_label;
  bundle_->model->to(device_);
}

void Trainer::load_data() {
  const fs::path train_path = !o_.train_file.empty() ? fs::path(o_.train_file) : fs::path(o_.data_dir) / "train.tsv";
  if (o_.train_file.empty() && o_.data_dir.empty()) throw std::invalid_argument("give {data_dir} DIR or {train_file} FILE");
  const auto train = data::read_goemotions_tsv(train_path, o_.taxonomy, o_.skip_bad_lines);
  if (train.skipped_lines) spdlog::warn("{}: skipped {} bad line(s)", train_path.string(), train.skipped_lines);
  train_ = data::encode_dataset(train, *bundle_->tokenizer, max_length_);
  fs::path dev_path = o_.dev_file;
  if (dev_path.empty() && !o_.data_dir.empty() && fs::exists(fs::path(o_.data_dir) / "dev.tsv"))
    dev_path = fs::path(o_.data_dir) / "dev.tsv";
  if (o_.eval_every != "none") {
    if (dev_path.empty()) throw std::invalid_argument("no dev split: give {dev_file} FILE or {eval_every} none");
    const auto dev = data::read_goemotions_tsv(dev_path, o_.taxonomy, o_.skip_bad_lines);
    if (dev.skipped_lines) spdlog::warn("{}: skipped {} bad line(s)", dev_path.string(), dev.skipped_lines);
    dev_ = data::encode_dataset(dev, *bundle_->tokenizer, max_length_);
    dev_path_ = dev_path;
    has_dev_ = true;
  }
  spdlog::info("train: {} examples{}", train_.ids.size(),
               has_dev_ ? fmt::format(", dev: {} examples", dev_.ids.size()) : std::string());

  loss_.objective = o_.objective;
  loss_.kind = o_.loss;
  loss_.focal_gamma = o_.focal_gamma;
  loss_.asl = o_.asl;
  if (o_.loss == LossKind::weighted_bce)
    loss_.pos_weight = positive_class_weights(train_.labels, static_cast<int64_t>(labels_.size()));
}

void Trainer::plan_steps() {
  const auto n = static_cast<int64_t>(train_.ids.size());
  const auto bs = static_cast<int64_t>(o_.batch_size);
  batches_per_epoch_ = (n + bs - 1) / bs;
  steps_per_epoch_ = (batches_per_epoch_ + o_.grad_accum - 1) / o_.grad_accum;
  total_steps_ = o_.max_steps ? *o_.max_steps : steps_per_epoch_ * o_.epochs;
  if (total_steps_ <= 0) throw std::invalid_argument("nothing to train: 0 steps");
  schedule_.base_lr = o_.lr;
  schedule_.total_steps = total_steps_;
  schedule_.warmup_steps =
      o_.warmup_steps ? *o_.warmup_steps : static_cast<int64_t>(std::ceil(static_cast<double>(total_steps_) * o_.warmup_ratio));
  if (o_.eval_every == "epoch")
    eval_interval_ = 0;
  else if (o_.eval_every == "none")
    eval_interval_ = -1;
  else if (const auto n = parse_steps(o_.eval_every))
    eval_interval_ = *n;
  else
    throw std::invalid_argument("{eval_every} must be epoch, none or a positive number of steps (got '" +
                                o_.eval_every + "')");
}

void Trainer::join_group() {
  const auto launch = dist::launch_from_environment();
  if (!launch || launch->world_size == 1) return;
  dist::GroupOptions go;
  go.backend = dist::parse_backend(o_.dist_backend);
  go.timeout = std::chrono::seconds(o_.dist_timeout_s);
  group_ = dist::Group(*launch, go);
  local_rank_ = launch->local_rank;
  local_world_size_ = launch->local_world_size;
  if (!group_.is_writer()) spdlog::set_level(spdlog::level::err);  // rank 0 tells the story once
  spdlog::info("data-parallel: {} ranks ({} on this host), {} backend, rendezvous at {}:{}", launch->world_size,
               launch->local_world_size, o_.dist_backend, launch->master_addr, launch->master_port);
}

// Without --threads, the ranks on one host share its cores instead of each taking all of them.
int Trainer::threads_per_process() const {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / local_world_size_);
}

void Trainer::build_step_runner() {
  runner_ = std::make_unique<StepRunner>(bundle_->model, loss_, o_.weight_decay, o_.max_grad_norm, device_, &group_);
}

// Ranks given different arguments or data would silently train different models: compare what shapes
// the run, and start every rank from rank 0's weights.
void Trainer::check_ranks_agree() {
  if (group_.size() == 1) return;
  group_.require_same("the training setup",
                      fmt::format("{} training examples, {} dev examples, {} steps, batch {} x {}, lr {}, seed {}, "
                                  "max length {}, {} parameters, objective {}, loss {}, precision {}",
                                  train_.size(), dev_.size(), total_steps_, o_.batch_size, o_.grad_accum, o_.lr,
                                  o_.seed, max_length_, runner_->params().size(), static_cast<int>(o_.objective),
                                  loss_name(o_.loss), kernels::precision_name(kernels::parse_precision(o_.precision))));
  torch::NoGradGuard no_grad;
  auto params = runner_->params();
  group_.broadcast_from_writer(params);
}

int64_t Trainer::restore_checkpoint() {
  if (resume_from_.empty()) {
    // Dropout draws differ between ranks (their rows differ); rank 0 draws as a single process would.
    torch::manual_seed(o_.seed + static_cast<std::uint64_t>(group_.rank()));
    return 0;
  }
  const ResumeState state = read_resume_state(resume_from_ / "trainer_state.json");
  if (state.total_steps != total_steps_)
    throw std::runtime_error("{resume}: the checkpoint was made for " + std::to_string(state.total_steps) +
                             " steps, these arguments give " + std::to_string(total_steps_) +
                             " (resume with the arguments of the interrupted run)");
  if (state.step <= 0 || state.step > total_steps_)
    throw std::runtime_error((resume_from_ / "trainer_state.json").string() + ": step " + std::to_string(state.step) +
                             " is outside 1.." + std::to_string(total_steps_));
  const weights::SafetensorsFile moments(resume_from_ / "optimizer.safetensors");
  auto& opt = runner_->optimizer();
  const auto& names = runner_->param_names();
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < names.size(); ++i) {
    opt.exp_avg()[i].copy_(moments.load_f32("exp_avg." + names[i]));
    opt.exp_avg_sq()[i].copy_(moments.load_f32("exp_avg_sq." + names[i]));
  }
  const int64_t step = state.step;
  opt.set_steps_taken(state.optimizer_steps);
  const std::string rank_state =
      group_.size() == 1 ? state.rng_state
      : static_cast<int>(state.rank_rng_states.size()) == group_.size() ? state.rank_rng_states[static_cast<std::size_t>(group_.rank())]
                                                                        : std::string();
  if (rank_state.empty()) {
    spdlog::warn("the checkpoint was saved by {} process(es), this run has {}: dropout draws restart from the seed",
                 std::max<std::size_t>(1, state.rank_rng_states.size()), group_.size());
    torch::manual_seed(o_.seed + static_cast<std::uint64_t>(group_.rank()) + 7919ULL * static_cast<std::uint64_t>(state.step));
  } else {
    try {
      set_rng_state(hex_decode(rank_state));
    } catch (const c10::Error&) {
      throw std::runtime_error((resume_from_ / "trainer_state.json").string() + ": 'rng_state' is not a generator state");
    }
  }
  restore_device_rng_state(state.device_rng_state);
  best_macro_f1_ = state.best_macro_f1;
  window_loss_ = state.window_loss;
  window_steps_ = state.window_steps;

  if (!group_.is_writer()) return step;
  util::write_text_atomically(out_ / "metrics.jsonl", metrics_up_to(out_ / "metrics.jsonl", step));
  spdlog::info("resuming from {} (step {} of {})", resume_from_.string(), step, total_steps_);
  return step;
}

double Trainer::train_step(int64_t step, double& grad_norm) {
  const int64_t epoch = step / steps_per_epoch_;
  if (epoch != current_epoch_) {
    order_ = epoch_order(train_.ids.size(), o_.seed, epoch, o_.shuffle);
    current_epoch_ = epoch;
  }
  const int64_t first_batch = (step % steps_per_epoch_) * o_.grad_accum;
  const int64_t last_batch = std::min(first_batch + o_.grad_accum, batches_per_epoch_);
  std::vector<MicroBatch> micro;
  for (int64_t b = first_batch; b < last_batch; ++b) {
    const std::size_t begin = static_cast<std::size_t>(b) * o_.batch_size;
    const std::size_t end = std::min(begin + o_.batch_size, order_.size());
    const Shard mine = shard_of(begin, end - begin, group_.rank(), group_.size());
    micro.push_back(make_micro_batch(train_, order_.data() + mine.begin, mine.count, static_cast<int64_t>(labels_.size()),
                                     bundle_->tokenizer->pad_id(),
                                     static_cast<double>(mine.count) / static_cast<double>(end - begin)));
  }
  return runner_->step(micro, schedule_.lr_at(step), grad_norm);
}

// Each rank scores its share of dev; every rank gets all the logits.
torch::Tensor Trainer::dev_logits() {
  auto& model = bundle_->model;
  model->eval();
  const Shard mine = shard_of(0, dev_.size(), group_.rank(), group_.size());
  std::vector<const std::vector<std::int32_t>*> seqs;
  for (std::size_t i = mine.begin; i < mine.begin + mine.count; ++i) seqs.push_back(&dev_.ids[i]);
  const auto logits = group_.all_gather_rows(
      infer::compute_logits(model, seqs, o_.eval_batch_size, bundle_->tokenizer->pad_id(), device_).to(torch::kCPU));
  model->train();
  if (!torch::isfinite(logits).all().item<bool>()) throw NonFiniteError("the model's dev logits are not finite");
  return logits;
}

// The finished model's calibration and thresholds, fitted on dev (every rank scores, one writes).
// The model is saved by then: a calibration that cannot be made is a warning, not a failed run.
void Trainer::calibrate_on_dev() {
  const auto logits = dev_logits();
  if (!group_.is_writer()) return;
  eval::CalibrationChoice choice;
  try {
    choice = eval::choose_calibration(logits, dev_.labels, "auto");
    eval::save_choice(out_, labels_, labels_, choice, dev_path_.string(), data::taxonomy_name(o_.taxonomy));
  } catch (const std::exception& e) {
    spdlog::warn("the model is saved, uncalibrated: {} (emotune calibrate can try again)", e.what());
    return;
  }
  spdlog::info("calibrated on dev ({}): log-loss {:.4f} -> {:.4f}, ECE {:.4f} -> {:.4f}; thresholds re-tuned",
               choice.calibration.fit, choice.log_loss_before, choice.log_loss_after, choice.ece_before, choice.ece_after);
}

json Trainer::evaluate() {
  // Every rank computes the same metrics from all the logits.
  const auto logits = dev_logits();
  const auto L = static_cast<int64_t>(labels_.size());
  std::vector<const std::vector<int>*> labels;
  for (const auto& l : dev_.labels) labels.push_back(&l);
  const auto targets = data::multi_hot(labels, L);
  const auto first = torch::tensor(dev_.first_label, torch::kInt64);
  const double loss = loss_(logits, targets, first).item<double>();
  const auto probs = o_.objective == Objective::single_label ? torch::softmax(logits, 1) : torch::sigmoid(logits);
  const auto m =
      eval::compute_metrics(probs, dev_.labels, std::vector<float>(static_cast<std::size_t>(L), 0.5f), dev_.first_label);
  return json{{"loss", loss},
              {"exact_match", m.exact_match},
              {"micro", eval::prf_json(m.micro)},
              {"macro", eval::prf_json(m.macro)},
              {"top1_accuracy_first_label", m.top1_accuracy_first_label},
              {"top1_accuracy_any_label", m.top1_accuracy_any_label}};
}

// Dropout on an accelerator draws from its own generator: without its state a resume is not exact.
void Trainer::restore_device_rng_state(const std::string& hex) {
  if (device_.is_cpu()) return;
  if (hex.empty()) {
    spdlog::warn("the checkpoint holds no {} generator state: dropout draws there restart from the seed", device_.str());
    return;
  }
  try {
    set_rng_state(hex_decode(hex), device_);
  } catch (const c10::Error&) {
    throw std::runtime_error((resume_from_ / "trainer_state.json").string() + ": 'device_rng_state' is not a " +
                             device_.str() + " generator state");
  }
}

// Every rank takes part (each one's generator state is saved); rank 0 writes.
void Trainer::save_checkpoint(int64_t step) {
  std::vector<std::string> rank_states;
  if (group_.size() > 1) {
    const auto all = group_.all_gather_rows(rng_state().unsqueeze(0));
    for (int64_t r = 0; r < all.size(0); ++r) rank_states.push_back(hex_encode(all[r]));
  }
  if (!group_.is_writer()) return;
  const fs::path dir = out_ / "checkpoints" / ("step-" + std::to_string(step));
  util::write_directory_atomically(dir, true, [&](const fs::path& tmp) {
    model::save_model_files(tmp, *bundle_->model, *bundle_->tokenizer);
    std::vector<std::pair<std::string, torch::Tensor>> moments;
    auto& opt = runner_->optimizer();
    for (std::size_t i = 0; i < runner_->param_names().size(); ++i) {
      moments.emplace_back("exp_avg." + runner_->param_names()[i], opt.exp_avg()[i]);
      moments.emplace_back("exp_avg_sq." + runner_->param_names()[i], opt.exp_avg_sq()[i]);
    }
    weights::save_safetensors(tmp / "optimizer.safetensors", moments);
    json state{{"step", step},
               {"epoch", static_cast<double>(step) / steps_per_epoch_},
               {"total_steps", total_steps_},
               {"optimizer_steps", runner_->optimizer().steps_taken()},
               {"best_macro_f1", best_macro_f1_},
               {"window_loss", window_loss_},
               {"window_steps", window_steps_},
               {"seed", o_.seed},
               {"rng_state", hex_encode(rng_state())},
               {"world_size", group_.size()}};
    if (!rank_states.empty()) state["rank_rng_states"] = rank_states;
    if (!device_.is_cpu() && group_.size() == 1) state["device_rng_state"] = hex_encode(rng_state(device_));
    util::write_text_atomically(tmp / "trainer_state.json", state.dump(2) + "\n");
  });
  // Keep the newest few checkpoints: a full-size one is ~0.8 GB.
  if (o_.save_total_limit > 0) {
    const auto all = list_checkpoints(out_ / "checkpoints");
    for (std::size_t i = 0; i + static_cast<std::size_t>(o_.save_total_limit) < all.size(); ++i)
      fs::remove_all(all[i].second);
  }
}

void Trainer::append_metrics(const json& line) {
  if (!group_.is_writer()) return;
  std::ofstream out(out_ / "metrics.jsonl", std::ios::app);
  out << line.dump() << "\n";
  if (!out) throw std::runtime_error("cannot write " + (out_ / "metrics.jsonl").string());
}

void Trainer::write_training_args() const {
  if (!group_.is_writer()) return;
  json a{{"taxonomy", data::taxonomy_name(o_.taxonomy)},
         {"labels", labels_},
         {"data_dir", o_.data_dir},
         {"train_file", o_.train_file},
         {"dev_file", o_.dev_file},
         {"base", o_.base_dir},
         {"model", o_.model_dir},
         {"objective", o_.objective == Objective::multi_label ? "multi-label" : "single-label"},
         {"loss", loss_name(o_.loss)},
         {"focal_gamma", o_.focal_gamma},
         {"asl_gamma_neg", o_.asl.gamma_neg},
         {"asl_gamma_pos", o_.asl.gamma_pos},
         {"asl_clip", o_.asl.clip},
         {"learning_rate", o_.lr},
         {"batch_size", o_.batch_size},
         {"epochs", o_.epochs},
         {"max_steps", o_.max_steps ? json(*o_.max_steps) : json(nullptr)},
         {"total_steps", total_steps_},
         {"warmup_steps", schedule_.warmup_steps},
         {"weight_decay", o_.weight_decay},
         {"max_grad_norm", o_.max_grad_norm},
         {"grad_accum", o_.grad_accum},
         {"adam_beta1", 0.9},
         {"adam_beta2", 0.999},
         {"adam_epsilon", 1e-8},
         {"max_length", max_length_},
         {"shuffle", o_.shuffle},
         {"seed", o_.seed},
         {"dropout", o_.dropout ? json(*o_.dropout) : json(nullptr)},
         {"world_size", group_.size()},
         {"dist_backend", group_.size() > 1 ? json(o_.dist_backend) : json(nullptr)},
         {"precision", kernels::precision_name(kernels::parse_precision(o_.precision))},
         {"note", o_.note}};
  util::write_text_atomically(out_ / "training_args.json", a.dump(2) + "\n");
}

void Trainer::progress(int64_t step, double loss, double examples_per_s, double eta_s, bool force_line) {
  if (!group_.is_writer()) return;
  const int64_t epochs = (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_;
  const int64_t epoch = std::min(step / steps_per_epoch_ + 1, epochs);
  if (o_.on_step) o_.on_step(StepProgress{step, total_steps_, epoch, epochs, loss, examples_per_s});
  const std::string text = fmt::format("epoch {}/{} | step {}/{} | loss {:.4f} | {:.1f} ex/s | ETA {}", epoch, epochs,
                                       step, total_steps_, loss, examples_per_s, format_duration(eta_s));
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    if (force_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  } else if (force_line) {
    spdlog::info("{}", text);
  }
}

int Trainer::run() {
  if (o_.batch_size == 0 || o_.grad_accum <= 0 || o_.log_every <= 0)
    throw std::invalid_argument("{batch_size}, {grad_accum} and {log_every} must be positive");
  join_group();
  runtime::configure_threads(o_.threads ? o_.threads : threads_per_process());
  device_ = runtime::resolve_device(o_.device);
  if (device_.is_cuda() && group_.size() > 1) device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank_));
  if (group_.size() > 1 && o_.batch_size < static_cast<std::size_t>(group_.size()))
    throw std::invalid_argument("{batch_size} " + std::to_string(o_.batch_size) + " is the global batch: it must hold at least one example for each of the " +
                                std::to_string(group_.size()) + " ranks");
  tty_ = ::isatty(STDERR_FILENO) && group_.is_writer() && !o_.on_step;
  if (o_.resume) find_resume_checkpoint();
  check_output_target();
  load_model();
  load_data();
  plan_steps();
  build_step_runner();
  check_ranks_agree();
  prepare_output();
  const int64_t start = restore_checkpoint();
  if (start == 0) write_training_args();
  spdlog::info("{} steps ({} per epoch), batch {}, lr {}, warm-up {} steps{}", total_steps_, steps_per_epoch_,
               o_.batch_size, o_.lr, schedule_.warmup_steps, o_.note.empty() ? "" : " [" + o_.note + "]");

  const util::StopSignals signals(/*second_ends_process=*/true);  // the loop saves, then exits
  const auto t0 = std::chrono::steady_clock::now();
  int64_t examples = 0;
  for (int64_t step = start; step < total_steps_; ++step) {
    double grad_norm = 0;
    double loss = 0;
    try {
      loss = train_step(step, grad_norm);
    } catch (const NonFiniteError& e) {
      stop_diverged(step, std::string(e.what()) + " at step " + std::to_string(step + 1));
    }
    const double lr = schedule_.lr_at(step);
    window_loss_ += loss;
    ++window_steps_;
    examples += std::min<int64_t>(o_.batch_size * o_.grad_accum, static_cast<int64_t>(train_.ids.size()));
    const int64_t done = step + 1;
    const double epoch = static_cast<double>(done) / steps_per_epoch_;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = examples / std::max(secs, 1e-9);
    const double eta = secs / static_cast<double>(done - start) * static_cast<double>(total_steps_ - done);
    const bool log_now = done % o_.log_every == 0 || done == total_steps_;
    if (log_now) {
      append_metrics(json{{"step", done}, {"epoch", epoch}, {"loss", window_loss_ / window_steps_}, {"lr", lr},
                          {"grad_norm", grad_norm}});
      window_loss_ = 0;
      window_steps_ = 0;
    }
    progress(done, loss, rate, eta, log_now && !tty_);

    const bool epoch_end = done % steps_per_epoch_ == 0 || done == total_steps_;
    const bool eval_now = has_dev_ && ((eval_interval_ == 0 && epoch_end) || (eval_interval_ > 0 && done % eval_interval_ == 0));
    if (eval_now) {
      json metrics;
      try {
        metrics = evaluate();
      } catch (const NonFiniteError& e) {
        stop_diverged(done, std::string(e.what()) + " after step " + std::to_string(done));
      }
      append_metrics(json{{"step", done}, {"epoch", epoch}, {"eval", metrics}});
      const double f1 = metrics["macro"]["f1"].get<double>();
      if (tty_) std::fputc('\n', stderr);
      spdlog::info("eval at step {}: loss {:.4f}, macro-F1 {:.4f}, micro-F1 {:.4f}, exact match {:.4f}", done,
                   metrics["loss"].get<double>(), f1, metrics["micro"]["f1"].get<double>(),
                   metrics["exact_match"].get<double>());
      if (f1 > best_macro_f1_) {
        best_macro_f1_ = f1;
        if (group_.is_writer())
          util::write_directory_atomically(out_ / "best", true, [&](const fs::path& dir) {
            model::save_model_files(dir, *bundle_->model, *bundle_->tokenizer);
            util::write_text_atomically(dir / "eval.json", json{{"step", done}, {"eval", metrics}}.dump(2) + "\n");
          });
      }
    }
    const bool stop = group_.any(util::StopSignals::received() != 0);
    if ((o_.save_every > 0 && done % o_.save_every == 0) || (epoch_end && done != total_steps_) || stop)
      save_checkpoint(done);
    if (stop && done < total_steps_) {
      if (tty_) std::fputc('\n', stderr);
      spdlog::warn("stopped at step {}: checkpoint saved; continue with --resume", done);
      if (replaced_run_) {
        // Both stay: this run to resume, the one it replaces until this one finishes.
        replaced_run_->keep();
        spdlog::warn("the run this one replaces is kept in {} until it finishes", replaced_run_->path().string());
      }
      return 130;
    }
  }
  if (tty_) std::fputc('\n', stderr);
  if (group_.is_writer()) model::save_model_files(out_, *bundle_->model, *bundle_->tokenizer);
  if (has_dev_ && o_.calibrate && o_.objective == Objective::multi_label) calibrate_on_dev();
  if (replaced_run_) replaced_run_->discard();
  // A resumed replacement has finished now: the run it replaced goes.
  if (o_.resume && group_.is_writer() && util::discard_kept_run(out_))
    spdlog::info("removed the run this one replaced ({})", util::KeptRun::path_for(out_).string());
  spdlog::info("model written to {}", out_.string());
  return 0;
}

// A diverged run ends with an error, keeping the weights it had before (a checkpoint at `done`).
void Trainer::stop_diverged(int64_t done, const std::string& what) {
  if (tty_) std::fputc('\n', stderr);
  std::string kept;
  if (replaced_run_) {
    replaced_run_->restore();  // a failed replacement gives the old run back
    kept = "; the run it was replacing is back in " + out_.string();
  } else if (done > 0) {
    save_checkpoint(done);
    kept = "; the weights after step " + std::to_string(done) + " are in " +
           (out_ / "checkpoints" / ("step-" + std::to_string(done))).string();
  }
  throw std::runtime_error("training diverged: " + what + " (try a lower {lr})" + kept);
}

}  // namespace

int run_training(const TrainOptions& options) {
  Trainer trainer(options);
  try {
    return trainer.run();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // With several ranks, every one reports: say which.
    if (trainer.group().size() == 1) throw;
    const auto* c10 = dynamic_cast<const c10::Error*>(&e);
    std::string what = c10 ? c10->what_without_backtrace() : e.what();
    what = what.substr(0, what.find('\n'));
    if (what.rfind("rank ", 0) != 0) what = trainer.group().who() + ": " + what;
    // The same kind of failure, so that it keeps its exit code (util/errors.h).
    switch (c10 ? Failure::Internal : classify(e)) {
      case Failure::Setting:
        throw SettingError(what);
      case Failure::Input:
        throw InputError(what);
      case Failure::System:
        throw std::runtime_error(what);
      case Failure::Internal:
        throw InternalError(what);
    }
    throw InternalError(what);
  }
}

}  // namespace emotune::train
