// The security settings of the cluster with real wf_worker and wf_router
// processes on 127.0.0.1:
//  - TLS: a CA and a server certificate (127.0.0.1, localhost) made at test
//    time with the openssl CLI; a TLS worker, a router serving HTTPS and a
//    TLS gRPC front that reaches the worker over TLS; plain clients against
//    TLS ports; routers that do not trust (or cannot name) the worker.
//  - API keys: health, readiness and metrics without a key, generation not;
//    keys never in the router's log (run with --log-requests).
//  - Concurrent streams per key: generations are held open at a gate (a
//    forwarding Worker service in this process, in front of a real worker),
//    so the limit is tested without any timing assumption.
//  - Header, prompt and output limits; a `model` naming a file maps nothing.
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "common/tls/tls_files.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"
#include "wrinklefree/v1/router.grpc.pb.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf {
namespace {

namespace v1 = wrinklefree::v1;
using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ChildProcess;
using testing::HttpResponse;
using testing::IsOk;
using testing::StatusIs;
using testing::WorkerProcess;

constexpr char kKeyA[] = "sk-wf-test-alpha-5c3e0d9b";
constexpr char kKeyB[] = "sk-wf-test-bravo-81f7a264";
constexpr char kKeyC[] = "sk-wf-test-charlie-0b9d4e17";

// ------------------------------------------------------------------ files

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "wf_tls_test_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return static_cast<bool>(out);
}

std::string ReadAll(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  return text.ok() ? *text : "";
}

// A CA and a server certificate for 127.0.0.1 and localhost signed by it
// (EC P-256, valid two days), made with the openssl command-line tool.
struct Pki {
  std::string ca_cert, ca_key, server_cert, server_key;
};

absl::StatusOr<Pki> MakePki(const TempDir& dir) {
  Pki p{dir.File("ca.pem"), dir.File("ca.key"), dir.File("server.pem"), dir.File("server.key")};
  if (!WriteFile(dir.File("ca.cnf"),
                 "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n"
                 "[dn]\nCN = wf-test-ca\n"
                 "[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
                 "subjectKeyIdentifier = hash\n") ||
      !WriteFile(dir.File("server.cnf"), "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n") ||
      !WriteFile(dir.File("server.ext"),
                 "subjectAltName = IP:127.0.0.1,DNS:localhost\nbasicConstraints = CA:FALSE\n"
                 "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n")) {
    return absl::InternalError("cannot write the openssl configs into " + dir.path());
  }
  const std::vector<std::vector<std::string>> commands = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
       p.ca_key, "-out", p.ca_cert, "-days", "2", "-config", dir.File("ca.cnf")},
      {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
       p.server_key, "-out", dir.File("server.csr"), "-config", dir.File("server.cnf")},
      {"openssl", "x509", "-req", "-in", dir.File("server.csr"), "-CA", p.ca_cert, "-CAkey", p.ca_key,
       "-CAcreateserial", "-out", p.server_cert, "-days", "2", "-extfile", dir.File("server.ext")},
  };
  for (const auto& cmd : commands) {
    testing::CommandResult r = testing::RunCommand(cmd, {}, 60);
    if (r.exit_code != 0) {
      return absl::InternalError(absl::StrCat(absl::StrJoin(cmd, " "), " failed (", r.exit_code, "): ", r.output));
    }
  }
  return p;
}

// ------------------------------------------------------------------ HTTPS

struct HttpsResult {
  long status = 0;
  long new_connections = 0;  // 0 when the request reused an open connection
  std::string headers;
  std::string body;
};

