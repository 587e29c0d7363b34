// The readers of what comes from outside, tested on their own (the subprocess suites test them
// through the commands): GoEmotions TSV files, request bodies, hub names and the caches, and the
// atomic writes that must never leave a half-written file.
#include <gtest/gtest.h>

#include "expect_error.h"
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "data/goemotions.h"
#include "fetch/resolve.h"
#include "serve/request.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace {

namespace fs = std::filesystem;

// A fresh directory, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "emotune-test-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& contents) const {
    std::ofstream(path / name, std::ios::binary) << contents;
    return path / name;
  }
};

std::string contents(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using emotune::tests::message_of;

// ---- GoEmotions TSV ----

TEST(GoEmotionsTsv, ReadsTextsAndMapsLabelsToTheTaxonomy) {
  TempDir d;
  const auto file = d.write("train.tsv", "so happy\t17\tc1\r\nwhat\t26,27\tc2\n");
  const auto original = emotune::data::read_goemotions_tsv(file, emotune::data::Taxonomy::original, false);
  ASSERT_EQ(original.examples.size(), 2u);
  EXPECT_EQ(original.examples[0].text, "so happy");  // the Windows line end is not part of the text
  EXPECT_EQ(original.examples[0].labels, std::vector<int>{17});
  EXPECT_EQ(original.examples[1].labels, (std::vector<int>{26, 27}));
  const auto sentiment = emotune::data::read_goemotions_tsv(file, emotune::data::Taxonomy::sentiment, false);
  EXPECT_EQ(sentiment.examples[0].labels.size(), 1u);  // joy: positive
  EXPECT_LT(sentiment.examples[0].labels[0], 4);
}

TEST(GoEmotionsTsv, ABadLineIsNamedWithItsNumberOrCountedWhenSkipped) {
  TempDir d;
  const auto file = d.write("dev.tsv", "fine\t1\tc1\nno labels here\nbad id\t28\tc3\nnot a number\tx\tc4\nok\t2\tc5\n");
  const auto what = message_of([&] { emotune::data::read_goemotions_tsv(file, emotune::data::Taxonomy::original, false); });
  EXPECT_EQ(what, file.string() + ":2: missing the label column (use {skip_bad_lines} to skip such lines)");
  EXPECT_THROW_MESSAGE(emotune::data::read_goemotions_tsv(file, emotune::data::Taxonomy::original, false),
                       emotune::InputError, ":2: missing the label column");
  const auto ds = emotune::data::read_goemotions_tsv(file, emotune::data::Taxonomy::original, true);
  EXPECT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.skipped_lines, 3u);
  const auto invalid = d.write("utf8.tsv", std::string("caf\xc3\t1\tc1\n"));
  EXPECT_NE(message_of([&] { emotune::data::read_goemotions_tsv(invalid, emotune::data::Taxonomy::original, false); })
                .find(":1: invalid UTF-8"),
            std::string::npos);
  EXPECT_THROW_MESSAGE(emotune::data::read_goemotions_tsv(d.path / "missing.tsv", emotune::data::Taxonomy::original, false),
                       emotune::InputError, "missing.tsv");
}

// ---- request bodies ----

TEST(Requests, PredictTakesOneTextOrAListWithinTheLimits) {
  using emotune::serve::HttpError;
  emotune::serve::RequestLimits limits;
  limits.max_texts = 2;
  limits.max_text_chars = 10;
  const auto one = emotune::serve::parse_predict_request(R"({"text": "hi", "top_k": 3, "threshold": 0.25})", limits);
  EXPECT_EQ(one.texts, std::vector<std::string>{"hi"});
  EXPECT_EQ(one.top_k, 3u);
  EXPECT_FLOAT_EQ(*one.threshold, 0.25f);
  EXPECT_EQ(emotune::serve::parse_predict_request(R"({"texts": ["a", "b"]})", limits).texts.size(), 2u);
  auto status_of = [&](const std::string& body) {
    try {
      emotune::serve::parse_predict_request(body, limits);
    } catch (const HttpError& e) {
      return e.status;
    }
    return 200;
  };
  EXPECT_EQ(status_of(R"({"texts": ["a", "b", "c"]})"), 400);  // too_many_texts
  EXPECT_EQ(status_of(R"({"text": "far more than ten characters"})"), 413);
  EXPECT_EQ(status_of(R"({"text": "hi", "texts": ["a"]})"), 400);
  EXPECT_EQ(status_of(R"({"text": 5})"), 400);
  EXPECT_EQ(status_of("{\"text\": \"\xff\"}"), 400);
  EXPECT_EQ(status_of("[1, 2]"), 400);
  EXPECT_EQ(status_of("{"), 400);
  EXPECT_EQ(status_of(R"({"text": "hi", "threshold": 2})"), 400);
  EXPECT_EQ(status_of(R"({"text": "hi", "taxonomy": "ekman"})"), 400);  // the model has no GoEmotions labels
  EXPECT_FALSE(one.long_text.has_value());  // the server's --long-text
  EXPECT_EQ(*emotune::serve::parse_predict_request(R"({"text": "hi", "long_text": "window"})", limits).long_text, "window");
  EXPECT_EQ(status_of(R"({"text": "hi", "long_text": "slide"})"), 400);
  EXPECT_EQ(status_of(R"({"text": "hi", "long_text": true})"), 400);
}

