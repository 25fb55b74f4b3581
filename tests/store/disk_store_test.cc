// DiskStore: conformance, restart recovery, corruption detection, temp files, LRU cap,
// and kill -9 during writes.
#include "common/store/disk_store.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/store/conformance.h"

using namespace ctx::store;
using ctx::store::testing::TestBytes;
using ctx::store::testing::TestKey;
namespace fs = std::filesystem;

namespace {

// A fresh directory under $TMPDIR, removed when the object dies.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ctx_store_test.XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<DiskStore> OpenOrDie(const fs::path& dir, uint64_t cap = 0) {
  auto s = DiskStore::Open(dir, cap);
  REQUIRE(s.ok());
  return std::move(*s);
}

int CountFiles(const fs::path& root, const std::string& prefix) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

void FlipByte(const fs::path& p, std::streamoff offset) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x20);
  f.seekp(offset);
  f.write(&c, 1);
}

}  // namespace

TEST_CASE("disk store: conformance", "[store][disk]") {
  TempDir base;
  int n = 0;
  ctx::store::testing::RunConformanceSuite([&]() -> std::unique_ptr<ChunkStore> {
    auto s = DiskStore::Open(base.path / std::to_string(n++));
    REQUIRE(s.ok());
    return std::move(*s);
  });
}

TEST_CASE("disk store: everything survives a reopen, layout is fanned out", "[store][disk]") {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path);
    for (uint32_t i = 0; i < 20; ++i) REQUIRE(store->Put(TestKey(i), TestBytes(100 + i, i)).ok());
    REQUIRE(store->Delete(TestKey(7)).ok());
    REQUIRE(store->PutManifest("acme", "doc-1", "m1").ok());
    REQUIRE(store->PutManifest("beta", "doc-2", "m2").ok());
    const std::string k = TestKey(3).ToString();
    CHECK(store->BlobPath(TestKey(3)) ==
          dir.path / "chunks" / k.substr(0, 2) / k.substr(2, 2) / (k + ".blob"));
    CHECK(fs::exists(store->BlobPath(TestKey(3))));
  }
  auto store = OpenOrDie(dir.path);
  const StoreStats s = store->Stats();
  CHECK(s.items == 19);
  uint64_t expected_bytes = 0;
  for (uint32_t i = 0; i < 20; ++i) {
    if (i == 7) {
      CHECK(store->Get(TestKey(i)).status().code() == absl::StatusCode::kNotFound);
      continue;
    }
    expected_bytes += 100 + i;
    CHECK(store->Get(TestKey(i)).value() == TestBytes(100 + i, i));
  }
  CHECK(s.bytes == expected_bytes);
  CHECK(s.manifests == 2);
  CHECK(store->GetManifest("acme", "doc-1").value() == "m1");
  CHECK(store->ListManifests("beta").value() == std::vector<std::string>{"doc-2"});
}

TEST_CASE("disk store: a flipped byte or torn file is DATA_LOSS and never served",
          "[store][disk]") {
  TempDir dir;
  auto store = OpenOrDie(dir.path);
  REQUIRE(store->Put(TestKey(1), TestBytes(1000, 1)).ok());
  REQUIRE(store->Put(TestKey(2), TestBytes(1000, 2)).ok());
  REQUIRE(store->Put(TestKey(3), TestBytes(1000, 3)).ok());

  SECTION("flip in the payload") { FlipByte(store->BlobPath(TestKey(1)), 24 + 500); }
  SECTION("flip in the header") { FlipByte(store->BlobPath(TestKey(1)), 3); }
  SECTION("torn (truncated) file") { fs::resize_file(store->BlobPath(TestKey(1)), 24 + 999); }
  SECTION("truncated to nothing") { fs::resize_file(store->BlobPath(TestKey(1)), 0); }
  SECTION("another key's file copied over it") {
    fs::copy_file(store->BlobPath(TestKey(2)), store->BlobPath(TestKey(1)),
                  fs::copy_options::overwrite_existing);
  }
  auto got = store->Get(TestKey(1));
  CHECK(got.status().code() == absl::StatusCode::kDataLoss);
  CHECK(got.status().message().find("corrupt") != absl::string_view::npos);
  // The corrupt blob is dropped: later reads are NotFound (re-ingest), others unaffected.
  CHECK_FALSE(store->Contains(TestKey(1)).value());
  CHECK(store->Get(TestKey(1)).status().code() == absl::StatusCode::kNotFound);
  CHECK(store->Get(TestKey(2)).value() == TestBytes(1000, 2));
  CHECK(store->Stats().items == 2);
}

