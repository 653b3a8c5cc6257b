#!/usr/bin/python3
"""clip_tokenizer_ref.py — a reference for ttmerge's CLIP tokenizer (data/clip_tokenizer.c).

CLIP's real vocabulary cannot be downloaded here, so this script makes one and checks the C
tokenizer against an independent Python implementation of open_clip's SimpleTokenizer:

  make DIR [--merges N] [--seed S]
      learns N BPE merges (default 4000) from a corpus (the class names and templates of
      suites/clip plus seeded generated text in several scripts) and writes them
        DIR/openclip/bpe_simple_vocab_16e6.txt.gz  open_clip's format: a header line, then one
            merge per line, no final newline, so that open_clip's split('\\n')[1:49152-256-2+1]
            reads exactly the N merges and the vocabulary is 512 + N + 2 ids;
        DIR/hf/vocab.json + DIR/hf/merges.txt      Hugging Face's format, the same ids, with
            <|startoftext|> / <|endoftext|> in place of <start_of_text> / <end_of_text>;
      the test strings DIR/cases.bin (NUL-separated; every class name, every template, every
      template filled with every class name, hand-written edge cases, seeded random strings),
      DIR/cases_lines.txt (the edge cases without a newline and texts holding NUL, one a line),
      and the reference rows DIR/expected_lines.txt and DIR/expected_openclip.txt (open_clip.tokenize: 77 ids, pad 0)
      and DIR/expected_hf.txt (the HF vocabulary, pad = eot).
  sweep DIR
      DIR/sweep.bin + DIR/expected_sweep.txt: every code point (but NUL, the surrogates and
      the code points this Python's `regex` module classifies by a newer Unicode version than
      unicodedata) in letter, digit and space contexts, unpadded ([sot] ids [eot]), to check
      the character classes, the lower-casing and the whitespace rules one by one.

The reference follows open_clip's src/open_clip/tokenizer.py (clean 'lower' = html.unescape
twice, whitespace collapse, str.lower(); no ftfy, which the C code does not do either).
"""
import gzip
import html
import json
import os
import random
import sys
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = os.path.join(HERE, "..", "suites", "clip")
CONTEXT = 77
OPENCLIP_SLICE = 49152 - 256 - 2 + 1


# ---------------------------------------------------------------- the tokenizer ----

def byte_alphabet():
    """bytes_to_unicode(): byte -> character, in open_clip's dict order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    order, chars, extra = keep[:], [chr(b) for b in keep], 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(chr(256 + extra))
            extra += 1
    return dict(zip(order, chars))


BYTE_CHAR = byte_alphabet()
# latin-1 character of a byte -> its byte character, for str.translate
LATIN1_TO_BYTE_CHAR = {b: c for b, c in BYTE_CHAR.items()}


def byte_encode(token):
    return token.encode("utf-8").decode("latin-1").translate(LATIN1_TO_BYTE_CHAR)


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class Reference:
    """open_clip's SimpleTokenizer, from a merges list and (HF) an explicit vocabulary."""

    def __init__(self, merges, specials, vocab=None, unk=None):
        self.ranks = {}
        for rank, merge in enumerate(merges):
            self.ranks[merge] = rank          # a repeated merge keeps its last rank
        if vocab is None:                     # open_clip builds the vocabulary from the merges
            words = list(BYTE_CHAR.values())
            words += [w + "</w>" for w in words]
            words += ["".join(m) for m in merges] + list(specials)
            vocab = {w: i for i, w in enumerate(words)}   # the last id of a repeated word
        self.vocab = vocab
        self.unk = unk
        self.specials = specials
        self.cache = {}
        self.pattern = regex.compile(
            "|".join(regex.escape(s) for s in specials)
            + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
        self.sot, self.eot = vocab[specials[0]], vocab[specials[1]]

    def bpe(self, token):
        if token in self.specials:
            return [token]
        if token not in self.cache:
            self.cache[token] = self.bpe_uncached(token)
        return self.cache[token]

    def bpe_uncached(self, token):
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(word[i], word[i + 1]) for i in range(len(word) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text):
        ids = []
        for token in self.pattern.findall(clean(text)):
            for sym in self.bpe(byte_encode(token)):
                ids.append(self.vocab[sym] if self.unk is None else self.vocab.get(sym, self.unk))
        return ids

    def row(self, text, pad=0):
        tokens = [self.sot] + self.encode(text) + [self.eot]
        if len(tokens) > CONTEXT:
            tokens = tokens[:CONTEXT]
            tokens[-1] = self.eot
        return tokens + [pad] * (CONTEXT - len(tokens))


def load_openclip(path):
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1:OPENCLIP_SLICE]
    return Reference([tuple(line.split()) for line in lines], ("<start_of_text>", "<end_of_text>"))


