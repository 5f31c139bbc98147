/* Unit tests for tar: layers built in memory are applied to a temporary
 * root; every attack the reader must block is tried (absolute names, `..`,
 * symlink escapes, hard links out of the root or to directories, oversized
 * entries), and OCI whiteouts and opaque directories are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tar.h"
#include "util.h"

struct fx {
	char top[64];   /* the test's directory */
	char root[128]; /* top/root: where layers go */
	int rootfd;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	snprintf(f->top, sizeof f->top, "/tmp/test_tar.XXXXXX");
	assert_non_null(mkdtemp(f->top));
	snprintf(f->root, sizeof f->root, "%s/root", f->top);
	assert_int_equal(mkdir(f->root, 0755), 0);
	f->rootfd = open(f->root, O_PATH | O_DIRECTORY);
	assert_true(f->rootfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	close(f->rootfd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->top);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Appends a ustar entry (and its data, padded). */
static void add(struct buf *b, const char *name, char type, unsigned mode, const char *link,
		const char *data)
{
	unsigned char h[512] = {0};
	size_t size = data ? strlen(data) : 0;
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011o", (unsigned)size & 07777777);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (unsigned char)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	buf_add(b, h, 512);
	if (size) {
		char pad[512] = {0};
		buf_add(b, data, size);
		buf_add(b, pad, (512 - size % 512) % 512);
	}
}

static void end(struct buf *b)
{
	char z[1024] = {0};
	buf_add(b, z, sizeof z);
}

static int apply(struct fx *f, struct buf *b, const struct tar_limits *lim, struct err *e)
{
	end(b);
	int rc = tar_apply(f->rootfd, b->data, b->len, lim, e);
	buf_fini(b);
	buf_init(b);
	return rc;
}

static int exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

static char *slurp(const char *dir, const char *name)
{
	char p[512], *text = NULL;
	size_t len;
	struct err e;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return file_read(p, 1 << 20, &text, &len, &e) == 0 ? text : NULL;
}

static void applies_files_dirs_symlinks(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	add(&b, "./", '5', 0755, NULL, NULL);
	add(&b, "./etc/", '5', 0755, NULL, NULL);
	add(&b, "./etc/hello", '0', 0640, NULL, "hi\n");
	add(&b, "deep/er/file", '0', 0600, NULL, "x");
	add(&b, "etc/link", '2', 0777, "hello", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	char *t = slurp(f->root, "etc/hello");
	assert_string_equal(t, "hi\n");
	free(t);
	char p[512], target[64] = "";
	struct stat st;
	snprintf(p, sizeof p, "%s/etc/hello", f->root);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	snprintf(p, sizeof p, "%s/etc/link", f->root);
	assert_int_equal(readlink(p, target, sizeof target - 1), 5);
	assert_string_equal(target, "hello");
	assert_true(exists(f->root, "deep/er/file"));
	buf_fini(&b);
}

static void refuses_absolute_and_dotdot(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	add(&b, "/abs", '0', 0644, NULL, "x");
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "absolute"));
	add(&b, "a/../../escape", '0', 0644, NULL, "x");
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, ".."));
	assert_false(exists(f->top, "escape"));
	add(&b, "l", '2', 0777, "/", NULL);
	add(&b, "", '0', 0644, NULL, "x"); /* the root made a file */
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	buf_fini(&b);
}

static void symlink_parents_resolve_inside_root(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	/* x -> .. (the test dir, outside the root), then x/escaped. */
	add(&b, "x", '2', 0777, "..", NULL);
	add(&b, "x/escaped", '0', 0644, NULL, "owned");
	add(&b, "y", '2', 0777, "/", NULL);
	add(&b, "y/abs-escaped", '0', 0644, NULL, "owned");
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	assert_false(exists(f->top, "escaped"));
	assert_false(exists("/", "abs-escaped"));
	assert_true(exists(f->root, "escaped"));
	assert_true(exists(f->root, "abs-escaped"));
	buf_fini(&b);
}

static void file_replaces_symlink_instead_of_following(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	char outside[128];
	snprintf(outside, sizeof outside, "%s/victim", f->top);
	assert_int_equal(file_write_atomic(outside, "safe", 4, 0644, &e), 0);
	buf_init(&b);
	add(&b, "v", '2', 0777, outside, NULL);
	add(&b, "v", '0', 0644, NULL, "overwritten");
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	char *t = slurp(f->top, "victim");
	assert_string_equal(t, "safe");
	free(t);
	t = slurp(f->root, "v");
	assert_string_equal(t, "overwritten");
	free(t);
	buf_fini(&b);
}

