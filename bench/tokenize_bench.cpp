// Tokenizer throughput on GoEmotions: every text of the given TSV files, one thread.
// Usage: tokenize_bench MODEL_DIR FILE.tsv [FILE.tsv ...]   -> one JSON line
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: tokenize_bench MODEL_DIR FILE.tsv [FILE.tsv ...]\n";
    return 2;
  }
  const auto tokenizer = emotune::text::load_tokenizer(argv[1]);
  std::vector<std::string> texts;
  std::size_t bytes = 0;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i]);
    if (!in) {
      std::cerr << "cannot read " << argv[i] << "\n";
      return 2;
    }
    std::string line;
    while (std::getline(in, line)) {
      texts.push_back(line.substr(0, line.find('\t')));
      bytes += texts.back().size();
    }
  }
  double best = 1e30;
  std::size_t tokens = 0;
  for (int rep = 0; rep < 5; ++rep) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& t : texts) tokens += tokenizer->encode(t, 512).ids.size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  std::cout << "{\"texts\":" << texts.size() << ",\"bytes\":" << bytes << ",\"tokens\":" << tokens
            << ",\"seconds\":" << best << ",\"mb_per_s\":" << bytes / best / 1e6
            << ",\"texts_per_s\":" << texts.size() / best << "}\n";
  return 0;
}
