// Attention helpers shared by every ISA (slm/kernels/attention.h). Compiled without ISA flags.
#include <cstdint>

#include "slm/kernels/attention.h"

namespace slm::kernels {

namespace {
int64_t round_up16(int64_t v) { return (v + 15) / 16 * 16; }
}  // namespace

int64_t attention_scratch_floats(int64_t n_queries, int64_t n_keys, int64_t head_dim) {
  (void)head_dim;
  return n_queries * round_up16(n_keys) + round_up16(n_queries);
}

void attention_each_query(const AttentionArgs& a, void (*one)(const AttentionArgs&)) {
  AttentionArgs q = a;
  q.n_queries = 1;
  for (int64_t r = 0; r < a.n_queries; ++r) {
    q.q = a.q + r * a.q_stride;
    q.out = a.out + r * a.out_stride;
    one(q);
  }
}

}  // namespace slm::kernels
