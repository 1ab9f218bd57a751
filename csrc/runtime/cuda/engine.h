// The CUDA engine (graph "llama" on one GPU). Compiled only with the CUDA backend.
#pragma once
#include <memory>
#include <string>

#include "runtime/engine.h"

namespace slm {

// Builds the llama graph on CUDA device `device`: uploads the weights (int4 matrices repacked to
// the GPU layout, int8-row lm_head, float32 vectors), allocates the fp16 KV cache. The host
// weights may be released afterwards, except the embedding (and learned positions), which the
// host reads one row per token. ConfigError names what this version does not run on CUDA.
std::unique_ptr<Engine> make_cuda_engine(const std::string& graph, EngineConfig config, ModelWeights weights,
                                         int device);

}  // namespace slm
