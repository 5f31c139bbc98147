"""The foundation, end to end: health and version endpoints, HTTPS with the
generated CA, admin authentication, HTTP limits and error replies,
pipelining, timeouts, graceful shutdown, restarts, configuration errors,
token rotation, metrics, kubectl against the kubeconfig."""

import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

from harness import (COCOD, Daemon, DaemonTest, free_port, read_responses,
                     read_until_closed)


def is_status(test, body, code, reason):
    obj = json.loads(body)
    test.assertEqual(obj["kind"], "Status")
    test.assertEqual(obj["apiVersion"], "v1")
    test.assertEqual(obj["status"], "Failure")
    test.assertEqual(obj["code"], code)
    test.assertEqual(obj["reason"], reason)
    test.assertTrue(obj["message"])
    return obj


class Endpoints(DaemonTest):
    def test_healthz_and_readyz_answer_without_token(self):
        for path in ("/healthz", "/readyz", "/livez"):
            status, headers, body = self.d.request("GET", path, token=None)
            self.assertEqual(status, 200, path)
            self.assertEqual(body, b"ok")
        status, _, body = self.d.request("GET", "/readyz?verbose", token=None)
        self.assertEqual(status, 200)
        self.assertIn(b"[+]store ok", body)

    def test_version_has_kubernetes_shape_and_cocod_fields(self):
        status, v = self.d.json("GET", "/version", token=None)
        self.assertEqual(status, 200)
        for key in ("major", "minor", "gitVersion", "gitCommit", "platform", "buildDate"):
            self.assertIsInstance(v[key], str, key)
        self.assertEqual(v["major"], "1")
        self.assertTrue(v["gitVersion"].startswith("v1."))
        out = subprocess.run([COCOD, "version"], capture_output=True, text=True, check=True)
        self.assertIn(v["cocod"]["version"], out.stdout)

    def test_unknown_path_is_404_status_with_token(self):
        status, headers, body = self.d.request("GET", "/no/such/thing")
        self.assertEqual(status, 404)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        is_status(self, body, 404, "NotFound")

    def test_wrong_method_is_405_with_allow(self):
        status, headers, body = self.d.request("POST", "/version", body=b"{}")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET")
        is_status(self, body, 405, "MethodNotAllowed")

    def test_head_returns_headers_only(self):
        conn = self.d.connection()
        conn.request("HEAD", "/version")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertGreater(int(resp.getheader("Content-Length")), 10)
        self.assertEqual(resp.read(), b"")
        conn.close()

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.d.connection()
        for _ in range(5):
            status, _, body = self.d.request("GET", "/healthz", token=None, conn=conn)
            self.assertEqual(status, 200)
        sock = conn.sock
        self.assertIsNotNone(sock, "connection was closed between requests")
        conn.close()


