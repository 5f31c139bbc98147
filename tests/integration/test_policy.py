"""Policies end to end: versions, validation before activation, rollback,
admission denials and mutations through the API and kubectl, fail-closed
errors, runaway policies, the decision log, metrics, and the CLI."""

import json
import os
import shutil
import subprocess
import tempfile

from harness import COCOD, DaemonTest

PODS = "/api/v1/namespaces/default/pods"
POLICIES = "/apis/cocod.io/v1/policies"

DENY_LABELED = '''
function admit(pod, request)
  local labels = pod.metadata.labels or {}
  if labels.deny == "yes" then
    return {allow = false, reason = "pods labelled deny=yes are refused here"}
  end
  return {allow = true}
end

tests = {
  {name = "plain pod passes", input = {{metadata = {name = "a"}}, {operation = "CREATE"}},
   expect = {allow = true}},
  {name = "labelled pod is refused",
   input = {{metadata = {name = "b", labels = {deny = "yes"}}}, {operation = "CREATE"}},
   expect = {allow = false}},
}
'''


def pod(name, labels=None):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    if labels:
        body["metadata"]["labels"] = labels
    return body


class Policies(DaemonTest):
    def put_policy(self, hook, source):
        status, _, out = self.d.request("PUT", f"{POLICIES}/{hook}", body=source,
                                        headers={"Content-Type": "text/x-lua"})
        return status, json.loads(out)

    def create(self, body):
        status, _, out = self.d.request("POST", PODS, body=json.dumps(body),
                                        headers={"Content-Type": "application/json"})
        return status, json.loads(out)

    def test_default_policies_are_version_1_and_readable(self):
        status, lst = self.d.json("GET", POLICIES)
        self.assertEqual(status, 200)
        self.assertEqual({p["hook"]: p["activeVersion"] for p in lst["items"]},
                         {"admission": 1, "attestation": 1, "resource": 1, "agent": 1})
        status, headers, src = self.d.request("GET", f"{POLICIES}/admission?format=raw")
        self.assertEqual(status, 200)
        self.assertIn(b"function admit", src)
        status, obj = self.d.json("GET", f"{POLICIES}/appraise")  # function name works too
        self.assertEqual(obj["hook"], "attestation")
        self.assertEqual(self.d.json("GET", f"{POLICIES}/nope")[0], 404)
        self.assertEqual(self.d.request("GET", POLICIES, token=None)[0], 401)

    def test_denial_is_403_with_reason_and_version_then_rollback(self):
        status, obj = self.put_policy("admission", DENY_LABELED)
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["version"], 2)
        self.assertEqual(obj["tests"]["passed"], 2)
        status, obj = self.create(pod("bad", {"deny": "yes"}))
        self.assertEqual(status, 403, obj)
        self.assertEqual(obj["reason"], "Forbidden")
        self.assertIn("deny=yes are refused", obj["message"])
        self.assertIn("admission", obj["message"])
        self.assertIn("2", obj["message"])
        self.assertEqual(self.d.request("GET", PODS + "/bad")[0], 404)
        self.assertEqual(self.create(pod("good"))[0], 201)
        status, dec = self.d.json("GET", "/apis/cocod.io/v1/decisions?hook=admission&subject=default/bad")
        self.assertEqual(dec["items"][0]["verdict"], "deny")
        self.assertEqual(dec["items"][0]["policyVersion"], 2)
        self.assertEqual(len(dec["items"][0]["inputSha256"]), 64)
        status, obj = self.d.json("POST", f"{POLICIES}/admission/rollback?version=1")
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["activeVersion"], 1)
        self.assertEqual(self.create(pod("bad", {"deny": "yes"}))[0], 201)
        status, vers = self.d.json("GET", f"{POLICIES}/admission/versions")
        self.assertEqual([v["version"] for v in vers["items"]], [2, 1])
        self.assertEqual([v["active"] for v in vers["items"]], [False, True])

    def test_invalid_policies_are_refused_and_nothing_changes(self):
        cases = [
            ("function admit(pod, request)\n  return {allow = true\nend\n", "admission.lua:3"),
            ("function not_admit() return {allow = true} end\n", "admit"),
            (DENY_LABELED.replace('expect = {allow = false}', 'expect = {allow = true}'),
             "labelled pod is refused"),
        ]
        for source, needle in cases:
            status, obj = self.put_policy("admission", source)
            self.assertEqual(status, 422, obj)
            self.assertIn(needle, json.dumps(obj))
        status, lst = self.d.json("GET", f"{POLICIES}/admission/versions")
        self.assertEqual(len(lst["items"]), 1)
        self.assertEqual(self.create(pod("still-fine"))[0], 201)

    def test_failing_policy_denies_with_line_and_is_counted(self):
        source = ("function admit(pod, request)\n"
                  "  if pod.metadata.name == 'boom' then error('exploded') end\n"
                  "  return {allow = true}\nend\n")
        self.assertEqual(self.put_policy("admission", source)[0], 200)
        status, obj = self.create(pod("boom"))
        self.assertEqual(status, 403)
        self.assertIn("exploded", obj["message"])
        self.assertIn(":2", obj["message"])
        text = self.d.request("GET", "/metrics")[2].decode()
        self.assertIn('cocod_policy_decisions_total{hook="admission",verdict="error"} 1', text)

    def test_runaway_policy_is_stopped_and_daemon_stays_healthy(self):
        source = ("function admit(pod, request)\n"
                  "  if pod.metadata.name == 'spin' then while true do end end\n"
                  "  return {allow = true}\nend\n")
        self.assertEqual(self.put_policy("admission", source)[0], 200)
        status, obj = self.create(pod("spin"))
        self.assertEqual(status, 403)
        self.assertRegex(obj["message"], r"instruction|time")
        self.assertEqual(self.d.request("GET", "/healthz", token=None)[0], 200)
        self.assertEqual(self.create(pod("calm"))[0], 201)

    def test_mutation_is_applied_and_validated(self):
        source = ('function admit(pod, request)\n'
                  '  pod.metadata.labels = pod.metadata.labels or {}\n'
                  '  pod.metadata.labels.team = "edge"\n'
                  '  if pod.metadata.name == "breakit" then pod.spec.containers[1].image = nil end\n'
                  '  return {allow = true, pod = pod}\nend\n')
        self.assertEqual(self.put_policy("admission", source)[0], 200)
        status, obj = self.create(pod("mutant"))
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["metadata"]["labels"], {"team": "edge"})
        status, obj = self.create(pod("breakit"))
        self.assertEqual(status, 422, obj)
        self.assertIn("spec.containers[0].image", json.dumps(obj))

    def test_update_denial_records_an_event_on_the_pod(self):
        self.assertEqual(self.create(pod("upd"))[0], 201)
        self.assertEqual(self.put_policy("admission", DENY_LABELED)[0], 200)
        status, _, out = self.d.request(
            "PATCH", PODS + "/upd", body=json.dumps({"metadata": {"labels": {"deny": "yes"}}}),
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 403, out)
        status, evs = self.d.json("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dupd")
        self.assertIn("FailedAdmission", [e["reason"] for e in evs["items"]])

    def test_kubectl_shows_the_policy_reason(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl is not installed")
        self.assertEqual(self.put_policy("admission", DENY_LABELED)[0], 200)
        manifest = json.dumps(pod("kbad", {"deny": "yes"}))
        out = subprocess.run([kubectl, "--kubeconfig", os.path.join(self.d.data_dir, "kubeconfig"),
                              "create", "-f", "-"], input=manifest, capture_output=True, text=True,
                             timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("deny=yes are refused", out.stderr)


class PolicyCli(DaemonTest):
    def cocod(self, *args, input=None, data_dir=True):
        extra = ["--data-dir", self.d.data_dir] if data_dir else []
        return subprocess.run([COCOD, "policy", *args, *extra], capture_output=True, text=True,
                              input=input, timeout=30)

    def test_test_set_get_versions_rollback_decisions(self):
        path = os.path.join(self.d.data_dir, "deny.lua")
        with open(path, "w") as f:
            f.write(DENY_LABELED)
        out = self.cocod("test", "admission", path, data_dir=False)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("2 passed, 0 failed", out.stdout)
        bad = os.path.join(self.d.data_dir, "bad.lua")
        with open(bad, "w") as f:
            f.write(DENY_LABELED.replace('expect = {allow = false}', 'expect = {allow = true}'))
        out = self.cocod("test", "admission", bad, data_dir=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("1 passed, 1 failed", out.stdout)
        out = self.cocod("set", "admission", bad)
        self.assertEqual(out.returncode, 1)
        out = self.cocod("set", "admission", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("version 2 is active", out.stdout)
        self.assertIn("deny=yes", self.cocod("get", "admission").stdout)
        self.assertIn("function admit", self.cocod("get", "admission", "--version", "1").stdout)
        versions = self.cocod("versions", "admission").stdout
        self.assertRegex(versions, r"2\s+\*")
        out = self.cocod("rollback", "admission", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("version 1 is active", out.stdout)
        self.d.request("POST", PODS, body=json.dumps(pod("x1")), headers={"Content-Type": "application/json"})
        dec = self.cocod("decisions", "admission").stdout
        self.assertIn("default/x1", dec)
        self.assertEqual(self.cocod("get", "nonsense").returncode, 2)


class ConfiguredLimits(DaemonTest):
    daemon_kw = {"config": "policy_instructions = 1000\n"}

    def test_instruction_limit_from_config_applies(self):
        spin = ("function admit(pod, request)\n  local n = 0\n"
                "  for i = 1, 5000 do n = n + i end\n  return {allow = true}\nend\n")
        status, _, out = self.d.request("PUT", f"{POLICIES}/admission", body=spin,
                                        headers={"Content-Type": "text/x-lua"})
        self.assertEqual(status, 200, out)
        status, _, out = self.d.request("POST", PODS, body=json.dumps(pod("limited")),
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 403, out)
        self.assertIn("instruction", json.loads(out)["message"])