size_t AppendTo(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// HTTPS requests to 127.0.0.1:port, verifying the server against `ca_file`.
// One client keeps its connection between requests (HTTP/1.1 keep-alive).
class HttpsClient {
 public:
  HttpsClient(int port, std::string ca_file) : port_(port), ca_file_(std::move(ca_file)), curl_(curl_easy_init()) {}
  ~HttpsClient() {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  absl::StatusOr<HttpsResult> Request(const std::string& method, const std::string& path, const std::string& body = "",
                                      const std::vector<std::string>& headers = {}) {
    if (curl_ == nullptr) return absl::InternalError("curl_easy_init failed");
    CURL* c = curl_;
    curl_easy_reset(c);  // keeps the open connection
    curl_slist* list = nullptr;
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    if (!body.empty()) list = curl_slist_append(list, "Content-Type: application/json");
    HttpsResult r;
    char error[CURL_ERROR_SIZE] = {0};
    const std::string url = absl::StrCat("https://127.0.0.1:", port_, path);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendTo);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &AppendTo);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    const CURLcode code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r.new_connections);
    curl_slist_free_all(list);
    if (code != CURLE_OK) {
      return absl::UnavailableError(absl::StrCat(url, ": ", curl_easy_strerror(code), " ", error));
    }
    return r;
  }

 private:
  const int port_;
  const std::string ca_file_;
  CURL* const curl_;
};

absl::StatusOr<HttpsResult> Https(int port, const std::string& method, const std::string& path,
                                  const std::string& body, const std::string& ca_file) {
  HttpsClient client(port, ca_file);
  return client.Request(method, path, body);
}

// ------------------------------------------------------------------ router

// A wf_router child on 127.0.0.1 with its stderr in a file (to search its
// log). Start() returns after the "started" line; readiness is the caller's.
class Router {
 public:
  static absl::StatusOr<std::unique_ptr<Router>> Start(std::vector<std::string> flags, const std::string& log_path) {
    auto r = std::unique_ptr<Router>(new Router());
    r->log_path_ = log_path;
    std::vector<std::string> args = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$WF_TEST_ROUTER_LOG\"",
                                     testing::RouterBinary(), "--host", "127.0.0.1", "--http-port", "0",
                                     "--grpc-port", "0"};
    args.insert(args.end(), flags.begin(), flags.end());
    if (absl::Status s = r->child_.Start(args, {"WF_TEST_ROUTER_LOG=" + log_path}); !s.ok()) return s;
    while (true) {
      absl::StatusOr<std::string> line = r->child_.ReadLine(std::chrono::seconds(60));
      if (!line.ok()) {
        return absl::Status(line.status().code(),
                            absl::StrCat("wf_router did not start: ", line.status().message(), "; log: ",
                                         ReadAll(log_path)));
      }
      int* port = absl::StartsWith(*line, "wf_router: http listening on ")   ? &r->http_port_
                  : absl::StartsWith(*line, "wf_router: grpc listening on ") ? &r->grpc_port_
                                                                             : nullptr;
      if (port != nullptr && !absl::SimpleAtoi(line->substr(line->rfind(':') + 1), port)) {
        return absl::InternalError("bad port line: " + *line);
      }
      if (absl::StartsWith(*line, "wf_router: started")) break;
    }
    return r;
  }

  ~Router() { child_.StopWithin(SIGTERM, std::chrono::seconds(5)); }

  int http_port() const { return http_port_; }
  std::string grpc_address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }
  std::string log() const { return ReadAll(log_path_); }

  // Waits (bounded) until the router's log contains `text`.
  bool WaitForLog(const std::string& text, std::chrono::seconds timeout = std::chrono::seconds(30)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (absl::StrContains(log(), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  Router() = default;
  ChildProcess child_;
  std::string log_path_;
  int http_port_ = 0;
  int grpc_port_ = 0;
};

// Polls `status_of()` (bounded) until it returns 200.
template <class F>
bool WaitFor200(F status_of, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (status_of() == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

double ActiveStreams(int http_port) {
  absl::StatusOr<HttpResponse> r = testing::HttpGet(http_port, "/metrics");
  if (!r.ok() || r->status != 200) return -1;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    if (!absl::StartsWith(line, "wrinklefree:router_active_streams")) continue;
    double v = -1;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return v;
  }
  return -1;
}

// ------------------------------------------------------------------ gate

// A wrinklefree.v1.Worker in this process that forwards every call to a real
// worker, except that each Generate first waits at a gate until the test
// releases it (or its caller cancels). A router in front of it therefore
// holds exactly the generations the test chooses, for as long as it likes.
class GatedWorker final : public v1::Worker::Service {
 public:
  explicit GatedWorker(const std::string& upstream) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    stub_ = v1::Worker::NewStub(grpc::CreateCustomChannel(upstream, grpc::InsecureChannelCredentials(), args));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.SetMaxSendMessageSize(64 << 20);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~GatedWorker() override {
    ReleaseAll();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  bool ok() const { return server_ != nullptr && port_ != 0; }

  // Waits (bounded) until `n` Generate calls wait at the gate.
  bool WaitForWaiting(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_.size() == n; });
  }
  size_t Waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_.size();
  }
  // Opens the gate for the waiting calls whose prompt starts with `first_id`.
  void Release(int32_t first_id) {
    std::lock_guard<std::mutex> lock(mu_);
    released_.insert(first_id);
    cv_.notify_all();
  }
  void ReleaseAll() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    const int32_t first = req->token_ids().ids_size() > 0 ? req->token_ids().ids(0) : -1;
    {
      std::unique_lock<std::mutex> lock(mu_);
      waiting_.insert(ctx);
      cv_.notify_all();
      while (!open_ && released_.count(first) == 0 && !ctx->IsCancelled()) {
        cv_.wait_for(lock, std::chrono::milliseconds(10));
      }
      waiting_.erase(ctx);
      cv_.notify_all();
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled at the gate");
    }
    grpc::ClientContext up;
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub_->Generate(&up, *req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
      if (!writer->Write(r)) {
        up.TryCancel();
        break;
      }
    }
    return reader->Finish();
  }

  grpc::Status WatchLoad(grpc::ServerContext* ctx, const v1::WatchLoadRequest* req,
                         grpc::ServerWriter<v1::LoadReport>* writer) override {
    grpc::ClientContext up;
    std::unique_ptr<grpc::ClientReader<v1::LoadReport>> reader = stub_->WatchLoad(&up, *req);
    v1::LoadReport report;
    while (!ctx->IsCancelled() && reader->Read(&report)) {
      if (!writer->Write(report)) break;
    }
    up.TryCancel();
    (void)reader->Finish();
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest* req, v1::ModelInfo* out) override {
    grpc::ClientContext up;
    up.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->GetModelInfo(&up, *req, out);
  }
  grpc::Status Abort(grpc::ServerContext*, const v1::AbortRequest* req, v1::AbortResponse* out) override {
    grpc::ClientContext up;
    up.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Abort(&up, *req, out);
  }

 private:
  std::unique_ptr<v1::Worker::Stub> stub_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<grpc::ServerContext*> waiting_;
  std::set<int32_t> released_;
  bool open_ = false;
};