TEST(Requests, ExplainNamesEachLabelOnceAndBoundsTheSteps) {
  emotune::serve::RequestLimits limits;
  const auto r = emotune::serve::parse_explain_request(
      R"({"text": "hi", "label": ["joy", "anger", "joy"], "method": "occlusion", "steps": 8})", limits, 64);
  EXPECT_EQ(r.labels, (std::vector<std::string>{"joy", "anger"}));
  EXPECT_EQ(r.method, "occlusion");
  EXPECT_EQ(r.steps, 8u);
  EXPECT_EQ(emotune::serve::parse_explain_request(R"({"text": "hi"})", limits, 16).steps, 16u);
  EXPECT_THROW_MESSAGE(emotune::serve::parse_explain_request(R"({"text": "hi", "steps": 65})", limits, 64),
                       emotune::serve::HttpError, "steps");
  EXPECT_THROW_MESSAGE(emotune::serve::parse_explain_request(R"({"text": "hi", "baseline": "zero"})", limits, 64),
                       emotune::serve::HttpError, "baseline");
}

// ---- hub names and the caches ----

struct ScopedEnv {
  std::string name;
  ScopedEnv(const std::string& n, const std::string& value) : name(n) { ::setenv(n.c_str(), value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

TEST(FetchResolution, HubNamesHaveTheHubsFormAndNothingEscapesTheCache) {
  using emotune::fetch::looks_like_repo_id;
  for (const char* ok : {"distilbert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2", "a.b_c-1/x"})
    EXPECT_TRUE(looks_like_repo_id(ok)) << ok;
  for (const char* bad : {"", "../x", "/abs", "a/b/c", "a..b", ".hidden", "org/", "x y"})
    EXPECT_FALSE(looks_like_repo_id(bad)) << bad;

  TempDir d;
  const ScopedEnv home("EMOTUNE_HOME", (d.path / "emotune").string()), hf("HF_HOME", (d.path / "hf").string());
  emotune::fetch::FetchOptions o;
  o.offline = true;
  o.revision = "../../etc";
  EXPECT_NE(message_of([&] { emotune::fetch::fetch_model("org/name", o, "--base"); }).find("{revision}"),
            std::string::npos);
  o.revision = "main";
  const auto what = message_of([&] { emotune::fetch::fetch_model("org/name", o, "--base"); });
  EXPECT_NE(what.find("org/name is not in the emotune cache"), std::string::npos) << what;
  EXPECT_NE(what.find("{offline}"), std::string::npos) << what;
  // A directory that exists is used as it is; a name that is neither is refused with one line.
  fs::create_directory(d.path / "local");
  EXPECT_EQ(emotune::fetch::resolve_model((d.path / "local").string(), o, "--model"), d.path / "local");
  EXPECT_EQ(emotune::fetch::resolve_data_dir((d.path / "local").string(), o), d.path / "local");
  EXPECT_NE(message_of([&] { emotune::fetch::resolve_data_dir("no-such-dir", o); }).find("no-such-dir"),
            std::string::npos);
}

// ---- atomic writes ----

TEST(AtomicFiles, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir d;
  const auto file = d.write("thresholds.json", "old");
  emotune::util::write_text_atomically(file, "new");
  EXPECT_EQ(contents(file), "new");
  auto half_then_fail = [](std::ostream& out) {
    out << "half";
    throw std::runtime_error("disk full");
  };
  EXPECT_THROW_MESSAGE(emotune::util::write_file_atomically(file, half_then_fail), std::runtime_error, "disk full");
  EXPECT_EQ(contents(file), "new");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(d.path)) ++entries;
  EXPECT_EQ(entries, 1u) << "a temporary was left behind";
}

TEST(AtomicFiles, ADirectoryIsReplacedOnlyWhenAskedAndWhole) {
  TempDir d;
  const auto run = d.path / "run";
  emotune::util::write_directory_atomically(run, false, [](const fs::path& p) { std::ofstream(p / "a") << "1"; });
  EXPECT_TRUE(fs::exists(run / "a"));
  EXPECT_THROW_MESSAGE(emotune::util::write_directory_atomically(run, false, [](const fs::path&) {}), std::runtime_error,
                       "already exists");
  auto killed_halfway = [](const fs::path& p) {
    std::ofstream(p / "b") << "2";
    throw std::runtime_error("killed halfway");
  };
  EXPECT_THROW_MESSAGE(emotune::util::write_directory_atomically(run, true, killed_halfway), std::runtime_error,
                       "killed halfway");
  EXPECT_TRUE(fs::exists(run / "a"));  // the old run is back
  EXPECT_FALSE(fs::exists(run / "b"));
  emotune::util::write_directory_atomically(run, true, [](const fs::path& p) { std::ofstream(p / "b") << "2"; });
  EXPECT_FALSE(fs::exists(run / "a"));
  EXPECT_TRUE(fs::exists(run / "b"));
}

// This process's writer tag, read off the temporary name a real write uses.
std::string writer_tag(const fs::path& dir) {
  std::string tag;
  emotune::util::write_file_atomically(dir / "probe", [&](std::ostream&) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      const auto at = name.find(".emotune-tmp.");
      if (at != std::string::npos) tag = name.substr(at + 13, 12);
    }
  });
  fs::remove(dir / "probe");
  return tag;
}

