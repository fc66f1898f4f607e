#include "worker/service/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/kv/block_hash.h"
#include "worker/service/block_manager.h"

namespace wf::service {

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager* blocks)
    : config_(config), blocks_(blocks) {}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerConfig& config,
                                                             BlockManager* blocks) {
  if (blocks == nullptr) return absl::InvalidArgumentError("scheduler: block manager is null");
  const struct {
    const char* name;
    int64_t value;
  } fields[] = {{"max_running", config.max_running},
                {"max_waiting", config.max_waiting},
                {"max_step_tokens", config.max_step_tokens},
                {"max_context", config.max_context}};
  for (const auto& f : fields) {
    if (f.value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler: ", f.name, " must be positive, got ", f.value));
    }
  }
  if (config.max_step_tokens < config.max_running) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_step_tokens (", config.max_step_tokens, ") must be at least max_running (",
        config.max_running, ") so one step can hold every running sequence's decode token"));
  }
  const int64_t bs = blocks->block_size();
  const int64_t need = (config.max_context + bs - 1) / bs;
  if (need > blocks->num_total_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_context (", config.max_context, ") needs ", need, " KV blocks of ", bs,
        " positions, but the KV pool has only ", blocks->num_total_blocks()));
  }
  return std::unique_ptr<Scheduler>(new Scheduler(config, blocks));
}

Scheduler::~Scheduler() {
  for (auto& s : running_) blocks_->Release(&s->kv);
  for (auto& s : waiting_) blocks_->Release(&s->kv);
}

absl::Status Scheduler::Add(std::unique_ptr<Sequence> seq) {
  if (seq == nullptr) return absl::InvalidArgumentError("sequence is null");
  const int64_t n_tokens = static_cast<int64_t>(seq->tokens.size());
  if (n_tokens == 0) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq->id, ": empty prompt"));
  }
  if (seq->num_prompt_tokens < 1 || seq->num_prompt_tokens > n_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq->id, ": num_prompt_tokens is ", seq->num_prompt_tokens,
                     "; it must be in [1, ", n_tokens, "] (the number of tokens)"));
  }
  if (n_tokens > config_.max_context) {
    return absl::InvalidArgumentError(absl::StrCat(
        n_tokens == seq->num_prompt_tokens ? "prompt has " : "sequence has ", n_tokens,
        " tokens; the context limit is ", config_.max_context));
  }
  if (seq->max_total_tokens > config_.max_context) {
    return absl::InvalidArgumentError(absl::StrCat("max_total_tokens is ", seq->max_total_tokens,
                                                   "; the context limit is ", config_.max_context));
  }
  if (seq->max_total_tokens < n_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_total_tokens is ", seq->max_total_tokens,
                                                   ", less than the ", n_tokens,
                                                   " tokens the sequence already has"));
  }
  if (!seq->kv.block_table.empty() || seq->kv.length != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq->id, ": kv must be empty when added"));
  }
  if (by_id_.contains(seq->id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence id ", seq->id, " is already waiting or running"));
  }
  if (num_waiting() >= config_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat("queue full: ", num_waiting(),
                                                     " requests waiting (limit ",
                                                     config_.max_waiting, ")"));
  }
  // Without prefix caching no hash is known, so nothing is matched or shared.
  seq->prompt_block_hashes.clear();
  if (config_.prefix_caching) {
    seq->prompt_block_hashes = kv::HashFullBlocks(
        absl::MakeConstSpan(seq->tokens).first(seq->num_prompt_tokens), blocks_->block_size());
  }
  seq->cached_prompt_tokens = -1;
  seq->num_preemptions = 0;
  seq->arrival = next_arrival_++;
  seq->running = false;
  seq->num_committed_blocks = 0;
  by_id_[seq->id] = seq.get();
  waiting_.push_back(std::move(seq));
  return absl::OkStatus();
}

int64_t Scheduler::RunnableTokens(const Sequence& s) const {
  const int64_t end = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()), config_.max_context);
  return end - s.kv.length;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int64_t budget = config_.max_step_tokens;
  // Pointers stay valid when a sequence moves between the queues (the
  // unique_ptr moves, not the object); `running` says where it is now.
  std::vector<Sequence*> order;
  order.reserve(running_.size());
  for (const auto& s : running_) order.push_back(s.get());

  for (Sequence* s : order) {
    if (s->running && RunnableTokens(*s) == 1) PlanRunning(s, &budget, &plan);
  }
  for (Sequence* s : order) {
    if (s->running && RunnableTokens(*s) > 1) PlanRunning(s, &budget, &plan);
  }
  // Re-admitting in the step that preempted would just thrash the blocks
  // that were freed for the older sequences.
  if (plan.preempted.empty()) {
    while (!waiting_.empty() && num_running() < config_.max_running && budget > 0) {
      if (!TryAdmit(&budget, &plan)) break;
    }
  }
  return plan;
}

