#include "common/obs/service_metrics.h"

#include <map>
#include <mutex>
#include <set>

#include "common/obs/metrics.h"

namespace ctx::obs {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using Labels = std::map<std::string, std::string>;

constexpr Form kForms[] = {Form::kText, Form::kCompressedText, Form::kKv};
constexpr Stage kStages[] = {Stage::kFetch, Stage::kDecode, Stage::kPrefill, Stage::kCompress};

prometheus::Family<prometheus::Counter>& Counter(const char* name, const char* help) {
  return BuildCounter().Name(name).Help(help).Register(Metrics());
}
prometheus::Family<prometheus::Gauge>& Gauge(const char* name, const char* help) {
  return BuildGauge().Name(name).Help(help).Register(Metrics());
}
prometheus::Family<prometheus::Histogram>& Histogram(const char* name, const char* help) {
  return BuildHistogram().Name(name).Help(help).Register(Metrics());
}

// Non-finite or negative observations would poison sums; clamp them to 0.
double NonNegative(double v) { return v >= 0 && v < 1e300 ? v : 0.0; }

// Every (form, level) pair: text/none, compressed_text/none, kv/0..7.
template <typename F>
void ForEachFormLevel(F&& f) {
  f(Form::kText, -1);
  f(Form::kCompressedText, -1);
  for (int level = 0; level <= kMaxLevel; ++level) f(Form::kKv, level);
}

prometheus::Family<prometheus::Counter>& ContextBytesFamily() {
  static auto* family = [] {
    auto* f = &Counter("ctxstream_context_bytes_total",
                       "Bytes of context delivered towards inference, by form and level.");
    ForEachFormLevel([&](Form form, int level) {
      f->Add({{"form", FormLabel(form)}, {"level", LevelLabel(form, level)}});
    });
    return f;
  }();
  return *family;
}

}  // namespace

std::string FormLabel(Form form) {
  switch (form) {
    case Form::kText:
      return "text";
    case Form::kCompressedText:
      return "compressed_text";
    case Form::kKv:
      return "kv";
  }
  return "unknown";
}

std::string FormLabel(const std::string& form) {
  if (form == "text" || form == "compressed_text" || form == "kv") return form;
  return "unknown";
}

std::string LevelLabel(Form form, int level) {
  if (form != Form::kKv || level < 0 || level > kMaxLevel) return "none";
  return std::to_string(level);
}

std::string StageLabel(Stage stage) {
  switch (stage) {
    case Stage::kFetch:
      return "fetch";
    case Stage::kDecode:
      return "decode";
    case Stage::kPrefill:
      return "prefill";
    case Stage::kCompress:
      return "compress";
  }
  return "unknown";
}

std::string LinkLabel(const std::string& link) {
  std::string clean;
  for (char c : link.substr(0, 64)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '>' || c == '-';
    clean.push_back(ok ? c : '_');
  }
  if (clean.empty()) return "unknown";
  // The first kMaxLinks distinct links keep their name; later ones share "other", so a
  // churning set of peers cannot grow the series count without bound.
  static std::mutex mu;
  static auto* seen = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(mu);
  if (seen->count(clean) != 0) return clean;
  if (static_cast<int>(seen->size()) >= kMaxLinks) return "other";
  seen->insert(clean);
  return clean;
}

std::string BackendLabel(const std::string& backend) {
  if (backend == "memory" || backend == "disk" || backend == "redis") return backend;
  return "unknown";
}

prometheus::Histogram::BucketBoundaries ThroughputBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 16 * 1024.0; v <= 16 * 1024.0 * 1024 * 1024; v *= 4) b.push_back(v);
  return b;
}

prometheus::Histogram::BucketBoundaries PredictionRatioBuckets() {
  return {0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4};
}

void AddContextBytes(Form form, int level, double bytes) {
  ContextBytesFamily()
      .Add({{"form", FormLabel(form)}, {"level", LevelLabel(form, level)}})
      .Increment(NonNegative(bytes));
}

