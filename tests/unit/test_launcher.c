/* Unit tests for launcher: guest sizing from pod limits, the sim XML
 * builder (escaping, console and channel paths, bad input), the TEE
 * placeholders, and the XML parsed by libvirt's own parser through the
 * `test:///default` mock driver (memory and vCPUs read back).  Then the
 * launcher itself on test:///default: start (accelerator forced or probed
 * without a kernel → TCG), create, lifecycle events, exists, destroy, close.
 * Cases: size_defaults, size_limits, size_rounding, xml_sim_content,
 * xml_escaping, xml_rejects_bad_input, tee_placeholders, xml_parses_in_libvirt
 * (with the init-data digest in <metadata>),
 * launcher_lifecycle_on_mock, launcher_probe_without_kernel_is_tcg. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>

#include "launcher.h"
#include "util.h"

#define MiB (1ull << 20)

static void size_defaults(void **state)
{
	uint64_t mem;
	unsigned vcpus;
	launcher_vm_size(0, 0, LAUNCHER_MEMORY_DEFAULT, LAUNCHER_OVERHEAD_DEFAULT, 8, &mem, &vcpus);
	assert_int_equal(mem, (256 + 160) * MiB);
	assert_int_equal(vcpus, 1);
}

static void size_limits(void **state)
{
	uint64_t mem;
	unsigned vcpus;
	launcher_vm_size(1500, 512 * MiB, 256 * MiB, 100 * MiB, 8, &mem, &vcpus);
	assert_int_equal(mem, 612 * MiB);
	assert_int_equal(vcpus, 2); /* ceil(1.5) */
	launcher_vm_size(1, 0, 256 * MiB, 0, 8, &mem, &vcpus);
	assert_int_equal(vcpus, 1);
	launcher_vm_size(64000, 0, 256 * MiB, 0, 4, &mem, &vcpus);
	assert_int_equal(vcpus, 4); /* capped at the box */
	launcher_vm_size(1000000, 0, 256 * MiB, 0, 0, &mem, &vcpus);
	assert_int_equal(vcpus, LAUNCHER_MAX_VCPUS);
}

static void size_rounding(void **state)
{
	uint64_t mem;
	unsigned vcpus;
	launcher_vm_size(0, 100000000, 0, 0, 1, &mem, &vcpus); /* 95.37 MiB */
	assert_int_equal(mem, 96 * MiB);
	launcher_vm_size(0, 128 * MiB + 1, 0, 16 * MiB, 1, &mem, &vcpus);
	assert_int_equal(mem, 145 * MiB);
}

static struct launcher_vm sample(void)
{
	return (struct launcher_vm){
	    .uid = "0f8fad5b-d9cb-469f-a165-70867728950e",
	    .kernel = "/kit/vmlinuz",
	    .initrd = "/kit/initramfs.img",
	    .cmdline = "console=ttyS0 quiet",
	    .console_path = "/data/pods/0f8fad5b-d9cb-469f-a165-70867728950e/console.log",
	    .agent_socket = "/data/pods/0f8fad5b-d9cb-469f-a165-70867728950e/agent.sock",
	    .mem_bytes = 416 * MiB,
	    .vcpus = 2,
	};
}

static void xml_sim_content(void **state)
{
	struct launcher_vm vm = sample();
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), 0);
	assert_non_null(strstr(b.data, "<domain type='qemu'>"));
	assert_non_null(strstr(b.data, "<name>cocod-0f8fad5b-d9cb-469f-a165-70867728950e</name>"));
	assert_non_null(strstr(b.data, "<memory unit='KiB'>425984</memory>"));
	assert_non_null(strstr(b.data, "<vcpu>2</vcpu>"));
	assert_non_null(strstr(b.data, "<kernel>/kit/vmlinuz</kernel>"));
	assert_non_null(strstr(b.data, "<initrd>/kit/initramfs.img</initrd>"));
	assert_non_null(strstr(b.data, "<cmdline>console=ttyS0 quiet</cmdline>"));
	assert_non_null(strstr(b.data, "<source path='/data/pods/0f8fad5b-d9cb-469f-a165-"
	                               "70867728950e/console.log' append='on'/>"));
	assert_non_null(strstr(b.data, "<source mode='bind' path='/data/pods/0f8fad5b-d9cb-469f-"
	                               "a165-70867728950e/agent.sock'/>"));
	assert_non_null(strstr(b.data, "<target type='virtio' name='io.cocod.agent'/>"));
	assert_non_null(strstr(b.data, "<on_poweroff>destroy</on_poweroff>"));
	assert_non_null(
	    strstr(b.data, "<cocod:uid>0f8fad5b-d9cb-469f-a165-70867728950e</cocod:uid>"));
	assert_null(strstr(b.data, "<interface"));
	assert_null(strstr(b.data, "host-passthrough"));
	assert_null(strstr(b.data, "init-data-digest"));
	buf_fini(&b);
	vm.kvm = 1;
	vm.network = 1;
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), 0);
	assert_non_null(strstr(b.data, "<domain type='kvm'>"));
	assert_non_null(strstr(b.data, "<interface type='user'>"));
	buf_fini(&b);
}

