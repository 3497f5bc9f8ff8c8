#!/usr/bin/env python3
"""Writes tokenizer parity fixtures: expected ids/pieces/decodes from the Hugging Face `tokenizers`
library, for tests/engine/test_tokenizer_parity.cpp.

Usage (needs `pip install tokenizers`; the project ran it with tokenizers 0.23.2):
    python3 scripts/make_tokenizer_fixtures.py --out tests/fixtures/tokenizer \
        --tokenizer default=engine/assets/tokenizer.json \
        --tokenizer gpt4o=.tools/npm/gpt4o/package/models/tokenizer.json

Each --tokenizer NAME=PATH gives NAME.json with the full text set. For the default tokenizer,
variants (patched copies: extra added tokens with lstrip/rstrip/single_word, ignore_merges,
GPT-2's ByteLevel regex with add_prefix_space, every Split behavior with and without invert,
a literal Split pattern) are written as variant_*.json; each fixture stores its patch so the C++
test rebuilds the same tokenizer.json. Texts are stored in the fixtures, so the C++ side never
re-generates them. The random texts use a fixed seed.
"""
import argparse
import json
import os
import random

import tokenizers
from tokenizers import Tokenizer

SPECIAL_TEXTS = [
    "<beginning_of_sentence>user name=user\nhi<end_of_sentence>\n",
    "a<end_of_sentence>b<end_of_sentence><end_of_sentence>",
    "<|endoftext|>text<|endoftext|> <|endofprompt|>",
    "<end_of_sentence <end_of_sentence> >end_of_sentence>",
    "x <pad><fim_prefix>def f():<fim_middle> pass<fim_suffix>",
]

TEXTS = [
    "", " ", "  ", "\n", "\n\n\n", "\t", " \t \n ", "a", "A", "hello world", "Hello, World!",
    "def f(x):\n  return x", "def f(x):\n    return x * 2\n\n\nclass A:\n    pass\n",
    "    indented\n        more\n\tTabbed\r\nCRLF line\r\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot\n",
    "x = {'key': [1, 2, 3], \"other\": None}  # comment\n",
    "It's, I'm, you're, we've, they'll, he'd, IT'S, I'M, YOU'RE, 'S 'T 'Re",
    "don't can't won't shouldn't y'all ma'am",
    "1 12 123 1234 12345 123456 3.14159 1e-10 0x1F 1,000,000",
    "Ünïcödé façade naïve résumé coöperate Æsir œuvre straße",
    "日本語のテキスト、中文文本，한국어 텍스트。",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ ✨",
    "Combining: e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 \u05e9\u05c1\u05b8",
    "Mixed scripts: Ελληνικά Кириллица עברית العربية हिन्दी ไทย",
    "Fullwidth: ＡＢＣ１２３ and superscripts x² y³ ½ ⅓ Ⅻ",
    "Whitespace runs:     end   \n\n   \n\t\t\t\nx",
    "trailing spaces   ", "   leading spaces", "\u00a0nbsp\u00a0\u2003em\u3000ideographic",
    "Kelvin \u212a and long s \u017f: '\u017f '\u212a 'S",
    "punct!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
    "path/to/file.py:12: error: something\n/usr/lib/x86_64-linux-gnu/libc.so.6",
    "https://example.com/a?b=c&d=e#frag <tag attr=\"v\">text</tag>",
    "snake_case camelCase PascalCase SCREAMING_CASE kebab-case __dunder__",
    "<think>\nreasoning\n</think>\n<tool_calls>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_calls>",
    "a\r\nb\rc\n\rd", "'''docstring'''\n\"\"\"another\"\"\"\n",
    "\x00\x01\x02\x1b[31mred\x1b[0m\x7f",
    "lambda x: x if x else (y := 3)  # walrus\nprint(f\"{x!r:>10}\")",
    "ÀÉÎÕÜ ǅ ǈ ǋ ǲ ᾈ ᾙ",  # Lt (titlecase) letters
    "ʰʲʷ ˈˌ ᵃᵇᶜ ꜀ ꜁",  # Lm letters
    "١٢٣ ۴۵۶ ४५६ ໑໒໓ 𝟘𝟙𝟚",  # other-script digits
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𓀀𓀁 𐍈",  # astral letters
]


def random_texts(n, seed=1234):
    rnd = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789", " ", "  ", "\n", "\t", "\r\n", "'", "'s", "'LL",
        "(){}[]<>.,;:!?\"#$%&*+-/=@\\^_`|~",
        "éüßçñø", "日本中文한국", "😀👍🏽🇺🇸✨", "\u0301\u0308\u094d", "\u00a0\u2003\u3000",
        "\u212a\u017f", "١٢३", "def ", "return ", "self.", "    ",
        "<end_of_sentence>", "<beginning_of_sentence>", "<|endoftext|>", "<pad>",
    ]
    out = []
    for _ in range(n):
        k = rnd.randint(1, 40)
        out.append("".join(rnd.choice(rnd.choice(pools)) if rnd.random() < 0.7 else rnd.choice(pools)
                           for _ in range(k)))
    return out


