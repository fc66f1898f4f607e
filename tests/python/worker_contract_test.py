#!/usr/bin/env python3
"""The wrinklefree.v1 gRPC contract, exercised from Python against a real wf_worker.

Proves that a service written in another language can drive a worker with
nothing but the .proto file: stubs are generated at test time with protoc and
gRPC's Python plugin (Debian's python3-grpc-tools predates proto3 `optional`),
and the KV block hashes the worker reports are recomputed here with the
`xxhash` module from the scheme in worker.proto's header comment.

  worker_contract_test.py --worker BUILD/worker/wf_worker --model MODEL.gguf \\
      --protoc protoc --plugin grpc_python_plugin --proto-dir REPO/proto [unittest args]

--model defaults to $WF_GOLDEN_DIR (else REPO/../shared/golden)/bitnet-synth-h256-l4.gguf;
--proto-dir to REPO/proto; --protoc and --plugin to the ones on PATH.

Exit status: unittest's (0 = all passed), 77 when grpcio cannot be imported
(CTest reports the test as skipped), 2 when a required file is missing.
Health and reflection are called through minimal copies of their messages
(same packages, names and field numbers), since Debian ships neither
grpc_health nor grpc_reflection for Python.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

try:
    import grpc
except ImportError as e:  # Not a failure: this machine cannot run the test at all.
    print(f"SKIP: grpcio is not importable ({e}); install python3-grpcio", file=sys.stderr)
    sys.exit(77)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN_MODEL = "bitnet-synth-h256-l4.gguf"
GOLDEN_JSON = "golden-h256-l4.json"

# Bounds on every wait, in seconds. Generous: the machine may be shared.
STARTUP_TIMEOUT = 60
RPC_TIMEOUT = 30
WAIT_TIMEOUT = 20

# Wire-compatible subsets of grpc/health/v1/health.proto and
# grpc/reflection/v1alpha/reflection.proto (only what the test calls).
HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""
REFLECTION_PROTO = """
syntax = "proto3";
package grpc.reflection.v1alpha;
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ServiceResponse { string name = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest) returns (stream ServerReflectionResponse);
}
"""

ARGS = None  # parsed command line
pb = pb_grpc = health_pb = health_grpc = refl_pb = refl_grpc = xxhash = None  # set by main()


def block_hashes(token_ids, block_size):
    """The contract's chained XXH3-64 hashes of the full blocks of token_ids."""
    hashes, parent = [], 0  # root seed 0
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        data = struct.pack(f"<{block_size}i", *token_ids[start:start + block_size])
        parent = xxhash.xxh3_64_intdigest(data, seed=parent)
        hashes.append(parent)
    return hashes


def distinct_prompt(salt, length):
    """BOS then `length - 1` ordinary tokens that no other test uses."""
    return [2040] + [(salt * 131 + i * 37) % 2040 for i in range(length - 1)]


def greedy(token_ids=None, text=None, max_tokens=8, **kwargs):
    stop = pb.StopConditions(max_tokens=max_tokens, ignore_eos=kwargs.pop("ignore_eos", False))
    request = pb.GenerateRequest(sampling=pb.SamplingParams(temperature=0.0), stop=stop, **kwargs)
    if token_ids is not None:
        request.token_ids.ids.extend(token_ids)
    else:
        request.text = text
    return request


class Completion:
    """Everything one Generate stream returned."""

    def __init__(self, responses):
        self.responses = responses
        self.token_ids = [t.token_id for r in responses for t in r.tokens]
        self.text = "".join(r.text_delta for r in responses)
        self.final = responses[-1]


