#include "runtime/engine.h"

#include <algorithm>
#include <string>

#include "runtime/error.h"

namespace slm {

std::unique_ptr<Engine> make_llama_engine(EngineConfig config, ModelWeights weights);  // models/llama.cpp
std::unique_ptr<Engine> make_rwkv_engine(EngineConfig config, ModelWeights weights);   // models/rwkv.cpp

void check_forward_input(const int32_t* tokens, int64_t n, const EngineConfig& config, int64_t n_past) {
  if (n <= 0) throw InvalidArgumentError("forward needs at least one token");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config.vocab_size) {
      throw InvalidTokenError("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(config.vocab_size) + ")");
    }
  }
  if (n > config.max_seq_len - n_past) {
    throw ContextLengthError("sequence of " + std::to_string(n_past + n) + " tokens exceeds max_seq_len " +
                             std::to_string(config.max_seq_len));
  }
}

void forward_in_chunks(const int32_t* tokens, int64_t n, int64_t chunk, LogitsMode mode, float* logits_out,
                       int64_t vocab_size, const ChunkFn& run_chunk) {
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    const bool last_chunk = start + len == n;
    const LogitsMode chunk_mode = mode == LogitsMode::All                    ? LogitsMode::All
                                  : (mode == LogitsMode::Last && last_chunk) ? LogitsMode::Last
                                                                             : LogitsMode::None;
    run_chunk(tokens + start, len, chunk_mode, mode == LogitsMode::All ? logits_out + start * vocab_size : logits_out);
  }
}

std::unique_ptr<Engine> make_engine(const std::string& graph, EngineConfig config, ModelWeights weights) {
  if (graph == "llama") return make_llama_engine(std::move(config), std::move(weights));
  if (graph == "rwkv") return make_rwkv_engine(std::move(config), std::move(weights));
  throw ConfigError("no C++ graph named '" + graph + "' (available: llama, rwkv)");
}

}  // namespace slm
