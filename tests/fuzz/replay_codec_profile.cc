// The fuzz target compiled as a plain function for regressions_test.cc.
#define LLVMFuzzerTestOneInput FuzzCodecProfile
#include "tests/fuzz/fuzz_codec_profile.cc"