def load_hf(directory):
    with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(directory, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().strip().split("\n")[1:OPENCLIP_SLICE]
    return Reference([tuple(line.split()) for line in lines], ("<|startoftext|>", "<|endoftext|>"), vocab,
                     unk=vocab["<|endoftext|>"])


# ---------------------------------------------------------------- the corpus and BPE ----

def suites():
    """(dataset, class names, templates with {}) for every suites/clip/<dataset>/."""
    out = []
    for ds in sorted(os.listdir(SUITES)):
        d = os.path.join(SUITES, ds)
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "classnames.txt"), encoding="utf-8") as f:
            classes = f.read().splitlines()
        with open(os.path.join(d, "templates.txt"), encoding="utf-8") as f:
            templates = f.read().splitlines()
        out.append((ds, classes, templates))
    return out


WORDS = ("photo picture image satellite centered texture flower pet food number digit character review movie "
         "café naïve résumé façade Ärger Straße größe élève año niño ça coöperate "
         "кошка собака фотография спутник город улица "
         "قطة كلب صورة مدينة "
         "बिल्ली कुत्ता तस्वीर शहर "
         "猫 犬 写真 都市 花 食べ物 お き す つ な は ま や れ を 中文 日本語 한국어 고양이 "
         "σοφία λόγος ΣΟΦΙΑ οδός "
         "😀 🐱 🐶 🌸 👍🏽 👩‍💻").split()
SYLLABLES = "ka ri to mo na shi en er an on in th he re at st ing tion al le ou co de ve".split()


def corpus(seed):
    rng = random.Random(seed)
    texts = []
    for _, classes, templates in suites():
        for c in classes:
            texts.append(c)
            for t in templates:
                texts.append(t.replace("{}", c))
    for _ in range(3000):
        words = [rng.choice(WORDS) if rng.random() < 0.4 else "".join(rng.choice(SYLLABLES)
                 for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 8))]
        texts.append(" ".join(words))
    return texts


def learn_merges(texts, n_merges):
    """Plain BPE training over open_clip's pre-tokens: the most frequent adjacent pair wins
    (ties: the smallest pair), all its occurrences merge, until n_merges."""
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
    freq = {}
    for text in texts:
        for token in pat.findall(clean(text)):
            chars = byte_encode(token)
            word = tuple(chars[:-1]) + (chars[-1] + "</w>",)
            freq[word] = freq.get(word, 0) + 1
    words = [list(w) for w in freq]
    counts = list(freq.values())
    pair_count, where = {}, {}
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + counts[i]
            where.setdefault(p, set()).add(i)
    merges = []
    while len(merges) < n_merges and pair_count:
        best = min(pair_count, key=lambda p: (-pair_count[p], p))
        if pair_count[best] <= 0:
            break
        merges.append(best)
        for i in sorted(where.pop(best, ())):
            w = words[i]
            for p in zip(w, w[1:]):
                pair_count[p] -= counts[i]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    out.append(w[j] + w[j + 1])
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_count[p] = pair_count.get(p, 0) + counts[i]
                where.setdefault(p, set()).add(i)
        pair_count = {p: c for p, c in pair_count.items() if c > 0}
    return merges


