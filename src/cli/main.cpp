#include "cli/commands.h"

int main(int argc, char** argv) { return emotune::cli::run(argc, argv); }
