#include "worker/cli/benchmark.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string_view>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/quant/fp16.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/engine/forward.h"
#include "worker/engine/kv_cache.h"
#include "worker/kernels/kernels.h"
#include "worker/engine/model.h"
#include "worker/engine/session.h"
#include "worker/engine/thread_pool.h"

namespace wf::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

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

void Progress(const std::string& what, int64_t rep, int64_t reps, double rate) {
  std::fprintf(stderr, "benchmark: %s, repetition %lld/%lld: %.1f tok/s\n", what.c_str(),
               static_cast<long long>(rep + 1), static_cast<long long>(reps), rate);
}

// Writes synthetic K/V values (uniform in [-1, 1], as F16) into every layer
// of the blocks holding positions [0, length) of `seq` and sets its length,
// so a decode step reads a realistic amount of distinct KV memory without a
// long prefill first.
void FillKv(engine::KvCache& cache, engine::SequenceKv& seq, int32_t length) {
  static const std::vector<uint16_t> pattern = [] {
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<uint16_t> p(4099);  // odd length: rows do not repeat in step
    for (uint16_t& h : p) h = quant::F32ToF16(u(rng));
    return p;
  }();
  const engine::KvCacheConfig& c = cache.config();
  const size_t block_elems = static_cast<size_t>(c.n_head_kv) * c.block_size * c.head_dim;
  const int64_t blocks = (length + c.block_size - 1) / c.block_size;
  size_t at = 0;
  auto fill = [&](uint16_t* dst) {
    for (size_t done = 0; done < block_elems;) {
      const size_t n = std::min(block_elems - done, pattern.size() - at);
      std::memcpy(dst + done, pattern.data() + at, n * sizeof(uint16_t));
      done += n;
      at = (at + n) % pattern.size();
    }
  };
  // q8: codes and scales of the same values' magnitude (codes cycle through
  // [-127, 127], scales 1/127).
  auto fill_q8 = [&](int8_t* codes, float* scales) {
    for (size_t i = 0; i < block_elems; ++i) codes[i] = static_cast<int8_t>(pattern[(at + i) % pattern.size()] % 255 - 127);
    at = (at + block_elems) % pattern.size();
    std::fill(scales, scales + block_elems / kernels::kQ8Block, 1.0f / 127.0f);
  };
  for (int l = 0; l < c.n_layer; ++l) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int32_t block = seq.block_table[b];
      if (c.type == engine::KvCacheType::kQ8) {
        fill_q8(cache.KBlockQ8(l, block), cache.KScalesQ8(l, block));
        fill_q8(cache.VBlockQ8(l, block), cache.VScalesQ8(l, block));
      } else {
        fill(cache.KBlock(l, block));
        fill(cache.VBlock(l, block));
      }
    }
  }
  seq.length = length;
}

// Runs `steps` forward calls, each with one decode token per sequence, and
// returns their wall time. Every sequence must have room for `steps` more
// positions.
absl::StatusOr<double> TimeDecodeSteps(engine::ModelRunner& runner,
                                       std::vector<engine::SequenceKv>& seqs, int64_t steps,
                                       int32_t n_vocab) {
  engine::Batch batch;
  for (engine::SequenceKv& kv : seqs) batch.sequences.push_back({.kv = &kv, .tokens = {{}}});
  engine::ForwardOutput out;
  std::vector<int32_t> next(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    next[s] = static_cast<int32_t>((s * 7919 + 11) % n_vocab);
  }
  const auto a = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    for (size_t s = 0; s < seqs.size(); ++s) {
      batch.sequences[s].tokens[0] = {.id = next[s], .want_logits = true, .decode_rounding = true};
    }
    BN_RETURN_IF_ERROR(runner.Forward(batch, &out));
    for (size_t r = 0; r < out.rows.size(); ++r) {
      next[out.rows[r].sequence] = engine::Argmax(out.row_logits(r));
    }
  }
  return Seconds(a, Clock::now());
}

// A KV pool for `n_seq` sequences of up to `positions` positions each.
absl::StatusOr<std::unique_ptr<engine::KvCache>> MakeCache(const engine::ModelConfig& c,
                                                          int64_t n_seq, int64_t positions,
                                                          engine::KvCacheType type) {
  constexpr int kBlock = 16;
  const int64_t blocks = n_seq * ((positions + kBlock - 1) / kBlock);
  return engine::KvCache::Create({.n_layer = c.n_layer,
                                  .n_head_kv = c.n_head_kv,
                                  .head_dim = c.head_dim,
                                  .block_size = kBlock,
                                  .num_blocks = static_cast<int>(blocks),
                                  .type = type});
}

