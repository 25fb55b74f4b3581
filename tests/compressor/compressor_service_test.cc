// The real ctxstream-compressor binary (tiny-lingua2, token counts in tiny-llama's tokenizer)
// started on 127.0.0.1 and called over gRPC.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ctxstream/v1/compressor.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "tests/support/child_process.h"

namespace ctx::testing {
namespace {

namespace pb = ctxstream::v1;

RunningService StartCompressor(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      "--model_dir=" + SourcePath("models/tiny-lingua2"),
      "--target_tokenizer=" + SourcePath("models/tiny-llama/tokenizer.model")};
  args.insert(args.end(), extra.begin(), extra.end());
  return StartService("compressor", args);
}

std::unique_ptr<pb::Compressor::Stub> Stub(const RunningService& s) {
  return pb::Compressor::NewStub(
      grpc::CreateChannel(s.grpc_address, grpc::InsecureChannelCredentials()));
}

grpc::Status Call(pb::Compressor::Stub& stub, const pb::CompressRequest& req,
                  pb::CompressResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub.Compress(&ctx, req, resp);
}

// tests/data/compressor/paragraphs.txt: five paragraphs (~480 tiny-llama tokens).
std::string Paragraphs() {
  std::ifstream f(SourcePath("tests/data/compressor/paragraphs.txt"));
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> SplitParagraphs(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

size_t Count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size()))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("Compress at rate 0.5 keeps about half the tokens and every forced token",
          "[compressor][grpc]") {
  RunningService s = StartCompressor();
  auto stub = Stub(s);
  const std::string text = Paragraphs();
  pb::CompressRequest req;
  req.add_contexts(text);
  req.set_rate(0.5f);
  req.add_force_tokens("\n");
  req.add_force_tokens("TCP");
  req.add_force_tokens("BBR");
  req.set_tenant("test");
  pb::CompressResponse resp;
  const grpc::Status st = Call(*stub, req, &resp);
  REQUIRE(st.ok());
  INFO(resp.compressed_prompt());

  CHECK(resp.origin_tokens() > 400);
  CHECK(resp.compressed_tokens() > 0);
  const double kept = double(resp.compressed_tokens()) / double(resp.origin_tokens());
  CHECK(kept == Approx(0.5).margin(0.12));
  CHECK(resp.rate() == Approx(kept).epsilon(1e-6));
  CHECK(resp.compressed_prompt().size() < text.size());
  REQUIRE(resp.compressed_prompt_list_size() == 1);
  CHECK(resp.compressed_prompt_list(0) == resp.compressed_prompt());
  // Forced: every newline, "TCP" and "BBR" as often as in the input.
  CHECK(Count(resp.compressed_prompt(), "\n") == Count(text, "\n"));
  CHECK(Count(resp.compressed_prompt(), "TCP") == Count(text, "TCP"));
  CHECK(Count(resp.compressed_prompt(), "BBR") == Count(text, "BBR"));
  CHECK(resp.ratio().back() == 'x');
  CHECK(resp.rate_text().back() == '%');
  CHECK(resp.num_chunks() >= 1);
  CHECK(resp.compress_seconds() > 0.0);
  CHECK(resp.word_labels_size() == 0);  // not asked for

  SECTION("target_token replaces rate") {
    pb::CompressRequest t;
    t.add_contexts(text);
    t.set_rate(0.9f);  // ignored
    t.set_target_token(100);
    pb::CompressResponse r;
    REQUIRE(Call(*stub, t, &r).ok());
    INFO(r.compressed_prompt());
    CHECK(r.origin_tokens() == resp.origin_tokens());
    CHECK(double(r.compressed_tokens()) == Approx(100).margin(50));
  }
}

TEST_CASE("word labels carry p(keep), labels agree with the kept text", "[compressor][grpc]") {
  RunningService s = StartCompressor();
  auto stub = Stub(s);
  const std::string text = SplitParagraphs(Paragraphs())[1];
  pb::CompressRequest req;
  req.add_contexts(text);
  req.set_rate(0.4f);
  req.add_force_tokens("window");
  req.set_force_reserve_digit(true);
  req.set_return_word_label(true);
  req.set_return_word_probs(true);
  pb::CompressResponse resp;
  REQUIRE(Call(*stub, req, &resp).ok());
  REQUIRE(resp.word_labels_size() > 50);
  CHECK(!resp.fn_labeled_original_prompt().empty());
  int kept = 0, window = 0;
  std::string kept_words;
  for (const pb::WordLabel& w : resp.word_labels()) {
    INFO(w.word());
    CHECK(w.prob() >= 0.0f);
    CHECK(w.prob() <= 1.0f);
    if (w.word() == "window") {
      ++window;
      CHECK(w.keep());
      CHECK(w.prob() == 1.0f);
    }
    if (w.keep()) {
      ++kept;
      CHECK(resp.compressed_prompt().find(w.word()) != std::string::npos);
    }
  }
  CHECK(window == static_cast<int>(Count(text, "window")));
  CHECK(kept > 0);
  CHECK(kept < resp.word_labels_size());
  // Distinct probabilities: they are real classifier outputs, not 0/1 labels.
  std::vector<float> probs;
  for (const auto& w : resp.word_labels()) probs.push_back(w.prob());
  std::sort(probs.begin(), probs.end());
  CHECK(std::unique(probs.begin(), probs.end()) - probs.begin() > 20);
}

TEST_CASE("several contexts with the context-level filter drop whole contexts",
          "[compressor][grpc]") {
  RunningService s = StartCompressor();
  auto stub = Stub(s);
  const auto paras = SplitParagraphs(Paragraphs());
  REQUIRE(paras.size() == 5);
  pb::CompressRequest req;
  for (int i = 0; i < 4; ++i) req.add_contexts(paras[static_cast<size_t>(i)]);
  req.set_rate(0.5f);
  req.set_return_word_label(true);

  pb::CompressResponse all;
  REQUIRE(Call(*stub, req, &all).ok());  // filter off (proto default): every context survives
  REQUIRE(all.compressed_prompt_list_size() == 4);
  for (const auto& c : all.compressed_prompt_list()) CHECK(!c.empty());

  req.set_use_context_level_filter(true);
  req.set_target_context(1);     // context_level_rate 1/4: the best-scoring context ...
  req.add_force_context_ids(3);  // ... plus the forced one
  pb::CompressResponse resp;
  REQUIRE(Call(*stub, req, &resp).ok());
  INFO(resp.compressed_prompt());
  // The list holds the kept contexts only (as in the reference).
  std::vector<std::string> kept(resp.compressed_prompt_list().begin(),
                                resp.compressed_prompt_list().end());
  CHECK(kept.size() >= 1);
  CHECK(kept.size() <= 2);
  CHECK(std::any_of(kept.begin(), kept.end(),
                    [](const std::string& c) { return c.rfind("Newer algorithms", 0) == 0; }));
  std::string joined;
  for (size_t i = 0; i < kept.size(); ++i) joined += (i ? "\n\n" : "") + kept[i];
  CHECK(resp.compressed_prompt() == joined);
  CHECK(resp.compressed_tokens() < all.compressed_tokens());
  CHECK(resp.origin_tokens() == all.origin_tokens());
  // Words of dropped contexts are labelled "drop".
  const int labelled_kept =
      static_cast<int>(std::count_if(resp.word_labels().begin(), resp.word_labels().end(),
                                     [](const auto& w) { return w.keep(); }));
  CHECK(labelled_kept > 0);
  CHECK(labelled_kept < static_cast<int>(std::count_if(
                            all.word_labels().begin(), all.word_labels().end(),
                            [](const auto& w) { return w.keep(); })));
}

TEST_CASE("bad requests are INVALID_ARGUMENT with a clear message, the server keeps serving",
          "[compressor][grpc]") {
  RunningService s = StartCompressor();
  auto stub = Stub(s);
  auto expect_invalid = [&](const pb::CompressRequest& req, const std::string& needle) {
    pb::CompressResponse resp;
    const grpc::Status st = Call(*stub, req, &resp);
    INFO(st.error_message());
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message().find(needle) != std::string::npos);
  };
  pb::CompressRequest req;
  req.add_contexts("Congestion control adapts the window.");
  req.set_rate(1.5f);
  expect_invalid(req, "rate 1.5 is outside (0, 1]");
  req.set_rate(-0.2f);
  expect_invalid(req, "is outside (0, 1]");
  expect_invalid(pb::CompressRequest{}, "contexts is empty");
  pb::CompressRequest empty_ctx;
  empty_ctx.add_contexts("Fine.");
  empty_ctx.add_contexts("");
  expect_invalid(empty_ctx, "contexts[1] is empty");
  pb::CompressRequest too_many;
  too_many.add_contexts("Some words here.");
  for (int i = 0; i < 101; ++i) too_many.add_force_tokens("tok" + std::to_string(i));
  expect_invalid(too_many, "101 force tokens; at most 100");
  pb::CompressRequest bad_mode;
  bad_mode.add_contexts("Some words here.");
  bad_mode.set_token_to_word("median");
  expect_invalid(bad_mode, "token_to_word");

