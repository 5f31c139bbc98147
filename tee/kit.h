/* kit: the guest kit (vmlinuz, initramfs.img, kit.json) that every pod VM
 * boots, built by packaging/guest-kit.sh.  kit.json records the SHA-384 of
 * the kernel, of the initramfs and of the kernel command line, and the
 * sim launch measurement derived from them:
 *
 *   measurement = SHA-384(kernel_sha384 || initramfs_sha384 || cmdline_sha384)
 *
 * over the three 48-byte digests as raw bytes, in that order (the
 * command line is hashed as its bytes, without a trailing NUL or newline).
 * kit_load re-hashes the files so a manifest never vouches for a file it
 * does not describe. */
#ifndef COCOD_KIT_H
#define COCOD_KIT_H

#include "err.h"

#define KIT_HASH_LEN 48

struct kit {
	char *dir, *kernel_path, *initramfs_path, *cmdline;
	unsigned char kernel[KIT_HASH_LEN], initramfs[KIT_HASH_LEN];
	unsigned char cmdline_hash[KIT_HASH_LEN], measurement[KIT_HASH_LEN];
};

/* The sim launch measurement of the three digests (see above). */
void kit_measure(const unsigned char kernel[KIT_HASH_LEN],
		 const unsigned char initramfs[KIT_HASH_LEN],
		 const unsigned char cmdline[KIT_HASH_LEN], unsigned char out[KIT_HASH_LEN]);

/* Loads DIR/kit.json and checks every hash in it against the files and
 * against each other; ERR_INVALID names the first mismatch.  kit_fini
 * releases the strings. */
int kit_load(const char *dir, struct kit *k, struct err *e);
void kit_fini(struct kit *k);

/* Checks a parsed manifest document against the given digests of the
 * files (exposed for unit tests; kit_load calls it). */
int kit_check_manifest(const char *json_text, const unsigned char kernel[KIT_HASH_LEN],
		       const unsigned char initramfs[KIT_HASH_LEN], struct kit *k, struct err *e);

/* The default kit directory: `kit/` beside the running binary when it
 * exists (build/cocod -> build/kit), else /usr/local/share/cocod/kit.
 * Caller frees. */
char *kit_default_dir(void);

/* `cocod kit show [--kit DIR] [--json]`. */
int kit_main(int argc, char **argv);

#endif
