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

/* ---- the text encoder: a BERT over a whole note ---- */

/*
 * How a note longer than the model's window is encoded: windows of
 * window_tokens content tokens (plus [CLS] and [SEP]), each starting stride
 * tokens after the previous one, until the last token is covered. 0 means
 * the default: the model's max_positions - 2 content tokens, stride half of it.
 * batch: windows run per forward pass (0: 8).
 */
typedef struct rf_text_window {
    int32_t window_tokens, stride, batch;
} rf_text_window;

/*
 * A note through the encoder. tokens[i * hidden ...] is the final hidden
 * state of content token i (no [CLS]/[SEP]), taken from the window in which
 * that token has the most context on both sides (the window where
 * min(tokens before it, tokens after it) is largest; the earlier window on
 * ties). document is the mean of the windows' [CLS] states, each weighted by
 * the number of tokens it was chosen for (one window: its [CLS] state).
 * ids, byte_start/byte_end and start/end are the content tokens' ids and
 * spans in the note, as rf_wordpiece_encode gives them.
 */
typedef struct rf_text_encoding {
    int32_t n, hidden, windows;
    float *tokens;   /* [n, hidden] */
    float *document; /* [hidden] */
    int32_t *ids, *byte_start, *byte_end, *start, *end;
} rf_text_encoding;

/*
 * Tokenizes len bytes of UTF-8 text with vocab (no truncation: every token is
 * encoded) and runs model (a BertModel: RF_ARCH_BERT) over the windows
 * described by win (NULL: defaults), token_type 0 everywhere. Fails on
 * invalid UTF-8, a model that is not BERT, token ids past the model's
 * vocabulary (vocab and model do not match), or windows larger than the
 * model's positions. On failure *out holds no allocation.
 */
int rf_text_encode(rf_model *model, const rf_vocab *vocab, const char *text, size_t len, const rf_text_window *win,
                   rf_text_encoding *out, rf_err *err);
void rf_text_encoding_free(rf_text_encoding *enc);

#ifdef __cplusplus
}
#endif
#endif
