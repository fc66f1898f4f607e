// A compiled PCRE2 pattern (UTF + UCP, JIT-compiled when the library supports
// it) used by the pre-tokenizers, plus the "split keeping everything" operation
// they need.
//
// Thread-safety: a Regex is immutable after Compile(); Split() and
// MatchesWhole() may be called from many threads at once (match data is
// per thread).
#ifndef WF_COMMON_TOKENIZER_INTERNAL_REGEX_H_
#define WF_COMMON_TOKENIZER_INTERNAL_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::tokenizer::internal {

class Regex {
 public:
  // Compiles `pattern` with PCRE2_UTF | PCRE2_UCP. InvalidArgument with the
  // PCRE2 message and offset if the pattern does not compile.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Splits `subject` (valid UTF-8; not re-checked) at every match, appending
  // to `out` both the matched parts and the unmatched gaps between them, in
  // order, never an empty piece. The pieces are views into `subject`. The end
  // of `subject` is the end of the input for the pattern (lookaheads see
  // nothing beyond it). Internal error only if PCRE2 fails (e.g. resource
  // limits on pathological input).
  absl::Status Split(std::string_view subject, std::vector<std::string_view>* out) const;

  // True if the pattern matches the whole of `subject` (valid UTF-8).
  bool MatchesWhole(std::string_view subject) const;

  const std::string& pattern() const { return pattern_; }
  bool jit() const { return jit_; }

 private:
  Regex(std::string pattern, void* code, bool jit) : pattern_(std::move(pattern)), code_(code), jit_(jit) {}
  // Returns the PCRE2 result code; fills [*start, *end) on a match.
  int Match(std::string_view subject, size_t offset, size_t* start, size_t* end) const;

  std::string pattern_;
  void* code_;  // pcre2_code_8*, kept opaque so pcre2.h stays out of headers.
  bool jit_;
};

}  // namespace wf::tokenizer::internal

#endif  // WF_COMMON_TOKENIZER_INTERNAL_REGEX_H_
