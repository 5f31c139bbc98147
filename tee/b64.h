/* b64: base64 in the two alphabets the KBS protocol uses: standard with
 * padding (nonces, RVPS payloads) and URL-safe without padding (JOSE).
 * Decoders accept input with or without padding and reject anything else
 * (whitespace, the other alphabet's characters, bad trailing bits). */
#ifndef COCOD_B64_H
#define COCOD_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encodes `n` bytes; the result is malloc'd and NUL-terminated. */
char *b64_encode(const void *in, size_t n);
char *b64url_encode(const void *in, size_t n);

/* Decodes `len` characters (len = (size_t)-1: strlen) into a malloc'd
 * buffer (NUL-terminated for convenience); -1 on malformed input. */
int b64_decode(const char *in, size_t len, uint8_t **out, size_t *outlen);
int b64url_decode(const char *in, size_t len, uint8_t **out, size_t *outlen);

#endif