TEST(AtomicFiles, CleanUpTouchesOnlyDeadEmotuneWritersOfThisHost) {
  TempDir d;
  const std::string tag = writer_tag(d.path);
  ASSERT_EQ(tag.size(), 12u);
  const std::string dead = "." + tag + ".999999999";  // a pid above pid_max: not alive
  // A writer moved "run" aside and died before moving the new one in: the old one is the only copy.
  fs::create_directory(d.path / (".run.emotune-old" + dead));
  std::ofstream(d.path / (".run.emotune-old" + dead) / "model.safetensors") << "w";
  std::ofstream(d.path / (".notes.emotune-tmp" + dead)) << "half";
  // Not ours to touch: another program's names, another host's (or container's) writer, a living
  // writer, and a kept run.
  const std::vector<std::string> others{".notes.tmp.999999999", ".run.old.999999999",
                                        ".x.emotune-tmp.0123456789ab.999999999",
                                        ".y.emotune-tmp." + tag + "." + std::to_string(::getpid()), ".z.emotune-kept"};
  for (const auto& name : others) std::ofstream(d.path / name) << "keep me";
  EXPECT_EQ(emotune::util::clean_up_after_dead_writers(d.path), 2u);
  EXPECT_TRUE(fs::exists(d.path / "run" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(d.path / (".notes.emotune-tmp" + dead)));
  for (const auto& name : others) EXPECT_TRUE(fs::exists(d.path / name)) << name;
  // The old copy of a run whose new one is complete (the writer died after the swap) goes.
  fs::create_directory(d.path / (".run.emotune-old" + dead));
  EXPECT_EQ(emotune::util::clean_up_after_dead_writers(d.path), 1u);
  EXPECT_TRUE(fs::exists(d.path / "run" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(d.path / (".run.emotune-old" + dead)));
}

TEST(AtomicFiles, AReplacedRunIsKeptUntilItsReplacementFinishes) {
  TempDir d;
  const auto run = d.path / "run";
  auto fresh_run = [&](const char* content) {
    fs::create_directories(run);
    std::ofstream(run / "model.safetensors") << content;
  };
  auto content = [&](const fs::path& dir) { return contents(dir / "model.safetensors"); };
  fresh_run("old");
  { emotune::util::KeptRun kept(run); }  // the new run failed: the old one is back
  EXPECT_EQ(content(run), "old");
  {
    emotune::util::KeptRun kept(run);
    fresh_run("new");
    kept.discard();  // finished
  }
  EXPECT_EQ(content(run), "new");
  EXPECT_FALSE(fs::exists(emotune::util::KeptRun::path_for(run)));
  {
    emotune::util::KeptRun kept(run);
    fresh_run("stopped");
    kept.keep();  // stopped: both stay
  }
  EXPECT_EQ(content(run), "stopped");
  EXPECT_EQ(content(emotune::util::KeptRun::path_for(run)), "new");
  {
    // Replaced again before the stopped one finished: the complete "new" stays kept, "stopped" goes.
    emotune::util::KeptRun kept(run);
    EXPECT_FALSE(fs::exists(run));
    EXPECT_EQ(content(kept.path()), "new");
    fresh_run("again");
    kept.keep();
  }
  EXPECT_TRUE(emotune::util::discard_kept_run(run));  // the resumed one finished
  EXPECT_FALSE(emotune::util::discard_kept_run(run));
  EXPECT_EQ(content(run), "again");
}

}  // namespace
