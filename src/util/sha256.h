// SHA-256 of files (OpenSSL), for report checksums and download verification.
#pragma once

#include <filesystem>
#include <string>

namespace emotune::util {

// Lower-case hex digest of the file's bytes; throws naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace emotune::util
