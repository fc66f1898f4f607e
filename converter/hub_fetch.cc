#include "converter/hub_fetch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace wf::convert {
namespace {

// Hard link when possible (same file system, no copy), else a streamed copy;
// either way `to` appears complete or not at all.
absl::Status PlaceFile(const std::string& from, const std::string& to) {
  const std::string temp = PartialPathFor(to);
  ::unlink(temp.c_str());
  if (::link(from.c_str(), temp.c_str()) == 0) {
    if (::rename(temp.c_str(), to.c_str()) == 0) return absl::OkStatus();
    const int err = errno;
    ::unlink(temp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename '", temp, "' to '", to, "': ", std::strerror(err)));
  }
  BN_ASSIGN_OR_RETURN(auto src, MappedFile::Open(from));
  BN_ASSIGN_OR_RETURN(auto out, AtomicFileWriter::Create(to));
  BN_RETURN_IF_ERROR(out->Write(src->data(), src->size()));
  return out->Commit();
}

}  // namespace

absl::StatusOr<FetchResult> FetchModel(const HubRequest& request, const std::string& outfile) {
  HubOptions options;
  options.repo = request.repo;
  options.revision = request.revision;
  options.endpoint = request.endpoint;
  options.dest_dir = request.download_dir;
  options.progress = request.progress;
  BN_ASSIGN_OR_RETURN(HubListing listing, ListRepoFiles(options));

  std::vector<std::string> ggufs;
  for (const HubFile& f : listing.files) {
    if (absl::EndsWithIgnoreCase(f.path, ".gguf")) ggufs.push_back(f.path);
  }
  FetchResult result;
  if (!request.gguf_file.empty()) {
    if (std::find(ggufs.begin(), ggufs.end(), request.gguf_file) == ggufs.end()) {
      return absl::NotFoundError(absl::StrCat("repository ", request.repo, " has no GGUF file '",
                                              request.gguf_file, "' (it has: ",
                                              ggufs.empty() ? "none" : absl::StrJoin(ggufs, ", "), ")"));
    }
    result.gguf_file = request.gguf_file;
  } else if (ggufs.size() == 1) {
    result.gguf_file = ggufs[0];
  } else if (ggufs.size() > 1) {
    // Prefer bitnet.cpp's ternary format when the choice is unambiguous.
    std::vector<std::string> i2s;
    for (const std::string& g : ggufs) {
      if (absl::StrContains(absl::AsciiStrToLower(g), "i2_s")) i2s.push_back(g);
    }
    if (i2s.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("repository ", request.repo,
                                                     " holds several GGUF files; choose one with --hf-file: ",
                                                     absl::StrJoin(ggufs, ", ")));
    }
    result.gguf_file = i2s[0];
  }

  if (!result.gguf_file.empty()) {
    options.include = {result.gguf_file};
    BN_RETURN_IF_ERROR(DownloadRepo(options));
    BN_RETURN_IF_ERROR(PlaceFile(request.download_dir + "/" + result.gguf_file, outfile));
    result.gguf_copied = true;
    return result;
  }
  options.include = {"config.json", "tokenizer.json", "tokenizer_config.json", "*.safetensors",
                     "model.safetensors.index.json", "generation_config.json"};
  BN_RETURN_IF_ERROR(DownloadRepo(options));
  return result;
}

}  // namespace wf::convert
