/* imagecli: `cocod image import|ls|inspect|rm`.  Every action works on the
 * data directory directly (store + blob directory, like `cocod token
 * rotate`), not through the daemon: imports of any size need no HTTP body
 * limit, the commands work while the daemon is stopped, and a running
 * daemon sees the changes at once because both share the SQLite store and
 * every change is one transaction.  The data directory comes from
 * --data-dir, else from --config's data_dir, else the default rule. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "images.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

int cli_image(int argc, char **argv); /* also declared in cli.h */

static const char usage[] =
    "usage: cocod image import FILE [--name REPO]\n"
    "       cocod image ls [-o json]\n"
    "       cocod image inspect REF\n"
    "       cocod image rm REF...\n"
    "options: --data-dir DIR, --config FILE\n"
    "\n"
    "import   adds the images of an OCI image layout tar (skopeo copy ... oci-archive:F:TAG)\n"
    "         or a `docker save` tar, either optionally gzip'd, and prints the refs it tagged;\n"
    "         --name gives the repository for OCI tags that are bare (\"latest\")\n"
    "ls       lists the local images\n"
    "inspect  prints one image (config, layers, tags) as JSON\n"
    "rm       removes tags (REF or NAME@sha256:DIGEST); unreferenced blobs are deleted\n"
    "\n"
    "REF is normalised like docker: busybox = docker.io/library/busybox:latest.\n"
    "These commands work on the data directory directly; the daemon need not run.\n";

struct opts {
	const char *data_dir, *config, *name, *output;
	int first; /* index of the first operand */
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"data-dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
	    {"name", required_argument, NULL, 'n'},     {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0;
	optind = 2; /* argv[0] "image", argv[1] the action */
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data_dir = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return -1;
		default:
			fprintf(stderr, "cocod image: unknown or incomplete option %s\n%s",
			        argv[optind - 1], usage);
			return EXIT_USAGE;
		}
	}
	o->first = optind;
	return 0;
}

static char *data_dir_of(const struct opts *o)
{
	return cli_data_dir("image", o->data_dir, o->config);
}

static int open_images(const struct opts *o, store **st, images **im)
{
	struct err e = {0};
	cleanup_free char *dir = data_dir_of(o);
	if (!dir)
		return EXIT_USAGE;
	if (daemon_open_store(dir, st, &e) || images_open(*st, dir, im, &e)) {
		fprintf(stderr, "cocod image: %s\n", e.msg);
		store_close(*st);
		*st = NULL;
		return EXIT_FAIL;
	}
	return 0;
}

static void human_size(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int do_import(images *im, const struct opts *o, int argc, char **argv)
{
	json_t *refs;
	struct err e = {0};
	size_t i;
	json_t *r;
	if (argc - o->first != 1) {
		fprintf(stderr, "cocod image import: give one archive FILE\n%s", usage);
		return EXIT_USAGE;
	}
	if (images_import(im, argv[o->first], o->name, &refs, &e)) {
		fprintf(stderr, "cocod image import: %s\n", e.msg);
		return EXIT_FAIL;
	}
	json_array_foreach(refs, i, r)
	    printf("imported %s %s\n", json_string_value(json_object_get(r, "ref")),
	           json_string_value(json_object_get(r, "digest")));
	json_decref(refs);
	return 0;
}

static int do_ls(images *im, const struct opts *o)
{
	json_t *items, *it;
	struct err e = {0};
	size_t i;
	if (images_list(im, &items, &e)) {
		fprintf(stderr, "cocod image ls: %s\n", e.msg);
		return EXIT_FAIL;
	}
	if (o->output && strcmp(o->output, "json") == 0) {
		char *s = json_dumps(items, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(items);
		return 0;
	}
	printf("%-40s %-16s %-19s %-10s %s\n", "IMAGE", "TAG", "DIGEST", "SIZE", "IMPORTED");
	json_array_foreach(items, i, it)
	{
		char size[32];
		const char *d = json_string_value(json_object_get(it, "digest"));
		human_size((uint64_t)json_integer_value(json_object_get(it, "size")), size,
		           sizeof size);
		printf("%-40s %-16s %.19s %-10s %s\n",
		       json_string_value(json_object_get(it, "name")),
		       json_string_value(json_object_get(it, "tag")), d, size,
		       json_string_value(json_object_get(it, "created")));
	}
	json_decref(items);
	return 0;
}

static int do_inspect(images *im, const struct opts *o, int argc, char **argv)
{
	json_t *img;
	struct err e = {0};
	if (argc - o->first != 1) {
		fprintf(stderr, "cocod image inspect: give one REF\n%s", usage);
		return EXIT_USAGE;
	}
	if (images_inspect(im, argv[o->first], &img, &e)) {
		fprintf(stderr, "cocod image inspect: %s\n", e.msg);
		return EXIT_FAIL;
	}
	char *s = json_dumps(img, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(s);
	free(s);
	json_decref(img);
	return 0;
}

static int do_rm(images *im, const struct opts *o, int argc, char **argv)
{
	int rc = 0;
	if (argc - o->first < 1) {
		fprintf(stderr, "cocod image rm: give at least one REF\n%s", usage);
		return EXIT_USAGE;
	}
	for (int i = o->first; i < argc; i++) {
		json_t *removed, *r;
		struct err e = {0};
		size_t k;
		if (images_remove(im, argv[i], &removed, &e)) {
			fprintf(stderr, "cocod image rm: %s\n", e.msg);
			rc = EXIT_FAIL;
			continue;
		}
		json_array_foreach(removed, k, r)
		    printf("removed %s\n", json_string_value(json_object_get(r, "ref")));
		json_decref(removed);
	}
	return rc;
}

int cli_image(int argc, char **argv)
{
	static const char *const actions[] = {"import", "ls", "list", "inspect", "rm", "remove"};
	struct opts o = {0};
	store *st = NULL;
	images *im = NULL;
	int known = 0, rc;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		known |= !strcmp(argv[1], actions[i]);
	if (!known) {
		fprintf(stderr, "cocod image: unknown action %s\n%s", argv[1], usage);
		return EXIT_USAGE;
	}
	if ((rc = parse(argc, argv, &o)))
		return rc < 0 ? 0 : rc;
	if (log_get_level() > LOG_WARN)
		log_set_level(LOG_WARN);
	if ((rc = open_images(&o, &st, &im)))
		return rc;
	if (!strcmp(argv[1], "import"))
		rc = do_import(im, &o, argc, argv);
	else if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		rc = o.first < argc
		         ? (fprintf(stderr, "cocod image ls: unexpected %s\n", argv[o.first]),
		            EXIT_USAGE)
		         : do_ls(im, &o);
	else if (!strcmp(argv[1], "inspect"))
		rc = do_inspect(im, &o, argc, argv);
	else
		rc = do_rm(im, &o, argc, argv);
	images_close(im);
	store_close(st);
	return rc;
}
