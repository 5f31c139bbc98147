/* Unit tests for kit: the measurement is SHA-384 over the three digests
 * concatenated (checked against a digest computed here with OpenSSL), a
 * consistent manifest loads, and every kind of mismatch is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kit.h"
#include "util.h"

static void sha384(const void *p, size_t n, unsigned char out[48])
{
	unsigned int len;
	EVP_Digest(p, n, out, &len, EVP_sha384(), NULL);
}

static char *hex(const unsigned char *p, char out[97])
{
	hex_encode(p, 48, out);
	return out;
}

static void measurement_is_hash_of_concatenation(void **state)
{
	unsigned char k[48], i[48], c[48], m[48], want[48], cat[144];
	sha384("kernel", 6, k);
	sha384("initrd", 6, i);
	sha384("cmdline", 7, c);
	memcpy(cat, k, 48);
	memcpy(cat + 48, i, 48);
	memcpy(cat + 96, c, 48);
	sha384(cat, sizeof cat, want);
	kit_measure(k, i, c, m);
	assert_memory_equal(m, want, 48);
	kit_measure(i, k, c, m); /* order matters */
	assert_memory_not_equal(m, want, 48);
}

/* A manifest for files "KERNEL" and "INITRD" with `cmdline`; `tweak`
 * replaces one field's value. */
static char *manifest(const char *cmdline, const char *field, const char *value)
{
	unsigned char k[48], i[48], c[48], m[48];
	char hk[97], hi[97], hc[97], hm[97];
	sha384("KERNEL", 6, k);
	sha384("INITRD", 6, i);
	sha384(cmdline, strlen(cmdline), c);
	kit_measure(k, i, c, m);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kernel_sha384", hex(k, hk),
			      "initramfs_sha384", hex(i, hi), "cmdline", cmdline, "cmdline_sha384",
			      hex(c, hc), "measurement", hex(m, hm));
	if (field)
		json_object_set_new(o, field, json_string(value));
	char *s = json_dumps(o, 0);
	json_decref(o);
	return s;
}

static void manifest_checks(void **state)
{
	unsigned char k[48], i[48];
	struct kit kt = {0};
	struct err e = {0};
	sha384("KERNEL", 6, k);
	sha384("INITRD", 6, i);
	char *good = manifest("console=ttyS0", NULL, NULL);
	assert_int_equal(kit_check_manifest(good, k, i, &kt, &e), 0);
	assert_string_equal(kt.cmdline, "console=ttyS0");
	kit_fini(&kt);
	/* The files differ from what the manifest says. */
	unsigned char other[48];
	sha384("OTHER", 5, other);
	assert_int_equal(kit_check_manifest(good, other, i, &kt, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "kernel"));
	assert_int_equal(kit_check_manifest(good, k, other, &kt, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "initramfs"));
	free(good);
	/* The command line was edited without updating its hash. */
	char *s = manifest("console=ttyS0", "cmdline", "console=ttyS0 init=/bin/sh");
	assert_int_equal(kit_check_manifest(s, k, i, &kt, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "cmdline_sha384"));
	free(s);
	char zeros[97];
	memset(zeros, '0', 96);
	zeros[96] = '\0';
	s = manifest("console=ttyS0", "measurement", zeros);
	assert_int_equal(kit_check_manifest(s, k, i, &kt, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "measurement"));
	free(s);
	s = manifest("console=ttyS0", "kernel_sha384", "XYZ");
	assert_int_equal(kit_check_manifest(s, k, i, &kt, &e), ERR_INVALID);
	free(s);
	assert_int_equal(kit_check_manifest("[]", k, i, &kt, &e), ERR_INVALID);
	kit_fini(&kt);
}

static void load_rehashes_files(void **state)
{
	char dir[] = "/tmp/test_kit.XXXXXX", p[128];
	struct err e = {0};
	struct kit kt;
	assert_non_null(mkdtemp(dir));
	char *m = manifest("quiet", NULL, NULL);
	snprintf(p, sizeof p, "%s/kit.json", dir);
	assert_int_equal(file_write_atomic(p, m, strlen(m), 0644, &e), 0);
	snprintf(p, sizeof p, "%s/vmlinuz", dir);
	assert_int_equal(file_write_atomic(p, "KERNEL", 6, 0644, &e), 0);
	snprintf(p, sizeof p, "%s/initramfs.img", dir);
	assert_int_equal(file_write_atomic(p, "INITRD", 6, 0644, &e), 0);
	assert_int_equal(kit_load(dir, &kt, &e), 0);
	kit_fini(&kt);
	assert_int_equal(file_write_atomic(p, "INITRd", 6, 0644, &e), 0);
	assert_int_equal(kit_load(dir, &kt, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "initramfs"));
	free(m);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(measurement_is_hash_of_concatenation),
		cmocka_unit_test(manifest_checks),
		cmocka_unit_test(load_rehashes_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
