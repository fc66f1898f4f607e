// Single-thread micro-benchmarks of the kernels on the BitNet b1.58 2B-4T
// shapes, for every ISA this CPU supports. Counters: GB/s of weights read and
// GMAC/s (multiply-accumulates per second), both per second of CPU time so
// that other load on a shared host skews them less.
//
// Matrix-vector products rotate over enough copies of the weights (>= 256 MiB
// in total) that every call reads them from memory, as decode does; the
// matrix-matrix products reuse one copy, as prefill is compute-bound.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels {
namespace {

constexpr int64_t kColdBytes = int64_t{256} << 20;

struct Shape {
  const char* name;
  int64_t k;  // input features
  int64_t m;  // output rows
};

constexpr Shape kI2SShapes[] = {
    {"attn_q_o", 2560, 2560},
    {"attn_k_v", 2560, 640},
    {"ffn_gate_up", 2560, 6912},
    {"ffn_down", 6912, 2560},
};
constexpr Shape kHead = {"head", 2560, 128256};

std::vector<uint8_t> RandomBytes(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  // Codes 0..2 only, as in real weights.
  for (auto& b : v) {
    uint8_t x = 0;
    for (int i = 0; i < 4; ++i) x = static_cast<uint8_t>((x << 2) | (rng() % 3));
    b = x;
  }
  return v;
}

std::vector<int8_t> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return v;
}

void SetCounters(benchmark::State& state, double weight_bytes, double macs) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] =
      benchmark::Counter(weight_bytes * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["GMAC/s"] = benchmark::Counter(macs * iters / 1e9, benchmark::Counter::kIsRate);
}

