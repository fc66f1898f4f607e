#!/usr/bin/env python3
"""Renders deploy/k8s with `kubectl kustomize` (offline) and checks the objects.

  k8s_render_test.py --worker BUILD/worker/wf_worker --convert BUILD/converter/wf_convert \\
      --router BUILD/router/wf_router [--kubectl kubectl] [unittest args]

Every probe must hit a port and path our binaries serve (worker: gRPC health on
its --port; router: /ready and /health on its HTTP port), every container flag
and env var must exist in the binary's --help, pods run as non-root
with read-only root filesystems, and Services, PDBs, the HPA and the
ServiceMonitors select what exists.
Exit status: unittest's (0 = all passed), 77 when no kubectl is installed, 2 when
the router binary is missing.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

ARGS = None
OBJECTS = []  # rendered once in main()
HELP = {}     # binary name -> dc.Help


def objects(kind):
    return [o for o in OBJECTS if o["kind"] == kind]


def one(kind, name):
    found = [o for o in objects(kind) if o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} named {name}*, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads():
    return objects("Deployment") + objects("StatefulSet")


def pod_containers(workload):
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def arg_value(container, flag):
    """The value of --flag=V or --flag V in the container's args/command."""
    words = container.get("command", []) + container.get("args", [])
    for i, w in enumerate(words):
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
        if w == flag and i + 1 < len(words):
            return words[i + 1]
    return None


def router_config():
    cm = one("ConfigMap", "wf-router-config")
    return yaml.safe_load(cm["data"]["router.yaml"])


