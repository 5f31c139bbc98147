"""Pods in real VMs through the daemon, the way a user runs them: the guest
kit boots under TCG through libvirt's embedded driver, the agent runs the
containers with crun, and the API reports phases, exit codes and logs.
Each boot is slow under TCG, so a pod carries several behaviours, a
container for each, where its pod-level phase allows them: five boots here
(four pods in PodsInVms, one in VmLifecycle).
Skips when build/kit (make kit) is missing."""

import base64
import gzip
import hashlib
import json
import os
import re
import socket
import time
import unittest

from harness import COCOD, Daemon

PODS = "/api/v1/namespaces/default/pods"
# the kit beside the cocod under test, where cocod looks for it
KIT = os.path.join(os.path.dirname(os.path.abspath(COCOD)), "kit", "kit.json")


# Small CPU limits: a pod's VM gets one vCPU, and the node (2 CPUs here)
# fits two pods side by side (a container with no limits requests a whole CPU).
def pod(name, command, restart="Never", image="busybox", **extra):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": "main", "image": image, "command": command,
                                     "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}}}]}}
    body["spec"].update(extra)
    return body


def ctr(name, command, **extra):
    """A further container (or init container) of a pod."""
    return dict({"name": name, "image": "busybox", "command": command,
                 "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}, **extra)


def always_pod():
    """An Always pod: "main" exits 0 at once, "sleeper" keeps running."""
    body = pod("always", ["sh", "-c", "echo round; exit 0"], restart="Always")
    body["spec"]["containers"].append(ctr("sleeper", ["sleep", "3600"]))
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
        # test_4's pod boots now, beside the others: its restart back-off
        # (10 s) runs while the other tests do
        status, _, out = cls.d.request("POST", PODS, body=json.dumps(always_pod()),
                                       headers={"Content-Type": "application/json"})
        if status != 201:
            cls.d.cleanup()
            raise AssertionError(f"creating the Always pod: {status} {out}")

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

    def events(self, name):
        status, evs = self.d.json("GET", "/api/v1/namespaces/default/events"
                                  f"?fieldSelector=involvedObject.name%3D{name}")
        self.assertEqual(status, 200)
        return [e["reason"] for e in evs["items"]]

    def statuses(self, obj, key="containerStatuses"):
        return {c["name"]: c for c in obj["status"].get(key) or []}

    def qemu_pids(self, uid):
        out = os.popen("ps -eo pid,args").read().splitlines()
        return [int(l.split()[0]) for l in out if "qemu-system" in l and uid in l]

    def wait_vm_gone(self, uid, timeout=30):
        deadline = time.time() + timeout
        while self.qemu_pids(uid) and time.time() < deadline:
            time.sleep(0.5)
        self.assertFalse(self.qemu_pids(uid), "the pod's VM outlived the pod")

    def restarted(self, name, container="main", timeout=180):
        """The pod once `container` has been restarted at least once."""
        deadline = time.time() + timeout
        cs = {}
        while time.time() < deadline:
            obj = self.d.json("GET", f"{PODS}/{name}")[1]
            cs = self.statuses(obj).get(container, {})
            if cs.get("restartCount", 0) >= 1 and "terminated" in cs.get("lastState", {}):
                return obj, cs
            time.sleep(0.5)
        self.fail(f"{name}/{container} was never restarted: {json.dumps(cs)}")

    def wait_removed(self, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.d.json("GET", f"{PODS}/{name}")[0] == 404:
                return
            time.sleep(0.5)
        self.fail(f"{name} was not removed")

    def test_1_echo_pod_succeeds_with_its_output_in_logs_and_on_failure_restarts(self):
        """One OnFailure pod: "main" echoes (and checks pod networking) and
        exits 0; "flaky" exits 1 once, is restarted after a back-off and
        then exits 0, so the pod ends Succeeded and "main" is never
        restarted."""
        port = self.listener.getsockname()[1]
        # also: loopback is up (containers of a pod talk over localhost),
        # /etc/hosts names the pod, and the pod reaches the host's loopback
        body = pod("hello", ["sh", "-c",
                             "echo hello from a confidential pod; echo err >&2; "
                             "(nc -l -p 7000 > /tmp/got &); sleep 1; "
                             "echo via-loopback | nc -w 2 127.0.0.1 7000; sleep 1; cat /tmp/got; "
                             "grep hello /etc/hosts; cat /etc/resolv.conf; "
                             f"echo from-the-pod | nc -w 5 10.0.2.2 {port}"],
                   restart="OnFailure", volumes=[{"name": "state", "emptyDir": {}}])
        # the emptyDir outlives a container restart: the second attempt succeeds
        body["spec"]["containers"].append(
            ctr("flaky", ["sh", "-c", "echo attempt; [ -e /state/tried ] && exit 0; "
                                      "touch /state/tried; exit 1"],
                volumeMounts=[{"name": "state", "mountPath": "/state"}]))
        self.create(body)
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
        # OnFailure: "flaky" failed, waits in a back-off, and the pod is not Failed
        obj, cs = self.restarted("hello", "flaky")
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 1)
        self.assertNotEqual(obj["status"]["phase"], "Failed")  # OnFailure keeps trying
        self.assertIn("BackOff", self.events("hello"))
        obj = self.wait_phase("hello", ("Succeeded", "Failed"))
        out = self.log("hello", "main")
        self.assertIn("via-loopback", out)
        self.assertIn("10.0.2.15\thello", out)
        self.assertIn("nameserver 10.0.2.3", out)
        self.assertEqual(obj["status"]["phase"], "Succeeded", json.dumps(obj["status"]))
        cs = self.statuses(obj)
        self.assertEqual(cs["main"]["state"]["terminated"]["exitCode"], 0)
        self.assertEqual(cs["main"]["restartCount"], 0)  # OnFailure leaves a success alone
        self.assertEqual(cs["flaky"]["state"]["terminated"]["exitCode"], 0)
        self.assertEqual(cs["flaky"]["restartCount"], 1)
        self.assertIn("attempt", self.log("hello", "flaky"))
        self.assertIn("hello from a confidential pod", out)
        out = os.popen(f"{COCOD} logs hello -c main --data-dir {self.d.data_dir}").read()
        self.assertIn("hello from a confidential pod", out)
        reasons = self.events("hello")
        for r in ("Scheduled", "Pulled", "Created", "Started"):
            self.assertIn(r, reasons)

    def test_2_exit_code_3_fails_a_never_pod_init_containers_in_order_emptydir_shared(self):
        """One Never pod: two init containers run one after the other before
        the app containers; "main" and "peer" run side by side and share the
        emptyDir with the init containers and each other; "main" exits 3, so
        the pod is Failed and nothing is restarted."""
        mount = [{"name": "data", "mountPath": "/data"}]
        body = pod("three", ["sh", "-c", "cat /data/order; cat /data/msg; "
                                         "echo from-main > /data/for-peer; exit 3"],
                   volumes=[{"name": "data", "emptyDir": {}}],
                   initContainers=[
                       # if "second" did not wait for "first", its line would come first
                       ctr("first", ["sh", "-c", "sleep 1; echo init-1 >> /data/order"],
                           volumeMounts=mount),
                       ctr("second", ["sh", "-c", "echo init-2 >> /data/order; "
                                                  "echo written-by-init > /data/msg"],
                           volumeMounts=mount)])
        body["spec"]["containers"][0]["volumeMounts"] = mount
        body["spec"]["containers"].append(
            ctr("peer", ["sh", "-c", "while [ ! -e /data/for-peer ]; do sleep 0.2; done; "
                                     "cat /data/for-peer"], volumeMounts=mount))
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
        cs, ics = self.statuses(obj), self.statuses(obj, "initContainerStatuses")
        self.assertEqual(cs["main"]["state"]["terminated"]["exitCode"], 3)
        self.assertEqual(cs["main"]["restartCount"], 0)  # Never
        self.assertEqual(cs["peer"]["state"]["terminated"]["exitCode"], 0)
        self.assertEqual([c["name"] for c in obj["status"]["initContainerStatuses"]],
                         ["first", "second"])
        for name in ("first", "second"):
            self.assertEqual(ics[name]["state"]["terminated"]["exitCode"], 0)
        # init containers in order, and all of them before the app containers
        self.assertLessEqual(ics["first"]["state"]["terminated"]["finishedAt"],
                             ics["second"]["state"]["terminated"]["startedAt"])
        self.assertLessEqual(ics["second"]["state"]["terminated"]["finishedAt"],
                             cs["main"]["state"]["terminated"]["startedAt"])
        out = self.log("three", "main")
        self.assertIn("init-1\ninit-2\n", out)
        self.assertIn("written-by-init", out)
        self.assertEqual(self.log("three", "peer"), "from-main\n")

    def test_3_missing_image_waits_with_err_image_pull_and_delete_stops_the_vm(self):
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
        uid = obj["metadata"]["uid"]
        self.assertTrue(self.qemu_pids(uid), "no QEMU process for the pod")
        status, _, _ = self.d.request("DELETE", f"{PODS}/noimg?gracePeriodSeconds=0")
        self.assertEqual(status, 200)
        self.wait_removed("noimg")
        self.wait_vm_gone(uid)

    def test_4_always_restarts_a_succeeded_container_and_a_killed_vm_fails_the_pod(self):
        """Always restarts "main" although it exits 0, and the pod never ends
        by itself; "sleeper" keeps running.  Killing the pod's QEMU then
        fails the pod with a reason.  (The pod was created in setUpClass.)"""
        obj, cs = self.restarted("always")
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 0)
        self.assertEqual(cs["lastState"]["terminated"]["reason"], "Completed")
        self.assertEqual(obj["status"]["phase"], "Running")
        self.assertIn("running", self.statuses(obj)["sleeper"]["state"])
        self.assertGreaterEqual(self.log("always", "main").count("round"), 1)
        # a guest that dies under a running pod fails it
        uid = obj["metadata"]["uid"]
        pids = self.qemu_pids(uid)
        self.assertEqual(len(pids), 1)
        for pid in pids:
            os.kill(pid, 9)
        obj = self.wait_phase("always", ("Failed",), timeout=60)
        self.assertTrue(obj["status"].get("reason") or obj["status"].get("message"))
        self.assertIn("terminated", self.statuses(obj)["sleeper"]["state"])
        status, _, _ = self.d.request("DELETE", f"{PODS}/always?gracePeriodSeconds=0")
        self.assertEqual(status, 200)


# A pod without limits gets pod_default_memory: 192Mi is what "survivor"
# below asks for in all (128Mi + 64Mi), so the pool's first VM fits it.
POOL_CONFIG = 'vm_pool = 1\npod_default_memory = "192MiB"\n'


@unittest.skipUnless(os.path.exists(KIT), "no guest kit: run `make kit`")

class VmLifecycle(unittest.TestCase):
    """The warm pool, a daemon that dies under a running pod, then deleting
that pod (two VMs: the pod takes the pool's VM, the pool boots another; a
guest that dies is PodsInVms.test_4)."""

    def setUp(self):
        self.d = Daemon(vm=True, config=POOL_CONFIG).start(timeout=60)

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

    def qemu_pids(self, dom):
        out = os.popen("ps -eo pid,args").read().splitlines()
        return [int(l.split()[0]) for l in out if "qemu-system" in l and f"cocod-{dom}," in l]

    def pool_ready(self, d, timeout=180):
        """The pool VM ids whose agent said ready (after waiting for one)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ids = re.findall(r"agent ready pool_vm=(pool-[0-9a-f]+)", d.stderr())
            if ids:
                return ids
            time.sleep(0.2)
        self.fail("no pool VM became ready:\n" + d.stderr()[-3000:])

    def test_kill_9_of_cocod_adopts_the_running_vm_then_delete_stops_it(self):
        # the pool boots a VM before any pod exists
        first = self.pool_ready(self.d)[0]
        # "quitter" exits while no daemon listens: the restarted daemon
        # still learns its exit code and its last output; "main" keeps
        # printing, and its log keeps growing after the adoption
        body = pod("survivor", ["sh", "-c", "echo before; while :; do echo tick; sleep 1; done"],
                   terminationGracePeriodSeconds=3)
        body["spec"]["containers"].append(
            ctr("quitter", ["sh", "-c", "echo started; sleep 10; echo after; exit 4"]))
        self.create(self.d, body)

        def both_running(status, obj):
            cs = obj.get("status", {}).get("containerStatuses") or []
            return status == 200 and len(cs) == 2 and all("running" in c["state"] for c in cs)
        obj = self.wait(self.d, "survivor", both_running)
        uid = obj["metadata"]["uid"]
        # it ran in the pool's VM: no VM of its own, the pool's moved to it
        self.assertIn(f"pod VM from the warm pool uid={uid} pool_vm={first} ", self.d.stderr())
        self.assertFalse(self.qemu_pids(uid))
        with open(os.path.join(self.d.data_dir, "pods", uid, "domain")) as f:
            self.assertEqual(f.read(), first)
        self.assertFalse(os.path.exists(os.path.join(self.d.data_dir, "pool", first)))
        pids = self.qemu_pids(first)
        self.assertEqual(len(pids), 1)
        # the pool refills: a second VM, ready before the crash
        deadline = time.time() + 180
        while time.time() < deadline and len(self.pool_ready(self.d)) < 2:
            time.sleep(0.5)
        second = self.pool_ready(self.d)[1]
        self.assertEqual(len(self.qemu_pids(second)), 1)
        # and gets the last pod's image ahead of the next pod (verified in the guest)
        deadline = time.time() + 120
        line = f"image prefetched pool_vm={second} image=busybox"
        while time.time() < deadline and line not in self.d.stderr():
            time.sleep(0.5)
        self.assertIn(line, self.d.stderr())
        metrics = self.d.request("GET", "/metrics")[2].decode()
        for line in ("cocod_vm_pool_taken_total 1", "cocod_vm_pool_ready 1",
                     "cocod_vm_pool_booting 0"):
            self.assertIn(f"\n{line}\n", metrics)
        self.assertNotIn("cocod_pod_vms_booted_total", metrics)  # no pod booted its own
        self.d.proc.kill()
        self.d.proc.wait()
        self.d.log.close()
        time.sleep(14)  # the quitter exits now, with no daemon listening
        # the next daemon (no pool) adopts the pod's VM through pods/<uid>/domain
        # and destroys the pool VM that nobody took
        d2 = Daemon(data_dir=self.d.data_dir, vm=True).start(timeout=60)
        try:
            obj = self.wait(d2, "survivor", self.running, timeout=60)
            ticks = d2.request("GET", f"{PODS}/survivor/log?container=main")[2].count(b"tick")
            time.sleep(3)
            obj = d2.json("GET", f"{PODS}/survivor")[1]
            self.assertEqual(obj["status"]["phase"], "Running")
            self.assertEqual(self.qemu_pids(first), pids, "the VM was not adopted as it was")
            deadline = time.time() + 30
            while self.qemu_pids(second) and time.time() < deadline:
                time.sleep(0.5)
            self.assertFalse(self.qemu_pids(second), "an orphan pool VM outlived the crash")
            self.assertFalse(os.path.exists(os.path.join(self.d.data_dir, "pool", second)))
            status, _, out = d2.request("GET", f"{PODS}/survivor/log?container=main")
            self.assertIn(b"before", out)
            self.assertGreater(out.count(b"tick"), ticks, "the log stopped at the adoption")
            cs = {c["name"]: c for c in obj["status"]["containerStatuses"]}
            self.assertIn("running", cs["main"]["state"])
            self.assertEqual(cs["quitter"]["state"].get("terminated", {}).get("exitCode"), 4,
                             json.dumps(cs["quitter"]))
            status, _, out = d2.request("GET", f"{PODS}/survivor/log?container=quitter")
            self.assertIn(b"after", out)
            # deleting the running pod (graceful: SIGTERM, 3 s, then the
            # domain is destroyed) removes it and its VM
            status, _, _ = d2.request("DELETE", f"{PODS}/survivor")
            self.assertEqual(status, 200)
            self.wait(d2, "survivor", lambda s, o: s == 404, timeout=60)
            deadline = time.time() + 30
            while self.qemu_pids(first) and time.time() < deadline:
                time.sleep(0.5)
            self.assertFalse(self.qemu_pids(first), "the pod's VM outlived the pod")
        finally:
            d2.request("DELETE", f"{PODS}/survivor?gracePeriodSeconds=0")
            d2.stop()
