// wf_convert as users run it: real processes, the hub mimicked on 127.0.0.1.
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "common/testing/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::CommandResult;
using ::wf::testing::RunCommand;

class ConvertCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wf_convert_cli_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    bin_ = wf::testing::BinaryDir() + "/converter/wf_convert";
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  CommandResult Convert(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), bin_);
    return RunCommand(args, env);
  }
  std::string Read(const std::string& path) { return ReadFileToString(path).value(); }

  std::string dir_;
  std::string bin_;
};

TEST_F(ConvertCliTest, HelpForEveryCommand) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"}, {"synth", "--help"},
                                        {"inspect", "--help"}, {"some/dir", "--help"}}) {
    CommandResult r = Convert(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.output, HasSubstr("Usage:"));
    EXPECT_THAT(r.output, HasSubstr("--outtype"));
    EXPECT_THAT(r.output, HasSubstr("--hf-repo"));
  }
}

TEST_F(ConvertCliTest, BadUsageExitsTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "missing arguments"},
      {{"ckpt"}, "--outfile is required"},
      {{"ckpt", "--outfile", "x.gguf", "--outtype", "q4_0"}, "unknown --outtype 'q4_0'"},
      {{"ckpt", "--outfile", "x.gguf", "--bogus", "1"}, "unknown flag --bogus"},
      {{"ckpt", "--outfile"}, "flag --outfile needs a value"},
      {{"synth", "--preset", "huge", "--out", "d"}, "unknown preset 'huge'"},
      {{"synth", "--out", "d", "--layers", "-3"}, "--layers must be a positive integer"},
      {{"synth"}, "synth needs --out DIR"},
      {{"inspect"}, "inspect needs exactly one GGUF file"},
  };
  for (const Case& c : cases) {
    CommandResult r = Convert(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
  }
}

TEST_F(ConvertCliTest, BadInputExitsOneNamingTheProblem) {
  CommandResult r = Convert({dir_ + "/nothing-here", "--outfile", dir_ + "/o.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("is not a Hugging Face checkpoint"));
  r = Convert({"inspect", dir_ + "/nothing.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("nothing.gguf"));
}

TEST_F(ConvertCliTest, SynthConvertInspect) {
  CommandResult r = Convert({"synth", "--preset", "tiny", "--vocab", "600", "--out", dir_ + "/ckpt"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("vocab 600"));
  r = Convert({dir_ + "/ckpt", "--outfile", dir_ + "/m.gguf", "--outtype", "tq2_0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tq2_0, 46 tensors"));
  EXPECT_THAT(r.output, HasSubstr("convert:"));  // Progress on stderr.
  r = Convert({"inspect", dir_ + "/m.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bitnet-b1.58"));
  EXPECT_THAT(r.output, HasSubstr("tq2_0"));
  // The same seed gives the same checkpoint, so the same model.
  ASSERT_EQ(Convert({"synth", "--preset", "tiny", "--vocab", "600", "--out", dir_ + "/ckpt2"}).exit_code, 0);
  ASSERT_EQ(Convert({dir_ + "/ckpt2", "--outfile", dir_ + "/m2.gguf", "--outtype", "tq2_0", "--name", "ckpt"}).exit_code, 0);
  EXPECT_EQ(Read(dir_ + "/m.gguf"), Read(dir_ + "/m2.gguf"));
}

TEST_F(ConvertCliTest, DownloadsFromTheHubAndConverts) {
  // The hub serves a checkpoint repository and a GGUF repository.
  const std::string root = dir_ + "/hub";
  ASSERT_EQ(Convert({"synth", "--preset", "tiny", "--vocab", "600", "--out", root + "/acme/tiny-bf16"}).exit_code, 0);
  ASSERT_EQ(std::system(("mkdir -p " + root + "/acme/tiny-gguf").c_str()), 0);
  ASSERT_EQ(Convert({root + "/acme/tiny-bf16", "--outfile", root + "/acme/tiny-gguf/ggml-model-i2_s.gguf",
                     "--name", "tiny-bf16"}).exit_code, 0);

  wf::testing::ChildProcess hub;
  ASSERT_THAT(hub.Start({"python3", wf::testing::SourceDir() + "/tests/fake_hf_hub.py", "--root", root}),
              wf::testing::IsOk());
  ASSERT_OK_AND_ASSIGN(std::string line, hub.ReadLine(std::chrono::seconds(30)));
  ASSERT_EQ(line.rfind("PORT ", 0), 0u) << line;
  const std::string endpoint = "HF_ENDPOINT=http://127.0.0.1:" + line.substr(5);

  // Checkpoint repository: downloaded, then converted; the same bytes as a local conversion.
  CommandResult r = Convert({"--hf-repo", "acme/tiny-bf16", "--outfile", dir_ + "/a.gguf", "--download-dir",
                             dir_ + "/dl-a"}, {endpoint});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("download:"));
  EXPECT_EQ(Read(dir_ + "/a.gguf"), Read(root + "/acme/tiny-gguf/ggml-model-i2_s.gguf"));

  // GGUF repository: the file itself.
  r = Convert({"--hf-repo", "acme/tiny-gguf", "--outfile", dir_ + "/b.gguf", "--download-dir", dir_ + "/dl-b"},
              {endpoint});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("downloaded ggml-model-i2_s.gguf"));
  EXPECT_EQ(Read(dir_ + "/b.gguf"), Read(root + "/acme/tiny-gguf/ggml-model-i2_s.gguf"));

  // A second run finds the files already there.
  r = Convert({"--hf-repo", "acme/tiny-gguf", "--outfile", dir_ + "/c.gguf", "--download-dir", dir_ + "/dl-b"},
              {endpoint});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("already present"));

  // Unknown repository: a clear error.
  r = Convert({"--hf-repo", "acme/missing", "--outfile", dir_ + "/d.gguf", "--download-dir", dir_ + "/dl-d"},
              {endpoint});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("acme/missing"));
}

}  // namespace
}  // namespace wf
