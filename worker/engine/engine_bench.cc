// End-to-end forward-pass benchmarks: single-sequence decode, prefill and
// batched decode, at 1 and 2 threads.
//
// The model is WF_BENCH_MODEL if set, else the golden model. With
// WF_BENCH_SYNTH_2B=1 a synthetic model of the BitNet b1.58 2B-4T body
// (2560 hidden, 30 layers, 20/5 heads, 6912 FFN; random ternary weights,
// vocabulary 2048) is written to a temporary file first and removed at exit,
// for comparison with the reference speeds of that shape.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/gguf/gguf_writer.h"
#include "common/quant/fp16.h"
#include "common/status_macros.h"
#include "common/testing/test_paths.h"
#include "worker/engine/forward.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/session.h"
#include "worker/engine/thread_pool.h"

namespace wf::engine {
namespace {

absl::Status WriteSynthetic2B(const std::string& path) {
  constexpr int64_t kEmbd = 2560, kFf = 6912, kLayers = 30, kHeads = 20, kKvHeads = 5,
                    kVocab = 2048;
  constexpr int64_t kKv = kEmbd / kHeads * kKvHeads;
  BN_ASSIGN_OR_RETURN(auto w, gguf::GgufWriter::Create(path));
  using gguf::Value;
  const std::string a = kArchitecture;
  BN_RETURN_IF_ERROR(w->AddMetadata("general.architecture", Value::String(a)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".vocab_size", Value::U32(kVocab)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".context_length", Value::U32(4096)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".embedding_length", Value::U32(kEmbd)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".block_count", Value::U32(kLayers)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".feed_forward_length", Value::U32(kFf)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".rope.dimension_count", Value::U32(kEmbd / kHeads)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".attention.head_count", Value::U32(kHeads)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".attention.head_count_kv", Value::U32(kKvHeads)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".attention.layer_norm_rms_epsilon", Value::F32(1e-5f)));
  BN_RETURN_IF_ERROR(w->AddMetadata(a + ".rope.freq_base", Value::F32(500000.0f)));
  struct T {
    std::string name;
    gguf::GgmlType type;
    std::vector<int64_t> ne;
  };
  std::vector<T> ts = {{"token_embd.weight", gguf::GgmlType::F16, {kEmbd, kVocab}},
                       {"output_norm.weight", gguf::GgmlType::F32, {kEmbd}}};
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const auto i2s = gguf::GgmlType::I2_S;
    const auto f32 = gguf::GgmlType::F32;
    ts.push_back({p + "attn_norm.weight", f32, {kEmbd}});
    ts.push_back({p + "attn_q.weight", i2s, {kEmbd, kEmbd}});
    ts.push_back({p + "attn_k.weight", i2s, {kEmbd, kKv}});
    ts.push_back({p + "attn_v.weight", i2s, {kEmbd, kKv}});
    ts.push_back({p + "attn_sub_norm.weight", f32, {kEmbd}});
    ts.push_back({p + "attn_output.weight", i2s, {kEmbd, kEmbd}});
    ts.push_back({p + "ffn_norm.weight", f32, {kEmbd}});
    ts.push_back({p + "ffn_gate.weight", i2s, {kEmbd, kFf}});
    ts.push_back({p + "ffn_up.weight", i2s, {kEmbd, kFf}});
    ts.push_back({p + "ffn_sub_norm.weight", f32, {kFf}});
    ts.push_back({p + "ffn_down.weight", i2s, {kFf, kEmbd}});
  }
  for (const T& t : ts) BN_RETURN_IF_ERROR(w->AddTensorInfo(t.name, t.type, t.ne));
  std::mt19937 rng(1234);
  for (const T& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    std::vector<uint8_t> bytes;
    if (t.type == gguf::GgmlType::I2_S) {
      bytes.resize(n / 4 + 32);
      for (int64_t i = 0; i < n / 4; ++i) {
        uint8_t b = 0;
        for (int j = 0; j < 4; ++j) b = static_cast<uint8_t>((b << 2) | (rng() % 3));
        bytes[i] = b;
      }
      const float scale = 0.02f;
      std::memcpy(&bytes[n / 4], &scale, sizeof(scale));
    } else if (t.type == gguf::GgmlType::F16) {
      bytes.resize(n * 2);
      std::normal_distribution<float> dist(0.0f, 0.02f);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::F32ToF16(dist(rng));
        std::memcpy(&bytes[2 * i], &h, 2);
      }
    } else {
      bytes.resize(n * 4);
      const float one = 1.0f;
      for (int64_t i = 0; i < n; ++i) std::memcpy(&bytes[4 * i], &one, 4);
    }
    BN_RETURN_IF_ERROR(w->WriteTensor(t.name, bytes.data(), bytes.size()));
  }
  return w->Finish();
}

struct BenchModel {
  std::unique_ptr<Model> model;
  std::string temp_path;
  ~BenchModel() {
    model.reset();
    if (!temp_path.empty()) std::filesystem::remove(temp_path);
  }
};

