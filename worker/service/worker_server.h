// `wf_worker --model-path M --port P`: the serving process.
//
// Start-up order: the gRPC server (health NOT_SERVING, Generate UNAVAILABLE)
// and the metrics server come up first, then the model is mapped and
// validated, the engine loop starts, health turns SERVING and a line
// "wf_worker: ready ..." is printed. SIGTERM or SIGINT drains: health goes
// NOT_SERVING, new requests get UNAVAILABLE, running ones get up to
// drain_timeout_seconds to finish (the rest are aborted), then the servers
// stop and RunWorkerServer returns OK (exit status 0).
//
// Lines on stdout, for scripts and tests (ports are the bound ones, so port 0
// works):
//   wf_worker: grpc listening on HOST:PORT
//   wf_worker: metrics listening on HOST:PORT      (unless metrics_port is -1)
//   wf_worker: ready in S s (model NAME, ...)
//   wf_worker: draining ... / wf_worker: stopped
#ifndef WF_WORKER_SERVICE_WORKER_SERVER_H_
#define WF_WORKER_SERVICE_WORKER_SERVER_H_

#include "absl/status/status.h"
#include "worker/service/worker_config.h"

namespace wf::service {

// Serves until SIGTERM/SIGINT. Errors: the gRPC or metrics port cannot be
// bound (UNAVAILABLE naming host:port), the model cannot be loaded (its
// error), the configuration does not fit the model (INVALID_ARGUMENT).
// Blocks SIGTERM/SIGINT in the calling thread and every thread it starts.
absl::Status RunWorkerServer(const WorkerConfig& config);

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_WORKER_SERVER_H_
