// The fuzz target compiled as a plain function for regressions_test.cc.
#define LLVMFuzzerTestOneInput FuzzCodecDecode
#include "tests/fuzz/fuzz_codec_decode.cc"
