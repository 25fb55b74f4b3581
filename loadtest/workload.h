// The workload's inputs: documents (one context per *.txt file of a folder), questions
// (one per line), and the file that remembers registered context ids between runs so that
// sweeps register (and kvcache ingests) each document once.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "loadtest/load_generator.h"

namespace ctx::loadtest {

struct Document {
  std::string name;  // file name without the folder
  std::string text;
};

// Every regular *.txt file of `dir`, sorted by name. Error if none.
absl::StatusOr<std::vector<Document>> LoadDocuments(const std::string& dir);
// Non-empty lines of `path` that do not start with '#'. Error if none.
absl::StatusOr<std::vector<std::string>> LoadQuestions(const std::string& path);
// Lines "ID<TAB>NAME". A missing file is an empty list; malformed lines are errors.
absl::StatusOr<std::vector<WorkloadContext>> LoadContextsFile(const std::string& path);
absl::Status SaveContextsFile(const std::string& path, const std::vector<WorkloadContext>& c);

}  // namespace ctx::loadtest
