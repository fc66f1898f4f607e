// `wf_router`: start-up, wiring and shutdown of the router process.
//
// Order: the worker pool connects (static list and/or DNS names); the HTTP
// gateway and the gRPC front start listening at once (/ready answers 503
// until a worker is healthy); SIGTERM or SIGINT stops accepting, lets
// streams in flight finish (up to 10 s) and exits 0.
//
// Lines on stdout, for scripts and tests (bound ports, so port 0 works):
//   wf_router: http listening on HOST:PORT
//   wf_router: grpc listening on HOST:PORT        (unless --grpc-port -1)
//   wf_router: started (N workers configured, policy P)
//   wf_router: stopped
#ifndef WF_ROUTER_SERVER_ROUTER_SERVER_H_
#define WF_ROUTER_SERVER_ROUTER_SERVER_H_

#include "absl/status/status.h"
#include "router/server/router_config.h"

namespace wf::router {

absl::Status RunRouterServer(const RouterConfig& config);

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_ROUTER_SERVER_H_
