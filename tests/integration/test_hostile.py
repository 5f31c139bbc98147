"""A hostile guest against the real daemon: pod VMs boot a test-only kit
whose /init is a misbehaving agent (a busybox script appended to the real
kit's initramfs as a second cpio archive, so the same kernel and modules
boot).  It announces itself with a valid `ready`, reads the host's
create_sandbox and then, chosen by the pod's name, sends garbage, an
oversized frame or a flood of log frames.  Each pod must fail with a reason
naming what the guest did, its VM must be destroyed, and the daemon must
stay healthy.  Skips when build/kit (make kit) is missing."""

import hashlib
import json
import os
import shutil
import tempfile
import time
import unittest

from harness import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("COCOD_BIN", "build/cocod"))),
                   "kit")
PODS = "/api/v1/namespaces/default/pods"
MODULES = "virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console"

# The misbehaving agent.  Frames are a 4-byte big-endian length and JSON;
# `frame` writes one with the length spelled in octal escapes for printf.
HOSTILE_INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc 2>/dev/null || { mkdir -p /proc && mount -t proc proc /proc; }
mkdir -p /sys /dev /tmp
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko 2>/dev/null; done
port=
i=0
while [ -z "$port" ] && [ $i -lt 200 ]; do
	for f in /sys/class/virtio-ports/*/name; do
		[ "$(cat $f 2>/dev/null)" = io.cocod.agent ] && port=/dev/$(basename $(dirname $f))
	done
	[ -z "$port" ] && sleep 0.05
	i=$((i + 1))
done
[ -n "$port" ] || poweroff -f
len() {
	n=$1
	printf "\\$(printf %03o $((n >> 24 & 255)))\\$(printf %03o $((n >> 16 & 255)))"
	printf "\\$(printf %03o $((n >> 8 & 255)))\\$(printf %03o $((n & 255)))"
}
frame() { len ${#1}; printf '%s' "$1"; }
exec 3<>$port
frame '{"id":0,"type":"ready","body":{"version":"hostile","kernel":"x","boot_ms":1}}' >&3
mode=$(dd bs=65536 count=1 <&3 2>/dev/null | tr -c 'a-z-' '\n' | grep '^hostile-' | head -n 1)
echo "hostile agent: $mode" >/dev/ttyS0
case "$mode" in
hostile-garbage)
	len 24 >&3
	printf 'this is not JSON at all!' >&3
	;;
hostile-oversize)
	len 2147483647 >&3
	head -c 65536 /dev/zero >&3
	;;
hostile-flood)
	data=$(head -c 49152 /dev/zero | tr '\0' A)
	frame "{\"id\":0,\"type\":\"log\",\"body\":{\"name\":\"main\",\"stream\":\"stdout\",\"data_b64\":\"$data\"}}" >/tmp/f
	while :; do cat /tmp/f /tmp/f /tmp/f /tmp/f; done >&3
	;;
esac
sleep 3600
""".replace("MODULES", MODULES)


def newc(entries):
    """A newc cpio archive of (name, mode, data) entries plus its trailer."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nm = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + nm
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out + b"\0" * (-len(out) % 512))


def make_hostile_kit(dest):
    """The real kernel, the real initramfs plus /hostile, kit.json for them."""
    os.makedirs(dest)
    shutil.copy(os.path.join(KIT, "vmlinuz"), os.path.join(dest, "vmlinuz"))
    with open(os.path.join(KIT, "initramfs.img"), "rb") as f:
        initramfs = f.read()
    initramfs += b"\0" * (-len(initramfs) % 4)
    initramfs += newc([("hostile", 0o100755, HOSTILE_INIT.encode())])
    with open(os.path.join(dest, "initramfs.img"), "wb") as f:
        f.write(initramfs)
    with open(os.path.join(KIT, "kit.json")) as f:
        real = json.load(f)
    cmdline = " ".join(w for w in real["cmdline"].split() if not w.startswith("rdinit=")) + \
        " rdinit=/hostile"
    with open(os.path.join(dest, "vmlinuz"), "rb") as f:
        kh = hashlib.sha384(f.read()).digest()
    ih = hashlib.sha384(initramfs).digest()
    ch = hashlib.sha384(cmdline.encode()).digest()
    manifest = {"kernel_version": real.get("kernel_version", ""), "kernel_sha384": kh.hex(),
                "initramfs_sha384": ih.hex(), "cmdline": cmdline, "cmdline_sha384": ch.hex(),
                "measurement": hashlib.sha384(kh + ih + ch).hexdigest()}
    with open(os.path.join(dest, "kit.json"), "w") as f:
        json.dump(manifest, f)


def qemu_pids(uid):
    out = os.popen("ps -eo pid,args").read().splitlines()
    return [int(l.split()[0]) for l in out if "qemu-system" in l and uid in l]


@unittest.skipUnless(os.path.exists(os.path.join(KIT, "kit.json")), "no guest kit: run `make kit`")
class HostileGuest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cocod-hostile-kit-")
        kit = os.path.join(cls.tmp, "kit")
        make_hostile_kit(kit)
        cls.d = Daemon(vm=True, config=f'kit_dir = "{kit}"\n').start(timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_each_misbehaviour_fails_its_pod_and_the_daemon_stays_healthy(self):
        expect = {"hostile-garbage": "JSON", "hostile-oversize": "larger than 1 MiB",
                  "hostile-flood": "flood"}
        for name in expect:
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"restartPolicy": "Never",
                             "containers": [{"name": "main", "image": "busybox",
                                             "command": ["true"],
                                             "resources": {"limits": {"memory": "128Mi",
                                                                      "cpu": "500m"}}}]}}
            status, _, out = self.d.request("POST", PODS, body=json.dumps(body),
                                            headers={"Content-Type": "application/json"})
            self.assertEqual(status, 201, out)
        failed = {}
        deadline = time.time() + 300
        while len(failed) < len(expect) and time.time() < deadline:
            for name in expect:
                status, obj = self.d.json("GET", f"{PODS}/{name}")
                self.assertEqual(status, 200)
                if obj["status"].get("phase") == "Failed":
                    failed[name] = obj
            time.sleep(0.5)
        self.assertEqual(sorted(failed), sorted(expect),
                         f"not all hostile pods failed:\n{self.d.stderr()[-4000:]}")
        for name, word in expect.items():
            obj = failed[name]
            said = json.dumps(obj["status"])
            self.assertIn("hostile guest", said, said)
            self.assertIn(word, said, f"{name}: {said}")
            uid = obj["metadata"]["uid"]
            deadline = time.time() + 30
            while qemu_pids(uid) and time.time() < deadline:
                time.sleep(0.5)
            self.assertFalse(qemu_pids(uid), f"{name}: the hostile guest's VM still runs")
        # the daemon is healthy and still serves
        status, _, _ = self.d.request("GET", "/healthz", token=None)
        self.assertEqual(status, 200)
        status, obj = self.d.json("GET", PODS)
        self.assertEqual(status, 200)
        self.assertEqual(len(obj["items"]), 3)
        # the flood was cut off, not written to disk: what the pods left
        # (container logs pods/UID/NAME.log, consoles) stays small
        pod_bytes = 0
        for base, _, files in os.walk(os.path.join(self.d.data_dir, "pods")):
            pod_bytes += sum(os.path.getsize(os.path.join(base, f)) for f in files
                             if os.path.isfile(os.path.join(base, f)))
        self.assertLess(pod_bytes, 2 << 20)


if __name__ == "__main__":
    unittest.main()
