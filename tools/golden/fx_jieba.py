"""Reference for the T5 PEGASUS tokenizer (ALGORITHMS.md §4.2): Python jieba 0.42.1 (Debian's
python3-jieba) and the bert4keras `Tokenizer(do_lower_case=True, pre_tokenize=jieba.cut(s, HMM=False))`
path, re-implemented here line for line from bert4keras 0.11 (tokenizers.py), on every CSL and LCSTS text.

Writes packages/models/test/fixtures/t5_pegasus_python.json.gz:
  files     the data files read, in order, with their text counts (two fields a line)
  seg_hash  per text, FNV-1a 32 over the code-point lengths of jieba's words (the text is fixed,
            so the lengths are the segmentation)
  ids_hash  per text, FNV-1a 32 over the Python path's ids ([CLS] ... [SEP], no truncation)
  sample    every SAMPLE_EVERY-th text in full: index, word lengths, ids, decode(ids)
  edge      EDGE_TEXTS in full: text, word lengths, ids, decode(ids)
Texts are enumerated as the test does: each file read as UTF-8, split on '\n' (a final empty line
dropped), each line split on '\t', fields in order.
Run: /usr/bin/python3 tools/golden/fx_jieba.py (needs no torch).
"""
import gzip
import json
import logging
import os
import re
import unicodedata

import jieba

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
VOCAB = os.path.join(ROOT, "packages", "models", "vocab", "t5_pegasus_base", "vocab.txt")
OUT = os.path.join(ROOT, "packages", "models", "test", "fixtures", "t5_pegasus_python.json.gz")
FILES = [
    "summarization/csl/train.tsv",
    "summarization/csl/dev.tsv",
    "summarization/lcsts/train.tsv",
    "summarization/lcsts/dev.tsv",
]
SAMPLE_EVERY = 40
# Hand-made texts for the corners of the path: accents and case, final sigma, controls, emoji,
# a word over 200 characters, characters missing from the vocabulary, Python-only whitespace,
# full-width forms, special tokens written in the text, decimals and English.
EDGE_TEXTS = [
    "Héllo WÖRLD, café Ångström naïve",
    "ΣΑΣ ΟΔΟΣ σας",
    "a\u0000b\u200bc\ufffdd\te\u3000f",
    "今天心情🙂很好😀！",
    "x" * 250 + " 长词",
    "PKAIN_spx算法和PKAIN_in算法",
    "第一行\u2028第二行\u2029第三段",
    "ﬁnance ﬂow ①②③",
    "[CLS]特殊[SEP]符号[MASK]",
    "价格是123.45元，增长了3.5%。English words don't break; it's fine.",
    "全角ＡＢＣ１２３和半角abc123",
    "\u00a0前后空白\u00a0 ",
    "",
]


# ---- bert4keras 0.11 tokenizers.py, the parts the T5 PEGASUS path uses ----

def lowercase_and_normalize(text):
    text = text.lower()
    text = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def is_space(ch):
    return ch == " " or ch == "\n" or ch == "\r" or ch == "\t" or unicodedata.category(ch) == "Zs"


def is_punctuation(ch):
    code = ord(ch)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(ch).startswith("P"))


def is_cjk_character(ch):
    code = ord(ch)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def is_control(ch):
    return unicodedata.category(ch) in ("Cc", "Cf")


def cjk_punctuation():
    return ("\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d\uff0f\uff1a\uff1b"
            "\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f\uff40\uff5b\uff5c\uff5d\uff5e\uff5f"
            "\uff60\uff62\uff63\uff64\u3000\u3001\u3003\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f"
            "\u3010\u3011\u3014\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c\u301d\u301e\u301f\u3030"
            "\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e\u201f\u2026\u2027\ufe4f\ufe51"
            "\ufe54\u00b7\uff01\uff1f\uff61\u3002")


