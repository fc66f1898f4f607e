#!/usr/bin/env python3
"""Every Grafana and alert query of deploy/ through a real Prometheus scraping a real cluster.

  prometheus_queries_test.py --worker BUILD/worker/wf_worker --router BUILD/router/wf_router \\
      [--model MODEL.gguf] [--prometheus prometheus] [--promtool promtool] [--protoc protoc] \\
      [--plugin grpc_python_plugin] [--proto-dir REPO/proto] [unittest args]

Starts wf_worker (golden model, free ports on 127.0.0.1), a wf_router in front
of it (HTTP gateway on a free port, gRPC front off), a Prometheus server
(Debian's package, run directly with a temporary config derived from
deploy/prometheus/prometheus.yml scraping both, the alert rules loaded and a
temporary data dir), sends a few Generate calls straight to the worker over
gRPC (stubs generated with protoc and gRPC's Python plugin) and a few OpenAI
requests through the router's gateway (one streaming), then sends every
dashboard query, dashboard variable query and alert expression to Prometheus'
HTTP API: each must parse and return data (for alerts: the value compared with
the threshold). `promtool check rules` / `check config` pass.
Exit status: unittest's (0 = all passed), 77 when grpcio cannot be imported,
2 when a required program or file is missing.
"""

import argparse
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

try:
    import grpc
except ImportError as e:
    print(f"SKIP: grpcio is not importable ({e}); install python3-grpcio", file=sys.stderr)
    sys.exit(77)
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

ARGS = None
pb = pb_grpc = None

# Bounds on every wait, in seconds (the machine may be shared).
STARTUP_TIMEOUT = 60
RPC_TIMEOUT = 60
DATA_TIMEOUT = 90

# A wf_router runs next to the worker, so queries on router metrics must
# return data like the worker's (set False to make them parse-only again).
ROUTER_RUNS_IN_TEST = True
ROUTER_ONLY_PATTERNS = [r"wrinklefree:router_", r'job="wf-router"', r"\$router\b"]

# The requests sent through the router's gateway (each generates exactly
# max_tokens tokens: ignore_eos). The first two repeat the gRPC prompt, so the
# router predicts a cached prefix on the worker.
LOAD_PROMPT = "The quick brown fox jumps over the lazy dog. " * 6
ROUTER_LOAD = [
    ("/v1/completions", {"prompt": LOAD_PROMPT, "max_tokens": 8}),
    ("/v1/completions", {"prompt": LOAD_PROMPT, "max_tokens": 8}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Name three colours."}], "max_tokens": 8}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 8,
                              "stream": True}),
]

GRAFANA_SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
                         "$model": ".*", "$worker": ".*", "$router": ".*"}


def is_router_query(expr):
    return any(re.search(p, expr) for p in ROUTER_ONLY_PATTERNS)


