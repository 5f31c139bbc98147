#!/usr/bin/env python3
"""Pod start benchmark (run through bench/podstart.sh, which builds first).

Side by side, alternating, `--rounds` times:
  pod:  POST a one-container pod (busybox `sleep 3600`, 128Mi, 1 CPU) to a
        fresh cocod and time it until a watch shows the container running;
  bare: `qemu-system-x86_64` with the same accelerator (read from cocod's
        log), machine type, CPU model, memory and vCPUs as that pod's VM
        (read from libvirt's command line for it), booting the same kernel
        and initramfs with the kit's command line, timed from spawning QEMU
        until the guest's first process prints a marker on the serial
        console.  The kit's /init is the cocod agent, which prints nothing
        when it starts, so the bare boot uses `rdinit=/bin/sh` (busybox from
        the same initramfs) with arguments that mount devtmpfs and echo the
        marker: the same kernel work (decompress, boot, unpack the same
        initramfs bytes, exec the first process) up to the first instruction
        of user space.

Then one more pod is left idle and its QEMU process' RSS is read.

Phases of a pod start come from what cocod exposes, all on the host's
realtime clock: events (their names carry the nanosecond timestamp, like
Kubernetes'), the daemon log (millisecond timestamps, --log-level debug for
the libvirt domain events), libvirt's per-domain log (the QEMU exec time),
the admission decision log (policy time in microseconds), the agent's
`ready` (guest uptime, boot_ms) and the guest console (image unpack time).
Boot to /init and /init to agent-ready cannot be separated from the host
(the agent logs nothing before `ready`); the split is estimated with the
bare boot's guest uptime at /init of the same round and marked with ~.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCOD = os.path.join(ROOT, "build", "cocod")  # --build DIR points both elsewhere
KIT = os.path.join(ROOT, "build", "kit")
PODS = "/api/v1/namespaces/default/pods"
MARK = "COCOD-BARE-INIT-REACHED"
POD_MEMORY = "128Mi"


def die(msg):
    print(f"podstart: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso_ms(s):
    """2026-11-28T05:25:34.610Z (cocod's log) -> epoch seconds."""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def iso_s(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def qemu_pids(needle):
    """QEMU processes whose command line contains `needle`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmd and needle in cmd:
            out.append(int(d))
    return out


class Daemon:
    def __init__(self, pool=0):
        # Short path: the agent socket lives under it (sun_path is 108 bytes).
        self.dir = tempfile.mkdtemp(prefix="cocod-podstart-", dir="/tmp")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "cocod.log")
        self.proc = None
        self.pool = pool
        self.config = os.path.join(self.dir, "bench.toml")
        with open(self.config, "w") as f:
            f.write(f"vm_pool = {pool}\n")

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [COCOD, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.dir,
             "--log-level", "debug", "--config", self.config],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                die(f"cocod exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            try:
                if self.request("GET", "/healthz", auth=False)[0] == 200:
                    break
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        else:
            die("cocod did not answer /healthz:\n" + self.text()[-3000:])
        with open(os.path.join(self.dir, "admin.token")) as f:
            self.token = f.read().strip()
        m = re.search(r"launcher: accelerator=(\w+)", self.text())
        if not m:
            die("cocod runs no VM launcher (pod_runtime or libvirt):\n" + self.text()[-3000:])
        self.accel = m.group(1)
        return self

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, timeout=30):
        if not hasattr(self, "ctx"):
            self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "tls", "ca.crt"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.ctx)

    def headers(self, auth=True):
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def request(self, method, path, body=None, auth=True):
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=self.headers(auth))
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        try:
            obj = json.loads(data) if data else None
        except ValueError:
            obj = None
        return r.status, obj

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Guests of this daemon that outlived it (none expected): ours, by pid.
        for pid in qemu_pids(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


    def pool_ready(self):
        """Names of pool VMs whose agent said ready and that no pod took."""
        t = self.text()
        ready = set(re.findall(r"agent ready pool_vm=(\S+)", t))
        gone = set(re.findall(r"warm pool uid=\S+ pool_vm=(\S+)", t))
        gone |= set(re.findall(r"pool VM dropped pool_vm=(\S+)", t))
        return ready - gone

    def wait_pool(self, timeout=120):
        """Until a pool VM is ready and none is booting (no refill running
        beside a measurement)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.text()
            booting = set(re.findall(r"booting pool VM pool_vm=(\S+)", t))
            done = set(re.findall(r"agent ready pool_vm=(\S+)", t))
            done |= set(re.findall(r"pool VM dropped pool_vm=(\S+)", t))
            if self.pool_ready() and not (booting - done):
                return
            time.sleep(0.1)
        die("the warm pool did not fill:\n" + self.text()[-3000:])


def pod_body(name):
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["sleep", "3600"],
                                 "resources": {"limits": {"memory": POD_MEMORY, "cpu": "1"}}}]}})


