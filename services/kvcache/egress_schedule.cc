#include "services/kvcache/egress_schedule.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ctx::kvcache {

absl::StatusOr<EgressSchedule> EgressSchedule::Parse(const std::string& spec) {
  EgressSchedule out;
  for (absl::string_view item :
       absl::StrSplit(spec, absl::ByAnyChar(",\n"), absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty() || item.front() == '#') continue;
    Step step;
    absl::string_view rate = item, start;
    if (const size_t at = item.find('@'); at != absl::string_view::npos) {
      rate = item.substr(0, at);
      start = item.substr(at + 1);
      if (start.empty() || (start.back() != 'c' && start.back() != 's')) {
        return absl::InvalidArgumentError(
            absl::StrCat("egress schedule step '", item,
                         "': the start must end in 'c' (chunk index) or 's' (seconds)"));
      }
      step.by_chunk = start.back() == 'c';
      start.remove_suffix(1);
      if (!absl::SimpleAtod(start, &step.start) || !std::isfinite(step.start) || step.start < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("egress schedule step '", item, "': bad start '", start, "'"));
      }
    }
    if (!absl::SimpleAtod(rate, &step.bytes_per_second) || !std::isfinite(step.bytes_per_second) ||
        step.bytes_per_second < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "egress schedule step '", item, "': bad rate '", rate, "' (bytes/s, 0 = unlimited)"));
    }
    out.steps_.push_back(step);
  }
  return out;
}

absl::StatusOr<EgressSchedule> EgressSchedule::ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return EgressSchedule();  // missing: no schedule
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<EgressSchedule> s = Parse(ss.str());
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.status().message()));
  return s;
}

double EgressSchedule::RateAt(unsigned chunk_index, double seconds, double base) const {
  double rate = base;
  for (const Step& s : steps_) {
    if (s.by_chunk ? chunk_index >= s.start : seconds >= s.start) rate = s.bytes_per_second;
  }
  return rate;
}

}  // namespace ctx::kvcache