void Scheduler::PlanRunning(Sequence* s, int64_t* budget, StepPlan* plan) {
  while (s->running) {
    const int64_t runnable = RunnableTokens(*s);
    if (runnable <= 0 || *budget <= 0) return;
    const int64_t room = blocks_->ReservablePositions(s->kv) - s->kv.length;
    const int64_t count = std::min({runnable, *budget, room});
    if (count > 0) {
      // Cannot fail: `room` positions are reservable.
      (void)blocks_->Reserve(&s->kv, s->kv.length + count);
      const int32_t begin = s->kv.length;
      const bool last = begin + count == static_cast<int64_t>(s->tokens.size());
      plan->items.push_back(
          {.seq = s, .begin = begin, .count = static_cast<int32_t>(count), .want_logits = last});
      plan->num_tokens += count;
      *budget -= count;
      return;
    }
    PreemptNewest(budget, plan);
  }
}

bool Scheduler::TryAdmit(int64_t* budget, StepPlan* plan) {
  Sequence* s = waiting_.front().get();
  const int bs = blocks_->block_size();
  const absl::Span<const uint64_t> hashes = s->prompt_block_hashes;
  // Leave at least one token to compute so the step produces logits.
  const int max_blocks = static_cast<int>((s->tokens.size() - 1) / bs);
  const int matched = std::min(blocks_->MatchPrefix(hashes), max_blocks);
  const int64_t start = static_cast<int64_t>(matched) * bs;
  const int64_t end =
      std::min<int64_t>(static_cast<int64_t>(s->tokens.size()), config_.max_context);
  const int64_t count = std::min(end - start, *budget);
  // A preempted sequence comes back only when all it holds fits at once: let
  // in chunk by chunk, it would run out of blocks again against the same
  // older sequences and be preempted again, recomputing for nothing each time
  // (two long generations sharing a pool made no progress that way).
  const int64_t need = s->num_preemptions > 0 ? end : start + count;
  if (count <= 0 || !blocks_->CanAcquireAndReserve(hashes, max_blocks, need)) return false;

  const bool first_admission = s->cached_prompt_tokens < 0;
  const int got = blocks_->AcquirePrefix(hashes, max_blocks, &s->kv, first_admission);
  if (first_admission) s->cached_prompt_tokens = got * bs;
  // Cannot fail: checked by CanAcquireAndReserve.
  (void)blocks_->Reserve(&s->kv, s->kv.length + count);
  s->num_committed_blocks = got;
  s->running = true;
  const int32_t begin = s->kv.length;
  plan->items.push_back({.seq = s,
                         .begin = begin,
                         .count = static_cast<int32_t>(count),
                         .want_logits = begin + count == static_cast<int64_t>(s->tokens.size())});
  plan->admitted.push_back(s->id);
  plan->num_tokens += count;
  *budget -= count;

  std::unique_ptr<Sequence> owned = std::move(waiting_.front());
  waiting_.pop_front();
  auto pos = std::upper_bound(
      running_.begin(), running_.end(), owned->arrival,
      [](uint64_t arrival, const std::unique_ptr<Sequence>& r) { return arrival < r->arrival; });
  running_.insert(pos, std::move(owned));
  return true;
}

void Scheduler::PreemptNewest(int64_t* budget, StepPlan* plan) {
  std::unique_ptr<Sequence> victim = std::move(running_.back());
  running_.pop_back();
  Sequence* v = victim.get();
  auto& items = plan->items;
  for (auto it = items.begin(); it != items.end();) {
    if (it->seq == v) {
      *budget += it->count;
      plan->num_tokens -= it->count;
      it = items.erase(it);
    } else {
      ++it;
    }
  }
  CommitPromptBlocks(v);
  blocks_->Release(&v->kv);
  v->running = false;
  v->num_committed_blocks = 0;
  ++v->num_preemptions;
  ++total_preemptions_;
  plan->preempted.push_back(v->id);
  // Newest preempted first, so older ones end up ahead: the queue stays in
  // arrival order.
  waiting_.push_front(std::move(victim));
}

void Scheduler::CommitPromptBlocks(Sequence* s) {
  const int32_t n = std::min<int32_t>(std::min(s->kv.length, s->num_prompt_tokens) / blocks_->block_size(),
                                      static_cast<int32_t>(s->prompt_block_hashes.size()));
  if (n <= s->num_committed_blocks) return;
  blocks_->Commit(s->kv, absl::MakeConstSpan(s->prompt_block_hashes).first(n));
  s->num_committed_blocks = n;
}

void Scheduler::OnStepComplete(const StepPlan& plan) {
  // The plan's items may point at sequences the engine already removed, so
  // walk the running set instead; Remove() committed for those.
  (void)plan;
  for (auto& s : running_) CommitPromptBlocks(s.get());
}

std::unique_ptr<Sequence> Scheduler::Remove(uint64_t id) {
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  Sequence* target = found->second;
  by_id_.erase(found);
  std::unique_ptr<Sequence> out;
  if (target->running) {
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const std::unique_ptr<Sequence>& s) { return s.get() == target; });
    out = std::move(*it);
    running_.erase(it);
  } else {
    auto it = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const std::unique_ptr<Sequence>& s) { return s.get() == target; });
    out = std::move(*it);
    waiting_.erase(it);
  }
  CommitPromptBlocks(out.get());
  blocks_->Release(&out->kv);
  out->running = false;
  out->num_committed_blocks = 0;
  return out;
}

Sequence* Scheduler::Find(uint64_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

}  // namespace wf::service
