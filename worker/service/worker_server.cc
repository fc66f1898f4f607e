#include "worker/service/worker_server.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "common/grpc/callback_queue_warmer.h"
#include "common/grpc/reaction_order.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/kv/block_hash.h"
#include "common/tls/tls_files.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/gguf_vocab.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/kernels/kernels.h"
#include "worker/service/engine_loop.h"
#include "worker/service/load_hub.h"
#include "worker/service/worker_metrics.h"
#include "worker/service/worker_service.h"

namespace wf::service {
namespace {

namespace v1 = wrinklefree::v1;
constexpr char kServiceName[] = "wrinklefree.v1.Worker";

std::string RandomInstanceId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

void Say(const std::string& line) {
  std::printf("wf_worker: %s\n", line.c_str());
  std::fflush(stdout);
}

std::string DefaultModelName(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  if (stem.size() > 5 && stem.ends_with(".gguf")) stem.resize(stem.size() - 5);
  return stem.empty() ? "model" : stem;
}

void SetHealth(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

std::string WeightTypeName(const gguf::GgufFile& file) {
  if (const gguf::TensorInfo* t = file.FindTensor("blk.0.attn_q.weight"); t != nullptr) {
    return absl::AsciiStrToLower(gguf::GgmlTypeName(t->type));
  }
  return "";
}

v1::ModelInfo BuildModelInfo(const engine::Model& model, const tokenizer::Tokenizer& tok,
                             const std::optional<tokenizer::ChatFormat>& chat, const std::string& name,
                             const EngineLoop& loop) {
  v1::ModelInfo info;
  const engine::ModelConfig& mc = model.config();
  info.set_model_name(name);
  info.set_architecture("bitnet-b1.58");
  info.set_max_context(loop.max_context());
  info.set_n_ctx_train(mc.n_ctx_train);
  info.set_vocab_size(mc.n_vocab);
  const tokenizer::Vocab& vocab = tok.vocab();
  auto special = [&](const char* what, int32_t id) {
    if (id < 0 || id >= static_cast<int32_t>(vocab.tokens.size())) return;
    v1::SpecialToken* s = info.add_special_tokens();
    s->set_name(what);
    s->set_id(id);
    s->set_text(vocab.tokens[id]);
  };
  special("bos", vocab.bos_id);
  special("eos", vocab.eos_id);
  special("eot", vocab.eot_id);
  for (int32_t id : {vocab.eos_id, vocab.eot_id}) {
    if (id >= 0) info.add_eog_token_ids(id);
  }
  if (chat.has_value()) info.set_chat_format(std::string(tokenizer::ChatFormatName(*chat)));
  info.set_chat_template(vocab.chat_template);
  info.set_add_bos(vocab.add_bos);
  info.set_kv_block_size(loop.block_size());
  info.set_kv_block_hash_scheme(kv::kBlockHashScheme);
  info.set_kv_total_blocks(loop.total_blocks());
  if (auto m = model.file().GetString("tokenizer.ggml.model"); m.ok()) info.set_tokenizer_model(std::string(*m));
  info.set_tokenizer_pre(vocab.pre);
  info.set_worker_version(WF_VERSION);
  info.set_kernel_isa(std::string(kernels::IsaName(model.kernels().isa)));
  info.set_weight_type(WeightTypeName(model.file()));
  info.set_max_running(loop.scheduler_config().max_running);
  info.set_max_waiting(loop.scheduler_config().max_waiting);
  return info;
}

}  // namespace

absl::Status RunWorkerServer(const WorkerConfig& config) {
  // Signals are taken by sigwait() below; every thread started from here on
  // inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const auto t_start = std::chrono::steady_clock::now();

  const std::string model_name = config.model_name.empty() ? DefaultModelName(config.model_path) : config.model_name;
  LoadHub hub(RandomInstanceId());
  WorkerService service(&hub, {.default_report_interval_ms = static_cast<int>(config.load_report_interval_ms)});

  // The TLS files are read (and checked) once, before anything listens.
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!config.tls_cert_file.empty()) {
    BN_ASSIGN_OR_RETURN(tls::KeyPair pair, tls::LoadKeyPair(config.tls_cert_file, config.tls_key_file));
    grpc::SslServerCredentialsOptions so;
    so.pem_key_cert_pairs.push_back({std::move(pair.private_key_pem), std::move(pair.cert_chain_pem)});
    credentials = grpc::SslServerCredentials(so);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  const std::string address = absl::StrCat(config.host, ":", config.port);
  builder.AddListeningPort(address, credentials, &grpc_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(std::max<int>(static_cast<int>(config.max_message_bytes), 64 << 20));
  builder.RegisterService(&service);
  grpc_util::PublishToHandlers();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", address, " (in use or not a local address?)"));
  }
  SetHealth(server.get(), false);
  // Without it, the first request after a quiet second waits up to 100 ms
  // for a callback thread (see the header); destroyed before the shutdown.
  auto warmer = std::make_unique<grpc_util::CallbackQueueWarmer>(
      server->InProcessChannel(grpc::ChannelArguments()));
  Say(absl::StrCat("grpc listening on ", config.host, ":", grpc_port));
  if (!config.tls_cert_file.empty()) {
    WF_LOG(INFO) << "gRPC over TLS with " << config.tls_cert_file;
  }

  // The model.
  BN_ASSIGN_OR_RETURN(engine::HeadType head_type, engine::ParseHeadType(config.head_type));
  BN_ASSIGN_OR_RETURN(engine::KvCacheType kv_type, engine::ParseKvCacheType(config.kv_cache_type));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model,
                      engine::Model::Load(config.model_path, {.head_type = head_type}));
  BN_ASSIGN_OR_RETURN(tokenizer::Vocab vocab, tokenizer::VocabFromGgufFile(model->file()));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Create(std::move(vocab)));
  std::optional<tokenizer::ChatFormat> chat;
  if (auto f = tokenizer::DetectChatFormat(tok->vocab().chat_template); f.ok()) chat = *f;

