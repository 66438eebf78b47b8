#!/usr/bin/python3
"""clip_tokenizer.py - reference CLIP tokenizer (OpenAI SimpleTokenizer without ftfy).

A faithful re-implementation of OpenAI CLIP's simple_tokenizer.py (which open_clip
copies), reading the HF layout (vocab.json + merges.txt) instead of the gzipped merges
list. It is the oracle the C tokenizer (common/tokenizer.c) is tested against.

The one deliberate difference from the original: ftfy.fix_text is not applied (ftfy is
not available here, and the C tokenizer does not implement it either).  For text that
ftfy leaves alone -- anything that is not mojibake, has no C1/"smart" oddities ftfy
normalises, and no ftfy-specific fixes -- the ids are the original's.

Run with Debian's /usr/bin/python3 (needs the `regex` module).

  clip_tokenizer.py encode --vocab V --merges M [--context 77] [FILE|-]
      tokenize each line of FILE (UTF-8; '-' or no file = stdin); print the non-pad
      ids of each line, space separated, one line per input line
  clip_tokenizer.py train --out DIR [--merges N] [FILE|-]
      learn a tiny CLIP-layout BPE vocabulary (512 byte symbols + N merges + the two
      special tokens) from the lines of FILE; writes DIR/vocab.json, DIR/merges.txt
  clip_tokenizer.py fixtures --vocab V --merges M --out FILE.json [--random N]
      write golden ids for the built-in tricky texts (+ N seeded random strings)
  clip_tokenizer.py unicode --out FILE
      write the Unicode facts the C tokenizer must reproduce (character classes under
      the pre-tokenizer regex, str.lower(), str.isspace(), final-sigma context classes)
      as code point ranges
  clip_tokenizer.py entities
      print the C table of html.entities.html5 (for common/tokenizer_entities.h)
"""
import argparse
import html
import html.entities
import json
import os
import random
import sys
import unicodedata
from collections import Counter

import regex as re

PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                 re.IGNORECASE)
SOT, EOT = '<|startoftext|>', '<|endoftext|>'


def bytes_to_unicode():
    """OpenAI's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return set(zip(word[:-1], word[1:]))


def basic_clean(text):
    # The original runs ftfy.fix_text(text) first; skipped here (see module doc).
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r'\s+', ' ', text)
    return text.strip()


def clean(text):
    return whitespace_clean(basic_clean(text)).lower()


class ClipTokenizer:
    def __init__(self, vocab_path, merges_path):
        self.byte_encoder = bytes_to_unicode()
        with open(vocab_path, encoding='utf-8') as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(merges_path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        if lines and lines[0].startswith('#version'):
            lines = lines[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()]
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {SOT: SOT, EOT: EOT}

    def bpe(self, token):
        """Verbatim logic of SimpleTokenizer.bpe()."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = get_pairs(word)
        if not pairs:
            return token + '</w>'
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = ' '.join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        for token in re.findall(PAT, clean(text)):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(' '))
        return ids

    def __call__(self, text, context=77):
        """ids as open_clip's tokenize() row, without the zero padding."""
        sot, eot = self.encoder[SOT], self.encoder[EOT]
        tokens = [sot] + self.encode(text) + [eot]
        if len(tokens) > context:
            tokens = tokens[:context]
            tokens[-1] = eot
        return tokens


# ---------------------------------------------------------------- train (tiny vocab)

def train(lines, n_merges):
    """Plain BPE over CLIP's pre-tokenised words; ties broken by the pair's text."""
    be = bytes_to_unicode()
    words = Counter()
    for line in lines:
        for tok in re.findall(PAT, clean(line)):
            s = ''.join(be[b] for b in tok.encode('utf-8'))
            words[tuple(s[:-1]) + (s[-1] + '</w>',)] += 1
    merges = []
    for _ in range(n_merges):
        counts = Counter()
        for w, c in words.items():
            for p in zip(w[:-1], w[1:]):
                counts[p] += c
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        a, b = best
        new = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    vocab = list(be.values())
    vocab = vocab + [v + '</w>' for v in vocab]
    vocab += [a + b for a, b in merges]
    vocab += [SOT, EOT]
    return {t: i for i, t in enumerate(vocab)}, merges


