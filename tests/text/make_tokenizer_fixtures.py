"""Writes small CLIP tokenizer folders and what transformers' CLIPTokenizer makes of many prompts.

    python make_tokenizer_fixtures.py OUT_DIR

The vocabulary is CLIP's layout in miniature: the 256 byte symbols, the same with "</w>", the merges
(learnt here by plain BPE on a small corpus, so merges build on merges as in CLIP's), then the special
tokens. Two folders: `clip` (pad = <|endoftext|>, as SD 1.x) and `clip_pad_bang` (pad = "!", as SD 2.x
and SDXL's second tokenizer; "!" then is a special token cut out of the text). For each, OUT_DIR/<name>/
holds expected.safetensors (`input_ids`, int64 [N, 77], padding="max_length", truncation=True) and
decoded.json (decode(skip_special_tokens=True) of each row). OUT_DIR/prompts.txt has the prompts, one
per line.
"""
import collections
import json
import os
import sys

import regex
import safetensors
import tokenizers
import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPTokenizer

PATTERN = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")

PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "an astronaut riding a horse on the moon, highly detailed, 8k",
    "a   dog    with   many     spaces",
    "  leading and trailing spaces  ",
    "tabs\tand\tvertical\x0bfeeds\x0cinside",
    "",
    " ",
    "don't stop, we're here; they've gone, I'm sure, you'll see, he'd say, it's 'quoted'",
    "DON'T SHOUT IT'S LOUD",
    "rock'n'roll o'clock 'tis",
    "!!!???...,,,;;;",
    "hello!!! world??? (parentheses) [brackets] {braces}",
    "email@example.com and https://example.org/path?q=1&r=2#frag",
    "prices: $12.99, €5, £3.50, ¥100",
    "numbers 1234567890 and 3.14159 and 1e-5 and -42",
    "year 2026, 4k, 1080p, 16:9",
    "café naïve résumé façade",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
    "Ångström and A\u030angstro\u0308m",
    "a\u0323\u0307 q\u0307\u0323 s\u0323\u0307",
    "İstanbul and ISTANBUL and ıi",
    "ΣΟΦΟΣ σοφός Ὀδυσσεύς",
    "Привет, мир! Москва",
    "日本語のテキストと漢字",
    "中文提示词：一只猫",
    "한국어 문장 그리고 한글",
    "\u1100\u1161\u11a8 decomposed hangul",
    "emoji 🐱🐶🚀 and ❤️ and 👍🏽",
    "zero\u200bwidth\u200cjoiners\u200d",
    "non\u00a0breaking\u2003em\u3000ideographic spaces",
    "line\u2028separator\u2029paragraph",
    "nel\u0085char and \u001cfile separators\u001f",
    "Ⅻ roman ① circled ½ fractions ² superscripts",
    "arabic ١٢٣ digits and devanagari १२३",
    "ﬁ ligature and ＦＵＬＬＷＩＤＴＨ letters",
    "<|startoftext|>literal start",
    "ends with <|endoftext|> literally",
    "<|ENDOFTEXT|> upper case special",
    "two<|endoftext|><|endoftext|>in a row",
    "<|startoftext|",
    "a_b-c+d=e*f/g\\h|i~j`k^l",
    "mixed123letters456and7digits",
    "CamelCaseWordsAndALLCAPS",
    "hyphen-ated, under_scored, dot.ted",
    "'s 't 're 've 'm 'll 'd",
    "''s ''t x'y",
    "apostrophe’s curly ‘quotes’ “double”",
    "---===___***",
    "a " * 100,
    "lorem ipsum dolor sit amet " * 12,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 300,
    "🐱" * 80,
    "a photo of a cat!",
    "!a!b! c!!d",
    "oil painting of a lighthouse at sunset, trending on artstation, by greg rutkowski",
    "masterpiece, best quality, 1girl, solo, looking at viewer",
    "ａｂｃ fullwidth",
    "Ⓐ circled and 𝐁𝐨𝐥𝐝 math letters",
]

# Random strings over the characters where a tokenizer goes wrong: case, apostrophes, digits,
# punctuation runs, combining marks in every order (NFC), Hangul jamo, special tokens in odd places.
POOL = (list("aAbBsStTdDmMlLrReEvV ") * 3 + list("'!?.,;:-_<>|/\\") + list("0123456789") +
        ["\u0301", "\u0308", "\u0323", "\u0307", "\u030a", "\u0327", "\u1100", "\u1161", "\u11a8", "\uac00",
         "é", "ñ", "Å", "İ", "ı", "Σ", "ς", "日", "本", "🐱", "\u00a0", "\u3000", "\t", "½", "²", "١", "ﬁ", "Ａ",
         "<|endoftext|>", "<|ENDOFTEXT|>", "<|startoftext|>", "!<|endoftext|>", "!<|ENDOFTEXT|>", "'s", "'LL"])


def random_prompts(count, seed=0):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))) for _ in range(count)]


PROMPTS += random_prompts(300)

CORPUS = " ".join(PROMPTS[:40]) + " photo photograph photography painting portrait landscape the of and a an in on at " * 3


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def learn_merges(text, count):
    """Plain BPE on the pre-tokenised, byte-mapped words of `text`."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for w in PATTERN.findall(text.lower()):
        symbols = [b2u[b] for b in w.encode("utf-8")]
        symbols[-1] += "</w>"
        words[tuple(symbols)] += 1
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new_words = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += c
        words = new_words
    return merges


def write_folder(folder, merges, pad):
    os.makedirs(folder, exist_ok=True)
    b2u = bytes_to_unicode()
    symbols = list(b2u.values())
    vocab = symbols + [s + "</w>" for s in symbols]
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "add_prefix_space": False, "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": True,
        "do_lower_case": True, "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 77,
        "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>",
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for p in PROMPTS:
        assert "\n" not in p and "\r" not in p, "a prompt of the file must be one line"
    with open(os.path.join(out_dir, "prompts.txt"), "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in PROMPTS))
    merges = learn_merges(CORPUS, 400)
    for name, pad in (("clip", "<|endoftext|>"), ("clip_pad_bang", "!")):
        folder = os.path.join(out_dir, name)
        write_folder(folder, merges, pad)
        tok = CLIPTokenizer.from_pretrained(folder)
        ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        save_file({"input_ids": ids.to(torch.int64).contiguous()}, os.path.join(folder, "expected.safetensors"))
        decoded = [tok.decode(row, skip_special_tokens=True) for row in ids.tolist()]
        with open(os.path.join(folder, "decoded.json"), "w", encoding="utf-8") as f:
            json.dump(decoded, f, ensure_ascii=False, indent=0)
        print(f"{name}: {len(tok)} tokens, {len(merges)} merges, {len(PROMPTS)} prompts, pad id {tok.pad_token_id}")
    versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "safetensors": safetensors.__version__, "torch": torch.__version__}
    with open(os.path.join(out_dir, "versions.json"), "w") as f:
        json.dump(versions, f)


if __name__ == "__main__":
    main(sys.argv[1])
