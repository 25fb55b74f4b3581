// CTX_TARGET_CLONES: compile a hot loop once per ISA (AVX-512, AVX2, baseline) and let the
// dynamic loader's ifunc resolver pick one at load time, without -march=native.
//
// Why a macro: ifunc resolvers run during relocation, before a sanitizer runtime is set up.
// Under ThreadSanitizer the instrumented resolver crashes the process before main, so
// sanitizer builds compile the baseline version only.
#pragma once

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CTX_SANITIZER_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CTX_SANITIZER_BUILD 1
#endif

#if defined(CTX_SANITIZER_BUILD)
#define CTX_TARGET_CLONES
#else
#define CTX_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
