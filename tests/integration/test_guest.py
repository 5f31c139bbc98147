"""The guest side of a pod VM, without the daemon: boots build/kit under
plain QEMU (TCG), speaks the agent protocol (docs/agent-protocol.md) over
the virtio-serial socket from Python, and checks what the guest agent does:
ready, init-data (refused when unparsable, else hashed and the digest
reported), image transfer with digest checks (base64 chunks and frame
payloads), containers with output and exit codes and a randomized address
space, an emptyDir shared by two containers, request validation, the
documented treatment of an oversized frame, and power-off.  One VM serves
all the protocol cases (they run in order).  Also: the kit builds to the
same bytes twice."""

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COCOD = os.environ.get("COCOD_BIN", os.path.join(ROOT, "build/cocod"))
KIT = os.environ.get("COCOD_KIT", os.path.join(os.path.dirname(COCOD), "kit"))
QEMU = shutil.which("qemu-system-x86_64")
BUSYBOX = "/bin/busybox"


# Init-data as a pod carries it (docs: README "Init-data"), with a non-ASCII
# character and CRLF so that the digest covers the exact bytes.
INIT_TOML = ('version = "0.1.0"\r\nalgorithm = "sha384"\n[data]\n"aa.toml" = \'\'\'\n'
             '[token_configs.kbs]\nurl = "http://10.0.2.2:8443"\n\'\'\'\n'
             '"policy.rego" = "package agent_policy # caf\u00e9"\n')


