// The kernels (src/kernels/) the networks are built from, named in the model's namespace so that a
// model reads like the math: Linear, Dropout, packed attention, the precisions of packed layers.
#pragma once

#include "kernels/attention_kernel.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/packed_linear.h"

namespace emotune::model {

using kernels::Activation;
using kernels::Dropout;
using kernels::DropoutImpl;
using kernels::Linear;
using kernels::LinearImpl;
using kernels::PackedLinear;
using kernels::PackedSequences;
using kernels::Precision;
using kernels::Products;
using kernels::ScoreBias;

}  // namespace emotune::model
