#include "runtime/engine.h"

#include "runtime/error.h"

namespace slm {

std::unique_ptr<Engine> make_llama_engine(EngineConfig config, ModelWeights weights);  // models/llama.cpp
std::unique_ptr<Engine> make_rwkv_engine(EngineConfig config, ModelWeights weights);   // models/rwkv.cpp

std::unique_ptr<Engine> make_engine(const std::string& graph, EngineConfig config, ModelWeights weights) {
  if (graph == "llama") return make_llama_engine(std::move(config), std::move(weights));
  if (graph == "rwkv") return make_rwkv_engine(std::move(config), std::move(weights));
  throw ConfigError("no C++ graph named '" + graph + "' (available: llama, rwkv)");
}

}  // namespace slm