static void xml_escaping(void **state)
{
	struct launcher_vm vm = sample();
	vm.kernel = "/k<&>'\"/vmlinuz";
	vm.cmdline = "a=\"b c\" d<e & f='g'";
	vm.console_path = "/tmp/x'y&z/console.log";
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), 0);
	assert_non_null(strstr(b.data, "<kernel>/k&lt;&amp;&gt;&apos;&quot;/vmlinuz</kernel>"));
	assert_non_null(
	    strstr(b.data, "<cmdline>a=&quot;b c&quot; d&lt;e &amp; f=&apos;g&apos;</cmdline>"));
	assert_non_null(strstr(b.data, "path='/tmp/x&apos;y&amp;z/console.log'"));
	buf_fini(&b);
}

static void xml_rejects_bad_input(void **state)
{
	struct buf b;
	struct err e = {0};
	struct launcher_vm vm = sample();
	vm.uid = "../etc";
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), ERR_INVALID);
	vm = sample();
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[0] = '/';
	longp[sizeof longp - 1] = '\0';
	vm.agent_socket = longp;
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "longer than 107"));
	vm = sample();
	vm.mem_bytes = MiB;
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), ERR_INVALID);
	const char *digests[] = {
	    "sha384:00", "md5:d41d8cd98f00b204e9800998ecf8427e",
	    "sha256:</cocod:init-data-digest><x/>", "",
	    "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"};
	for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++) {
		vm = sample();
		vm.init_data_digest = digests[i];
		assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), ERR_INVALID);
		assert_non_null(strstr(e.msg, "init-data digest"));
	}
	assert_int_equal(b.len, 0);
	buf_fini(&b);
}

static void tee_placeholders(void **state)
{
	assert_non_null(launcher_xml_builder("sim"));
	const char *tees[] = {"snp", "tdx", "se", "bogus"};
	for (size_t i = 0; i < 4; i++) {
		struct launcher_vm vm = sample();
		struct buf b;
		struct err e = {0};
		assert_null(launcher_xml_builder(tees[i]));
		buf_init(&b);
		assert_int_equal(launcher_build_xml(tees[i], &vm, &b, &e), ERR_UNAVAILABLE);
		assert_non_null(strstr(e.msg, "not supported on this box"));
		assert_non_null(strstr(e.msg, tees[i]));
		buf_fini(&b);
	}
}

#define DIGEST "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void xml_parses_in_libvirt(void **state)
{
	struct launcher_vm vm = sample();
	vm.cmdline = "a=\"b c\" d<e & f='g'";
	vm.init_data_digest = DIGEST;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), 0);
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainCreateXML(c, b.data, 0);
	assert_non_null(d);
	virDomainInfo info;
	assert_int_equal(virDomainGetInfo(d, &info), 0);
	assert_int_equal(info.maxMem, 416 * 1024);
	assert_int_equal(info.nrVirtCpu, 2);
	char *back = virDomainGetXMLDesc(d, 0);
	assert_non_null(back);
	assert_non_null(strstr(back, "io.cocod.agent"));
	assert_non_null(strstr(back, vm.agent_socket));
	assert_non_null(strstr(back, "d&lt;e &amp; f=&apos;g&apos;"));
	assert_non_null(
	    strstr(back, "<cocod:uid>0f8fad5b-d9cb-469f-a165-70867728950e</cocod:uid>"));
	assert_non_null(
	    strstr(back, "<cocod:init-data-digest>" DIGEST "</cocod:init-data-digest>"));
	free(back);
	virDomainDestroy(d);
	virDomainFree(d);
	virConnectClose(c);
	buf_fini(&b);
}

/* ---- the launcher on the mock driver ---- */

struct fx {
	uv_loop_t loop;
	launcher *l;
	int started, start_failed, done, done_failed, closed;
	int events_started, events_stopped;
	char last_uid[64];
};

static void on_started(void *arg, const struct err *e)
{
	struct fx *x = arg;
	x->started = 1;
	x->start_failed = e != NULL;
}

static void on_done(void *arg, const struct err *e)
{
	struct fx *x = arg;
	x->done++;
	x->done_failed += e != NULL;
}

