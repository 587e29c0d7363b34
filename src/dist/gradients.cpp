#include "dist/gradients.h"

#include <ATen/ATen.h>

namespace emotune::dist {

GradientReducer::GradientReducer(Group& group, std::vector<torch::Tensor> params,
                                 std::optional<std::size_t> token_table, std::size_t bucket_bytes)
    : group_(group), params_(std::move(params)), token_table_(token_table) {
  if (group_.size() == 1) return;
  Bucket current;
  std::size_t bytes = 0;
  auto close = [&] {
    if (current.members.empty()) return;
    int64_t n = 0;
    for (const auto i : current.members) n += params_[i].numel();
    current.flat = torch::zeros({n + static_cast<int64_t>(current.members.size())}, params_[current.members[0]].options());
    buckets_.push_back(std::move(current));
    current = Bucket{};
    bytes = 0;
  };
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (token_table_ == i) continue;
    if (bytes > 0 && bytes + params_[i].nbytes() > bucket_bytes) close();
    current.members.push_back(i);
    bytes += params_[i].nbytes();
  }
  close();
}

void GradientReducer::pack(Bucket& b) const {
  int64_t at = 0;
  const int64_t flags = b.flat.numel() - static_cast<int64_t>(b.members.size());
  for (std::size_t k = 0; k < b.members.size(); ++k) {
    const auto& p = params_[b.members[k]];
    auto part = b.flat.narrow(0, at, p.numel());
    const auto& g = p.grad();
    if (g.defined())
      part.copy_(g.reshape(-1));
    else
      part.zero_();
    b.flat[flags + static_cast<int64_t>(k)].fill_(g.defined() ? 1.0 : 0.0);
    at += p.numel();
  }
}

void GradientReducer::unpack(const Bucket& b) {
  int64_t at = 0;
  const int64_t flags = b.flat.numel() - static_cast<int64_t>(b.members.size());
  const auto had_gradient = b.flat.narrow(0, flags, static_cast<int64_t>(b.members.size())).to(torch::kCPU);
  const float* had = had_gradient.data_ptr<float>();
  for (std::size_t k = 0; k < b.members.size(); ++k) {
    auto& p = params_[b.members[k]];
    const auto sum = b.flat.narrow(0, at, p.numel()).view(p.sizes());
    at += p.numel();
    if (had[k] == 0) continue;
    if (p.grad().defined())
      p.mutable_grad().copy_(sum);
    else
      p.mutable_grad() = sum.clone();
  }
}

// The rows any rank touched (the same sorted list on every rank) travel; every other row of the
// table's gradient is zero on every rank already.
void GradientReducer::reduce_token_rows(const torch::Tensor& token_ids) {
  auto& table = params_[*token_table_];
  const auto mine = token_ids.defined() ? std::get<0>(at::_unique(token_ids.reshape(-1).to(torch::kCPU, torch::kInt64), true))
                                        : torch::empty({0}, torch::kInt64);
  const auto rows = std::get<0>(at::_unique(group_.all_gather_rows(mine), true)).to(table.device());
  const int64_t n = rows.size(0), width = table.numel() / std::max<int64_t>(1, table.size(0));
  auto flat = torch::zeros({n * width + 1}, table.options());
  if (table.grad().defined()) {
    flat.narrow(0, 0, n * width).view({n, width}).copy_(table.grad().index_select(0, rows));
    flat[n * width].fill_(1.0);
  }
  std::vector<torch::Tensor> one{flat};
  group_.all_reduce_sum(one);
  if (flat[n * width].item<float>() == 0) return;
  if (!table.grad().defined()) table.mutable_grad() = torch::zeros_like(table);
  table.mutable_grad().index_copy_(0, rows, flat.narrow(0, 0, n * width).view({n, width}));
}

void GradientReducer::reduce(const torch::Tensor& token_ids) {
  if (group_.size() == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flats;
  for (auto& b : buckets_) {
    pack(b);
    flats.push_back(b.flat);
  }
  group_.all_reduce_sum(flats);
  for (const auto& b : buckets_) unpack(b);
  if (token_table_) reduce_token_rows(token_ids);
}

}  // namespace emotune::dist