# ---------------------------------------------------------------- golden fixtures

LONG = ' '.join(['a photo of a very long caption number %d with many words,' % i for i in range(12)])

TRICKY = [
    ('photo', 'a photo of a cat.'),
    ('upper', 'A PHOTO OF A CAT!!!'),
    ('apostrophes', "It's a dog's life; they're here, we've gone, I'm ok, you'll see, he'd go, don't."),
    ('apostrophes_upper', "IT'S THEY'RE WE'VE I'M YOU'LL HE'D DON'T"),
    ('apostrophe_runs', "''s '' 's' rock'n'roll o'clock 'tis ' 're'd"),
    ('apostrophe_long_s', "it'\u017f and <|\u017ftartoftext|>"),
    ('curly_apostrophe', 'it\u2019s don\u2019t'),
    ('digits', '1234567890 3.14159 2021-01-01 007 1st 2nd 10,000'),
    ('unicode_numbers', '\u00bd \u00b2 \u0663\u0664 \u3007 \u2167 \u2460 \U0001d7d8'),
    ('accents', 'caf\u00e9 na\u00efve r\u00e9sum\u00e9 Se\u00f1or \u00e0 la cr\u00e8me br\u00fbl\u00e9e'),
    ('accents_upper', '\u00c9COLE \u00c0\u00c9\u00ce\u00d5\u00dc \u00c5NGSTR\u00d6M \u0106\u0160\u017d'),
    ('dotted_capital_i', '\u0130STANBUL \u0130i \u0131I'),
    ('final_sigma', '\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 \u038c\u03a3\u039f\u03a3 \u03a3 \u0391\u03a3. \u0391\u03a3\'\u03a3 \u0391\u03a3\u0301 \u0391\u03a3b'),
    ('special_case', '\u01c5 \u1e9e \u212a \u2126 \u00df \ufb01 \u0149'),
    ('cjk', '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \u6c49\u5b57 \ud55c\uad6d\uc5b4'),
    ('emoji', '\U0001f431 cat \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \u2764\ufe0f'),
    ('combining', 'e\u0301te\u0301 a\u0345b n\u0303 \u0915\u094d\u0937 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22'),
    ('html_entities', '&amp; &lt;b&gt; &#39; &eacute; &quot;hi&quot; &amp;amp; &#x27; &#128512;'),
    ('html_numeric_edge', '&#0; &#x110000; &#150; &#1; &#13; &#xD800; &#99999999999999999999; &#x7f; &#65 &#x41x'),
    ('html_named_edge', '&notit; &ampx &copy2023 &nbsp;x &AElig &aacute; &AMP &amp;lt; &#; &; &unknownentity;'),
    ('html_prefix', '&ltb&gt1 &ltx; &LTz &copyright &amp1 &eacutex &notin &noti'),
    ('html_long_name', '&' + 'a' * 40 + '; &eacute' + 'z' * 40),
    ('whitespace', 'a\tb\nc\r\nd  e\u00a0f\u2003g\u3000h\u2028i\x0bj\x0ck'),
    ('isspace_only', '\x1c sep \x1f a\x1db \x1e'),
    ('edges', '   leading and trailing   '),
    ('special_tokens', '<|startoftext|>hello<|endoftext|> <|ENDOFTEXT|> !<|endoftext|> <|endoftext|'),
    ('punctuation', 'Hello, world!!! ... ?!?! (parens) [brackets] {braces} \u2014 \u201cquotes\u201d \u2018single\u2019 \u00abguillemets\u00bb'),
    ('url', 'https://example.com/a_b?c=d&e=f#frag user@example.org'),
    ('scripts', '\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u043f\u0440\u0438\u0432\u0435\u0442 \u041c\u0418\u0420 \u0928\u092e\u0938\u094d\u0924\u0947'),
    ('math_currency', '\u2211\u222b\u221a\u03c0\u2248\u2260 $100 \u20ac50 \u00a33 \u00a5'),
    ('zero_width', 'a\u200bb \ufeffbom \u00adsoft'),
    ('controls', 'a\x00b\x01c\x7fd\x85e'),
    ('long_word', 'supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis'),
    ('repeat', 'a' * 60 + ' ' + 'ha' * 30 + ' ' + '!' * 20),
    ('over_long', LONG),
    ('empty', ''),
    ('only_spaces', '      '),
    ('only_whitespace', '\t\n \r\n'),
    ('only_entity_space', '&nbsp;&#32;&#x20;'),
    ('single_char', 'x'),
]