def write_vocabs(directory, merges):
    os.makedirs(os.path.join(directory, "openclip"), exist_ok=True)
    os.makedirs(os.path.join(directory, "hf"), exist_ok=True)
    body = "\n".join(" ".join(m) for m in merges)
    # gzip without a timestamp: the same bytes for the same merges
    with open(os.path.join(directory, "openclip", "bpe_simple_vocab_16e6.txt.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(('"bpe_simple_vocab_16e6.txt#version: 0.2\n' + body).encode("utf-8"))
    ref = load_openclip(os.path.join(directory, "openclip", "bpe_simple_vocab_16e6.txt.gz"))
    assert len(ref.ranks) <= len(merges) and ref.sot == 512 + len(merges), "the open_clip slice lost merges"
    vocab = {w: i for w, i in ref.vocab.items() if w not in ("<start_of_text>", "<end_of_text>")}
    vocab["<|startoftext|>"] = ref.sot
    vocab["<|endoftext|>"] = ref.eot
    with open(os.path.join(directory, "hf", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "hf", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + body + "\n")


# ---------------------------------------------------------------- the test strings ----

EDGE = [
    "", " ", "   \t\n  ", "a", "A", "a photo of a cat", "A Photo Of A CAT.", "a  photo\tof\na\r\ncat",
    "  leading and trailing  ", "\u00a0nbsp\u00a0inside\u00a0", "ideographic\u3000space", "x\x1cy\x1dz\x1e\x1fw",
    "line\u2028sep\u2029para", "zero\u200bwidth", "nel\x85here", "vt\x0bff\x0c",
    "don't", "DON'T", "we're here", "they've", "I'm", "you'll", "he'd", "it's", "IT'S", "it'ſ", "'s", "''s'", "'x",
    "rock'n'roll", "o'clock", "l'été", "'re're", "'ll'", "'m'd",
    "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "a<start_of_text>b", "<ſtart_of_text>",
    "<|startoftext|>", "<|endoftext|>", "x<|endoftext|>y", "<<start_of_text>>", "<end_of_text",
    "3.14159", "1,000,000", "2024-01-31", "007", "½ ¾ ² ³ Ⅻ ⅻ ① ٣ ४ 五", "१२३", "٠١٢٣", "12ab34", "a1b2c3",
    "!!!", "?!", "...", "---", "(a)", "[b]", "{c}", "\"quoted\"", "'single'", "a/b\\c", "#hash @at $5 %p ^ & * _ + = ~ `",
    "«guillemets» „low“ ”right”", "—em–en−minus", "café", "cafe\u0301", "naïve", "Ångström", "Crème Brûlée",
    "ÀÉÎÕÜ", "İstanbul", "İ", "I", "ı", "ẞ", "STRASSE", "Straße", "ǅ ǈ ǋ ǲ",
    "ΣΟΦΟΣ", "Σ", "ΑΣ", "ΑΣ.", "ΑΣ Β", "ΑΣ'Β", "Σ-Σ", "ΣΑΣ ΣΑΣ", "ὈΔΥΣΣΕΎΣ", "ΌΣΟΣ", "A\u03a3", "ÉΣ\u0301",
    "ᾼ ᾳ Ᾰ", "\u0345", "a\u0345b", "!\u0345!", "\u03b9\u0345", "ﬁ ﬂ ﬀ", "Ｆｕｌｌｗｉｄｔｈ", "ＡＢＣ１２３",
    "😀", "😀😀😀", "a😀b", "👍🏽", "👩‍💻", "🇺🇸🇫🇷", "❤️", "☃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟘𝟙𝟚",
    "猫", "写真の猫", "中文字符", "日本語のテキスト", "한국어 텍스트", "ㄅㄆㄇ", "お き す つ な は ま や れ を",
    "Кошка на фото", "СОБАКА", "ёлка ЁЛКА", "Ѐ Ѝ", "قطة في الصورة", "مرحبا بالعالم", "العربية ٣",
    "बिल्ली की तस्वीर", "नमस्ते दुनिया", "हिन्दी१२", "ไทย", "עברית", "ქართული", "Ελληνικά", "Հայերեն",
    "&amp;", "&amp;amp;", "&amp;amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "&quot;q&quot;", "&#39;s", "&#x27;s", "&#X27;s",
    "&#65;&#x42;&#X43;", "&#0;", "&#13;", "&#128;", "&#x80;&#x9f;", "&#150;", "&#1;", "&#xD800;", "&#x110000;",
    "&#99999999999999999999;", "&#xFFFE;", "&#x1F600;", "&#;", "&#x;", "&#xg;", "&# 1;", "&", "&&", "a & b",
    "&amp", "&ampxyz", "&notit;", "&notin;", "&not", "&copy2024", "&COPY;", "&nbsp;x&nbsp;", "&nbsp&nbsp",
    "&thinsp;a&ensp;b&emsp;c", "&NewLine;x", "&Tab;y", "&eacute;t&eacute;", "&Eacute;", "&aacute", "&unknown;",
    "&ThisIsAVeryLongNameThatIsNotAnEntityAtAll;", "&abcdefghijklmnopqrstuvwxyzabcdefghijkl;", "&é;", "&lt",
    "&LT;x&GT;", "&amp;lt;", "&amp;#65;", "&amp;nbsp;x", "&#38;amp;", "&#x26;#x26;", "5 &lt; 6", "&frac12;",
    "&af;", "&fjlig;", "&NotEqualTilde;", "&acE;", "&bne;",
    "a\tb\nc\rd\fe\vf", "tab\t\t\ttab", "\u2003em\u2002en", "\u00ad soft\u00adhyphen", "\ufeffbom", "\ufffd",
    "\x7f\x80\x9f", "\x01\x02\x1b[31m", "control\x08char", "e\u0301\u0302\u0303", "\u0300start", "x\u20dd",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 300, "ab " * 100, "1" * 90, "! " * 80, "photo " * 76, "photo " * 75, "photo " * 74, "photo " * 73,
    "😀" * 40, "猫" * 100, "ΣΣΣ" * 30, "&amp;" * 50,
]

NUL_CASES = ["\0", "a\0b", "x\0\0y", "&amp\0;", "&\0amp;", "&#\x30065;", "it'\0s", "<start_of_text>\0",
             "\0 \0", "\u03a3\0", "A\u03a3\0"]

POOL = ("abcxyzABCXYZ0123456789 '.,;:!?-_/()[]{}\"&#;<>|`~@$%^*+=\t\n" "áéíóúàèìòùâêîôûäëïöüçñßÆæØøÅå"
        "İıẞſ" "ΣσςΑΒΓαβγΩω\u0345" "КошкаЁёЖж" "قطةمرحبا" "बिल्लीनमस्ते" "猫写真中文日本語한국어" "😀👍🏽🇺🇸❤️"
        "①½Ⅻ٣४" "\u00a0\u2003\u3000\u200b\u00ad\u0301\u0300" "ﬁＡ１")
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x41;", "&nbsp;", "&eacute;", "&amp;amp;", "&notit;",
            "&Sigma;", "&sigma;", "&#931;"]


def cases(seed):
    out = []
    for _, classes, templates in suites():
        out += classes
        out += templates
        for t in templates:
            out += [t.replace("{}", c) for c in classes]
    out += EDGE
    rng = random.Random(seed)
    for _ in range(2500):
        parts = []
        for _ in range(rng.randint(1, 24)):
            r = rng.random()
            if r < 0.1:
                parts.append(rng.choice(ENTITIES))
            elif r < 0.35:
                parts.append(rng.choice(WORDS))
            else:
                parts.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 6))))
        out.append(rng.choice(["", " ", "\t"]).join(parts))
    assert all("\0" not in s for s in out)
    return out


