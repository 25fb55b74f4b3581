// The AVX-512 step shared by the rANS block decoders (rans_decoder.cc's DecodeBlock and
// rans_repeat.cc's repeat-context blocks): decode one symbol in each of 16 lanes from their
// packed RansDecodeTables entries and renormalize, as the scalar DecodeRow does per lane.
// Internal to common/codec; include only from files that test CTX_RANS_AVX512.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstdint>

#include "common/codec/rans_decoder.h"

#define CTX_RANS_AVX512 1
#define CTX_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,popcnt")))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ctx::codec {

// 16 lanes of one row: *x states in/out, *s the decoded symbols, *q the stream position;
// table_base = each lane's table start in `entry` (table index * M).
CTX_AVX512_TARGET inline __attribute__((always_inline)) void DecodeVector16(
    __m512i* x, __m512i* s, const __m512i& table_base, const uint32_t* entry, const uint8_t** q) {
  const __m512i slot = _mm512_and_si512(*x, _mm512_set1_epi32(kProbScale - 1));
  const __m512i e = _mm512_i32gather_epi32(_mm512_add_epi32(table_base, slot), entry, 4);
  *s = _mm512_srli_epi32(e, RansDecodeTables::kSymbolShift);
  const __m512i freq = _mm512_and_si512(e, _mm512_set1_epi32(RansDecodeTables::kFreqMask));
  const __m512i offset = _mm512_and_si512(_mm512_srli_epi32(e, RansDecodeTables::kOffsetShift),
                                          _mm512_set1_epi32(RansDecodeTables::kOffsetMask));
  const __m512i xv =
      _mm512_add_epi32(_mm512_mullo_epi32(freq, _mm512_srli_epi32(*x, kProbBits)), offset);
  const __mmask16 in = _mm512_cmplt_epu32_mask(xv, _mm512_set1_epi32(kRansL));
  const __m512i words =
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(*q)));
  *x =
      _mm512_mask_or_epi32(xv, in, _mm512_slli_epi32(xv, 16), _mm512_maskz_expand_epi32(in, words));
  *q += 2 * _mm_popcnt_u32(in);
}

}  // namespace ctx::codec

#pragma GCC diagnostic pop
#endif
