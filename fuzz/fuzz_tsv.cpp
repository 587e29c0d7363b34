// The GoEmotions TSV reader, strict and skipping bad lines, in every taxonomy.
#include <cstdint>
#include <stdexcept>

#include "data/goemotions.h"
#include "memfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  MemFile file(data, size);
  using emotune::data::Taxonomy;
  for (auto taxonomy : {Taxonomy::original, Taxonomy::ekman, Taxonomy::sentiment})
    for (bool skip : {false, true}) {
      try {
        emotune::data::read_goemotions_tsv(file.path(), taxonomy, skip);
      } catch (const std::exception&) {
      }
    }
  return 0;
}
