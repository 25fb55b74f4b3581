#!/usr/bin/env bash
# The test suite under sanitizers (gcc):
#   scripts/sanitize.sh asan [quick|all|<test targets...>]   ASan + UBSan into build-asan/
#   scripts/sanitize.sh tsan [quick|services|all|<test targets...>]   TSan into build-tsan/
# quick = the fast library tests (test_tensor test_rpc test_codec test_store test_policy
# test_fuzz_regressions);
# services = the concurrent code: test_rpc test_store test_kvcache test_controller
# test_harden (the service binaries they start are sanitized too, and a
# report makes the service exit non-zero, which fails the test);
# all (default) = every test binary (services included, via test dependencies).
# Builds only the named test targets (and what they link), then runs their ctest cases.
#
# Left out under sanitizers (EXCLUDE below):
#   - test_compressor: the compressor loads its model engine with dlopen(RTLD_DEEPBIND), which
#     the ASan/TSan runtimes refuse ("incompatible with sanitizer runtime"); the model code
#     itself (common/lingua) is covered by test_lingua, which links it directly.
#   - benchmarks ([.bench] cases are hidden from ctest already).
#   - tsan: the model golden/generate tests (OpenBLAS threads are uninstrumented and each
#     case runs minutes under TSan); test_services (gRPC/Abseil are uninstrumented Debian
#     libraries, so TSan cannot see their synchronisation and reports false races).
#   - tsan: gRPC and Abseil are uninstrumented Debian libraries, so the `services` set stops
#     at reports inside them (scripts/tsan.supp: what is suppressed and what still stops it;
#     it needs a gRPC built with TSan). `quick` runs clean.
#     Binaries linking common/model load under TSan since CTX_TARGET_CLONES
#     (common/tensor/target_clones.h) compiles only the baseline clone under sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."

KIND=${1:?usage: scripts/sanitize.sh asan|tsan [quick|all|targets...]}
shift
JOBS=${JOBS:-2}
QUICK=(test_tensor test_rpc test_codec test_store test_policy test_fuzz_regressions)
SERVICES=(test_rpc test_store test_kvcache test_controller test_harden)

case "$KIND" in
  asan)
    FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    EXCLUDE='^test_compressor:'
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  tsan)
    FLAGS="-fsanitize=thread -fno-omit-frame-pointer"
    EXCLUDE='^test_compressor:|^test_services:|^test_model:.*(golden|generate)'
    # exitcode=66: a service binary with a report dies with it, so its test fails too.
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:exitcode=66:suppressions=$PWD/scripts/tsan.supp}
    ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [quick|all|targets...]" >&2; exit 2 ;;
esac
BUILD=build-$KIND

LAUNCHER=()
if command -v ccache >/dev/null; then
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" \
    -DCMAKE_SHARED_LINKER_FLAGS="$FLAGS" -DCMAKE_MODULE_LINKER_FLAGS="$FLAGS" >/dev/null
fi

if (($# == 0)) || [[ "$1" == all ]]; then
  # Every test binary but test_compressor (excluded above; not worth building).
  mapfile -t TARGETS < <(ninja -C "$BUILD" -t targets all |
    sed -n 's|^tests/[a-z0-9_]*/\(test_[a-z0-9_]*\): CXX_EXECUTABLE_LINKER.*|\1|p' |
    grep -v '^test_compressor$' | sort -u)
elif [[ "$1" == quick ]]; then
  TARGETS=("${QUICK[@]}")
elif [[ "$1" == services ]]; then
  TARGETS=("${SERVICES[@]}")
else
  TARGETS=("$@")
fi
echo "sanitize($KIND): building ${TARGETS[*]}"
ninja -C "$BUILD" -j"$JOBS" "${TARGETS[@]}"
[[ ${BUILD_ONLY:-0} == 1 ]] && exit 0

# Only the ctest cases of the built binaries (their names start with "<binary>:").
REGEX="^($(IFS='|'; echo "${TARGETS[*]}")):"
ctest --test-dir "$BUILD" -R "$REGEX" -E "$EXCLUDE" -j"$JOBS" --output-on-failure \
  --timeout 900