def substitute(expr):
    # Longest names first: $__rate_interval before $__range etc.
    for key in sorted(GRAFANA_SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(key, GRAFANA_SUBSTITUTIONS[key])
    return expr


def split_top_level(expr):
    """The value expressions of an alert: `A > 4 and B > 0` -> ['A', 'B'].

    Splits at top-level set operators, then cuts each part at its last
    top-level comparison operator (what is left is what the threshold is
    compared with).
    """
    parts, depth, quote, start, i = [], 0, None, 0, 0
    comparisons = []  # (index, length) of top-level comparison operators per part
    current = []
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            m = re.match(r"\s(and|or|unless)\s", expr[i:])
            if m:
                parts.append((expr[start:i], current))
                current = []
                i += m.end()
                start = i
                continue
            m = re.match(r"(>=|<=|==|!=|>|<)", expr[i:])
            if m:
                current.append(i - start)
                i += m.end()
                continue
        i += 1
    parts.append((expr[start:], current))
    values = []
    for text, ops in parts:
        values.append((text[:ops[-1]] if ops else text).strip())
    return values


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """One child process whose stdout lines are read by a thread (stderr goes to a file)."""

    def __init__(self, name, cmd, tmp):
        self.name = name
        self.stdout_lines = []
        self.lines = queue.Queue()
        self.log = open(os.path.join(tmp, f"{name}.stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, preexec_fn=dc.die_with_parent)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_lines(self, prefixes, last):
        """{prefix: rest of line} for each prefix seen before a line starting with `last`."""
        found = {}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name} not ready within {STARTUP_TIMEOUT} s: {self.stdout_lines!r}")
            if line is None:
                raise AssertionError(f"{self.name} exited early ({self.proc.wait(timeout=15)}): "
                                     f"{self.stdout_lines!r} {Cluster.tail(self.log)!r}")
            for prefix in prefixes:
                if line.startswith(prefix):
                    found[prefix] = line[len(prefix):].strip()
            if line.startswith(last):
                missing = [p for p in prefixes if p not in found]
                if missing:
                    raise AssertionError(f"{self.name}: no {missing!r} before {last!r}: {self.stdout_lines!r}")
                return found

    def close(self):
        self.log.close()
        if self.proc.stdout:
            self.proc.stdout.close()


class Cluster:
    """wf_worker + wf_router + Prometheus on 127.0.0.1; stop() ends all three."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.children = []

    def start_worker(self):
        cmd = [ARGS.worker, "--model-path", ARGS.model, "--host", "127.0.0.1", "--port", "0",
               "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--threads", "1",
               "--max-running", "4", "--log-level", "warning", "--drain-timeout-seconds", "2"]
        worker = Child("wf_worker", cmd, self.tmp)
        self.children.append(worker)
        self.procs.append(worker.proc)
        grpc_line, metrics_line = "wf_worker: grpc listening on ", "wf_worker: metrics listening on "
        found = worker.wait_for_lines([grpc_line, metrics_line], "wf_worker: ready in ")
        self.grpc_address, self.metrics_address = found[grpc_line], found[metrics_line]

    def start_router(self):
        cmd = [ARGS.router, "--workers", self.grpc_address, "--host", "127.0.0.1", "--http-port", "0",
               "--grpc-port", "-1", "--log-level", "warning"]
        router = Child("wf_router", cmd, self.tmp)
        self.children.append(router)
        self.procs.append(router.proc)
        http_line = "wf_router: http listening on "
        self.router_address = router.wait_for_lines([http_line], "wf_router: started")[http_line]
        self.router = router

        def ready():
            if router.proc.poll() is not None:
                raise AssertionError(f"wf_router exited {router.proc.returncode}: {self.tail(router.log)}")
            try:
                with urllib.request.urlopen(f"http://{self.router_address}/ready", timeout=5) as r:
                    return r.status == 200
            except OSError:  # 503 (HTTPError) until the worker is healthy, or not yet accepting
                return False
        self.wait_for(ready, "wf_router /ready to answer 200", STARTUP_TIMEOUT)
        with urllib.request.urlopen(f"http://{self.router_address}/v1/models", timeout=RPC_TIMEOUT) as r:
            self.model_name = json.loads(r.read())["data"][0]["id"]

    def router_post(self, path, body):
        """POSTs JSON to the router's gateway; returns (status, [parsed JSON objects])."""
        request = urllib.request.Request(f"http://{self.router_address}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as r:
            if not body.get("stream"):
                return r.status, [json.loads(r.read())]
            events = []
            for raw in r:  # server-sent events: "data: {...}" lines, then "data: [DONE]"
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return r.status, events
                events.append(json.loads(data))
            raise AssertionError(f"POST {path}: the stream ended without data: [DONE] after {events!r}")

    @staticmethod
    def tail(f):
        f.flush()
        f.seek(0)
        return f.read()[-3000:]

    def prometheus_config(self):
        with open(os.path.join(dc.DEPLOY, "prometheus", "prometheus.yml"), encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        cfg["global"]["scrape_interval"] = "1s"
        cfg["global"]["evaluation_interval"] = "1s"
        rules_dir = os.path.join(dc.DEPLOY, "prometheus")
        cfg["rule_files"] = [os.path.join(rules_dir, r) for r in cfg["rule_files"]]
        jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
        assert set(jobs) == {"wf-worker", "wf-router"}, f"deploy/prometheus/prometheus.yml jobs: {sorted(jobs)}"
        jobs["wf-worker"]["static_configs"] = [{"targets": [self.metrics_address]}]
        if ROUTER_RUNS_IN_TEST:
            jobs["wf-router"]["static_configs"] = [{"targets": [self.router_address]}]
            assert jobs["wf-router"].get("metrics_path", "/metrics") == "/metrics"
        else:
            del jobs["wf-router"]
        cfg["scrape_configs"] = list(jobs.values())
        path = os.path.join(self.tmp, "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f)
        return path

    def start_prometheus(self):
        config = self.prometheus_config()
        check = subprocess.run([ARGS.promtool, "check", "config", config], capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0, f"promtool check config: {check.stdout}{check.stderr}"
        self.prom_port = free_port()
        self.prom_log = open(os.path.join(self.tmp, "prometheus.log"), "w+")
        cmd = [ARGS.prometheus, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(self.tmp, 'data')}",
               f"--web.listen-address=127.0.0.1:{self.prom_port}", "--storage.tsdb.retention.time=1h",
               "--log.level=warn"]
        self.prometheus = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.prom_log,
                                           stderr=subprocess.STDOUT, cwd=self.tmp, preexec_fn=dc.die_with_parent)
        self.procs.append(self.prometheus)
        self.wait_for(lambda: self.http_ok("/-/ready"), "Prometheus /-/ready", STARTUP_TIMEOUT)

    def http_ok(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}{path}", timeout=5) as r:
                return r.status == 200
        except OSError:
            if self.prometheus.poll() is not None:
                raise AssertionError(f"prometheus exited {self.prometheus.returncode}: {self.tail(self.prom_log)}")
            return False

    def api(self, path, params=None):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/{path}"
        data = urllib.parse.urlencode(params).encode() if params else None
        try:
            with urllib.request.urlopen(url, data=data, timeout=15) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:  # 400 = the query does not parse
            return json.loads(e.read() or b"{}") | {"http_status": e.code}

    def query(self, expr):
        return self.api("query", {"query": expr})

    def wait_for(self, predicate, what, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def stop(self):
        for p in reversed(self.procs):
            dc.stop_process(p)
        for child in self.children:
            child.close()
        if hasattr(self, "prom_log"):
            self.prom_log.close()


def generate_stubs(out_dir):
    cmd = [ARGS.protoc, f"-I{ARGS.proto_dir}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
           f"--plugin=protoc-gen-grpc={ARGS.plugin}", "wrinklefree/v1/worker.proto"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        sys.exit(f"FAIL: stub generation failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")


def generate(stub, text, max_tokens):
    request = pb.GenerateRequest(text=text, sampling=pb.SamplingParams(temperature=0.0),
                                 stop=pb.StopConditions(max_tokens=max_tokens, ignore_eos=True))
    tokens = 0
    for response in stub.Generate(request, timeout=RPC_TIMEOUT):
        tokens += len(response.tokens)
    return tokens


def dashboard_queries():
    with open(os.path.join(dc.DEPLOY, "grafana", "wrinklefree.json"), encoding="utf-8") as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for panel in [p] + p.get("panels", []):
            for t in panel.get("targets", []):
                out.append((f"{panel['title']} [{t['refId']}]", t["expr"]))
    variables = [(v["name"], v["query"]["query"]) for v in dash["templating"]["list"] if v["type"] == "query"]
    return out, variables


def alert_rules():
    with open(os.path.join(dc.DEPLOY, "prometheus", "alerts.yaml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"] if "alert" in r]


class PrometheusQueriesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wf_prom_test_")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.cluster = Cluster(cls.tmp)
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start_worker()
        if ROUTER_RUNS_IN_TEST:
            cls.cluster.start_router()
        cls.cluster.start_prometheus()
        c = cls.cluster
        c.wait_for(lambda: c.query('up{job="wf-worker"} == 1').get("data", {}).get("result"),
                   "the first successful scrape of the worker", DATA_TIMEOUT)
        if ROUTER_RUNS_IN_TEST:
            c.wait_for(lambda: c.query('up{job="wf-router"} == 1').get("data", {}).get("result"),
                       "the first successful scrape of the router", DATA_TIMEOUT)
        # A small load: a repeated prompt (prefix-cache hits) then concurrent requests.
        channel = grpc.insecure_channel(c.grpc_address)
        cls.addClassCleanup(channel.close)
        stub = pb_grpc.WorkerStub(channel)
        prompt = LOAD_PROMPT
        total = sum(generate(stub, prompt, 12) for _ in range(3))
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(generate(stub, f"{i} {prompt}", 16)))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=RPC_TIMEOUT + 10)
        assert len(results) == 4, f"only {len(results)} of 4 concurrent Generate calls finished"
        total += sum(results)
        if ROUTER_RUNS_IN_TEST:
            total += cls.load_through_router()
        # Scraped after the load, with enough samples since for rate() and deriv().
        c.wait_for(lambda: c.query(f"wrinklefree:generation_tokens_total >= {total}").get("data", {}).get("result"),
                   f"generation_tokens_total to reach {total} in Prometheus", DATA_TIMEOUT)
        time.sleep(3)  # a few more 1 s scrapes after the final value, so rates span the load
        c.wait_for(cls.rules_evaluated, "every alert rule to be evaluated", DATA_TIMEOUT)

    @classmethod
    def load_through_router(cls):
        """Sends ROUTER_LOAD through the gateway; returns the tokens the worker generated for it."""
        c = cls.cluster
        cls.router_responses = []
        tokens = 0
        for path, body in ROUTER_LOAD:
            body = dict(body, model=c.model_name, temperature=0, ignore_eos=True)
            status, objects = c.router_post(path, body)
            assert status == 200 and objects, f"POST {path}: {status} {objects!r}"
            cls.router_responses.append((path, body, objects))
            tokens += body["max_tokens"]
        lines = len(ROUTER_LOAD)
        c.wait_for(lambda: c.query(f"sum(wrinklefree:router_requests_total{{status=\"200\"}}) >= {lines}")
                   .get("data", {}).get("result"), f"router_requests_total to reach {lines}", DATA_TIMEOUT)
        return tokens

    @classmethod
    def rules_evaluated(cls):
        groups = cls.cluster.api("rules").get("data", {}).get("groups", [])
        rules = [r for g in groups for r in g["rules"]]
        return rules and all(not r["lastEvaluation"].startswith("0001-") for r in rules)

    def check(self, name, expr, require_data):
        response = self.cluster.query(substitute(expr))
        self.assertEqual(response.get("status"), "success",
                         f"{name}: query does not parse or fails: {substitute(expr)!r}: {response}")
        if require_data:
            self.assertTrue(response["data"]["result"],
                            f"{name}: returned no data from the scraped worker: {substitute(expr)!r}")

    def test_promtool_check_rules(self):
        result = subprocess.run([ARGS.promtool, "check", "rules", os.path.join(dc.DEPLOY, "prometheus", "alerts.yaml")],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_alert_rules_loaded_and_healthy(self):
        groups = self.cluster.api("rules")["data"]["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        for name, _ in alert_rules():
            self.assertIn(name, loaded)
            self.assertEqual(loaded[name]["health"], "ok", f"{name}: {loaded[name].get('lastError')}")

    def test_dashboard_queries(self):
        queries, _ = dashboard_queries()
        self.assertGreater(len(queries), 20)
        worker_queries = 0
        for name, expr in queries:
            router = is_router_query(expr)
            worker_queries += not router
            with self.subTest(panel=name):
                self.check(name, expr, require_data=ROUTER_RUNS_IN_TEST or not router)
        self.assertGreater(worker_queries, 10, "most panels are answered by the worker's metrics")

    def test_dashboard_variables(self):
        _, variables = dashboard_queries()
        for name, q in variables:
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
            self.assertIsNotNone(m, f"variable {name}: {q}")
            selector, label = m.group(1), m.group(2)
            router = is_router_query(selector)
            with self.subTest(variable=name):
                self.check(f"variable {name}", selector, require_data=ROUTER_RUNS_IN_TEST or not router)
                if ROUTER_RUNS_IN_TEST or not router:
                    result = self.cluster.query(substitute(selector))["data"]["result"]
                    self.assertTrue(all(label in r["metric"] for r in result), f"variable {name}: no label {label}")

    def test_alert_expressions(self):
        for name, expr in alert_rules():
            router = is_router_query(expr)
            with self.subTest(alert=name):
                self.check(name, expr, require_data=False)
                for value in split_top_level(expr):
                    self.check(f"{name} value {value!r}", value, require_data=ROUTER_RUNS_IN_TEST or not router)

    def test_worker_counts_the_load(self):
        hits = self.cluster.query("sum(wrinklefree:prefix_cache_hits_total)")["data"]["result"]
        self.assertGreater(float(hits[0]["value"][1]), 0, "the repeated prompt hit the prefix cache")
        done = self.cluster.query('sum(wrinklefree:request_success_total{finished_reason="length"})')
        expected = 7 + (len(ROUTER_LOAD) if ROUTER_RUNS_IN_TEST else 0)
        self.assertEqual(float(done["data"]["result"][0]["value"][1]), expected)

    @unittest.skipUnless(ROUTER_RUNS_IN_TEST, "no router in this run")
    def test_router_counts_the_load(self):
        for path, body, objects in self.router_responses:
            with self.subTest(path=path, stream=bool(body.get("stream"))):
                if body.get("stream"):
                    self.assertEqual(objects[0]["object"], "chat.completion.chunk")
                    reasons = [ch.get("finish_reason") for o in objects for ch in o.get("choices", [])]
                    self.assertIn("length", reasons)
                else:
                    self.assertEqual(objects[0]["choices"][0]["finish_reason"], "length")
                    self.assertEqual(objects[0]["usage"]["completion_tokens"], body["max_tokens"])
        by_endpoint = self.cluster.query('sum by (endpoint) (wrinklefree:router_requests_total{status="200"})')
        counts = {r["metric"]["endpoint"]: float(r["value"][1]) for r in by_endpoint["data"]["result"]}
        self.assertEqual(counts, {"completions": 2, "chat_completions": 2})
        hits = self.cluster.query("sum(wrinklefree:router_prefix_hit_blocks_total)")["data"]["result"]
        self.assertGreater(float(hits[0]["value"][1]), 0, "the router predicted the repeated prompt's cached prefix")

    def test_split_top_level(self):
        self.assertEqual(split_top_level('up{job="a"} == 0'), ['up{job="a"}'])
        self.assertEqual(split_top_level("avg_over_time(x[5m]) > 4\nand deriv(x[10m]) > 0"),
                         ["avg_over_time(x[5m])", "deriv(x[10m])"])
        self.assertEqual(split_top_level('sum(rate(a{s=~"5.."}[5m])) / sum(rate(a[5m])) > 0.05'),
                         ['sum(rate(a{s=~"5.."}[5m])) / sum(rate(a[5m]))'])


def main():
    global ARGS, pb, pb_grpc
    golden_dir = os.environ.get("WF_GOLDEN_DIR") or os.path.join(dc.REPO_ROOT, "..", "shared", "golden")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", required=True)
    parser.add_argument("--router", required=ROUTER_RUNS_IN_TEST, default="")
    parser.add_argument("--model", default=os.path.join(golden_dir, "bitnet-synth-h256-l4.gguf"))
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument("--protoc", default=shutil.which("protoc") or "protoc")
    parser.add_argument("--plugin", default=shutil.which("grpc_python_plugin") or "grpc_python_plugin")
    parser.add_argument("--proto-dir", default=os.path.join(dc.REPO_ROOT, "proto"))
    ARGS, rest = parser.parse_known_args()
    binaries = [("--worker", ARGS.worker, "build it first: ninja -C BUILD_DIR wf_worker")]
    if ROUTER_RUNS_IN_TEST:
        binaries.append(("--router", ARGS.router, "build it first: ninja -C BUILD_DIR wf_router"))
    for flag, path, hint in binaries + [
            ("--prometheus", ARGS.prometheus, "install Debian's prometheus (scripts/install_deps.sh)"),
            ("--promtool", ARGS.promtool, "install Debian's prometheus"),
            ("--protoc", ARGS.protoc, "install protobuf-compiler"),
            ("--plugin", ARGS.plugin, "install protobuf-compiler-grpc")]:
        resolved = shutil.which(path) or path
        if not (os.path.isfile(resolved) and os.access(resolved, os.X_OK)):
            print(f"FAIL: {flag} {path}: no such executable; {hint}", file=sys.stderr)
            return 2
        setattr(ARGS, flag[2:].replace("-", "_"), resolved)
    if not os.path.isfile(ARGS.model):
        print(f"FAIL: --model {ARGS.model} does not exist", file=sys.stderr)
        return 2
    stub_dir = tempfile.mkdtemp(prefix="wf_prom_stubs_")
    try:
        generate_stubs(stub_dir)
        sys.path.insert(0, stub_dir)
        from wrinklefree.v1 import worker_pb2, worker_pb2_grpc
        pb, pb_grpc = worker_pb2, worker_pb2_grpc
        program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
        return 0 if program.result.wasSuccessful() else 1
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
