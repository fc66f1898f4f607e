#include "common/tokenizer/internal/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"

namespace wf::tokenizer::internal {
namespace {

pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

// One ovector pair is all Split needs, whatever the pattern, so a single
// match-data block per thread serves every Regex.
pcre2_match_data* ThreadMatchData() {
  struct Holder {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(md); }
  };
  thread_local Holder holder;
  return holder.md;
}

std::string Pcre2ErrorMessage(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof(buf));
  if (n < 0) return absl::StrCat("PCRE2 error ", code);
  return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("regex does not compile at offset ", error_offset, ": ",
                                                   Pcre2ErrorMessage(error_code), " (pattern: ", Av(pattern),
                                                   ")"));
  }
  // JIT is optional: without it (unsupported CPU or build) the interpreter
  // gives the same results, only slower.
  const bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<Regex>(new Regex(std::string(pattern), code, jit));
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

int Regex::Match(std::string_view subject, size_t offset, size_t* start, size_t* end) const {
  pcre2_match_data* md = ThreadMatchData();
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  // pcre2_jit_match skips pcre2_match's per-call checks, which cost as much
  // as the match itself on the short pieces the pre-tokenizers see.
  int rc = jit_ ? pcre2_jit_match(Code(code_), s, subject.size(), offset, 0, md, nullptr)
                : pcre2_match(Code(code_), s, subject.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    // The interpreter keeps its backtracking frames on the heap, so it copes
    // with inputs that overflow the small default JIT stack.
    rc = pcre2_match(Code(code_), s, subject.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
  }
  if (rc >= 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    *start = ov[0];
    *end = ov[1];
  }
  return rc;
}

absl::Status Regex::Split(std::string_view subject, std::vector<std::string_view>* out) const {
  size_t pos = 0;      // Where the next search starts.
  size_t emitted = 0;  // Everything before this is already in `out`.
  while (pos < subject.size()) {
    size_t start = 0;
    size_t end = 0;
    const int rc = Match(subject, pos, &start, &end);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::InternalError(absl::StrCat("regex match failed at byte ", pos, " of a ", subject.size(),
                                              "-byte piece: ", Pcre2ErrorMessage(rc)));
    }
    if (end == start) {
      // None of our patterns can match empty, but a custom one might: step
      // over one code point so the loop always advances.
      ++pos;
      while (pos < subject.size() && (static_cast<uint8_t>(subject[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > emitted) out->push_back(subject.substr(emitted, start - emitted));
    out->push_back(subject.substr(start, end - start));
    emitted = end;
    pos = end;
  }
  if (emitted < subject.size()) out->push_back(subject.substr(emitted));
  return absl::OkStatus();
}

bool Regex::MatchesWhole(std::string_view subject) const {
  pcre2_match_data* md = ThreadMatchData();
  const int rc = pcre2_match(Code(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                             PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, nullptr);
  return rc >= 0;
}

}  // namespace wf::tokenizer::internal
