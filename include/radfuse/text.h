/*
 * radfuse text: notes, reports and labs into what the encoders take.
 *
 * The tokenizer is BERT's WordPiece, exactly as transformers' BertTokenizer
 * (uncased: text cleaned of control characters, whitespace normalized, CJK
 * ideographs split, lowercased, accents stripped, split on punctuation, then
 * greedy longest-match word pieces with "##"), and every token carries the
 * span of the input it came from, so that saliency on tokens can be shown on
 * the note itself.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line; nothing here keeps global state.
 */
#ifndef RADFUSE_TEXT_H
#define RADFUSE_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A WordPiece vocabulary: one token per line, the id is the line number. */
typedef struct rf_vocab rf_vocab;

/*
 * Reads a vocab.txt. Lines end with "\n" (a "\r" before it is dropped too);
 * a token listed twice keeps its last line's id, as transformers does. The
 * file must be valid UTF-8, hold at most 2^22 lines of at most 1024 bytes,
 * and contain [UNK], [CLS] and [SEP]; else one line naming the file and line.
 */
int rf_vocab_load(const char *path, rf_vocab **out, rf_err *err);
void rf_vocab_free(rf_vocab *vocab);

/* The id of a token (UTF-8, len bytes), or -1 when it is not in the vocabulary. */
int32_t rf_vocab_id(const rf_vocab *vocab, const char *token, size_t len);
/* The token of an id (NUL-terminated), or NULL when id is out of range. */
const char *rf_vocab_token(const rf_vocab *vocab, int32_t id);
int32_t rf_vocab_size(const rf_vocab *vocab);

/*
 * Tokens of one text, [CLS] first and [SEP] last. For token i: ids[i];
 * start[i]..end[i] the span of the input it came from in Unicode code points
 * (as Python's str indexes it, which is what transformers' offsets use), and
 * byte_start[i]..byte_end[i] the same span in bytes of the UTF-8 input.
 * [CLS] and [SEP] added around the text have empty spans at 0; a word that
 * becomes [UNK] spans the whole word.
 */
typedef struct rf_tokens {
    int32_t n;
    int32_t *ids;
    int32_t *start, *end;
    int32_t *byte_start, *byte_end;
} rf_tokens;

/*
 * Tokenizes len bytes of UTF-8 text as BertTokenizer(do_lower_case=True)
 * does, truncated to max_length tokens in all (max_length >= 2; [SEP] is
 * always last). Special tokens written literally in the text ("[CLS]",
 * "[SEP]", "[PAD]", "[MASK]", "[UNK]", case-sensitive) become those tokens,
 * as in transformers. Fails on invalid UTF-8 (naming the byte offset) and when
 * out of memory; NUL and other control characters are dropped as BERT drops
 * them. On failure *out holds no allocation.
 */
int rf_wordpiece_encode(const rf_vocab *vocab, const char *text, size_t len, int32_t max_length, rf_tokens *out,
                        rf_err *err);
void rf_tokens_free(rf_tokens *tokens);

#ifdef __cplusplus
}
#endif
#endif
