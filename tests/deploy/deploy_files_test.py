#!/usr/bin/env python3
"""Static checks of deploy/: the Dockerfile, the SkyPilot tasks and the Grafana dashboard.

  deploy_files_test.py --worker BUILD/worker/wf_worker --router BUILD/router/wf_router [unittest args]

The Dockerfile's build stage must install exactly scripts/apt-packages.txt; flags
the SkyPilot run script passes must exist in the binaries' --help.
Exit status: unittest's (0 = all passed), 2 on bad usage.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

ARGS = None

REQUIRED_BINARIES = ["wf_worker", "wf_router", "wf_convert", "wf_validate_kv"]


def apt_list():
    """scripts/apt-packages.txt: one package per line; 'a | b' lines count as their first alternative."""
    packages = []
    with open(os.path.join(dc.REPO_ROOT, "scripts", "apt-packages.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                packages.append(line.split("|", 1)[0].strip())
    return packages


def dockerfile_stages():
    """{stage name: [instructions]}, continuation lines joined, comments dropped."""
    with open(os.path.join(dc.DEPLOY, "docker", "Dockerfile"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    instructions, current = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            instructions.append(current.strip())
        current = ""
    stages, name = {}, None
    for ins in instructions:
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", ins, re.IGNORECASE)
        if m:
            name = m.group(1) or f"stage{len(stages)}"
            stages[name] = []
        elif name is not None:
            stages[name].append(ins)
    return stages


def apt_installs(instructions):
    """Package names of every `apt-get install` in the RUN instructions."""
    packages = []
    for ins in instructions:
        if not ins.upper().startswith("RUN "):
            continue
        for command in re.split(r"&&|;|\|\|", ins[4:]):
            words = shlex.split(command)
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                packages += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return packages


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.stages = dockerfile_stages()
        self.assertIn("build", self.stages, "the Dockerfile needs a stage named `build`")
        self.assertIn("runtime", self.stages, "the Dockerfile needs a stage named `runtime`")

    def test_build_stage_installs_exactly_the_apt_list(self):
        docker = apt_installs(self.stages["build"])
        wanted = apt_list()
        self.assertEqual(len(docker), len(set(docker)), f"duplicates in the Dockerfile: {docker}")
        missing = [p for p in wanted if p not in docker]
        extra = [p for p in docker if p not in wanted]
        self.assertEqual((missing, extra), ([], []),
                         f"deploy/docker/Dockerfile (build stage) and scripts/apt-packages.txt differ: "
                         f"missing in the Dockerfile {missing}, not in apt-packages.txt {extra}")

    def test_runtime_stage_is_small_and_non_root(self):
        runtime = self.stages["runtime"]
        packages = apt_installs(runtime)
        self.assertTrue(packages, "the runtime stage installs its shared libraries")
        for p in packages:
            self.assertFalse(p.endswith("-dev") or p in ("build-essential", "cmake", "ninja-build", "git"),
                             f"runtime stage installs build-only package {p}")
        users = [ins.split(None, 1)[1] for ins in runtime if ins.upper().startswith("USER ")]
        self.assertTrue(users, "the runtime stage sets USER")
        self.assertNotIn(users[-1].split(":")[0], ("root", "0"), "the image must not run as root")
        text = "\n".join(self.stages["build"] + runtime)
        for b in REQUIRED_BINARIES:
            self.assertIn(b, text, f"the image must contain {b}")
        self.assertTrue(any(i.upper().startswith("COPY --FROM=BUILD") for i in runtime),
                        "the runtime stage copies the binaries from the build stage")

    def test_dockerignore_excludes_build_trees(self):
        with open(os.path.join(dc.DEPLOY, "docker", "Dockerfile.dockerignore"), encoding="utf-8") as f:
            entries = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        for entry in (".git", "build", "models"):
            self.assertIn(entry, entries)


def min_cpus(value):
    """SkyPilot `cpus`: 8, '8', '8+' -> 8."""
    return float(str(value).rstrip("+"))


class SkyPilotTest(unittest.TestCase):
    def load(self, name):
        with open(os.path.join(dc.DEPLOY, "skypilot", name), encoding="utf-8") as f:
            return yaml.safe_load(f)

    def check_task(self, task, name):
        res = task["resources"]
        self.assertEqual(res.get("infra"), "runpod", name)
        self.assertIn("disk_size", res, f"{name}: RunPod CPU pods need an explicit disk_size")
        self.assertLessEqual(res["disk_size"], 10 * min_cpus(res["cpus"]),
                             f"{name}: RunPod CPU pods allow at most 10 GB of disk per vCPU")
        self.assertGreaterEqual(min_cpus(res["cpus"]), 4, f"{name}: the 2B model wants >= 4 vCPUs")
        self.assertGreaterEqual(min_cpus(res["memory"]), 8, f"{name}: the 2B model wants >= 8 GB")
        ports = res["ports"] if isinstance(res["ports"], list) else [res["ports"]]
        self.assertIn(int(task["envs"]["WF_HTTP_PORT"]), [int(p) for p in ports],
                      f"{name}: the router's gateway port must be exposed")
        setup, run = task["setup"], task["run"]
        self.assertIn("scripts/install_deps.sh", setup)
        self.assertNotIn("docker ", setup + run, f"{name}: RunPod pods cannot run Docker")
        for b in REQUIRED_BINARIES:
            self.assertIn(b, setup, f"{name}: setup builds {b}")
        self.assertIn("--hf-repo", setup)
        self.assertIn("deploy/skypilot/wf_cluster.sh", run)
        # Every env the scripts use is declared.
        declared = set(task.get("envs", {})) | set(task.get("secrets", {}) or {})
        for var in set(re.findall(r"\$\{?(WF_[A-Z_]+)", setup + run)):
            self.assertIn(var, declared, f"{name}: {var} is used but not in envs/secrets")

    def test_runpod_task(self):
        self.check_task(self.load("runpod_cpu.yaml"), "runpod_cpu.yaml")

    def test_serve_task(self):
        task = self.load("serve.yaml")
        self.check_task(task, "serve.yaml")
        service = task["service"]
        probe = service["readiness_probe"]
        path = probe if isinstance(probe, str) else probe["path"]
        self.assertEqual(path, "/ready", "SkyServe probes the router's readiness endpoint")
        policy = service["replica_policy"]
        self.assertLessEqual(policy["min_replicas"], policy["max_replicas"])
        self.assertGreater(policy["target_qps_per_replica"], 0)

    def test_cluster_script_flags_exist(self):
        worker = dc.binary_help(ARGS.worker)
        router = dc.router_help(ARGS.router)
        script = os.path.join(dc.DEPLOY, "skypilot", "wf_cluster.sh")
        for layout in (["--layout", "numa"], ["--layout", "cores", "--cores-per-worker", "1"]):
            result = subprocess.run(["bash", script, "--build", "/nonexistent", "--model", "/m.gguf",
                                     "--dry-run"] + layout, capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
            workers = [c for c in commands if any(w.endswith("/wf_worker") for w in c)]
            routers = [c for c in commands if c[0].endswith("/wf_router")]
            self.assertGreaterEqual(len(workers), 1, result.stdout)
            self.assertEqual(len(routers), 1, result.stdout)
            for cmd, help_ in [(c, worker) for c in workers] + [(c, router) for c in routers]:
                start = next(i for i, w in enumerate(cmd) if w.endswith("/" + help_.name))
                for arg in cmd[start + 1:]:
                    flag = dc.flag_name(arg)
                    if flag:
                        self.assertIn(flag, help_.flags, f"{help_.name} has no flag {flag} (wf_cluster.sh)")
            ports = {c[c.index("--port") + 1] for c in workers}
            self.assertEqual(len(ports), len(workers), "each worker gets its own port")
            listed = routers[0][routers[0].index("--workers") + 1].split(",")
            self.assertEqual(sorted(p.split(":")[1] for p in listed), sorted(ports))


class GrafanaTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(dc.DEPLOY, "grafana", "wrinklefree.json"), encoding="utf-8") as f:
            self.dash = json.load(f)

    def panels(self):
        for p in self.dash["panels"]:
            yield p
            yield from p.get("panels", [])

    def test_structure(self):
        d = self.dash
        self.assertIsNone(d.get("id"), "id must be null for provisioning")
        self.assertTrue(d.get("uid"))
        self.assertGreaterEqual(d.get("schemaVersion", 0), 39)
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        self.assertIn("model_name", variables["model"]["query"]["query"])
        self.assertIn("instance", variables["worker"]["query"]["query"])
        ids = [p["id"] for p in self.panels()]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in self.panels():
            if p["type"] == "row":
                continue
            self.assertIn("gridPos", p)
            self.assertEqual(p["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}", p["title"])
                self.assertTrue(t["expr"].strip(), p["title"])

    def test_required_panels(self):
        exprs = " ".join(t["expr"] for p in self.panels() for t in p.get("targets", []))
        titles = " ".join(p["title"].lower() for p in self.panels())
        for needle in ("request rate by status", "time to first token", "inter-token latency",
                       "end-to-end", "tokens/s", "running and waiting", "kv cache usage",
                       "prefix cache hit rate", "routing decisions", "retries", "worker health"):
            self.assertIn(needle, titles)
        for metric in ("wrinklefree:router_requests_total", "wrinklefree:time_to_first_token_seconds_bucket",
                       "wrinklefree:inter_token_latency_seconds_bucket", "wrinklefree:e2e_request_latency_seconds",
                       "wrinklefree:router_request_duration_seconds", "wrinklefree:generation_tokens_total",
                       "wrinklefree:num_requests_running", "wrinklefree:num_requests_waiting",
                       "wrinklefree:kv_cache_usage_perc", "wrinklefree:prefix_cache_hits_total",
                       "wrinklefree:router_prefix_hit_blocks_total", "wrinklefree:router_routing_decisions_total",
                       "wrinklefree:router_retries_total", "wrinklefree:router_workers"):
            self.assertIn(metric, exprs)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", required=True)
    parser.add_argument("--router", default="")
    ARGS, rest = parser.parse_known_args()
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