// ---------------------------------------------------------------- controller

ControllerMetrics& ControllerMetrics::Get() {
  static auto* m = new ControllerMetrics();
  return *m;
}

ControllerMetrics::ControllerMetrics()
    : ttft_(Histogram("ctxstream_controller_ttft_seconds",
                      "Measured time to first token of a query, by the form chosen.")),
      predicted_ttft_(Histogram("ctxstream_controller_predicted_ttft_seconds",
                                "Cost model's predicted time to first token of the chosen plan.")),
      prediction_ratio_(Histogram("ctxstream_controller_ttft_prediction_ratio",
                                  "Measured over predicted time to first token (1 = exact).")),
      stage_(Histogram("ctxstream_controller_stage_duration_seconds",
                       "Time a query spent in each stage (fetch, decode, prefill, compress).")),
      queries_(Counter("ctxstream_controller_queries_total", "Queries answered, by form.")),
      slo_violations_(Counter("ctxstream_controller_slo_violations_total",
                              "Queries whose time to first token exceeded their SLO.")),
      decisions_(Counter("ctxstream_controller_decisions_total",
                         "Plans chosen, by form, level and phase (initial or replan).")),
      bandwidth_estimate_(Gauge("ctxstream_controller_bandwidth_estimate_bytes_per_second",
                                "EWMA estimate of kvcache->inference throughput, per link.")) {
  for (Form form : kForms) {
    const Labels f = {{"form", FormLabel(form)}};
    ttft_.Add(f, SecondsBuckets());
    predicted_ttft_.Add(f, SecondsBuckets());
    prediction_ratio_.Add(f, PredictionRatioBuckets());
    queries_.Add(f);
    slo_violations_.Add(f);
    for (Stage stage : kStages) {
      stage_.Add({{"stage", StageLabel(stage)}, {"form", FormLabel(form)}}, SecondsBuckets());
    }
  }
  ForEachFormLevel([&](Form form, int level) {
    for (const char* phase : {"initial", "replan"}) {
      decisions_.Add(
          {{"form", FormLabel(form)}, {"level", LevelLabel(form, level)}, {"phase", phase}});
    }
  });
  ContextBytesFamily();
}

void ControllerMetrics::ObserveTtft(Form form, double seconds) {
  ttft_.Add({{"form", FormLabel(form)}}, SecondsBuckets()).Observe(NonNegative(seconds));
}

void ControllerMetrics::ObservePredictedTtft(Form form, double predicted_seconds,
                                             double measured_seconds) {
  const Labels f = {{"form", FormLabel(form)}};
  predicted_ttft_.Add(f, SecondsBuckets()).Observe(NonNegative(predicted_seconds));
  if (predicted_seconds > 0 && measured_seconds >= 0) {
    prediction_ratio_.Add(f, PredictionRatioBuckets())
        .Observe(measured_seconds / predicted_seconds);
  }
}

void ControllerMetrics::ObserveStage(Stage stage, Form form, double seconds) {
  stage_.Add({{"stage", StageLabel(stage)}, {"form", FormLabel(form)}}, SecondsBuckets())
      .Observe(NonNegative(seconds));
}

void ControllerMetrics::CountQuery(Form form, bool slo_violated) {
  const Labels f = {{"form", FormLabel(form)}};
  queries_.Add(f).Increment();
  // The violations series exists (at 0) from the first query on, so that violation ratios
  // (dashboards, rules.yml) read 0 rather than nothing before the first violation.
  auto& violations = slo_violations_.Add(f);
  if (slo_violated) violations.Increment();
}

void ControllerMetrics::CountDecision(Form form, int level, bool replan) {
  decisions_
      .Add({{"form", FormLabel(form)},
            {"level", LevelLabel(form, level)},
            {"phase", replan ? "replan" : "initial"}})
      .Increment();
}

