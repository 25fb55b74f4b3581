// Reader for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian header length N][N bytes of JSON header][tensor data]
// The header maps tensor names to {dtype, shape, data_offsets:[begin,end)} relative to
// the start of the data section; "__metadata__" holds string->string pairs.
// Every header field and offset is validated before any tensor byte is exposed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor/dtype.h"

namespace ctx::tensor {

// A tensor inside a mapped file or buffer. `bytes` stays valid while its owner lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;

  int64_t NumElements() const;
  // Converts the (float-typed) tensor to float32.
  absl::StatusOr<std::vector<float>> ToFloat() const;
};

// Parsed header + the data section it describes. Pure: works on any byte span.
class SafetensorsIndex {
 public:
  // Validates the header against `file` (the whole file's bytes): header length within
  // the file, JSON object, known dtypes, non-negative shapes without overflow, offsets
  // inside the data section, end - begin == numel * dtype size, no overlaps.
  static absl::StatusOr<SafetensorsIndex> Parse(std::span<const std::byte> file);

  const TensorView* Find(absl::string_view name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::vector<TensorView> tensors_;  // sorted by data offset
  std::map<std::string, std::string> metadata_;
};

// A memory-mapped safetensors file.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const SafetensorsIndex& index() const { return index_; }
  const TensorView* Find(absl::string_view name) const { return index_.Find(name); }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  SafetensorsIndex index_;
};

// A Hugging Face checkpoint's weights: `model.safetensors`, or the shards listed in
// `model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}).
class CheckpointWeights {
 public:
  static absl::StatusOr<CheckpointWeights> Open(const std::string& model_dir);

  // The tensor, or NotFound naming the tensor and the directory.
  absl::StatusOr<const TensorView*> Get(absl::string_view name) const;
  // The tensor as float32, checking its shape.
  absl::StatusOr<std::vector<float>> GetFloat(absl::string_view name,
                                              std::span<const int64_t> expected_shape) const;
  // Every tensor, sorted by name (for fingerprints).
  std::vector<const TensorView*> AllSorted() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

}  // namespace ctx::tensor
