// Shared helpers for the model tests: the bundled models (loaded once per binary) and the
// HF golden vectors in models/golden/<model>.safetensors.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/model/model.h"
#include "common/tensor/safetensors.h"

namespace ctx::model::testing {

inline std::string ModelDir(const std::string& name) {
  return std::string(CTX_SOURCE_DIR) + "/models/" + name;
}

// Models are immutable and shareable: load each once for the whole binary.
inline const Model& GetModel(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> models;
  auto it = models.find(name);
  if (it == models.end()) {
    auto m = Model::Load(ModelDir(name));
    INFO(m.status().ToString());
    REQUIRE(m.ok());
    it = models.emplace(name, std::move(*m)).first;
  }
  return *it->second;
}

class Golden {
 public:
  explicit Golden(const std::string& model) {
    auto f = tensor::SafetensorsFile::Open(std::string(CTX_SOURCE_DIR) + "/models/golden/" + model +
                                           ".safetensors");
    REQUIRE(f.ok());
    file_ = std::move(*f);
  }
  const tensor::TensorView& View(const std::string& name) const {
    const tensor::TensorView* t = file_->Find(name);
    INFO(name);
    REQUIRE(t != nullptr);
    return *t;
  }
  std::vector<float> Floats(const std::string& name) const {
    auto v = View(name).ToFloat();
    REQUIRE(v.ok());
    return *v;
  }
  std::vector<int32_t> Ids(const std::string& name) const {
    const tensor::TensorView& t = View(name);
    REQUIRE(t.dtype == tensor::DType::kI64);
    std::vector<int32_t> out(t.bytes.size() / 8);
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.bytes.data() + 8 * i, 8);
      out[i] = static_cast<int32_t>(v);
    }
    return out;
  }

 private:
  std::unique_ptr<tensor::SafetensorsFile> file_;
};

inline double MaxAbsDiff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// max |a - b| / max(1, |b|): an absolute error for small values, relative for large ones
// (tiny-llama's logits reach ~30, where one float ulp is 2e-6).
inline double MaxScaledDiff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    const double scale = std::max(1.0, std::fabs(static_cast<double>(b[i])));
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]) / scale);
  }
  return m;
}

// The golden KV of all layers (past_key_values.{l}.key/value, [1][kv_heads][T][D]) in our
// chunk layout: for each layer, K [T][kv_heads*D] then V [T][kv_heads*D].
inline std::vector<float> GoldenKvChunk(const Golden& g, const LlamaConfig& c, int T) {
  const int D = c.head_dim, KVH = c.num_kv_heads, KVD = c.kv_dim();
  std::vector<float> chunk;
  for (int l = 0; l < c.num_layers; ++l) {
    for (const char* kind : {"key", "value"}) {
      const std::vector<float> hf = g.Floats("past_key_values." + std::to_string(l) + "." + kind);
      REQUIRE(hf.size() == static_cast<size_t>(KVH) * T * D);
      std::vector<float> ours(static_cast<size_t>(T) * KVD);
      for (int h = 0; h < KVH; ++h)
        for (int t = 0; t < T; ++t)
          for (int d = 0; d < D; ++d)
            ours[static_cast<size_t>(t) * KVD + h * D + d] =
                hf[(static_cast<size_t>(h) * T + t) * D + d];
      chunk.insert(chunk.end(), ours.begin(), ours.end());
    }
  }
  return chunk;
}

}  // namespace ctx::model::testing
