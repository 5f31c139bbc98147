"""The Kubernetes pod API end to end: create/get/list/delete in JSON and
YAML, validation errors with field paths, conflicts, limits, syntax errors
with line and column, init-data (the CoCo annotation checked, its digest
recorded, immutable), selectors, watches with resume and 410, scheduling
against capacity, events, restart persistence, and kubectl."""

import base64
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import COCOD, Daemon, DaemonTest

PODS = "/api/v1/namespaces/default/pods"


def pod(name, image="busybox", **spec):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}]}}
    body["spec"].update(spec)
    return body


def post(d, body, path=PODS, ctype="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    status, headers, out = d.request("POST", path, body=data, headers={"Content-Type": ctype})
    return status, json.loads(out) if out else None


class Crud(DaemonTest):
    def test_create_json_then_get_list_delete(self):
        status, obj = post(self.d, pod("web", labels=None) if False else pod("web"))
        self.assertEqual(status, 201, obj)
        meta = obj["metadata"]
        self.assertEqual(meta["namespace"], "default")
        self.assertRegex(meta["uid"], r"^[0-9a-f-]{36}$")
        self.assertTrue(meta["resourceVersion"].isdigit())
        self.assertTrue(meta["creationTimestamp"].endswith("Z"))
        self.assertEqual(obj["spec"]["restartPolicy"], "Always")
        self.assertEqual(obj["spec"]["runtimeClassName"], "cocod-sim")
        self.assertEqual(obj["status"]["phase"], "Pending")
        status, got = self.d.json("GET", PODS + "/web")
        self.assertEqual(status, 200)
        self.assertEqual(got["metadata"]["uid"], meta["uid"])
        status, lst = self.d.json("GET", PODS)
        self.assertEqual(lst["kind"], "PodList")
        self.assertEqual([p["metadata"]["name"] for p in lst["items"]], ["web"])
        status, all_ns = self.d.json("GET", "/api/v1/pods")
        self.assertEqual(len(all_ns["items"]), 1)
        status, deleted = self.d.json("DELETE", PODS + "/web")
        self.assertEqual(status, 200, deleted)
        status, gone = self.d.json("GET", PODS + "/web")
        self.assertEqual(status, 404)
        self.assertEqual(gone["reason"], "NotFound")

    def test_create_yaml_and_get_as_yaml(self):
        body = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: y1\n  labels:\n    app: web\n"
                "spec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    env:\n"
                "    - name: MODE\n      value: \"yes\"\n")
        status, obj = post(self.d, body, ctype="application/yaml")
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["spec"]["containers"][0]["env"][0]["value"], "yes")
        self.assertEqual(obj["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent")
        status, headers, text = self.d.request("GET", PODS + "/y1",
                                               headers={"Accept": "application/yaml"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/yaml")
        self.assertIn(b"name: y1", text)
        self.assertIn(b"app: web", text)

    def test_generate_name(self):
        body = pod("x")
        del body["metadata"]["name"]
        body["metadata"]["generateName"] = "job-"
        status, obj = post(self.d, body)
        self.assertEqual(status, 201, obj)
        self.assertRegex(obj["metadata"]["name"], r"^job-[a-z0-9]{5}$")

    def test_duplicate_name_is_409(self):
        self.assertEqual(post(self.d, pod("dup"))[0], 201)
        status, obj = post(self.d, pod("dup"))
        self.assertEqual(status, 409)
        self.assertEqual(obj["reason"], "AlreadyExists")

    def test_unknown_fields_are_preserved(self):
        body = pod("keep")
        body["spec"]["someFutureField"] = {"a": 1}
        body["metadata"]["annotations"] = {"note": "x"}
        status, obj = post(self.d, body)
        self.assertEqual(status, 201, obj)
        status, got = self.d.json("GET", PODS + "/keep")
        self.assertEqual(got["spec"]["someFutureField"], {"a": 1})

    def test_labels_may_change_spec_may_not(self):
        post(self.d, pod("m"))
        status, headers, out = self.d.request(
            "PATCH", PODS + "/m", body=json.dumps({"metadata": {"labels": {"tier": "gold"}}}),
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 200, out)
        self.assertEqual(json.loads(out)["metadata"]["labels"], {"tier": "gold"})
        status, headers, out = self.d.request(
            "PATCH", PODS + "/m", body=json.dumps({"spec": {"restartPolicy": "Never"}}),
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 422, out)
        self.assertEqual(json.loads(out)["reason"], "Invalid")
        status, got = self.d.json("GET", PODS + "/m")
        self.assertEqual(got["spec"]["restartPolicy"], "Always")
        # PUT with a stale resourceVersion is a conflict
        got["metadata"]["labels"] = {"tier": "silver"}
        stale = dict(got)
        stale["metadata"] = dict(got["metadata"], resourceVersion="1")
        status, headers, out = self.d.request("PUT", PODS + "/m", body=json.dumps(stale),
                                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 409, out)
        status, headers, out = self.d.request("PUT", PODS + "/m", body=json.dumps(got),
                                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, out)
        self.assertEqual(json.loads(out)["metadata"]["labels"], {"tier": "silver"})

    def test_dry_run_stores_nothing(self):
        status, obj = post(self.d, pod("dry"), path=PODS + "?dryRun=All")
        self.assertEqual(status, 201)
        self.assertEqual(self.d.request("GET", PODS + "/dry")[0], 404)


class Validation(DaemonTest):
    def causes(self, body):
        status, obj = post(self.d, body)
        self.assertEqual(status, 422, obj)
        self.assertEqual(obj["kind"], "Status")
        self.assertEqual(obj["reason"], "Invalid")
        return {c["field"]: c for c in obj["details"]["causes"]}, obj

    def test_missing_image_names_field_path(self):
        body = pod("v1")
        del body["spec"]["containers"][0]["image"]
        causes, obj = self.causes(body)
        self.assertEqual(causes["spec.containers[0].image"]["reason"], "FieldValueRequired")
        self.assertIn("spec.containers[0].image: Required value", obj["message"])

    def test_bad_names_and_duplicates_all_reported(self):
        body = pod("Bad_Name")
        body["spec"]["containers"].append({"name": "c", "image": "x"})
        body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
        causes, _ = self.causes(body)
        self.assertIn("metadata.name", causes)
        self.assertEqual(causes["spec.containers[1].name"]["reason"], "FieldValueDuplicate")
        self.assertIn("spec.containers[0].resources.limits[cpu]", " ".join(causes))

    def test_host_features_are_refused_as_unsupported(self):
        for spec, field in (({"hostNetwork": True}, "spec.hostNetwork"),
                            ({"hostPID": True}, "spec.hostPID"),
                            ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "spec.volumes[0]")):
            body = pod("h")
            body["spec"].update(spec)
            causes, obj = self.causes(body)
            match = [f for f in causes if f.startswith(field)]
            self.assertTrue(match, (field, causes))
            self.assertIn("not supported", obj["message"])
        body = pod("p")
        body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        causes, obj = self.causes(body)
        self.assertIn("spec.containers[0].securityContext.privileged", causes)

    def test_unknown_runtime_class_is_invalid_and_aliases_work(self):
        causes, _ = self.causes(pod("rc", runtimeClassName="kata-qemu-nope"))
        self.assertIn("spec.runtimeClassName", causes)
        status, obj = post(self.d, pod("alias", runtimeClassName="kata-qemu-coco-dev"))
        self.assertEqual(status, 201, obj)

    def test_syntax_errors_name_line_and_column(self):
        status, obj = post(self.d, '{"metadata": {"name": "x"},\n  "spec": }')
        self.assertEqual(status, 400)
        self.assertIn("line 2", obj["message"])
        status, obj = post(self.d, "metadata:\n  name: x\n spec: [", ctype="application/yaml")
        self.assertEqual(status, 400)
        self.assertRegex(obj["message"], r"line \d+, column \d+")

    def test_nesting_is_bounded(self):
        deep = '{"metadata":{"name":"d"},"spec":' + '{"a":' * 200 + "1" + "}" * 200 + "}"
        status, obj = post(self.d, deep)
        self.assertEqual(status, 400)
        self.assertIn("nesting", obj["message"])

    def test_wrong_kind_namespace_and_media_type(self):
        body = pod("k")
        body["kind"] = "Service"
        self.assertEqual(post(self.d, body)[0], 400)
        body = pod("n")
        body["metadata"]["namespace"] = "other"
        status, obj = post(self.d, body)
        self.assertEqual(status, 400)
        self.assertIn("namespace", obj["message"])
        status, obj = post(self.d, "<html/>", ctype="text/html")
        self.assertEqual(status, 415)

    def test_invalid_input_changes_nothing(self):
        rv = self.d.json("GET", PODS)[1]["metadata"]["resourceVersion"]
        body = pod("bad")
        del body["spec"]["containers"][0]["image"]
        self.causes(body)
        self.assertEqual(self.d.json("GET", PODS)[1]["metadata"]["resourceVersion"], rv)


INIT_ANN = "io.katacontainers.config.hypervisor.cc_init_data"
INIT_ANN_OLD = "io.katacontainers.config.runtime.cc_init_data"
DIGEST_ANN = "cocod.io/init-data-digest"
INIT_FIELD = f"metadata.annotations[{INIT_ANN}]"
INIT_TOML = (b'version = "0.1.0"\nalgorithm = "sha384"\n[data]\n"aa.toml" = \'\'\'\n'
             b'[token_configs.kbs]\nurl = "http://10.0.2.2:8443"\n\'\'\'\n')


def init_data(toml):
    """The annotation value, as CoCo's docs make it: gzip -c | base64 -w0."""
    return base64.b64encode(gzip.compress(toml)).decode()


def with_init(name, annotations):
    body = pod(name)
    body["metadata"]["annotations"] = annotations
    return body


class InitData(DaemonTest):
    def test_digest_is_recorded_where_users_see_it(self):
        want = "sha384:" + hashlib.sha384(INIT_TOML).hexdigest()
        status, obj = post(self.d, with_init("id1", {INIT_ANN: init_data(INIT_TOML),
                                                     DIGEST_ANN: "sha384:forged"}))
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["metadata"]["annotations"][DIGEST_ANN], want)
        self.assertEqual(obj["metadata"]["annotations"][INIT_ANN], init_data(INIT_TOML))
        status, got = self.d.json("GET", PODS + "/id1")
        self.assertEqual(got["metadata"]["annotations"][DIGEST_ANN], want)
        status, _, text = self.d.request("GET", PODS + "/id1",
                                         headers={"Accept": "application/yaml"})
        self.assertIn(f"{DIGEST_ANN}: {want}".encode(), text)
        # The older name works; with both, the hypervisor. one wins.
        sha256_toml = INIT_TOML.replace(b"sha384", b"sha256")
        status, obj = post(self.d, with_init("id2", {INIT_ANN_OLD: init_data(sha256_toml)}))
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["metadata"]["annotations"][DIGEST_ANN],
                         "sha256:" + hashlib.sha256(sha256_toml).hexdigest())
        status, obj = post(self.d, with_init("id3", {INIT_ANN: init_data(INIT_TOML),
                                                     INIT_ANN_OLD: init_data(sha256_toml)}))
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["metadata"]["annotations"][DIGEST_ANN], want)
        # Without init-data there is no digest, whatever the client sends.
        status, obj = post(self.d, with_init("id4", {DIGEST_ANN: want}))
        self.assertEqual(status, 201, obj)
        self.assertNotIn(DIGEST_ANN, obj["metadata"]["annotations"])

    def test_bad_init_data_is_422_naming_the_annotation_and_stores_nothing(self):
        gz = gzip.compress(INIT_TOML)
        bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
        cases = [
            ("bad base64", init_data(INIT_TOML)[:6] + "*" + init_data(INIT_TOML)[7:],
             "init-data is not standard base64: character 7 is '*'"),
            ("not gzip", base64.b64encode(INIT_TOML).decode(), "not valid gzip data"),
            ("truncated gzip", base64.b64encode(gz[:-5]).decode(),
             "the gzip data is truncated"),
            ("gzip bomb", base64.b64encode(bomb).decode(),
             "decompresses to more than 262144 bytes"),
            ("too large", init_data(INIT_TOML + b"#" * (256 << 10) + b"\n"),
             "decompresses to more than 262144 bytes"),
            ("bad TOML", init_data(b'version = "0.1.0"\nalgorithm = "sha384"\n[aa]\n'),
             "init-data: TOML not understood at line 3"),
            ("unsupported algorithm", init_data(INIT_TOML.replace(b"sha384", b"md5")),
             "init-data: algorithm md5 is not sha256, sha384 or sha512"),
            ("not UTF-8", init_data(b'version = "0.1.0"\n# \xff\n'),
             "init-data is not UTF-8 text (byte 20)"),
        ]
        rv = self.d.json("GET", PODS)[1]["metadata"]["resourceVersion"]
        for what, value, problem in cases:
            with self.subTest(what):
                status, obj = post(self.d, with_init("bad", {INIT_ANN: value}))
                self.assertEqual(status, 422, obj)
                self.assertEqual(obj["reason"], "Invalid")
                causes = {c["field"]: c for c in obj["details"]["causes"]}
                self.assertEqual(list(causes), [INIT_FIELD], obj)
                self.assertIn(problem, causes[INIT_FIELD]["message"])
                self.assertIn(f"{INIT_FIELD}: Invalid value: ", obj["message"])
                self.assertIn(problem, obj["message"])
                self.assertEqual(self.d.request("GET", PODS + "/bad")[0], 404)
        self.assertEqual(self.d.json("GET", PODS)[1]["metadata"]["resourceVersion"], rv)
        # The old name is checked the same way when it is the one in use.
        status, obj = post(self.d, with_init("bad", {INIT_ANN_OLD: "%%%"}))
        self.assertEqual(status, 422, obj)
        self.assertIn(f"metadata.annotations[{INIT_ANN_OLD}]", obj["message"])

    def test_init_data_may_not_change(self):
        other = init_data(INIT_TOML.replace(b"sha384", b"sha512"))
        status, created = post(self.d, with_init("im", {INIT_ANN: init_data(INIT_TOML),
                                                        "note": "1"}))
        self.assertEqual(status, 201, created)

        def patch(annotations):
            status, _, out = self.d.request(
                "PATCH", PODS + "/im",
                body=json.dumps({"metadata": {"annotations": annotations}}),
                headers={"Content-Type": "application/merge-patch+json"})
            return status, json.loads(out)

        for change in ({INIT_ANN: other}, {INIT_ANN: None}, {INIT_ANN_OLD: other}):
            with self.subTest(change=list(change.items())[0][0]):
                before = self.d.json("GET", PODS + "/im")[1]
                status, obj = patch(change)
                self.assertEqual(status, 422, obj)
                self.assertIn("field is immutable: init-data is fixed when the pod is created",
                              obj["message"])
                self.assertIn("metadata.annotations[io.katacontainers.config.", obj["message"])
                self.assertEqual(self.d.json("GET", PODS + "/im")[1], before)
        # Other annotations may change; the digest stays cocod's.
        status, obj = patch({"note": "2", DIGEST_ANN: "sha384:forged"})
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["metadata"]["annotations"]["note"], "2")
        self.assertEqual(obj["metadata"]["annotations"][DIGEST_ANN],
                         created["metadata"]["annotations"][DIGEST_ANN])
        # A PUT of what GET returned, minus the digest, is no change to it.
        got = self.d.json("GET", PODS + "/im")[1]
        del got["metadata"]["annotations"][DIGEST_ANN]
        status, _, out = self.d.request("PUT", PODS + "/im", body=json.dumps(got),
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, out)
        self.assertEqual(json.loads(out)["metadata"]["annotations"][DIGEST_ANN],
                         created["metadata"]["annotations"][DIGEST_ANN])


