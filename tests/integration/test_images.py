"""The image store end to end: archives made offline with umoci and skopeo
(OCI archive, docker-archive, gzip'd) are imported with `cocod image
import` into a running daemon's data directory, listed through REST and
the CLI, inspected, removed through both; a malformed archive gives a
clear error and changes nothing.  The default busybox image is there from
the first start.  Skipped when skopeo or umoci is missing."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

from harness import COCOD, DaemonTest

IMAGES = "/apis/cocod.io/v1/images"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def run(*cmd, cwd=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"{cmd} failed: {out.stderr}")
    return out


class Archives:
    """Builds one OCI layout with umoci (busybox + a file) and exports it
    with skopeo; shared by every test of the class."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cocod-img-arch-")
        d = self.dir
        run("umoci", "init", "--layout", "img", cwd=d)
        run("umoci", "new", "--image", "img:latest", cwd=d)
        rootless = ["--rootless"] if os.geteuid() != 0 else []
        run("umoci", "unpack", *rootless, "--image", "img:latest", "bundle", cwd=d)
        root = os.path.join(d, "bundle", "rootfs")
        os.makedirs(os.path.join(root, "bin"), exist_ok=True)
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        os.symlink("busybox", os.path.join(root, "bin", "sh"))
        with open(os.path.join(root, "etc", "hello"), "w") as f:
            f.write("hello from an offline image\n")
        run("umoci", "repack", "--image", "img:latest", "bundle", cwd=d)
        run("umoci", "config", "--image", "img:latest", "--config.cmd", "cat",
            "--config.cmd", "/etc/hello", cwd=d)
        run("umoci", "gc", "--layout", "img", cwd=d)
        skopeo = ["skopeo", "--insecure-policy", "copy", "-q"]
        run(*skopeo, "oci:img:latest", "oci-archive:oci.tar:latest", cwd=d)
        run(*skopeo, "oci:img:latest", "docker-archive:docker.tar:local/demo:1.0", cwd=d)
        with open(os.path.join(d, "docker.tar"), "rb") as f, \
                gzip.open(os.path.join(d, "docker.tar.gz"), "wb") as g:
            g.write(f.read())
        with open(os.path.join(d, "bad.tar"), "wb") as f:
            data = open(os.path.join(d, "docker.tar"), "rb").read()
            f.write(data[:len(data) // 2])  # truncated mid-archive
        with open(os.path.join(d, "img", "index.json")) as f:
            self.oci_manifest = json.load(f)["manifests"][0]["digest"]

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(shutil.which("skopeo") and shutil.which("umoci") and os.path.exists(BUSYBOX),
                     "skopeo, umoci and busybox are needed to build test images offline")
class Images(DaemonTest):
    @classmethod
    def setUpClass(cls):
        cls.arch = Archives()

    @classmethod
    def tearDownClass(cls):
        cls.arch.cleanup()

    def cocod(self, *args):
        return subprocess.run([COCOD, "image", *args, "--data-dir", self.d.data_dir],
                              capture_output=True, text=True, timeout=60)

    def rest_refs(self):
        status, lst = self.d.json("GET", IMAGES)
        self.assertEqual(status, 200)
        self.assertEqual(lst["kind"], "ImageList")
        return {i["ref"]: i["digest"] for i in lst["items"]}

    def blob_files(self):
        return sorted(os.listdir(os.path.join(self.d.data_dir, "images", "blobs", "sha256")))

    def test_default_busybox_is_listed(self):
        refs = self.rest_refs()
        self.assertIn("docker.io/library/busybox:latest", refs)
        status, img = self.d.json("GET", f"{IMAGES}/busybox")
        self.assertEqual(status, 200, img)
        self.assertEqual(img["config"]["config"]["Cmd"], ["sh"])
        self.assertEqual(img["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip")

    def test_import_list_inspect_remove(self):
        out = self.cocod("import", self.arch.path("oci.tar"), "--name", "local/oci")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("imported docker.io/local/oci:latest " + self.arch.oci_manifest, out.stdout)
        out = self.cocod("import", self.arch.path("docker.tar"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("imported docker.io/local/demo:1.0 sha256:", out.stdout)
        # REST sees what the CLI wrote into the running daemon's store.
        refs = self.rest_refs()
        self.assertEqual(refs["docker.io/local/oci:latest"], self.arch.oci_manifest)
        self.assertIn("docker.io/local/demo:1.0", refs)
        # The CLI lists the same.
        out = self.cocod("ls")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertRegex(lines[0], r"^IMAGE\s+TAG\s+DIGEST\s+SIZE\s+IMPORTED$")
        names = {tuple(l.split()[:2]) for l in lines[1:]}
        self.assertIn(("docker.io/local/demo", "1.0"), names)
        self.assertIn(("docker.io/local/oci", "latest"), names)
        as_json = json.loads(self.cocod("ls", "-o", "json").stdout)
        self.assertEqual({i["ref"]: i["digest"] for i in as_json}, refs)
        # Details by path segments and by ?ref=; blob digests hold.
        status, img = self.d.json("GET", f"{IMAGES}/docker.io/local/demo:1.0")
        self.assertEqual(status, 200, img)
        q = urllib.parse.quote("local/demo:1.0", safe="")
        status, img2 = self.d.json("GET", f"{IMAGES}/x?ref={q}")
        self.assertEqual(img, img2)
        self.assertEqual(img["mediaType"], "application/vnd.oci.image.manifest.v1+json")
        blobs = os.path.join(self.d.data_dir, "images", "blobs", "sha256")
        for layer in img["layers"]:
            with open(os.path.join(blobs, layer["digest"][7:]), "rb") as f:
                self.assertEqual("sha256:" + hashlib.sha256(f.read()).hexdigest(), layer["digest"])
        self.assertEqual(img["config"]["config"]["Cmd"], ["cat", "/etc/hello"])
        # Remove one through the CLI and one through REST; blobs follow.
        before = self.blob_files()
        out = self.cocod("rm", "local/demo:1.0")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("removed docker.io/local/demo:1.0", out.stdout)
        status, res = self.d.json("DELETE", f"{IMAGES}?ref=" + urllib.parse.quote("local/oci", safe=""))
        self.assertEqual(status, 200, res)
        self.assertEqual(res["removed"][0]["ref"], "docker.io/local/oci:latest")
        after = self.blob_files()
        self.assertLess(len(after), len(before))
        self.assertEqual(set(self.rest_refs()), {"docker.io/library/busybox:latest"})
        status, st = self.d.json("GET", f"{IMAGES}/local/demo:1.0")
        self.assertEqual(status, 404)
        self.assertIn("cocod image import", st["message"])
        out = self.cocod("rm", "local/demo:1.0")
        self.assertEqual(out.returncode, 1)
        self.assertIn("not in the local image store", out.stderr)

    def test_gzip_archive_and_rest_upload(self):
        out = self.cocod("import", self.arch.path("docker.tar.gz"))
        self.assertEqual(out.returncode, 0, out.stderr)
        demo = self.rest_refs()["docker.io/local/demo:1.0"]
        self.cocod("rm", "local/demo:1.0")
        with open(self.arch.path("oci.tar"), "rb") as f:
            body = f.read()
        status, _, raw = self.d.request("POST", f"{IMAGES}?name=local/up", body=body,
                                        headers={"Content-Type": "application/x-tar"})
        self.assertEqual(status, 201, raw)
        items = json.loads(raw)["items"]
        self.assertEqual(items[0]["ref"], "docker.io/local/up:latest")
        self.assertEqual(items[0]["digest"], self.arch.oci_manifest)
        self.assertNotEqual(demo, "")
        # Bare OCI tags without ?name= are refused with the way out.
        status, _, raw = self.d.request("POST", IMAGES, body=body)
        self.assertEqual(status, 422)
        self.assertIn("--name", json.loads(raw)["message"])

    def test_malformed_archive_changes_nothing(self):
        before_refs, before_blobs = self.rest_refs(), self.blob_files()
        out = self.cocod("import", self.arch.path("bad.tar"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("truncated", out.stderr)
        self.assertTrue(out.stderr.startswith("cocod image import: import "), out.stderr)
        status, _, raw = self.d.request("POST", IMAGES, body=b"definitely not a tar archive" * 40)
        self.assertEqual(status, 422)
        self.assertIn("not a tar archive", json.loads(raw)["message"])
        self.assertEqual(self.rest_refs(), before_refs)
        self.assertEqual(self.blob_files(), before_blobs)
        tmp = os.path.join(self.d.data_dir, "images", "tmp")
        self.assertEqual(os.listdir(tmp), [])
        status, _, raw = self.d.request("GET", f"{IMAGES}/Bad:Ref")
        self.assertEqual(status, 422)
        self.assertIn("lowercase", json.loads(raw)["message"])
