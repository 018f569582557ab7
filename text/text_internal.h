/* What the text module's files share; not part of the public API. */
#ifndef RADFUSE_TEXT_INTERNAL_H
#define RADFUSE_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "radfuse/text.h"

/* FNV-1a of prefix then s (a vocabulary lookup of "##" + piece without copying). */
uint64_t text_hash(const char *prefix, size_t plen, const char *s, size_t len);
/* The id of prefix + s, or -1. */
int32_t text_vocab_find(const rf_vocab *v, const char *prefix, size_t plen, const char *s, size_t len);

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF);
 * on false, *bad is the offset of the first invalid byte. */
bool text_utf8_valid(const char *s, size_t len, size_t *bad);

#endif
