"""safetensors between Python's `safetensors` package and the C++ reader/writer, both directions.

    python safetensors_roundtrip.py write DIR   # DIR/py.safetensors: every dtype, a scalar, an empty tensor, metadata
    python safetensors_roundtrip.py check DIR   # DIR/cpp.safetensors (written by model_parity) must hold the same

The values are a formula both sides compute (expected() here, expected_tensors() in model_parity.cpp).
"""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I64": torch.int64,
          "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
METADATA = {"origin": "diffinstruct round trip", "unicode": "\u00fc\u00df \u2713"}


def expected():
    base = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
    out = {}
    for name, dtype in DTYPES.items():
        if dtype == torch.bool:
            out[name] = (base.to(torch.int64) % 3) == 0
        elif dtype.is_floating_point:
            out[name] = ((base - 7) * 0.37).to(dtype)
        elif dtype == torch.uint8:
            out[name] = (base * 10).to(dtype)
        else:
            out[name] = (base - 7).to(dtype)
    out["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    out["empty"] = torch.zeros(0, 3, dtype=torch.float32)
    return out


def main():
    mode, folder = sys.argv[1:3]
    if mode == "write":
        save_file(expected(), f"{folder}/py.safetensors", metadata=METADATA)
        return
    want = expected()
    with safe_open(f"{folder}/cpp.safetensors", framework="pt") as f:
        meta = f.metadata()
        assert {k: meta.get(k) for k in METADATA} == METADATA, f"metadata: {meta}"
        assert sorted(f.keys()) == sorted(want), f"names: {sorted(f.keys())}"
        for name, w in want.items():
            got = f.get_tensor(name)
            assert got.dtype == w.dtype and got.shape == w.shape and torch.equal(got, w), f"tensor {name}: {got} vs {w}"
    print(f"| safetensors C++ -> Python ({len(want)} tensors, every dtype, metadata) | bit-exact | ok |")


if __name__ == "__main__":
    main()
