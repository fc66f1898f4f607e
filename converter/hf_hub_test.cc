// Tests DownloadRepo against tests/fake_hf_hub.py on 127.0.0.1.
#include "converter/hf_hub.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ScriptPath() {
  if (const char* src = std::getenv("WF_SOURCE_DIR")) {
    return std::string(src) + "/tests/fake_hf_hub.py";
  }
  return (fs::path(__FILE__).parent_path().parent_path() / "tests" / "fake_hf_hub.py").string();
}

class HfHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "wf_hub_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    root_ = tmp_ / "hub";
    dest_ = tmp_ / "dest";
    ::unsetenv("HF_TOKEN");
    ::unsetenv("HF_ENDPOINT");
    model_ = RandomBytes(300000, 1);
    WriteAll(root_ / "owner/model/config.json", R"({"model_type": "bitnet"})");
    WriteAll(root_ / "owner/model/model.safetensors", model_);
    WriteAll(root_ / "owner/model/sub/tokenizer.json", RandomBytes(1000, 2));
  }

  void TearDown() override {
    StopServer();
    fs::remove_all(tmp_);
  }

  // Starts the fake hub with extra flags and waits (bounded) for its port.
  void StartServer(std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {"python3",    ScriptPath(),
                                     "--root",     root_.string(),
                                     "--log-file", (tmp_ / "requests.log").string()};
    args.insert(args.end(), flags.begin(), flags.end());
    ASSERT_THAT(hub_.Start(args), IsOk());
    // Up to 30 s for the interpreter to start on a loaded machine.
    ASSERT_OK_AND_ASSIGN(std::string line, hub_.ReadLine(std::chrono::seconds(30)));
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << "fake hub did not start: '" << line << "'";
    endpoint_ = "http://127.0.0.1:" + std::to_string(std::stoi(line.substr(5)));
  }

  void StopServer() { hub_.Stop(); }

  HubOptions Options(const std::string& repo = "owner/model") {
    HubOptions o;
    o.repo = repo;
    o.endpoint = endpoint_;
    o.dest_dir = dest_.string();
    o.connect_timeout_seconds = 10;
    o.low_speed_time_seconds = 30;
    o.max_attempts = 1;
    o.retry_delay_ms = 0;
    return o;
  }

  // Requests the fake hub has seen, as {path, range, auth} objects.
  std::vector<nlohmann::json> Requests() {
    std::vector<nlohmann::json> out;
    std::ifstream in(tmp_ / "requests.log");
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::vector<std::string> RangesFor(const std::string& blob_path) {
    std::vector<std::string> ranges;
    for (const auto& r : Requests()) {
      if (r["path"] == blob_path)
        ranges.push_back(r["range"].is_null() ? "" : r["range"].get<std::string>());
    }
    return ranges;
  }

  void ExpectRepoDownloaded() {
    EXPECT_EQ(ReadAll(dest_ / "model.safetensors"), model_);
    EXPECT_EQ(ReadAll(dest_ / "config.json"), ReadAll(root_ / "owner/model/config.json"));
    EXPECT_EQ(ReadAll(dest_ / "sub/tokenizer.json"),
              ReadAll(root_ / "owner/model/sub/tokenizer.json"));
    for (const auto& e : fs::recursive_directory_iterator(dest_)) {
      EXPECT_NE(e.path().extension(), ".incomplete") << "left over: " << e.path();
    }
  }

  fs::path tmp_, root_, dest_;
  std::string model_;
  std::string endpoint_;
  wf::testing::ChildProcess hub_;
};

TEST_F(HfHubTest, DownloadsAndVerifiesEveryFile) {
  StartServer();
  std::vector<HubProgress> reports;
  HubOptions o = Options();
  o.progress_interval_ms = 0;
  o.progress = [&](const HubProgress& p) { reports.push_back(p); };
  std::vector<HubFile> selected;
  ASSERT_THAT(DownloadRepo(o, &selected), IsOk());
  ExpectRepoDownloaded();

  ASSERT_EQ(selected.size(), 3u);
  EXPECT_EQ(selected[1].path, "model.safetensors");
  EXPECT_EQ(selected[1].size, model_.size());
  EXPECT_EQ(selected[1].sha256.size(), 64u);
  EXPECT_TRUE(selected[0].sha256.empty());  // Not an LFS file.

  ASSERT_FALSE(reports.empty());
  const HubProgress& last = reports.back();
  EXPECT_TRUE(last.file_done);
  EXPECT_EQ(last.file_index, 2);
  EXPECT_EQ(last.file_count, 3);
  EXPECT_EQ(last.bytes_done, last.bytes_total);
  EXPECT_EQ(last.bytes_total, model_.size() + 1000 + ReadAll(dest_ / "config.json").size());

  // The LFS file went through the redirect to its blob URL, pinned to the commit.
  std::vector<std::string> paths;
  for (const auto& r : Requests()) paths.push_back(r["path"]);
  EXPECT_THAT(paths, Contains("/_blobs/owner/model/model.safetensors"));
  EXPECT_THAT(paths,
              Contains(AllOf(HasSubstr("/owner/model/resolve/"), HasSubstr("/model.safetensors"),
                             ::testing::Not(HasSubstr("/main/")))));
}

TEST_F(HfHubTest, IncludePatternsSelectFiles) {
  StartServer();
  HubOptions o = Options();
  o.include = {"*.json"};
  ASSERT_THAT(DownloadRepo(o), IsOk());
  EXPECT_TRUE(fs::exists(dest_ / "config.json"));
  EXPECT_TRUE(fs::exists(dest_ / "sub/tokenizer.json"));
  EXPECT_FALSE(fs::exists(dest_ / "model.safetensors"));
  o.include = {"*.gguf"};
  EXPECT_THAT(DownloadRepo(o),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("*.gguf"), HasSubstr("model.safetensors"))));
}

