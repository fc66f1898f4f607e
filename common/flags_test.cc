#include "common/flags.h"

#include <cstdint>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

struct Argv {
  explicit Argv(std::vector<std::string> a) : args(std::move(a)) {
    for (auto& s : args) ptrs.push_back(s.data());
  }
  int argc() { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
  std::vector<std::string> args;
  std::vector<char*> ptrs;
};

TEST(FlagSetTest, ParsesEveryFormAndKind) {
  std::string model = "m.gguf";
  int64_t n = 64;
  double temp = 0.8;
  bool chat = false, json = true;
  std::vector<std::string> stops;
  FlagSet f("prog [options]");
  f.String("model-path", &model, "model");
  f.Int("n-predict", &n, "tokens", "n");
  f.Double("temperature", &temp, "temperature");
  f.Bool("chat", &chat, "chat");
  f.Bool("json", &json, "json");
  f.StringList("stop", &stops, "stop string");
  Argv a({"prog", "--model-path", "x.gguf", "-n", "12", "--temperature=0", "--chat", "--no-json", "--stop", "A",
          "--stop=B"});
  ASSERT_THAT(f.Parse(a.argc(), a.argv()), IsOk());
  EXPECT_EQ(model, "x.gguf");
  EXPECT_EQ(n, 12);
  EXPECT_EQ(temp, 0.0);
  EXPECT_TRUE(chat);
  EXPECT_FALSE(json);
  EXPECT_THAT(stops, ElementsAre("A", "B"));
  EXPECT_TRUE(f.WasSet("n-predict"));
  EXPECT_FALSE(f.help());
}

TEST(FlagSetTest, ErrorsNameTheFlag) {
  int64_t n = 1;
  double d = 0;
  FlagSet f("prog");
  f.Int("threads", &n, "threads");
  f.Double("top-p", &d, "p");
  Argv bad_int({"prog", "--threads", "two"});
  EXPECT_THAT(f.Parse(bad_int.argc(), bad_int.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--threads needs an integer, got 'two'")));
  Argv missing({"prog", "--threads"});
  EXPECT_THAT(f.Parse(missing.argc(), missing.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--threads needs a value")));
  Argv unknown({"prog", "--thread", "2"});
  EXPECT_THAT(f.Parse(unknown.argc(), unknown.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '--thread'")));
  Argv nan({"prog", "--top-p", "nan"});
  EXPECT_THAT(f.Parse(nan.argc(), nan.argv()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--top-p")));
  Argv positional({"prog", "stray"});
  EXPECT_THAT(f.Parse(positional.argc(), positional.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument 'stray'")));
}

TEST(FlagSetTest, OutOfRangeNumbersAreErrorsNamingTheFlag) {
  int64_t n = 7;
  double d = 0.5;
  FlagSet f("prog");
  f.Int("requests", &n, "requests");
  f.Double("timeout-seconds", &d, "seconds");
  Argv big_int({"prog", "--requests=9223372036854775808"});
  EXPECT_THAT(f.Parse(big_int.argc(), big_int.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--requests needs an integer, got '9223372036854775808'")));
  Argv max_int({"prog", "--requests", "9223372036854775807"});
  ASSERT_THAT(f.Parse(max_int.argc(), max_int.argv()), IsOk());
  EXPECT_EQ(n, INT64_MAX);
  Argv big_double({"prog", "--timeout-seconds", "1e999"});
  EXPECT_THAT(f.Parse(big_double.argc(), big_double.argv()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--timeout-seconds needs a number, got '1e999'")));
  EXPECT_EQ(d, 0.5);
  Argv negative({"prog", "--requests=-3", "--timeout-seconds=-0.25"});
  ASSERT_THAT(f.Parse(negative.argc(), negative.argv()), IsOk());  // ranges are the program's to check
  EXPECT_EQ(n, -3);
  EXPECT_EQ(d, -0.25);
}

TEST(FlagSetTest, HelpListsEveryFlagWithItsDefault) {
  int64_t n = 64;
  bool b = false;
  FlagSet f("prog --x");
  f.Int("n-predict", &n, "tokens to generate", "n");
  f.Bool("chat", &b, "render the chat format");
  f.Footer("More words.");
  Argv a({"prog", "-h"});
  ASSERT_THAT(f.Parse(a.argc(), a.argv()), IsOk());
  EXPECT_TRUE(f.help());
  const std::string h = f.Help();
  EXPECT_THAT(h, HasSubstr("Usage: prog --x"));
  EXPECT_THAT(h, HasSubstr("--n-predict, -n N"));
  EXPECT_THAT(h, HasSubstr("tokens to generate (default: 64)"));
  EXPECT_THAT(h, HasSubstr("--chat"));
  EXPECT_THAT(h, HasSubstr("More words."));
}

}  // namespace
}  // namespace wf
