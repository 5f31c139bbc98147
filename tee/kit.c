/* kit: see kit.h.  Hashes stream through OpenSSL's EVP in 1 MiB reads. */
#include "kit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

void kit_measure(const unsigned char kernel[KIT_HASH_LEN],
		 const unsigned char initramfs[KIT_HASH_LEN],
		 const unsigned char cmdline[KIT_HASH_LEN], unsigned char out[KIT_HASH_LEN])
{
	unsigned char cat[3 * KIT_HASH_LEN];
	unsigned int n = 0;
	memcpy(cat, kernel, KIT_HASH_LEN);
	memcpy(cat + KIT_HASH_LEN, initramfs, KIT_HASH_LEN);
	memcpy(cat + 2 * KIT_HASH_LEN, cmdline, KIT_HASH_LEN);
	EVP_Digest(cat, sizeof cat, out, &n, EVP_sha384(), NULL);
}

static int hash_file(const char *path, unsigned char out[KIT_HASH_LEN], struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha384(), NULL);
	char *b = xmalloc(1 << 20);
	ssize_t n;
	while ((n = read(fd, b, 1 << 20)) > 0)
		EVP_DigestUpdate(ctx, b, (size_t)n);
	int rc = n < 0 ? err_set(e, ERR_IO, "read %s: %s", path, strerror(errno)) : 0;
	unsigned int len = 0;
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
	free(b);
	close(fd);
	return rc;
}

static int unhex(const char *s, unsigned char out[KIT_HASH_LEN])
{
	if (!s || strlen(s) != 2 * KIT_HASH_LEN)
		return -1;
	for (int i = 0; i < KIT_HASH_LEN; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", s[2 * i]) ||
		    !strchr("0123456789abcdef", s[2 * i + 1]))
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int field(json_t *doc, const char *key, unsigned char out[KIT_HASH_LEN], struct err *e)
{
	if (unhex(json_string_value(json_object_get(doc, key)), out) < 0)
		return err_set(e, ERR_INVALID, "kit.json: %s is not 96 lowercase hex digits", key);
	return 0;
}

static int same(const unsigned char *a, const unsigned char *b, const char *what, struct err *e)
{
	if (memcmp(a, b, KIT_HASH_LEN) != 0)
		return err_set(e, ERR_INVALID, "kit.json: %s does not match", what);
	return 0;
}

int kit_check_manifest(const char *json_text, const unsigned char kernel[KIT_HASH_LEN],
		       const unsigned char initramfs[KIT_HASH_LEN], struct kit *k, struct err *e)
{
	json_error_t jerr;
	json_t *doc = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
	const char *cmdline = json_string_value(json_object_get(doc, "cmdline"));
	unsigned char want_cmd[KIT_HASH_LEN], want_m[KIT_HASH_LEN], m[KIT_HASH_LEN];
	unsigned int n = 0;
	int rc = 0;
	if (!json_is_object(doc) || !cmdline)
		rc = err_set(e, ERR_INVALID, "kit.json: not an object with a cmdline");
	else if (field(doc, "kernel_sha384", k->kernel, e) ||
		 field(doc, "initramfs_sha384", k->initramfs, e) ||
		 field(doc, "cmdline_sha384", want_cmd, e) ||
		 field(doc, "measurement", want_m, e))
		rc = e->code;
	if (rc == 0) {
		EVP_Digest(cmdline, strlen(cmdline), k->cmdline_hash, &n, EVP_sha384(), NULL);
		kit_measure(k->kernel, k->initramfs, k->cmdline_hash, m);
		if (same(kernel, k->kernel, "kernel_sha384 (vmlinuz)", e) ||
		    same(initramfs, k->initramfs, "initramfs_sha384 (initramfs.img)", e) ||
		    same(want_cmd, k->cmdline_hash, "cmdline_sha384", e) ||
		    same(want_m, m, "measurement", e))
			rc = e->code;
	}
	if (rc == 0) {
		memcpy(k->measurement, m, KIT_HASH_LEN);
		free(k->cmdline);
		k->cmdline = xstrdup(cmdline);
	}
	json_decref(doc);
	return rc;
}

int kit_load(const char *dir, struct kit *k, struct err *e)
{
	memset(k, 0, sizeof *k);
	k->dir = xstrdup(dir);
	k->kernel_path = xasprintf("%s/vmlinuz", dir);
	k->initramfs_path = xasprintf("%s/initramfs.img", dir);
	cleanup_free char *mpath = xasprintf("%s/kit.json", dir);
	cleanup_free char *text = NULL;
	unsigned char kh[KIT_HASH_LEN], ih[KIT_HASH_LEN];
	size_t len;
	int rc = file_read(mpath, 1 << 16, &text, &len, e);
	if (rc == 0 && (rc = hash_file(k->kernel_path, kh, e)) == 0 &&
	    (rc = hash_file(k->initramfs_path, ih, e)) == 0)
		rc = kit_check_manifest(text, kh, ih, k, e);
	if (rc)
		kit_fini(k);
	return rc ? err_wrap(e, "kit %s", dir) : 0;
}

void kit_fini(struct kit *k)
{
	free(k->dir);
	free(k->kernel_path);
	free(k->initramfs_path);
	free(k->cmdline);
	memset(k, 0, sizeof *k);
}

char *kit_default_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *d = xasprintf("%s/kit", dirname(exe));
		struct stat st;
		if (stat(d, &st) == 0 && S_ISDIR(st.st_mode))
			return d;
		free(d);
	}
	return xstrdup("/usr/local/share/cocod/kit");
}

static void print_kit(const struct kit *k, int as_json)
{
	char kh[2 * KIT_HASH_LEN + 1], ih[sizeof kh], ch[sizeof kh], mh[sizeof kh];
	hex_encode(k->kernel, KIT_HASH_LEN, kh);
	hex_encode(k->initramfs, KIT_HASH_LEN, ih);
	hex_encode(k->cmdline_hash, KIT_HASH_LEN, ch);
	hex_encode(k->measurement, KIT_HASH_LEN, mh);
	if (as_json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "dir", k->dir,
				      "kernel_sha384", kh, "initramfs_sha384", ih, "cmdline",
				      k->cmdline, "cmdline_sha384", ch, "measurement", mh,
				      "verified", 1);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
		return;
	}
	printf("kit:         %s\nkernel:      %s\n             sha384 %s\n"
	       "initramfs:   %s\n             sha384 %s\ncmdline:     %s\n"
	       "             sha384 %s\nmeasurement: %s\nverified:    yes (files match kit.json)\n",
	       k->dir, k->kernel_path, kh, k->initramfs_path, ih, k->cmdline, ch, mh);
}

int kit_main(int argc, char **argv)
{
	const char *usage = "usage: cocod kit show [--kit DIR] [--json]\n";
	const char *dir = NULL;
	int as_json = 0;
	if (argc < 2 || strcmp(argv[1], "show") != 0) {
		int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
		fputs(usage, help ? stdout : stderr);
		return help ? 0 : 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--kit") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			as_json = 1;
		} else {
			fprintf(stderr, "cocod kit: unexpected argument %s\n%s", argv[i], usage);
			return 2;
		}
	}
	cleanup_free char *def = dir ? NULL : kit_default_dir();
	struct kit k;
	struct err e = {0};
	if (kit_load(dir ? dir : def, &k, &e)) {
		fprintf(stderr, "cocod kit: %s\n", e.msg);
		return 1;
	}
	print_kit(&k, as_json);
	kit_fini(&k);
	return 0;
}
