/* snp_roots: the table of AMD SEV-SNP root and intermediate certificates
 * compiled into cocod (see snp_roots.c).  Internal to the snp module. */
#ifndef COCOD_SNP_ROOTS_H
#define COCOD_SNP_ROOTS_H

#include <stddef.h>

enum snp_root_kind { SNP_ROOT_ARK, SNP_ROOT_ASK, SNP_ROOT_ASVK };

struct snp_root {
	const char *product;     /* "Milan", "Genoa", "Turin" */
	enum snp_root_kind kind; /* ARK, ASK (VCEK issuer) or ASVK (VLEK issuer) */
	const char *pem;         /* one certificate */
	const char *sha256;      /* lowercase hex fingerprint of its DER */
};

extern const struct snp_root snp__roots[];
extern const size_t snp__nroots;

#endif
