// Reading inputs the way every emotune command does: one text per line, split on '\n' only.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace emotune::cli {

// Calls `fn` for each line of `path` ("" or "-" = stdin). A final newline ends the last
// line rather than starting an empty one. Throws InputError naming an unreadable file.
void for_each_input_line(const std::string& path, const std::function<void(const std::string&)>& fn);

}  // namespace emotune::cli
