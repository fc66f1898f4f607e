#include "router/server/router_metrics.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace wf::router {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640};
  return *b;
}

// "2xx"-style classes would lose 429 vs 503; exact codes are few.
std::string StatusLabel(int status) { return absl::StrCat(status); }

}  // namespace

RouterMetrics::RouterMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("wrinklefree:router_requests_total")
                   .Help("Requests by endpoint and HTTP status (gRPC front: endpoint grpc_generate)")
                   .Register(*registry_);
  duration_ = &prometheus::BuildHistogram()
                   .Name("wrinklefree:router_request_duration_seconds")
                   .Help("End-to-end request latency at the router")
                   .Register(*registry_);
  ttft_ = &prometheus::BuildHistogram()
               .Name("wrinklefree:router_time_to_first_token_seconds")
               .Help("Time from request arrival to the first token sent to the client")
               .Register(*registry_);
  decisions_ = &prometheus::BuildCounter()
                    .Name("wrinklefree:router_routing_decisions_total")
                    .Help("Routing decisions by policy and reason")
                    .Register(*registry_);
  lookup_blocks_ = &prometheus::BuildCounter()
                        .Name("wrinklefree:router_prefix_lookup_blocks_total")
                        .Help("Full prompt KV blocks of routed requests")
                        .Register(*registry_)
                        .Add({});
  hit_blocks_ = &prometheus::BuildCounter()
                     .Name("wrinklefree:router_prefix_hit_blocks_total")
                     .Help("Prompt KV blocks predicted cached on the chosen worker")
                     .Register(*registry_)
                     .Add({});
  retries_ = &prometheus::BuildCounter()
                  .Name("wrinklefree:router_retries_total")
                  .Help("Requests re-sent to another worker before their first token")
                  .Register(*registry_)
                  .Add({});
  auto& workers = prometheus::BuildGauge()
                      .Name("wrinklefree:router_workers")
                      .Help("Known workers by state")
                      .Register(*registry_);
  healthy_ = &workers.Add({{"state", "healthy"}});
  unhealthy_ = &workers.Add({{"state", "unhealthy"}});
  circuit_open_ = &workers.Add({{"state", "circuit_open"}});
  active_ = &prometheus::BuildGauge()
                 .Name("wrinklefree:router_active_streams")
                 .Help("Requests in flight at this router")
                 .Register(*registry_)
                 .Add({});
}

void RouterMetrics::Request(std::string_view endpoint, int http_status, double seconds) {
  requests_->Add({{"endpoint", std::string(endpoint)}, {"status", StatusLabel(http_status)}}).Increment();
  duration_->Add({{"endpoint", std::string(endpoint)}}, LatencyBuckets()).Observe(seconds);
}

void RouterMetrics::FirstToken(std::string_view endpoint, double seconds) {
  ttft_->Add({{"endpoint", std::string(endpoint)}}, LatencyBuckets()).Observe(seconds);
}

void RouterMetrics::Decision(std::string_view policy, std::string_view reason, int lookup_blocks, int hit_blocks) {
  decisions_->Add({{"policy", std::string(policy)}, {"reason", std::string(reason)}}).Increment();
  if (lookup_blocks > 0) lookup_blocks_->Increment(lookup_blocks);
  if (hit_blocks > 0) hit_blocks_->Increment(hit_blocks);
}

void RouterMetrics::SetWorkers(int healthy, int unhealthy, int circuit_open) {
  healthy_->Set(healthy);
  unhealthy_->Set(unhealthy);
  circuit_open_->Set(circuit_open);
}

std::string RouterMetrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace wf::router
