#include "common/codec/repeat_map.h"

#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"

namespace ctx::codec {

std::vector<int32_t> RepeatRows(std::span<const int32_t> ids) {
  std::vector<int32_t> rows(ids.size(), kNoRepeat);
  std::unordered_map<int32_t, int32_t> last;
  last.reserve(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    auto [it, inserted] = last.try_emplace(ids[t], static_cast<int32_t>(t));
    if (!inserted) {
      rows[t] = it->second;
      it->second = static_cast<int32_t>(t);
    }
  }
  return rows;
}

void WriteRepeatMap(std::span<const int32_t> rows, std::string* out) {
  ByteWriter w(out);
  for (size_t t = 0; t < rows.size(); ++t) {
    w.VarU32(rows[t] == kNoRepeat ? 0u : static_cast<uint32_t>(t - rows[t]));
  }
}

absl::Status ReadRepeatMap(absl::string_view bytes, size_t tokens, std::vector<int32_t>* rows) {
  ByteReader r(bytes);
  rows->resize(tokens);
  for (size_t t = 0; t < tokens; ++t) {
    const uint32_t d = r.VarU32();
    if (!r.ok() || d > t) {
      return absl::DataLossError(absl::StrCat("KV chunk: repeat map entry ", t, " invalid"));
    }
    (*rows)[t] = d == 0 ? kNoRepeat : static_cast<int32_t>(t - d);
  }
  if (r.remaining() != 0) return absl::DataLossError("KV chunk: repeat map has trailing bytes");
  return absl::OkStatus();
}

}  // namespace ctx::codec