TEST_CASE("disk store: a corrupted manifest is DATA_LOSS", "[store][disk]") {
  TempDir dir;
  auto store = OpenOrDie(dir.path);
  REQUIRE(store->PutManifest("acme", "doc", "manifest bytes").ok());
  FlipByte(store->ManifestPath("acme", "doc"), 24 + 2);
  CHECK(store->GetManifest("acme", "doc").status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("disk store: temp files are never visible and are cleaned at open", "[store][disk]") {
  TempDir dir;
  BlobKey key = TestKey(1);
  fs::path blob_dir;
  {
    auto store = OpenOrDie(dir.path);
    REQUIRE(store->Put(key, "committed").ok());
    REQUIRE(store->PutManifest("acme", "doc", "m").ok());
    CHECK(CountFiles(dir.path, ".tmp.") == 0);  // nothing left behind by normal writes
    blob_dir = store->BlobPath(key).parent_path();
    // Simulate crashes mid-write: complete-looking temp files next to real ones.
    fs::copy_file(store->BlobPath(key), blob_dir / ".tmp.999.0");
    fs::copy_file(store->ManifestPath("acme", "doc"),
                  dir.path / "manifests" / "acme" / ".tmp.999.1");
    CHECK(store->ListManifests("acme").value() == std::vector<std::string>{"doc"});
  }
  auto store = OpenOrDie(dir.path);
  CHECK(store->temp_files_removed_at_open() == 2);
  CHECK(CountFiles(dir.path, ".tmp.") == 0);
  CHECK(store->Stats().items == 1);
  CHECK(store->ListManifests("acme").value() == std::vector<std::string>{"doc"});
  CHECK(store->Get(key).value() == "committed");
}

TEST_CASE("disk store: byte cap evicts least recently used blobs and their files",
          "[store][disk]") {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path, 300);
    REQUIRE(store->Put(TestKey(1), std::string(100, 'a')).ok());
    REQUIRE(store->Put(TestKey(2), std::string(100, 'b')).ok());
    REQUIRE(store->Put(TestKey(3), std::string(100, 'c')).ok());
    REQUIRE(store->Get(TestKey(1)).ok());
    REQUIRE(store->Put(TestKey(4), std::string(100, 'd')).ok());  // evicts 2
    CHECK_FALSE(store->Contains(TestKey(2)).value());
    CHECK_FALSE(fs::exists(store->BlobPath(TestKey(2))));
    CHECK(store->Stats().evictions == 1);
    CHECK(store->Stats().bytes == 300);
    const absl::Status big = store->Put(TestKey(9), std::string(301, 'x'));
    CHECK(big.code() == absl::StatusCode::kResourceExhausted);
    CHECK(big.message().find("capacity of 300 bytes") != absl::string_view::npos);
    const std::string small(10, 's'), huge(301, 'h');
    const std::vector<ChunkStore::BlobWrite> batch = {{TestKey(8), small}, {TestKey(9), huge}};
    CHECK(store->PutMany(batch).code() == absl::StatusCode::kResourceExhausted);
    CHECK_FALSE(store->Contains(TestKey(8)).value());
  }
  // Reopen with a smaller cap: the index is rebuilt and trimmed to fit.
  auto store = OpenOrDie(dir.path, 200);
  const StoreStats s = store->Stats();
  CHECK(s.items == 2);
  CHECK(s.bytes == 200);
  CHECK(CountFiles(dir.path / "chunks", "") == 2);
}

TEST_CASE("disk store: kill -9 while writing loses nothing committed", "[store][disk]") {
  TempDir dir;
  // Child: for context c = 0, 1, ...: put 4 chunks, then the manifest (commit), forever.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto opened = DiskStore::Open(dir.path);
    if (!opened.ok()) ::_exit(2);
    auto& store = *opened;
    for (uint32_t c = 0;; ++c) {
      for (uint32_t i = 0; i < 4; ++i) {
        if (!store->Put(TestKey(c * 4 + i), TestBytes(20000, c * 4 + i)).ok()) ::_exit(3);
      }
      if (!store->PutManifest("acme", "ctx-" + std::to_string(c), std::to_string(c)).ok())
        ::_exit(4);
    }
  }
  // Wait for a few commits, then kill it mid-flight.
  const fs::path manifests = dir.path / "manifests" / "acme";
  for (int i = 0; i < 2000; ++i) {  // ≤ 20 s; normally well under 1 s
    std::error_code ec;
    int n = 0;  // committed manifests only (not in-flight .tmp. files)
    for (auto it = fs::directory_iterator(manifests, ec); !ec && it != fs::end(it); ++it) {
      if (it->path().extension() == ".manifest") ++n;
    }
    if (n >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));

  auto store = OpenOrDie(dir.path);
  auto ids = store->ListManifests("acme");
  REQUIRE(ids.ok());
  CHECK(ids->size() >= 3);
  for (const std::string& id : *ids) {
    const uint32_t c = static_cast<uint32_t>(std::stoul(id.substr(4)));
    CHECK(store->GetManifest("acme", id).value() == std::to_string(c));
    for (uint32_t i = 0; i < 4; ++i) {  // every chunk of a committed context is intact
      CHECK(store->Get(TestKey(c * 4 + i)).value() == TestBytes(20000, c * 4 + i));
    }
  }
  // Nothing stored is ever torn: every indexed blob reads back whole.
  uint32_t readable = 0;
  for (uint32_t k = 0; k < (ids->size() + 1) * 4; ++k) {
    auto got = store->Get(TestKey(k));
    CHECK(got.status().code() != absl::StatusCode::kDataLoss);
    if (got.ok()) {
      CHECK(*got == TestBytes(20000, k));
      ++readable;
    }
  }
  CHECK(readable >= ids->size() * 4);
  CHECK(CountFiles(dir.path, ".tmp.") == 0);
}
