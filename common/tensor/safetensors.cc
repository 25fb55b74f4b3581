#include "common/tensor/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace ctx::tensor {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // same cap as the reference reader

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("safetensors: ", what));
}

}  // namespace

int64_t TensorView::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::vector<float>> TensorView::ToFloat() const {
  std::vector<float> out(static_cast<size_t>(NumElements()));
  if (absl::Status s = ConvertToFloat(dtype, bytes.data(), out.size(), out.data()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", s.message()));
  }
  return out;
}

absl::StatusOr<SafetensorsIndex> SafetensorsIndex::Parse(std::span<const std::byte> file) {
  if (file.size() < 8) return Corrupt("file shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::to_integer<uint8_t>(file[i]);
  if (header_len > kMaxHeaderBytes) return Corrupt("header length over 100 MiB");
  if (header_len > file.size() - 8) return Corrupt("header length past the end of the file");
  const auto* hdr = reinterpret_cast<const char*>(file.data() + 8);
  json root = json::parse(hdr, hdr + header_len, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return Corrupt("header is not a JSON object");

  const std::span<const std::byte> data = file.subspan(8 + header_len);
  SafetensorsIndex index;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Corrupt("__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Corrupt(absl::StrCat("__metadata__.", k, " is not a string"));
        index.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) return Corrupt(absl::StrCat(name, ": entry is not an object"));
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string() || sh == entry.end() || !sh->is_array() ||
        off == entry.end() || !off->is_array() || off->size() != 2) {
      return Corrupt(absl::StrCat(name, ": needs dtype, shape and data_offsets[2]"));
    }
    TensorView view;
    view.name = name;
    absl::StatusOr<DType> dtype = ParseDType(dt->get<std::string>());
    if (!dtype.ok()) return Corrupt(absl::StrCat(name, ": ", dtype.status().message()));
    view.dtype = *dtype;
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) return Corrupt(absl::StrCat(name, ": bad shape"));
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint32_t>::max() * uint64_t{16} / dim) {
        return Corrupt(absl::StrCat(name, ": shape too large"));
      }
      numel *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      return Corrupt(absl::StrCat(name, ": data_offsets are not unsigned integers"));
    }
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data.size()) {
      return Corrupt(absl::StrCat(name, ": data_offsets [", begin, ", ", end,
                                  ") outside the data section of ", data.size(), " bytes"));
    }
    if (end - begin != numel * DTypeSize(view.dtype)) {
      return Corrupt(absl::StrCat(name, ": ", end - begin, " bytes for ", numel, " elements of ",
                                  DTypeName(view.dtype)));
    }
    view.bytes = data.subspan(begin, end - begin);
    ranges.emplace_back(begin, end);
    index.tensors_.push_back(std::move(view));
  }
  std::sort(index.tensors_.begin(), index.tensors_.end(),
            [](const auto& a, const auto& b) { return a.bytes.data() < b.bytes.data(); });
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return Corrupt("tensors overlap");
  }
  return index;
}

const TensorView* SafetensorsIndex::Find(absl::string_view name) const {
  for (const TensorView& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path));
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    f->map_ = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  if (f->map_ == MAP_FAILED) {
    f->map_ = nullptr;
    return absl::InternalError(absl::StrCat("cannot mmap ", path));
  }
  absl::StatusOr<SafetensorsIndex> index =
      SafetensorsIndex::Parse({static_cast<const std::byte*>(f->map_), f->size_});
  if (!index.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", index.status().message()));
  }
  f->index_ = *std::move(index);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

absl::StatusOr<CheckpointWeights> CheckpointWeights::Open(const std::string& model_dir) {
  CheckpointWeights w;
  w.dir_ = model_dir;
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  std::vector<std::string> shard_names;
  if (std::ifstream in(index_path); in) {
    json idx = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (idx.is_discarded() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
      return absl::DataLossError(absl::StrCat(index_path, ": no weight_map object"));
    }
    std::set<std::string> unique;
    for (auto& [name, file] : idx["weight_map"].items()) {
      if (!file.is_string()) return absl::DataLossError(absl::StrCat(index_path, ": ", name));
      const std::string shard = file.get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": bad shard name ", shard));
      }
      unique.insert(shard);
    }
    shard_names.assign(unique.begin(), unique.end());
  } else {
    shard_names.push_back("model.safetensors");
  }
  for (const std::string& shard : shard_names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f =
        SafetensorsFile::Open(model_dir + "/" + shard);
    if (!f.ok()) return f.status();
    w.files_.push_back(std::shared_ptr<SafetensorsFile>(std::move(*f)));
    for (const TensorView& t : w.files_.back()->index().tensors()) {
      if (!w.by_name_.emplace(t.name, &t).second) {
        return absl::DataLossError(absl::StrCat(model_dir, ": tensor ", t.name, " twice"));
      }
    }
  }
  return w;
}

absl::StatusOr<const TensorView*> CheckpointWeights::Get(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no tensor named ", name));
  }
  return it->second;
}

absl::StatusOr<std::vector<float>> CheckpointWeights::GetFloat(
    absl::string_view name, std::span<const int64_t> expected_shape) const {
  absl::StatusOr<const TensorView*> t = Get(name);
  if (!t.ok()) return t.status();
  if (!std::equal((*t)->shape.begin(), (*t)->shape.end(), expected_shape.begin(),
                  expected_shape.end())) {
    return absl::InvalidArgumentError(absl::StrCat(dir_, ": tensor ", name, " has shape [",
                                                   absl::StrJoin((*t)->shape, ","), "], expected [",
                                                   absl::StrJoin(expected_shape, ","), "]"));
  }
  return (*t)->ToFloat();
}

std::vector<const TensorView*> CheckpointWeights::AllSorted() const {
  std::vector<const TensorView*> out;
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

}  // namespace ctx::tensor