  // Still serving.
  pb::CompressRequest ok;
  ok.add_contexts(SplitParagraphs(Paragraphs())[0]);
  ok.set_rate(0.5f);
  pb::CompressResponse resp;
  REQUIRE(Call(*stub, ok, &resp).ok());
  CHECK(resp.compressed_tokens() > 0);
  CHECK(resp.compressed_tokens() < resp.origin_tokens());
}

TEST_CASE("concurrent requests (batched into shared forwards) equal sequential ones",
          "[compressor][grpc]") {
  // A wide batching window so that the concurrent requests surely share forwards.
  RunningService s = StartCompressor({"--batch_window_us=50000"});
  auto stub = Stub(s);
  const std::string text = Paragraphs();
  const auto paras = SplitParagraphs(text);
  std::vector<pb::CompressRequest> reqs(4);
  reqs[0].add_contexts(text);
  reqs[0].set_rate(0.5f);
  reqs[1].add_contexts(paras[0]);
  reqs[1].add_contexts(paras[2]);
  reqs[1].set_rate(0.33f);
  reqs[2].add_contexts(paras[4]);
  reqs[2].set_target_token(40);
  reqs[2].add_force_tokens("\n");
  reqs[3].add_contexts(paras[3]);
  reqs[3].set_token_to_word("first");
  reqs[3].set_reference_compat(true);
  for (auto& r : reqs) r.set_return_word_probs(true);

  std::vector<pb::CompressResponse> seq(reqs.size()), conc(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) REQUIRE(Call(*stub, reqs[i], &seq[i]).ok());
  std::vector<grpc::Status> status(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] { status[i] = Call(*stub, reqs[i], &conc[i]); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    REQUIRE(status[i].ok());
    CHECK(conc[i].compressed_prompt() == seq[i].compressed_prompt());
    CHECK(conc[i].origin_tokens() == seq[i].origin_tokens());
    CHECK(conc[i].compressed_tokens() == seq[i].compressed_tokens());
    REQUIRE(conc[i].word_labels_size() == seq[i].word_labels_size());
    for (int k = 0; k < conc[i].word_labels_size(); ++k) {
      CHECK(conc[i].word_labels(k).keep() == seq[i].word_labels(k).keep());
      CHECK(conc[i].word_labels(k).prob() == Approx(seq[i].word_labels(k).prob()).margin(1e-5));
    }
  }
}