// A raw-socket HTTP request whose response is never read: the router sees
// an open connection waiting for its stream.
class HeldRequest {
 public:
  HeldRequest(int port, const std::string& path, const std::string& body, const std::string& key) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    const std::string req =
        absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n",
                     "Authorization: Bearer ", key, "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
    sent_ = ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  }
  ~HeldRequest() { Close(); }
  bool sent() const { return sent_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Reads until the peer closes or `marker` arrives (bounded).
  std::string ReadUntil(const std::string& marker) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fd_ >= 0 && !absl::StrContains(got, marker) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_ = -1;
  bool sent_ = false;
};

std::string CompletionBody(const std::string& model, int32_t first_id, int max_tokens, bool stream) {
  Json j = {{"model", model},
            {"prompt", {first_id, first_id + 1, first_id + 2, first_id + 3}},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"ignore_eos", true}};
  if (stream) j["stream"] = true;
  return j.dump();
}

grpc::SslCredentialsOptions TrustOnly(const std::string& roots) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = roots;
  return options;
}

std::string ModelOf(const std::string& models_body) {
  Json j = Json::parse(models_body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || j["data"].empty()) return "";
  return j["data"][0].value("id", "");
}

// Paths of the files a process maps (shared libraries aside).
std::set<std::string> MappedFiles(pid_t pid) {
  std::set<std::string> files;
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));  // size 0 to stat: read as a stream
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (!absl::StrContains(path, ".so")) files.insert(path);
  }
  return files;
}

