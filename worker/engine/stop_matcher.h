// Stop conditions of a generation request and the streaming stop-string
// matcher.
//
// StopMatcher sits between the tokenizer's streaming decoder and the client:
// stop strings are never emitted, not even partly, even when one is split
// across several decoded pieces. It holds back the longest suffix of the
// unemitted text that is a proper prefix of some stop string and releases it
// once it can no longer start one (or at Flush()).
//
// When several stop strings could match, the one that completes first in the
// byte stream wins (ties: the longer one, i.e. the one starting earlier). That
// is what byte-at-a-time matching reports, so the result does not depend on
// how the text was split into pieces.
//
// Example:
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<StopMatcher> matcher,
//                       StopMatcher::Create({"\nUser:", "###"}));
//   for (each decoded piece) {
//     StopMatchResult r = matcher->Push(piece);
//     Send(r.text);
//     if (r.stopped()) break;  // finish_reason "stop"
//   }
//   if (!matcher->stopped()) Send(matcher->Flush());  // EOS / max_tokens
#ifndef WF_WORKER_ENGINE_STOP_MATCHER_H_
#define WF_WORKER_ENGINE_STOP_MATCHER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::engine {

inline constexpr int32_t kMaxStopStrings = 16;
inline constexpr int32_t kMaxStopStringBytes = 256;
inline constexpr int32_t kMaxStopTokenIds = 64;

// What ends one request's generation besides the context limit.
struct StopConditions {
  // Extra token ids that end generation (the sampled id is not emitted as
  // text). The model's end-of-generation ids (EOS, <|eot_id|>) are not listed
  // here; callers pass them to IsStopToken.
  std::vector<int32_t> stop_token_ids;
  // Strings that end generation; neither they nor anything after them is
  // emitted.
  std::vector<std::string> stop_strings;
  // Maximum number of generated tokens; -1 = only the context limit.
  int32_t max_tokens = -1;
  // Keep generating through the model's end-of-generation ids (stop_token_ids
  // still apply).
  bool ignore_eos = false;

  // True if sampling `token` ends generation: one of stop_token_ids, or,
  // unless ignore_eos, one of `eog_token_ids` (negative ids are ignored).
  bool IsStopToken(int32_t token,
                   absl::Span<const int32_t> eog_token_ids) const;
  // True once `generated_tokens` reaches max_tokens.
  bool ReachedMaxTokens(int32_t generated_tokens) const {
    return max_tokens >= 0 && generated_tokens >= max_tokens;
  }
};

// INVALID_ARGUMENT naming the limit: more than kMaxStopStrings strings, an
// empty one, one longer than kMaxStopStringBytes bytes, or one that is not
// valid UTF-8.
absl::Status ValidateStopStrings(absl::Span<const std::string> stop_strings);

// ValidateStopStrings plus: at most kMaxStopTokenIds stop_token_ids, each in
// [0, vocab_size); max_tokens == -1 or >= 1.
absl::Status Validate(const StopConditions& conditions, int32_t vocab_size);

struct StopMatchResult {
  // Text that is safe to emit now (may be empty).
  std::string text;
  // Index into the matcher's stop strings of the string that completed, or -1.
  // When set, `text` ends exactly where that stop string starts.
  int32_t stop_index = -1;

  bool stopped() const { return stop_index >= 0; }
};

// One per request; not thread-safe. Holds at most kMaxStopStringBytes - 1
// bytes between calls.
class StopMatcher {
 public:
  // INVALID_ARGUMENT as ValidateStopStrings. An empty list is valid: Push
  // then passes text straight through.
  static absl::StatusOr<std::unique_ptr<StopMatcher>> Create(
      std::vector<std::string> stop_strings);

  // Appends one decoded piece (valid UTF-8; may be empty) and returns what
  // can be emitted now. After a stop has been reported, further calls return
  // empty text and the same stop_index (the rest of the text is discarded).
  StopMatchResult Push(std::string_view piece);

  // End of generation without a stop string: returns the held-back text and
  // empties the matcher. Returns "" after a stop.
  std::string Flush();

  bool stopped() const { return stop_index_ >= 0; }
  int32_t stop_index() const { return stop_index_; }
  const std::vector<std::string>& stop_strings() const { return stop_strings_; }
  // Bytes currently held back.
  size_t held_bytes() const { return held_.size(); }

 private:
  explicit StopMatcher(std::vector<std::string> stop_strings);

  std::vector<std::string> stop_strings_;
  size_t longest_stop_ = 0;  // Bytes in the longest stop string.
  std::string held_;
  int32_t stop_index_ = -1;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_STOP_MATCHER_H_