def running(obj):
    st = (obj.get("status") or {}).get("containerStatuses") or [{}]
    return "running" in (st[0].get("state") or {})


def start_pod(d, name, timeout=300):
    """POST the pod, follow a watch until its container runs.  Returns
    (t_send, t_running, uid) on the host's realtime clock."""
    w = d.conn(timeout=timeout)
    w.request("GET", f"{PODS}?watch=1&fieldSelector=metadata.name%3D{name}",
              headers=d.headers())
    wr = w.getresponse()
    if wr.status != 200:
        die(f"watch: HTTP {wr.status}: {wr.read()[:500]!r}")
    p = d.conn()
    p.connect()  # TLS handshake before the clock starts, like a kubectl session
    body = pod_body(name)
    t_send = time.time()
    p.request("POST", PODS, body=body, headers=d.headers())
    pr = p.getresponse()
    created = pr.read()
    p.close()
    if pr.status != 201:
        die(f"POST {name}: HTTP {pr.status}: {created[:500]!r}")
    uid = json.loads(created)["metadata"]["uid"]
    deadline = time.time() + timeout
    t_run = None
    while time.time() < deadline:
        line = wr.readline()
        if not line:
            break
        if not line.strip():
            continue
        ev = json.loads(line)
        obj = ev.get("object") or {}
        if running(obj):
            t_run = time.time()
            break
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            die(f"pod {name} ended {phase} before running: {json.dumps(obj['status'])[:1500]}")
    w.close()
    if t_run is None:
        die(f"pod {name} not running after {timeout}s:\n{d.text()[-3000:]}")
    return t_send, t_run, uid


def delete_pod(d, name, uid, timeout=90):
    d.request("DELETE", f"{PODS}/{name}?gracePeriodSeconds=0")
    deadline = time.time() + timeout
    while time.time() < deadline:
        gone = d.request("GET", f"{PODS}/{name}")[0] == 404
        if gone and not qemu_pids(f"guest=cocod-{uid}"):
            return
        time.sleep(0.1)
    die(f"pod {name} (QEMU of uid {uid}) still there {timeout}s after DELETE")


def event_times(d, name):
    """reason -> time of the first event with it.  Event names end in the
    hex UnixNano of their creation (as in Kubernetes); checked against the
    second-resolution firstTimestamp."""
    _, evs = d.request("GET", f"/api/v1/namespaces/default/events"
                              f"?fieldSelector=involvedObject.name%3D{name}")
    out = {}
    for e in sorted(evs.get("items", []), key=lambda e: e["metadata"]["name"]):
        r = e["reason"]
        if r in out:
            continue
        coarse = iso_s(e["firstTimestamp"]) if e.get("firstTimestamp") else None
        try:
            t = int(e["metadata"]["name"].rsplit(".", 1)[1], 16) / 1e9
        except (IndexError, ValueError):
            t = None
        if t is None or (coarse is not None and not coarse - 0.001 <= t < coarse + 1.001):
            t = coarse  # fall back to whole seconds
        out[r] = t
    return out


