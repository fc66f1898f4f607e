// Command-line flags for our binaries, declared next to the variables they
// fill, so `--help` is generated from the same table the parser uses and
// cannot drift from what is accepted.
//
// Accepted forms: --name value, --name=value, -alias value; a bool flag also
// takes --name (true), --no-name and --name=true|false. Unknown flags, missing
// values and malformed numbers are INVALID_ARGUMENT errors naming the flag.
//
// Example:
//   std::string model;
//   int64_t n = 64;
//   FlagSet flags("wf_worker --model-path FILE [options]");
//   flags.String("model-path", &model, "GGUF model file");
//   flags.Int("n-predict", &n, "tokens to generate", "n");
//   BN_RETURN_IF_ERROR(flags.Parse(argc, argv));
//   if (flags.help()) std::cout << flags.Help();
#ifndef WF_COMMON_FLAGS_H_
#define WF_COMMON_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace wf {

class FlagSet {
 public:
  explicit FlagSet(std::string usage) : usage_(std::move(usage)) {}

  // Each registers a flag; the variable's current value is the default shown
  // by Help(). `alias` is an optional one-dash short name.
  void String(std::string name, std::string* target, std::string help, std::string alias = "");
  void Int(std::string name, int64_t* target, std::string help, std::string alias = "");
  void Double(std::string name, double* target, std::string help, std::string alias = "");
  void Bool(std::string name, bool* target, std::string help, std::string alias = "");
  // May be given several times; each value is appended.
  void StringList(std::string name, std::vector<std::string>* target, std::string help);
  // A paragraph printed after the flags in Help().
  void Footer(std::string text) { footer_ = std::move(text); }

  // Parses argv[first..argc). Bare words go to positional() (an error unless
  // allow_positional). "--help"/"-h" sets help() and stops.
  absl::Status Parse(int argc, char** argv, int first = 1, bool allow_positional = false);
  bool help() const { return help_; }
  const std::vector<std::string>& positional() const { return positional_; }
  // Whether the flag was given on the command line (not just defaulted).
  bool WasSet(const std::string& name) const;
  std::string Help() const;

 private:
  enum class Kind { kString, kInt, kDouble, kBool, kStringList };
  struct Flag {
    std::string name;
    std::string alias;
    Kind kind;
    void* target;
    std::string help;
    std::string default_text;
    bool set = false;
  };
  Flag* Find(const std::string& name);
  absl::Status Assign(Flag& f, const std::string& value);

  std::string usage_;
  std::string footer_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace wf

#endif  // WF_COMMON_FLAGS_H_
