// Classifier forward speed and compression time split (not a test).
//   ./build/tests/lingua/lingua_bench [model_dir] [iters] [batch]
// Prints tokens/s of the forward pass on batch x 512-token chunks, and for a full Compress of a
// long text the share of time spent outside the classifier (post-processing).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/lingua/lingua_model.h"
#include "common/lingua/prompt_compressor.h"

using namespace ctx::lingua;
using Clock = std::chrono::steady_clock;

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  const std::string root = CTX_SOURCE_DIR;
  const std::string dir = argc > 1 ? argv[1] : root + "/models/tiny-lingua2";
  const int iters = argc > 2 ? std::atoi(argv[2]) : 5;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 1;
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
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(batch), seq);
  auto eb = EncoderBatch::Pad(seqs, XlmrTokenizer::kPad);
  (void)m->classifier->Forward(eb);  // warm-up
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) {
    auto r = m->classifier->Forward(eb);
    if (!r.ok()) return 1;
  }
  const double s = Seconds(t0, Clock::now());
  const double tokens = static_cast<double>(iters) * batch * 512;
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double flops_per_token =
      static_cast<double>(c.num_layers) * (2 * (4 * H * H + 2 * H * I) + 4 * 512 * H);
  std::printf("model %s: H=%lld L=%lld; batch %d x 512 tokens, %d iters\n", dir.c_str(),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_layers), batch,
              iters);
  std::printf("forward: %.1f ms per 512-token chunk, %.0f tokens/s, %.1f GFLOP/s\n",
              1e3 * s / (iters * batch), tokens / s, tokens * flops_per_token / s / 1e9);

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
