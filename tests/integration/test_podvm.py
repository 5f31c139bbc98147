"""Pods in real VMs through the daemon, the way a user runs them: the guest
kit boots under TCG through libvirt's embedded driver, the agent runs the
containers with crun, and the API reports phases, exit codes and logs.
Skips when build/kit (make kit) is missing."""

import base64
import gzip
import hashlib
import json
import os
import socket
import time
import unittest

from harness import COCOD, Daemon

PODS = "/api/v1/namespaces/default/pods"
# the kit beside the cocod under test, where cocod looks for it
KIT = os.path.join(os.path.dirname(os.path.abspath(COCOD)), "kit", "kit.json")


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
        # user-mode networking: pods reach the host's loopback at 10.0.2.2
        cls.listener = socket.socket()
        cls.listener.bind(("127.0.0.1", 0))
        cls.listener.listen(4)
        cls.listener.settimeout(1)
        cls.d = Daemon(vm=True, config='pod_network = "user"\n').start(timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.listener.close()

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
        port = self.listener.getsockname()[1]
        # also: loopback is up (containers of a pod talk over localhost),
        # /etc/hosts names the pod, and the pod reaches the host's loopback
        self.create(pod("hello", ["sh", "-c",
                                  "echo hello from a confidential pod; echo err >&2; "
                                  "(nc -l -p 7000 > /tmp/got &); sleep 1; "
                                  "echo via-loopback | nc -w 2 127.0.0.1 7000; sleep 1; cat /tmp/got; "
                                  "grep hello /etc/hosts; cat /etc/resolv.conf; "
                                  f"echo from-the-pod | nc -w 5 10.0.2.2 {port}"]))
        got = b""
        deadline = time.time() + 240
        while time.time() < deadline and b"from-the-pod" not in got:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(10)
            got += conn.recv(100)
            conn.close()
        self.assertIn(b"from-the-pod", got)
        obj = self.wait_phase("hello", ("Succeeded", "Failed"))
        out = self.log("hello")
        self.assertIn("via-loopback", out)
        self.assertIn("10.0.2.15\thello", out)
        self.assertIn("nameserver 10.0.2.3", out)
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
        # also: init-data reaches the guest, whose digest must match the
        # recorded one (else the pod fails as a hostile guest before running)
        toml = b'version = "0.1.0"\nalgorithm = "sha256"\n[data]\n"cdh.toml" = "[kbc]"\n'
        digest = "sha256:" + hashlib.sha256(toml).hexdigest()
        body["metadata"]["annotations"] = {
            "io.katacontainers.config.hypervisor.cc_init_data":
                base64.b64encode(gzip.compress(toml)).decode()}
        self.create(body)
        obj = self.wait_phase("three", ("Succeeded", "Failed"))
        self.assertEqual(obj["metadata"]["annotations"]["cocod.io/init-data-digest"], digest)
        console = os.path.join(self.d.data_dir, "pods", obj["metadata"]["uid"], "console.log")
        with open(console, errors="replace") as f:
            self.assertIn(f"init_data={digest}", f.read())  # the agent's own digest
        self.assertEqual(obj["status"]["phase"], "Failed")
        self.assertEqual(obj["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 3)
        self.assertEqual(obj["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0)
        self.assertEqual(obj["status"]["containerStatuses"][0]["restartCount"], 0)  # Never
        self.assertIn("written-by-init", self.log("three", "main"))

    def restarted(self, name, timeout=180):
        """The pod once its container has been restarted at least once."""
        deadline = time.time() + timeout
        cs = {}
        while time.time() < deadline:
            obj = self.d.json("GET", f"{PODS}/{name}")[1]
            cs = (obj["status"].get("containerStatuses") or [{}])[0]
            if cs.get("restartCount", 0) >= 1 and "terminated" in cs.get("lastState", {}):
                return obj, cs
            time.sleep(0.5)
        self.fail(f"{name} was never restarted: {json.dumps(cs)}")

    def test_4_on_failure_and_always_restart_with_back_off(self):
        # both VMs boot side by side
        self.create(pod("flaky", ["sh", "-c", "echo attempt; exit 1"], restart="OnFailure"))
        self.create(pod("always", ["sh", "-c", "echo round; exit 0"], restart="Always"))
        obj, cs = self.restarted("flaky")
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 1)
        self.assertNotEqual(obj["status"]["phase"], "Failed")  # OnFailure keeps trying
        status, evs = self.d.json("GET", "/api/v1/namespaces/default/events"
                                  "?fieldSelector=involvedObject.name%3Dflaky")
        self.assertIn("BackOff", [e["reason"] for e in evs["items"]])
        # Always restarts a container that succeeded, and the pod never ends
        obj, cs = self.restarted("always")
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 0)
        self.assertEqual(cs["lastState"]["terminated"]["reason"], "Completed")
        self.assertNotIn(obj["status"]["phase"], ("Succeeded", "Failed"))
        self.assertGreaterEqual(self.log("always").count("round"), 1)
        for name in ("flaky", "always"):
            self.d.request("DELETE", f"{PODS}/{name}?gracePeriodSeconds=0")

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


@unittest.skipUnless(os.path.exists(KIT), "no guest kit: run `make kit`")
class VmLifecycle(unittest.TestCase):
    """Deleting a running pod, a guest that dies, and a daemon that dies."""

    def setUp(self):
        self.d = Daemon(vm=True).start(timeout=60)

    def tearDown(self):
        self.d.cleanup()

    def create(self, d, body):
        status, _, out = d.request("POST", PODS, body=json.dumps(body),
                                   headers={"Content-Type": "application/json"})
        self.assertEqual(status, 201, out)

    def wait(self, d, name, pred, timeout=180):
        deadline = time.time() + timeout
        obj = None
        while time.time() < deadline:
            status, obj = d.json("GET", f"{PODS}/{name}")
            if pred(status, obj):
                return obj
            time.sleep(0.5)
        self.fail(f"{name}: condition not reached: {json.dumps(obj)[:1500]}\n{d.stderr()[-3000:]}")

    def running(self, status, obj):
        return status == 200 and obj["status"].get("phase") == "Running"

    def qemu_pids(self, uid):
        out = os.popen("ps -eo pid,args").read().splitlines()
        return [int(l.split()[0]) for l in out if "qemu-system" in l and uid in l]

    def test_delete_running_pod_then_kill_qemu_fails_the_pod(self):
        self.create(self.d, pod("sleeper", ["sleep", "3600"], terminationGracePeriodSeconds=3))
        obj = self.wait(self.d, "sleeper", self.running)
        uid = obj["metadata"]["uid"]
        self.assertTrue(self.qemu_pids(uid), "no QEMU process for the pod")
        status, _, _ = self.d.request("DELETE", f"{PODS}/sleeper")
        self.assertEqual(status, 200)
        self.wait(self.d, "sleeper", lambda s, o: s == 404, timeout=60)
        deadline = time.time() + 30
        while self.qemu_pids(uid) and time.time() < deadline:
            time.sleep(0.5)
        self.assertFalse(self.qemu_pids(uid), "the pod's VM outlived the pod")
        # a guest that dies under a running pod fails it
        self.create(self.d, pod("victim", ["sleep", "3600"]))
        obj = self.wait(self.d, "victim", self.running)
        for pid in self.qemu_pids(obj["metadata"]["uid"]):
            os.kill(pid, 9)
        obj = self.wait(self.d, "victim", lambda s, o: o["status"].get("phase") == "Failed", timeout=60)
        self.assertTrue(obj["status"].get("reason") or obj["status"].get("message"))

    def test_kill_9_of_cocod_adopts_the_running_vm(self):
        # "quitter" exits while no daemon listens: the restarted daemon
        # still learns its exit code and its last output
        body = pod("survivor", ["sh", "-c", "echo before; sleep 3600"])
        body["spec"]["containers"].append(
            {"name": "quitter", "image": "busybox",
             "command": ["sh", "-c", "echo started; sleep 10; echo after; exit 4"]})
        self.create(self.d, body)

        def both_running(status, obj):
            cs = obj.get("status", {}).get("containerStatuses") or []
            return status == 200 and len(cs) == 2 and all("running" in c["state"] for c in cs)
        obj = self.wait(self.d, "survivor", both_running)
        uid = obj["metadata"]["uid"]
        pids = self.qemu_pids(uid)
        self.assertEqual(len(pids), 1)
        self.d.proc.kill()
        self.d.proc.wait()
        self.d.log.close()
        time.sleep(14)  # the quitter exits now, with no daemon listening
        d2 = Daemon(data_dir=self.d.data_dir, vm=True).start(timeout=60)
        try:
            obj = self.wait(d2, "survivor", self.running, timeout=60)
            time.sleep(3)
            obj = d2.json("GET", f"{PODS}/survivor")[1]
            self.assertEqual(obj["status"]["phase"], "Running")
            self.assertEqual(self.qemu_pids(uid), pids, "the VM was not adopted as it was")
            status, _, out = d2.request("GET", f"{PODS}/survivor/log?container=main")
            self.assertIn(b"before", out)
            cs = {c["name"]: c for c in obj["status"]["containerStatuses"]}
            self.assertIn("running", cs["main"]["state"])
            self.assertEqual(cs["quitter"]["state"].get("terminated", {}).get("exitCode"), 4,
                             json.dumps(cs["quitter"]))
            status, _, out = d2.request("GET", f"{PODS}/survivor/log?container=quitter")
            self.assertIn(b"after", out)
        finally:
            d2.request("DELETE", f"{PODS}/survivor?gracePeriodSeconds=0")
            deadline = time.time() + 30
            while self.qemu_pids(uid) and time.time() < deadline:
                time.sleep(0.5)
            d2.stop()
