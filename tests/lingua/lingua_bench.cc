// Classifier forward speed and compression time split (not a test).
//   ./build/tests/lingua/lingua_bench [--cpu-time] [--no-pytorch] [model_dir] [iters] [batch]
// Prints tokens/s of the forward pass on batch x 512-token chunks (batch 1 and 4 unless one is
// given), next to PyTorch eager on the same model, chunk and thread count measured in the same
// run (tests/lingua/bench_pytorch_xlmr.py as a child process via /usr/bin/python3 or
// $CTX_PYTHON; skipped with a note when python or torch is missing), and for a full Compress
// of a long text the share of time spent outside the classifier (post-processing).
// --cpu-time: tokens per process-CPU-second for both sides (on a shared machine wall time
// includes waiting for a core; bench_pytorch_xlmr.py reports both).
// Threads: OPENBLAS_NUM_THREADS (PyTorch gets the same number; default 1 for both).
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/lingua/lingua_model.h"
#include "common/lingua/prompt_compressor.h"
#include "loadtest/python_bench.h"

using namespace ctx::lingua;
using Clock = std::chrono::steady_clock;

namespace {

double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Times the wrapped scorer.
class TimedScorer : public ChunkScorer {
 public:
  explicit TimedScorer(const ChunkScorer* inner) : inner_(inner) {}
  absl::StatusOr<std::vector<std::vector<float>>> KeepProbs(
      std::span<const std::vector<int32_t>> seqs) const override {
    auto t0 = Clock::now();
    auto r = inner_->KeepProbs(seqs);
    seconds += Seconds(t0, Clock::now());
    return r;
  }
  mutable double seconds = 0;