class RenderedTest(unittest.TestCase):
    def test_expected_objects(self):
        kinds = sorted(o["kind"] for o in OBJECTS)
        for kind, n in (("Namespace", 1), ("ConfigMap", 1), ("Service", 2), ("Deployment", 1),
                        ("HorizontalPodAutoscaler", 1), ("PodDisruptionBudget", 2), ("ServiceMonitor", 2)):
            self.assertEqual(kinds.count(kind), n, f"{kind} in {kinds}")
        self.assertEqual(len(workloads()), 2, "one worker and one router workload")
        namespaces = {o["metadata"].get("namespace") for o in OBJECTS if o["kind"] != "Namespace"}
        self.assertEqual(namespaces, {objects("Namespace")[0]["metadata"]["name"]})

    def test_flags_and_env_exist_in_help(self):
        for w in workloads():
            for c in pod_containers(w):
                where = f"{w['metadata']['name']}/{c['name']}"
                words = c.get("command", []) + c.get("args", [])
                if words[:2] == ["/bin/sh", "-c"] or words[:2] == ["sh", "-c"]:
                    script = " ".join(words[2:])
                    names = set(re.findall(r"\b(wf_[a-z_]+)\b", script))
                    self.assertTrue(names, f"{where}: the script runs none of our binaries")
                    helps = [HELP[n] for n in names]
                    flags = set(dc.FLAG_RE.findall(script))
                    argv_refs = set(re.findall(r"\$\(([A-Z0-9_]+)\)", script))
                else:
                    name = os.path.basename(words[0])
                    self.assertIn(name, HELP, f"{where}: unknown binary {words[0]}")
                    helps = [HELP[name]]
                    flags = {dc.flag_name(a) for a in words[1:] if dc.flag_name(a)}
                    argv_refs = set(re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(words)))
                for flag in flags:
                    self.assertTrue(any(flag in h.flags for h in helps),
                                    f"{where}: {flag} is not in the --help of {[h.name for h in helps]}")
                for env in c.get("env", []):
                    var = env["name"]
                    self.assertTrue(var in argv_refs or any(h.has_env(var) for h in helps),
                                    f"{where}: env {var} is neither documented in --help of "
                                    f"{[h.name for h in helps]} nor used as $({var}) in its arguments")

    def test_worker_probes_hit_grpc_health(self):
        worker = one("StatefulSet", "wf-worker") if objects("StatefulSet") else one("Deployment", "wf-worker")
        c = next(c for c in worker["spec"]["template"]["spec"]["containers"] if c["command"][0] == "wf_worker")
        port = int(arg_value(c, "--port"))
        self.assertIn(port, [p["containerPort"] for p in c["ports"]])
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            self.assertIsNotNone(probe, f"worker needs a {kind}")
            self.assertIn("grpc", probe, f"worker {kind}: wf_worker serves gRPC health, not HTTP")
            self.assertEqual(probe["grpc"]["port"], port, f"worker {kind} port")
            self.assertIn(probe["grpc"].get("service", ""), dc.WORKER_HEALTH_SERVICES, kind)
        startup = c["startupProbe"]
        self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"], 120,
                                "the startup probe must allow minutes for loading a 2B model")
        metrics_port = int(arg_value(c, "--metrics-port"))
        self.assertIn(metrics_port, [p["containerPort"] for p in c["ports"]])
        # The init container writes the file the worker reads.
        init = worker["spec"]["template"]["spec"]["initContainers"][0]
        script = " ".join(init["args"])
        outfile = re.search(r"--outfile[= ](\S+)", script).group(1)
        self.assertEqual(outfile, arg_value(c, "--model-path"))
        self.assertIn("--hf-repo", script)
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(grace, float(arg_value(c, "--drain-timeout-seconds")),
                           "the grace period must cover the worker's drain")

    def test_router_probes_hit_served_paths(self):
        router = one("Deployment", "wf-router")
        c = router["spec"]["template"]["spec"]["containers"][0]
        cfg = router_config()
        http_port = int(arg_value(c, "--http-port") or cfg["http_port"])
        self.assertIn(http_port, [p["containerPort"] for p in c["ports"]])
        paths = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            self.assertIsNotNone(probe, f"router needs a {kind}")
            self.assertIn("httpGet", probe, kind)
            self.assertEqual(probe["httpGet"]["port"], http_port, f"router {kind} port")
            self.assertIn(probe["httpGet"]["path"], dc.ROUTER_HTTP_PATHS, kind)
            paths[kind] = probe["httpGet"]["path"]
        self.assertEqual(paths["readinessProbe"], "/ready")
        self.assertEqual(paths["livenessProbe"], "/health")
        # The config file the router reads is the ConfigMap's.
        cfg_path = arg_value(c, "--config")
        mount = next(m for m in c["volumeMounts"] if cfg_path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in router["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
        self.assertEqual(volume["configMap"]["name"], one("ConfigMap", "wf-router-config")["metadata"]["name"])
        self.assertEqual(os.path.basename(cfg_path), "router.yaml")

    def test_router_config_keys_are_flags(self):
        cfg = router_config()
        router = HELP["wf_router"]
        for key in cfg:
            self.assertIn("--" + key.replace("_", "-"), router.flags, f"router.yaml key {key}")
        if "policy" in cfg:
            self.assertRegex(router.text, r"--policy .*\b" + re.escape(cfg["policy"]) + r"\b",
                             "router.yaml policy is one --help lists")
        # Discovery points at the headless worker Service's gRPC port.
        host, port = cfg["worker_dns"].rsplit(":", 1)
        svc = one("Service", "wf-worker")
        self.assertEqual(svc["spec"].get("clusterIP"), "None", "worker discovery needs a headless Service")
        ns = svc["metadata"]["namespace"]
        self.assertIn(host, (svc["metadata"]["name"], f"{svc['metadata']['name']}.{ns}",
                             f"{svc['metadata']['name']}.{ns}.svc.cluster.local"))
        self.assertIn(int(port), [p["port"] for p in svc["spec"]["ports"]])

    def test_security_and_resources(self):
        for w in workloads():
            spec = w["spec"]["template"]["spec"]
            name = w["metadata"]["name"]
            self.assertTrue(spec["securityContext"].get("runAsNonRoot"), f"{name}: runAsNonRoot")
            self.assertNotEqual(spec["securityContext"].get("runAsUser"), 0, name)
            self.assertFalse(spec.get("automountServiceAccountToken", True), f"{name}: needs no API token")
            for c in pod_containers(w):
                sc = c.get("securityContext", {})
                where = f"{name}/{c['name']}"
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, where)
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, where)
                # The pod's non-root settings must not be undone per container.
                self.assertIsNot(sc.get("runAsNonRoot"), False, where)
                self.assertNotEqual(sc.get("runAsUser"), 0, where)
                self.assertIn("ALL", sc.get("capabilities", {}).get("drop", []), where)
                for part in ("requests", "limits"):
                    for res in ("cpu", "memory"):
                        self.assertIn(res, c.get("resources", {}).get(part, {}), f"{where}: {part}.{res}")

    def test_selectors_match(self):
        pods = {w["metadata"]["name"]: w for w in workloads()}
        for svc in objects("Service"):
            matched = [w for w in pods.values()
                       if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
            self.assertEqual(len(matched), 1, f"Service {svc['metadata']['name']}")
            port_names = {p["name"] for c in matched[0]["spec"]["template"]["spec"]["containers"]
                          for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                self.assertIn(p["targetPort"], port_names, f"Service {svc['metadata']['name']} port {p['name']}")
        for pdb in objects("PodDisruptionBudget"):
            self.assertTrue(any(selects(pdb["spec"]["selector"]["matchLabels"],
                                        w["spec"]["template"]["metadata"]["labels"]) for w in pods.values()),
                            f"PDB {pdb['metadata']['name']} selects no pods")
        for w in pods.values():
            self.assertTrue(selects(w["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"]))
        sts = objects("StatefulSet")
        for s in sts:
            self.assertEqual(one("Service", s["spec"]["serviceName"])["spec"].get("clusterIP"), "None")
        hpa = objects("HorizontalPodAutoscaler")[0]
        target = hpa["spec"]["scaleTargetRef"]
        self.assertEqual(one(target["kind"], target["name"])["metadata"]["name"], target["name"])
        self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        for sm in objects("ServiceMonitor"):
            svcs = [s for s in objects("Service") if selects(sm["spec"]["selector"]["matchLabels"],
                                                             s["metadata"].get("labels", {}))]
            self.assertEqual(len(svcs), 1, f"ServiceMonitor {sm['metadata']['name']}")
            for ep in sm["spec"]["endpoints"]:
                port = next((p for p in svcs[0]["spec"]["ports"] if p["name"] == ep["port"]), None)
                self.assertIsNotNone(port, f"ServiceMonitor {sm['metadata']['name']}: no port {ep['port']}")
                self.assertEqual(ep.get("path", "/metrics"), "/metrics")
        # Worker metrics: the Service port is the worker's --metrics-port; router metrics on its HTTP port.
        worker_svc = one("Service", "wf-worker")
        metrics = next(p for p in worker_svc["spec"]["ports"] if p["name"] == "metrics")
        wc = next(c for c in pods["wf-worker"]["spec"]["template"]["spec"]["containers"])
        self.assertEqual(metrics["port"], int(arg_value(wc, "--metrics-port")))
        router_svc = one("Service", "wf-router")
        http = next(p for p in router_svc["spec"]["ports"] if p["name"] == "http")
        self.assertEqual(http["port"], int(router_config()["http_port"]))


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", required=True)
    parser.add_argument("--convert", required=True)
    parser.add_argument("--router", default="")
    parser.add_argument("--kubectl", default=shutil.which("kubectl") or "")
    ARGS, rest = parser.parse_known_args()
    if not ARGS.kubectl:
        print("SKIP: no kubectl; install Debian's kubernetes-client (scripts/install_deps.sh)", file=sys.stderr)
        return 77
    result = subprocess.run([ARGS.kubectl, "kustomize", os.path.join(dc.DEPLOY, "k8s")],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        print(f"FAIL: kubectl kustomize deploy/k8s exited {result.returncode}:\n{result.stderr}", file=sys.stderr)
        return 1
    OBJECTS.extend(o for o in yaml.safe_load_all(result.stdout) if o)
    HELP["wf_worker"] = dc.binary_help(ARGS.worker)
    HELP["wf_convert"] = dc.binary_help(ARGS.convert)
    try:
        HELP["wf_router"] = dc.router_help(ARGS.router)
    except AssertionError as e:
        print(f"FAIL: --router: {e}", file=sys.stderr)
        return 2
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
