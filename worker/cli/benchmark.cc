#include "worker/cli/benchmark.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/engine/model.h"
#include "worker/engine/session.h"

namespace wf::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Peak resident set size of this process (VmHWM), in bytes.
int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

struct Stat {
  double mean = 0, sd = 0;
};

Stat Summarize(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0;
  return s;
}

}  // namespace

absl::Status RunBenchmark(const BenchmarkOptions& o, std::ostream& out) {
  if (o.repetitions < 1) return absl::InvalidArgumentError("--repetitions must be >= 1");
  const auto t0 = Clock::now();
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, engine::Model::Load(o.model_path, {}));
  const double load_s = Seconds(t0, Clock::now());
  const engine::ModelConfig& cfg = model->config();
  int64_t longest = o.decode_tokens + 1;
  for (int64_t n : o.prefill_tokens) longest = std::max(longest, n);
  if (longest > cfg.n_ctx_train) {
    return absl::InvalidArgumentError(
        absl::StrCat("the benchmark needs ", longest, " positions; the model's context is ", cfg.n_ctx_train));
  }
  engine::SessionOptions so;
  so.num_threads = static_cast<int>(o.threads);
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> session, engine::Session::Create(*model, so));
  const int threads = o.threads > 0 ? static_cast<int>(o.threads)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, cfg.n_vocab - 1);
  nlohmann::ordered_json result;
  result["model"] = o.model_path;
  result["file_bytes"] = model->file().size();
  result["kernels"] = std::string(kernels::IsaName(model->kernels().isa));
  result["threads"] = threads;
  result["load_seconds"] = load_s;
  result["repetitions"] = o.repetitions;

  // Warm-up: touches every weight page once, so the first repetition is not a page-fault test.
  {
    std::vector<int32_t> warm(8);
    for (int32_t& t : warm) t = token(rng);
    session->Reset();
    BN_RETURN_IF_ERROR(session->Prefill(warm).status());
  }
  nlohmann::ordered_json prefill = nlohmann::ordered_json::array();
  for (int64_t n : o.prefill_tokens) {
    std::vector<double> rates;
    for (int64_t r = 0; r < o.repetitions; ++r) {
      std::vector<int32_t> prompt(static_cast<size_t>(n));
      for (int32_t& t : prompt) t = token(rng);
      session->Reset();
      const auto a = Clock::now();
      BN_RETURN_IF_ERROR(session->Prefill(prompt).status());
      rates.push_back(static_cast<double>(n) / Seconds(a, Clock::now()));
      std::fprintf(stderr, "benchmark: prefill %lld tokens, repetition %lld/%lld: %.1f tok/s\n",
                   static_cast<long long>(n), static_cast<long long>(r + 1), static_cast<long long>(o.repetitions),
                   rates.back());
    }
    const Stat s = Summarize(rates);
    prefill.push_back({{"tokens", n}, {"tok_per_s", s.mean}, {"sd", s.sd}});
  }
  result["prefill"] = prefill;

  std::vector<double> rates;
  for (int64_t r = 0; r < o.repetitions; ++r) {
    session->Reset();
    BN_ASSIGN_OR_RETURN(std::vector<float> logits, session->Prefill(std::vector<int32_t>{token(rng)}));
    const auto a = Clock::now();
    for (int64_t i = 0; i < o.decode_tokens; ++i) {
      BN_ASSIGN_OR_RETURN(logits, session->Decode(engine::Argmax(logits)));
    }
    rates.push_back(static_cast<double>(o.decode_tokens) / Seconds(a, Clock::now()));
    std::fprintf(stderr, "benchmark: decode %lld tokens, repetition %lld/%lld: %.1f tok/s\n",
                 static_cast<long long>(o.decode_tokens), static_cast<long long>(r + 1),
                 static_cast<long long>(o.repetitions), rates.back());
  }
  const Stat d = Summarize(rates);
  result["decode"] = {{"tokens", o.decode_tokens}, {"tok_per_s", d.mean}, {"sd", d.sd}};
  result["peak_rss_bytes"] = PeakRssBytes();

  if (o.json) {
    out << result.dump() << "\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("model %s (%.2f GB), kernels %s, %d threads, load %.2f s\n", o.model_path,
                         static_cast<double>(model->file().size()) / 1e9, result["kernels"].get<std::string>(), threads,
                         load_s);
  for (const auto& p : prefill) {
    out << absl::StrFormat("pp%-5d %8.1f ± %.1f tok/s\n", p["tokens"].get<int64_t>(), p["tok_per_s"].get<double>(),
                           p["sd"].get<double>());
  }
  out << absl::StrFormat("tg%-5d %8.1f ± %.1f tok/s\n", o.decode_tokens, d.mean, d.sd);
  out << absl::StrFormat("peak RSS %.2f GB\n", static_cast<double>(PeakRssBytes()) / 1e9);
  return absl::OkStatus();
}

}  // namespace wf::cli
