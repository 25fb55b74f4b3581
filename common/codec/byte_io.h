// Little-endian byte writer and a bounds-checked reader used by every parser in the codec.
// The reader never reads past its span: every Read* checks the remaining length first and
// latches a failure; callers check ok() once after a group of reads.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace ctx::codec {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    U64(bits);
  }
  void Bytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  // LEB128: 7 bits per byte, low bits first, high bit = "more bytes follow".
  void VarU32(uint32_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    U8(static_cast<uint8_t>(v));
  }
  // Overwrites 4 bytes at `pos` (for lengths known only after the body is written).
  void PatchU32(size_t pos, uint32_t v) {
    for (int i = 0; i < 4; ++i) (*out_)[pos + i] = static_cast<char>(v >> (8 * i));
  }
  size_t size() const { return out_->size(); }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : p_(in.data()), left_(in.size()) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return left_; }
  uint8_t U8() { return static_cast<uint8_t>(Le(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Le(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  double F64() {
    uint64_t bits = U64();
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  // Returns a view of the next n bytes (empty and !ok() if fewer remain).
  absl::string_view Bytes(size_t n) {
    if (!ok_ || n > left_) return Fail();
    absl::string_view v(p_, n);
    p_ += n;
    left_ -= n;
    return v;
  }
  uint32_t VarU32() {
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      uint32_t b = U8();
      if (!ok_) return 0;
      if (shift == 28 && b > 0x0f) break;  // would overflow 32 bits
      v |= (b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    Fail();
    return 0;
  }

 private:
  absl::string_view Fail() {
    ok_ = false;
    left_ = 0;
    return {};
  }
  uint64_t Le(int n) {
    if (!ok_ || left_ < static_cast<size_t>(n)) {
      Fail();
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += n;
    left_ -= n;
    return v;
  }
  const char* p_;
  size_t left_;
  bool ok_ = true;
};

}  // namespace ctx::codec
