// A GoogleTest fixture base that starts one real wf_worker (the golden model)
// and one wf_router in front of it on loopback, once per test suite, for
// tests that exercise clients against a whole (small) cluster. A start-up
// failure fails every test of the suite with the reason, instead of crashing.
//
// Threading: the processes are started and stopped on the test thread; tests
// may use worker()/router() from any thread while the suite runs.
//
// Example:
//   class MyClientTest : public wf::testing::OneWorkerOneRouterTest {};
//   TEST_F(MyClientTest, Works) {
//     Connect(router().grpc_address());
//   }
#ifndef WF_TESTS_TESTING_LOCAL_CLUSTER_H_
#define WF_TESTS_TESTING_LOCAL_CLUSTER_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf::testing {

class OneWorkerOneRouterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<WorkerProcess>> w = WorkerProcess::Start();
    if (!w.ok()) {
      *setup_error_ = absl::StrCat("wf_worker: ", w.status().ToString());
      return;
    }
    worker_ = std::move(*w).release();
    absl::StatusOr<std::unique_ptr<RouterProcess>> r = RouterProcess::Start({worker_->address()});
    if (!r.ok()) {
      *setup_error_ = absl::StrCat("wf_router: ", r.status().ToString());
      return;
    }
    router_ = std::move(*r).release();
  }
  static void TearDownTestSuite() {
    delete router_;
    router_ = nullptr;
    delete worker_;
    worker_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static WorkerProcess& worker() { return *worker_; }
  static RouterProcess& router() { return *router_; }

  // Raw pointers with static lifetime so that nothing runs at program exit;
  // TearDownTestSuite stops the processes.
  static inline WorkerProcess* worker_ = nullptr;
  static inline RouterProcess* router_ = nullptr;
  static inline std::string* setup_error_ = new std::string();
};

}  // namespace wf::testing

#endif  // WF_TESTS_TESTING_LOCAL_CLUSTER_H_
