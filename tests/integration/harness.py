"""Starts the real cocod on loopback with a temporary data directory and
talks to it like a user would: HTTPS with the CA cocod generated, the admin
token from the data directory, raw sockets where a test needs to misbehave.
Standard library only (no pip on the target machines)."""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

COCOD = os.environ.get("COCOD_BIN", "build/cocod")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One cocod process.  `start()` waits until /healthz answers."""

    def __init__(self, data_dir=None, args=(), config=None, plain=False, vm=False):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="cocod-it-")
        self.port = free_port()
        self.plain = plain
        self.args = list(args)
        # API tests run without pod VMs (pod_runtime = "none"): booting a
        # VM per test pod would make them slow; tests/integration/test_vm*
        # boot real guests.
        if not vm:
            config = 'pod_runtime = "none"\n' + (config or "")
        elif "vm_pool" not in (config or ""):
            # no warm pool either unless a test asks (each would be a boot)
            config = "vm_pool = 0\n" + (config or "")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.data_dir, "test.toml")
            with open(self.config_path, "w") as f:
                f.write(config)
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "stderr.log")

    def command(self):
        cmd = [COCOD, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", self.data_dir, "--log-level", "debug"]
        if self.config_path:
            cmd += ["--config", self.config_path]
        if self.plain:
            cmd.append("--plain-http")
        return cmd + self.args

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cocod exited {self.proc.returncode}:\n{self.stderr()}")
            try:
                status, _, _ = self.request("GET", "/healthz", token=None)
                if status == 200:
                    return self
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise AssertionError("cocod did not answer /healthz in time:\n" + self.stderr())

    def stderr(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("cocod did not exit after SIGTERM")
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill_vms(self):
        """Pod VMs outlive their daemon by design (the next one adopts
        them); a test's VMs die with its data directory."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read()
            except OSError:
                continue
            if b"qemu-system" in args and self.data_dir.encode() in args:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self):
        try:
            self.stop()
        finally:
            self.kill_vms()
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- clients ---
    @property
    def ca_path(self):
        return os.path.join(self.data_dir, "tls", "ca.crt")

    def token(self):
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            return f.read().strip()

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_path)
        return ctx

    def connection(self, host="127.0.0.1", timeout=10):
        if self.plain:
            return http.client.HTTPConnection(host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(host, self.port, timeout=timeout,
                                           context=self.ssl_context())

    def request(self, method, path, body=None, headers=None, token="admin", conn=None):
        """Returns (status, headers dict with lowercase names, body bytes)."""
        h = dict(headers or {})
        if token == "admin":
            token = self.token()
        if token:
            h["Authorization"] = f"Bearer {token}"
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            if own:
                conn.close()

    def json(self, method, path, **kw):
        status, headers, data = self.request(method, path, **kw)
        return status, json.loads(data) if data else None

    def raw_socket(self, timeout=10):
        """A connected socket (TLS-wrapped unless plain)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.plain:
            return s
        return self.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")


def read_until_closed(sock, limit=1 << 20):
    """Reads until the peer closes; returns the bytes and whether it closed."""
    out = b""
    try:
        while len(out) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except (socket.timeout, TimeoutError):
        return out, False
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return out, True
    return out, False


def read_responses(sock, n, timeout=10):
    """Reads `n` complete HTTP responses with Content-Length bodies."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed after {len(out)} responses: {buf!r}")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("closed inside a body")
            buf += chunk
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


class DaemonTest(unittest.TestCase):
    """A test case with one daemon started per test (override `daemon_kw`)."""

    daemon_kw = {}

    def setUp(self):
        self.d = Daemon(**self.daemon_kw).start()

    def tearDown(self):
        self.d.cleanup()