static void on_event(void *ud, const char *uid, enum launcher_event ev, const char *reason)
{
	struct fx *x = ud;
	snprintf(x->last_uid, sizeof x->last_uid, "%s", uid);
	if (ev == LAUNCHER_STARTED)
		x->events_started++;
	else
		x->events_stopped++;
}

static void on_closed(void *arg)
{
	((struct fx *)arg)->closed = 1;
}

/* Runs the loop until *flag is set (or 10 s pass). */
static void run_until(struct fx *x, const int *flag)
{
	uint64_t end = now_ns() + 10000000000ull;
	while (!*flag && now_ns() < end)
		uv_run(&x->loop, UV_RUN_NOWAIT), usleep(2000);
	assert_true(*flag);
}

static void fx_start(struct fx *x, const char *accel, const char *kernel)
{
	struct launcher_opts o = {
	    .uri = "test:///default", .data_dir = "/tmp", .accel = accel, .kernel = kernel};
	struct err e = {0};
	memset(x, 0, sizeof *x);
	uv_loop_init(&x->loop);
	assert_int_equal(launcher_new(&x->loop, &o, &x->l, &e), 0);
	launcher_on_event(x->l, on_event, x);
	assert_int_equal(launcher_start(x->l, on_started, x), 0);
	run_until(x, &x->started);
	assert_false(x->start_failed);
}

static void fx_stop(struct fx *x)
{
	launcher_close(x->l, on_closed, x);
	run_until(x, &x->closed);
	launcher_free(x->l);
	uv_run(&x->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
}

static void launcher_lifecycle_on_mock(void **state)
{
	struct fx x;
	fx_start(&x, "tcg", NULL);
	assert_string_equal(launcher_accel(x.l), "tcg");
	/* the mock's own "test" domain is not ours */
	assert_null(launcher_found(x.l)[0]);
	struct launcher_vm vm = sample();
	vm.uid = "abc-1";
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	assert_int_equal(launcher_build_xml("sim", &vm, &b, &e), 0);
	assert_false(launcher_exists(x.l, "abc-1"));
	assert_int_equal(launcher_create(x.l, "abc-1", b.data, on_done, &x), 0);
	buf_fini(&b);
	run_until(&x, &x.done);
	assert_int_equal(x.done_failed, 0);
	assert_true(launcher_exists(x.l, "abc-1"));
	run_until(&x, &x.events_started);
	assert_string_equal(x.last_uid, "abc-1");
	/* a bad XML fails with libvirt's message */
	assert_int_equal(launcher_create(x.l, "abc-2", "<domain>", on_done, &x), 0);
	while (x.done < 2)
		uv_run(&x.loop, UV_RUN_ONCE);
	assert_int_equal(x.done_failed, 1);
	assert_false(launcher_exists(x.l, "abc-2"));
	assert_int_equal(launcher_destroy(x.l, "abc-1", on_done, &x), 0);
	run_until(&x, &x.events_stopped);
	assert_false(launcher_exists(x.l, "abc-1"));
	/* destroying what is not there succeeds */
	assert_int_equal(launcher_destroy(x.l, "nope", on_done, &x), 0);
	while (x.done < 4)
		uv_run(&x.loop, UV_RUN_ONCE);
	assert_int_equal(x.done_failed, 1);
	fx_stop(&x);
}

static void launcher_probe_without_kernel_is_tcg(void **state)
{
	struct fx x;
	fx_start(&x, "auto", "/nonexistent/vmlinuz");
	assert_string_equal(launcher_accel(x.l), "tcg");
	fx_stop(&x);
	struct launcher_opts o = {.data_dir = "/tmp", .accel = "fast"};
	struct err e = {0};
	launcher *l = NULL;
	uv_loop_t loop;
	uv_loop_init(&loop);
	assert_int_equal(launcher_new(&loop, &o, &l, &e), ERR_CONFIG);
	o.accel = "tcg";
	o.data_dir = "relative";
	assert_int_equal(launcher_new(&loop, &o, &l, &e), ERR_CONFIG);
	uv_loop_close(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(size_defaults),
	    cmocka_unit_test(size_limits),
	    cmocka_unit_test(size_rounding),
	    cmocka_unit_test(xml_sim_content),
	    cmocka_unit_test(xml_escaping),
	    cmocka_unit_test(xml_rejects_bad_input),
	    cmocka_unit_test(tee_placeholders),
	    cmocka_unit_test(xml_parses_in_libvirt),
	    cmocka_unit_test(launcher_lifecycle_on_mock),
	    cmocka_unit_test(launcher_probe_without_kernel_is_tcg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
