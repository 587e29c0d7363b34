#include "cli/commands.h"
#include "model/runtime.h"

int main(int argc, char** argv) {
  emotune::model::rerun_with_better_blas_kernels(argv);
  return emotune::cli::run(argc, argv);
}
