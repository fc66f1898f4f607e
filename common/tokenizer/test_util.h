// Test-only helpers: locating and loading the Llama 3 reference tokenizer
// (tokenizer.json next to vectors.jsonl) once per test process.
//
// The vectors file is $WF_TOKENIZER_VECTORS, or by default
// $WF_SOURCE_DIR/../shared/tokenizers/llama3/vectors.jsonl.
#ifndef WF_COMMON_TOKENIZER_TEST_UTIL_H_
#define WF_COMMON_TOKENIZER_TEST_UTIL_H_

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/testing/test_paths.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/vocab.h"

namespace wf::tokenizer::testing {

inline std::string Llama3VectorsPath() {
  if (const char* p = std::getenv("WF_TOKENIZER_VECTORS"); p != nullptr && *p != '\0') return p;
  return ::wf::testing::SourceDir() + "/../shared/tokenizers/llama3/vectors.jsonl";
}

inline std::string Llama3TokenizerJsonPath() {
  std::string path = Llama3VectorsPath();
  const size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/tokenizer.json";
}

struct Llama3Load {
  std::unique_ptr<Tokenizer> tokenizer;
  double parse_ms = 0;   // tokenizer.json -> Vocab.
  double create_ms = 0;  // Vocab -> Tokenizer.
};

inline absl::StatusOr<Llama3Load> LoadLlama3Uncached() {
  BN_ASSIGN_OR_RETURN(std::string json, ReadFileToString(Llama3TokenizerJsonPath()));
  Llama3Load load;
  const auto t0 = std::chrono::steady_clock::now();
  BN_ASSIGN_OR_RETURN(Vocab vocab, ParseHfTokenizerJson(json));
  const auto t1 = std::chrono::steady_clock::now();
  BN_ASSIGN_OR_RETURN(load.tokenizer, Tokenizer::Create(std::move(vocab)));
  const auto t2 = std::chrono::steady_clock::now();
  load.parse_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  load.create_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  return load;
}

// The shared Llama 3 tokenizer, or the error that prevented loading it.
inline const absl::StatusOr<Llama3Load>& Llama3() {
  static const auto* load = new absl::StatusOr<Llama3Load>(LoadLlama3Uncached());
  return *load;
}

}  // namespace wf::tokenizer::testing

#endif  // WF_COMMON_TOKENIZER_TEST_UTIL_H_
