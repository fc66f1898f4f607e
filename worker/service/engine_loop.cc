#include "worker/service/engine_loop.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace wf::service {
namespace {

namespace v1 = wrinklefree::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

v1::KvEvent ToProto(const KvEvent& e) {
  v1::KvEvent out;
  out.set_sequence_number(e.sequence_number);
  switch (e.kind) {
    case KvEvent::Kind::kStored: {
      v1::BlocksStored* s = out.mutable_stored();
      s->mutable_block_hashes()->Add(e.block_hashes.begin(), e.block_hashes.end());
      if (e.parent_hash.has_value()) s->set_parent_block_hash(*e.parent_hash);
      break;
    }
    case KvEvent::Kind::kRemoved:
      out.mutable_removed()->mutable_block_hashes()->Add(e.block_hashes.begin(), e.block_hashes.end());
      break;
    case KvEvent::Kind::kAllCleared:
      out.mutable_all_cleared();
      break;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EngineLoop>> EngineLoop::Create(const engine::Model* model,
                                                               const tokenizer::Tokenizer* tokenizer,
                                                               const EngineLoopOptions& options, LoadHub* hub,
                                                               WorkerMetrics* metrics) {
  if (model == nullptr || tokenizer == nullptr || hub == nullptr) {
    return absl::InvalidArgumentError("EngineLoop needs a model, a tokenizer and a load hub");
  }
  if (options.scheduler.max_context <= 0) {
    return absl::InvalidArgumentError("EngineLoopOptions.scheduler.max_context must be positive");
  }
  std::unique_ptr<EngineLoop> loop(new EngineLoop());
  loop->model_ = model;
  loop->tokenizer_ = tokenizer;
  loop->hub_ = hub;
  loop->metrics_ = metrics;
  loop->scheduler_config_ = options.scheduler;
  loop->block_size_ = options.block_size;
  loop->max_context_ = options.scheduler.max_context;
  loop->report_interval_ = options.report_interval;
  for (int32_t id : {tokenizer->eos_id(), tokenizer->eot_id()}) {
    if (id >= 0) loop->eog_ids_.push_back(id);
  }

  const engine::ModelConfig& mc = model->config();
  BN_ASSIGN_OR_RETURN(loop->cache_, engine::KvCache::Create({.n_layer = mc.n_layer,
                                                             .n_head_kv = mc.n_head_kv,
                                                             .head_dim = mc.head_dim,
                                                             .block_size = options.block_size,
                                                             .num_blocks = options.kv_cache_blocks,
                                                             .type = options.kv_cache_type}));
  loop->total_blocks_ = options.kv_cache_blocks;
  const int threads = options.threads > 0 ? options.threads
                                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  loop->pool_ = std::make_unique<engine::ThreadPool>(threads);
  BN_ASSIGN_OR_RETURN(loop->runner_, engine::ModelRunner::Create(model, loop->cache_.get(), loop->pool_.get(),
                                                                 {.max_context = loop->max_context_}));
  BN_ASSIGN_OR_RETURN(loop->blocks_, BlockManager::Create(loop->cache_.get()));
  BN_ASSIGN_OR_RETURN(loop->scheduler_, Scheduler::Create(options.scheduler, loop->blocks_.get()));
  return loop;
}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Start() {
  PublishLoad();
  thread_ = std::thread([this] { Run(); });
}

absl::StatusOr<std::string> EngineLoop::Submit(std::unique_ptr<GenerateJob> job,
                                               std::shared_ptr<ResponseSink> sink) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_ || draining_.load()) {
    return absl::UnavailableError("the worker is shutting down; send the request to another worker");
  }
  const int waiting = waiting_in_scheduler_ + static_cast<int>(inbox_.size());
  if (waiting >= scheduler_config_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat("queue full: ", waiting, " requests waiting (limit ",
                                                     scheduler_config_.max_waiting, ")"));
  }
  const uint64_t seq_id = next_seq_id_++;
  if (job->request_id.empty()) {
    std::string id = absl::StrCat("auto-", seq_id);
    while (live_.contains(id)) absl::StrAppend(&id, "x");
    job->request_id = std::move(id);
  } else if (live_.contains(job->request_id)) {
    return absl::AlreadyExistsError(absl::StrCat("request_id '", job->request_id, "' is already running"));
  }
  std::string id = job->request_id;
  live_[id] = seq_id;
  inbox_.push_back({seq_id, std::move(job), std::move(sink)});
  lock.unlock();
  input_cv_.notify_one();
  return id;
}

absl::Status EngineLoop::Abort(const std::string& request_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(request_id);
    if (it == live_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no running or queued request has id '", request_id.substr(0, 128), "'"));
    }
    aborts_.push_back(it->second);
  }
  input_cv_.notify_one();
  return absl::OkStatus();
}