class Limits(DaemonTest):
    daemon_kw = {"config": 'max_body_bytes = "8KiB"\n'}

    def test_body_over_limit_is_413_and_nothing_stored(self):
        body = pod("big")
        body["metadata"]["annotations"] = {"x": "a" * 20000}
        status, obj = post(self.d, body)
        self.assertEqual(status, 413)
        self.assertEqual(self.d.request("GET", PODS + "/big")[0], 404)


class Selectors(DaemonTest):
    def test_label_and_field_selectors(self):
        for name, app in (("a", "web"), ("b", "db"), ("c", "web")):
            body = pod(name)
            body["metadata"]["labels"] = {"app": app}
            self.assertEqual(post(self.d, body)[0], 201)
        names = lambda q: [p["metadata"]["name"] for p in self.d.json("GET", PODS + q)[1]["items"]]
        self.assertEqual(names("?labelSelector=app%3Dweb"), ["a", "c"])
        self.assertEqual(names("?labelSelector=app+in+(db)"), ["b"])
        self.assertEqual(names("?labelSelector=app!%3Dweb"), ["b"])
        self.assertEqual(names("?fieldSelector=metadata.name%3Dc"), ["c"])
        status, obj = self.d.json("GET", PODS + "?fieldSelector=spec.secret%3Dx")
        self.assertEqual(status, 400)
        self.assertIn("field label not supported", obj["message"])
        status, obj = self.d.json("GET", PODS + "?labelSelector=app+in+web")
        self.assertEqual(status, 400)


