#include "worker/engine/stop_matcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace wf::engine {
namespace {

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Length of the UTF-8 sequence introduced by `lead`, 0 if it cannot start one.
int SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Byte offset of the first ill-formed sequence (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or -1 if `s` is valid UTF-8.
int64_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char lead = static_cast<unsigned char>(s[i]);
    const int len = SequenceLength(lead);
    if (len == 0 || i + len > s.size()) return static_cast<int64_t>(i);
    for (int k = 1; k < len; ++k) {
      if (!IsContinuation(static_cast<unsigned char>(s[i + k]))) {
        return static_cast<int64_t>(i);
      }
    }
    if (len >= 3) {
      const unsigned char second = static_cast<unsigned char>(s[i + 1]);
      if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) ||
          (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F)) {
        return static_cast<int64_t>(i);
      }
    }
    i += len;
  }
  return -1;
}

// Start of a multi-byte sequence cut off at the end of `s`, or s.size().
// Pieces are supposed to be whole characters; this keeps an emitted chunk
// from ending inside one if a caller ever passes a split character.
size_t IncompleteTailStart(std::string_view s) {
  size_t i = s.size();
  int continuation = 0;
  while (i > 0 && continuation < 3 &&
         IsContinuation(static_cast<unsigned char>(s[i - 1]))) {
    --i;
    ++continuation;
  }
  if (i == 0) return s.size();
  const int len = SequenceLength(static_cast<unsigned char>(s[i - 1]));
  return len > continuation + 1 ? i - 1 : s.size();
}

}  // namespace

bool StopConditions::IsStopToken(
    int32_t token, absl::Span<const int32_t> eog_token_ids) const {
  if (std::find(stop_token_ids.begin(), stop_token_ids.end(), token) !=
      stop_token_ids.end()) {
    return true;
  }
  if (ignore_eos || token < 0) return false;
  return std::find(eog_token_ids.begin(), eog_token_ids.end(), token) !=
         eog_token_ids.end();
}

absl::Status ValidateStopStrings(absl::Span<const std::string> stop_strings) {
  if (stop_strings.size() > static_cast<size_t>(kMaxStopStrings)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("stop has %d strings; at most %d are allowed",
                        stop_strings.size(), kMaxStopStrings));
  }
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    const std::string& s = stop_strings[i];
    if (s.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop[%d] is empty; stop strings must be non-empty", i));
    }
    if (s.size() > static_cast<size_t>(kMaxStopStringBytes)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop[%d] is %d bytes long; at most %d bytes are allowed", i,
          s.size(), kMaxStopStringBytes));
    }
    if (int64_t bad = FindInvalidUtf8(s); bad >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop[%d] is not valid UTF-8 (byte offset %d)", i, bad));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const StopConditions& conditions, int32_t vocab_size) {
  if (absl::Status s = ValidateStopStrings(conditions.stop_strings); !s.ok()) {
    return s;
  }
  const std::vector<int32_t>& ids = conditions.stop_token_ids;
  if (ids.size() > static_cast<size_t>(kMaxStopTokenIds)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("stop_token_ids has %d entries; at most %d are allowed",
                        ids.size(), kMaxStopTokenIds));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop_token_ids[%d] = %d is outside the vocabulary [0, %d)", i,
          ids[i], vocab_size));
    }
  }
  if (conditions.max_tokens != -1 && conditions.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be >= 1 (or -1 for no limit), got %d",
                        conditions.max_tokens));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<StopMatcher>> StopMatcher::Create(
    std::vector<std::string> stop_strings) {
  if (absl::Status s = ValidateStopStrings(stop_strings); !s.ok()) return s;
  return std::unique_ptr<StopMatcher>(new StopMatcher(std::move(stop_strings)));
}

StopMatcher::StopMatcher(std::vector<std::string> stop_strings)
    : stop_strings_(std::move(stop_strings)) {
  for (const std::string& stop : stop_strings_) {
    longest_stop_ = std::max(longest_stop_, stop.size());
  }
}

StopMatchResult StopMatcher::Push(std::string_view piece) {
  StopMatchResult result;
  if (stopped()) {
    result.stop_index = stop_index_;
    return result;
  }
  if (piece.empty()) return result;
  held_.append(piece);

  // Every match ends inside `piece` (the held text alone holds none), so the
  // earliest end is the first completion in the stream.
  size_t best_start = 0;
  size_t best_end = std::string::npos;
  for (size_t i = 0; i < stop_strings_.size(); ++i) {
    const std::string& stop = stop_strings_[i];
    const size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stop.size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_start = pos;
      best_end = end;
      stop_index_ = static_cast<int32_t>(i);
    }
  }
  if (stopped()) {
    held_.resize(best_start);
    result.text = std::move(held_);
    held_.clear();
    result.stop_index = stop_index_;
    return result;
  }

  // Hold back the longest suffix that is a proper prefix of a stop string.
  const std::string_view held(held_);
  size_t keep_from = held.size();
  const size_t longest_tail = longest_stop_ > 0 ? longest_stop_ - 1 : 0;
  for (size_t i = held.size() - std::min(held.size(), longest_tail);
       i < held.size() && keep_from == held.size(); ++i) {
    const std::string_view tail = held.substr(i);
    for (const std::string& stop : stop_strings_) {
      if (stop.size() > tail.size() &&
          std::string_view(stop).starts_with(tail)) {
        keep_from = i;
        break;
      }
    }
  }
  keep_from = std::min(keep_from, IncompleteTailStart(held));
  // Stop strings are valid UTF-8, so keep_from already sits on a character
  // boundary; stepping back over continuation bytes only guards bad input.
  while (keep_from > 0 && keep_from < held.size() &&
         IsContinuation(static_cast<unsigned char>(held[keep_from]))) {
    --keep_from;
  }
  result.text.assign(held_, 0, keep_from);
  held_.erase(0, keep_from);
  return result;
}

std::string StopMatcher::Flush() {
  std::string out;
  if (!stopped()) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace wf::engine
