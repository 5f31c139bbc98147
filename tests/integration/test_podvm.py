"""Pods in real VMs through the daemon, the way a user runs them: the guest
kit boots under TCG through libvirt's embedded driver, the agent runs the
containers with crun, and the API reports phases, exit codes and logs.
Skips when build/kit (make kit) is missing."""

import json
import os
import time
import unittest

from harness import COCOD, Daemon

PODS = "/api/v1/namespaces/default/pods"
KIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "build", "kit", "kit.json")


def pod(name, command, restart="Never", image="busybox", **extra):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": "main", "image": image, "command": command,
                                     "resources": {"limits": {"memory": "128Mi", "cpu": "1"}}}]}}
    body["spec"].update(extra)
    return body


@unittest.skipUnless(os.path.exists(KIT), "no guest kit: run `make kit`")
class PodsInVms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(vm=True).start(timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def create(self, body):
        status, _, out = self.d.request("POST", PODS, body=json.dumps(body),
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 201, out)

    def wait_phase(self, name, phases, timeout=180):
        deadline = time.time() + timeout
        obj = None
        while time.time() < deadline:
            status, obj = self.d.json("GET", f"{PODS}/{name}")
            if status == 200 and obj["status"].get("phase") in phases:
                return obj
            time.sleep(0.5)
        self.fail(f"{name} never reached {phases}: {json.dumps(obj)[:2000]}\n{self.d.stderr()[-3000:]}")

    def log(self, name, container=None):
        q = f"?container={container}" if container else ""
        status, _, out = self.d.request("GET", f"{PODS}/{name}/log{q}")
        self.assertEqual(status, 200, out)
        return out.decode()

    def test_1_echo_pod_succeeds_with_its_output_in_logs(self):
        self.create(pod("hello", ["sh", "-c", "echo hello from a confidential pod; echo err >&2"]))
        obj = self.wait_phase("hello", ("Succeeded", "Failed"))
        self.assertEqual(obj["status"]["phase"], "Succeeded", json.dumps(obj["status"]))
        term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual(term["exitCode"], 0)
        self.assertIn("hello from a confidential pod", self.log("hello"))
        out = os.popen(f"{COCOD} logs hello --data-dir {self.d.data_dir}").read()
        self.assertIn("hello from a confidential pod", out)
        status, evs = self.d.json("GET", "/api/v1/namespaces/default/events"
                                  "?fieldSelector=involvedObject.name%3Dhello")
        reasons = [e["reason"] for e in evs["items"]]
        for r in ("Scheduled", "Pulled", "Created", "Started"):
            self.assertIn(r, reasons)

    def test_2_exit_code_3_fails_the_pod_and_shares_emptydir(self):
        body = pod("three", ["sh", "-c", "cat /data/msg; exit 3"],
                   volumes=[{"name": "data", "emptyDir": {}}],
                   initContainers=[{"name": "prep", "image": "busybox",
                                    "command": ["sh", "-c", "echo written-by-init > /data/msg"],
                                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])
        body["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        self.create(body)
        obj = self.wait_phase("three", ("Succeeded", "Failed"))
        self.assertEqual(obj["status"]["phase"], "Failed")
        self.assertEqual(obj["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 3)
        self.assertEqual(obj["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0)
        self.assertIn("written-by-init", self.log("three", "main"))

    def test_3_missing_image_waits_with_err_image_pull(self):
        self.create(pod("noimg", ["true"], image="example.org/not/here:1"))
        deadline = time.time() + 180
        reason = message = None
        while time.time() < deadline:
            obj = self.d.json("GET", f"{PODS}/noimg")[1]
            st = (obj["status"].get("containerStatuses") or [{}])[0].get("state", {})
            waiting = st.get("waiting", {})
            reason, message = waiting.get("reason"), waiting.get("message", "")
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                break
            time.sleep(0.5)
        self.assertIn(reason, ("ErrImagePull", "ImagePullBackOff"))
        self.assertIn("cocod image import", message)
        status, _, _ = self.d.request("DELETE", f"{PODS}/noimg?gracePeriodSeconds=0")
        self.assertEqual(status, 200)
