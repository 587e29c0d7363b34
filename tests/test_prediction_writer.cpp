// `emotune predict`'s three output formats (infer/prediction_writer.h).
#include <gtest/gtest.h>

#include <sstream>

#include "infer/prediction_writer.h"
#include "util/errors.h"

namespace {

using emotune::infer::Prediction;
using emotune::infer::PredictionFormat;
using emotune::infer::PredictionWriter;

const std::vector<std::string> kLabels{"joy", "anger", "neutral"};

Prediction example() {
  Prediction p;
  p.probs = {0.9f, 0.2f, 0.6f};
  p.logits = {2.5f, -1.5f, 0.5f};
  return p;
}

TEST(PredictionWriter, JsonLinesHoldLabelsScoresAndWhatWasAskedFor) {
  std::ostringstream out;
  PredictionWriter w(out, PredictionFormat::Jsonl, kLabels, {0.5f, 0.5f, 0.5f}, 0, /*logits=*/false);
  w.write("so happy", example());
  auto p = example();
  p.truncated = true;
  PredictionWriter top1(out, PredictionFormat::Jsonl, kLabels, {0.5f, 0.5f, 0.5f}, 1, /*logits=*/true,
                        [](const std::string& text, const std::vector<std::size_t>& ids) {
                          return nlohmann::ordered_json::array({{{"text_length", text.size()}, {"labels", ids.size()}}});
                        });
  top1.write("so happy", p);
  EXPECT_EQ(out.str(),
            "{\"labels\":[\"joy\",\"neutral\"],\"scores\":{\"joy\":0.9,\"anger\":0.2,\"neutral\":0.6}}\n"
            "{\"labels\":[\"joy\"],\"scores\":{\"joy\":0.9,\"anger\":0.2,\"neutral\":0.6},\"truncated\":true,"
            "\"logits\":[2.5,-1.5,0.5],\"explanations\":[{\"text_length\":8,\"labels\":1}]}\n");
}

TEST(PredictionWriter, TsvHasAHeaderAndKeepsOneTextOnOneLine) {
  std::ostringstream out;
  PredictionWriter w(out, PredictionFormat::Tsv, kLabels, {0.95f, 0.1f, 0.5f}, 0, false);
  w.write("tabs\tand\rreturns", example());
  EXPECT_EQ(out.str(), "text\tlabels\tjoy\tanger\tneutral\ntabs and returns\tneutral,anger\t0.9\t0.2\t0.6\n");
}

TEST(PredictionWriter, PrettyShowsBarsBestFirstAndMarksWhatPasses) {
  std::ostringstream out;
  PredictionWriter w(out, PredictionFormat::Pretty, kLabels, {0.5f, 0.5f, 0.7f}, 2, false);
  w.write("so happy", example());
  std::string bars27, bars18;
  for (int i = 0; i < 27; ++i) bars27 += "\u2588";
  for (int i = 0; i < 18; ++i) bars18 += "\u2588";
  EXPECT_EQ(out.str(), "so happy\n"
                       "  joy     " + bars27 + "    0.900  *\n"
                       "  neutral " + bars18 + std::string(12, ' ') + " 0.600\n");
}

TEST(PredictionWriter, PrettyPrintsNoEscapeSequencesFromTheText) {
  std::ostringstream out;
  PredictionWriter w(out, PredictionFormat::Pretty, kLabels, {0.5f, 0.5f, 0.7f}, 2, false);
  w.write("hi\x1b[2J\x1b]0;title\x07", example());
  EXPECT_EQ(out.str().substr(0, out.str().find('\n')), "hi\\x1b[2J\\x1b]0;title\\x07");
}

TEST(PredictionWriter, UnknownFormatNamesTheSetting) {
  EXPECT_THROW(
      {
        try {
          emotune::infer::parse_prediction_format("xml");
        } catch (const emotune::SettingError& e) {
          EXPECT_STREQ(e.what(), "{format} must be jsonl, tsv or pretty, not 'xml'");
          throw;
        }
      },
      emotune::SettingError);
}

}  // namespace
