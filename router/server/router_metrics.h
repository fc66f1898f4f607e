// The router's Prometheus metrics (prefix `wrinklefree:router_`), served on
// the gateway's GET /metrics. Labels stay low-cardinality: endpoint, status
// class, policy, decision reason, worker state.
//
//   wrinklefree:router_requests_total{endpoint,status}        counter
//   wrinklefree:router_request_duration_seconds{endpoint}     histogram (end to end)
//   wrinklefree:router_time_to_first_token_seconds{endpoint}  histogram
//   wrinklefree:router_routing_decisions_total{policy,reason} counter
//   wrinklefree:router_prefix_lookup_blocks_total             counter (full prompt blocks routed)
//   wrinklefree:router_prefix_hit_blocks_total                counter (of those, predicted cached on the chosen worker)
//   wrinklefree:router_retries_total                          counter
//   wrinklefree:router_workers{state=healthy|unhealthy|circuit_open} gauge
//   wrinklefree:router_active_streams                         gauge (requests in flight)
#ifndef WF_ROUTER_SERVER_ROUTER_METRICS_H_
#define WF_ROUTER_SERVER_ROUTER_METRICS_H_

#include <memory>
#include <string>
#include <string_view>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace wf::router {

class RouterMetrics {
 public:
  RouterMetrics();

  void Request(std::string_view endpoint, int http_status, double seconds);
  void FirstToken(std::string_view endpoint, double seconds);
  void Decision(std::string_view policy, std::string_view reason, int lookup_blocks, int hit_blocks);
  void Retry() { retries_->Increment(); }
  void SetWorkers(int healthy, int unhealthy, int circuit_open);
  void StreamStarted() { active_->Increment(); }
  void StreamEnded() { active_->Decrement(); }

  // Prometheus text exposition of everything.
  std::string Serialize() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Family<prometheus::Histogram>* ttft_;
  prometheus::Family<prometheus::Counter>* decisions_;
  prometheus::Counter* lookup_blocks_;
  prometheus::Counter* hit_blocks_;
  prometheus::Counter* retries_;
  prometheus::Gauge* healthy_;
  prometheus::Gauge* unhealthy_;
  prometheus::Gauge* circuit_open_;
  prometheus::Gauge* active_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_ROUTER_METRICS_H_
