"""Checks di_run_model --kind clip-tokenizer against transformers' ids (run by run_parity.sh).

    python check_tokenizer.py FIXTURE_DIR RUN_DIR

Every row of input_ids must be identical (int64 [N, 77]); prints the rows that differ, with the prompt
and both token strings, and exits 1 on any difference.
"""
import json
import os
import sys

from safetensors.torch import load_file
from transformers import CLIPTokenizer


def main():
    fixtures, runs = sys.argv[1:3]
    with open(os.path.join(fixtures, "prompts.txt"), encoding="utf-8") as f:
        prompts = f.read().split("\n")[:-1]
    failed = False
    for name in ("clip", "clip_pad_bang"):
        expected = load_file(os.path.join(fixtures, name, "expected.safetensors"))["input_ids"]
        got = load_file(os.path.join(runs, name + ".safetensors"))["input_ids"]
        if got.dtype != expected.dtype or got.shape != expected.shape:
            print(f"{name}: expected input_ids {expected.dtype} {list(expected.shape)}, got {got.dtype} {list(got.shape)}")
            failed = True
            continue
        tok = CLIPTokenizer.from_pretrained(os.path.join(fixtures, name))
        bad = [i for i in range(len(prompts)) if not (got[i] == expected[i]).all()]
        for i in bad:
            print(f"{name}: prompt {i} {prompts[i]!r}\n  transformers: {tok.convert_ids_to_tokens(expected[i].tolist())}\n"
                  f"  C++:          {tok.convert_ids_to_tokens(got[i].tolist())}")
        print(f"{name}: {len(prompts) - len(bad)} of {len(prompts)} prompts give identical ids "
              f"({int((expected != tok.pad_token_id).sum())} non-pad ids)")
        failed = failed or bool(bad)
        with open(os.path.join(fixtures, name, "decoded.json"), encoding="utf-8") as f:
            decoded = json.load(f)
        with open(os.path.join(runs, name + ".decoded.json"), encoding="utf-8") as f:
            got_decoded = json.load(f)
        bad_decode = [i for i in range(len(prompts)) if decoded[i] != got_decoded[i]]
        for i in bad_decode[:10]:
            print(f"{name}: decode of prompt {i}: transformers {decoded[i]!r}, C++ {got_decoded[i]!r}")
        print(f"{name}: {len(prompts) - len(bad_decode)} of {len(prompts)} rows decode to the same text")
        failed = failed or bool(bad_decode)
    if len(prompts) < 50:
        print(f"only {len(prompts)} prompts: the test needs at least 50")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