// Greedy decode of `tokens` tokens after a one-token prompt, `reps` times.
absl::StatusOr<Stat> MeasureDecode(engine::Session& session, int64_t tokens, int64_t reps,
                                   int32_t first, const std::string& label) {
  std::vector<double> rates;
  for (int64_t r = 0; r < reps; ++r) {
    session.Reset();
    BN_ASSIGN_OR_RETURN(std::vector<float> logits,
                        session.Prefill(std::vector<int32_t>{first}));
    const auto a = Clock::now();
    for (int64_t i = 0; i < tokens; ++i) {
      BN_ASSIGN_OR_RETURN(logits, session.Decode(engine::Argmax(logits)));
    }
    rates.push_back(static_cast<double>(tokens) / Seconds(a, Clock::now()));
    Progress(absl::StrCat(label, " ", tokens, " tokens"), r, reps, rates.back());
  }
  return Summarize(rates);
}

// Best-of-`passes` read bandwidth over [data, data + bytes), with the pool's
// threads each summing contiguous 1 MiB chunks through the kernels'
// read_sum. Reading the model's own (page-cache resident) mapping measures
// the memory path decode uses and adds nothing to the resident set.
double MeasureBandwidth(const kernels::KernelTable& kt, engine::ThreadPool& pool,
                        const uint8_t* data, int64_t bytes, int64_t passes) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  const int64_t chunks = std::max<int64_t>(1, bytes / kChunk);
  bytes = std::min(bytes, chunks * kChunk);
  std::atomic<uint64_t> checksum{0};
  double best = 0.0;
  for (int64_t r = 0; r < passes; ++r) {
    const auto a = Clock::now();
    pool.ParallelFor(chunks, [&](int64_t begin, int64_t end) {
      const int64_t lo = begin * kChunk;
      const int64_t hi = std::min(bytes, end * kChunk);
      checksum.fetch_add(kt.read_sum(data + lo, hi - lo), std::memory_order_relaxed);
    });
    best = std::max(best, static_cast<double>(bytes) / Seconds(a, Clock::now()) / 1e9);
  }
  // Keeps the sums observable so the reads cannot be optimised away.
  if (checksum.load() == 1) std::fprintf(stderr, "benchmark: probe checksum %llu\n", 1ull);
  return best;
}

struct ComputeRates {
  double i8_macs_per_s = 0;   // kernels' int8 multiply-add peak
  double f32_macs_per_s = 0;  // kernels' F32 FMA peak (lanes)
};

// Best-of-`passes` compute throughput of the kernels' probes with `threads`
// threads of the pool each running the same number of rounds (about 50 ms of
// work per thread per probe).
ComputeRates MeasureCompute(const kernels::KernelTable& kt, engine::ThreadPool& pool,
                            int threads, int64_t passes) {
  constexpr double kTargetSeconds = 0.05;
  std::atomic<int64_t> sink{0};
  auto rate = [&](auto&& probe) {
    // Calibrate the rounds on one thread, then time all threads together.
    int64_t rounds = 1 << 12;
    for (;;) {
      const auto a = Clock::now();
      probe(rounds);
      const double s = Seconds(a, Clock::now());
      if (s > kTargetSeconds / 4 || rounds > (int64_t{1} << 40)) {
        rounds = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(rounds) *
                                                           kTargetSeconds / std::max(s, 1e-9)));
        break;
      }
      rounds *= 4;
    }
    double best = 0.0;
    for (int64_t r = 0; r < passes; ++r) {
      std::atomic<int64_t> macs{0};
      const auto a = Clock::now();
      pool.ParallelFor(threads, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) macs.fetch_add(probe(rounds));
      });
      best = std::max(best, static_cast<double>(macs.load()) / Seconds(a, Clock::now()));
    }
    return best;
  };
  ComputeRates out;
  out.i8_macs_per_s = rate([&](int64_t rounds) {
    int32_t v = 0;
    const int64_t n = kt.i8_mac_probe(rounds, &v);
    sink.fetch_add(v, std::memory_order_relaxed);
    return n;
  });
  out.f32_macs_per_s = rate([&](int64_t rounds) {
    float v = 0;
    const int64_t n = kt.f32_fma_probe(rounds, &v);
    sink.fetch_add(static_cast<int64_t>(v), std::memory_order_relaxed);
    return n;
  });
  // Keeps the probes' results observable.
  if (sink.load() == 1) std::fprintf(stderr, "benchmark: compute probe sink 1\n");
  return out;
}