class WorkerProcess:
    """A wf_worker child on 127.0.0.1 with free ports; always ended by stop()."""

    def __init__(self, extra_args):
        self.stderr_file = tempfile.TemporaryFile(mode="w+")
        self.stderr_tail = ""
        self.channel = None
        self.cmd = [ARGS.worker, "--model-path", ARGS.model, "--host", "127.0.0.1", "--port", "0",
                    "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--threads", "1",
                    "--log-level", "warning", "--drain-timeout-seconds", "2"] + extra_args
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr_file, text=True, preexec_fn=_die_with_parent)
        self.lines = queue.Queue()
        self.stdout = []
        self.reader = threading.Thread(target=self._read_stdout, daemon=True)
        self.reader.start()
        try:
            self._wait_ready()
            self.channel = grpc.insecure_channel(self.address, options=[
                ("grpc.max_receive_message_length", 64 << 20)])
            grpc.channel_ready_future(self.channel).result(timeout=WAIT_TIMEOUT)
            self.stub = pb_grpc.WorkerStub(self.channel)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        self.address = self.metrics_address = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"wf_worker printed no 'ready' line within {STARTUP_TIMEOUT} s; "
                                     f"stdout: {self.stdout!r}; stderr: {self.stderr()!r}") from None
            if line is None:
                code = self.proc.wait(timeout=WAIT_TIMEOUT)
                raise AssertionError(f"wf_worker exited with status {code} before it was ready; "
                                     f"command: {self.cmd}; stdout: {self.stdout!r}; stderr: {self.stderr()!r}")
            if line.startswith("wf_worker: grpc listening on "):
                self.address = line.rsplit(" ", 1)[1]
            elif line.startswith("wf_worker: metrics listening on "):
                self.metrics_address = line.rsplit(" ", 1)[1]
            elif line.startswith("wf_worker: ready in "):
                break
        if self.address is None or not self.address.startswith("127.0.0.1:"):
            raise AssertionError(f"no 'grpc listening on 127.0.0.1:PORT' line before 'ready': {self.stdout!r}")

    def _read_stdout(self):
        for line in self.proc.stdout:
            self.stdout.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def stderr(self):
        self.stderr_file.seek(0)
        return self.stderr_file.read()[-4000:]

    def stop_and_check(self):
        """stop(), failing unless the worker exited 0 as its SIGTERM contract says."""
        code = self.stop()
        if code != 0:
            raise AssertionError(f"wf_worker exited with status {code} after SIGTERM; "
                                 f"stdout: {self.stdout[-5:]!r}; stderr: {self.stderr_tail!r}")

    def stop(self):
        """SIGTERM (the worker drains and exits 0), SIGKILL if it lingers. Returns the exit status."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.reader.join(timeout=5)
        if not self.reader.is_alive():
            self.proc.stdout.close()
        if not self.stderr_file.closed:
            self.stderr_tail = self.stderr()
            self.stderr_file.close()
        return self.proc.returncode

    def generate(self, request, timeout=RPC_TIMEOUT):
        return Completion(list(self.stub.Generate(request, timeout=timeout)))


def _die_with_parent():
    # Linux: the worker gets SIGKILL if this test process dies (e.g. a CTest
    # timeout), so no worker outlives the test.
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class KvMirror:
    """A router's view of one worker's cached blocks, built from LoadReports."""

    def __init__(self, test):
        self.test = test
        self.blocks = set()
        self.last_seq = None
        self.stored = []  # (parent_block_hash or None, [hashes]) of every BlocksStored

    def apply(self, report):
        if report.HasField("snapshot"):
            self.test.assertEqual(len(report.events), 0, "a report with a snapshot carries no events")
            self.blocks = set(report.snapshot.block_hashes)
            self.last_seq = report.snapshot.last_sequence_number
        for event in report.events:
            self.test.assertIsNotNone(self.last_seq, "an event arrived before the first snapshot")
            self.test.assertEqual(event.sequence_number, self.last_seq + 1,
                                  "KV event sequence numbers must be contiguous")
            self.last_seq = event.sequence_number
            kind = event.WhichOneof("event")
            if kind == "stored":
                s = event.stored
                self.blocks.update(s.block_hashes)
                parent = s.parent_block_hash if s.HasField("parent_block_hash") else None
                self.stored.append((parent, list(s.block_hashes)))
            elif kind == "removed":
                self.blocks.difference_update(event.removed.block_hashes)
            elif kind == "all_cleared":
                self.blocks.clear()


def watch(worker, interval_ms=20, timeout=WAIT_TIMEOUT):
    return worker.stub.WatchLoad(pb.WatchLoadRequest(report_interval_ms=interval_ms), timeout=timeout)


def read_until(call, predicate, what, seen=lambda: ""):
    """Reads reports from a WatchLoad call until predicate(report) holds."""
    try:
        for report in call:
            if predicate(report):
                return report
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise AssertionError(f"WatchLoad: timed out waiting for {what}; {seen()}") from None
        raise
    raise AssertionError(f"WatchLoad stream ended while waiting for {what}; {seen()}")


class WorkerContractTest(unittest.TestCase):
    """One worker with the model's full context, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.worker = WorkerProcess([])
        cls.addClassCleanup(cls.worker.stop_and_check)
        cls.info = cls.worker.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=RPC_TIMEOUT)
        cls.block = cls.info.kv_block_size

    def detokenize(self, ids):
        return self.worker.stub.Detokenize(pb.DetokenizeRequest(ids=ids), timeout=RPC_TIMEOUT).text

    def check_length_limited(self, completion, n_prompt, n):
        final = completion.final
        self.assertTrue(final.finished)
        self.assertEqual(sum(1 for r in completion.responses if r.finished), 1, "exactly one final response")
        self.assertEqual(final.finish_reason, pb.FINISH_REASON_LENGTH)
        self.assertEqual(len(completion.token_ids), n)
        self.assertEqual(final.usage.prompt_tokens, n_prompt)
        self.assertEqual(final.usage.completion_tokens, n)
        self.assertEqual(len({r.request_id for r in completion.responses}), 1)
        self.assertTrue(final.request_id)
        self.assertTrue(all(0 <= t < self.info.vocab_size for t in completion.token_ids))
        self.assertEqual(completion.text, self.detokenize(completion.token_ids))

    def test_model_info(self):
        info = self.info
        self.assertEqual(info.vocab_size, 2048)
        self.assertEqual(info.architecture, "bitnet-b1.58")
        self.assertEqual(info.kv_block_hash_scheme, "xxh3-64-chained-v1")
        self.assertEqual(info.kv_block_size, 16)  # wf_worker's default --block-size
        self.assertGreater(info.kv_total_blocks, 0)
        self.assertEqual(info.chat_format, "bitnet")
        self.assertEqual(info.model_name, "bitnet-synth-h256-l4")
        self.assertEqual(info.max_context, info.n_ctx_train)
        self.assertTrue(info.add_bos)
        specials = {t.name: (t.id, t.text) for t in info.special_tokens}
        self.assertEqual(specials["bos"], (2040, "<|begin_of_text|>"))
        self.assertEqual(specials["eos"], (2041, "<|end_of_text|>"))
        self.assertIn(2042, info.eog_token_ids)
        self.assertEqual(len(info.vocab_tokens), 0, "no tokenizer unless asked for")

    def test_model_info_with_tokenizer(self):
        info = self.worker.stub.GetModelInfo(pb.GetModelInfoRequest(include_tokenizer=True), timeout=RPC_TIMEOUT)
        self.assertEqual(len(info.vocab_tokens), info.vocab_size)
        self.assertEqual(len(info.token_types), info.vocab_size)
        self.assertGreater(len(info.merges), 0)
        self.assertEqual(info.tokenizer_model, "gpt2")
        self.assertEqual(info.vocab_tokens[2040], "<|begin_of_text|>")
        # The vocabulary is the one Tokenize uses: each id of a tokenized text
        # names the vocab entry whose bytes make up the text.
        ids = self.worker.stub.Tokenize(pb.TokenizeRequest(text="hello", add_special_tokens=False),
                                        timeout=RPC_TIMEOUT).ids
        self.assertGreater(len(ids), 0)
        self.assertEqual(self.detokenize(list(ids)), "hello")
        self.assertEqual("".join(info.vocab_tokens[i] for i in ids), "hello")

    def test_generate_token_ids_greedy(self):
        prompt = distinct_prompt(1, 12)
        completion = self.worker.generate(greedy(token_ids=prompt, max_tokens=7, ignore_eos=True))
        self.check_length_limited(completion, len(prompt), 7)
        self.assertEqual(completion.final.usage.cached_prompt_tokens, 0)

    def test_generate_text_greedy(self):
        text = "The router accepts requests from Python."
        ids = list(self.worker.stub.Tokenize(pb.TokenizeRequest(text=text), timeout=RPC_TIMEOUT).ids)
        self.assertEqual(ids[0], 2040, "text prompts get BOS")
        completion = self.worker.generate(
            greedy(text=text, max_tokens=6, ignore_eos=True, return_prompt_token_ids=True))
        self.check_length_limited(completion, len(ids), 6)
        self.assertEqual(list(completion.responses[0].prompt_token_ids), ids)
        # The same prompt as token ids continues identically.
        by_ids = self.worker.generate(greedy(token_ids=ids, max_tokens=6, ignore_eos=True))
        self.assertEqual(by_ids.token_ids, completion.token_ids)

    def test_greedy_matches_reference_tokens(self):
        golden_dir = os.path.dirname(ARGS.model)
        with open(os.path.join(golden_dir, GOLDEN_JSON), encoding="utf-8") as f:
            golden = json.load(f)
        checked = 0
        for case in golden["cases"]:
            want = []
            for step in case["steps"]:  # up to where the reference itself was nearly undecided
                if step["margin"] < 0.15:
                    break
                want.append(step["token"])
            if len(want) < 4:
                continue
            completion = self.worker.generate(
                greedy(token_ids=case["prompt_ids"], max_tokens=len(want), ignore_eos=True))
            self.assertEqual(completion.token_ids, want, case["name"])
            checked += 1
        self.assertGreater(checked, 0)

    def test_deterministic(self):
        prompt = distinct_prompt(2, 20)
        first = self.worker.generate(greedy(token_ids=prompt, max_tokens=10, ignore_eos=True))
        second = self.worker.generate(greedy(token_ids=prompt, max_tokens=10, ignore_eos=True))
        self.assertEqual(first.token_ids, second.token_ids)
        self.assertEqual(first.text, second.text)
        # A seeded sampler replays too.
        sampled = []
        for _ in range(2):
            request = pb.GenerateRequest(sampling=pb.SamplingParams(temperature=1.0, seed=42),
                                         stop=pb.StopConditions(max_tokens=10, ignore_eos=True))
            request.token_ids.ids.extend(prompt)
            c = self.worker.generate(request)
            self.assertEqual(c.final.seed, 42)
            sampled.append(c.token_ids)
        self.assertEqual(sampled[0], sampled[1])

    def test_prefix_cache_reuse(self):
        prompt = distinct_prompt(3, 80)  # five full blocks of 16
        first = self.worker.generate(greedy(token_ids=prompt, max_tokens=8, ignore_eos=True))
        self.check_length_limited(first, 80, 8)
        self.assertEqual(first.final.usage.cached_prompt_tokens, 0, "a fresh prompt has nothing cached")
        second = self.worker.generate(greedy(token_ids=prompt, max_tokens=8, ignore_eos=True))
        self.check_length_limited(second, 80, 8)
        cached = second.final.usage.cached_prompt_tokens
        self.assertGreater(cached, 0, "the second request must reuse the first one's blocks")
        self.assertLess(cached, 80, "the last prompt token must be computed for its logits")
        self.assertEqual(cached % self.block, 0, "whole blocks are reused")
        self.assertEqual(second.token_ids, first.token_ids)
        # A different continuation of the same first blocks reuses them too.
        branch = prompt[:48] + distinct_prompt(4, 33)[1:]
        third = self.worker.generate(greedy(token_ids=branch, max_tokens=2, ignore_eos=True))
        self.assertEqual(third.final.usage.cached_prompt_tokens, 48)

    def test_watch_load_reports_python_computed_hashes(self):
        prompt = distinct_prompt(5, 80)
        expected = block_hashes(prompt, self.block)
        self.assertEqual(len(expected), 80 // self.block)
        call = watch(self.worker)
        try:
            mirror = KvMirror(self)
            first = next(call)
            self.assertTrue(first.HasField("snapshot"), "the first report carries a snapshot")
            self.assertTrue(first.instance_id)
            self.assertEqual(first.load.kv_total_blocks, self.info.kv_total_blocks)
            mirror.apply(first)
            self.assertFalse(set(expected) & mirror.blocks, "the prompt is new to the worker")
            self.worker.generate(greedy(token_ids=prompt, max_tokens=4, ignore_eos=True))

            def has_all(report):
                mirror.apply(report)
                return set(expected) <= mirror.blocks
            read_until(call, has_all, f"BlocksStored events with the hashes {expected}",
                       lambda: f"stored events seen: {mirror.stored}")
        finally:
            call.cancel()
        # The stored events form the chain, with the parents the scheme implies.
        covered = []
        for parent, hashes in mirror.stored:
            if hashes and hashes[0] in expected:
                i = expected.index(hashes[0])
                self.assertEqual(hashes, expected[i:i + len(hashes)])
                self.assertEqual(parent, expected[i - 1] if i > 0 else None)
                covered += hashes
        self.assertEqual(sorted(covered), sorted(expected), "each block is stored once, by BlocksStored events")
        # A new subscriber's snapshot has them as well.
        call = watch(self.worker)
        try:
            snapshot = next(call)
        finally:
            call.cancel()
        self.assertTrue(snapshot.HasField("snapshot"))
        self.assertLessEqual(set(expected), set(snapshot.snapshot.block_hashes))
        self.assertGreaterEqual(snapshot.snapshot.last_sequence_number, mirror.last_seq)

    def test_out_of_vocabulary_token(self):
        request = greedy(token_ids=[2040, 17, 99999, 5], max_tokens=2)
        with self.assertRaises(grpc.RpcError) as cm:
            self.worker.generate(request)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("[2]", cm.exception.details())
        self.assertIn("99999", cm.exception.details())

    def test_abort_unknown_request(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.worker.stub.Abort(pb.AbortRequest(request_id="no-such-request"), timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-request", cm.exception.details())

    def test_abort_running_request(self):
        request = greedy(token_ids=distinct_prompt(11, 8), max_tokens=4000, ignore_eos=True,
                         request_id="python-abort-1")
        call = self.worker.stub.Generate(request, timeout=120)
        try:
            first = next(call)
            self.assertEqual(first.request_id, "python-abort-1")
            self.worker.stub.Abort(pb.AbortRequest(request_id="python-abort-1"), timeout=RPC_TIMEOUT)
            rest = list(call)
        finally:
            call.cancel()
        completion = Completion([first] + rest)
        self.assertTrue(completion.final.finished)
        self.assertEqual(completion.final.finish_reason, pb.FINISH_REASON_ABORT)
        self.assertLess(len(completion.token_ids), 4000)
        self.assertEqual(completion.final.usage.completion_tokens, len(completion.token_ids))

    def fresh_load(self):
        """The worker's load now: the first report of a new subscription."""
        call = watch(self.worker, interval_ms=10, timeout=RPC_TIMEOUT)
        try:
            return next(call).load
        finally:
            call.cancel()

    def wait_request_gone(self, request_id):
        """Polls (bounded) until Abort says NOT_FOUND and the load is idle."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.worker.stub.Abort(pb.AbortRequest(request_id=request_id), timeout=RPC_TIMEOUT)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
                load = self.fresh_load()
                if load.running == 0 and load.waiting == 0 and load.kv_used_blocks == 0:
                    return
            time.sleep(0.01)
        self.fail(f"request {request_id} still live or its slot still held 20 s after the cancel")

    def test_client_cancellation_frees_the_slot(self):
        # The tiny model is fast: a whole generation can reach the client
        # before its cancel does (then there is nothing left to cancel). A
        # long prompt makes every step slower, and a few attempts make a
        # cancelled one certain; at least one must end CANCELLED.
        cancelled = 0
        for attempt in range(5):
            request_id = f"python-cancel-{attempt}"
            request = greedy(token_ids=distinct_prompt(6 + attempt, 2000), max_tokens=2000, ignore_eos=True,
                             request_id=request_id)
            gen_call = self.worker.stub.Generate(request, timeout=120)
            try:
                first = next(gen_call)
                self.assertGreater(len(first.tokens), 0)
                gen_call.cancel()
                for _ in gen_call:
                    pass
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.CANCELLED)
                cancelled += 1
            finally:
                gen_call.cancel()
            # The request is gone (not just detached) and its slot and KV
            # blocks are free again.
            self.wait_request_gone(request_id)
            if cancelled:
                break
        self.assertGreater(cancelled, 0, "every generation finished before its cancel arrived")
        # And the worker still serves.
        after = self.worker.generate(greedy(token_ids=distinct_prompt(7, 4), max_tokens=3, ignore_eos=True))
        self.assertEqual(len(after.token_ids), 3)

    def test_health_serving(self):
        stub = health_grpc.HealthStub(self.worker.channel)
        for service in ("", "wrinklefree.v1.Worker"):
            response = stub.Check(health_pb.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
            self.assertEqual(response.status, health_pb.HealthCheckResponse.SERVING, repr(service))

    def test_server_reflection(self):
        from google.protobuf import descriptor_pb2
        stub = refl_grpc.ServerReflectionStub(self.worker.channel)
        requests = [refl_pb.ServerReflectionRequest(list_services=""),
                    refl_pb.ServerReflectionRequest(file_containing_symbol="wrinklefree.v1.Worker")]
        responses = list(stub.ServerReflectionInfo(iter(requests), timeout=RPC_TIMEOUT))
        self.assertEqual(len(responses), 2)
        services = {s.name for s in responses[0].list_services_response.service}
        self.assertIn("wrinklefree.v1.Worker", services)
        self.assertIn("grpc.health.v1.Health", services)
        files = responses[1].file_descriptor_response.file_descriptor_proto
        self.assertGreater(len(files), 0, responses[1].error_response.error_message)
        served = descriptor_pb2.FileDescriptorProto.FromString(files[0])
        ours = descriptor_pb2.FileDescriptorProto()
        pb.DESCRIPTOR.CopyToProto(ours)
        self.assertEqual(served.name, "wrinklefree/v1/worker.proto")
        # The worker serves exactly the contract in this repository.
        self.assertEqual(served, ours)


class ContextLimitTest(unittest.TestCase):
    """A worker started with --max-context 64."""

    @classmethod
    def setUpClass(cls):
        cls.worker = WorkerProcess(["--max-context", "64", "--max-new-tokens", "16"])
        cls.addClassCleanup(cls.worker.stop_and_check)

    def test_model_info_reports_the_limit(self):
        info = self.worker.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(info.max_context, 64)

    def test_prompt_over_the_context(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.worker.generate(greedy(token_ids=distinct_prompt(8, 100), max_tokens=1))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("100", cm.exception.details())
        self.assertIn("64", cm.exception.details())

    def test_prompt_plus_max_tokens_over_the_context(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.worker.generate(greedy(token_ids=distinct_prompt(9, 60), max_tokens=10))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        for number in ("60", "10", "64"):
            self.assertIn(number, cm.exception.details())

    def test_prompt_within_the_context(self):
        completion = self.worker.generate(greedy(token_ids=distinct_prompt(10, 60), max_tokens=4, ignore_eos=True))
        self.assertEqual(len(completion.token_ids), 4)
        self.assertEqual(completion.final.finish_reason, pb.FINISH_REASON_LENGTH)


def generate_stubs(out_dir):
    """Python modules for worker.proto and the health/reflection subsets, in out_dir."""
    src = os.path.join(out_dir, "src")
    os.makedirs(os.path.join(src, "wfcontract"))
    for name, text in (("health.proto", HEALTH_PROTO), ("reflection.proto", REFLECTION_PROTO)):
        with open(os.path.join(src, "wfcontract", name), "w", encoding="utf-8") as f:
            f.write(text)
    for include, files in ((ARGS.proto_dir, ["wrinklefree/v1/worker.proto"]),
                           (src, ["wfcontract/health.proto", "wfcontract/reflection.proto"])):
        cmd = [ARGS.protoc, f"-I{include}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
               f"--plugin=protoc-gen-grpc={ARGS.plugin}"] + files
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            sys.exit(f"FAIL: stub generation failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")


def main():
    global ARGS, pb, pb_grpc, health_pb, health_grpc, refl_pb, refl_grpc, xxhash
    golden_dir = os.environ.get("WF_GOLDEN_DIR") or os.path.join(
        os.environ.get("WF_SOURCE_DIR") or REPO_ROOT, "..", "shared", "golden")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", required=True, help="the wf_worker binary")
    parser.add_argument("--model", default=os.path.join(golden_dir, GOLDEN_MODEL), help="the golden GGUF model")
    parser.add_argument("--protoc", default=shutil.which("protoc") or "protoc")
    parser.add_argument("--plugin", default=shutil.which("grpc_python_plugin") or "grpc_python_plugin",
                        help="gRPC's Python protoc plugin (grpc_python_plugin)")
    parser.add_argument("--proto-dir", default=os.path.join(REPO_ROOT, "proto"))
    ARGS, rest = parser.parse_known_args()

    for flag, path, hint in (("--worker", ARGS.worker, "build it first: ninja -C BUILD_DIR wf_worker"),
                             ("--protoc", ARGS.protoc, "install protobuf-compiler"),
                             ("--plugin", ARGS.plugin, "install protobuf-compiler-grpc")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"FAIL: {flag} {path}: no such executable; {hint}", file=sys.stderr)
            return 2
    for flag, path in (("--model", ARGS.model), ("--proto-dir", os.path.join(ARGS.proto_dir, "wrinklefree/v1"))):
        if not os.path.exists(path):
            print(f"FAIL: {flag}: {path} does not exist", file=sys.stderr)
            return 2
    ARGS.model = os.path.abspath(ARGS.model)
    try:
        import xxhash as xxhash_module
    except ImportError as e:
        print(f"FAIL: the xxhash module is needed for the KV block hash check ({e}); install python3-xxhash",
              file=sys.stderr)
        return 2
    xxhash = xxhash_module

    stub_dir = tempfile.mkdtemp(prefix="wf_contract_stubs_")
    try:
        generate_stubs(stub_dir)
        sys.path.insert(0, stub_dir)
        from wrinklefree.v1 import worker_pb2, worker_pb2_grpc
        from wfcontract import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc
        pb, pb_grpc = worker_pb2, worker_pb2_grpc
        health_pb, health_grpc = health_pb2, health_pb2_grpc
        refl_pb, refl_grpc = reflection_pb2, reflection_pb2_grpc
        program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
        return 0 if program.result.wasSuccessful() else 1
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