def marks(d, name, uid):
    """What the daemon, libvirt, the policy log and the guest console say."""
    text = d.text()
    m = {}

    def find(pat):
        x = re.search(r"^(\S+Z) " + pat, text, re.M)
        return (iso_ms(x.group(1)), x) if x else (None, None)

    m["creating"], _ = find(rf"info runtime: creating pod VM uid={uid}\b")
    m["started"], _ = find(rf"debug launcher: domain event uid={uid} event=started\b")
    m["ready"], x = find(rf"info runtime: agent ready uid={uid} .*boot_ms=(\d+)")
    m["boot_ms"] = int(x.group(2)) if x else None
    m["sandbox"], _ = find(rf"info runtime: pod VM ready uid={uid}\b")
    x = re.search(rf"pod created pod=default/{re.escape(name)} .*\n(?:.*\n)*?"
                  rf"\S+ info http: method=POST path={PODS} status=201 .*duration_ms=([\d.]+)",
                  text)
    m["post_ms"] = float(x.group(1)) if x else None
    try:
        with open(os.path.join(d.dir, "libvirt", "log", "qemu", f"cocod-{uid}.log")) as f:
            vlog = f.read()
        x = re.search(r"^(\S+ \S+): starting up", vlog, re.M)
        m["exec"] = datetime.datetime.strptime(x.group(1), "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
        m["qemu_args"] = vlog
    except (OSError, AttributeError):
        m["exec"], m["qemu_args"] = None, ""
    _, dec = d.request("GET", "/apis/cocod.io/v1/decisions")
    m["admit_us"] = None
    for it in (dec or {}).get("items", []):
        if it.get("hook") == "admission" and it.get("subject") == f"default/{name}":
            m["admit_us"] = it.get("durationMicroseconds")
    try:
        with open(os.path.join(d.dir, "pods", uid, "console.log"), errors="replace") as f:
            console = f.read()
            x = re.search(r"gimage: unpacked .*ms=(\d+)", console)
            m["unpack_guest_ms"] = int(x.group(1)) if x else None
            x = re.search(r"agent: started uptime_ms=(\d+) mounts_modules_ms=(\d+) "
                          r"port_ms=(\d+)", console)
            m["agent_start"] = tuple(map(int, x.groups())) if x else None
    except OSError:
        m["unpack_guest_ms"], m["agent_start"] = None, None
    return m


def vm_shape(qemu_args):
    """Machine, CPU model, memory (MiB) and vCPUs libvirt gave the pod VM."""
    def arg(flag, default):
        x = re.search(rf"^{re.escape(flag)} (\S+) \\?$", qemu_args, re.M)
        return x.group(1) if x else default
    machine = arg("-machine", "q35").split(",")[0]
    smp = arg("-smp", "1").split(",")[0]
    return machine, arg("-cpu", "qemu64"), arg("-m", "288"), smp


def bare_cmdline(kit_cmdline):
    """The kit's command line with rdinit pointed at busybox sh, which prints
    the marker first thing (the initramfs has no /dev/console node)."""
    base = " ".join(w for w in kit_cmdline.split() if not w.startswith("rdinit="))
    script = (f"/bin/busybox mount -t devtmpfs d /dev;echo {MARK} >/dev/ttyS0;"
              "/bin/busybox mount -t proc p /proc;/bin/busybox cat /proc/uptime >/dev/ttyS0;"
              "/bin/busybox sleep 30")
    return f'{base} rdinit=/bin/sh -- -c "{script}"'


def bare_boot(accel, shape, append, timeout=180):
    machine, cpu, mem, smp = shape
    cmd = ["qemu-system-x86_64", "-accel", accel, "-machine", machine, "-cpu", cpu,
           "-m", mem, "-smp", smp, "-nodefaults", "-display", "none", "-serial", "stdio",
           "-no-reboot", "-kernel", os.path.join(KIT, "vmlinuz"),
           "-initrd", os.path.join(KIT, "initramfs.img"), "-append", append]
    t0 = time.time()
    q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    buf, t_mark, uptime = b"", None, None
    try:
        deadline = t0 + timeout
        while time.time() < deadline:
            r, _, _ = select.select([q.stdout], [], [], 0.5)
            if not r:
                if q.poll() is not None:
                    break
                continue
            chunk = os.read(q.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if t_mark is None and MARK.encode() in buf:
                t_mark = time.time()
                deadline = min(deadline, t_mark + 10)
            if t_mark is not None:
                x = re.search(rb"\n([\d.]+) [\d.]+\r?\n", buf[buf.find(MARK.encode()):])
                if x:
                    uptime = float(x.group(1)) * 1000
                    break
    finally:
        q.kill()
        q.wait()
    if t_mark is None:
        die("bare boot: no marker from the guest:\n" + buf.decode(errors="replace")[-3000:])
    return (t_mark - t0) * 1000, uptime, cmd


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) / 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


PHASES = [
    ("admit", "Lua admission policy (decision log, exact)"),
    ("schedule", "POST sent -> Scheduled event, less admission: request, validation, "
                 "store, placement (one synchronous handler)"),
    ("define", "Scheduled -> QEMU exec (libvirt domain log): pod dir, domain XML, "
               "virDomainCreateXML"),
    ("qemu start", "QEMU exec -> libvirt 'started' event: QEMU init (paused), QMP, "
                   "vCPUs resumed"),
    ("boot", "vCPUs -> /init: firmware, kernel, initramfs unpack (host clock, less the "
             "agent's part)"),
    ("agent ready", "/init -> agent 'ready': root bind-moved (no copy), mounts, modules, "
                    "virtio port (guest clock: uptime at 'ready' less uptime at main())"),
    ("sandbox", "'ready' -> Pulling event: create_sandbox round trip"),
    ("image unpack", "Pulling -> Pulled event: layers sent over virtio-serial, digests "
                     "checked, unpacked (guest's own unpack time below)"),
    ("container start", "Pulled -> Started event: OCI config, overlay, crun run --detach"),
    ("report", "Started event -> running seen on the watch"),
]


def phases(t_send, t_run, ev, m, bare_uptime):
    need = {"Scheduled": ev.get("Scheduled"), "Pulling": ev.get("Pulling"),
            "Pulled": ev.get("Pulled"), "Started": ev.get("Started"), "exec": m["exec"],
            "started": m["started"], "ready": m["ready"]}
    missing = [k for k, v in need.items() if v is None]
    if missing:
        return None, missing
    ms = lambda a, b: (b - a) * 1000
    admit = (m["admit_us"] or 0) / 1000
    guest = ms(m["started"], m["ready"])  # vCPUs running -> ready, host clock
    if m["boot_ms"] and m.get("agent_start"):
        agent = m["boot_ms"] - m["agent_start"][0]  # the guest's own clock
    else:
        agent = (m["boot_ms"] - bare_uptime) if (m["boot_ms"] and bare_uptime) else None
    p = {
        "admit": admit,
        "schedule": ms(t_send, need["Scheduled"]) - admit,
        "define": ms(need["Scheduled"], m["exec"]),
        "qemu start": ms(m["exec"], m["started"]),
        "boot": guest - agent if agent is not None else guest,
        "agent ready": agent if agent is not None else 0.0,
        "sandbox": ms(m["ready"], need["Pulling"]),
        "image unpack": ms(need["Pulling"], need["Pulled"]),
        "container start": ms(need["Pulled"], need["Started"]),
        "report": ms(need["Started"], t_run),
    }
    return p, []


WARM_PHASES = [
    ("admit", "Lua admission policy"),
    ("schedule", "POST sent -> Scheduled event, less admission"),
    ("take + sandbox", "Scheduled -> Pulling event: pool VM taken (directory moved, pod.json), "
                       "create_sandbox round trip"),
    ("image unpack", "Pulling -> Pulled event"),
    ("container start", "Pulled -> Started event"),
    ("report", "Started event -> running seen on the watch"),
]


def warm_phases(t_send, t_run, ev, m):
    need = {k: ev.get(k) for k in ("Scheduled", "Pulling", "Pulled", "Started")}
    missing = [k for k, v in need.items() if v is None]
    if missing:
        return None, missing
    ms = lambda a, b: (b - a) * 1000
    admit = (m["admit_us"] or 0) / 1000
    return {
        "admit": admit,
        "schedule": ms(t_send, need["Scheduled"]) - admit,
        "take + sandbox": ms(need["Scheduled"], need["Pulling"]),
        "image unpack": ms(need["Pulling"], need["Pulled"]),
        "container start": ms(need["Pulled"], need["Started"]),
        "report": ms(need["Started"], t_run),
    }, []


def print_table(rows, table, title):
    print(title)
    print(f"  {'phase':<16}" + "".join(f"{'r' + str(i + 1):>8}" for i in range(len(rows)))
          + f"{'median':>8}  what")
    for key, what in table:
        vals = [row[key] for row in rows]
        fmt = "{:8.2f}" if key == "admit" else "{:8.0f}"
        print(f"  {key:<16}" + "".join(fmt.format(v) for v in vals)
              + fmt.format(statistics.median(vals)) + f"  {what}")
    tot = [sum(row.values()) for row in rows]
    print(f"  {'total':<16}" + "".join(f"{v:8.0f}" for v in tot)
          + f"{statistics.median(tot):8.0f}  = POST sent -> running")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=float(os.environ.get("SETTLE", "10")),
                    help="seconds an idle pod VM runs before its RSS is read")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"),
                    help="build directory holding cocod and kit/ (default build, or $BUILD)")
    a = ap.parse_args()
    global COCOD, KIT
    COCOD = os.path.join(ROOT, a.build, "cocod")
    KIT = os.path.join(ROOT, a.build, "kit")
    if a.rounds < 1:
        die("rounds must be at least 1")
    for f in ("vmlinuz", "initramfs.img", "kit.json"):
        if not os.path.exists(os.path.join(KIT, f)):
            die(f"no {KIT}/{f}: run `make BUILD={a.build} kit`")
    with open(os.path.join(KIT, "kit.json")) as f:
        kit = json.load(f)
    append = bare_cmdline(kit["cmdline"])

    d = Daemon()
    w = Daemon(pool=1)  # the same, with the warm pool (vm_pool = 1)
    live = {}  # name -> uid, deleted on the way out
    wlive = {}
    try:
        d.start()
        w.start()
        # The first domain of a fresh daemon pays libvirt's one-off probe of
        # QEMU's capabilities: timed, shown, not counted.
        t_send, t_run, uid = start_pod(d, "warmup")
        live["warmup"] = uid
        warm = (t_run - t_send) * 1000
        wm = marks(d, "warmup", uid)
        shape = vm_shape(wm["qemu_args"])
        delete_pod(d, "warmup", uid)
        del live["warmup"]
        # The warm daemon's pool starts with the size of a pod without
        # limits; its first pod teaches it the benchmark pod's size.
        w.wait_pool()
        t_send, t_run, uid = start_pod(w, "warmup")
        wlive["warmup"] = uid
        delete_pod(w, "warmup", uid)
        del wlive["warmup"]

        initrd_mib = os.path.getsize(os.path.join(KIT, "initramfs.img")) / 2**20
        print(f"pod start vs bare boot: accel={d.accel} machine={shape[0]} cpu={shape[1]} "
              f"memory={shape[2]} MiB vcpus={shape[3]} kernel={kit.get('kernel_version')} "
              f"initramfs={initrd_mib:.1f} MiB (uncompressed cpio)")
        print(f"  pod:  busybox `sleep 3600`, limits {POD_MEMORY}/1 CPU, POST -> running on a watch")
        print(f"  bare: qemu-system-x86_64 -accel {d.accel} -machine {shape[0]} -cpu {shape[1]} "
              f"-m {shape[2]} -smp {shape[3]} -nodefaults -kernel vmlinuz -initrd initramfs.img "
              f"-append '{append}'")
        print(f"        spawn -> marker from the initramfs' first process on the serial console")
        print(f"warm-up pod (first VM of a fresh daemon: libvirt probes QEMU): {warm:.0f} ms, "
              f"define {((wm['exec'] or 0) - (wm['creating'] or 0)) * 1000:.0f} ms; not counted")

        bares, bare_up, pods, rows, extra = [], [], [], [], []
        warms, wrows = [], []
        for r in range(1, a.rounds + 1):
            order = [("bare", "pod", "warm"), ("pod", "warm", "bare"), ("warm", "bare", "pod")][(r - 1) % 3]
            res = {}
            for what in order:
                w.wait_pool()  # no pool VM boots beside a measurement
                if what == "warm":
                    name = f"warm{r}"
                    t_send, t_run, uid = start_pod(w, name)
                    wlive[name] = uid
                    time.sleep(0.3)
                    res["warm"] = (t_run - t_send) * 1000
                    if not re.search(rf"warm pool uid={uid} ", w.text()):
                        die(f"pod {name} did not get a pool VM:\n" + w.text()[-3000:])
                    wph, missing = warm_phases(t_send, t_run, event_times(w, name),
                                               marks(w, name, uid))
                    if wph is None:
                        print(f"  round {r}: warm phase data missing: {', '.join(missing)}")
                    else:
                        wrows.append(wph)
                    delete_pod(w, name, uid)
                    del wlive[name]
                elif what == "bare":
                    res["bare"], res["uptime"], _ = bare_boot(d.accel, shape, append)
                else:
                    name = f"start{r}"
                    t_send, t_run, uid = start_pod(d, name)
                    live[name] = uid
                    time.sleep(0.3)  # let the log lines land
                    res["pod"] = (t_run - t_send) * 1000
                    res["ev"], res["m"] = event_times(d, name), marks(d, name, uid)
                    res["t"] = (t_send, t_run)
                    delete_pod(d, name, uid)
                    del live[name]
                time.sleep(1)
            ph, missing = phases(*res["t"], res["ev"], res["m"], res["uptime"])
            if ph is None:
                print(f"  round {r}: phase data missing: {', '.join(missing)}")
            else:
                rows.append(ph)
            bares.append(res["bare"])
            bare_up.append(res["uptime"])
            pods.append(res["pod"])
            warms.append(res["warm"])
            extra.append(res["m"])
            up = f"{res['uptime']:.0f}" if res["uptime"] is not None else "?"
            print(f"round {r} ({order[0]} first): bare {res['bare']:.0f} ms (guest uptime at /init "
                  f"{up} ms), pod cold {res['pod']:.0f} ms (guest boot_ms {res['m']['boot_ms']}) "
                  f"ratio {res['pod'] / res['bare']:.2f}x, pod from the warm pool "
                  f"{res['warm']:.0f} ms ratio {res['warm'] / res['bare']:.2f}x")

        mb, mp, mw = statistics.median(bares), statistics.median(pods), statistics.median(warms)
        print(f"median of {a.rounds}: bare {mb:.0f} ms; pod with vm_pool = 0 (boots its VM) "
              f"{mp:.0f} ms, ratio {mp / mb:.2f}x; pod with vm_pool = 1 (default; takes a "
              f"booted VM) {mw:.0f} ms, ratio {mw / mb:.2f}x")
        print(f"target <= 1.15x: {'met' if mw / mb <= 1.15 else 'NOT met'} with the warm pool, "
              f"{'met' if mp / mb <= 1.15 else 'NOT met'} without")

        if wrows:
            print_table(wrows, WARM_PHASES, "phase breakdown of a pod start from the warm pool, "
                        "ms (host clock; per round, and median of each phase):")
        if rows:
            print_table(rows, PHASES, "phase breakdown of a pod start that boots its VM "
                        "(vm_pool = 0), ms (host clock, split by the guest's):")
            un = [m["unpack_guest_ms"] for m in extra if m["unpack_guest_ms"] is not None]
            post = [m["post_ms"] for m in extra if m["post_ms"] is not None]
            bm = [m["boot_ms"] for m in extra if m["boot_ms"] is not None]
            if un:
                print(f"  guest's own image unpack time (console log): median "
                      f"{statistics.median(un):.0f} ms")
            if post:
                print(f"  POST handled in {statistics.median(post):.2f} ms server-side (median, "
                      f"includes admission, scheduling and handing the VM to libvirt)")
            st = [m["agent_start"] for m in extra if m.get("agent_start")]
            if st:
                ups = [u for u in bare_up if u is not None]
                print(f"  guest uptime when the first process runs its code: pod (cocod's main()) "
                      f"median {statistics.median(s[0] for s in st):.0f} ms, bare (busybox) median "
                      f"{statistics.median(ups) if ups else float('nan'):.0f} ms (the pod VM's PCIe "
                      f"ports and virtio-serial device, and cocod's exec and dynamic linking); "
                      f"then in the agent: mounts and modules "
                      f"{statistics.median(s[1] for s in st):.0f} ms, finding the virtio port "
                      f"{statistics.median(s[2] for s in st):.0f} ms, then the 'ready' frame")
            if bm:
                ups = [u for u in bare_up if u is not None]
                print(f"  guest uptime: pod at agent 'ready' median {statistics.median(bm):.0f} ms; "
                      f"bare at /init median "
                      f"{statistics.median(ups) if ups else float('nan'):.0f} ms")

        # Host RSS of one idle pod VM.
        t_send, t_run, uid = start_pod(d, "idle")
        live["idle"] = uid
        time.sleep(a.settle)
        pids = qemu_pids(f"guest=cocod-{uid}")
        if len(pids) != 1:
            die(f"expected one QEMU for the idle pod, found {pids}")
        m = rss(pids[0])
        print(f"host RSS per idle pod VM (QEMU pid {pids[0]}, {shape[2]} MiB guest, "
              f"{a.settle:.0f} s after start): {m['VmRSS']:.1f} MiB "
              f"({m.get('RssAnon', 0):.1f} MiB anonymous, {m.get('RssFile', 0):.1f} MiB file, "
              f"{m.get('RssShmem', 0):.1f} MiB shmem; PSS {m.get('Pss', 0):.1f} MiB)")
        delete_pod(d, "idle", uid)
        del live["idle"]
    finally:
        for dm, lv in ((d, live), (w, wlive)):
            for name, uid in list(lv.items()):
                try:
                    delete_pod(dm, name, uid, timeout=30)
                except SystemExit:
                    pass
            dm.stop()
            if os.environ.get("KEEP"):
                print(f"data directory kept: {dm.dir}", file=sys.stderr)
            else:
                shutil.rmtree(dm.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
