// tokenizer.json files: whatever loads must then encode; whatever does not must throw, not crash.
#include <cstdint>
#include <stdexcept>

#include "memfile.h"
#include "text/tokenizer.h"

#include <unistd.h>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  // A directory holding only tokenizer.json: the memfd is linked in through a symlink.
  static const std::string dir = [] {
    char tmpl[] = "/tmp/emotune-fuzz-tokjson-XXXXXX";
    return std::string(mkdtemp(tmpl));
  }();
  MemFile file(data, size);
  const std::string link = dir + "/tokenizer.json";
  unlink(link.c_str());
  if (symlink(file.path().c_str(), link.c_str()) != 0) return 0;
  try {
    const auto tokenizer = emotune::text::load_tokenizer(dir);
    tokenizer->encode("Hello, world! It's <mask> 😀 中文", 16);
  } catch (const std::exception&) {
  }
  return 0;
}
