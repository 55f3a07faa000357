"""Writes the PyTorch checkpoint files the reader's tests load (tests/io/torch_checkpoints/, committed),
with what each must read as in expected.safetensors. Run with the LibTorch 2.x venv's Python:

    .torch2-venv/bin/python tests/io/make_torch_checkpoints.py tests/io/torch_checkpoints

Valid files: a state dict of every dtype the reader knows, views (transposed, sliced, sharing one
storage), nested dicts, an OrderedDict with `_metadata`, parameters, a checkpoint dict with the state
dict under "state_dict" beside an epoch, a string and an object the reader never constructs. Refused
files: the legacy format, a TorchScript archive, and archives rewritten with a crafted data.pkl (a
view past its storage, an expanded view, a storage larger than its record, an unknown opcode), each
with valid CRCs so that the pickle checks, not the zip's, must catch them.
"""
import collections
import fractions
import io
import os
import sys
import zipfile

import torch
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

base = torch.randn(4, 6)
state = collections.OrderedDict()
state["linear.weight"] = torch.randn(3, 5)
state["linear.bias"] = torch.randn(3)
state["half"] = torch.randn(2, 3).half()
state["bf16"] = torch.randn(5).bfloat16()
state["double"] = torch.randn(2, 2, dtype=torch.float64)
state["long"] = torch.arange(-3, 4, dtype=torch.int64)
state["int"] = torch.tensor([1, -2, 3], dtype=torch.int32)
state["bool"] = torch.tensor([True, False, True])
state["uint8"] = torch.tensor([0, 7, 255], dtype=torch.uint8)
state["transposed"] = base.t()            # non-contiguous, shares `base`'s storage
state["sliced"] = base[1:3, 2:5]          # offset and strides into the same storage
state["scalar"] = torch.tensor(2.5)
state["empty"] = torch.empty(0, 4)
state["param"] = torch.nn.Parameter(torch.randn(2, 2))
state._metadata = collections.OrderedDict({"": {"version": 1}, "linear": {"version": 1}})
expected = {k: v.detach().contiguous().clone() for k, v in state.items()}
torch.save(state, os.path.join(out, "state_dict.pt"))

nested = {"visual": {"proj": torch.randn(4, 2), "ln": {"weight": torch.ones(4)}}, "logit_scale": torch.tensor(4.6)}
torch.save({"state_dict": nested, "epoch": 3, "name": "run", "lr": 1e-4, "big": 2**40, "neg": -5,
            "when": fractions.Fraction(1, 3), "flags": [True, None, (1, 2)]}, os.path.join(out, "checkpoint.pt"))
expected.update({"nested." + k: v for k, v in {"visual.proj": nested["visual"]["proj"], "visual.ln.weight": nested["visual"]["ln"]["weight"],
                                                 "logit_scale": nested["logit_scale"]}.items()})
# A dict of tensors beside an object the reader does not construct, in the state dict itself.
torch.save({"w": torch.ones(2), "odd": fractions.Fraction(1, 2)}, os.path.join(out, "object_in_state.pt"))
save_file(expected, os.path.join(out, "expected.safetensors"))

torch.save({"w": torch.ones(2)}, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, "torchscript.pt"))


def rewrite(name, src, edit):
    """The archive `src` with its data.pkl passed through `edit`, written again with valid CRCs."""
    with zipfile.ZipFile(os.path.join(out, src)) as z:
        records = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(os.path.join(out, name), "w", zipfile.ZIP_STORED) as z:
        for n, data in records:
            z.writestr(n, edit(data) if n.endswith("/data.pkl") else data)


torch.save({"w": torch.arange(6, dtype=torch.float32).view(2, 3)}, os.path.join(out, "small.pt"))
with zipfile.ZipFile(os.path.join(out, "small.pt")) as z:
    pkl = z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])
print("small.pt data.pkl:", pkl)
# The size tuple (2, 3) is written as K\x02K\x03\x86; the stride (3, 1) as K\x03K\x01\x86.
assert pkl.count(b"K\x02K\x03\x86") == 1 and pkl.count(b"K\x03K\x01\x86") == 1
rewrite("past_storage.pt", "small.pt", lambda d: d.replace(b"K\x02K\x03\x86", b"K\x03K\x03\x86"))
rewrite("expanded.pt", "small.pt", lambda d: d.replace(b"K\x03K\x01\x86", b"K\x00K\x00\x86").replace(b"K\x02K\x03\x86", b"K\x40K\x40\x86"))
rewrite("huge_storage.pt", "small.pt", lambda d: d.replace(b"K\x06t", b"J\x00\x00\x00\x40t") if b"K\x06t" in d else d.replace(b"K\x06\x85", b"J\x00\x00\x00\x40\x85"))
rewrite("bad_opcode.pt", "small.pt", lambda d: d[:2] + b"\xff" + d[2:])
rewrite("truncated_pickle.pt", "small.pt", lambda d: d[: len(d) // 2])
os.remove(os.path.join(out, "small.pt"))
with open(os.path.join(out, "state_dict.pt"), "rb") as f:
    whole = f.read()
with open(os.path.join(out, "truncated.pt"), "wb") as f:
    f.write(whole[: len(whole) * 2 // 3])
print("written to", out)