  const engine::ModelConfig& mc = model->config();
  const int64_t max_context = config.max_context > 0 ? config.max_context : mc.n_ctx_train;
  if (config.max_context > mc.n_ctx_train) {
    WF_LOG(WARNING) << "--max-context " << config.max_context << " exceeds the model's training context "
                    << mc.n_ctx_train;
  }
  if (kv_type == engine::KvCacheType::kQ8 && mc.head_dim % kernels::kQ8Block != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-type q8 needs a head dimension that is a multiple of ",
                                                   kernels::kQ8Block, "; this model's is ", mc.head_dim));
  }
  const int64_t kv_bytes_per_token = static_cast<int64_t>(engine::KvCache::BytesPerToken(
      {.n_layer = mc.n_layer, .n_head_kv = mc.n_head_kv, .head_dim = mc.head_dim, .type = kv_type}));
  BN_ASSIGN_OR_RETURN(int64_t kv_tokens, ResolveKvCacheTokens(config, max_context, kv_bytes_per_token));
  if (kv_tokens < max_context) {
    return absl::InvalidArgumentError(absl::StrCat("the KV cache (", kv_tokens,
                                                   " tokens) cannot hold one sequence of the context limit (",
                                                   max_context, "); raise --kv-cache-tokens or lower --max-context"));
  }

  std::unique_ptr<WorkerMetrics> metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (config.metrics_port >= 0) {
    BN_ASSIGN_OR_RETURN(metrics, WorkerMetrics::Create(model_name, static_cast<int>(config.block_size), max_context,
                                                       engine::KvCacheTypeName(kv_type)));
    BN_ASSIGN_OR_RETURN(metrics_server, MetricsServer::Start(config.metrics_host, static_cast<int>(config.metrics_port),
                                                             {metrics->registry()}));
    Say(absl::StrCat("metrics listening on ", config.metrics_host, ":", metrics_server->port()));
  }

  EngineLoopOptions lo;
  lo.scheduler.max_running = static_cast<int>(config.max_running);
  lo.scheduler.max_waiting = static_cast<int>(config.max_waiting);
  lo.scheduler.max_step_tokens = static_cast<int>(config.max_step_tokens);
  lo.scheduler.max_context = static_cast<int32_t>(max_context);
  lo.scheduler.prefix_caching = config.prefix_caching;
  lo.block_size = static_cast<int>(config.block_size);
  lo.kv_cache_blocks = static_cast<int>(kv_tokens / config.block_size);
  lo.kv_cache_type = kv_type;
  lo.threads = static_cast<int>(config.threads);
  lo.report_interval = absl::Milliseconds(config.load_report_interval_ms);
  BN_ASSIGN_OR_RETURN(std::unique_ptr<EngineLoop> loop,
                      EngineLoop::Create(model.get(), tok.get(), lo, &hub, metrics.get()));
  loop->Start();

  ReadyState ready;
  ready.loop = loop.get();
  ready.tokenizer = tok.get();
  ready.prompt_tools = {.tokenizer = tok.get(), .chat_format = chat};
  ready.limits = {.max_context = static_cast<int32_t>(max_context),
                  .default_max_tokens = static_cast<int32_t>(config.max_new_tokens),
                  .vocab_size = mc.n_vocab};
  ready.model_info = BuildModelInfo(*model, *tok, chat, model_name, *loop);
  service.SetReady(&ready);
  SetHealth(server.get(), true);
  const double ready_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  Say(absl::StrFormat("ready in %.2f s (model %s, %s kernels, context %d, %s KV pool %d tokens in %d blocks of %d)",
                      ready_s, model_name, std::string(kernels::IsaName(model->kernels().isa)),
                      static_cast<int>(max_context), engine::KvCacheTypeName(kv_type), static_cast<int>(kv_tokens),
                      lo.kv_cache_blocks, lo.block_size));

  int sig = 0;
  sigwait(&signals, &sig);
  // Refuse new work before saying so: whoever reads "draining" may rely on it.
  loop->BeginDrain();
  SetHealth(server.get(), false);
  Say(absl::StrFormat("draining (signal %d): up to %.1f s for %d running requests", sig,
                      config.drain_timeout_seconds, loop->num_live_requests()));
  const bool idle = loop->WaitIdle(absl::Seconds(config.drain_timeout_seconds));
  if (!idle) {
    WF_LOG(WARNING) << "drain deadline passed; aborting " << loop->num_live_requests() << " requests";
  }
  loop->Stop();
  service.StopWatchers();
  warmer.reset();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  grpc_util::AfterHandlers();
  service.SetReady(nullptr);
  Say("stopped");
  return absl::OkStatus();
}

}  // namespace wf::service