 private:
  const ChunkScorer* inner_;
};

const char* kText =
    "A cgroup is a collection of processes that are bound to a set of limits or parameters "
    "defined via the cgroup filesystem. A subsystem is a kernel component that modifies the "
    "behavior of the processes in a cgroup. Various subsystems have been implemented, making "
    "it possible to do things such as limiting the amount of CPU time and memory available to "
    "a cgroup, accounting for the CPU time used by a cgroup, and freezing and resuming "
    "execution of the processes in a cgroup.\n\n";

// Runs tests/lingua/bench_pytorch_xlmr.py and returns its JSON line, or nullopt (with a note
// on stderr) when python, torch or the script fails.
std::optional<nlohmann::json> RunPyTorchBench(const std::string& model_dir, int threads, int iters,
                                              const std::vector<int>& batches) {
  std::string cmd = ctx::bench::PythonInterpreter() + " '" + CTX_SOURCE_DIR +
                    "/tests/lingua/bench_pytorch_xlmr.py' --threads " + std::to_string(threads) +
                    " --iters " + std::to_string(iters) + " --model '" + model_dir + "' --batch";
  for (int b : batches) {
    cmd += ' ';
    cmd += std::to_string(b);
  }
  return ctx::bench::RunJsonChild(cmd);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = CTX_SOURCE_DIR;
  bool pytorch = true, cpu_time = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-pytorch") {
      pytorch = false;
    } else if (std::string(argv[i]) == "--cpu-time") {
      cpu_time = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  const std::string dir = args.size() > 0 ? args[0] : root + "/models/tiny-lingua2";
  const int iters = args.size() > 1 ? std::atoi(args[1].c_str()) : 5;
  const std::vector<int> batches =
      args.size() > 2 ? std::vector<int>{std::atoi(args[2].c_str())} : std::vector<int>{1, 4};
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) openblas_set_num_threads(1);
  const int threads = openblas_get_num_threads();
  auto m = LinguaModel::Load(dir);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  const auto& c = m->classifier->config();
  // 512-id chunks from real text.
  std::string text;
  while (m->tokenizer->Tokenize(text).size() < 600) text += kText;
  auto pieces = m->tokenizer->Tokenize(text);
  std::vector<int32_t> seq{XlmrTokenizer::kBos};
  for (size_t i = 0; seq.size() < 511; ++i) seq.push_back(pieces[i].id);
  seq.push_back(XlmrTokenizer::kEos);
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double flops_per_token =
      static_cast<double>(c.num_layers) * (2 * (4 * H * H + 2 * H * I) + 4 * 512 * H);
  std::printf("model %s: H=%lld L=%lld; 512-token chunks, %d iters, %d thread(s)\n", dir.c_str(),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_layers), iters,
              threads);
  std::vector<double> ours;
  for (int batch : batches) {
    std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(batch), seq);
    auto eb = EncoderBatch::Pad(seqs, XlmrTokenizer::kPad);
    (void)m->classifier->Forward(eb);  // warm-up
    auto t0 = Clock::now();
    const double c0 = CpuNow();
    for (int i = 0; i < iters; ++i) {
      auto r = m->classifier->Forward(eb);
      if (!r.ok()) return 1;
    }
    const double s = cpu_time ? CpuNow() - c0 : Seconds(t0, Clock::now());
    const double tokens = static_cast<double>(iters) * batch * 512;
    std::printf("forward batch %d: %.1f ms per 512-token chunk, %.0f tokens/s, %.1f GFLOP/s\n",
                batch, 1e3 * s / (iters * batch), tokens / s, tokens * flops_per_token / s / 1e9);
    ours.push_back(tokens / s);
  }

  // PyTorch eager on the same model, chunk length, batches and thread count, this run.
  std::optional<nlohmann::json> torch;
  if (pytorch) torch = RunPyTorchBench(dir, threads, iters, batches);
  if (torch) std::printf("PyTorch, this run: %s\n", torch->dump().c_str());
  std::printf("\ntiming: %s\n%-34s %12s %12s %12s\n",
              cpu_time ? "process CPU time (--cpu-time)" : "wall clock",
              "forward, 512-token chunks", "ctxstream", "PyTorch", "vs PyTorch");
  for (size_t k = 0; k < batches.size(); ++k) {
    const std::string key =
        "batch" + std::to_string(batches[k]) + (cpu_time ? "_cpu_tok_s" : "_tok_s");
    const double t = torch && torch->contains(key) ? (*torch)[key].get<double>() : 0.0;
    char label[64], tcell[32] = "-", rcell[32] = "-";
    std::snprintf(label, sizeof label, "batch %d, tokens/s", batches[k]);
    if (t > 0) {
      std::snprintf(tcell, sizeof tcell, "%.0f", t);
      std::snprintf(rcell, sizeof rcell, "%.2fx", ours[k] / t);
    }
    std::printf("%-34s %12.0f %12s %12s\n", label, ours[k], tcell, rcell);
  }
  std::printf("\n");

  // Full compression of a long document: classifier vs everything else.
  std::string doc;
  for (int i = 0; i < 40; ++i) doc += kText;
  auto counter = SentencePieceTokenCounter::Load(root + "/models/tiny-llama/tokenizer.model");
  if (!counter.ok()) return 1;
  ClassifierScorer direct(m->classifier.get());
  TimedScorer timed(&direct);
  PromptCompressor pc(m->tokenizer.get(), &timed, counter->get());
  CompressOptions o;
  o.force_tokens = {"\n", "."};
  auto t1 = Clock::now();
  auto r = pc.Compress(std::vector<std::string>{doc}, o);
  const double total = Seconds(t1, Clock::now());
  if (!r.ok()) return 1;
  std::printf(
      "compress: %lld tokens -> %lld (%s) in %lld chunks: total %.1f ms, classifier %.1f ms, "
      "post-processing %.1f%%\n",
      static_cast<long long>(r->origin_tokens), static_cast<long long>(r->compressed_tokens),
      r->ratio.c_str(), static_cast<long long>(r->num_chunks), 1e3 * total, 1e3 * timed.seconds,
      100.0 * (total - timed.seconds) / total);
  return 0;
}
