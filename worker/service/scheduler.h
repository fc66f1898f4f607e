// Continuous-batching scheduler: decides, step by step, which tokens of which
// sequences the engine runs next, under a per-step token budget, and keeps
// their KV blocks reserved through a BlockManager. It never touches a model.
//
// Policy of one Schedule() call (iteration-level batching, FCFS):
//   1. every running sequence that needs exactly one token (decode), oldest
//      first;
//   2. running sequences in the middle of their prefill, oldest first, each
//      getting as many prompt tokens as the remaining budget and the free KV
//      blocks allow (chunked prefill);
//   3. waiting sequences, in queue order, while fewer than max_running run
//      and budget remains. An admitted sequence first takes the longest
//      cached prefix of its prompt (always leaving at least one token to
//      compute, so the step yields logits); its first chunk must fit in the
//      free blocks, otherwise admission stops for this step.
// "Oldest" is arrival (Add) order. When a running sequence cannot get even
// one block, the newest running sequence is preempted: its blocks are
// released (its committed prompt blocks stay in the prefix cache), it goes to
// the front of the waiting queue and later recomputes its prompt and
// generated tokens. This repeats until the sequence fits or is itself the
// one preempted; Schedule() never fails. No sequence is admitted in a step
// that preempted one. The plan is a pure function of the calls made so far
// (deterministic).
//
// The engine loop:
//   StepPlan plan = scheduler->Schedule();
//   run Forward on plan.items (tokens[begin, begin + count) of each item;
//     Forward advances kv.length);
//   for every item with want_logits: sample a token and push it onto
//     seq->tokens, or Remove() the sequence when it is finished;
//   scheduler->OnStepComplete(plan);
// The engine must Remove() a sequence once tokens.size() reaches
// max_total_tokens (or at a stop condition); the scheduler never plans a
// position at or past max_context.
//
// Threading: not thread-safe; owned and used by the engine thread only. The
// BlockManager must outlive the scheduler.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto scheduler, Scheduler::Create({.max_running = 8}, blocks.get()));
//   auto seq = std::make_unique<Sequence>();
//   seq->id = 1;
//   seq->tokens = prompt;
//   seq->num_prompt_tokens = prompt.size();
//   seq->max_total_tokens = prompt.size() + 64;
//   BN_RETURN_IF_ERROR(scheduler->Add(std::move(seq)));
//   while (scheduler->HasWork()) { ... the engine loop above ... }
#ifndef WF_WORKER_SERVICE_SCHEDULER_H_
#define WF_WORKER_SERVICE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/kv_cache.h"
#include "worker/service/block_manager.h"

namespace wf::service {

struct SchedulerConfig {
  int max_running = 16;        // sequences in the running set
  int max_waiting = 256;       // sequences Add() accepts into the waiting queue
  int max_step_tokens = 256;   // tokens planned per Schedule()
  int32_t max_context = 4096;  // positions per sequence (prompt + generated)
  bool prefix_caching = true;  // false: prompts are never matched against or added to the cache
};

// One request as the scheduler sees it. The engine may derive from it to
// attach its own per-request state (the destructor is virtual).
struct Sequence {
  virtual ~Sequence() = default;

  uint64_t id = 0;
  std::vector<int32_t> tokens = {};  // prompt, then generated tokens
  int32_t num_prompt_tokens = 0;     // the first tokens that are the prompt
  int32_t max_total_tokens = 0;      // prompt + most new tokens
  engine::SequenceKv kv = {};        // blocks and computed positions
  // Chained hashes of the prompt's full blocks; filled by Add().
  std::vector<uint64_t> prompt_block_hashes = {};
  // Prompt tokens taken from the prefix cache at the first admission; -1
  // before it.
  int32_t cached_prompt_tokens = -1;
  int num_preemptions = 0;

