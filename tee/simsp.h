/* simsp: the `sim` secure processor, a software stand-in for AMD's PSP on
 * boxes without TEE hardware (like CoCo's kata-qemu-coco-dev).  It issues
 * SNP-format version 3 reports signed by the box's own chain
 * ARK -> ASK -> VCEK, built like AMD's: ARK and ASK RSA-4096 signing with
 * RSA-PSS SHA-384 (salt 48), VCEK EC P-384 carrying AMD's TCB and hwID
 * extensions.  The snp verifier accepts these reports only when given the
 * sim chain as a trust anchor (simsp_trust), and then says `sim: true`.
 *
 * How to tell sim evidence apart (documented so that nobody mistakes it for
 * hardware): ARK subject CN "ARK-cocod-sim", ASK "SEV-cocod-sim", all three
 * certificates with O "cocod sim (no TEE protection)"; CHIP_ID starts with
 * the ASCII bytes "cocodsim" (56 random bytes follow, fixed per chain);
 * product "Milan-B0", CPUID family 0x19 model 0x01 stepping 0x01, TCB
 * bl=3 tee=0 snp=8 ucode=115, firmware 1.55.21.  It gives no protection.
 *
 * Keys: only the VCEK private key is kept (the ARK and ASK keys are thrown
 * away once the chain is issued), so the serialised form is one PEM text:
 * the VCEK key, then the VCEK, ASK and ARK certificates.  The caller seals
 * it at rest.  A `struct simsp` is read-only after creation except for
 * signing, which OpenSSL allows from several threads. */
#ifndef COCOD_SIMSP_H
#define COCOD_SIMSP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "snp.h"

#define SIMSP_CHIP_ID_PREFIX "cocodsim"

struct simsp;

/* Generates a fresh chain (two RSA-4096 keys: about a second or more). */
int simsp_generate(struct simsp **out, struct err *e);

/* Loads a chain serialised by simsp_save; checks that the key matches the
 * VCEK and that the chain verifies. */
int simsp_load(const char *pem, size_t len, struct simsp **out, struct err *e);

/* Serialises the chain with its private key as PEM text (a secret): the
 * caller frees it with simsp_secret_free. */
int simsp_save(const struct simsp *sp, char **pem, size_t *len, struct err *e);
void simsp_secret_free(char *pem, size_t len);

void simsp_free(struct simsp *sp);

/* Public certificates as PEM (caller frees): the VCEK alone, and the
 * ASK + ARK that a verifier adds as its sim trust anchor. */
char *simsp_vcek_pem(const struct simsp *sp);
char *simsp_roots_pem(const struct simsp *sp);

/* Adds this chain's ARK and ASK to `t`. */
int simsp_trust(const struct simsp *sp, struct snp_trust *t, struct err *e);

/* Issues a version 3 report: `report_data` (64 bytes) from the guest,
 * `host_data` (32, may be NULL: zeros) and `measurement` (48, may be NULL)
 * from the launcher, `policy` as in the guest policy (bit 17 is forced to
 * 1).  All fields are a function of the inputs and the chain; only the
 * ECDSA signature differs between two calls. */
int simsp_report(const struct simsp *sp, const uint8_t report_data[64], const uint8_t host_data[32],
                 const uint8_t measurement[48], uint64_t policy, uint8_t out[SNP_REPORT_SIZE],
                 struct err *e);

/* Re-signs bytes 0..0x29F of `report` with the sim VCEK (tests build
 * tampered but well-signed reports with it). */
int simsp_sign(const struct simsp *sp, uint8_t report[SNP_REPORT_SIZE], struct err *e);

#endif