BenchModel* bench_model = nullptr;

std::vector<int32_t> Tokens(int n, int32_t n_vocab) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % n_vocab);
  return ids;
}

void BM_Decode(benchmark::State& state) {
  const Model& model = *bench_model->model;
  auto session =
      Session::Create(model, {.num_threads = static_cast<int>(state.range(0)), .max_context = 1024})
          .value();
  const std::vector<int32_t> prompt = Tokens(32, model.config().n_vocab);
  (void)session->Prefill(prompt).value();
  int32_t next = 1;
  for (auto _ : state) {
    if (session->length() >= 512) {
      state.PauseTiming();
      session->Reset();
      (void)session->Prefill(prompt).value();
      state.ResumeTiming();
    }
    const std::vector<float> logits = session->Decode(next).value();
    next = Argmax(logits);
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Prefill(benchmark::State& state) {
  const Model& model = *bench_model->model;
  const int n = static_cast<int>(state.range(1));
  auto session =
      Session::Create(model, {.num_threads = static_cast<int>(state.range(0)), .max_context = n})
          .value();
  const std::vector<int32_t> prompt = Tokens(n, model.config().n_vocab);
  for (auto _ : state) {
    session->Reset();
    benchmark::DoNotOptimize(session->Prefill(prompt).value());
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
}

// n_seq sequences decoding together, one forward call per step.
void BM_BatchedDecode(benchmark::State& state) {
  const Model& model = *bench_model->model;
  const ModelConfig& c = model.config();
  const int n_seq = static_cast<int>(state.range(1));
  ThreadPool pool(static_cast<int>(state.range(0)));
  constexpr int kMaxLen = 256;
  auto cache = KvCache::Create({.n_layer = c.n_layer,
                                .n_head_kv = c.n_head_kv,
                                .head_dim = c.head_dim,
                                .block_size = 16,
                                .num_blocks = n_seq * kMaxLen / 16})
                   .value();
  auto runner = ModelRunner::Create(&model, cache.get(), &pool, {}).value();
  std::vector<SequenceKv> kv(n_seq);
  ForwardOutput out;
  auto restart = [&] {
    Batch batch;
    for (int s = 0; s < n_seq; ++s) {
      cache->Release(&kv[s]);
      (void)cache->Reserve(&kv[s], kMaxLen);
      SequenceSlice& slice = batch.sequences.emplace_back();
      slice.kv = &kv[s];
      for (int32_t id : Tokens(16 + s, c.n_vocab)) slice.tokens.push_back({.id = id});
    }
    (void)runner->Forward(batch, &out);
  };
  restart();
  Batch step;
  for (int s = 0; s < n_seq; ++s) step.sequences.push_back({.kv = &kv[s], .tokens = {{}}});
  for (auto _ : state) {
    if (kv[n_seq - 1].length >= kMaxLen) {
      state.PauseTiming();
      restart();
      state.ResumeTiming();
    }
    for (int s = 0; s < n_seq; ++s) {
      step.sequences[s].tokens[0] = {
          .id = (s * 31 + kv[s].length) % c.n_vocab, .want_logits = true, .decode_rounding = true};
    }
    (void)runner->Forward(step, &out);
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * n_seq,
                                               benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Decode)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Prefill)
    ->ArgNames({"threads", "tokens"})
    ->Args({1, 128})
    ->Args({2, 128})
    ->UseRealTime();
BENCHMARK(BM_BatchedDecode)
    ->ArgNames({"threads", "seqs"})
    ->Args({1, 4})
    ->Args({2, 4})
    ->Args({2, 8})
    ->UseRealTime();

}  // namespace
}  // namespace wf::engine

int main(int argc, char** argv) {
  using wf::engine::bench_model;
  bench_model = new wf::engine::BenchModel();
  std::string path;
  if (const char* m = std::getenv("WF_BENCH_MODEL"); m != nullptr && *m != '\0') {
    path = m;
  } else if (const char* s = std::getenv("WF_BENCH_SYNTH_2B"); s != nullptr && *s == '1') {
    path = (std::filesystem::temp_directory_path() /
            absl::StrCat("wf_engine_bench_2b_", getpid(), ".gguf"))
               .string();
    bench_model->temp_path = path;
    std::fprintf(stderr, "writing synthetic 2B-shaped model to %s\n", path.c_str());
    if (absl::Status st = wf::engine::WriteSynthetic2B(path); !st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      delete bench_model;
      return 1;
    }
  } else {
    path = wf::testing::GoldenDir() + "/bitnet-synth-h256-l4.gguf";
  }
  auto model = wf::engine::Model::Load(path, {});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    delete bench_model;
    return 1;
  }
  bench_model->model = std::move(model).value();
  std::fprintf(stderr, "model %s: load %.3f s, kernels %s\n", path.c_str(),
               bench_model->model->load_stats().load_seconds,
               std::string(wf::kernels::IsaName(bench_model->model->kernels().isa)).c_str());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete bench_model;
  return 0;
}
