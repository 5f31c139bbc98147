"""KBS protocol conformance: starts two cocod daemons (sim evidence on;
one in dev mode, one strict with 2-second sessions and tokens, both set
through the configuration file) and runs
test_kbs.js, a Node WebCrypto client that shares no code with cocod.
Also checks the audit log, the sealed store and `cocod secret`.  Skips
when node is missing."""

import json
import os
import shutil
import sqlite3
import subprocess
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def start(config):
    return harness.Daemon(config=config).start()


def info(d):
    return {"url": f"https://127.0.0.1:{d.port}", "ca": d.ca_path, "token": d.token(), "dir": d.data_dir}


@unittest.skipIf(shutil.which("node") is None, "node is not installed")
class KbsConformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.main = start("kbs_sim = true\nkbs_dev_mode = true\n")
        status, _, _ = cls.main.request("GET", "/kbs/v0/.well-known/jwks.json", token=None)
        assert status == 200, "the KBS serves its JWKS without a token"
        cls.strict = start('kbs_sim = true\nkbs_session_ttl = "2s"\nkbs_token_ttl = "2s"\n')

    @classmethod
    def tearDownClass(cls):
        cls.main.cleanup()
        cls.strict.cleanup()

    def test_kbs_conformance_node_client(self):
        cfg = {"cocod": harness.COCOD, "main": info(self.main), "strict": info(self.strict)}
        p = subprocess.run(["node", os.path.join(HERE, "test_kbs.js"), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=300)
        print(p.stdout, end="")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.main.stderr()[-3000:])
        db = sqlite3.connect(os.path.join(self.main.data_dir, "cocod.db"))
        actions = {r[0] for r in db.execute("SELECT action FROM audit WHERE actor = 'kbs'")}
        self.assertTrue({"attest", "release", "deny"} <= actions, actions)
        for (blob,) in db.execute("SELECT sealed FROM kbs_resources"):
            self.assertNotIn(b"kbs-secret-", bytes(blob))
        self.assertNotIn("kbs-secret-", self.main.stderr())

    def test_kbs_secret_cli(self):
        d = self.main
        cli = [harness.COCOD, "secret"]
        dd = ["--data-dir", d.data_dir]
        p = subprocess.run(cli + ["put", "cli/key/one", "-"] + dd, input=b"cli-secret-bytes",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(cli + ["ls"] + dd, capture_output=True, text=True, timeout=30)
        self.assertIn("cli/key/one", p.stdout.split())
        self.assertNotIn("cli-secret-bytes", p.stdout)
        p = subprocess.run(cli + ["rm", "cli/key/one"] + dd, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(cli + ["rm", "cli/key/one"] + dd, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        p = subprocess.run(cli + ["put", "bad path", "-"] + dd, input=b"x", capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
