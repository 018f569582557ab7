/* SHA-256 (FIPS 180-4), incremental, for weight and pixel checksums. */
#ifndef RADFUSE_RUNTIME_SHA256_H
#define RADFUSE_RUNTIME_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

typedef struct rf_sha256 {
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;
} rf_sha256;

void rf_sha256_init(rf_sha256 *s);
void rf_sha256_update(rf_sha256 *s, const void *data, size_t n);
void rf_sha256_final(rf_sha256 *s, uint8_t digest[32]);
/* Lowercase hex of digest into out (65 bytes with the NUL). */
void rf_sha256_hex(const uint8_t digest[32], char out[65]);
/* SHA-256 of a whole file in hex; 0 on success, else an RF_E* code with err set. */
int rf_sha256_file(const char *path, char out[65], rf_err *err);

#endif