def source_samples(root):
    """A few of the repository's own files (stored in the fixture, so they may change later)."""
    out = []
    for rel in ["scripts/gen_unicode_tables.py", "engine/unicode_regex.h", "engine/bpe_trainer.h"]:
        p = os.path.join(root, rel)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                out.append(f.read())
    return out


def encode_all(tok, texts):
    cases = []
    for t in texts:
        tok.encode_special_tokens = False
        ids = tok.encode(t, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_ns = tok.encode(t, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(t)] if tok.pre_tokenizer else []
        decoded = tok.decode(ids, skip_special_tokens=False)
        decoded_skip = tok.decode(ids, skip_special_tokens=True)
        cases.append(compact({
            "text": t,
            "ids": ids,
            "ids_no_special": ids_ns,
            "decoded": decoded,
            "decoded_skip_special": decoded_skip,
            "pieces": pieces,
        }))
    return cases


def compact(case):
    """Drops fields equal to what they default to, to keep fixtures small: ids_no_special
    defaults to ids, decoded to text, decoded_skip_special to decoded."""
    out = dict(case)
    if out["ids_no_special"] == out["ids"]:
        del out["ids_no_special"]
    if out["decoded_skip_special"] == out["decoded"]:
        del out["decoded_skip_special"]
    if out["decoded"] == out["text"]:
        del out["decoded"]
    return out


def decode_cases(tok, n, seed=99):
    """Random id sequences (partial UTF-8 tokens included) and their lossy decodes."""
    rnd = random.Random(seed)
    vocab = tok.get_vocab()
    ids_pool = sorted(vocab.values())
    high = [i for t, i in vocab.items() if any(ord(c) >= 0x80 for c in t)][:2000]
    out = []
    for _ in range(n):
        ids = [rnd.choice(high if rnd.random() < 0.6 and high else ids_pool)
               for _ in range(rnd.randint(1, 8))]
        out.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)})
    return out


def variants():
    extra_added = [
        {"id": 200100, "content": "[MASK]", "single_word": False, "lstrip": True, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 200101, "content": "<|rs|>", "single_word": False, "lstrip": False, "rstrip": True,
         "normalized": False, "special": True},
        {"id": 200102, "content": "hello world", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": True, "special": False},
        {"id": 200103, "content": "word", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False},
        {"id": 200104, "content": "<end_of", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False},
    ]
    v = [{"name": "variant_added", "patch": {"added_tokens_append": extra_added,
                                              "model_ignore_merges": True}},
         {"name": "variant_gpt2", "patch": {"pre_tokenizer": {
             "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
             "use_regex": True}}},
         {"name": "variant_literal", "patch": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             {"type": "Split", "pattern": {"String": "::"}, "behavior": "Isolated", "invert": False},
             {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
              "use_regex": True}]}}}]
    for behavior in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        for invert in [False, True]:
            v.append({"name": f"variant_split_{behavior}_{'inv' if invert else 'fwd'}",
                      "patch": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                          {"type": "Split", "pattern": {"Regex": " ?[0-9]+|\\n|(?i:x)y*?z"},
                           "behavior": behavior, "invert": invert},
                          {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False}]}}})
    return v


def apply_patch(j, patch):
    j = json.loads(json.dumps(j))
    if "added_tokens_append" in patch:
        j["added_tokens"] = j.get("added_tokens", []) + patch["added_tokens_append"]
    if "model_ignore_merges" in patch:
        j["model"]["ignore_merges"] = patch["model_ignore_merges"]
    if "pre_tokenizer" in patch:
        j["pre_tokenizer"] = patch["pre_tokenizer"]
    return j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--out", required=True)
    ap.add_argument("--random", type=int, default=150)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(args.out, exist_ok=True)
    full_texts = TEXTS + SPECIAL_TEXTS + random_texts(args.random) + source_samples(root)
    meta = {"tokenizers_version": tokenizers.__version__}
    for spec in args.tokenizer:
        name, path = spec.split("=", 1)
        with open(path, encoding="utf-8") as f:
            base = json.load(f)
        tok = Tokenizer.from_str(json.dumps(base))
        fx = dict(meta, tokenizer=name, cases=encode_all(tok, full_texts),
                  decode_cases=decode_cases(tok, 60))
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
        if name != "default":
            continue
        for var in variants():
            vt = Tokenizer.from_str(json.dumps(apply_patch(base, var["patch"])))
            texts = TEXTS + SPECIAL_TEXTS + ["hello world [MASK] x  [MASK]   <|rs|>   y word words sword word.",
                                   "a::b:::c ::", "x1 22 333\n4444xyz XYYZ xz"]
            fx = dict(meta, tokenizer=var["name"], base="default", patch=var["patch"],
                      cases=encode_all(vt, texts))
            with open(os.path.join(args.out, f"{var['name']}.json"), "w", encoding="utf-8") as f:
                json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
    print("wrote fixtures to", args.out, "with tokenizers", tokenizers.__version__)


if __name__ == "__main__":
    main()