void ControllerMetrics::SetBandwidthEstimate(const std::string& link, double bytes_per_second) {
  bandwidth_estimate_.Add({{"link", LinkLabel(link)}}).Set(NonNegative(bytes_per_second));
}

// ---------------------------------------------------------------- inference

InferenceMetrics& InferenceMetrics::Get() {
  static auto* m = new InferenceMetrics();
  return *m;
}

InferenceMetrics::InferenceMetrics()
    : prefill_tokens_(Counter("ctxstream_inference_prefill_tokens_total",
                              "Tokens prefilled (run through the model), by context form.")),
      prefill_duration_(Histogram("ctxstream_inference_prefill_duration_seconds",
                                  "Time of one prefill call, by context form.")),
      decode_tokens_(Counter("ctxstream_inference_decode_tokens_total", "Tokens generated.")),
      ttft_(Histogram("ctxstream_inference_ttft_seconds",
                      "Time from Generate's arrival to its first token, by context form.")),
      fetch_bytes_(Counter("ctxstream_inference_fetch_bytes_total",
                           "KV bitstream bytes received from kvcache, per link.")),
      fetch_seconds_(Counter("ctxstream_inference_fetch_seconds_total",
                             "Time spent receiving KV chunks, per link (rate(bytes)/rate(seconds)"
                             " = measured throughput).")),
      fetch_throughput_(Histogram("ctxstream_inference_fetch_throughput_bytes_per_second",
                                  "Measured throughput of each KV chunk received, per link.")),
      decode_in_(Counter("ctxstream_codec_decode_input_bytes_total",
                         "Bitstream bytes entropy-decoded, by level.")),
      decode_out_(Counter("ctxstream_codec_decode_output_bytes_total",
                          "Raw KV bytes produced by the decoder, by level.")),
      decode_seconds_(Counter("ctxstream_codec_decode_seconds_total",
                              "Time spent decoding KV chunks, by level.")),
      decode_duration_(Histogram("ctxstream_codec_decode_duration_seconds",
                                 "Time to decode one KV chunk, by level.")) {
  for (Form form : kForms) {
    const Labels f = {{"form", FormLabel(form)}};
    prefill_tokens_.Add(f);
    prefill_duration_.Add(f, SecondsBuckets());
    ttft_.Add(f, SecondsBuckets());
  }
  decode_tokens_.Add({});
}

void InferenceMetrics::AddPrefillTokens(Form form, int64_t tokens, double seconds) {
  const Labels f = {{"form", FormLabel(form)}};
  prefill_tokens_.Add(f).Increment(tokens > 0 ? static_cast<double>(tokens) : 0.0);
  prefill_duration_.Add(f, SecondsBuckets()).Observe(NonNegative(seconds));
}

void InferenceMetrics::AddDecodeTokens(int64_t tokens) {
  decode_tokens_.Add({}).Increment(tokens > 0 ? static_cast<double>(tokens) : 0.0);
}

void InferenceMetrics::ObserveTtft(Form form, double seconds) {
  ttft_.Add({{"form", FormLabel(form)}}, SecondsBuckets()).Observe(NonNegative(seconds));
}

void InferenceMetrics::ObserveFetchChunk(const std::string& link, int level, double bytes,
                                         double seconds) {
  const Labels l = {{"link", LinkLabel(link)}};
  fetch_bytes_.Add(l).Increment(NonNegative(bytes));
  fetch_seconds_.Add(l).Increment(NonNegative(seconds));
  if (seconds > 0 && bytes >= 0) {
    fetch_throughput_.Add(l, ThroughputBuckets()).Observe(bytes / seconds);
  }
  (void)level;  // bytes by level are counted once, at the sender (ctxstream_context_bytes_total)
}