class Tokenizer:
    def __init__(self, vocab_path, word_maxlen=200):
        with open(vocab_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        self.token_dict = {t: i for i, t in enumerate(tokens)}
        self.id_to_token = tokens
        self.word_maxlen = word_maxlen
        self.unk = self.token_dict["[UNK]"]

    def _tokenize(self, text, pre_tokenize=True):
        text = lowercase_and_normalize(text)
        if pre_tokenize:
            tokens, words = [], []
            for token in jieba.cut(text, HMM=False):
                words.append(token)
                if token in self.token_dict:
                    tokens.append(token)
                else:
                    tokens.extend(self._tokenize(token, False))
            return tokens, words
        spaced = ""
        for ch in text:
            if is_punctuation(ch) or is_cjk_character(ch):
                spaced += " " + ch + " "
            elif is_space(ch):
                spaced += " "
            elif ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
                continue
            else:
                spaced += ch
        tokens = []
        for word in spaced.strip().split():
            tokens.extend(self._word_piece_tokenize(word))
        return tokens

    def _word_piece_tokenize(self, word):
        if len(word) > self.word_maxlen:
            return [word]
        tokens, start, end = [], 0, 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.token_dict:
                    break
                end -= 1
            if start == end:
                end += 1
            tokens.append(sub)
            start = end
        return tokens

    def encode(self, text):
        tokens, words = self._tokenize(text)
        tokens = ["[CLS]"] + tokens + ["[SEP]"]
        return [self.token_dict.get(t, self.unk) for t in tokens], words

    def decode(self, ids):
        tokens = [self.id_to_token[i] for i in ids]
        tokens = [t for t in tokens if not (t and t[0] == "[" and t[-1] == "]")]
        text = ""
        for i, token in enumerate(tokens):
            if token[:2] == "##":
                text += token[2:]
            elif len(token) == 1 and is_cjk_character(token):
                text += token
            elif len(token) == 1 and is_punctuation(token):
                text += token
                text += " "
            elif i > 0 and is_cjk_character(text[-1]):
                text += token
            else:
                text += " "
                text += token
        text = re.sub(" +", " ", text)
        text = re.sub("' (re|m|s|t|ve|d|ll) ", "'\\1 ", text)
        punctuation = cjk_punctuation() + "+-/={(<["
        punctuation_regex = "|".join([re.escape(p) for p in punctuation])
        punctuation_regex = "(%s) " % punctuation_regex
        text = re.sub(punctuation_regex, "\\1", text)
        text = re.sub(r"(\d\.) (\d)", "\\1\\2", text)
        return text.strip()


# ---- fixture ----

def fnv1a(values):
    h = 0x811C9DC5
    for v in values:
        v &= 0xFFFFFFFF
        for shift in (0, 8, 16, 24):
            h ^= (v >> shift) & 0xFF
            h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def texts_of(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        out.extend(line.split("\t"))
    return out


def main():
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    tok = Tokenizer(VOCAB)
    files, seg_hash, ids_hash, sample = [], [], [], []
    index = 0
    for rel in FILES:
        texts = texts_of(os.path.join(DATA, rel))
        files.append({"path": rel, "texts": len(texts)})
        for text in texts:
            ids, words = tok.encode(text)
            lengths = [len(w) for w in words]
            seg_hash.append(fnv1a(lengths))
            ids_hash.append(fnv1a(ids))
            if index % SAMPLE_EVERY == 0:
                sample.append({"index": index, "seg": lengths, "ids": ids, "decoded": tok.decode(ids)})
            index += 1
    edge = []
    for text in EDGE_TEXTS:
        ids, words = tok.encode(text)
        edge.append({"text": text, "seg": [len(w) for w in words], "ids": ids, "decoded": tok.decode(ids)})
    doc = {
        "reference": "Python jieba %s cut(HMM=False) + bert4keras 0.11 Tokenizer(do_lower_case=True)" % jieba.__version__,
        "hash": "FNV-1a 32 over uint32 little-endian values",
        "files": files,
        "seg_hash": seg_hash,
        "ids_hash": ids_hash,
        "sample_every": SAMPLE_EVERY,
        "sample": sample,
        "edge": edge,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(raw)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {index} texts, {len(sample)} in full)")


if __name__ == "__main__":
    main()
