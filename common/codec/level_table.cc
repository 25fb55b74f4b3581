#include "common/codec/level_table.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ctx::codec {

namespace {

struct Table6 {
  const char* name;
  const char* name_l0;  // name when layer 0 is forced to be sent
  uint16_t k[6], v[6];
  uint16_t k0_sent, v0_sent;  // layer-0 bins used when layer 0 is sent
};

// kv-anchors.md §2 (tables OA..OE, tok method) and §4 (r0 variants).
constexpr Table6 kTables[] = {
    {"U32", "U32", {32, 32, 32, 32, 32, 32}, {32, 32, 32, 32, 32, 32}, 32, 32},
    {"OA", "OA", {8, 12, 16, 32, 32, 32}, {12, 8, 8, 8, 8, 16}, 8, 12},
    {"OB", "OB", {6, 8, 16, 32, 32, 32}, {8, 6, 6, 6, 6, 12}, 6, 8},
    {"OC-r0", "OC", {0, 6, 12, 16, 32, 32}, {0, 6, 6, 6, 6, 12}, 4, 6},
    {"OD-r0", "OD", {0, 6, 12, 16, 32, 32}, {0, 4, 6, 6, 6, 8}, 4, 6},
    {"OE-r0", "OE", {0, 6, 12, 16, 16, 32}, {0, 4, 4, 4, 4, 8}, 4, 6},
};

}  // namespace

std::vector<LevelSpec> DefaultLevels(int layers, bool send_layer0) {
  std::vector<LevelSpec> out;
  for (const Table6& t : kTables) {
    LevelSpec spec;
    spec.name = send_layer0 ? t.name_l0 : t.name;
    for (int l = 0; l < layers; ++l) {
      // Layer l of L sits at relative depth l/(L-1); pick the 6-layer entry nearest to it.
      const int j = layers == 1 ? 5 : static_cast<int>(std::lround(5.0 * l / (layers - 1)));
      uint16_t k = t.k[j], v = t.v[j];
      // Only layer 0 is ever dropped: other layers mapped to entry 0, and layer 0 when the
      // receiver cannot recompute it, take the bins layer 0 has in the parent table.
      if ((l > 0 && j == 0) || (l == 0 && send_layer0)) k = t.k0_sent, v = t.v0_sent;
      if (layers == 1) k = t.k[5], v = t.v[5];
      spec.key_bins.push_back(k);
      spec.value_bins.push_back(v);
    }
    out.push_back(std::move(spec));
  }
  return out;
}

int DefaultLevelIndex(bool send_layer0) { return send_layer0 ? 2 : 3; }

absl::StatusOr<LevelSpec> ParseLevelBins(absl::string_view name, absl::string_view text,
                                         int layers) {
  LevelSpec spec;
  spec.name = std::string(name);
  const size_t bar = text.find('|');
  if (bar == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("level '", name, "': expected 'K bins|V bins', got '", text, "'"));
  }
  bool any_refine = false;
  for (int part = 0; part < 2; ++part) {
    std::istringstream in(std::string(part == 0 ? text.substr(0, bar) : text.substr(bar + 1)));
    std::vector<uint16_t>& bins = part == 0 ? spec.key_bins : spec.value_bins;
    std::vector<uint8_t>& refine = part == 0 ? spec.key_refine : spec.value_refine;
    for (std::string item; in >> item;) {
      char* end = nullptr;
      const long b = std::strtol(item.c_str(), &end, 10);
      long r = 0;
      if (*end == '+') {
        const char* digits = end + 1;
        r = std::strtol(digits, &end, 10);
        if (end == digits) end = const_cast<char*>(item.c_str());  // "B+" without bits
      }
      if (end == item.c_str() || *end != '\0' || b < 0 || b > 65535 || r < 0 || r > 255) {
        return absl::InvalidArgumentError(
            absl::StrCat("level '", name, "': '", item, "' is not 'bins' or 'bins+refine_bits'"));
      }
      bins.push_back(static_cast<uint16_t>(b));
      refine.push_back(static_cast<uint8_t>(r));
      any_refine |= r != 0;
    }
    if (static_cast<int>(bins.size()) != layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("level '", name, "': ", bins.size(), " bins for ", layers, " layers"));
    }
  }
  if (!any_refine) spec.key_refine.clear(), spec.value_refine.clear();
  return spec;
}

}  // namespace ctx::codec
