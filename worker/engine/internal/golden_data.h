// Test helper: the golden reference sets of the shared golden directory
// (see common/testing/test_paths.h), parsed from their JSON files.
// For the engine's tests only; reads files, never throws.
#ifndef WF_WORKER_ENGINE_INTERNAL_GOLDEN_DATA_H_
#define WF_WORKER_ENGINE_INTERNAL_GOLDEN_DATA_H_

#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/testing/test_paths.h"
#include "nlohmann/json.hpp"

namespace wf::engine::internal {

struct GoldenTop {
  int32_t token = 0;
  double logprob = 0.0;
};

struct GoldenStep {
  int32_t token = 0;
  std::vector<GoldenTop> top5;
  double margin = 0.0;
};

struct GoldenCase {
  std::string name;
  std::vector<int32_t> prompt_ids;
  bool has_prompt_text = false;
  std::string prompt_text;
  std::vector<int32_t> greedy_ids;
  std::vector<GoldenStep> steps;
  std::vector<std::vector<GoldenTop>> prompt_top5;
  std::vector<float> last_prompt_logits;
};

struct GoldenSet {
  std::string json_path;
  std::string model_path;
  std::vector<GoldenCase> cases;
};

inline std::vector<GoldenTop> ParseTop(const nlohmann::json& j) {
  std::vector<GoldenTop> out;
  for (const auto& e : j) out.push_back({e.at(0).get<int32_t>(), e.at(1).get<double>()});
  return out;
}

inline absl::StatusOr<GoldenSet> ParseGoldenSet(const std::string& json_path) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(json_path));
  GoldenSet set;
  set.json_path = json_path;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    set.model_path =
        (std::filesystem::path(json_path).parent_path() / j.at("model_file").get<std::string>())
            .string();
    for (const auto& c : j.at("cases")) {
      GoldenCase gc;
      gc.name = c.at("name").get<std::string>();
      gc.prompt_ids = c.at("prompt_ids").get<std::vector<int32_t>>();
      if (c.contains("prompt_text")) {
        gc.has_prompt_text = true;
        gc.prompt_text = c.at("prompt_text").get<std::string>();
      }
      gc.greedy_ids = c.at("greedy_ids").get<std::vector<int32_t>>();
      for (const auto& s : c.at("steps")) {
        gc.steps.push_back(
            {s.at("token").get<int32_t>(), ParseTop(s.at("top5")), s.at("margin").get<double>()});
      }
      for (const auto& p : c.at("prompt_top5")) gc.prompt_top5.push_back(ParseTop(p));
      gc.last_prompt_logits = c.at("last_prompt_logits").get<std::vector<float>>();
      set.cases.push_back(std::move(gc));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": ", e.what()));
  }
  return set;
}

// Every golden-*.json of the golden directory, sorted by name.
inline absl::StatusOr<std::vector<GoldenSet>> LoadGoldenSets() {
  const std::string dir = wf::testing::GoldenDir();
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("golden-") && name.ends_with(".json")) paths.push_back(entry.path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("golden directory ", dir, ": ", ec.message()));
  if (paths.empty()) return absl::NotFoundError(absl::StrCat("no golden-*.json in ", dir));
  std::sort(paths.begin(), paths.end());
  std::vector<GoldenSet> sets;
  for (const std::string& p : paths) {
    BN_ASSIGN_OR_RETURN(GoldenSet s, ParseGoldenSet(p));
    sets.push_back(std::move(s));
  }
  return sets;
}

}  // namespace wf::engine::internal

#endif  // WF_WORKER_ENGINE_INTERNAL_GOLDEN_DATA_H_