// ================================================================== tests

TEST(TlsFilesTest, LoadsAMatchingPairAndNamesEveryBadFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_OK_AND_ASSIGN(Pki pki, MakePki(dir));
  ASSERT_OK_AND_ASSIGN(tls::KeyPair pair, tls::LoadKeyPair(pki.server_cert, pki.server_key));
  EXPECT_THAT(pair.cert_chain_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(pair.private_key_pem, HasSubstr("PRIVATE KEY"));
  EXPECT_THAT(tls::LoadCaBundle(pki.ca_cert), IsOk());

  const std::string missing = dir.File("missing.pem");
  EXPECT_THAT(tls::LoadKeyPair(missing, pki.server_key),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));
  ASSERT_TRUE(WriteFile(dir.File("junk.pem"), "not a certificate\n"));
  EXPECT_THAT(tls::LoadKeyPair(dir.File("junk.pem"), pki.server_key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(dir.File("junk.pem"))));
  EXPECT_THAT(tls::LoadKeyPair(pki.server_cert, dir.File("junk.pem")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no unencrypted PEM private key")));
  EXPECT_THAT(tls::LoadKeyPair(pki.server_cert, pki.ca_key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  EXPECT_THAT(tls::LoadCaBundle(dir.File("junk.pem")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds no PEM certificate")));
}

TEST(TlsFlagsTest, HalfATlsPairOrABadFileStopsTheStart) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Pki pki, MakePki(dir));
  testing::CommandResult r = testing::RunCommand(
      {testing::RouterBinary(), "--workers", "127.0.0.1:1", "--tls-cert-file", pki.server_cert}, {}, 30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--tls-key-file is required with --tls-cert-file"));
  r = testing::RunCommand({testing::RouterBinary(), "--workers", "127.0.0.1:1", "--worker-tls-server-name", "x"}, {},
                          30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--worker-tls-ca-file"));
  const std::string missing = dir.File("nope.pem");
  r = testing::RunCommand({testing::RouterBinary(), "--workers", "127.0.0.1:1", "--host", "127.0.0.1", "--http-port",
                           "0", "--grpc-port", "-1", "--tls-cert-file", missing, "--tls-key-file", pki.server_key},
                          {}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(missing));
  r = testing::RunCommand({testing::RouterBinary(), "--workers", "127.0.0.1:1", "--host", "127.0.0.1", "--http-port",
                           "0", "--grpc-port", "-1", "--worker-tls-ca-file", missing},
                          {}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(missing));
  r = testing::RunCommand({testing::WorkerBinary(), "--model-path", testing::GoldenModelPath(), "--host",
                           "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--tls-key-file", pki.server_key},
                          {}, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tls_cert_file (--tls-cert-file) is required"));
  r = testing::RunCommand({testing::WorkerBinary(), "--model-path", testing::GoldenModelPath(), "--host",
                           "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--tls-cert-file", pki.server_cert,
                           "--tls-key-file", pki.ca_key},
                          {}, 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("does not match"));
  EXPECT_THAT(r.output, HasSubstr(pki.ca_key));
}

class TlsClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

TEST_F(TlsClusterTest, HttpsGatewayAndTlsGrpcEndToEnd) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Pki pki, MakePki(dir));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WorkerProcess> worker,
                       WorkerProcess::Start({"--tls-cert-file", pki.server_cert, "--tls-key-file", pki.server_key}));
  ASSERT_OK_AND_ASSIGN(std::string roots, tls::LoadCaBundle(pki.ca_cert));

  // The worker itself: TLS clients that trust the CA get through, plaintext ones do not.
  {
    auto tls_stub = v1::Worker::NewStub(
        grpc::CreateChannel(worker->address(), grpc::SslCredentials(TrustOnly(roots))));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ModelInfo info;
    EXPECT_TRUE(tls_stub->GetModelInfo(&ctx, {}, &info).ok());
    EXPECT_FALSE(info.model_name().empty());
    auto plain_stub = v1::Worker::NewStub(grpc::CreateChannel(worker->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext plain_ctx;
    plain_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    EXPECT_FALSE(plain_stub->GetModelInfo(&plain_ctx, {}, &info).ok());
  }

  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Router> router,
      Router::Start({"--workers", worker->address(), "--worker-tls-ca-file", pki.ca_cert, "--tls-cert-file",
                     pki.server_cert, "--tls-key-file", pki.server_key, "--log-level", "info"},
                    dir.File("router.log")));
  const int port = router->http_port();
  auto https = [&](const std::string& method, const std::string& path, const std::string& body = "") {
    return Https(port, method, path, body, pki.ca_cert);
  };
  ASSERT_TRUE(WaitFor200([&] {
    absl::StatusOr<HttpsResult> r = https("GET", "/ready");
    return r.ok() ? static_cast<int>(r->status) : 0;
  })) << router->log();

  ASSERT_OK_AND_ASSIGN(HttpsResult models, https("GET", "/v1/models"));
  ASSERT_EQ(models.status, 200) << models.body;
  const std::string model = ModelOf(models.body);
  ASSERT_FALSE(model.empty()) << models.body;

  // A chat completion, then an SSE stream, over HTTPS.
  Json chat = {{"model", model},
               {"messages", {{{"role", "user"}, {"content", "hello over TLS"}}}},
               {"max_tokens", 8},
               {"temperature", 0}};
  ASSERT_OK_AND_ASSIGN(HttpsResult completion, https("POST", "/v1/chat/completions", chat.dump()));
  ASSERT_EQ(completion.status, 200) << completion.body;
  Json parsed = Json::parse(completion.body, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << completion.body;
  EXPECT_EQ(parsed["object"], "chat.completion");
  EXPECT_GT(parsed["usage"]["completion_tokens"].get<int>(), 0);

  chat["stream"] = true;
  ASSERT_OK_AND_ASSIGN(HttpsResult stream, https("POST", "/v1/chat/completions", chat.dump()));
  ASSERT_EQ(stream.status, 200) << stream.body;
  EXPECT_THAT(absl::AsciiStrToLower(stream.headers), HasSubstr("content-type: text/event-stream"));
  const std::vector<std::string> events = testing::SseData(stream.body);
  ASSERT_GE(events.size(), 3u) << stream.body;
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_THAT(events.front(), HasSubstr("chat.completion.chunk"));

  // A plain-HTTP client on the HTTPS port gets no HTTP answer, and the
  // server goes on serving HTTPS.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> plain = testing::HttpGet(port, "/health", std::chrono::seconds(10));
    EXPECT_FALSE(plain.ok()) << "a plain HTTP answer on the HTTPS port";
  }
  ASSERT_OK_AND_ASSIGN(HttpsResult health, https("GET", "/health"));
  EXPECT_EQ(health.status, 200);

  // Keep-alive over TLS: later requests reuse the first connection; a body
  // over the limit is refused over TLS as over plain HTTP.
  HttpsClient client(port, pki.ca_cert);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(HttpsResult r, client.Request("GET", "/metrics"));
    EXPECT_EQ(r.status, 200);
    if (i > 0) {
      EXPECT_EQ(r.new_connections, 0) << "request " << i << " opened a new connection";
    }
  }
  ASSERT_OK_AND_ASSIGN(HttpsResult too_big, client.Request("POST", "/v1/completions", std::string(5 << 20, ' ')));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_THAT(too_big.body, HasSubstr("request_too_large"));

  // The gRPC front: TLS clients that trust the CA are served.
  auto tls_channel = grpc::CreateChannel(router->grpc_address(), grpc::SslCredentials(TrustOnly(roots)));
  auto router_stub = v1::Router::NewStub(tls_channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ListModelsResponse list;
    grpc::Status s = router_stub->ListModels(&ctx, {}, &list);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(list.models_size(), 1);
    EXPECT_EQ(list.models(0).model_name(), model);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::RouterGenerateRequest req;
    req.mutable_request()->mutable_token_ids()->add_ids(100);
    req.mutable_request()->mutable_token_ids()->add_ids(101);
    req.mutable_request()->mutable_stop()->set_max_tokens(4);
    req.mutable_request()->mutable_stop()->set_ignore_eos(true);
    auto reader = router_stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    int tokens = 0;
    while (reader->Read(&r)) tokens += r.tokens_size();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(tokens, 4);
  }
  {
    auto plain = v1::Router::NewStub(grpc::CreateChannel(router->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::ListModelsResponse list;
    EXPECT_FALSE(plain->ListModels(&ctx, {}, &list).ok());
  }

  // The target-name override: "localhost" is in the certificate, another name is not.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Router> by_name,
                       Router::Start({"--workers", worker->address(), "--worker-tls-ca-file", pki.ca_cert,
                                      "--worker-tls-server-name", "localhost", "--grpc-port", "-1"},
                                     dir.File("by_name.log")));
  EXPECT_TRUE(WaitFor200([&] {
    absl::StatusOr<HttpResponse> r = testing::HttpGet(by_name->http_port(), "/ready");
    return r.ok() ? r->status : 0;
  })) << by_name->log();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Router> wrong_name,
                       Router::Start({"--workers", worker->address(), "--worker-tls-ca-file", pki.ca_cert,
                                      "--worker-tls-server-name", "not-the-worker.example", "--grpc-port", "-1"},
                                     dir.File("wrong_name.log")));
  EXPECT_TRUE(wrong_name->WaitForLog("cannot reach it over TLS gRPC")) << wrong_name->log();
  ASSERT_OK_AND_ASSIGN(HttpResponse not_ready, testing::HttpGet(wrong_name->http_port(), "/ready"));
  EXPECT_EQ(not_ready.status, 503);
}

TEST_F(TlsClusterTest, RouterWithoutTheCaCannotUseATlsWorker) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Pki pki, MakePki(dir));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WorkerProcess> worker,
                       WorkerProcess::Start({"--tls-cert-file", pki.server_cert, "--tls-key-file", pki.server_key}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Router> router,
                       Router::Start({"--workers", worker->address(), "--grpc-port", "-1"}, dir.File("router.log")));
  // After a failed connection attempt (logged with a hint), the worker is not
  // healthy and the router is not ready.
  EXPECT_TRUE(router->WaitForLog("cannot reach it over plaintext gRPC")) << router->log();
  EXPECT_THAT(router->log(), HasSubstr("--worker-tls-ca-file"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(HttpResponse ready, testing::HttpGet(router->http_port(), "/ready"));
    EXPECT_EQ(ready.status, 503) << ready.body;
  }
  ASSERT_OK_AND_ASSIGN(HttpResponse r,
                       testing::HttpPost(router->http_port(), "/v1/completions", CompletionBody("m", 100, 4, false)));
  EXPECT_EQ(r.status, 503) << r.body;
}

// Keys, the per-key stream limit, the header/prompt/output limits and the
// `model` field, through a router whose only worker is gated.
TEST(SecurityLimitsTest, KeysAndLimitsOnTheGateway) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_TRUE(WriteFile(dir.File("keys"), absl::StrCat("# API keys\n", kKeyA, "\n", kKeyB, "\n", kKeyC, "\n")));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WorkerProcess> worker, WorkerProcess::Start());
  auto gate = std::make_unique<GatedWorker>(worker->address());
  ASSERT_TRUE(gate->ok());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Router> router,
      Router::Start({"--workers", gate->address(), "--api-key-file", dir.File("keys"), "--max-streams-per-key", "2",
                     "--max-header-bytes", "2048", "--max-prompt-tokens", "32", "--max-output-tokens", "64",
                     "--log-requests", "--log-level", "debug"},
                    dir.File("router.log")));
  const int port = router->http_port();
  const std::string auth_a = absl::StrCat("Authorization: Bearer ", kKeyA);
  const std::string auth_b = absl::StrCat("Authorization: Bearer ", kKeyB);
  // Key C makes the requests that are refused before streaming, so that the
  // per-key counts of A and B are untouched when the held streams start (a
  // count drops when the router has finished a request, which can lag the
  // client's view of the answer on a loaded machine).
  const std::string auth_c = absl::StrCat("Authorization: Bearer ", kKeyC);

  // No key: health, readiness and metrics answer; generation and models do not.
  ASSERT_TRUE(WaitFor200([&] {
    absl::StatusOr<HttpResponse> r = testing::HttpGet(port, "/ready");
    return r.ok() ? r->status : 0;
  })) << router->log();
  for (const char* path : {"/health", "/metrics"}) {
    ASSERT_OK_AND_ASSIGN(HttpResponse r, testing::HttpGet(port, path));
    EXPECT_EQ(r.status, 200) << path;
  }
  ASSERT_OK_AND_ASSIGN(HttpResponse no_key, testing::HttpPost(port, "/v1/completions", CompletionBody("", 100, 4, false)));
  EXPECT_EQ(no_key.status, 401);
  EXPECT_THAT(no_key.body, HasSubstr("invalid_api_key"));
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange wrong_key,
                       testing::HttpRequestFull(port, "POST", "/v1/completions", CompletionBody("", 100, 4, false),
                                                {"Authorization: Bearer sk-wf-test-alpha-5c3e0d9c"}));
  EXPECT_EQ(wrong_key.response.status, 401);
  ASSERT_OK_AND_ASSIGN(HttpResponse models_no_key, testing::HttpGet(port, "/v1/models"));
  EXPECT_EQ(models_no_key.status, 401);
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange models, testing::HttpRequestFull(port, "GET", "/v1/models", "", {auth_a}));
  ASSERT_EQ(models.response.status, 200);
  const std::string model = ModelOf(models.response.body);
  ASSERT_FALSE(model.empty());

  // Limits answered before anything reaches a worker.
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange big_header,
                       testing::HttpRequestFull(port, "GET", "/health", "", {"X-Padding: " + std::string(4096, 'p')}));
  EXPECT_EQ(big_header.response.status, 431);
  EXPECT_THAT(big_header.response.body, HasSubstr("2048 bytes"));
  Json long_prompt = {{"model", model}, {"prompt", std::vector<int>(33, 100)}, {"max_tokens", 1}};
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange prompt_limit,
                       testing::HttpRequestFull(port, "POST", "/v1/completions", long_prompt.dump(), {auth_c}));
  EXPECT_EQ(prompt_limit.response.status, 400);
  EXPECT_THAT(prompt_limit.response.body, HasSubstr("--max-prompt-tokens"));
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange output_limit,
                       testing::HttpRequestFull(port, "POST", "/v1/completions", CompletionBody(model, 100, 65, false),
                                                {auth_c}));
  EXPECT_EQ(output_limit.response.status, 400);
  EXPECT_THAT(output_limit.response.body, HasSubstr("--max-output-tokens"));

  // A `model` that names a file is only an unknown model name: nothing new is
  // mapped by the worker.
  const std::set<std::string> files_before = MappedFiles(worker->child().pid());
  ASSERT_FALSE(files_before.empty());
  EXPECT_EQ(files_before.count(std::filesystem::canonical(testing::GoldenModelPath()).string()), 1u)
      << absl::StrJoin(files_before, ", ");
  for (const std::string& path :
       std::vector<std::string>{"/etc/passwd", testing::GoldenModelPath(), "../../model.gguf"}) {
    Json body = {{"model", path}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}};
    ASSERT_OK_AND_ASSIGN(testing::HttpExchange r,
                         testing::HttpRequestFull(port, "POST", "/v1/chat/completions", body.dump(), {auth_c}));
    EXPECT_EQ(r.response.status, 404) << path;
    EXPECT_THAT(r.response.body, HasSubstr("model_not_found"));
  }
  {
    auto stub = v1::Router::NewStub(grpc::CreateChannel(router->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", auth_c.substr(std::string("Authorization: ").size()));
    v1::RouterGenerateRequest req;
    req.set_model("/etc/passwd");
    req.mutable_request()->mutable_token_ids()->add_ids(100);
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(MappedFiles(worker->child().pid()), files_before);

  // Two held streams of key A: the third request of A is refused on both
  // fronts, key B is served.
  HeldRequest a1(port, "/v1/completions", CompletionBody(model, 200, 8, true), kKeyA);
  HeldRequest a2(port, "/v1/completions", CompletionBody(model, 210, 8, true), kKeyA);
  ASSERT_TRUE(a1.sent() && a2.sent());
  ASSERT_TRUE(gate->WaitForWaiting(2)) << "active " << ActiveStreams(port) << " waiting " << gate->Waiting();
  ASSERT_OK_AND_ASSIGN(testing::HttpExchange third,
                       testing::HttpRequestFull(port, "POST", "/v1/completions", CompletionBody(model, 220, 8, false),
                                                {auth_a}));
  EXPECT_EQ(third.response.status, 429) << third.response.body;
  EXPECT_THAT(third.response.body, HasSubstr("--max-streams-per-key"));
  EXPECT_THAT(third.response.body, HasSubstr("\"code\":\"rate_limit_exceeded\""));
  EXPECT_THAT(third.headers, HasSubstr("Retry-After: 1"));
  {
    auto stub = v1::Router::NewStub(grpc::CreateChannel(router->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKeyA));
    v1::RouterGenerateRequest req;
    req.mutable_request()->mutable_token_ids()->add_ids(230);
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("--max-streams-per-key"));
  }
  std::future<absl::StatusOr<testing::HttpExchange>> b = std::async(std::launch::async, [&] {
    return testing::HttpRequestFull(port, "POST", "/v1/completions", CompletionBody(model, 300, 4, false), {auth_b});
  });
  ASSERT_TRUE(gate->WaitForWaiting(3));
  gate->Release(300);
  absl::StatusOr<testing::HttpExchange> b_result = b.get();
  ASSERT_TRUE(b_result.ok()) << b_result.status();
  EXPECT_EQ(b_result->response.status, 200) << b_result->response.body;

  // A client that goes away frees its place: key A is served again.
  a1.Close();
  ASSERT_TRUE(gate->WaitForWaiting(1));
  bool freed = false;
  for (int i = 0; i < 1000 && !freed; ++i) {
    freed = ActiveStreams(port) == 1;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(freed) << "the router still counts the closed stream";
  std::future<absl::StatusOr<testing::HttpExchange>> again = std::async(std::launch::async, [&] {
    return testing::HttpRequestFull(port, "POST", "/v1/completions", CompletionBody(model, 240, 4, false), {auth_a});
  });
  ASSERT_TRUE(gate->WaitForWaiting(2));
  gate->Release(240);
  absl::StatusOr<testing::HttpExchange> again_result = again.get();
  ASSERT_TRUE(again_result.ok()) << again_result.status();
  EXPECT_EQ(again_result->response.status, 200) << again_result->response.body;

  // The held stream completes once released.
  gate->ReleaseAll();
  const std::string rest = a2.ReadUntil("data: [DONE]");
  EXPECT_THAT(rest, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(rest, HasSubstr("data: [DONE]"));
  a2.Close();

  // Completed requests were logged (--log-requests), never with a key.
  ASSERT_TRUE(router->WaitForLog("request cmpl-"));
  const std::string log = router->log();
  EXPECT_THAT(log, Not(HasSubstr(kKeyA)));
  EXPECT_THAT(log, Not(HasSubstr(kKeyB)));
  EXPECT_THAT(log, Not(HasSubstr("sk-wf-test")));
  EXPECT_THAT(log, Not(HasSubstr("Bearer")));
  router.reset();
  gate.reset();
}

}  // namespace
}  // namespace wf