def skipped_code_points():
    """Code points this `regex` module files under another category than unicodedata does
    (a newer Unicode version): the C tokenizer follows libunistring's Unicode 14."""
    cps = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    text = "".join(map(chr, cps))
    letters = {cps[m.start()] for m in regex.finditer(r"\p{L}", text)}
    numbers = {cps[m.start()] for m in regex.finditer(r"\p{N}", text)}
    skip = set()
    for cp in cps:
        cat = unicodedata.category(chr(cp))
        if (cp in letters) != (cat[0] == "L") or (cp in numbers) != (cat[0] == "N"):
            skip.add(cp)
    return skip


def sweep_cases():
    skip = skipped_code_points()
    cps = [cp for cp in range(1, 0x110000) if not 0xD800 <= cp <= 0xDFFF and cp not in skip]
    out = []
    for i in range(0, len(cps), 16):
        out.append(" ".join("x%sx %s1%sΣ%s." % ((chr(c),) * 4) for c in cps[i:i + 16]))
    return out, len(skip)


def write_cases(directory, name, strings):
    with open(os.path.join(directory, name), "wb") as f:
        for s in strings:
            f.write(s.encode("utf-8") + b"\0")


def main(argv):
    if len(argv) < 2 or argv[0] not in ("make", "sweep"):
        sys.exit("usage: clip_tokenizer_ref.py make DIR [--merges N] [--seed S] | sweep DIR")
    directory = argv[1]
    n_merges, seed = 4000, 1
    rest = argv[2:]
    while rest:
        if rest[0] == "--merges":
            n_merges = int(rest[1])
        elif rest[0] == "--seed":
            seed = int(rest[1])
        else:
            sys.exit("clip_tokenizer_ref.py: unknown option " + rest[0])
        rest = rest[2:]
    os.makedirs(directory, exist_ok=True)
    if argv[0] == "make":
        merges = learn_merges(corpus(seed), n_merges)
        # Two lines open_clip's format allows and the loaders must treat as open_clip does: a
        # repeated merge (its later rank wins) and a merge whose result another one also makes.
        merges.append(merges[5])
        extra = next(m for m in merges if len(m[0]) >= 2 and not m[0].endswith("</w>"))
        merges.append((extra[0][:1], extra[0][1:] + extra[1]))
        write_vocabs(directory, merges)
        strings = cases(seed)
        write_cases(directory, "cases.bin", strings)
        oc = load_openclip(os.path.join(directory, "openclip", "bpe_simple_vocab_16e6.txt.gz"))
        hf = load_hf(os.path.join(directory, "hf"))
        with open(os.path.join(directory, "expected_openclip.txt"), "w") as f:
            for s in strings:
                f.write(" ".join(map(str, oc.row(s))) + "\n")
        with open(os.path.join(directory, "expected_hf.txt"), "w") as f:
            for s in strings:
                f.write(" ".join(map(str, hf.row(s, pad=hf.eot))) + "\n")
        # Line mode: the edge cases without a newline, and texts holding NUL characters.
        lines = [s for s in EDGE if "\n" not in s] + NUL_CASES
        with open(os.path.join(directory, "cases_lines.txt"), "wb") as f:
            f.write(b"".join(s.encode("utf-8") + b"\n" for s in lines))
        with open(os.path.join(directory, "expected_lines.txt"), "w") as f:
            for s in lines:
                f.write(" ".join(map(str, oc.row(s))) + "\n")
        print("clip_tokenizer_ref: %d merges, %d strings (%d over the context), sot %d eot %d"
              % (len(merges), len(strings), sum(len(oc.encode(s)) > CONTEXT - 2 for s in strings), oc.sot, oc.eot))
    else:
        oc = load_openclip(os.path.join(directory, "openclip", "bpe_simple_vocab_16e6.txt.gz"))
        strings, n_skipped = sweep_cases()
        write_cases(directory, "sweep.bin", strings)
        with open(os.path.join(directory, "expected_sweep.txt"), "w") as f:
            for s in strings:
                f.write(" ".join(map(str, [oc.sot] + oc.encode(s) + [oc.eot])) + "\n")
        print("clip_tokenizer_ref: sweep of %d strings, %d code points skipped (newer Unicode in regex)"
              % (len(strings), n_skipped))


if __name__ == "__main__":
    main(sys.argv[1:])
