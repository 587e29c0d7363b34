#include "cli/commands.h"
#include "runtime/runtime.h"

int main(int argc, char** argv) {
  emotune::runtime::rerun_with_better_blas_kernels(argv);
  return emotune::cli::run(argc, argv);
}
