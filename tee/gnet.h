/* gnet: the pod VM's network, set up by the guest agent.  Every pod gets
 * its loopback interface up (containers of one pod share the VM's network
 * namespace and talk over localhost, as in Kubernetes).  With user-mode
 * networking (config pod_network = "user": QEMU's built-in NAT, a
 * virtio-net device) eth0 gets QEMU's fixed addresses — 10.0.2.15/24,
 * gateway 10.0.2.2 (which reaches the host's loopback), DNS 10.0.2.3 — set
 * with ioctls, so no DHCP client runs in the guest.  Guest side only. */
#ifndef COCOD_GNET_H
#define COCOD_GNET_H

#include "err.h"

#define GNET_ADDRESS "10.0.2.15"
#define GNET_NETMASK "255.255.255.0"
#define GNET_GATEWAY "10.0.2.2"
#define GNET_DNS     "10.0.2.3"

/* Brings `lo` up. */
int gnet_loopback(struct err *e);

/* Loads the virtio-net modules from /lib/modules, waits (up to 5 s) for
 * eth0 and configures it with the addresses above and a default route. */
int gnet_user(struct err *e);

/* Writes the files containers see as /etc/hosts and (when `dns` is
 * non-NULL) /etc/resolv.conf into `dir`. */
int gnet_write_files(const char *dir, const char *hostname, const char *address,
		     const char *dns, struct err *e);

#endif
