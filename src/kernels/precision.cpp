#include <stdexcept>

#include "kernels/packed_linear.h"

namespace emotune::kernels {

Precision parse_precision(const std::string& name) {
  if (name.empty() || name == "none" || name == "f32" || name == "fp32") return Precision::Float32;
  if (name == "bf16") return Precision::BFloat16;
  if (name == "int8") return Precision::Int8;
  throw std::invalid_argument("{precision} must be f32 (fp32), bf16 or int8 (got '" + name + "')");
}

const char* precision_name(Precision p) {
  return p == Precision::Int8 ? "int8" : p == Precision::BFloat16 ? "bf16" : "f32";
}

}  // namespace emotune::kernels