void EngineLoop::Cancel(const std::string& request_id) { (void)Abort(request_id); }

void EngineLoop::BeginDrain() {
  draining_.store(true);  // the next load report (within report_interval) says so
}

int EngineLoop::num_live_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(live_.size());
}

bool EngineLoop::WaitIdle(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return live_.empty(); });
}

void EngineLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  input_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::Run() {
  std::vector<Pending> pending;
  std::vector<uint64_t> aborts;
  while (true) {
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!scheduler_->HasWork()) {
        input_cv_.wait_for(lock, absl::ToChronoNanoseconds(report_interval_),
                           [this] { return stop_ || !inbox_.empty() || !aborts_.empty(); });
      }
      pending.swap(inbox_);
      aborts.swap(aborts_);
      stopping = stop_;
    }
    AdmitPending(&pending);
    for (uint64_t seq_id : aborts) {
      if (active_.contains(seq_id)) Finish(seq_id, v1::FINISH_REASON_ABORT, {});
    }
    aborts.clear();
    if (stopping) {
      std::vector<uint64_t> ids;
      for (const auto& [id, a] : active_) ids.push_back(id);
      for (uint64_t id : ids) Finish(id, v1::FINISH_REASON_ABORT, {});
      PublishLoad();
      return;
    }
    if (scheduler_->HasWork()) Step();
    PublishLoad();
  }
}

void EngineLoop::AdmitPending(std::vector<Pending>* pending) {
  for (Pending& p : *pending) {
    auto a = std::make_unique<Active>();
    a->seq_id = p.seq_id;
    a->sink = std::move(p.sink);
    a->job = std::move(p.job);
    auto sampler = engine::Sampler::Create(a->job->sampling, model_->config().n_vocab);
    auto stops = engine::StopMatcher::Create(a->job->stop.stop_strings);
    auto seq = std::make_unique<Sequence>();
    seq->id = p.seq_id;
    seq->tokens = a->job->prompt;
    seq->num_prompt_tokens = static_cast<int32_t>(a->job->prompt.size());
    seq->max_total_tokens = seq->num_prompt_tokens + a->job->stop.max_tokens;
    absl::Status s = sampler.status();
    if (s.ok()) s = stops.status();
    if (s.ok()) s = scheduler_->Add(std::move(seq));
    Active* raw = a.get();
    active_[p.seq_id] = std::move(a);
    if (!s.ok()) {
      FailRequest(p.seq_id, s);
      continue;
    }
    raw->sampler = *std::move(sampler);
    raw->stops = *std::move(stops);
    raw->decoder = std::make_unique<tokenizer::StreamingDecoder>(*tokenizer_, raw->job->skip_special_tokens);
  }
  pending->clear();
}

void EngineLoop::Step() {
  StepPlan plan = scheduler_->Schedule();
  const Clock::time_point now = Clock::now();
  for (uint64_t id : plan.admitted) {
    auto it = active_.find(id);
    if (it == active_.end() || it->second->admitted) continue;
    it->second->admitted = true;
    it->second->admitted_at = now;
    if (metrics_) metrics_->AddPromptTokens(static_cast<int64_t>(it->second->job->prompt.size()));
  }
  if (metrics_ && !plan.preempted.empty()) metrics_->AddPreemptions(static_cast<int64_t>(plan.preempted.size()));
  // A step with a long prefill can take seconds: report the new running set
  // before it runs, so that routers balance on it meanwhile and a client that
  // holds its first token always finds its request counted as running.
  if (!plan.admitted.empty() || !plan.preempted.empty()) PublishLoad();
  if (plan.items.empty()) return;

  batch_.sequences.resize(plan.items.size());
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const StepPlan::Item& item = plan.items[i];
    engine::SequenceSlice& slice = batch_.sequences[i];
    slice.kv = &item.seq->kv;
    slice.tokens.resize(item.count);
    // A one-token prompt runs with decode rounding, as bitnet.cpp's
    // single-token path does (see Session).
    const int32_t rounding_from = item.seq->num_prompt_tokens == 1 ? 0 : item.seq->num_prompt_tokens;
    for (int32_t t = 0; t < item.count; ++t) {
      const int32_t pos = item.begin + t;
      slice.tokens[t] = {.id = item.seq->tokens[pos],
                         .want_logits = item.want_logits && t + 1 == item.count,
                         .decode_rounding = pos >= rounding_from};
    }
  }
  const Clock::time_point t0 = Clock::now();
  absl::Status s = runner_->Forward(batch_, &out_);
  if (metrics_) metrics_->RecordIteration(plan.num_tokens, Seconds(t0, Clock::now()));
  if (!s.ok()) {
    WF_LOG(ERROR) << "forward pass failed: " << s;
    std::vector<uint64_t> ids;
    for (const StepPlan::Item& item : plan.items) ids.push_back(item.seq->id);
    for (uint64_t id : ids) FailRequest(id, absl::InternalError(absl::StrCat("forward pass failed: ", s.message())));
    return;
  }
  scheduler_->OnStepComplete(plan);
  for (size_t r = 0; r < out_.rows.size(); ++r) {
    HandleLogits(plan.items[out_.rows[r].sequence].seq, out_.row_logits(r));
  }
}

