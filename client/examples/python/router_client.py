#!/usr/bin/env python3
"""Stream one completion from a WrinkleFree router's gRPC front (wrinklefree.v1.Router).

An example of calling the router from Python with grpcio (Debian's
python3-grpcio) and stubs generated from the repository's .proto files:

  router_client.py --target 127.0.0.1:50061 --prompt "Once upon a time" \\
      [--max-tokens 64] [--temperature 0] [--api-key KEY]

The stubs are generated at start-up into a temporary directory (removed at
exit) with protoc and gRPC's Python plugin, the same way as
tests/python/worker_contract_test.py:

  protoc -I proto --python_out=OUT --grpc_out=OUT \\
      --plugin=protoc-gen-grpc=$(which grpc_python_plugin) \\
      wrinklefree/v1/worker.proto wrinklefree/v1/router.proto

(Debian's python3-grpc-tools predates proto3 `optional`, which the protos use,
hence protoc + grpc_python_plugin.) Pass --stubs-dir OUT to use stubs
generated once that way instead.

The text goes to stdout as it arrives, then a newline; the final usage goes to
stderr as one line:
  usage: prompt_tokens=5 completion_tokens=16 cached_prompt_tokens=0 finish_reason=length

Exit status: 0 on success, 1 when the call fails (the gRPC code and message on
stderr), 2 on bad usage or when the stubs cannot be generated, 77 when grpcio
is not installed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import grpc
except ImportError as e:
    print(f"router_client.py: grpcio is not importable ({e}); install python3-grpcio", file=sys.stderr)
    sys.exit(77)

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
PROTOS = ["wrinklefree/v1/worker.proto", "wrinklefree/v1/router.proto"]


def generate_stubs(args, out_dir):
    """Writes wrinklefree/v1/{worker,router}_pb2{,_grpc}.py into out_dir; None or an error message."""
    cmd = [args.protoc, f"-I{args.proto_dir}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
           f"--plugin=protoc-gen-grpc={args.plugin}"] + PROTOS
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {' '.join(cmd)}: {e}"
    if result.returncode != 0:
        return f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}"
    return None


def finish_reason_name(pb, value):
    """FINISH_REASON_LENGTH -> "length" (unknown values print as their number)."""
    try:
        name = pb.FinishReason.Name(value)
    except ValueError:
        return str(value)
    return name[len("FINISH_REASON_"):].lower() if name.startswith("FINISH_REASON_") else name.lower()


def stream_completion(args, worker_pb2, router_pb2, router_pb2_grpc):
    """Sends the request and writes the text as it streams in; returns the exit status."""
    # The generation itself is worker.proto's GenerateRequest; the router's
    # envelope adds the model name and session id.
    request = router_pb2.RouterGenerateRequest(
        request=worker_pb2.GenerateRequest(
            text=args.prompt,
            sampling=worker_pb2.SamplingParams(temperature=args.temperature),
            stop=worker_pb2.StopConditions(max_tokens=args.max_tokens)))
    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else None
    out = sys.stdout.buffer
    final = None
    with grpc.insecure_channel(args.target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        try:
            for chunk in stub.Generate(request, timeout=args.timeout, metadata=metadata):
                out.write(chunk.text_delta.encode("utf-8"))
                out.flush()
                if chunk.finished:
                    final = chunk
        except grpc.RpcError as e:
            out.write(b"\n")
            out.flush()
            print(f"router_client.py: {e.code().name}: {e.details()} (Router/Generate to {args.target})",
                  file=sys.stderr)
            return 1
    out.write(b"\n")
    out.flush()
    if final is None:
        print("router_client.py: the stream ended without a final response", file=sys.stderr)
        return 1
    u = final.usage
    print(f"usage: prompt_tokens={u.prompt_tokens} completion_tokens={u.completion_tokens} "
          f"cached_prompt_tokens={u.cached_prompt_tokens} finish_reason={finish_reason_name(worker_pb2, final.finish_reason)}",
          file=sys.stderr)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50061", help="the router's gRPC front, HOST:PORT")
    parser.add_argument("--prompt", required=True, help="the prompt (raw text, tokenized by the router)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--api-key", default=os.environ.get("WF_API_KEY", ""),
                        help="API key when the router requires one (default: env WF_API_KEY)")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline of the whole call, seconds")
    parser.add_argument("--proto-dir", default=os.path.join(REPO_ROOT, "proto"))
    parser.add_argument("--protoc", default=shutil.which("protoc") or "protoc")
    parser.add_argument("--plugin", default=shutil.which("grpc_python_plugin") or "grpc_python_plugin",
                        help="gRPC's Python protoc plugin")
    parser.add_argument("--stubs-dir", help="use stubs generated beforehand instead of generating them")
    args = parser.parse_args()

    stub_dir = args.stubs_dir
    temp_dir = None
    try:
        if stub_dir is None:
            temp_dir = tempfile.mkdtemp(prefix="wf_router_client_stubs_")
            error = generate_stubs(args, temp_dir)
            if error is not None:
                print(f"router_client.py: stub generation: {error}", file=sys.stderr)
                return 2
            stub_dir = temp_dir
        sys.path.insert(0, stub_dir)
        try:
            from wrinklefree.v1 import router_pb2, router_pb2_grpc, worker_pb2
        except ImportError as e:
            print(f"router_client.py: cannot import the stubs from {stub_dir}: {e}", file=sys.stderr)
            return 2
        return stream_completion(args, worker_pb2, router_pb2, router_pb2_grpc)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
