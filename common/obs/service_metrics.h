// Service-level Prometheus metrics, one struct per service, as catalogued in docs/metrics.md.
// Each struct's Get() registers its families in ctx::obs::Metrics() once (thread-safe) and
// returns the process-wide instance; the helpers normalize label values so that the set of
// series stays bounded whatever a caller passes:
//   form   text | compressed_text | kv            (anything else -> "unknown")
//   level  "0".."7" for form kv, "none" otherwise (out of range  -> "none")
//   stage  fetch | decode | prefill | compress     (anything else -> "unknown")
//   link   short endpoint names such as "kvcache-0>inference-1": [A-Za-z0-9_.:>-], <= 64
//          chars, at most kMaxLinks distinct values per process (then -> "other")
//   backend memory | disk | redis                  (anything else -> "unknown")
//
//   auto& m = ctx::obs::ControllerMetrics::Get();
//   m.ObserveTtft(Form::kKv, /*seconds=*/0.42);
#pragma once

#include <cstdint>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace ctx::obs {

enum class Form { kText, kCompressedText, kKv };
enum class Stage { kFetch, kDecode, kPrefill, kCompress };

// Label values (bounded; see the table above).
std::string FormLabel(Form form);
std::string FormLabel(const std::string& form);  // "text"|"compressed_text"|"kv", else "unknown"
std::string LevelLabel(Form form, int level);    // "0".."7" for kv, else "none"
std::string StageLabel(Stage stage);
std::string LinkLabel(const std::string& link);  // sanitized + capped, see above
std::string BackendLabel(const std::string& backend);

inline constexpr int kMaxLevel = 7;
inline constexpr int kMaxLinks = 32;

// Throughput buckets in bytes/s: 16 KiB/s .. 16 GiB/s in powers of 4 (≈ 128 kbit/s .. 128 Gbit/s).
prometheus::Histogram::BucketBoundaries ThroughputBuckets();
// measured / predicted TTFT: 0.25 .. 4 around 1 (1 = perfect prediction).
prometheus::Histogram::BucketBoundaries PredictionRatioBuckets();

// Bytes of context delivered towards inference, by form and level. Shared by the controller
// (text, compressed_text: token ids in the plan) and kvcache (kv: bitstreams on Fetch).
void AddContextBytes(Form form, int level, double bytes);

// The front door: per-query outcome, plan and cost-model view.
class ControllerMetrics {
 public:
  static ControllerMetrics& Get();

  void ObserveTtft(Form form, double seconds);
  void ObservePredictedTtft(Form form, double predicted_seconds, double measured_seconds);
  void ObserveStage(Stage stage, Form form, double seconds);
  void CountQuery(Form form, bool slo_violated);
  void CountDecision(Form form, int level, bool replan);
  void SetBandwidthEstimate(const std::string& link, double bytes_per_second);

 private:
  ControllerMetrics();
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& predicted_ttft_;
  prometheus::Family<prometheus::Histogram>& prediction_ratio_;
  prometheus::Family<prometheus::Histogram>& stage_;
  prometheus::Family<prometheus::Counter>& queries_;
  prometheus::Family<prometheus::Counter>& slo_violations_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Gauge>& bandwidth_estimate_;
};

// The model node: tokens, its own TTFT and prefill time, KV fetch as received, codec decode.
class InferenceMetrics {
 public:
  static InferenceMetrics& Get();

  void AddPrefillTokens(Form form, int64_t tokens, double seconds);
  void AddDecodeTokens(int64_t tokens);
  void ObserveTtft(Form form, double seconds);
  // One KV chunk received over `link` (bitstream bytes, wall time from request to last byte).
  void ObserveFetchChunk(const std::string& link, int level, double bytes, double seconds);
  // One chunk entropy-decoded + dequantized: bitstream bytes in, raw KV bytes out.
  void ObserveCodecDecode(int level, double input_bytes, double output_bytes, double seconds);

 private:
  InferenceMetrics();
  prometheus::Family<prometheus::Counter>& prefill_tokens_;
  prometheus::Family<prometheus::Histogram>& prefill_duration_;
  prometheus::Family<prometheus::Counter>& decode_tokens_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Counter>& fetch_bytes_;
  prometheus::Family<prometheus::Counter>& fetch_seconds_;
  prometheus::Family<prometheus::Histogram>& fetch_throughput_;
  prometheus::Family<prometheus::Counter>& decode_in_;
  prometheus::Family<prometheus::Counter>& decode_out_;
  prometheus::Family<prometheus::Counter>& decode_seconds_;
  prometheus::Family<prometheus::Histogram>& decode_duration_;
};

// The KV store: ingest progress, codec encode, Fetch traffic, storage backends.
class KvCacheMetrics {
 public:
  static KvCacheMetrics& Get();

  void IngestStarted();
  void IngestFinished(bool ok, double seconds);
  void AddIngestTokens(int64_t tokens);
  void SetIngestPendingChunks(int64_t chunks);
  // One chunk encoded at `level`: raw KV bytes in, bitstream bytes out.
  void ObserveCodecEncode(int level, double input_bytes, double output_bytes, double seconds);
  void ObserveFetchChunk(int level, double bytes);
  void CountStoreLookup(const std::string& backend, bool hit);
  void CountStoreEviction(const std::string& backend);
  void SetStoreSize(const std::string& backend, double bytes, double entries);
  void SetStoreCapacity(const std::string& backend, double bytes);

 private:
  KvCacheMetrics();
  prometheus::Family<prometheus::Counter>& ingests_;
  prometheus::Family<prometheus::Gauge>& ingests_in_progress_;
  prometheus::Family<prometheus::Histogram>& ingest_duration_;
  prometheus::Family<prometheus::Counter>& ingest_tokens_;
  prometheus::Family<prometheus::Counter>& ingest_chunks_;
  prometheus::Family<prometheus::Gauge>& ingest_pending_;
  prometheus::Family<prometheus::Counter>& encode_in_;
  prometheus::Family<prometheus::Counter>& encode_out_;
  prometheus::Family<prometheus::Counter>& encode_seconds_;
  prometheus::Family<prometheus::Histogram>& compression_ratio_;
  prometheus::Family<prometheus::Counter>& fetch_chunks_;
  prometheus::Family<prometheus::Histogram>& fetch_chunk_bytes_;
  prometheus::Family<prometheus::Counter>& store_hits_;
  prometheus::Family<prometheus::Counter>& store_misses_;
  prometheus::Family<prometheus::Counter>& store_evictions_;
  prometheus::Family<prometheus::Gauge>& store_size_;
  prometheus::Family<prometheus::Gauge>& store_entries_;
  prometheus::Family<prometheus::Gauge>& store_capacity_;
};

// LLMLingua-2 compressor: tokens in/out, ratio, time.
class CompressorMetrics {
 public:
  static CompressorMetrics& Get();

  void ObserveCompression(int64_t input_tokens, int64_t output_tokens, double seconds);

 private:
  CompressorMetrics();
  prometheus::Family<prometheus::Counter>& input_tokens_;
  prometheus::Family<prometheus::Counter>& output_tokens_;
  prometheus::Family<prometheus::Histogram>& ratio_;
  prometheus::Family<prometheus::Histogram>& duration_;
};

}  // namespace ctx::obs
