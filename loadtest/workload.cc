#include "loadtest/workload.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace ctx::loadtest {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<Document>> LoadDocuments(const std::string& dir) {
  std::error_code ec;
  std::vector<Document> docs;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".txt") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::NotFoundError(absl::StrCat("cannot read ", entry.path().string()));
    }
    docs.push_back({entry.path().filename().string(), ss.str()});
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list --docs ", dir, ": ", ec.message()));
  if (docs.empty()) return absl::NotFoundError(absl::StrCat("no *.txt documents in ", dir));
  std::sort(docs.begin(), docs.end(),
            [](const Document& a, const Document& b) { return a.name < b.name; });
  return docs;
}

absl::StatusOr<std::vector<std::string>> LoadQuestions(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read questions file ", path));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    out.push_back(line);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("no questions in ", path));
  return out;
}

absl::StatusOr<std::vector<WorkloadContext>> LoadContextsFile(const std::string& path) {
  std::vector<WorkloadContext> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": expected ID<TAB>NAME, got '", line, "'"));
    }
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

absl::Status SaveContextsFile(const std::string& path, const std::vector<WorkloadContext>& c) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& ctx : c) out << ctx.id << '\t' << ctx.name << '\n';
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace ctx::loadtest