  // Scheduler bookkeeping; read-only for the engine.
  uint64_t arrival = 0;              // Add() order
  bool running = false;
  int32_t num_committed_blocks = 0;  // prompt blocks already passed to Commit()
};

struct StepPlan {
  struct Item {
    Sequence* seq = nullptr;
    int32_t begin = 0;  // == seq->kv.length when planned
    int32_t count = 0;  // run seq->tokens[begin, begin + count)
    bool want_logits = false;  // begin + count == seq->tokens.size()
  };
  std::vector<Item> items = {};       // decodes, then prefill chunks, then admissions
  std::vector<uint64_t> admitted = {};   // ids that entered the running set this step
  std::vector<uint64_t> preempted = {};  // ids sent back to the waiting queue this step
  int64_t num_tokens = 0;                // sum of the items' counts
};

class Scheduler {
 public:
  // `blocks` is not owned and must outlive the scheduler. INVALID_ARGUMENT
  // naming the field when a limit is not positive, when max_step_tokens <
  // max_running (a step could not hold every decode), or when the KV pool
  // cannot hold one max_context sequence.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerConfig& config,
                                                           BlockManager* blocks);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Releases the blocks of every sequence still held.
  ~Scheduler();

  // Queues `seq` at the back of the waiting queue and fills its
  // prompt_block_hashes. On success the scheduler owns it until Remove().
  // INVALID_ARGUMENT (nothing queued): null, empty prompt, num_prompt_tokens
  // outside [1, tokens.size()], a non-empty kv, a duplicate id, more tokens
  // or a max_total_tokens over max_context, or max_total_tokens below
  // tokens.size(). RESOURCE_EXHAUSTED when max_waiting sequences already
  // wait.
  absl::Status Add(std::unique_ptr<Sequence> seq);

  // Plans the next step (see the file comment). Every planned token has KV
  // reserved on return. Items point at sequences owned by the scheduler,
  // valid until they are removed.
  StepPlan Schedule();

  // Call after the step ran (Forward advanced the kv lengths) and the engine
  // pushed sampled tokens / removed finished sequences. Commits every
  // running sequence's newly computed full prompt blocks to the prefix cache.
  // Blocks holding generated tokens are never shared: they are computed with
  // different rounding. Does not dereference the plan's items, so removed
  // sequences are fine.
  void OnStepComplete(const StepPlan& plan);

  // Takes back a finished or aborted sequence, waiting or running, in any
  // state (e.g. mid-prefill). Its computed full prompt blocks are committed
  // first, then its blocks are released and its kv reset. nullptr if `id` is
  // unknown.
  std::unique_ptr<Sequence> Remove(uint64_t id);

  // nullptr if unknown.
  Sequence* Find(uint64_t id);
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  // Preemptions since creation.
  uint64_t total_preemptions() const { return total_preemptions_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  Scheduler(const SchedulerConfig& config, BlockManager* blocks);

  // Plans the next chunk of running sequence `s`, preempting newer sequences
  // (or `s` itself) when no block is left.
  void PlanRunning(Sequence* s, int64_t* budget, StepPlan* plan);
  // Tries to admit the front of the waiting queue; false if it does not fit.
  bool TryAdmit(int64_t* budget, StepPlan* plan);
  // Preempts the newest running sequence, dropping its planned item.
  void PreemptNewest(int64_t* budget, StepPlan* plan);
  void CommitPromptBlocks(Sequence* s);
  // Tokens `s` can still run, capped so no position reaches max_context.
  int64_t RunnableTokens(const Sequence& s) const;

  SchedulerConfig config_;
  BlockManager* blocks_;
  std::vector<std::unique_ptr<Sequence>> running_;  // by arrival, oldest first
  std::deque<std::unique_ptr<Sequence>> waiting_;   // FCFS; preempted at the front
  absl::flat_hash_map<uint64_t, Sequence*> by_id_;
  uint64_t next_arrival_ = 0;
  uint64_t total_preemptions_ = 0;
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_SCHEDULER_H_
