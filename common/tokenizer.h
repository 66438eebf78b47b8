/* tokenizer.h - CLIP's byte-level BPE tokenizer, id for id OpenAI's SimpleTokenizer.
 *
 * What cl_tokenize does to a text, step by step, exactly as OpenAI's
 * simple_tokenizer.py (which open_clip copies) does it in Python:
 *   1. decode UTF-8 strictly (invalid input is CL_ERR_DATA naming the byte offset);
 *   2. html.unescape twice: all 2231 HTML5 named references of Python's
 *      html.entities.html5 (including the 106 accepted without ';', and Python's
 *      longest-prefix rule for unknown names such as "&ampx" -> "&x"), numeric
 *      references &#NN; &#xHH; (';' optional) with Python's rules: 0x80-0x9F are
 *      Windows-1252, 0 / surrogates / > 0x10FFFF become U+FFFD, noncharacters and
 *      most C0/C1 controls are dropped;
 *   3. str.strip(); 4. collapse runs of regex \s to one space, strip again;
 *   5. str.lower(): Unicode simple lower case, plus U+0130 -> "i\u0307" and the
 *      final-sigma rule for U+03A3, as Python's;
 *   6. split with the regex
 *        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *      under IGNORECASE (so "'\u017f" matches 's; U+0345 matches no branch);
 *   7. each piece's UTF-8 bytes become byte symbols (GPT-2's bytes_to_unicode), the
 *      last carrying "</w>", and merges apply lowest rank first, every occurrence of
 *      the best pair left to right, until none applies.  A piece that is exactly
 *      <|startoftext|> or <|endoftext|> is that special token.
 *   8. ids = <|startoftext|>, pieces' ids, <|endoftext|>, zeros to `context`; if longer
 *      than `context` it is cut to `context` and its last id set to <|endoftext|>.
 *
 * Divergence from the reference: OpenAI runs ftfy.fix_text() before step 2; ftfy is
 * not available here and is not reimplemented.  Its default fixers change, and so
 * open_clip's ids differ from ours for: curly quotes (U+2018/2019/201C/201D become
 * ' and ", so "dog\u2019s" gives dog + 's there, dog + \u2019 + s here), text that is
 * not in NFC (a decomposed "e\u0301"), fullwidth/halfwidth forms, Latin ligatures
 * (U+FB01), control characters it removes, C1 controls, mojibake ("caf\u00c3\u00a9"),
 * and a third HTML unescape when the text has no '<'.  Other text is unaffected.
 *
 * Unicode facts (classes, lower case, white space) come from utf8proc plus a few
 * exceptions so they equal Python 3.11 + the regex module (Unicode 14/15);
 * tests/unit/test_tokenizer.c checks every code point against
 * tests/fixtures/tokenizer/unicode_facts.txt written by scripts/clip_tokenizer.py.
 *
 * Files: the HF layout.  vocab.json maps token string -> id; ids must be exactly
 * 0..N-1, each once; it must hold the 512 byte symbols (with and without "</w>")
 * and <|startoftext|>, <|endoftext|>.  merges.txt: an optional "#version" first
 * line, then one "a b" merge per line, rank = order; both symbols and their
 * concatenation must be tokens of vocab.json.
 *
 * A loaded tokenizer is read-only: cl_tokenize may run on it from many threads.
 */
#ifndef CL_TOKENIZER_H
#define CL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CL_TOKENIZER_MAX_FILE ((size_t)256 << 20) /* cap on vocab.json / merges.txt */
#define CL_TOKENIZER_MAX_TEXT ((size_t)256 << 20) /* cap on one text, in bytes */

struct cl_tokenizer;

/* Load vocab.json + merges.txt.  On failure *t is NULL and e names the file, the
 * line or token, and what was expected. */
enum cl_status cl_tokenizer_load(struct cl_tokenizer **t, const char *vocab_json_path,
                                 const char *merges_txt_path, struct cl_err *e);

void cl_tokenizer_free(struct cl_tokenizer *t); /* NULL is fine */

/* text (UTF-8, len bytes; NUL bytes are ordinary characters) -> ids[context]
 * (context >= 1): start token, tokens, end token, zero padding; truncated to context
 * keeping the end token last.  n_out (may be NULL) receives the number of ids before
 * the padding.  CL_ERR_DATA on invalid UTF-8 ("... at byte offset N ...") or text
 * longer than CL_TOKENIZER_MAX_TEXT; CL_ERR_USAGE if context < 1. */
enum cl_status cl_tokenize(const struct cl_tokenizer *t, const char *text, size_t len,
                           int32_t *ids, int context, int *n_out, struct cl_err *e);

int32_t cl_tokenizer_sot(const struct cl_tokenizer *t); /* <|startoftext|> */
int32_t cl_tokenizer_eot(const struct cl_tokenizer *t); /* <|endoftext|> */
size_t cl_tokenizer_vocab_size(const struct cl_tokenizer *t);
size_t cl_tokenizer_merge_count(const struct cl_tokenizer *t);

/* The token's string in vocab.json (byte symbols, "</w>" suffix), or NULL if id is
 * out of range.  For debugging and decoding. */
const char *cl_tokenizer_token(const struct cl_tokenizer *t, int32_t id);

/* ---- hooks for tests ---------------------------------------------------------
 * Merging uses a heap (O(n log n) per piece) when the merge list is "ordered" (every
 * merge using a symbol ranks after the merges producing it, true of every trained
 * BPE including CLIP's); then it provably equals the reference's quadratic loop.
 * Otherwise, or when forced here, that loop itself runs. */
int cl_tokenizer_merges_ordered(const struct cl_tokenizer *t);
void cl_tokenizer_force_naive_bpe(struct cl_tokenizer *t, int on);

/* Per code point facts used above, for an exhaustive check against Python:
 * class under the regex: 'L' letter, 'N' number, 'P' other, 'S' regex \s, 'X' none;
 * isspace: Python's str.isspace(); sigma: 'I' case-ignorable, 'C' cased, '-' neither
 * (as Python's final-sigma rule sees them); lower: str.lower() of the lone character
 * into out[2], returns its length (1 or 2). */
char cl_tokenizer_cp_class(uint32_t cp);
int cl_tokenizer_cp_isspace(uint32_t cp);
char cl_tokenizer_cp_sigma(uint32_t cp);
int cl_tokenizer_cp_lower(uint32_t cp, uint32_t out[2]);

#endif