TEST_CASE("/metrics shows the compressor metrics after a request", "[compressor][grpc]") {
  RunningService s = StartCompressor();
  auto stub = Stub(s);
  pb::CompressRequest req;
  req.add_contexts(SplitParagraphs(Paragraphs())[2]);
  req.set_rate(0.5f);
  pb::CompressResponse resp;
  REQUIRE(Call(*stub, req, &resp).ok());
  const std::string m = HttpGet(s.metrics_address, "/metrics");
  CHECK(m.find("ctxstream_compressor_input_tokens_total " + std::to_string(resp.origin_tokens())) !=
        std::string::npos);
  CHECK(m.find("ctxstream_compressor_output_tokens_total " +
               std::to_string(resp.compressed_tokens())) != std::string::npos);
  CHECK(m.find("ctxstream_compressor_compression_ratio_count 1") != std::string::npos);
  CHECK(m.find("ctxstream_compressor_duration_seconds_count 1") != std::string::npos);
  CHECK(m.find("ctxstream_rpc_requests_total{code=\"OK\",method=\"Compress\"") !=
        std::string::npos);
}

TEST_CASE("a model that cannot be loaded is a one-line error and exit 1", "[compressor][grpc]") {
  ChildProcess p({BinaryPath("ctxstream-compressor"), "--listen=127.0.0.1:0",
                  "--metrics_listen=127.0.0.1:0", "--model_dir=/nonexistent/lingua"});
  const auto code = p.WaitExit(std::chrono::seconds(20));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  const std::string err = p.DrainStderr(std::chrono::seconds(1));
  INFO(err);
  CHECK(err.find("--model_dir=/nonexistent/lingua") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
}

}  // namespace ctx::testing

namespace ctx::testing {

TEST_CASE("a full queue answers RESOURCE_EXHAUSTED with a retry hint", "[compressor][grpc]") {
  // One request thread, one queue slot: of 8 simultaneous ~0.1 s requests at most 2 are taken.
  RunningService s = StartCompressor({"--request_threads=1", "--max_queue=1"});
  auto stub = Stub(s);
  pb::CompressRequest req;
  req.add_contexts(Paragraphs());
  std::vector<grpc::Status> status(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < status.size(); ++i) {
    threads.emplace_back([&, i] {
      pb::CompressResponse resp;
      status[i] = Call(*stub, req, &resp);
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, busy = 0;
  for (const auto& st : status) {
    INFO(st.error_message());
    if (st.ok()) {
      ++ok;
    } else {
      CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
      CHECK(st.error_message().find("retry later") != std::string::npos);
      ++busy;
    }
  }
  CHECK(ok >= 1);
  CHECK(busy >= 1);
}

}  // namespace ctx::testing
