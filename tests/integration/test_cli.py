"""cocod's own client commands against the real daemon: apply, get,
describe, delete, logs, with the kubeconfig from the data directory and
the --server/--token overrides."""

import json
import os
import subprocess

from harness import COCOD, DaemonTest

MANIFEST = """apiVersion: v1
kind: Pod
metadata:
  name: cli1
  labels:
    app: web
spec:
  containers:
  - name: c
    image: busybox
---
apiVersion: v1
kind: Pod
metadata:
  name: cli2
  annotations:  # init-data: cocod adds its digest, apply must not mind
    io.katacontainers.config.hypervisor.cc_init_data: H4sIAAAAAAACAytLLSrOzM9TsFVQMtAz1DNQ4krMSc8vyizJyAWJFWckGpmaKXEBAG5sV5wnAAAA
spec:
  containers:
  - name: c
    image: busybox
"""


class Cli(DaemonTest):
    def cocod(self, *args, input=None):
        return subprocess.run([COCOD, *args, "--data-dir", self.d.data_dir], capture_output=True,
                              text=True, input=input, timeout=30)

    def test_apply_is_idempotent_and_updates_labels(self):
        out = self.cocod("apply", "-f", "-", input=MANIFEST)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines(), ["pod/cli1 created", "pod/cli2 created"])
        out = self.cocod("apply", "-f", "-", input=MANIFEST)
        self.assertEqual(out.stdout.splitlines(), ["pod/cli1 unchanged", "pod/cli2 unchanged"])
        path = os.path.join(self.d.data_dir, "m.yaml")
        with open(path, "w") as f:
            f.write(MANIFEST.replace("app: web", "app: db"))
        out = self.cocod("apply", "-f", path)
        self.assertIn("pod/cli1 configured", out.stdout)
        status, obj = self.d.json("GET", "/api/v1/namespaces/default/pods/cli1")
        self.assertEqual(obj["metadata"]["labels"], {"app": "db"})

    def test_get_prints_table_json_and_yaml(self):
        self.cocod("apply", "-f", "-", input=MANIFEST)
        out = self.cocod("get", "pods")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertRegex(lines[0], r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$")
        self.assertEqual([l.split()[0] for l in lines[1:]], ["cli1", "cli2"])
        self.assertIn("NODE", self.cocod("get", "pods", "-o", "wide").stdout)
        obj = json.loads(self.cocod("get", "pod", "cli1", "-o", "json").stdout)
        self.assertEqual(obj["metadata"]["name"], "cli1")
        lst = json.loads(self.cocod("get", "pods", "-o", "json").stdout)
        self.assertEqual(len(lst["items"]), 2)
        self.assertIn("name: cli1", self.cocod("get", "pod", "cli1", "-o", "yaml").stdout)
        self.assertIn("NAMESPACE", self.cocod("get", "pods", "-A").stdout)
        self.assertIn("Scheduled", self.cocod("get", "events").stdout)

    def test_describe_shows_containers_conditions_and_events(self):
        self.cocod("apply", "-f", "-", input=MANIFEST)
        out = self.cocod("describe", "pod", "cli1")
        self.assertEqual(out.returncode, 0, out.stderr)
        for text in ("Name:               cli1", "app=web", "Containers:", "Image:          busybox",
                     "PodScheduled", "Events:", "Scheduled"):
            self.assertIn(text, out.stdout)

    def test_delete_then_errors_carry_the_server_message(self):
        self.cocod("apply", "-f", "-", input=MANIFEST)
        out = self.cocod("delete", "pod", "cli1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), 'pod "cli1" deleted')
        out = self.cocod("delete", "pod", "cli1")
        self.assertEqual(out.returncode, 1)
        self.assertIn('pods "cli1" not found', out.stderr)
        out = self.cocod("get", "pod", "cli1")
        self.assertEqual(out.returncode, 1)
        self.assertIn("NotFound", out.stderr)

    def test_invalid_manifest_reports_field_paths(self):
        out = self.cocod("apply", "-f", "-", input=MANIFEST.replace("image: busybox", "imagex: busybox", 1))
        self.assertEqual(out.returncode, 1)
        self.assertIn("spec.containers[0].image: Required value", out.stderr)
        out = self.cocod("apply", "-f", "-", input="kind: Pod\nmetadata: [\n")
        self.assertEqual(out.returncode, 1)
        self.assertIn("line", out.stderr)

    def test_logs_without_runtime_says_why(self):
        self.cocod("apply", "-f", "-", input=MANIFEST)
        out = self.cocod("logs", "cli1")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no container runtime", out.stderr)

    def test_server_and_token_overrides(self):
        url = f"https://127.0.0.1:{self.d.port}"
        out = subprocess.run([COCOD, "get", "pods", "--server", url, "--token", "0" * 64,
                              "--kubeconfig", os.path.join(self.d.data_dir, "kubeconfig")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn("Unauthorized", out.stderr)
        out = subprocess.run([COCOD, "get", "pods", "--data-dir", "/nonexistent-dir"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn("kubeconfig", out.stderr)

    def test_usage_errors_exit_2(self):
        self.assertEqual(self.cocod("get").returncode, 2)
        self.assertEqual(self.cocod("get", "nodes").returncode, 2)
        self.assertEqual(self.cocod("apply").returncode, 2)
        self.assertEqual(self.cocod("delete", "pod").returncode, 2)
        self.assertEqual(self.cocod("get", "pods", "--bogus").returncode, 2)