class Auth(DaemonTest):
    def test_missing_token_is_401(self):
        status, _, body = self.d.request("GET", "/api/v1/pods", token=None)
        self.assertEqual(status, 401)
        is_status(self, body, 401, "Unauthorized")

    def test_wrong_token_is_401_and_not_echoed(self):
        bad = "f" * 64
        status, _, body = self.d.request("GET", "/api/v1/pods", token=bad)
        self.assertEqual(status, 401)
        self.assertNotIn(bad.encode(), body)
        status, _, _ = self.d.request("GET", "/api/v1/pods", token=self.d.token()[:-1])
        self.assertEqual(status, 401)
        status, _, _ = self.d.request("GET", "/api/v1/pods",
                                      headers={"Authorization": "Basic " + self.d.token()},
                                      token=None)
        self.assertEqual(status, 401)

    def test_right_token_passes_authentication(self):
        status, _, body = self.d.request("GET", "/no/such/admin/path")
        self.assertEqual(status, 404)  # authenticated, then routed
        self.assertEqual(self.d.request("GET", "/no/such/admin/path", token=None)[0], 401)

    def test_token_is_256_bits_stored_only_as_hash(self):
        tok = self.d.token()
        self.assertGreaterEqual(len(tok), 64)
        int(tok, 16)
        with open(os.path.join(self.d.data_dir, "cocod.db"), "rb") as f:
            self.assertNotIn(tok.encode(), f.read())
        wal = os.path.join(self.d.data_dir, "cocod.db-wal")
        if os.path.exists(wal):
            with open(wal, "rb") as f:
                self.assertNotIn(tok.encode(), f.read())
        self.assertNotIn(tok, self.d.stderr())

    def test_secret_files_are_private(self):
        for rel in ("admin.token", "kubeconfig", "cocod.db", "tls/ca.key", "tls/server.key"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.d.data_dir, rel)).st_mode)
            self.assertEqual(mode & 0o077, 0, f"{rel} is {oct(mode)}")

    def test_rotation_takes_effect_in_the_running_daemon(self):
        old = self.d.token()
        out = subprocess.run([COCOD, "token", "rotate", "--data-dir", self.d.data_dir],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        new = self.d.token()
        self.assertNotEqual(old, new)
        self.assertEqual(self.d.request("GET", "/api/v1/pods", token=old)[0], 401)
        self.assertEqual(self.d.request("GET", "/api/v1/pods", token=new)[0], 200)
        with open(os.path.join(self.d.data_dir, "kubeconfig")) as f:
            kc = f.read()
        self.assertIn(new, kc)
        self.assertNotIn(old, kc)


class Tls(DaemonTest):
    def test_certificate_verifies_with_generated_ca_for_ip_and_localhost(self):
        for host in ("127.0.0.1", "localhost"):
            conn = self.d.connection(host=host)
            conn.request("GET", "/healthz")
            self.assertEqual(conn.getresponse().status, 200)
            cipher = conn.sock.cipher()
            self.assertIn(cipher[1], ("TLSv1.2", "TLSv1.3"))
            conn.close()

    def test_unknown_ca_is_rejected_by_the_client(self):
        ctx = ssl.create_default_context()  # system roots only
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        with self.assertRaises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(s, server_hostname="127.0.0.1")
        s.close()

    def test_tls_1_1_is_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            self.skipTest("this Python/OpenSSL cannot offer TLS 1.1")
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(s, server_hostname="127.0.0.1")
        s.close()

    def test_plain_http_to_tls_port_does_not_get_an_answer(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_until_closed(s)
        self.assertTrue(closed)
        self.assertNotIn(b"200 OK", data)
        s.close()
        self.assertEqual(self.d.request("GET", "/healthz", token=None)[0], 200)


class Limits(DaemonTest):
    daemon_kw = {"config": 'max_body_bytes = "64KiB"\nrequest_timeout = "1s"\n'
                           'idle_timeout = "2s"\n'}

    def test_headers_over_16k_are_431(self):
        s = self.d.raw_socket()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
        data, closed = read_until_closed(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 431"), data[:100])
        is_status(self, data.split(b"\r\n\r\n", 1)[1], 431, "RequestHeaderFieldsTooLarge")
        self.assertTrue(closed)

    def test_body_over_limit_is_413_by_content_length(self):
        s = self.d.raw_socket()
        s.sendall(b"POST /version HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        data, closed = read_until_closed(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:100])
        self.assertTrue(closed)

    def test_chunked_body_over_limit_is_413(self):
        s = self.d.raw_socket()
        s.sendall(b"POST /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (8192, b"z" * 8192)
        try:
            for _ in range(10):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        data, closed = read_until_closed(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:100])

    def test_body_under_limit_is_accepted(self):
        status, _, _ = self.d.request("POST", "/version", body=b"x" * 60000)
        self.assertEqual(status, 405)  # read whole, routed, method refused

    def test_malformed_request_is_400_and_closed(self):
        for junk in (b"\x16\x03garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
                     b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"):
            s = self.d.raw_socket()
            s.sendall(junk)
            data, closed = read_until_closed(s)
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), (junk, data[:100]))
            self.assertTrue(closed, junk)
            s.close()

    def test_pipelined_requests_are_answered_in_order(self):
        s = self.d.raw_socket()
        tok = self.d.token().encode()
        reqs = (b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\n\r\n"
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /readyz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.sendall(reqs)
        out = read_responses(s, 4)
        self.assertEqual([r[0] for r in out], [200, 404, 200, 200])
        self.assertIn(b"gitVersion", out[0][2])
        self.assertEqual(out[2][2], b"ok")
        self.assertIn(b"readyz check passed", out[3][2])
        s.close()

    def test_slowloris_client_is_disconnected(self):
        s = self.d.raw_socket()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.time()
        closed = False
        try:
            for _ in range(20):
                time.sleep(0.3)
                s.sendall(b"X-a: b\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            closed = True
        if not closed:
            _, closed = read_until_closed(s)
        self.assertTrue(closed)
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(self.d.request("GET", "/healthz", token=None)[0], 200)

    def test_idle_keep_alive_connection_is_closed(self):
        s = self.d.raw_socket()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_responses(s, 1)[0][0], 200)
        t0 = time.time()
        s.settimeout(10)
        data, closed = read_until_closed(s)
        self.assertTrue(closed)
        self.assertGreater(time.time() - t0, 1.0)
        self.assertLess(time.time() - t0, 6)


class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cocod-it-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_sigterm_exits_0_after_finishing_an_in_flight_request(self):
        d = Daemon(data_dir=self.dir).start()
        s = d.raw_socket()
        body = b'{"x": 1}'
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Length: %d\r\n\r\n" % (d.token().encode(), len(body)))
        time.sleep(0.2)
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertIsNone(d.proc.poll(), "exited with a request in flight")
        s.sendall(body)
        (status, headers, _), = read_responses(s, 1)
        self.assertEqual(status, 405)
        self.assertEqual(headers["connection"], "close")
        s.close()
        self.assertEqual(d.proc.wait(15), 0)  # exits by itself after the first signal
        d.stop()
        self.assertIn("shutting down", d.stderr())

    def test_sigterm_when_idle_exits_0_quickly(self):
        d = Daemon(data_dir=self.dir).start()
        idle = d.raw_socket()  # an idle keep-alive connection must not delay exit
        t0 = time.time()
        self.assertEqual(d.stop(), 0)
        self.assertLess(time.time() - t0, 3)
        idle.close()

    def test_restart_keeps_token_ca_and_data(self):
        d = Daemon(data_dir=self.dir).start()
        tok = d.token()
        with open(d.ca_path) as f:
            ca = f.read()
        self.assertEqual(d.stop(), 0)
        d2 = Daemon(data_dir=self.dir).start()
        self.assertEqual(d2.token(), tok)
        with open(d2.ca_path) as f:
            self.assertEqual(f.read(), ca)
        self.assertEqual(d2.request("GET", "/api/v1/pods", token=tok)[0], 200)
        self.assertEqual(d2.stderr().count("created admin token"), 1)
        self.assertEqual(d2.stop(), 0)

    def test_second_daemon_on_same_data_dir_is_refused(self):
        d = Daemon(data_dir=self.dir).start()
        try:
            out = subprocess.run([COCOD, "serve", "--listen", f"127.0.0.1:{free_port()}",
                                  "--data-dir", self.dir], capture_output=True, text=True,
                                 timeout=20)
            self.assertEqual(out.returncode, 1)
            self.assertIn("another cocod", out.stderr)
        finally:
            d.stop()

    def test_damaged_database_is_refused_and_left_alone(self):
        with open(os.path.join(self.dir, "cocod.db"), "wb") as f:
            f.write(b"this is not sqlite" * 100)
        out = subprocess.run([COCOD, "serve", "--listen", f"127.0.0.1:{free_port()}",
                              "--data-dir", self.dir], capture_output=True, text=True,
                             timeout=20)
        self.assertEqual(out.returncode, 1)
        self.assertIn("cocod.db", out.stderr)
        with open(os.path.join(self.dir, "cocod.db"), "rb") as f:
            self.assertTrue(f.read().startswith(b"this is not sqlite"))


class Configuration(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cocod-it-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def serve(self, *args, config=None):
        cmd = [COCOD, "serve", "--data-dir", self.dir]
        if config is not None:
            path = os.path.join(self.dir, "c.toml")
            with open(path, "w") as f:
                f.write(config)
            cmd += ["--config", path]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=20)

    def test_unknown_key_gives_file_line_and_exit_2(self):
        out = self.serve(config='# comment\nlisten = "127.0.0.1:1"\nbogus = 1\n')
        self.assertEqual(out.returncode, 2)
        self.assertIn("c.toml:3:", out.stderr)
        self.assertIn("bogus", out.stderr)

    def test_bad_value_gives_file_line_and_exit_2(self):
        out = self.serve(config='\nmax_body_bytes = "lots"\n')
        self.assertEqual(out.returncode, 2)
        self.assertIn("c.toml:2:", out.stderr)
        self.assertIn("max_body_bytes", out.stderr)

    def test_print_config_shows_file_then_flag_overrides(self):
        out = self.serve("--print-config", "--log-level", "warn",
                         config='log_level = "debug"\nmax_body_bytes = "1MiB"\n')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('log_level = "warn"', out.stdout)
        self.assertIn("max_body_bytes", out.stdout)
        self.assertIn(self.dir, out.stdout)
        # the printed configuration loads again
        path = os.path.join(self.dir, "printed.toml")
        with open(path, "w") as f:
            f.write(out.stdout)
        again = subprocess.run([COCOD, "serve", "--config", path, "--print-config"],
                               capture_output=True, text=True)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout, out.stdout)

    def test_plain_http_refused_off_loopback(self):
        out = self.serve("--plain-http", "--listen", "0.0.0.0:8443", "--print-config")
        self.assertEqual(out.returncode, 2)
        self.assertIn("plain_http", out.stderr)

    def test_unknown_flag_and_command_exit_2(self):
        out = self.serve("--frobnicate")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--frobnicate", out.stderr)
        out = subprocess.run([COCOD, "nonsense"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)

    def test_help_lists_commands_and_config_reference(self):
        out = subprocess.run([COCOD, "help"], capture_output=True, text=True)
        for cmd in ("serve", "version", "token"):
            self.assertIn(cmd, out.stdout)
        out = subprocess.run([COCOD, "serve", "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("--print-config", out.stdout)
        out = subprocess.run([COCOD, "help", "config"], capture_output=True, text=True)
        for opt in ("listen", "max_body_bytes", "request_timeout", "tls_extra_names"):
            self.assertIn(opt, out.stdout)


class PlainHttp(DaemonTest):
    daemon_kw = {"plain": True}

    def test_plain_http_on_loopback_serves(self):
        status, _, body = self.d.request("GET", "/healthz", token=None)
        self.assertEqual(status, 200)
        self.assertFalse(os.path.exists(self.d.ca_path))


class Metrics(DaemonTest):
    def test_metrics_count_requests_and_pass_promtool(self):
        for _ in range(3):
            self.d.request("GET", "/healthz", token=None)
        self.d.request("GET", "/nope")
        status, headers, body = self.d.request("GET", "/metrics", token=None)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        text = body.decode()
        self.assertRegex(text, r'cocod_http_requests_total\{route="/healthz",method="GET",code="200"\} [3-9]')
        self.assertIn('route="unmatched",method="GET",code="404"', text)
        for name in ("process_resident_memory_bytes", "process_open_fds",
                     "cocod_build_info", "cocod_http_request_duration_seconds_bucket"):
            self.assertIn(name, text)
        promtool = shutil.which("promtool")
        if not promtool:
            self.fail("promtool is missing: ./build.sh test installs the prometheus package")
        out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


class PrivateMetrics(DaemonTest):
    daemon_kw = {"config": "metrics_public = false\n"}

    def test_metrics_need_token_when_configured(self):
        self.assertEqual(self.d.request("GET", "/metrics", token=None)[0], 401)
        self.assertEqual(self.d.request("GET", "/metrics")[0], 200)


class Kubectl(DaemonTest):
    def test_kubectl_version_works_with_generated_kubeconfig(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl is not installed")
        kc = os.path.join(self.d.data_dir, "kubeconfig")
        out = subprocess.run([kubectl, "--kubeconfig", kc, "version", "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        v = json.loads(out.stdout)
        self.assertEqual(v["serverVersion"]["major"], "1")
        self.assertIn("cocod", v["serverVersion"]["gitVersion"])