def read_watch_lines(sock, n, timeout=10):
    """Reads `n` JSON lines from a chunked watch response on `sock`."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0], head
    body = b""
    events = []
    while len(events) < n:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return events, head
            buf += chunk
        size_line, rest = buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        body += rest[:size]
        buf = rest[size + 2:]
        if size == 0:
            break
        while b"\n" in body and len(events) < n:
            line, body = body.split(b"\n", 1)
            events.append(json.loads(line))
    return events, head


class Watch(DaemonTest):
    def open_watch(self, query):
        s = self.d.raw_socket()
        s.sendall(f"GET {PODS}?watch=1&{query} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {self.d.token()}\r\n\r\n".encode())
        return s

    def test_watch_sends_initial_state_then_live_changes(self):
        post(self.d, pod("w1"))
        s = self.open_watch("")
        events, _ = read_watch_lines(s, 1)
        self.assertEqual((events[0]["type"], events[0]["object"]["metadata"]["name"]), ("ADDED", "w1"))
        post(self.d, pod("w2"))
        self.d.request("DELETE", PODS + "/w1")
        events, _ = [], None
        got = []
        s.settimeout(10)
        buf = b""
        deadline = time.time() + 10
        while time.time() < deadline and not any(
                e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "w1" for e in got):
            buf += s.recv(65536)
            for line in buf.split(b"\n"):
                pass
            got = [json.loads(l[l.find(b"{"):]) for l in buf.split(b"\n") if b'"type"' in l]
        types = [(e["type"], e["object"]["metadata"]["name"]) for e in got]
        self.assertIn(("ADDED", "w2"), types)
        self.assertIn(("DELETED", "w1"), types)
        s.close()

    def test_resume_from_resource_version(self):
        status, a = post(self.d, pod("r1"))
        rv = a["metadata"]["resourceVersion"]
        post(self.d, pod("r2"))
        s = self.open_watch(f"resourceVersion={rv}")
        events, _ = read_watch_lines(s, 1)
        self.assertEqual(events[0]["object"]["metadata"]["name"], "r2")
        self.assertGreater(int(events[0]["object"]["metadata"]["resourceVersion"]), int(rv))
        s.close()

    def test_watch_timeout_ends_stream(self):
        s = self.open_watch("timeoutSeconds=1&resourceVersion=1")
        t0 = time.time()
        events, _ = read_watch_lines(s, 100, timeout=10)
        self.assertLess(time.time() - t0, 5)
        s.close()

    def test_label_selector_filters_watch(self):
        s = self.open_watch("labelSelector=app%3Dweb")
        body = pod("skip")
        post(self.d, body)
        body = pod("take")
        body["metadata"]["labels"] = {"app": "web"}
        post(self.d, body)
        events, _ = read_watch_lines(s, 1)
        self.assertEqual(events[0]["object"]["metadata"]["name"], "take")
        s.close()


class WatchGone(unittest.TestCase):
    def test_too_old_resource_version_is_410(self):
        d = Daemon().start()
        try:
            status, a = post(d, pod("g0"))
            d.stop()
            # trim the change log as a long history would
            subprocess.run(["sqlite3", os.path.join(d.data_dir, "cocod.db"),
                            "DELETE FROM changes WHERE rv < (SELECT MAX(rv) FROM changes)"],
                           check=True)
            d = Daemon(data_dir=d.data_dir).start()
            for i in range(3):
                post(d, pod(f"g{i + 1}"))
            status, obj = d.json("GET", PODS + "?watch=1&resourceVersion=1")
            self.assertEqual(status, 410)
            self.assertEqual(obj["reason"], "Expired")
        finally:
            d.own_dir = True
            d.cleanup()


class Scheduling(DaemonTest):
    daemon_kw = {"config": 'node_cpu = 2000\nnode_memory = "2GiB"\nreserved_memory = "0"\n'}

    def wait_for(self, name, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, obj = self.d.json("GET", PODS + "/" + name)
            if status == 200 and pred(obj):
                return obj
            time.sleep(0.05)
        self.fail(f"{name}: condition not reached: {obj}")

    def test_pod_too_big_is_unschedulable_with_message_until_capacity_frees(self):
        big = pod("big")
        big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1500m"}}
        huge = pod("huge")
        huge["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}}
        self.assertEqual(post(self.d, big)[0], 201)
        self.assertEqual(post(self.d, huge)[0], 201)
        def unschedulable(obj):
            conds = {c["type"]: c for c in obj["status"].get("conditions", [])}
            return conds.get("PodScheduled", {}).get("reason") == "Unschedulable"
        obj = self.wait_for("huge", unschedulable)
        msg = {c["type"]: c for c in obj["status"]["conditions"]}["PodScheduled"]["message"]
        self.assertIn("Insufficient cpu", msg)
        status, events = self.d.json("GET", "/api/v1/namespaces/default/events"
                                     "?fieldSelector=involvedObject.name%3Dhuge")
        self.assertIn("FailedScheduling", [e["reason"] for e in events["items"]])
        self.d.request("DELETE", PODS + "/big?gracePeriodSeconds=0")
        obj = self.wait_for("huge", lambda o: not unschedulable(o))
        conds = {c["type"]: c for c in obj["status"]["conditions"]}
        self.assertEqual(conds["PodScheduled"]["status"], "True")


class MissingTee(DaemonTest):
    def test_class_whose_tee_the_box_lacks_is_unschedulable(self):
        status, obj = post(self.d, pod("snp1", runtimeClassName="kata-qemu-snp"))
        self.assertEqual(status, 201, obj)
        deadline = time.time() + 10
        while time.time() < deadline:
            obj = self.d.json("GET", PODS + "/snp1")[1]
            conds = {c["type"]: c for c in obj["status"].get("conditions", [])}
            if conds.get("PodScheduled", {}).get("reason") == "Unschedulable":
                break
            time.sleep(0.05)
        self.assertEqual(conds["PodScheduled"]["status"], "False")
        self.assertIn("snp", conds["PodScheduled"]["message"])
        self.assertIn("lacks", conds["PodScheduled"]["message"])
        self.assertNotIn("nodeName", obj["spec"])


class Persistence(unittest.TestCase):
    def test_kill_9_and_restart_keep_pods_events_and_versions(self):
        d = Daemon().start()
        try:
            for n in ("p1", "p2"):
                self.assertEqual(post(d, pod(n))[0], 201)
            before = d.json("GET", PODS)[1]
            events_before = d.json("GET", "/api/v1/namespaces/default/events")[1]["items"]
            d.proc.kill()
            d.proc.wait()
            d.log.close()
            d2 = Daemon(data_dir=d.data_dir).start()
            after = d2.json("GET", PODS)[1]
            self.assertEqual([p["metadata"]["uid"] for p in after["items"]],
                             [p["metadata"]["uid"] for p in before["items"]])
            self.assertGreaterEqual(int(after["metadata"]["resourceVersion"]),
                                    int(before["metadata"]["resourceVersion"]))
            events_after = d2.json("GET", "/api/v1/namespaces/default/events")[1]["items"]
            self.assertGreaterEqual(len(events_after), len(events_before))
            status, obj = post(d2, pod("p3"))
            self.assertGreater(int(obj["metadata"]["resourceVersion"]),
                               int(after["metadata"]["resourceVersion"]))
            self.assertEqual(post(d2, pod("p1"))[0], 409)
            d2.stop()
        finally:
            d.own_dir = True
            d.cleanup()


class Kubectl(DaemonTest):
    def setUp(self):
        self.kubectl = shutil.which("kubectl")
        if not self.kubectl:
            self.skipTest("kubectl is not installed")
        super().setUp()

    def k(self, *args, input=None, check=True):
        out = subprocess.run([self.kubectl, "--kubeconfig",
                              os.path.join(self.d.data_dir, "kubeconfig"), *args],
                             capture_output=True, text=True, input=input, timeout=60)
        if check:
            self.assertEqual(out.returncode, 0, out.stderr)
        return out

    def test_create_get_describe_delete(self):
        manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kweb\n  labels:\n    app: web\n"
                    "spec:\n  containers:\n  - name: c\n    image: busybox\n")
        self.assertIn("pod/kweb created", self.k("create", "-f", "-", input=manifest).stdout)
        out = self.k("get", "pods").stdout
        self.assertRegex(out, r"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE")
        self.assertRegex(out, r"kweb\s+0/1\s+(Pending|ContainerCreating)")
        self.assertIn("NODE", self.k("get", "pods", "-o", "wide").stdout)
        obj = json.loads(self.k("get", "pod", "kweb", "-o", "json").stdout)
        self.assertEqual(obj["metadata"]["labels"], {"app": "web"})
        self.assertIn("name: kweb", self.k("get", "pod", "kweb", "-o", "yaml").stdout)
        desc = self.k("describe", "pod", "kweb").stdout
        self.assertIn("Name:", desc)
        self.assertIn("Events:", desc)
        out = self.k("create", "-f", "-", input=manifest, check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("AlreadyExists", out.stderr)
        self.assertIn('deleted', self.k("delete", "pod", "kweb", "--grace-period=0", "--force").stdout)
        self.assertIn("No resources found", self.k("get", "pods").stdout + self.k("get", "pods").stderr)

    def test_apply_twice_is_unchanged(self):
        manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app1\nspec:\n"
                    "  containers:\n  - name: c\n    image: busybox\n")
        self.assertIn("created", self.k("apply", "-f", "-", input=manifest).stdout)
        rv = self.d.json("GET", PODS + "/app1")[1]["metadata"]["resourceVersion"]
        self.assertIn("unchanged", self.k("apply", "-f", "-", input=manifest).stdout)
        self.assertEqual(self.d.json("GET", PODS + "/app1")[1]["metadata"]["resourceVersion"], rv)

    def test_validation_error_shows_field_path(self):
        manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n"
                    "  containers:\n  - name: c\n")
        out = self.k("create", "-f", "-", input=manifest, check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("spec.containers[0].image: Required value", out.stderr)

    def test_get_watch_prints_new_pods(self):
        kc = os.path.join(self.d.data_dir, "kubeconfig")
        proc = subprocess.Popen([self.kubectl, "--kubeconfig", kc, "get", "pods", "-w"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            post(self.d, pod("watched"))
            deadline = time.time() + 15
            seen = ""
            os.set_blocking(proc.stdout.fileno(), False)
            while time.time() < deadline and "watched" not in seen:
                try:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                except BlockingIOError:
                    chunk = b""
                seen += chunk.decode(errors="replace")
                time.sleep(0.1)
            self.assertIn("watched", seen)
        finally:
            proc.terminate()
            proc.wait(10)
