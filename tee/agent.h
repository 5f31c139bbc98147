/* agent: `cocod agent`, PID 1 of every pod VM.  Brings the guest up
 * (its root: the initramfs bind-mounted and moved over itself so crun can
 * pivot_root; mounts, kernel modules), finds the virtio-serial port
 * `io.cocod.agent`, and serves
 * docs/agent-protocol.md on it: the pod's init-data (checked, hashed and
 * written read-only to /run/confidential-containers/initdata/initdata.toml),
 * images (gimage), containers (gctr), emptyDir volumes in guest memory,
 * signals and power-off.
 *
 * Framing errors (oversized, empty or non-JSON frames): the byte stream
 * cannot be resynchronised, so the agent answers with a reply of id 0
 * ({"ok": false, "error": ...}), logs the error on the console, discards
 * everything the host sends until the host closes its end of the channel,
 * and greets the next connection with a fresh `ready`.  Containers keep
 * running meanwhile.  A well-framed request with an unknown type or a bad
 * body gets an error reply and changes nothing. */
#ifndef COCOD_AGENT_H
#define COCOD_AGENT_H

/* `cocod agent [--port DEVICE]`: as PID 1 it initialises the guest first;
 * otherwise (debugging) it only serves the given port. */
int agent_main(int argc, char **argv);

#endif
