#include "cli/io.h"

#include <fstream>
#include <iostream>

#include "cli/commands.h"

namespace emotune::cli {

void for_each_input_line(const std::string& path, const std::function<void(const std::string&)>& fn) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!path.empty() && path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw InputError("cannot read input file " + path);
    in = &file;
  }
  std::string line;
  while (std::getline(*in, line, '\n')) fn(line);
  if (in->bad()) throw InputError("error while reading " + (path.empty() ? std::string("stdin") : path));
}

}  // namespace emotune::cli
