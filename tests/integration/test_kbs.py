"""KBS protocol conformance: starts two cocod daemons (sim evidence on;
one in dev mode, one strict with 2-second sessions and tokens, both set
through the configuration file) and runs
test_kbs.js, a Node WebCrypto client that shares no code with cocod.
Also checks the audit log, the sealed store and `cocod secret`.  Skips
when node is missing."""

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
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


DATA = os.path.join(os.path.dirname(HERE), "data")
# RFC 7517 A.1's P-256 key: a valid point for tee-pubkey.
JWK = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW",
       "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
       "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}
AT = "2025-06-20T00:00:00Z"


def vector(path):
    with open(os.path.join(DATA, path), "rb") as f:
        return f.read()


class KbsCollateral(unittest.TestCase):
    """Real AMD and Intel evidence through the daemon's KBS, before and
    after `cocod collateral import`: the verifier takes the VCEK/VLEK and
    the TDX collateral from the store.  The vectors' report_data cannot
    match a fresh nonce, so a report that verifies stops at the binding
    check; collateral that expired before today stops there."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def cli(self, *args, input=None):
        return subprocess.run([harness.COCOD, *args, "--data-dir", self.d.data_dir],
                              capture_output=True, text=True, timeout=60, input=input)

    def attest(self, tee, evidence):
        """auth + attest; returns (status, detail)."""
        body = json.dumps({"version": "0.4.0", "tee": tee, "extra-params": {}}).encode()
        status, hdrs, data = self.d.request("POST", "/kbs/v0/auth", body=body, token=None,
                                            headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, data)
        cookie = hdrs["set-cookie"].split(";")[0]
        nonce = json.loads(data)["nonce"]
        req = {"init-data": None, "runtime-data": {"nonce": nonce, "tee-pubkey": JWK},
               "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""}}
        status, _, data = self.d.request("POST", "/kbs/v0/attest", body=json.dumps(req).encode(),
                                         token=None, headers={"Content-Type": "application/json",
                                                              "Cookie": cookie})
        detail = json.loads(data).get("detail", "") if data else ""
        self.assertNotIn("token", json.loads(data) if data else {})
        return status, detail

    def import_ok(self, *files):
        p = self.cli("collateral", "import", *[os.path.join(DATA, f) for f in files])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def snp(self, report):
        return {"attestation_report": base64.b64encode(report).decode(), "cert_chain": []}

    def test_snp_vcek_from_the_store(self):
        ev = self.snp(vector("snp/trustee/snp/test-report.bin"))
        status, detail = self.attest("snp", ev)
        self.assertEqual(status, 401)
        self.assertIn("no imported VCEK for CHIP_ID c38427a30d4c7af9", detail)
        self.assertIn("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115", detail)
        out = self.import_ok("snp/trustee/snp/test-vcek.der")
        self.assertIn("vcek", out)
        status, detail = self.attest("snp", ev)
        self.assertEqual(status, 401)
        # Chain, signature, TCB and CHIP_ID passed with the stored VCEK.
        self.assertIn("SNP binding: REPORT_DATA", detail)
        # The offline verifier finds it the same way.
        p = self.cli("evidence", "verify", "--tee", "snp", "--evidence",
                     os.path.join(DATA, "snp/trustee/snp/test-report.bin"), "--at", AT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("verdict: valid", p.stdout)

    def test_snp_vlek_from_the_store(self):
        ev = self.snp(vector("snp/trustee/snp/test-vlek-report.bin"))
        status, detail = self.attest("snp", ev)
        self.assertIn("no imported VLEK matches REPORTED_TCB bl=4 tee=0 snp=24 ucode=217", detail)
        self.import_ok("snp/trustee/snp/test-vlek.der", "snp/go-sev-guest/ask_ark_milan_vlek.pem")
        status, detail = self.attest("snp", ev)
        self.assertEqual(status, 401)
        self.assertIn("VLEK certificate expired at 2025-12-10", detail)
        p = self.cli("evidence", "verify", "--tee", "snp", "--json", "--evidence",
                     os.path.join(DATA, "snp/trustee/snp/test-vlek-report.bin"), "--at", AT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["claims"]["endorsement"]["key"], "VLEK")

    def test_tdx_collateral_from_the_store(self):
        quote = vector("tdx/dcap-qvl/sample/tdx_quote")
        ev = {"quote": base64.b64encode(quote).decode(), "cc_eventlog": None}
        # Without collateral the signatures and chain pass and the TCB
        # status is unknown (the policy decides); this quote is then
        # refused only because it was not made for this session.
        status, detail = self.attest("tdx", ev)
        self.assertEqual(status, 401)
        self.assertIn("TDX binding", detail)
        self.assertIn("no TDX TCB info for FMSPC b0c06f000000", self.d.stderr())
        out = self.import_ok("tdx/dcap-qvl/sample/tdx_quote_collateral.json")
        for kind in ("tcb_info", "qe_identity", "tcb_signing", "intel_crl"):
            self.assertIn(kind, out)
        status, detail = self.attest("tdx", ev)
        self.assertEqual(status, 401)
        # Found and used: the 2025 collateral is past its next update now.
        self.assertRegex(detail, r"CRL expired \(nextUpdate 202[56]-")
        p = self.cli("evidence", "verify", "--tee", "tdx", "--json", "--evidence",
                     os.path.join(DATA, "tdx/dcap-qvl/sample/tdx_quote"), "--at", AT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["tcb_status"], "UpToDate")

    def test_reference_value_cli(self):
        m = "ab" * 48
        p = self.cli("reference-value", "add", "snp_launch_measurement", m, "cd" * 48)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2 value(s) registered", p.stdout)
        p = self.cli("reference-value", "get", "snp_launch_measurement")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        self.assertEqual({v["value"] for v in got}, {m, "cd" * 48})
        self.assertEqual({v["name"] for v in got}, {"snp_launch_measurement"})
        self.assertEqual(self.cli("reference-value", "add", "bad/name", "x").returncode, 2)
        self.assertEqual(self.cli("reference-value", "add", "only-name").returncode, 2)

    def test_import_is_all_or_nothing_ls_rm(self):
        before = json.loads(self.cli("collateral", "ls", "-o", "json").stdout)
        bad = os.path.join(DATA, "snp/trustee/snp/test-vcek-invalid-new.der")
        p = self.cli("collateral", "import", os.path.join(DATA, "snp/sev/vcek_milan.der"), bad)
        self.assertEqual(p.returncode, 1)
        self.assertIn("test-vcek-invalid-new.der", p.stderr)
        self.assertIn("not certified by AMD", p.stderr)
        self.assertEqual(json.loads(self.cli("collateral", "ls", "-o", "json").stdout), before)
        self.import_ok("snp/sev/vcek_milan.der")
        rows = json.loads(self.cli("collateral", "ls", "-o", "json").stdout)
        mine = [r for r in rows if r["source"] == "vcek_milan.der"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["kind"], "vcek")
        self.assertTrue(mine[0]["lookup"].startswith("d49554ec717f4e5b"))
        p = self.cli("collateral", "rm", mine[0]["sha256"][:12])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(self.cli("collateral", "ls", "-o", "json").stdout), before)
        self.assertEqual(self.cli("collateral", "rm", "12").returncode, 2)


def report_data(nonce):
    """The binding a guest puts in report_data: SHA-384 of the JCS form
    (sorted keys, no spaces: JCS for these ASCII strings)."""
    text = json.dumps({"additional-evidence": "", "nonce": nonce, "tee-pubkey": JWK},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha384(text.encode()).hexdigest()


class KbsOffTheLoop(unittest.TestCase):
    """Evidence is verified on the libuv thread pool, not on the loop
    thread that serves HTTP: while many attestations are in flight the
    daemon still answers /healthz; a client that leaves mid-attestation
    gets no token and leaves the daemon healthy; SIGTERM with attestations
    in flight answers them and exits cleanly."""

    N = 48  # TDX attestations in flight (~1 ms of verification each)

    def setUp(self):
        self.d = harness.Daemon(config="kbs_sim = true\n").start()
        self.quote = vector("tdx/dcap-qvl/sample/tdx_quote")

    def tearDown(self):
        self.d.cleanup()

    def auth(self, conn, tee):
        body = json.dumps({"version": "0.4.0", "tee": tee, "extra-params": {}}).encode()
        status, hdrs, data = self.d.request("POST", "/kbs/v0/auth", body=body, token=None, conn=conn,
                                            headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, data)
        return hdrs["set-cookie"].split(";")[0], json.loads(data)["nonce"]

    def send_attest(self, conn, cookie, nonce, evidence):
        req = {"init-data": None, "runtime-data": {"nonce": nonce, "tee-pubkey": JWK},
               "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""}}
        conn.request("POST", "/kbs/v0/attest", body=json.dumps(req).encode(),
                     headers={"Content-Type": "application/json", "Cookie": cookie})

    def tdx_in_flight(self):
        """N connections, each authenticated (TLS handshakes done), then N
        TDX attestations sent without reading the answers.  The quote
        verifies (signatures, PCK chain) and then fails its binding: all
        the crypto runs."""
        conns = [self.d.connection(timeout=60) for _ in range(self.N)]
        sessions = [self.auth(c, "tdx") for c in conns]
        ev = {"quote": base64.b64encode(self.quote).decode(), "cc_eventlog": None}
        for c, (cookie, nonce) in zip(conns, sessions):
            self.send_attest(c, cookie, nonce, ev)
        return conns

    def sim_evidence(self, nonce):
        p = subprocess.run([harness.COCOD, "sim-evidence", "--data-dir", self.d.data_dir,
                            "--report-data", report_data(nonce)], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_healthz_answers_while_attestations_are_verified(self):
        probe = self.d.connection(timeout=60)
        self.assertEqual(self.d.request("GET", "/healthz", token=None, conn=probe)[0], 200)
        conns = self.tdx_in_flight()
        t0 = time.monotonic()
        probe.request("GET", "/readyz")  # sent after all N attestations
        r = probe.getresponse()
        r.read()
        latency = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        for c in conns:
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 401, body)
            self.assertIn(b"TDX binding", body)
            c.close()
        probe.close()
        # The order in which the loop thread finished the requests (its
        # access log).  Verified on the loop thread, every attestation
        # sent before /readyz would be answered before it; on the pool
        # /readyz overtakes those still being verified.
        order = [ln for ln in self.d.stderr().splitlines()
                 if "info http: method=" in ln and ("path=/readyz" in ln or "path=/kbs/v0/attest" in ln)]
        pos = next(i for i, ln in enumerate(order) if "path=/readyz" in ln)
        later = len(order) - 1 - pos
        print(f"\n    /readyz answered in {1e3 * latency:.1f} ms, before {later} of the {self.N} "
              "attestations sent ahead of it")
        self.assertGreaterEqual(later, self.N // 4, f"only {later} of {self.N} attestations "
                                "finished after /readyz: the loop thread was blocked")

    def test_client_gone_mid_attestation_gets_no_token(self):
        n = 6
        sims = []
        for _ in range(n):
            conn = self.d.connection(timeout=60)
            cookie, nonce = self.auth(conn, "snp")
            sims.append((conn, cookie, nonce, self.sim_evidence(nonce)))
        busy = self.tdx_in_flight()  # the pool is busy: the sim jobs wait behind these
        for conn, cookie, nonce, ev in sims:
            self.send_attest(conn, cookie, nonce, ev)
            conn.close()
        for c in busy:
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 401)
            c.close()
        db = sqlite3.connect(os.path.join(self.d.data_dir, "cocod.db"))
        prefixes = [cookie.split("=")[1][:8] for _, cookie, _, _ in sims]
        verdicts = {}
        deadline = time.time() + 20
        while len(verdicts) < n and time.time() < deadline:
            for (detail,) in db.execute("SELECT detail FROM audit WHERE action = 'attest'"):
                for p in prefixes:
                    if f"session={p}" in detail:
                        verdicts[p] = detail.split()[0]
            time.sleep(0.05)
        self.assertEqual(len(verdicts), n, verdicts)
        self.assertLessEqual(set(verdicts.values()), {"verdict=abandoned", "verdict=issued"})
        self.assertIn("verdict=abandoned", verdicts.values())
        for _, cookie, _, _ in sims:
            if verdicts[cookie.split("=")[1][:8]] == "verdict=abandoned":
                status, _, data = self.d.request("GET", "/kbs/v0/resource/default/key/app",
                                                 token=None, headers={"Cookie": cookie})
                self.assertEqual(status, 401)
                self.assertIn(b"TokenNotFound", data)
        # Healthy: probes answer and a full attestation still succeeds.
        self.assertEqual(self.d.request("GET", "/healthz", token=None)[0], 200)
        conn = self.d.connection(timeout=60)
        cookie, nonce = self.auth(conn, "snp")
        self.send_attest(conn, cookie, nonce, self.sim_evidence(nonce))
        r = conn.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200, body)
        self.assertIn("token", json.loads(body))
        self.assertIsNone(self.d.proc.poll())
        self.assertNotIn("finished request", self.d.stderr())
        self.assertNotIn("AddressSanitizer", self.d.stderr())

    def test_sigterm_with_attestations_in_flight(self):
        conns = self.tdx_in_flight()
        self.d.proc.send_signal(signal.SIGTERM)
        answered = 0
        for c in conns:
            try:
                r = c.getresponse()
                body = r.read()
                self.assertEqual(r.status, 401, body)
                answered += 1
            except (http.client.HTTPException, OSError):
                pass  # not yet read when the daemon closed: a clean close
        self.assertEqual(self.d.proc.wait(30), 0, self.d.stderr()[-3000:])
        print(f"\n    {answered} of {self.N} in-flight attestations answered during shutdown")
        self.assertNotIn("AddressSanitizer", self.d.stderr())


if __name__ == "__main__":
    unittest.main()