void InferenceMetrics::ObserveCodecDecode(int level, double input_bytes, double output_bytes,
                                          double seconds) {
  const Labels l = {{"level", LevelLabel(Form::kKv, level)}};
  decode_in_.Add(l).Increment(NonNegative(input_bytes));
  decode_out_.Add(l).Increment(NonNegative(output_bytes));
  decode_seconds_.Add(l).Increment(NonNegative(seconds));
  decode_duration_.Add(l, SecondsBuckets()).Observe(NonNegative(seconds));
}

// ---------------------------------------------------------------- kvcache

KvCacheMetrics& KvCacheMetrics::Get() {
  static auto* m = new KvCacheMetrics();
  return *m;
}

KvCacheMetrics::KvCacheMetrics()
    : ingests_(Counter("ctxstream_kvcache_ingests_total",
                       "Ingest calls finished, by result (ok or error).")),
      ingests_in_progress_(Gauge("ctxstream_kvcache_ingests_in_progress", "Ingests running.")),
      ingest_duration_(Histogram("ctxstream_kvcache_ingest_duration_seconds",
                                 "Time to ingest one context (prefill + encode + store).")),
      ingest_tokens_(Counter("ctxstream_kvcache_ingest_tokens_total", "Context tokens ingested.")),
      ingest_chunks_(Counter("ctxstream_kvcache_ingest_chunks_total",
                             "KV chunks encoded and stored by ingest, by level.")),
      ingest_pending_(Gauge("ctxstream_kvcache_ingest_pending_chunks",
                            "Chunk encodings queued and not yet stored.")),
      encode_in_(Counter("ctxstream_codec_encode_input_bytes_total",
                         "Raw KV bytes fed to the encoder, by level.")),
      encode_out_(Counter("ctxstream_codec_encode_output_bytes_total",
                          "Bitstream bytes produced by the encoder, by level.")),
      encode_seconds_(Counter("ctxstream_codec_encode_seconds_total",
                              "Time spent encoding KV chunks, by level.")),
      compression_ratio_(Histogram("ctxstream_codec_compression_ratio",
                                   "fp16 KV bytes over bitstream bytes of one chunk, by level.")),
      fetch_chunks_(Counter("ctxstream_kvcache_fetch_chunks_total",
                            "KV chunks sent on Fetch streams, by level.")),
      fetch_chunk_bytes_(Histogram("ctxstream_kvcache_fetch_chunk_bytes",
                                   "Size of each KV chunk sent on Fetch, by level.")),
      store_hits_(Counter("ctxstream_store_hits_total", "Chunk lookups found, by backend.")),
      store_misses_(Counter("ctxstream_store_misses_total", "Chunk lookups missed, by backend.")),
      store_evictions_(Counter("ctxstream_store_evictions_total",
                               "Chunks evicted to stay under capacity, by backend.")),
      store_size_(Gauge("ctxstream_store_size_bytes", "Bytes stored, by backend.")),
      store_entries_(Gauge("ctxstream_store_entries", "Chunks stored, by backend.")),
      store_capacity_(Gauge("ctxstream_store_capacity_bytes",
                            "Configured byte capacity, by backend (0 = unbounded).")) {
  for (const char* result : {"ok", "error"}) ingests_.Add({{"result", result}});
  ingests_in_progress_.Add({});
  ingest_duration_.Add({}, SecondsBuckets());
  ingest_tokens_.Add({});
  ingest_pending_.Add({});
  ContextBytesFamily();
}

void KvCacheMetrics::IngestStarted() { ingests_in_progress_.Add({}).Increment(); }

void KvCacheMetrics::IngestFinished(bool ok, double seconds) {
  ingests_in_progress_.Add({}).Decrement();
  ingests_.Add({{"result", ok ? "ok" : "error"}}).Increment();
  ingest_duration_.Add({}, SecondsBuckets()).Observe(NonNegative(seconds));
}

void KvCacheMetrics::AddIngestTokens(int64_t tokens) {
  ingest_tokens_.Add({}).Increment(tokens > 0 ? static_cast<double>(tokens) : 0.0);
}