void EngineLoop::HandleLogits(Sequence* seq, absl::Span<const float> logits) {
  auto it = active_.find(seq->id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  absl::StatusOr<engine::SampleResult> pick = a.sampler->Sample(logits, seq->tokens);
  if (!pick.ok()) {
    FailRequest(seq->id, absl::InternalError(absl::StrCat("sampling failed: ", pick.status().message())));
    return;
  }
  const Clock::time_point now = Clock::now();
  ++a.generated;
  if (metrics_) metrics_->AddGenerationTokens(1);
  if (a.generated == 1) {
    a.first_token_at = now;
    if (metrics_) metrics_->ObserveTtft(Seconds(a.job->arrival, now));
  } else if (metrics_) {
    metrics_->ObserveInterTokenLatency(Seconds(a.last_token_at, now));
  }
  a.last_token_at = now;
  recent_tokens_.emplace_back(now, 1);
  ++recent_token_sum_;

  v1::GenerateResponse resp;
  resp.set_request_id(a.job->request_id);
  if (a.job->return_prompt_token_ids && !a.sent_prompt_ids) {
    resp.mutable_prompt_token_ids()->Add(a.job->prompt.begin(), a.job->prompt.end());
    a.sent_prompt_ids = true;
  }
  v1::GeneratedToken* tok = resp.add_tokens();
  tok->set_token_id(pick->token);
  if (a.job->sampling.logprobs) {
    tok->set_logprob(pick->logprob);
    if (auto bytes = tokenizer_->Decode({pick->token}); bytes.ok()) tok->set_token_bytes(*bytes);
    for (const engine::TopLogprob& t : pick->top_logprobs) {
      v1::TokenLogprob* tl = tok->add_top_logprobs();
      tl->set_token_id(t.token);
      tl->set_logprob(t.logprob);
      if (auto bytes = tokenizer_->Decode({t.token}); bytes.ok()) tl->set_token_bytes(*bytes);
    }
  }

  if (a.job->stop.IsStopToken(pick->token, eog_ids_)) {
    resp.set_text_delta(FlushText(a));
    Finish(seq->id, v1::FINISH_REASON_STOP, std::move(resp));
    return;
  }
  seq->tokens.push_back(pick->token);
  std::string piece;
  if (auto p = a.decoder->Add(pick->token); p.ok()) piece = *std::move(p);
  engine::StopMatchResult m = a.stops->Push(piece);
  resp.set_text_delta(std::move(m.text));
  if (m.stopped()) {
    Finish(seq->id, v1::FINISH_REASON_STOP, std::move(resp), a.stops->stop_strings()[m.stop_index]);
    return;
  }
  if (a.job->stop.ReachedMaxTokens(a.generated) || static_cast<int32_t>(seq->tokens.size()) >= max_context_) {
    resp.mutable_text_delta()->append(FlushText(a));
    Finish(seq->id, v1::FINISH_REASON_LENGTH, std::move(resp));
    return;
  }
  a.sink->Push(std::move(resp));
}

std::string EngineLoop::FlushText(Active& a) {
  if (a.stops == nullptr || a.stops->stopped()) return "";
  std::string text;
  if (a.decoder != nullptr) {
    engine::StopMatchResult m = a.stops->Push(a.decoder->Finish());
    text = std::move(m.text);
    if (m.stopped()) return text;
  }
  text += a.stops->Flush();
  return text;
}

void EngineLoop::Finish(uint64_t seq_id, v1::FinishReason reason, v1::GenerateResponse response,
                        std::string matched_stop) {
  auto it = active_.find(seq_id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  const Clock::time_point now = Clock::now();
  std::unique_ptr<Sequence> seq = scheduler_->Remove(seq_id);
  response.set_request_id(a.job->request_id);
  if (reason == v1::FINISH_REASON_ABORT) response.set_text_delta(FlushText(a));
  response.set_finished(true);
  response.set_finish_reason(reason);
  response.set_matched_stop(std::move(matched_stop));
  v1::Usage* usage = response.mutable_usage();
  usage->set_prompt_tokens(static_cast<int32_t>(a.job->prompt.size()));
  usage->set_completion_tokens(a.generated);
  usage->set_cached_prompt_tokens(seq != nullptr ? std::max(0, seq->cached_prompt_tokens) : 0);
  v1::Timing* timing = response.mutable_timing();
  timing->set_queue_seconds(a.admitted ? Seconds(a.job->arrival, a.admitted_at) : Seconds(a.job->arrival, now));
  if (a.generated > 0) timing->set_time_to_first_token_seconds(Seconds(a.job->arrival, a.first_token_at));
  timing->set_total_seconds(Seconds(a.job->arrival, now));
  if (a.sampler) response.set_seed(a.sampler->seed());
  if (metrics_) {
    FinishedRequestStats st;
    st.reason = reason == v1::FINISH_REASON_STOP     ? FinishReason::kStop
                : reason == v1::FINISH_REASON_LENGTH ? FinishReason::kLength
                                                     : FinishReason::kAbort;
    st.e2e_seconds = Seconds(a.job->arrival, now);
    if (a.admitted) st.queue_seconds = Seconds(a.job->arrival, a.admitted_at);
    if (a.admitted && a.generated > 0) {
      st.prefill_seconds = Seconds(a.admitted_at, a.first_token_at);
      st.decode_seconds = Seconds(a.first_token_at, now);
    }
    st.prompt_tokens = static_cast<int64_t>(a.job->prompt.size());
    st.generation_tokens = a.generated;
    st.max_tokens = a.job->stop.max_tokens;
    metrics_->RecordFinishedRequest(st);
  }
  std::shared_ptr<ResponseSink> sink = std::move(a.sink);
  Forget(seq_id);
  sink->Push(std::move(response));
}

void EngineLoop::FailRequest(uint64_t seq_id, absl::Status status) {
  auto it = active_.find(seq_id);
  if (it == active_.end()) return;
  (void)scheduler_->Remove(seq_id);
  if (metrics_) metrics_->RequestFinished(FinishReason::kError);
  std::shared_ptr<ResponseSink> sink = std::move(it->second->sink);
  Forget(seq_id);
  sink->Fail(std::move(status));
}

void EngineLoop::Forget(uint64_t seq_id) {
  auto it = active_.find(seq_id);
  if (it == active_.end()) return;
  const std::string id = it->second->job->request_id;
  active_.erase(it);
  bool idle = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto live = live_.find(id);
    if (live != live_.end() && live->second == seq_id) live_.erase(live);
    idle = live_.empty();
  }
  if (idle) idle_cv_.notify_all();
}

void EngineLoop::PublishLoad() {
  const Clock::time_point now = Clock::now();
  while (!recent_tokens_.empty() && now - recent_tokens_.front().first > std::chrono::seconds(1)) {
    recent_token_sum_ -= recent_tokens_.front().second;
    recent_tokens_.pop_front();
  }
  v1::Load load;
  load.set_running(scheduler_->num_running());
  load.set_waiting(scheduler_->num_waiting());
  load.set_max_running(scheduler_config_.max_running);
  load.set_max_waiting(scheduler_config_.max_waiting);
  load.set_kv_used_blocks(blocks_->num_used_blocks());
  load.set_kv_cached_blocks(blocks_->num_cached_blocks());
  load.set_kv_total_blocks(blocks_->num_total_blocks());
  load.set_generation_tokens_per_second(recent_token_sum_);
  const BlockManager::Stats stats = blocks_->stats();
  load.set_prefix_cache_query_tokens(stats.prefix_query_tokens);
  load.set_prefix_cache_hit_tokens(stats.prefix_hit_tokens);
  load.set_draining(draining_.load());
  std::vector<v1::KvEvent> events;
  for (const KvEvent& e : blocks_->TakeEvents()) events.push_back(ToProto(e));
  hub_->Publish(load, std::move(events));
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_in_scheduler_ = scheduler_->num_waiting();
  }
  if (metrics_) {
    metrics_->SetRunning(load.running());
    metrics_->SetWaiting(load.waiting());
    metrics_->SetKvCacheBlocks(load.kv_used_blocks(), load.kv_total_blocks());
    metrics_->AddPrefixCacheLookup(static_cast<int64_t>(stats.prefix_query_tokens - reported_query_tokens_),
                                   static_cast<int64_t>(stats.prefix_hit_tokens - reported_hit_tokens_));
    reported_query_tokens_ = stats.prefix_query_tokens;
    reported_hit_tokens_ = stats.prefix_hit_tokens;
  }
}

}  // namespace wf::service