void BM_I2SGemv(benchmark::State& state, const KernelTable* kt, Shape shape) {
  const int64_t bytes = shape.m * shape.k / 4;
  const int64_t copies = (kColdBytes + bytes - 1) / bytes;
  const std::vector<uint8_t> w = RandomBytes(bytes * copies, 1);
  const std::vector<int8_t> q = RandomActivations(shape.k, 2);
  std::vector<float> y(shape.m);
  int64_t copy = 0;
  for (auto _ : state) {
    kt->i2s_gemv(w.data() + copy * bytes, shape.k, 0, shape.m, q.data(), 0.5f, 17, 1.25f, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    copy = copy + 1 == copies ? 0 : copy + 1;
  }
  SetCounters(state, static_cast<double>(bytes),
              static_cast<double>(shape.m) * static_cast<double>(shape.k));
}

void BM_I2SGemm(benchmark::State& state, const KernelTable* kt, Shape shape, int64_t n) {
  const int64_t bytes = shape.m * shape.k / 4;
  const std::vector<uint8_t> w = RandomBytes(bytes, 1);
  const std::vector<int8_t> q = RandomActivations(n * shape.k, 2);
  const std::vector<float> act_scale(n, 0.5f);
  const std::vector<int32_t> act_sum(n, 17);
  std::vector<float> y(n * shape.m);
  for (auto _ : state) {
    kt->i2s_gemm(w.data(), shape.k, 0, shape.m, q.data(), act_scale.data(), act_sum.data(), n,
                 1.25f, y.data(), shape.m);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(bytes),
              static_cast<double>(shape.m) * static_cast<double>(shape.k) * static_cast<double>(n));
}

void BM_F16Gemm(benchmark::State& state, const KernelTable* kt, Shape shape, int64_t n) {
  const int64_t count = shape.m * shape.k;
  std::vector<uint16_t> w(count);
  std::mt19937 rng(3);
  // Finite halves of moderate magnitude: exponent 10..17, random mantissa.
  for (auto& h : w) h = static_cast<uint16_t>(((10 + rng() % 8) << 10) | (rng() % 1024));
  std::vector<float> x(n * shape.k, 0.01f);
  std::vector<float> y(n * shape.m);
  for (auto _ : state) {
    if (n == 1) {
      kt->f16_gemv(w.data(), shape.k, 0, shape.m, x.data(), y.data());
    } else {
      kt->f16_gemm(w.data(), shape.k, 0, shape.m, x.data(), n, y.data(), shape.m);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(count) * 2,
              static_cast<double>(count) * static_cast<double>(n));
}

void BM_I8Gemm(benchmark::State& state, const KernelTable* kt, Shape shape, int64_t n) {
  const int64_t count = shape.m * shape.k;
  std::vector<int8_t> w = RandomActivations(count, 5);
  for (auto& v : w) v = v == -128 ? -127 : v;
  const std::vector<float> row_scale(shape.m, 0.01f);
  const std::vector<int8_t> q = RandomActivations(n * shape.k, 6);
  const std::vector<float> act_scale(n, 3.0f);
  std::vector<float> y(n * shape.m);
  for (auto _ : state) {
    if (n == 1) {
      kt->i8_gemv(w.data(), row_scale.data(), shape.k, 0, shape.m, q.data(), act_scale[0],
                  y.data());
    } else {
      kt->i8_gemm(w.data(), row_scale.data(), shape.k, 0, shape.m, q.data(), act_scale.data(), n,
                  y.data(), shape.m);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(count),
              static_cast<double>(count) * static_cast<double>(n));
}

// One token's attention for one KV head of the 2B-4T shape (head_dim 128, 4
// query heads per KV head) over `positions` cached positions: the scores
// against F16 keys, then the probability-weighted F16 values. GB/s counts the
// K and V bytes; the KV rotates over >= 256 MiB of copies so it comes from
// memory, as at long context.
void BM_Attention(benchmark::State& state, const KernelTable* kt, int64_t positions) {
  constexpr int64_t kHd = 128, kGroup = 4;
  const int64_t halves = positions * kHd;
  const int64_t copies = std::max<int64_t>(1, kColdBytes / (4 * halves));
  std::vector<uint16_t> kv(2 * halves * copies);
  std::mt19937 rng(8);
  for (auto& h : kv) h = static_cast<uint16_t>(((10 + rng() % 6) << 10) | (rng() % 1024));
  std::vector<float> q(kGroup * kHd, 0.01f);
  std::vector<float> p(kGroup * positions, 1.0f / static_cast<float>(positions));
  std::vector<float> acc(kGroup * kHd);
  int64_t copy = 0;
  for (auto _ : state) {
    const uint16_t* k = kv.data() + 2 * halves * copy;
    kt->f16_scores(k, positions, kHd, q.data(), kGroup, p.data(), positions);
    kt->f16_accumulate_rows(k + halves, positions, kHd, p.data(), positions, kGroup, acc.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
    copy = copy + 1 == copies ? 0 : copy + 1;
  }
  SetCounters(state, static_cast<double>(4 * halves),
              2.0 * static_cast<double>(kGroup * halves));
}

// The same with the 8-bit KV cache: float queries, q8 keys and values. GB/s
// counts the codes and scales read.
void BM_AttentionQ8(benchmark::State& state, const KernelTable* kt, int64_t positions) {
  constexpr int64_t kHd = 128, kGroup = 4, kBlocks = kHd / kQ8Block;
  const int64_t values = positions * kHd;
  const int64_t bytes_per_copy = 2 * (values + positions * kBlocks * int64_t{sizeof(float)});
  const int64_t copies = std::max<int64_t>(1, kColdBytes / bytes_per_copy);
  std::vector<int8_t> codes(2 * values * copies);
  std::mt19937 rng(8);
  for (auto& c : codes) c = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  std::vector<float> scales(2 * positions * kBlocks * copies, 1.0f / 127.0f);
  std::vector<float> q(kGroup * kHd, 0.01f);
  std::vector<float> p(kGroup * positions, 1.0f / static_cast<float>(positions));
  std::vector<float> acc(kGroup * kHd);
  int64_t copy = 0;
  for (auto _ : state) {
    const int8_t* k = codes.data() + 2 * values * copy;
    const float* ks = scales.data() + 2 * positions * kBlocks * copy;
    kt->q8_scores(k, ks, positions, kHd, q.data(), kGroup, p.data(), positions);
    kt->q8_accumulate_rows(k + values, ks + positions * kBlocks, positions, kHd, p.data(), positions, kGroup,
                           acc.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
    copy = copy + 1 == copies ? 0 : copy + 1;
  }
  SetCounters(state, static_cast<double>(bytes_per_copy), 2.0 * static_cast<double>(kGroup * values));
}

// The bandwidth probe's kernel over 256 MiB.
void BM_ReadSum(benchmark::State& state, const KernelTable* kt) {
  const std::vector<uint8_t> buffer = RandomBytes(kColdBytes, 9);
  for (auto _ : state) benchmark::DoNotOptimize(kt->read_sum(buffer.data(), kColdBytes));
  SetCounters(state, static_cast<double>(kColdBytes), 0.0);
}

void BM_Quantize(benchmark::State& state, const KernelTable* kt, int64_t k) {
  std::vector<float> x(k);
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  std::vector<int8_t> q(k);
  float s;
  int32_t sum;
  for (auto _ : state) {
    kt->quantize_activations_i8(x.data(), k, q.data(), &s, &sum);
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * k);
}

void RegisterAll() {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    const KernelTable* kt = KernelsFor(isa);
    if (kt == nullptr) continue;
    const std::string prefix = std::string(IsaName(isa)) + "/";
    // The scalar reference is only timed where it finishes in seconds.
    const bool fast = isa != Isa::kGeneric;
    for (int64_t k : {2560, 6912}) {
      benchmark::RegisterBenchmark((prefix + "Quantize/k=" + std::to_string(k)).c_str(),
                                   BM_Quantize, kt, k);
    }
    benchmark::RegisterBenchmark((prefix + "ReadSum/256MiB").c_str(), BM_ReadSum, kt)
        ->Unit(benchmark::kMillisecond);
    for (int64_t positions : {128, 4096}) {
      benchmark::RegisterBenchmark(
          (prefix + "Attention/hd=128/group=4/positions=" + std::to_string(positions)).c_str(),
          BM_Attention, kt, positions)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(
          (prefix + "AttentionQ8/hd=128/group=4/positions=" + std::to_string(positions)).c_str(),
          BM_AttentionQ8, kt, positions)
          ->Unit(benchmark::kMicrosecond);
    }
    for (const Shape& s : kI2SShapes) {
      const std::string shape =
          std::string(s.name) + "/" + std::to_string(s.k) + "x" + std::to_string(s.m);
      benchmark::RegisterBenchmark((prefix + "I2SGemv/" + shape).c_str(), BM_I2SGemv, kt, s)
          ->Unit(benchmark::kMicrosecond);
      for (int64_t n : {8, 16, 128}) {
        if (!fast && n > 8) continue;
        benchmark::RegisterBenchmark(
            (prefix + "I2SGemm/" + shape + "/n=" + std::to_string(n)).c_str(), BM_I2SGemm, kt, s, n)
            ->Unit(benchmark::kMillisecond);
      }
    }
    for (int64_t n : {1, 8, 16, 128}) {
      if (!fast && n > 1) continue;
      benchmark::RegisterBenchmark((prefix + (n == 1 ? "F16Gemv/" : "F16Gemm/") + kHead.name + "/" +
                                    std::to_string(kHead.k) + "x" + std::to_string(kHead.m) +
                                    (n == 1 ? "" : "/n=" + std::to_string(n)))
                                       .c_str(),
                                   BM_F16Gemm, kt, kHead, n)
          ->Unit(benchmark::kMillisecond);
    }
    for (int64_t n : {1, 8, 16}) {
      if (!fast && n > 1) continue;
      benchmark::RegisterBenchmark(
          (prefix + (n == 1 ? "I8Gemv/" : "I8Gemm/") + kHead.name + "/" + std::to_string(kHead.k) +
           "x" + std::to_string(kHead.m) + (n == 1 ? "" : "/n=" + std::to_string(n)))
              .c_str(),
          BM_I8Gemm, kt, kHead, n)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace
}  // namespace wf::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  wf::kernels::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