static void whiteouts_remove_only_lower_layers(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	add(&b, "a/keep", '0', 0644, NULL, "k");
	add(&b, "a/gone", '0', 0644, NULL, "g");
	add(&b, "b/old", '0', 0644, NULL, "o");
	add(&b, "b/sub/old2", '0', 0644, NULL, "o");
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	/* Layer 2: whiteout, an opaque dir whose marker comes after a new child. */
	add(&b, "a/.wh.gone", '0', 0644, NULL, NULL);
	add(&b, "b/new", '0', 0644, NULL, "n");
	add(&b, "b/.wh..wh..opq", '0', 0644, NULL, NULL);
	add(&b, "c/made", '0', 0644, NULL, "m");
	add(&b, "c/.wh.made", '0', 0644, NULL, NULL); /* same layer: kept */
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	assert_true(exists(f->root, "a/keep"));
	assert_false(exists(f->root, "a/gone"));
	assert_false(exists(f->root, "a/.wh.gone"));
	assert_false(exists(f->root, "b/old"));
	assert_false(exists(f->root, "b/sub"));
	assert_true(exists(f->root, "b/new"));
	assert_false(exists(f->root, "b/.wh..wh..opq"));
	assert_true(exists(f->root, "c/made"));
	add(&b, "a/.wh.", '0', 0644, NULL, NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	buf_fini(&b);
}

static void hard_links_stay_inside(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	add(&b, "etc/new", '0', 0644, NULL, "n");
	add(&b, "etc/new-hl", '1', 0644, "etc/new", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), 0);
	char p1[256], p2[256];
	struct stat s1, s2;
	snprintf(p1, sizeof p1, "%s/etc/new", f->root);
	snprintf(p2, sizeof p2, "%s/etc/new-hl", f->root);
	assert_int_equal(stat(p1, &s1), 0);
	assert_int_equal(stat(p2, &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);
	add(&b, "bad", '1', 0644, "../victim", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	add(&b, "dirlink", '1', 0644, "etc", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "directory"));
	add(&b, "missing", '1', 0644, "nope", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	/* Through a symlink to outside: resolved inside the root, so missing. */
	add(&b, "out", '2', 0777, "/etc", NULL);
	add(&b, "pw", '1', 0644, "out/passwd", NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	assert_false(exists(f->root, "pw"));
	buf_fini(&b);
}

static void size_and_count_caps(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	const struct tar_limits lim = {4, 100, 50};
	char big[61];
	memset(big, 'x', 60);
	big[60] = '\0';
	buf_init(&b);
	add(&b, "big", '0', 0644, NULL, big);
	assert_int_equal(apply(f, &b, &lim, &e), ERR_TOO_LARGE);
	assert_false(exists(f->root, "big"));
	big[40] = '\0';
	add(&b, "f1", '0', 0644, NULL, big);
	add(&b, "f2", '0', 0644, NULL, big);
	add(&b, "f3", '0', 0644, NULL, big); /* 120 bytes in all */
	assert_int_equal(apply(f, &b, &lim, &e), ERR_TOO_LARGE);
	for (int i = 0; i < 5; i++)
		add(&b, "d/", '5', 0755, NULL, NULL);
	assert_int_equal(apply(f, &b, &lim, &e), ERR_TOO_LARGE);
	buf_fini(&b);
}

static void malformed_headers_refused(void **state)
{
	struct fx *f = *state;
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	add(&b, "ok", '0', 0644, NULL, "data");
	b.data[10] ^= 1; /* checksum now wrong */
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "checksum"));
	add(&b, "trunc", '0', 0644, NULL, "data that is cut");
	b.len = 512 + 4; /* data cut short, no end blocks */
	assert_int_equal(tar_apply(f->rootfd, b.data, b.len, NULL, &e), ERR_INVALID);
	buf_fini(&b);
	buf_init(&b);
	add(&b, "dev", '9', 0644, NULL, NULL);
	assert_int_equal(apply(f, &b, NULL, &e), ERR_INVALID);
	buf_fini(&b);
}

static void clean_name_rules(void **state)
{
	char out[64];
	struct err e;
	assert_int_equal(tar_clean_name("./a//b/./c/", out, sizeof out, &e), 0);
	assert_string_equal(out, "a/b/c");
	assert_int_equal(tar_clean_name("./", out, sizeof out, &e), 0);
	assert_string_equal(out, "");
	assert_int_equal(tar_clean_name("a/..b", out, sizeof out, &e), 0);
	assert_string_equal(out, "a/..b");
	assert_int_equal(tar_clean_name("a/..", out, sizeof out, &e), ERR_INVALID);
	assert_int_equal(tar_clean_name("/a", out, sizeof out, &e), ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(applies_files_dirs_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_absolute_and_dotdot, setup, teardown),
		cmocka_unit_test_setup_teardown(symlink_parents_resolve_inside_root, setup, teardown),
		cmocka_unit_test_setup_teardown(file_replaces_symlink_instead_of_following, setup,
						teardown),
		cmocka_unit_test_setup_teardown(whiteouts_remove_only_lower_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(hard_links_stay_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(size_and_count_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_headers_refused, setup, teardown),
		cmocka_unit_test(clean_name_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
