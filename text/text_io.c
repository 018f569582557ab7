/* Strict UTF-8 checks for text inputs. */
#include "text/text_internal.h"

bool text_utf8_valid(const char *text, size_t len, size_t *bad)
{
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 4, cp = c & 0x07, min = 0x10000;
        } else {
            *bad = i;
            return false;
        }
        if (i + k > len) {
            *bad = i;
            return false;
        }
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                *bad = i;
                return false;
            }
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}
