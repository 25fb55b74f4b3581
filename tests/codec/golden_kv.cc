#include "tests/codec/golden_kv.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "common/codec/level_table.h"
#include "common/codec/profile.h"
#include "common/tensor/safetensors.h"

namespace ctx::codec::testing {

GoldenKv LoadGoldenKv() {
  auto file = tensor::SafetensorsFile::Open(std::string(CTX_SOURCE_DIR) +
                                            "/models/golden/tiny-llama.safetensors");
  REQUIRE(file.ok());
  GoldenKv kv;
  int layers = 0;
  while ((*file)->Find("past_key_values." + std::to_string(layers) + ".key")) ++layers;
  REQUIRE(layers > 0);
  const tensor::TensorView* first = (*file)->Find("past_key_values.0.key");
  REQUIRE(first->shape.size() == 4);
  const int h = static_cast<int>(first->shape[1]);
  const int t = static_cast<int>(first->shape[2]);
  const int d = static_cast<int>(first->shape[3]);
  kv.geometry = KvGeometry{layers, h, d};
  kv.tokens = static_cast<uint32_t>(t);
  const size_t c = static_cast<size_t>(h) * d;
  kv.data.resize(static_cast<size_t>(layers) * 2 * t * c);
  for (int l = 0; l < layers; ++l) {
    for (int part = 0; part < 2; ++part) {
      const std::string name =
          "past_key_values." + std::to_string(l) + (part == 0 ? ".key" : ".value");
      const tensor::TensorView* view = (*file)->Find(name);
      REQUIRE(view != nullptr);
      auto values = view->ToFloat();
      REQUIRE(values.ok());
      float* dst = kv.data.data() + (static_cast<size_t>(2 * l + part)) * t * c;
      for (int hh = 0; hh < h; ++hh)
        for (int tt = 0; tt < t; ++tt)
          for (int dd = 0; dd < d; ++dd)
            dst[tt * c + hh * d + dd] = (*values)[(static_cast<size_t>(hh) * t + tt) * d + dd];
    }
  }
  const tensor::TensorView* ids = (*file)->Find("input_ids");
  REQUIRE(ids != nullptr);
  REQUIRE(ids->dtype == tensor::DType::kI64);
  REQUIRE(ids->NumElements() == t);
  for (int i = 0; i < t; ++i) {
    int64_t id = 0;
    std::memcpy(&id, ids->bytes.data() + 8 * i, 8);
    kv.ids.push_back(static_cast<int32_t>(id));
  }
  return kv;
}

const GoldenKv& Golden() {
  static const GoldenKv kv = LoadGoldenKv();
  return kv;
}

KvCodec GoldenInSampleCodec() {
  const GoldenKv& kv = Golden();
  ProfileBuilder b(TestFingerprint(), kv.geometry, DefaultLevels(kv.geometry.layers),
                   DefaultLevelIndex());
  REQUIRE(b.AddChunk(kv.View(TestFingerprint())).ok());
  auto codec = KvCodec::Create(b.Build());
  REQUIRE(codec.ok());
  return *std::move(codec);
}

}  // namespace ctx::codec::testing