// Multiply-adds of one token through the ternary projections, and through
// the output head.
double TernaryMacsPerToken(const engine::ModelConfig& c) {
  const double e = c.n_embd, kv = static_cast<double>(c.n_head_kv) * c.head_dim, ff = c.n_ff;
  return c.n_layer * (2.0 * e * e + 2.0 * e * kv + 3.0 * e * ff);
}
double HeadMacsPerToken(const engine::ModelConfig& c) {
  return static_cast<double>(c.n_embd) * c.n_vocab;
}

}  // namespace

absl::Status RunBenchmark(const BenchmarkOptions& o, std::ostream& out) {
  if (o.repetitions < 1) return absl::InvalidArgumentError("--repetitions must be >= 1");
  if (o.decode_tokens < 1) return absl::InvalidArgumentError("--decode-tokens must be >= 1");
  if (o.context_decode_tokens < 1 || o.batch_steps < 1 || o.batch_context < 1 ||
      o.bandwidth_repetitions < 1 || o.bandwidth_bytes < 0) {
    return absl::InvalidArgumentError(
        "context_decode_tokens, batch_steps, batch_context and bandwidth_repetitions must be >= 1 "
        "and bandwidth_bytes >= 0");
  }
  const auto t0 = Clock::now();
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model,
                      engine::Model::Load(o.model_path, {.head_type = o.head_type}));
  const double load_s = Seconds(t0, Clock::now());
  const engine::ModelConfig& cfg = model->config();
  int64_t longest = o.decode_tokens + 1;
  for (int64_t n : o.prefill_tokens) longest = std::max(longest, n);
  if (longest > cfg.n_ctx_train) {
    return absl::InvalidArgumentError(absl::StrCat("the benchmark needs ", longest,
                                                   " positions; the model's context is ",
                                                   cfg.n_ctx_train));
  }
  const int threads = o.threads > 0
                          ? static_cast<int>(o.threads)
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  engine::ThreadPool pool(threads);
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> session,
                      engine::Session::Create(*model, {.pool = &pool, .kv_cache_type = o.kv_cache_type}));

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, cfg.n_vocab - 1);
  Json result;
  result["model"] = o.model_path;
  result["file_bytes"] = model->file().size();
  result["kernels"] = std::string(kernels::IsaName(model->kernels().isa));
  result["threads"] = threads;
  result["repetitions"] = o.repetitions;
  result["head_type"] = engine::HeadTypeName(model->head_type());
  result["kv_cache_type"] = engine::KvCacheTypeName(o.kv_cache_type);
  result["load_seconds"] = load_s;
  result["head_quantize_seconds"] = model->load_stats().head_quantize_seconds;

  // Warm-up: touches every weight page once, so the first repetition is not a page-fault test.
  {
    std::vector<int32_t> warm(8);
    for (int32_t& t : warm) t = token(rng);
    session->Reset();
    BN_RETURN_IF_ERROR(session->Prefill(warm).status());
  }
  // The compute roofline of this host and kernel table, with all threads and
  // with one (on hosts whose vCPUs are hyperthreads of one core, two threads
  // add little compute).
  const ComputeRates compute =
      MeasureCompute(model->kernels(), pool, threads, o.bandwidth_repetitions);
  engine::ThreadPool single(1);
  const ComputeRates compute1 =
      MeasureCompute(model->kernels(), single, 1, o.bandwidth_repetitions);
  std::fprintf(stderr, "benchmark: compute %.1f int8 GMAC/s, %.1f f32 GFMA/s (1 thread: %.1f, %.1f)\n",
               compute.i8_macs_per_s / 1e9, compute.f32_macs_per_s / 1e9,
               compute1.i8_macs_per_s / 1e9, compute1.f32_macs_per_s / 1e9);
  result["compute"] = {{"threads", threads},
                       {"i8_gmac_per_s", compute.i8_macs_per_s / 1e9},
                       {"f32_gfma_per_s", compute.f32_macs_per_s / 1e9},
                       {"one_thread_i8_gmac_per_s", compute1.i8_macs_per_s / 1e9},
                       {"one_thread_f32_gfma_per_s", compute1.f32_macs_per_s / 1e9}};
  const double ternary_macs = TernaryMacsPerToken(cfg);
  const double head_macs = HeadMacsPerToken(cfg);
  result["ternary_macs_per_token"] = ternary_macs;
  result["head_macs_per_token"] = head_macs;
  // Attention multiply-adds of one token over `ctx` cached positions.
  auto attention_macs = [&](double ctx) {
    return 2.0 * cfg.n_layer * cfg.n_head * cfg.head_dim * ctx;
  };

  Json prefill = Json::array();
  for (int64_t n : o.prefill_tokens) {
    std::vector<double> rates;
    for (int64_t r = 0; r < o.repetitions; ++r) {
      std::vector<int32_t> prompt(static_cast<size_t>(n));
      for (int32_t& t : prompt) t = token(rng);
      session->Reset();
      const auto a = Clock::now();
      BN_RETURN_IF_ERROR(session->Prefill(prompt).status());
      rates.push_back(static_cast<double>(n) / Seconds(a, Clock::now()));
      Progress(absl::StrCat("prefill ", n, " tokens"), r, o.repetitions, rates.back());
    }
    const Stat s = Summarize(rates);
    // Every ternary multiply-add is at least one int8 multiply-add of the
    // kernels; attention runs on the F32 units (the head: last token only).
    const double bound =
        1.0 / (ternary_macs / compute.i8_macs_per_s +
               attention_macs(static_cast<double>(n) / 2.0) / compute.f32_macs_per_s);
    prefill.push_back({{"tokens", n},
                       {"tok_per_s", s.mean},
                       {"sd", s.sd},
                       {"compute_bound_tok_per_s", bound},
                       {"fraction_of_compute_bound", s.mean / bound}});
  }
  result["prefill"] = prefill;

  // Decode, each repetition right after a bandwidth probe so that the
  // fraction of the bound compares figures taken moments apart.
  const double weight_bytes = static_cast<double>(model->WeightBytesPerToken());
  // Session decode runs over contexts 1..decode_tokens: on average this many
  // cached positions are read per token.
  const double kv_per_pos =
      2.0 * cfg.n_layer * cfg.n_head_kv * cfg.head_dim * static_cast<double>(sizeof(uint16_t));
  const double decode_kv = kv_per_pos * (1.0 + static_cast<double>(o.decode_tokens) / 2.0);
  const int64_t probe_bytes = std::min<int64_t>(o.bandwidth_bytes, model->file().size());
  std::vector<double> decode_rates, fractions;
  double bandwidth = 0.0;
  for (int64_t r = 0; r < o.repetitions; ++r) {
    double bw = 0.0;
    if (probe_bytes > 0) {
      bw = MeasureBandwidth(model->kernels(), pool, model->file().image(), probe_bytes,
                            o.bandwidth_repetitions);
      bandwidth = std::max(bandwidth, bw);
      std::fprintf(stderr, "benchmark: read bandwidth %.2f GB/s\n", bw);
    }
    BN_ASSIGN_OR_RETURN(const Stat one,
                        MeasureDecode(*session, o.decode_tokens, 1, token(rng), "decode"));
    decode_rates.push_back(one.mean);
    if (bw > 0.0) fractions.push_back(one.mean * (weight_bytes + decode_kv) / (bw * 1e9));
  }
  const Stat d = Summarize(decode_rates);
  result["decode"] = {{"tokens", o.decode_tokens}, {"tok_per_s", d.mean}, {"sd", d.sd}};
  session.reset();

  // Single-sequence decode at given cached contexts: a KV pool, its runner
  // and one sequence per cache type; TimeContexts times several setups
  // interleaved (context by context, repetition by repetition) so they see
  // the same host conditions.
  struct ContextSetup {
    std::unique_ptr<engine::KvCache> cache;
    std::unique_ptr<engine::ModelRunner> runner;
    std::vector<engine::SequenceKv> seq = std::vector<engine::SequenceKv>(1);
  };
  int64_t max_ctx = 0;
  for (int64_t c : o.decode_contexts) max_ctx = std::max(max_ctx, c);
  max_ctx = std::min<int64_t>(max_ctx, cfg.n_ctx_train);
  const int64_t context_positions = max_ctx + o.context_decode_tokens + 1;
  auto make_context_setup = [&](engine::KvCacheType type) -> absl::StatusOr<std::unique_ptr<ContextSetup>> {
    auto su = std::make_unique<ContextSetup>();
    BN_ASSIGN_OR_RETURN(su->cache, MakeCache(cfg, 1, context_positions, type));
    BN_ASSIGN_OR_RETURN(su->runner,
                        engine::ModelRunner::Create(model.get(), su->cache.get(), &pool,
                                                    {.max_context = static_cast<int32_t>(context_positions)}));
    BN_RETURN_IF_ERROR(su->cache->Reserve(&su->seq[0], context_positions));
    return su;
  };
  auto time_contexts = [&](const std::vector<ContextSetup*>& setups) -> absl::StatusOr<std::vector<Json>> {
    std::vector<Json> out(setups.size(), Json::array());
    for (int64_t ctx : o.decode_contexts) {
      ctx = std::clamp<int64_t>(ctx, 1, max_ctx);
      std::vector<std::vector<double>> rates(setups.size());
      for (int64_t r = 0; r < o.repetitions; ++r) {
        for (size_t i = 0; i < setups.size(); ++i) {
          ContextSetup& su = *setups[i];
          FillKv(*su.cache, su.seq[0], static_cast<int32_t>(ctx));
          BN_ASSIGN_OR_RETURN(double s, TimeDecodeSteps(*su.runner, su.seq, o.context_decode_tokens, cfg.n_vocab));
          rates[i].push_back(static_cast<double>(o.context_decode_tokens) / s);
          Progress(absl::StrCat("decode at context ", ctx, ", ", engine::KvCacheTypeName(su.cache->type()),
                                " KV cache"),
                   r, o.repetitions, rates[i].back());
        }
      }
      for (size_t i = 0; i < setups.size(); ++i) {
        const Stat st = Summarize(rates[i]);
        out[i].push_back({{"context", ctx}, {"tokens", o.context_decode_tokens}, {"tok_per_s", st.mean}, {"sd", st.sd}});
      }
    }
    return out;
  };
  auto ratio = [](const Json& contexts) {
    return contexts.back()["tok_per_s"].get<double>() / contexts.front()["tok_per_s"].get<double>();
  };
  int64_t kv_pool_bytes = 0;
  if (!o.decode_contexts.empty()) {
    // Freed before the batched pools are made: peak RSS counts the largest
    // pool, not their sum.
    BN_ASSIGN_OR_RETURN(std::unique_ptr<ContextSetup> main_context, make_context_setup(o.kv_cache_type));
    kv_pool_bytes = std::max<int64_t>(kv_pool_bytes, main_context->cache->total_bytes());
    BN_ASSIGN_OR_RETURN(std::vector<Json> timed, time_contexts({main_context.get()}));
    result["decode_context"] = timed[0];
    result["long_context_ratio"] = ratio(timed[0]);
  }

  // Batched decode: n sequences, one token each per forward call.
  Json batched = Json::array();
  if (!o.batch_sequences.empty()) {
    int64_t max_seq = 0;
    for (int64_t n : o.batch_sequences) max_seq = std::max(max_seq, n);
    const int64_t ctx = std::min<int64_t>(o.batch_context, cfg.n_ctx_train);
    const int64_t positions = ctx + o.batch_steps + 1;
    BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::KvCache> cache,
                        MakeCache(cfg, max_seq, positions, o.kv_cache_type));
    kv_pool_bytes = std::max<int64_t>(kv_pool_bytes, cache->total_bytes());
    const engine::RunnerOptions runner_options = {.max_context = static_cast<int32_t>(positions)};
    BN_ASSIGN_OR_RETURN(
        std::unique_ptr<engine::ModelRunner> runner,
        engine::ModelRunner::Create(model.get(), cache.get(), &pool, runner_options));
    for (int64_t n : o.batch_sequences) {
      if (n < 1) return absl::InvalidArgumentError("batch sequence counts must be >= 1");
      std::vector<engine::SequenceKv> seqs(static_cast<size_t>(n));
      for (engine::SequenceKv& kv : seqs) BN_RETURN_IF_ERROR(cache->Reserve(&kv, positions));
      std::vector<double> rates;
      for (int64_t r = 0; r < o.repetitions; ++r) {
        for (engine::SequenceKv& kv : seqs) FillKv(*cache, kv, static_cast<int32_t>(ctx));
        BN_ASSIGN_OR_RETURN(double s, TimeDecodeSteps(*runner, seqs, o.batch_steps, cfg.n_vocab));
        rates.push_back(static_cast<double>(n * o.batch_steps) / s);
        Progress(absl::StrCat("batched decode, ", n, " sequences"), r, o.repetitions,
                 rates.back());
      }
      for (engine::SequenceKv& kv : seqs) cache->Release(&kv);
      const Stat s = Summarize(rates);
      // Roofline of one step: compute (ternary on the int8 units, head and
      // attention on the F32 units) or memory (the weights once per step
      // plus each sequence's KV), whichever is slower.
      const double mean_ctx = static_cast<double>(ctx) + static_cast<double>(o.batch_steps) / 2.0;
      const double compute_bound =
          1.0 / (ternary_macs / compute.i8_macs_per_s +
                 (head_macs + attention_macs(mean_ctx)) / compute.f32_macs_per_s);
      const double memory_bound =
          bandwidth > 0.0 ? static_cast<double>(n) * bandwidth * 1e9 /
                                (weight_bytes + static_cast<double>(n) * kv_per_pos * mean_ctx)
                          : compute_bound;
      const double bound = std::min(compute_bound, memory_bound);
      batched.push_back({{"sequences", n},
                         {"steps", o.batch_steps},
                         {"context", ctx},
                         {"tok_per_s", s.mean},
                         {"sd", s.sd},
                         {"step_ms", 1000.0 * static_cast<double>(n) / s.mean},
                         {"compute_bound_tok_per_s", compute_bound},
                         {"memory_bound_tok_per_s", memory_bound},
                         {"fraction_of_bound", s.mean / bound}});
    }
    result["batched_decode"] = batched;
  }
  result["kv_pool_bytes"] = kv_pool_bytes;
  const int64_t peak_rss = PeakRssBytes();
  result["peak_rss_bytes"] = peak_rss;

  // The q8 KV cache against the f16 one, after peak_rss_bytes so that the
  // two pools together do not count: both timed again, interleaved.
  if (!o.decode_contexts.empty() && o.compare_q8_kv && o.kv_cache_type == engine::KvCacheType::kF16 &&
      cfg.head_dim % kernels::kQ8Block == 0) {
    BN_ASSIGN_OR_RETURN(std::unique_ptr<ContextSetup> f16_context, make_context_setup(engine::KvCacheType::kF16));
    BN_ASSIGN_OR_RETURN(std::unique_ptr<ContextSetup> q8_context, make_context_setup(engine::KvCacheType::kQ8));
    BN_ASSIGN_OR_RETURN(std::vector<Json> timed, time_contexts({f16_context.get(), q8_context.get()}));
    Json q8 = timed[1];
    for (size_t i = 0; i < q8.size(); ++i) {
      q8[i]["f16_tok_per_s"] = timed[0][i]["tok_per_s"];
      q8[i]["f16_sd"] = timed[0][i]["sd"];
    }
    result["decode_context_q8_kv"] = q8;
    result["long_context_ratio_q8_kv"] = ratio(q8);
    result["q8_kv_speedup_at_longest_context"] =
        q8.back()["tok_per_s"].get<double>() / q8.back()["f16_tok_per_s"].get<double>();
  }

  // The q8 head against the f16 head, repetitions interleaved so that both
  // see the same host conditions.
  double q8_rate = 0.0;
  if (o.compare_q8_head && model->head_type() == engine::HeadType::kF16) {
    BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> q8,
                        engine::Model::Load(o.model_path, {.head_type = engine::HeadType::kQ8}));
    BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> s8,
                        engine::Session::Create(*q8, {.pool = &pool, .kv_cache_type = o.kv_cache_type}));
    BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> s16,
                        engine::Session::Create(*model, {.pool = &pool, .kv_cache_type = o.kv_cache_type}));
    BN_RETURN_IF_ERROR(s8->Prefill(std::vector<int32_t>{1, 2, 3}).status());  // warm-up
    std::vector<double> r8, r16;
    for (int64_t r = 0; r < o.repetitions; ++r) {
      const int32_t first = token(rng);
      BN_ASSIGN_OR_RETURN(const Stat a,
                          MeasureDecode(*s16, o.decode_tokens, 1, first, "decode, f16 head"));
      BN_ASSIGN_OR_RETURN(const Stat b,
                          MeasureDecode(*s8, o.decode_tokens, 1, first, "decode, q8 head"));
      r16.push_back(a.mean);
      r8.push_back(b.mean);
    }
    const Stat d8 = Summarize(r8), d16 = Summarize(r16);
    q8_rate = d8.mean;
    result["decode_q8_head"] = {{"tokens", o.decode_tokens},
                                {"tok_per_s", d8.mean},
                                {"sd", d8.sd},
                                {"f16_tok_per_s", d16.mean},
                                {"f16_sd", d16.sd},
                                {"speedup_vs_f16", d8.mean / d16.mean},
                                {"head_quantize_seconds", q8->load_stats().head_quantize_seconds},
                                {"weight_bytes_per_token", q8->WeightBytesPerToken()}};
    if (bandwidth > 0.0) {
      result["decode_q8_fraction_of_bound"] =
          d8.mean * (static_cast<double>(q8->WeightBytesPerToken()) + decode_kv) /
          (bandwidth * 1e9);
    }
  }

  if (probe_bytes > 0) {
    result["bandwidth"] = {{"bytes_per_pass", probe_bytes},
                           {"threads", threads},
                           {"passes", o.bandwidth_repetitions},
                           {"gb_per_s", bandwidth}};
  }
  result["weight_bytes_per_token"] = model->WeightBytesPerToken();
  result["decode_bytes_per_token"] = weight_bytes + decode_kv;
  if (!fractions.empty()) {
    result["decode_bound_tok_per_s"] = bandwidth * 1e9 / (weight_bytes + decode_kv);
    result["decode_fraction_of_bound"] = Summarize(fractions).mean;
  }

  if (o.json) {
    out << result.dump() << "\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("model %s (%.2f GB), kernels %s, %d threads, head %s, KV cache %s, load %.2f s\n",
                         o.model_path, static_cast<double>(model->file().size()) / 1e9,
                         result["kernels"].get<std::string>(), threads,
                         engine::HeadTypeName(model->head_type()), engine::KvCacheTypeName(o.kv_cache_type), load_s);
  out << absl::StrFormat("compute %.1f int8 GMAC/s, %.1f f32 GFMA/s (one thread %.1f, %.1f)\n",
                         compute.i8_macs_per_s / 1e9, compute.f32_macs_per_s / 1e9,
                         compute1.i8_macs_per_s / 1e9, compute1.f32_macs_per_s / 1e9);
  for (const auto& p : prefill) {
    out << absl::StrFormat("pp%-5d %8.1f ± %.1f tok/s (%.0f%% of its compute bound %.1f)\n",
                           p["tokens"].get<int64_t>(), p["tok_per_s"].get<double>(),
                           p["sd"].get<double>(),
                           100.0 * p["fraction_of_compute_bound"].get<double>(),
                           p["compute_bound_tok_per_s"].get<double>());
  }
  out << absl::StrFormat("tg%-5d %8.1f ± %.1f tok/s\n", o.decode_tokens, d.mean, d.sd);
  for (const char* key : {"decode_context", "decode_context_q8_kv"}) {
    if (!result.contains(key)) continue;
    const char* kv = std::string_view(key) == "decode_context" ? engine::KvCacheTypeName(o.kv_cache_type) : "q8";
    for (const auto& c : result[key]) {
      out << absl::StrFormat("tg at context %-5d %8.1f ± %.1f tok/s (%s KV cache)\n", c["context"].get<int64_t>(),
                             c["tok_per_s"].get<double>(), c["sd"].get<double>(), kv);
    }
  }
  for (const auto& b : batched) {
    out << absl::StrFormat(
        "batched decode %2d sequences %8.1f ± %.1f tok/s aggregate (%.0f%% of its bound)\n",
        b["sequences"].get<int64_t>(), b["tok_per_s"].get<double>(), b["sd"].get<double>(),
        100.0 * b["fraction_of_bound"].get<double>());
  }
  if (q8_rate > 0.0) {
    out << absl::StrFormat("tg%-5d q8 head %8.1f tok/s\n", o.decode_tokens, q8_rate);
  }
  if (!fractions.empty()) {
    out << absl::StrFormat("read bandwidth %.2f GB/s; decode at %.0f%% of its bound (%.1f tok/s)\n",
                           bandwidth, 100.0 * result["decode_fraction_of_bound"].get<double>(),
                           result["decode_bound_tok_per_s"].get<double>());
  }
  out << absl::StrFormat("peak RSS %.2f GB\n", static_cast<double>(peak_rss) / 1e9);
  return absl::OkStatus();
}

}  // namespace wf::cli
