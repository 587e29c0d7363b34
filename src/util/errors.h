// The kinds of failure the library reports, and the one place that says which kind an exception
// is. The library throws these without the CLI's or the server's wording; each boundary translates
// them once: cli/errors.cpp into a message and an exit code, serve/server.cpp into an HTTP status.
//
// Messages name the settings they are about as {setting} ("{max_length} 600 exceeds the model's
// 512 positions"): the CLI shows --max-length, the server the request field max_length.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace emotune {

// A value the caller chose (a flag, a request field, an option) that emotune cannot use.
struct SettingError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Something the caller gave that is missing, unreadable or malformed: a file, a data set, a model
// directory, a request body; or something the caller asked for that this build or machine lacks
// (a GPU, oneDNN, bfloat16 kernels).
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An input that is not there: a model or data directory, a data file, a vocabulary the caller named.
// An Input failure; its own type so that the Python package can raise FileNotFoundError for it.
struct NotFoundError : InputError {
  using InputError::InputError;
};

// Work given up because whoever asked for it has gone (a client that closed its connection); there
// is no one to tell, so the boundaries only count it.
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failure of emotune's own: a condition its code should have made impossible.
struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

enum class Failure {
  Setting,   // SettingError and std::invalid_argument: the caller's choice
  Input,     // InputError: the caller's inputs
  System,    // other std::runtime_error (files, the operating system) and std::bad_alloc
  Internal,  // InternalError and everything else (std::logic_error, libtorch's c10::Error, JSON library errors)
};

Failure classify(const std::exception& e);

// A message with its {setting} names written for a reader: as_flags gives "--max-length", else
// "max_length". Braces around anything but a lower-case name stay as they are.
std::string render_settings(const std::string& message, bool as_flags);

// `text` safe to print on a terminal: control characters (C0 but tab, DEL, and C1 such as the CSI
// that starts escape sequences) become \xNN or \u{NN}, so that input quoted in a message cannot
// move the cursor, rewrite the screen or set the window title.
std::string printable(const std::string& text);

}  // namespace emotune
