"""Boots a REAL pod VM (TCG here) through the library, without the daemon:
tests/integration/vmboot.c is compiled against build/libcocod.a and driven
with a temporary data directory (its own libvirt embed root).  One boot,
test_pod_boots_runs_and_powers_off, checks the whole stack underneath the
daemon: accelerator probe, domain XML, libvirt's embedded driver (qemu.conf
written by cocod), the agent channel and the agent's `ready`,
create_sandbox, the default busybox image streamed into the guest, a
container that echoes, its logs read back, then destroy_sandbox → the
guest powers off by itself and the domain is gone.

Skips (with the reason) when the guest kit (build/kit/kit.json, `make kit`),
the library (build/libcocod.a, `make`) or QEMU is missing.  Standard
library only."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the kit and library of the cocod under test (run.py --cocod), as cocod
# itself finds its kit beside its binary
BUILD = os.path.dirname(os.path.abspath(os.environ.get("COCOD_BIN", os.path.join(ROOT, "build/cocod"))))
KIT = os.path.abspath(os.environ.get("COCOD_KIT", os.path.join(BUILD, "kit")))
LIB = os.path.abspath(os.environ.get("COCOD_LIB", os.path.join(BUILD, "libcocod.a")))
PKGS = "libuv openssl sqlite3 lua5.4 libvirt jansson jose yaml-0.1 zlib"


def skip_reason():
    if not os.path.exists(os.path.join(KIT, "kit.json")):
        return f"no guest kit at {KIT}/kit.json: build it with `make kit`"
    if not os.path.exists(LIB):
        return f"no {LIB}: run `make` first"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    return None


def build_vmboot(outdir):
    exe = os.path.join(outdir, "vmboot")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs"] + PKGS.split(),
                           capture_output=True, text=True, check=True).stdout.split()
    cmd = ["cc", "-std=gnu11", "-O1", "-g", "-D_GNU_SOURCE", "-iquote", "core",
           "-iquote", "tee", "-o", exe, "tests/integration/vmboot.c", LIB] + flags + [
           "-lhttp_parser", "-lm"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("building vmboot failed:\n" + r.stderr)
    return exe


class VM(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = skip_reason()
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="cocod-vm-")
        cls.exe = build_vmboot(cls.tmp)
        cls.data = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_vmboot(self, *args, timeout=240):
        t0 = time.monotonic()
        with open(os.path.join(self.tmp, "stderr.log"), "ab") as err:
            r = subprocess.run([self.exe, *args], stdout=subprocess.PIPE, stderr=err,
                               stdin=subprocess.DEVNULL, timeout=timeout)
        elapsed = time.monotonic() - t0
        events = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
        ctx = "\n".join(json.dumps(e) for e in events) + "\n--- stderr tail:\n" + self.stderr_tail()
        self.assertEqual(r.returncode, 0, ctx)
        print(f"\n  vmboot {args[0]}: {elapsed:.1f}s", flush=True)
        return events, ctx

    def stderr_tail(self, whole=False):
        try:
            with open(os.path.join(self.tmp, "stderr.log"), "rb") as f:
                data = f.read()
                return (data if whole else data[-3000:]).decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def first(events, name):
        for e in events:
            if e.get("event") == name:
                return e
        return None

    def test_pod_boots_runs_and_powers_off(self):
        uid = "5e0c1a9e-0000-4000-8000-0000000000a1"
        pod = {"metadata": {"uid": uid, "name": "echo", "namespace": "default"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "main", "image": "busybox",
                   "command": ["sh", "-c", "echo hello from pod; echo to-stderr >&2"]}]}}
        path = os.path.join(self.tmp, "pod.json")
        with open(path, "w") as f:
            json.dump(pod, f)
        events, ctx = self.run_vmboot("pod", self.data, KIT, path)
        log = self.stderr_tail(whole=True)
        # the launcher: accelerator probe, qemu.conf for the embedded driver
        started = self.first(events, "started")
        self.assertIn(started["accel"], ("kvm", "tcg"), ctx)
        want = os.environ.get("COCOD_EXPECT_ACCEL")
        if want:
            self.assertEqual(started["accel"], want, ctx)
        with open(os.path.join(self.data, "libvirt/etc/qemu.conf")) as f:
            conf = f.read()
        for line in ('user = "root"', 'group = "root"', "remember_owner = 0",
                     'stdio_handler = "file"', 'security_driver = "none"'):
            self.assertIn(line, conf)
        # the agent said `ready` (with its kernel) and took create_sandbox
        self.assertRegex(log, rf"agent ready uid={uid} version=\S+ kernel=\S+", ctx)
        self.assertIn(f"pod VM ready uid={uid}", log, ctx)
        # the pod controller ran the container in the domain
        reasons = [e["reason"] for e in events if e.get("event") == "k8s"]
        for r in ("Scheduled", "Pulling", "Pulled", "Created", "Started"):
            self.assertIn(r, reasons, ctx)
        self.assertEqual(self.first(events, "domain")["exists"], 1, ctx)
        final = self.first(events, "final")["status"]
        self.assertEqual(final["phase"], "Succeeded", ctx)
        term = final["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((term["exitCode"], term["reason"]), (0, "Completed"), ctx)
        # stdout and stderr travel as separate log frames: compare as sets
        text = self.first(events, "logs")["text"]
        self.assertEqual(sorted(text.splitlines()), ["hello from pod", "to-stderr"], ctx)
        with open(os.path.join(self.data, "pods", uid, "main.log")) as f:
            lines = f.read().splitlines()
        self.assertEqual(sorted(l.split(" ", 3)[1:] for l in lines),
                         [["stderr", "F", "to-stderr"], ["stdout", "F", "hello from pod"]])
        # destroy_sandbox: the guest powered itself off (libvirt saw a
        # shutdown, not a destroy) and the domain is gone
        self.assertEqual(self.first(events, "removed")["exists"], 0, ctx)
        with open(os.path.join(self.data, "pods", uid, "console.log"), "rb") as f:
            console = f.read()
        self.assertIn(b"destroy_sandbox: stopping containers, powering off", console)
        self.assertIn(b"Power down", console)
        with open(os.path.join(self.data, "libvirt/log/qemu", f"cocod-{uid}.log")) as f:
            self.assertIn("shutting down, reason=shutdown", f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