void KvCacheMetrics::SetIngestPendingChunks(int64_t chunks) {
  ingest_pending_.Add({}).Set(chunks > 0 ? static_cast<double>(chunks) : 0.0);
}

void KvCacheMetrics::ObserveCodecEncode(int level, double input_bytes, double output_bytes,
                                        double seconds) {
  const Labels l = {{"level", LevelLabel(Form::kKv, level)}};
  encode_in_.Add(l).Increment(NonNegative(input_bytes));
  encode_out_.Add(l).Increment(NonNegative(output_bytes));
  encode_seconds_.Add(l).Increment(NonNegative(seconds));
  ingest_chunks_.Add(l).Increment();
  if (output_bytes > 0 && input_bytes >= 0) {
    compression_ratio_.Add(l, RatioBuckets()).Observe(input_bytes / output_bytes);
  }
}

void KvCacheMetrics::ObserveFetchChunk(int level, double bytes) {
  const Labels l = {{"level", LevelLabel(Form::kKv, level)}};
  fetch_chunks_.Add(l).Increment();
  fetch_chunk_bytes_.Add(l, BytesBuckets()).Observe(NonNegative(bytes));
  AddContextBytes(Form::kKv, level, bytes);
}

void KvCacheMetrics::CountStoreLookup(const std::string& backend, bool hit) {
  const Labels b = {{"backend", BackendLabel(backend)}};
  // Both series exist as soon as one lookup happened, so hit ratios never divide by absent.
  auto& hits = store_hits_.Add(b);
  auto& misses = store_misses_.Add(b);
  (hit ? hits : misses).Increment();
}

void KvCacheMetrics::CountStoreEviction(const std::string& backend) {
  store_evictions_.Add({{"backend", BackendLabel(backend)}}).Increment();
}

void KvCacheMetrics::SetStoreSize(const std::string& backend, double bytes, double entries) {
  const Labels b = {{"backend", BackendLabel(backend)}};
  store_size_.Add(b).Set(NonNegative(bytes));
  store_entries_.Add(b).Set(NonNegative(entries));
}

void KvCacheMetrics::SetStoreCapacity(const std::string& backend, double bytes) {
  store_capacity_.Add({{"backend", BackendLabel(backend)}}).Set(NonNegative(bytes));
}

// ---------------------------------------------------------------- compressor

CompressorMetrics& CompressorMetrics::Get() {
  static auto* m = new CompressorMetrics();
  return *m;
}

CompressorMetrics::CompressorMetrics()
    : input_tokens_(
          Counter("ctxstream_compressor_input_tokens_total", "Tokens given to the compressor.")),
      output_tokens_(
          Counter("ctxstream_compressor_output_tokens_total", "Tokens kept by the compressor.")),
      ratio_(Histogram("ctxstream_compressor_compression_ratio",
                       "Input tokens over kept tokens of one Compress call.")),
      duration_(Histogram("ctxstream_compressor_duration_seconds",
                          "Time of one Compress call (classifier + selection).")) {
  input_tokens_.Add({});
  output_tokens_.Add({});
  ratio_.Add({}, RatioBuckets());
  duration_.Add({}, SecondsBuckets());
}

void CompressorMetrics::ObserveCompression(int64_t input_tokens, int64_t output_tokens,
                                           double seconds) {
  input_tokens_.Add({}).Increment(input_tokens > 0 ? static_cast<double>(input_tokens) : 0.0);
  output_tokens_.Add({}).Increment(output_tokens > 0 ? static_cast<double>(output_tokens) : 0.0);
  if (output_tokens > 0 && input_tokens >= 0) {
    ratio_.Add({}, RatioBuckets())
        .Observe(static_cast<double>(input_tokens) / static_cast<double>(output_tokens));
  }
  duration_.Add({}, SecondsBuckets()).Observe(NonNegative(seconds));
}

}  // namespace ctx::obs