def boundary_texts(tok, context):
    """Texts whose token count lands on the truncation boundary (context-2, -1, +0)."""
    out = []
    words = ['cat', 'dog', 'red', 'blue', 'tree', 'house']
    for extra in (0, 1, 2):
        n = context - 2 + extra - 1
        text = ' '.join(words[i % len(words)] for i in range(n + 1))
        out.append(('boundary_%+d' % (extra - 1), text))
    return out


RANDOM_POOL = (list('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') * 3 +
               list(" '''  \t\n&;#<>|!?.,-_") +
               ['&amp;', '&lt;', '&#39;', '&eacute;', '&#x41;', '&nbsp;', '<|endoftext|>', "'s", "'LL"] +
               list('\u00e9\u00c9\u00df\u0130\u0131\u03a3\u03c3\u017f\u0301\u0345\u200b\u00a0\u3000\u65e5\u672c\uac00'
                    '\u0663\u00bd\u2167\u212a\u01c5\u1e9e\ufb01') +
               ['\U0001f600', '\U0001f44d\U0001f3fd', '\U0001d7d8'])


def random_texts(n, seed=1234):
    rng = random.Random(seed)
    return [('random_%03d' % i, ''.join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(0, 30))))
            for i in range(n)]


INVALID_UTF8 = [
    ('bad_ff', b'abc\xff'),
    ('bad_overlong', b'x\xc0\xaf'),
    ('bad_surrogate', b'ab\xed\xa0\x80cd'),
    ('bad_too_big', b'\xf4\x90\x80\x80'),
    ('bad_truncated', b'hello \xe2\x82'),
    ('bad_continuation', b'ok \xe2\x28\xa1'),
    ('bad_lone_continuation', b'\x80abc'),
]


def make_fixtures(tok, n_random, context=77):
    cases = []
    for name, text in TRICKY + boundary_texts(tok, context) + random_texts(n_random):
        b = text.encode('utf-8')
        cases.append({'name': name, 'hex': b.hex(), 'text': text, 'ids': tok(text, context)})
    for name, b in INVALID_UTF8:
        try:
            b.decode('utf-8')
            raise SystemExit('fixture %s decodes' % name)
        except UnicodeDecodeError as err:
            cases.append({'name': name, 'hex': b.hex(), 'error_offset': err.start})
    return {'context': context, 'cases': cases}


# ---------------------------------------------------------------- unicode facts

def unicode_facts():
    """Per code point facts as ranges: regex class, isspace, lower(), sigma context."""
    one = {k: re.compile(p, re.IGNORECASE) for k, p in
           (('L', r'[\p{L}]'), ('N', r'[\p{N}]'), ('P', r'[^\s\p{L}\p{N}]'), ('S', r'\s'))}
    lines = ['# Unicode facts for the CLIP tokenizer, from Python %s (unicodedata %s), regex %s'
             % (sys.version.split()[0], unicodedata.unidata_version, re.__version__),
             '# C <first> <last> <class>: regex class under IGNORECASE: L letter run, N number,'
             ' P other run, S \\s, X matched by nothing',
             '# W <first> <last>: str.isspace()',
             '# G <first> <last> <I|C>: final-sigma context: I case-ignorable, C cased',
             '# M <cp> <lower...>: str.lower() differs from the character itself']
    runs = {'C': [], 'W': [], 'G': []}

    def push(kind, c, val):
        r = runs[kind]
        if r and r[-1][1] == c - 1 and r[-1][2] == val:
            r[-1][1] = c
        else:
            r.append([c, c, val])

    lower = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        cls = next((k for k, p in one.items() if p.fullmatch(ch)), 'X')
        push('C', c, cls)
        if ch.isspace():
            push('W', c, '')
        t1 = ('A' + ch + '\u03a3').lower().endswith('\u03c2')
        t2 = ('A\u03a3' + ch).lower()[1] == '\u03c2'
        sg = 'I' if t1 and t2 else 'C' if t1 else '-'
        if sg != '-':
            push('G', c, sg)
        lo = ch.lower()
        if lo != ch:
            lower.append('M %x %s' % (c, ' '.join('%x' % ord(x) for x in lo)))
    for kind in ('C', 'W', 'G'):
        for a, b, v in runs[kind]:
            if kind == 'C' and v == 'P':
                continue  # P is the default class: only the others are listed
            lines.append(('%s %x %x %s' % (kind, a, b, v)).rstrip())
    return '\n'.join(lines + lower) + '\n'


