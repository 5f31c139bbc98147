/* gnet: see gnet.h.  Plain ioctls on an AF_INET datagram socket, the way
 * busybox's ifconfig and route do it. */
#include "gnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static void set_sin(struct sockaddr *sa, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static int if_up(int fd, const char *ifname, struct err *e)
{
	struct ifreq r;
	memset(&r, 0, sizeof r);
	snprintf(r.ifr_name, sizeof r.ifr_name, "%s", ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &r) < 0)
		return err_set(e, ERR_IO, "%s: %s", ifname, strerror(errno));
	r.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &r) < 0)
		return err_set(e, ERR_IO, "bringing %s up: %s", ifname, strerror(errno));
	return 0;
}

int gnet_loopback(struct err *e)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, ERR_IO, "socket: %s", strerror(errno));
	int rc = if_up(fd, "lo", e);
	close(fd);
	return rc;
}

static void load_net_modules(void)
{
	static const char *const mods[] = {"failover", "net_failover", "virtio_net", NULL};
	for (int i = 0; mods[i]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/lib/modules/%s.ko", mods[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* built into the kernel */
		syscall(SYS_finit_module, fd, "", 0);
		close(fd);
	}
}

int gnet_user(struct err *e)
{
	load_net_modules();
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, ERR_IO, "socket: %s", strerror(errno));
	struct ifreq r;
	memset(&r, 0, sizeof r);
	snprintf(r.ifr_name, sizeof r.ifr_name, "eth0");
	int tries = 0;
	while (ioctl(fd, SIOCGIFFLAGS, &r) < 0 && tries++ < 500)
		usleep(10000); /* the device is probed asynchronously */
	int rc = 0;
	set_sin(&r.ifr_addr, GNET_ADDRESS);
	if (tries > 500)
		rc = err_set(e, ERR_UNAVAILABLE, "no eth0 appeared (is virtio_net in the kit?)");
	else if (ioctl(fd, SIOCSIFADDR, &r) < 0)
		rc = err_set(e, ERR_IO, "eth0 address: %s", strerror(errno));
	set_sin(&r.ifr_netmask, GNET_NETMASK);
	if (rc == 0 && ioctl(fd, SIOCSIFNETMASK, &r) < 0)
		rc = err_set(e, ERR_IO, "eth0 netmask: %s", strerror(errno));
	if (rc == 0)
		rc = if_up(fd, "eth0", e);
	if (rc == 0) {
		struct rtentry rt;
		memset(&rt, 0, sizeof rt);
		set_sin(&rt.rt_dst, "0.0.0.0");
		set_sin(&rt.rt_genmask, "0.0.0.0");
		set_sin(&rt.rt_gateway, GNET_GATEWAY);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			rc = err_set(e, ERR_IO, "default route: %s", strerror(errno));
	}
	close(fd);
	return rc;
}

static int write_text(const char *path, const char *text, struct err *e)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
	int ok = fputs(text, f) >= 0;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : err_set(e, ERR_IO, "writing %s", path);
}

int gnet_write_files(const char *dir, const char *hostname, const char *address,
		     const char *dns, struct err *e)
{
	cleanup_free char *hosts = xasprintf(
	    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n",
	    address ? address : "127.0.1.1", hostname);
	cleanup_free char *hp = xasprintf("%s/hosts", dir);
	int rc = write_text(hp, hosts, e);
	if (rc == 0 && dns) {
		cleanup_free char *resolv = xasprintf("nameserver %s\n", dns);
		cleanup_free char *rp = xasprintf("%s/resolv.conf", dir);
		rc = write_text(rp, resolv, e);
	}
	return rc;
}
