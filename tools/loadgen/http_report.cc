// Figures and reports of HTTP runs (declared in http_loadgen.h).
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "tools/loadgen/http_loadgen.h"

namespace wf::loadgen {
namespace {

using Json = nlohmann::json;

HttpRunStats SummarizeRecords(const std::vector<const HttpRequestRecord*>& records, int32_t concurrency,
                              double start, double end) {
  HttpRunStats out;
  out.start_seconds = start;
  out.end_seconds = end;
  RunResult run;
  run.concurrency = concurrency;
  run.wall_seconds = end - start;
  std::vector<double> error_seconds;
  int64_t tokens = 0;
  for (const HttpRequestRecord* r : records) {
    run.requests.push_back(r->base);
    ++out.by_status[r->status];
    out.text_events += static_cast<int64_t>(r->base.batches.size());
    tokens += r->base.completion_tokens > 0 ? r->base.completion_tokens
                                            : static_cast<int64_t>(r->base.batches.size());
    if (r->status != 0 && r->status != 200) {
      ++out.error_answers;
      if (r->retry_after.empty()) ++out.error_answers_without_retry_after;
      error_seconds.push_back(r->base.end_seconds - r->base.start_seconds);
    }
  }
  out.stats = Summarize(run);
  // Usage counts tokens exactly; a text event may carry several.
  out.stats.generated_tokens = tokens;
  if (run.wall_seconds > 0) {
    out.stats.generated_tokens_per_second = static_cast<double>(tokens) / run.wall_seconds;
    out.stats.requests_per_second = static_cast<double>(out.stats.requests_ok) / run.wall_seconds;
  } else {
    out.stats.generated_tokens_per_second = out.stats.requests_per_second = 0;
  }
  out.error_answer_seconds = Summarize(error_seconds);
  return out;
}

std::string Triple(const Distribution& d, double scale, int decimals) {
  if (d.count == 0) return "-";
  return absl::StrFormat("%.*f/%.*f/%.*f", decimals, d.p50 * scale, decimals, d.p90 * scale, decimals, d.p99 * scale);
}

std::string StatusList(const HttpRunStats& s) {
  std::string out;
  for (const auto& [status, count] : s.by_status) {
    absl::StrAppend(&out, out.empty() ? "" : " ", status == 0 ? "none" : absl::StrCat(status), ":", count);
  }
  return out.empty() ? "-" : out;
}

Json DistributionJson(const Distribution& d) {
  Json j;
  j["count"] = d.count;
  const std::pair<const char*, double> fields[] = {{"mean", d.mean}, {"min", d.min}, {"p50", d.p50},
                                                   {"p90", d.p90},   {"p99", d.p99}, {"max", d.max}};
  for (const auto& [key, value] : fields) j[key] = d.count == 0 ? Json(nullptr) : Json(value);
  return j;
}

Json StatsJson(const HttpRunStats& s) {
  Json j;
  j["start_seconds"] = s.start_seconds;
  j["end_seconds"] = s.end_seconds;
  j["requests_ok"] = s.stats.requests_ok;
  j["requests_failed"] = s.stats.requests_failed;
  j["by_status"] = Json::object();
  for (const auto& [status, count] : s.by_status) j["by_status"][absl::StrCat(status)] = count;
  j["failed_by_code"] = Json::object();
  for (const auto& [key, count] : s.stats.failed_by_code) j["failed_by_code"][key] = count;
  j["first_error"] = Json::object();
  for (const auto& [key, message] : s.stats.first_error) j["first_error"][key] = message;
  j["generated_tokens"] = s.stats.generated_tokens;
  j["generated_tokens_per_second"] = s.stats.generated_tokens_per_second;
  j["requests_per_second"] = s.stats.requests_per_second;
  j["peak_open"] = s.peak_open;
  j["error_answers"] = s.error_answers;
  j["error_answers_without_retry_after"] = s.error_answers_without_retry_after;
  j["error_answer_seconds"] = DistributionJson(s.error_answer_seconds);
  j["ttft_seconds"] = DistributionJson(s.stats.ttft_seconds);
  j["itl_seconds"] = DistributionJson(s.stats.itl_seconds);
  j["e2e_seconds"] = DistributionJson(s.stats.e2e_seconds);
  return j;
}

}  // namespace

HttpRunStats SummarizeHttp(const HttpRunResult& run) {
  std::vector<const HttpRequestRecord*> all;
  double lo = 0, hi = 0;
  for (const HttpRequestRecord& r : run.requests) {
    if (all.empty()) {
      lo = r.base.start_seconds;
      hi = r.base.end_seconds;
    }
    lo = std::min(lo, r.base.start_seconds);
    hi = std::max(hi, r.base.end_seconds);
    all.push_back(&r);
  }
  HttpRunStats s = SummarizeRecords(all, run.concurrency, lo, hi);
  s.peak_open = run.peak_open;
  return s;
}

std::vector<HttpRunStats> SummarizeHttpIntervals(const HttpRunResult& run, double seconds) {
  std::vector<HttpRunStats> out;
  if (!(seconds > 0) || run.requests.empty()) return out;
  double last_end = 0;
  for (const HttpRequestRecord& r : run.requests) last_end = std::max(last_end, r.base.end_seconds);
  const size_t n = static_cast<size_t>(std::floor(last_end / seconds)) + 1;
  std::vector<std::vector<const HttpRequestRecord*>> buckets(n);
  for (const HttpRequestRecord& r : run.requests) {
    buckets[std::min(n - 1, static_cast<size_t>(std::max(0.0, r.base.end_seconds) / seconds))].push_back(&r);
  }
  for (size_t i = 0; i < n; ++i) {
    const double start = static_cast<double>(i) * seconds;
    const double end = std::min(start + seconds, last_end);
    out.push_back(SummarizeRecords(buckets[i], run.concurrency, start, end));
  }
  return out;
}

std::string FormatHttpTable(const HttpLoadgenConfig& c, const std::string& model, const HttpRunStats& total,
                            const std::vector<HttpRunStats>& intervals, const std::optional<HoldPoint>& hold) {
  std::string urls;
  for (const std::string& u : c.urls) absl::StrAppend(&urls, urls.empty() ? "" : ",", u);
  std::string out = absl::StrCat(
      "urls ", urls, " (model ", model, ")\n", "endpoint ", c.endpoint, ", prompts ",
      c.prompts.empty() ? absl::StrCat("built-in mix of ", DefaultPromptMix().size())
                        : absl::StrCat(c.prompts.size(), " given"),
      ", max_tokens ", c.max_tokens, c.max_tokens_max > c.max_tokens ? absl::StrCat("..", c.max_tokens_max) : "",
      ", stream fraction ", c.stream_fraction, ", temperature ", c.temperature, ", ignore_eos ",
      c.ignore_eos ? "on" : "off", ", seed ", c.seed, "\n\n");
  const auto row = [](const std::string& label, const HttpRunStats& s) {
    return absl::StrFormat("%-13s %7d %6d %8.2f %10.2f %8.2f %22s %20s %20s  %s\n", label, s.stats.requests_ok,
                           s.stats.requests_failed, s.end_seconds - s.start_seconds, s.stats.generated_tokens_per_second,
                           s.stats.requests_per_second, Triple(s.stats.ttft_seconds, 1e3, 1),
                           Triple(s.stats.itl_seconds, 1e3, 1), Triple(s.stats.e2e_seconds, 1.0, 2), StatusList(s));
  };
  absl::StrAppend(&out, absl::StrFormat("%-13s %7s %6s %8s %10s %8s %22s %20s %20s  %s\n", "interval", "ok", "failed",
                                        "wall s", "gen tok/s", "req/s", "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99",
                                        "e2e s p50/p90/p99", "by status"));
  for (const HttpRunStats& s : intervals) {
    absl::StrAppend(&out, row(absl::StrFormat("%.0f-%.0fs", s.start_seconds, s.end_seconds), s));
  }
  absl::StrAppend(&out, row("total", total));
  absl::StrAppend(&out, "peak open requests ", total.peak_open, "; error answers ", total.error_answers, " (",
                  total.error_answers_without_retry_after, " without Retry-After",
                  total.error_answer_seconds.count > 0
                      ? absl::StrFormat(", answered in p50 %.1f ms, max %.1f ms", total.error_answer_seconds.p50 * 1e3,
                                        total.error_answer_seconds.max * 1e3)
                      : "",
                  ")\n");
  if (hold.has_value()) {
    absl::StrAppend(&out, absl::StrFormat("hold at %.2f s: %d requests open at once (%d held after their first "
                                          "event, %d of them already complete; %d ended before)\n",
                                          hold->seconds, hold->open_requests, hold->held_streams, hold->held_complete,
                                          hold->ended_before_hold));
  }
  for (const auto& [key, count] : total.stats.failed_by_code) {
    auto it = total.stats.first_error.find(key);
    absl::StrAppend(&out, count, " failed with ", key,
                    it != total.stats.first_error.end() && !it->second.empty() ? absl::StrCat(" (", it->second, ")")
                                                                               : "",
                    "\n");
  }
  return out;
}

std::string FormatHttpJson(const HttpLoadgenConfig& c, const std::string& model, int32_t concurrency,
                           const HttpRunStats& total, const std::vector<HttpRunStats>& intervals,
                           const std::optional<HoldPoint>& hold) {
  Json doc;
  doc["urls"] = c.urls;
  doc["model"] = model;
  Json& config = doc["config"];
  config["concurrency"] = concurrency;
  config["endpoint"] = c.endpoint;
  config["prompts"] = c.prompts.empty() ? DefaultPromptMix().size() : c.prompts.size();
  config["max_tokens"] = c.max_tokens;
  config["max_tokens_max"] = c.max_tokens_max;
  config["stream_fraction"] = c.stream_fraction;
  config["ignore_eos"] = c.ignore_eos;
  config["temperature"] = c.temperature;
  config["seed"] = c.seed;
  config["io_threads"] = c.io_threads;
  config["request_timeout_seconds"] = c.request_timeout_seconds;
  doc["total"] = StatsJson(total);
  doc["intervals"] = Json::array();
  for (const HttpRunStats& s : intervals) doc["intervals"].push_back(StatsJson(s));
  if (hold.has_value()) {
    doc["hold"] = {{"seconds", hold->seconds},
                   {"open_requests", hold->open_requests},
                   {"held_streams", hold->held_streams},
                   {"held_complete", hold->held_complete},
                   {"ended_before_hold", hold->ended_before_hold}};
  } else {
    doc["hold"] = nullptr;
  }
  // Replace invalid UTF-8 (a server message) instead of throwing.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string FormatHttpProgress(const HttpProgress& p) {
  return absl::StrFormat("wf_loadgen: %.1f s  ok %d  failed %d  open %d  text events %d", p.elapsed_seconds,
                         p.requests_ok, p.requests_failed, p.open, p.text_events);
}

}  // namespace wf::loadgen
