#include "common/tokenizer/stream_decoder.h"

namespace ctx::tokenizer {
namespace {

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence a lead byte starts, 0 for a byte that cannot lead.
size_t Utf8SequenceLength(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 0;
}

bool IsContinuation(unsigned char c) { return (c >> 6) == 0x2; }

}  // namespace

size_t AppendCompleteUtf8(const std::string& bytes, std::string* out) {
  size_t i = 0;
  const size_t n = bytes.size();
  while (i < n) {
    const size_t len = Utf8SequenceLength(static_cast<unsigned char>(bytes[i]));
    if (len == 0) {
      out->append(kReplacementChar);
      ++i;
      continue;
    }
    const size_t available = std::min(len, n - i);
    size_t good = 1;  // lead byte + valid continuation bytes seen so far
    while (good < available && IsContinuation(static_cast<unsigned char>(bytes[i + good]))) ++good;
    if (good == len) {
      out->append(bytes, i, len);
      i += len;
    } else if (good == available) {
      return n - i;  // a valid but unfinished character: wait for more bytes
    } else {
      out->append(kReplacementChar);  // broken sequence: replace the lead byte, resync
      ++i;
    }
  }
  return 0;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool at_text_start)
    : tokenizer_(tokenizer), strip_leading_space_(at_text_start) {}

absl::StatusOr<std::string> StreamDecoder::Push(int32_t id) {
  absl::StatusOr<std::string> bytes = tokenizer_.TokenBytes(id);
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty()) return std::string();  // control token
  if (strip_leading_space_) {
    if ((*bytes)[0] == ' ') bytes->erase(0, 1);
    strip_leading_space_ = false;
  }
  pending_ += *bytes;
  std::string out;
  const size_t incomplete = AppendCompleteUtf8(pending_, &out);
  pending_.erase(0, pending_.size() - incomplete);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out.append(kReplacementChar);
  pending_.clear();
  return out;
}

}  // namespace ctx::tokenizer