def entities_c():
    items = sorted(html.entities.html5.items())
    out = ['/* tokenizer_entities.h - generated by `scripts/clip_tokenizer.py entities` from',
           ' * Python %s html.entities.html5: every HTML5 named character reference, sorted' % sys.version.split()[0],
           ' * by name (strcmp order) for binary search.  Do not edit. */',
           '#ifndef CL_TOKENIZER_ENTITIES_H',
           '#define CL_TOKENIZER_ENTITIES_H',
           '',
           '#include <stdint.h>',
           '',
           'struct cl_html_entity {',
           '    const char *name;  /* with its ";" if the reference has one */',
           '    uint32_t cp[2];    /* the replacement: one or two code points, 0 = none */',
           '};',
           '',
           'static const struct cl_html_entity cl_html_entities[] = {']
    for name, val in items:
        assert len(val) in (1, 2) and name.isascii()
        cps = [ord(x) for x in val] + [0]
        out.append('    {"%s", {0x%x, 0x%x}},' % (name, cps[0], cps[1]))
    out += ['};', '', '#endif', '']
    return '\n'.join(out)


# ---------------------------------------------------------------- CLI

def read_lines(path):
    data = sys.stdin.buffer.read() if path in (None, '-') else open(path, 'rb').read()
    text = data.decode('utf-8')
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    e = sub.add_parser('encode')
    e.add_argument('--vocab', required=True)
    e.add_argument('--merges', required=True)
    e.add_argument('--context', type=int, default=77)
    e.add_argument('file', nargs='?')
    t = sub.add_parser('train')
    t.add_argument('--out', required=True)
    t.add_argument('--merges', type=int, default=300)
    t.add_argument('file', nargs='?')
    f = sub.add_parser('fixtures')
    f.add_argument('--vocab', required=True)
    f.add_argument('--merges', required=True)
    f.add_argument('--out', required=True)
    f.add_argument('--random', type=int, default=0)
    u = sub.add_parser('unicode')
    u.add_argument('--out', required=True)
    sub.add_parser('entities')
    a = ap.parse_args()

    if a.cmd == 'encode':
        tok = ClipTokenizer(a.vocab, a.merges)
        for line in read_lines(a.file):
            print(' '.join(str(i) for i in tok(line, a.context)))
    elif a.cmd == 'train':
        vocab, merges = train(read_lines(a.file), a.merges)
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, 'vocab.json'), 'w', encoding='utf-8') as fo:
            json.dump(vocab, fo, ensure_ascii=False)
        with open(os.path.join(a.out, 'merges.txt'), 'w', encoding='utf-8') as fo:
            fo.write('#version: 0.2\n' + ''.join('%s %s\n' % m for m in merges))
        print('%d tokens, %d merges' % (len(vocab), len(merges)), file=sys.stderr)
    elif a.cmd == 'fixtures':
        tok = ClipTokenizer(a.vocab, a.merges)
        fx = make_fixtures(tok, a.random)
        with open(a.out, 'w', encoding='utf-8') as fo:  # one case per line
            fo.write('{"context": %d, "cases": [\n' % fx['context'])
            fo.write(',\n'.join(json.dumps(c, ensure_ascii=False) for c in fx['cases']))
            fo.write('\n]}\n')
    elif a.cmd == 'unicode':
        with open(a.out, 'w', encoding='utf-8') as fo:
            fo.write(unicode_facts())
    elif a.cmd == 'entities':
        sys.stdout.write(entities_c())


if __name__ == '__main__':
    main()
