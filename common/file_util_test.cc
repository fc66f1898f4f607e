#include "common/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace wf {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

std::string TempDir() {
  char tmpl[] = "/tmp/wf_file_util_XXXXXX";
  return std::string(::mkdtemp(tmpl));
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(AtomicFileWriterTest, CommitRenamesAndNothingIsVisibleBefore) {
  const std::string dir = TempDir();
  const std::string path = dir + "/out.bin";
  {
    ASSERT_OK_AND_ASSIGN(auto w, AtomicFileWriter::Create(path));
    ASSERT_THAT(w->Write("abc", 3), IsOk());
    ASSERT_THAT(w->WriteZeros(5), IsOk());
    EXPECT_EQ(w->offset(), 8u);
    EXPECT_FALSE(Exists(path));
    EXPECT_TRUE(Exists(w->temp_path()));
    ASSERT_THAT(w->Commit(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFileToString(path));
  EXPECT_EQ(got, std::string("abc\0\0\0\0\0", 8));
}

TEST(AtomicFileWriterTest, AbandonedWriterLeavesNothingBehind) {
  const std::string dir = TempDir();
  const std::string path = dir + "/out.bin";
  std::string temp;
  {
    ASSERT_OK_AND_ASSIGN(auto w, AtomicFileWriter::Create(path));
    temp = w->temp_path();
    ASSERT_THAT(w->Write("abc", 3), IsOk());
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(temp));
}

TEST(AtomicFileWriterTest, UnwritableDirectoryIsAClearError) {
  EXPECT_THAT(AtomicFileWriter::Create("/nonexistent-dir/x/model.gguf").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot create output file")));
}

TEST(MappedFileTest, MapsContentAndRejectsDirectories) {
  const std::string dir = TempDir();
  const std::string path = dir + "/f";
  std::ofstream(path) << "hello";
  ASSERT_OK_AND_ASSIGN(auto f, MappedFile::Open(path));
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
  EXPECT_THAT(MappedFile::Open(dir).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  EXPECT_THAT(MappedFile::Open(dir + "/missing").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST(ReadFileToStringTest, EnforcesTheSizeLimit) {
  const std::string dir = TempDir();
  const std::string path = dir + "/f";
  std::ofstream(path) << "0123456789";
  EXPECT_THAT(ReadFileToString(path, 4).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than the limit")));
}

}  // namespace
}  // namespace wf