CLOCK_AHEAD = 300  # s: the time test_02 gives the guest, against the host's


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def busybox_image(cmd):
    """An OCI image (manifest, config, {digest: gzip layer}) holding the
    host's static busybox and a few applet links."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        fi = tarfile.TarInfo("bin/busybox")
        fi.size, fi.mode = len(data), 0o755
        t.addfile(fi, io.BytesIO(data))
        for name in ("sh", "echo", "cat", "sleep", "ls"):
            s = tarfile.TarInfo("bin/" + name)
            s.type, s.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(s)
    layer_tar = raw.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    return manifest, config, {sha256(layer): layer}


class Channel:
    """The host end of the agent channel: 4-byte big-endian length + JSON."""

    def __init__(self, path, timeout=60):
        end = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > end:
                    raise
                time.sleep(0.05)
        self.next_id = 1
        self.events = []
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, id_, type_, body):
        data = json.dumps({"id": id_, "type": type_, "body": body}).encode()
        self.send_raw(struct.pack(">I", len(data)) + data)

    def _read(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("agent channel closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=60):
        deadline = time.time() + timeout
        (n,) = struct.unpack(">I", self._read(4, deadline))
        return json.loads(self._read(n, deadline))

    def send_payload(self, id_, type_, body, payload):
        """A frame whose JSON announces `payload` raw bytes after it."""
        data = json.dumps({"id": id_, "type": type_, "body": body,
                           "payload": len(payload)}).encode()
        self.send_raw(struct.pack(">I", len(data) + len(payload)) + data + payload)

    def request(self, type_, body, timeout=120, payload=None):
        id_ = self.next_id
        self.next_id += 1
        if payload is None:
            self.send(id_, type_, body)
        else:
            self.send_payload(id_, type_, body, payload)
        deadline = time.time() + timeout
        while True:
            m = self.recv(max(0.1, deadline - time.time()))
            if m["type"] == "reply" and m["id"] == id_:
                return m["body"]
            self.events.append(m)

    def wait_event(self, pred, timeout=60):
        deadline = time.time() + timeout
        while True:
            for m in self.events:
                if pred(m):
                    self.events.remove(m)
                    return m
            self.events.append(self.recv(max(0.1, deadline - time.time())))

    def logs(self, name):
        return b"".join(base64.b64decode(m["body"]["data_b64"]) for m in self.events
                        if m["type"] == "log" and m["body"]["name"] == name)


class VM:
    def __init__(self, kit):
        self.dir = tempfile.mkdtemp(prefix="cocod-guest-")
        self.sock = os.path.join(self.dir, "agent.sock")
        self.console = os.path.join(self.dir, "console.log")
        with open(os.path.join(kit, "kit.json")) as f:
            cmdline = json.load(f)["cmdline"]
        args = [QEMU, "-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
                "-nodefaults", "-serial", "file:" + self.console,
                "-kernel", os.path.join(kit, "vmlinuz"),
                "-initrd", os.path.join(kit, "initramfs.img"), "-append", cmdline,
                "-device", "virtio-serial",
                "-chardev", f"socket,id=a,path={self.sock},server=on,wait=off",
                "-device", "virtserialport,chardev=a,name=io.cocod.agent"]
        self.t0 = time.time()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(QEMU and os.path.exists(os.path.join(KIT, "kit.json")),
                     "needs qemu-system-x86_64 and a built kit (make kit)")
class GuestAgent(unittest.TestCase):
    """One VM, cases in order (test_NN_...)."""

    @classmethod
    def setUpClass(cls):
        cls.vm = VM(KIT)
        cls.ch = Channel(cls.vm.sock)
        try:
            cls.ready = cls.ch.recv(timeout=120)
        except Exception:
            print(cls.vm.console_text())
            cls.vm.stop()
            raise
        cls.boot_s = time.time() - cls.vm.t0
        print(f"\n  guest: ready after {cls.boot_s:.2f}s wall, "
              f"guest boot_ms={cls.ready['body'].get('boot_ms')}", flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.vm.stop()

    def ok(self, type_, body, timeout=120):
        r = self.ch.request(type_, body, timeout)
        self.assertTrue(r.get("ok"), f"{type_}: {r} console:\n{self.vm.console_text()}")
        return r

    def push_image(self, ref, manifest, config, blobs, payload=False):
        """Sends the missing layers as base64 in the body, or (payload=True)
        as raw frame payloads."""
        r = self.ok("image_begin", {"ref": ref, "manifest": manifest.decode(),
                                    "config": config.decode(), "manifest_digest": sha256(manifest)})
        for d in r["missing"]:
            data = blobs[d]
            for off in range(0, len(data), 512 * 1024):
                chunk = data[off:off + 512 * 1024]
                last = off + len(chunk) == len(data)
                body = {"digest": d, "offset": off, "last": last}
                if not payload:
                    body["data_b64"] = base64.b64encode(chunk).decode()
                rr = self.ch.request("blob_chunk", body, payload=chunk if payload else None)
                if not rr.get("ok"):
                    return rr
        return {"ok": True, "missing": r["missing"]}

    def run_container(self, name, command, mounts=(), expect_ok=True):
        t0 = time.time()
        self.ok("create_container", {"name": name, "image": "busybox:latest",
                                     "command": list(command), "mounts": list(mounts)})
        r = self.ok("start_container", {"name": name})
        self.assertGreater(r["pid"], 1)
        self.ch.wait_event(lambda m: m["type"] == "container_started" and
                           m["body"]["name"] == name)
        ex = self.ch.wait_event(lambda m: m["type"] == "container_exited" and
                                m["body"]["name"] == name, timeout=120)
        print(f"  guest: container {name} create->exited {time.time() - t0:.2f}s", flush=True)
        return ex["body"]

    def test_01_ready(self):
        self.assertEqual(self.ready["type"], "ready")
        self.assertEqual(self.ready["id"], 0)
        self.assertIn("cloud-amd64", self.ready["body"]["kernel"])

    def test_01a_warm_up_before_the_sandbox(self):
        # a throwaway container (a warm pool VM's idle time): crun runs, exits 0
        self.ok("warm_up", {})
        deadline = time.time() + 60
        while time.time() < deadline and "warm-up done" not in self.vm.console_text():
            time.sleep(0.2)
        self.assertRegex(self.vm.console_text(), r"warm-up done ms=\d+ status=0\b")
        self.ok("warm_up", {})  # once: asked again, nothing more happens
        self.assertEqual(self.vm.console_text().count("warm-up done"), 1)

    def test_02_sandbox_and_image(self):
        sandbox = {"uid": "u1", "name": "p1", "namespace": "default", "hostname": "p1",
                   "volumes": [{"name": "shared", "medium": ""}]}
        # Init-data the agent cannot parse is refused, and leaves no sandbox.
        r = self.ch.request("create_sandbox", dict(sandbox, init_data='version = "0.1.0"\n'
                                                   'algorithm = "md5"\n'))
        self.assertFalse(r["ok"])
        self.assertIn("init-data: algorithm md5 is not sha256, sha384 or sha512", r["error"])
        # The agent hashes what it was sent and says so; the guest's clock
        # is set from the host's time (here 300 s ahead: test_04 reads it).
        r = self.ok("create_sandbox", dict(sandbox, init_data=INIT_TOML,
                                           time_ns=time.time_ns() + CLOCK_AHEAD * 10**9))
        r2 = self.ch.request("warm_up", {})  # only before the pod's own containers
        self.assertFalse(r2["ok"])
        self.assertIn("only before create_sandbox", r2["error"])
        self.assertEqual(r["init_data_digest"],
                         "sha384:" + hashlib.sha384(INIT_TOML.encode()).hexdigest())
        t0 = time.time()
        m, c, blobs = busybox_image(["sh", "-c", "echo from-image-cmd"])
        r = self.push_image("busybox:latest", m, c, blobs)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["missing"], list(blobs))
        print(f"  guest: image transfer+unpack {time.time() - t0:.2f}s "
              f"({sum(map(len, blobs.values()))} bytes)", flush=True)
        # Announced again: nothing missing.
        r = self.ok("image_begin", {"ref": "busybox:latest", "manifest": m.decode(),
                                    "config": c.decode(), "manifest_digest": sha256(m)})
        self.assertEqual(r["missing"], [])

    def test_02a_layers_as_frame_payloads(self):
        self.assertIn("payload", self.ready["body"].get("features", []))
        m, c, blobs = busybox_image(["sh", "-c", "echo via-payload"])
        (digest, good), = blobs.items()
        r = self.push_image("evil:payload", m, c, {digest: good[:-8] + b"\0" * 8}, payload=True)
        self.assertFalse(r["ok"])
        self.assertIn("digest mismatch", r["error"])
        r = self.push_image("busybox:payload", m, c, blobs, payload=True)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["missing"], [digest])
        r = self.ok("image_begin", {"ref": "busybox:payload", "manifest": m.decode(),
                                    "config": c.decode(), "manifest_digest": sha256(m)})
        self.assertEqual(r["missing"], [])
        # Only blob_chunk takes a payload.
        r = self.ch.request("signal", {"name": "nope", "signal": 15}, payload=b"x")
        self.assertFalse(r["ok"])
        self.assertIn("takes no payload", r["error"])

    def test_03_wrong_digest_refused(self):
        m, c, blobs = busybox_image(["sh", "-c", "echo evil"])
        (digest, good), = blobs.items()
        evil = {digest: good[:-8] + b"\0" * 8}  # same size, other bytes
        r = self.push_image("evil:1", m, c, evil)
        self.assertFalse(r["ok"])
        self.assertIn("digest mismatch", r["error"])
        r = self.ch.request("create_container", {"name": "evil", "image": "evil:1",
                                                 "command": ["sh"]})
        self.assertFalse(r["ok"])
        self.assertIn("not in the guest", r["error"])
        # A manifest that does not match its announced digest is refused too.
        r = self.ch.request("image_begin", {"ref": "x", "manifest": m.decode() + " ",
                                            "config": c.decode(), "manifest_digest": sha256(m)})
        self.assertFalse(r["ok"])
        self.assertIn("manifest: digest mismatch", r["error"])

    def test_04_echo_exit_0(self):
        ex = self.run_container("echo", ["sh", "-c", "echo hello-from-guest; echo $FROM_IMAGE; "
                                                     "date +%s"])
        self.assertEqual(ex["exit_code"], 0)
        self.assertEqual(ex["reason"], "Completed")
        out = self.ch.logs("echo").split(b"\n")
        self.assertEqual(out[:2], [b"hello-from-guest", b"yes"])
        # the clock create_sandbox set (whole seconds: the RTC alone could be 1 s off)
        self.assertAlmostEqual(int(out[2]), time.time() + CLOCK_AHEAD, delta=3)

    def test_05_exit_code_3(self):
        ex = self.run_container("three", ["sh", "-c", "echo bye >&2; exit 3"])
        self.assertEqual(ex["exit_code"], 3)
        self.assertEqual(ex["reason"], "Error")
        self.assertEqual(self.ch.logs("three"), b"bye\n")

    def test_05a_workload_keeps_address_space_randomization(self):
        # crun itself runs with ADDR_NO_RANDOMIZE (faster under TCG); the
        # container's processes must not inherit it.
        ex = self.run_container("pers", ["sh", "-c", "cat /proc/self/personality /proc/1/personality;"
                                         " cat /proc/sys/kernel/randomize_va_space"])
        self.assertEqual(ex["exit_code"], 0)
        self.assertEqual(self.ch.logs("pers").split(), [b"00000000", b"00000000", b"2"])

    def test_06_emptydir_shared(self):
        mnt = [{"volume": "shared", "path": "/data", "read_only": False}]
        ex = self.run_container("writer", ["sh", "-c", "echo shared-$((6*7)) > /data/f"], mnt)
        self.assertEqual(ex["exit_code"], 0)
        ex = self.run_container("reader", ["cat", "/data/f"], mnt)
        self.assertEqual(ex["exit_code"], 0)
        self.assertEqual(self.ch.logs("reader"), b"shared-42\n")

    def test_07_bad_requests(self):
        r = self.ch.request("no_such_request", {})
        self.assertFalse(r["ok"])
        self.assertIn("unknown request type", r["error"])
        r = self.ch.request("create_container", {"image": "busybox:latest"})
        self.assertFalse(r["ok"])
        r = self.ch.request("blob_chunk", {"digest": "sha256:" + "0" * 64, "offset": 0,
                                           "data_b64": "AAAA", "last": True})
        self.assertFalse(r["ok"])
        self.assertIn("not announced", r["error"])
        r = self.ch.request("create_container", {"name": "../x", "image": "busybox:latest"})
        self.assertFalse(r["ok"])
        r = self.ch.request("exec", {"name": "echo", "command": ["sh"]})
        self.assertFalse(r["ok"])

    def test_08_oversized_frame(self):
        # Documented in tee/agent.h: error reply with id 0, the rest of the
        # connection is ignored, a new connection gets a fresh `ready`.
        self.ch.send_raw(struct.pack(">I", 2 << 20) + b"x" * 4096)
        m = self.ch.recv(timeout=30)
        self.assertEqual((m["id"], m["type"], m["body"]["ok"]), (0, "reply", False))
        self.assertIn("larger than 1 MiB", m["body"]["error"])
        self.ch.close()
        time.sleep(0.5)
        type(self).ch = Channel(self.vm.sock)
        m = self.ch.recv(timeout=30)
        self.assertEqual(m["type"], "ready")
        r = self.ch.request("create_sandbox", {"uid": "u1", "name": "p1", "namespace": "d"})
        self.assertFalse(r["ok"])  # same agent, same state
        self.assertIn("exists", r["error"])

    def test_09_destroy_powers_off(self):
        self.ok("create_container", {"name": "sleeper", "image": "busybox:latest",
                                     "command": ["sleep", "600"]})
        self.ok("start_container", {"name": "sleeper"})
        r = self.ch.request("signal", {"name": "sleeper", "signal": 99})
        self.assertFalse(r["ok"])
        t0 = time.time()
        self.ok("destroy_sandbox", {})
        rc = self.vm.proc.wait(timeout=60)
        print(f"  guest: destroy_sandbox -> QEMU exit {time.time() - t0:.2f}s", flush=True)
        self.assertEqual(rc, 0)


class GuestKitReproducible(unittest.TestCase):
    def test_guest_kit_two_builds_identical(self):
        if not os.path.exists(COCOD):
            self.skipTest("no cocod binary")
        outs = []
        with tempfile.TemporaryDirectory() as d:
            for i in range(2):
                out = os.path.join(d, f"kit{i}")
                subprocess.run([os.path.join(ROOT, "packaging/guest-kit.sh"), "--cocod", COCOD,
                                "--out", out, "--cache", os.path.join(ROOT, "build/kit-cache")],
                               check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
                outs.append({f: open(os.path.join(out, f), "rb").read()
                             for f in ("vmlinuz", "initramfs.img", "kit.json")})
            self.assertEqual(outs[0]["kit.json"], outs[1]["kit.json"])
            for f in ("vmlinuz", "initramfs.img"):
                self.assertEqual(hashlib.sha384(outs[0][f]).hexdigest(),
                                 hashlib.sha384(outs[1][f]).hexdigest(), f)
            kit = json.loads(outs[0]["kit.json"])
            self.assertEqual(kit["initramfs_sha384"],
                             hashlib.sha384(outs[0]["initramfs.img"]).hexdigest())
            k, i, c = (bytes.fromhex(kit[x]) for x in
                       ("kernel_sha384", "initramfs_sha384", "cmdline_sha384"))
            self.assertEqual(kit["measurement"], hashlib.sha384(k + i + c).hexdigest())
            shown = subprocess.run([COCOD, "kit", "show", "--kit", os.path.join(d, "kit0"),
                                    "--json"], check=True, capture_output=True, text=True)
            self.assertEqual(json.loads(shown.stdout)["measurement"], kit["measurement"])


if __name__ == "__main__":
    unittest.main()
