// `wf_worker --benchmark`: prefill and decode speed, batched decode, decode at
// long context, a memory-read bandwidth probe, load time and peak memory of
// one model on this machine. The prefill/decode figures have the shape of
// llama-bench's pp/tg tests and the batched ones of llama-batched-bench's
// S_TG, so they compare with bitnet.cpp's (REFERENCE.md Part 2).
//
// Every figure is measured in the same process, so ratios between them (for
// instance decode speed against the bandwidth bound) hold even on a shared,
// noisy host where absolute figures drift from run to run.
//
// JSON output (--json: one object on stdout; progress goes to stderr):
//   model, file_bytes, kernels (ISA), threads, repetitions
//   head_type            "f16" | "q8": the head of the main model
//   kv_cache_type        "f16" | "q8": the KV cache of every run
//   load_seconds         Model::Load wall time (page cache as found)
//   head_quantize_seconds  part of load_seconds quantizing a q8 head
//   compute              {threads, i8_gmac_per_s, f32_gfma_per_s,
//                        one_thread_i8_gmac_per_s, one_thread_f32_gfma_per_s}:
//                        best-of-passes rates of the kernels' compute probes
//                        (KernelTable::i8_mac_probe, f32_fma_probe), the
//                        compute half of the roofline
//   ternary_macs_per_token, head_macs_per_token  multiply-adds of one token
//   prefill[]            {tokens, tok_per_s, sd, compute_bound_tok_per_s,
//                        fraction_of_compute_bound}: one prompt of `tokens`
//                        random ids in one forward call, mean over reps; the
//                        bound counts one int8 multiply-add per ternary
//                        weight and the attention on the F32 units
//   decode               {tokens, tok_per_s, sd}: greedy Session::Decode
//                        after a one-token prompt (context 1..tokens); each
//                        repetition runs right after a bandwidth probe
//   decode_context[]     {context, tokens, tok_per_s, sd}: single-sequence
//                        decode with `context` positions already in the KV
//                        cache (filled with synthetic values)
//   long_context_ratio   decode_context rate at the longest context divided
//                        by the rate at the shortest
//   decode_context_q8_kv[]  {context, tokens, tok_per_s, sd, f16_tok_per_s,
//                        f16_sd}: the same with a q8 KV cache, timed
//                        interleaved with the f16 one again after
//                        peak_rss_bytes (kv_cache_type f16 and compare_q8_kv)
//   long_context_ratio_q8_kv, q8_kv_speedup_at_longest_context  its ratio,
//                        and its rate at the longest context over the f16
//                        cache's in the same interleaved pass
//   batched_decode[]     {sequences, steps, context, tok_per_s, sd,
//                        step_ms, compute_bound_tok_per_s,
//                        memory_bound_tok_per_s, fraction_of_bound}: one
//                        forward call per step carrying one decode token of
//                        each sequence; tok_per_s aggregates the sequences
//                        (sequences * steps / time); the bound is the lower
//                        of compute (ternary on int8, head and attention on
//                        F32) and memory (weights once per step + the KV)
//   kv_pool_bytes        bytes of the largest KV pool the benchmark made
//   peak_rss_bytes       VmHWM after the measurements above (before the q8
//                        comparison loads a second model)
//   decode_q8_head       {tokens, tok_per_s, sd, f16_tok_per_s, f16_sd,
//                        speedup_vs_f16, head_quantize_seconds,
//                        weight_bytes_per_token}: decode with a q8 head and,
//                        repetitions interleaved, with the f16 head (main
//                        model f16 and compare_q8_head)
//   bandwidth            {bytes_per_pass, threads, passes, gb_per_s}: the
//                        best read bandwidth seen; each probe reads the
//                        model's (page-cache resident) file mapping with the
//                        model's thread count and its kernels' widest loads
//                        (KernelTable::read_sum), best of `passes`
//   weight_bytes_per_token  Model::WeightBytesPerToken()
//   decode_bytes_per_token  weights + the KV read at the decode's mean
//                        context
//   decode_bound_tok_per_s  bandwidth.gb_per_s / decode_bytes_per_token
//   decode_fraction_of_bound  mean over repetitions of decode rate *
//                        decode_bytes_per_token / the probe just before it
//   decode_q8_fraction_of_bound  q8 decode rate against the best bandwidth
//
// Example:
//   BenchmarkOptions o;
//   o.model_path = "/models/2b4t.gguf";
//   o.threads = 2;
//   o.json = true;
//   BN_RETURN_IF_ERROR(RunBenchmark(o, std::cout));
#ifndef WF_WORKER_CLI_BENCHMARK_H_
#define WF_WORKER_CLI_BENCHMARK_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"

namespace wf::cli {

struct BenchmarkOptions {
  std::string model_path;
  int64_t threads = 0;  // 0: all cores.
  bool json = false;    // One JSON object on stdout instead of a table.
  int64_t repetitions = 3;
  std::vector<int64_t> prefill_tokens = {128, 512};
  int64_t decode_tokens = 128;
  // Head of the main model (--head-type f16|q8).
  engine::HeadType head_type = engine::HeadType::kF16;
  // KV cache elements of every run (--kv-cache-type f16|q8).
  engine::KvCacheType kv_cache_type = engine::KvCacheType::kF16;
  // With an f16 main model, also measure decode with a q8 head (a second
  // model, loaded after peak_rss_bytes is taken).
  bool compare_q8_head = true;
  // With an f16 KV cache, also time decode_contexts with a q8 cache.
  bool compare_q8_kv = true;
  // Single-sequence decode at these cached contexts (clamped to the model's
  // context); empty skips. The first is the short-context reference.
  std::vector<int64_t> decode_contexts = {128, 4096};
  int64_t context_decode_tokens = 32;
  // Batched decode at these sequence counts; empty skips.
  std::vector<int64_t> batch_sequences = {1, 4, 8, 16};
  int64_t batch_steps = 8;
  int64_t batch_context = 128;  // positions cached per sequence before the steps
  // Bytes of the model mapping each bandwidth probe pass reads (clamped to
  // the file size); 0 skips the probes.
  int64_t bandwidth_bytes = int64_t{1} << 40;
  int64_t bandwidth_repetitions = 3;  // passes per probe (best one counts)
};

// Errors: the model's load errors; INVALID_ARGUMENT for a non-positive
// repetition/token count or a prompt longer than the model's context;
// RESOURCE_EXHAUSTED if a KV pool cannot be allocated.
absl::Status RunBenchmark(const BenchmarkOptions& options, std::ostream& out);

}  // namespace wf::cli

#endif  // WF_WORKER_CLI_BENCHMARK_H_