TEST_F(HfHubTest, RetriesResumeAfterCutConnection) {
  StartServer({"--cut", "model.safetensors:100000"});
  HubOptions o = Options();
  o.max_attempts = 3;
  ASSERT_THAT(DownloadRepo(o), IsOk());
  ExpectRepoDownloaded();
  EXPECT_THAT(RangesFor("/_blobs/owner/model/model.safetensors"),
              ::testing::ElementsAre("", "bytes=100000-"));
}

TEST_F(HfHubTest, LaterCallResumesPartialFile) {
  StartServer({"--cut", "model.safetensors:100000"});
  HubOptions o = Options();
  EXPECT_THAT(DownloadRepo(o), StatusIs(absl::StatusCode::kUnavailable,
                                        AllOf(HasSubstr("/resolve/"), HasSubstr("100000 bytes"))));
  EXPECT_EQ(fs::file_size(dest_ / "model.safetensors.incomplete"), 100000u);
  EXPECT_FALSE(fs::exists(dest_ / "model.safetensors"));
  ASSERT_THAT(DownloadRepo(o), IsOk());
  ExpectRepoDownloaded();
  EXPECT_THAT(RangesFor("/_blobs/owner/model/model.safetensors"),
              ::testing::ElementsAre("", "bytes=100000-"));
}

TEST_F(HfHubTest, FullResponseToRangeRestartsFromZero) {
  StartServer({"--ignore-range"});
  WriteAll(dest_ / "model.safetensors.incomplete", std::string(5000, 'z'));
  ASSERT_THAT(DownloadRepo(Options()), IsOk());
  ExpectRepoDownloaded();
  EXPECT_THAT(RangesFor("/_blobs/owner/model/model.safetensors"),
              ::testing::ElementsAre("bytes=5000-"));
}

TEST_F(HfHubTest, ShaMismatchDeletesTheFile) {
  StartServer({"--bad-sha", "model.safetensors"});
  HubOptions o = Options();
  o.include = {"model.safetensors"};
  EXPECT_THAT(DownloadRepo(o),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("model.safetensors"), HasSubstr("sha256"))));
  EXPECT_FALSE(fs::exists(dest_ / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dest_ / "model.safetensors.incomplete"));
}

TEST_F(HfHubTest, TokenIsRequiredAndSent) {
  StartServer({"--token", "sekrit"});
  HubOptions o = Options();
  EXPECT_THAT(DownloadRepo(o), StatusIs(absl::StatusCode::kUnauthenticated,
                                        AllOf(HasSubstr("HTTP 401"), HasSubstr("HF_TOKEN"))));
  EXPECT_FALSE(fs::exists(dest_ / "model.safetensors"));
  ::setenv("HF_TOKEN", "sekrit", 1);
  EXPECT_THAT(DownloadRepo(o), IsOk());
  ::unsetenv("HF_TOKEN");
  ExpectRepoDownloaded();
}

TEST_F(HfHubTest, UnknownRepoOrRevisionIsNotFound) {
  StartServer();
  EXPECT_THAT(DownloadRepo(Options("owner/missing")),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("owner/missing"), HasSubstr("RepoNotFound"))));
  HubOptions o = Options();
  o.revision = "v9";
  EXPECT_THAT(DownloadRepo(o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("RevisionNotFound")));
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(HfHubTest, SkipsFilesAlreadyPresent) {
  StartServer();
  ASSERT_THAT(DownloadRepo(Options()), IsOk());
  const size_t requests_after_first = Requests().size();
  std::vector<HubProgress> reports;
  HubOptions o = Options();
  o.progress = [&](const HubProgress& p) { reports.push_back(p); };
  ASSERT_THAT(DownloadRepo(o), IsOk());
  EXPECT_EQ(Requests().size(), requests_after_first + 1);  // Only the listing.
  ASSERT_EQ(reports.size(), 3u);
  for (const HubProgress& p : reports) EXPECT_TRUE(p.skipped);

  // Same size, different bytes: the sha256 check forces a new download.
  WriteAll(dest_ / "model.safetensors", std::string(model_.size(), 'q'));
  ASSERT_THAT(DownloadRepo(Options()), IsOk());
  ExpectRepoDownloaded();
}

TEST_F(HfHubTest, NetworkErrorNamesTheUrl) {
  HubOptions o = Options();
  o.endpoint = "http://127.0.0.1:1";  // Nothing listens on port 1.
  EXPECT_THAT(DownloadRepo(o), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("http://127.0.0.1:1/api/models/owner/model")));
}

TEST(HfHubPathTest, RejectsUnsafeNamesAndRepoIds) {
  EXPECT_TRUE(IsSafeRepoPath("model.safetensors"));
  EXPECT_TRUE(IsSafeRepoPath("sub/dir/file.json"));
  for (const char* bad :
       {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\b", "a\nb"}) {
    EXPECT_FALSE(IsSafeRepoPath(bad)) << bad;
  }
  HubOptions o;
  o.endpoint = "http://127.0.0.1:1";
  for (const char* repo : {"noslash", "a/b/c", "../x", "a/..", "a b/c"}) {
    o.repo = repo;
    EXPECT_THAT(ListRepoFiles(o),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid repository id")))
        << repo;
  }
}

}  // namespace
}  // namespace wf::convert
