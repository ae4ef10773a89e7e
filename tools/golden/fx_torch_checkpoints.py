"""Fixtures for the checkpoint readers (packages/core-cuda/test/torch_checkpoint.test.ts and
safetensors.test.ts), written into packages/core-cuda/test/fixtures/torch/:

- state.pt: torch.save (zip format) of a nested dict holding a module's state dict (OrderedDict
  with _metadata), an AdamW state dict (integer keys, tuples), and tensors in float32, float16, bfloat16, float64, int64, int32, int16, int8,
  uint8 and bool, a transposed and a sliced view saved as is, two views of one storage, a 0-d
  tensor, an empty tensor, a Parameter, a tuple and a list of tensors, and plain numbers/strings.
- state_deflate.pt, state_zip64.pt: the same archive re-zipped with deflate, and with zip64 records.
- expected.safetensors: what each tensor of state.pt must read as (made contiguous; float64 as
  float32, integers as int32, bool as uint8), named as the reader flattens them.
- int64_range.pt, float64_range.pt: values that do not fit int32 / float32.
- legacy.pt: the pre-1.6 (non-zip) torch.save format.
- evil_*.pt: torch zip archives whose data.pkl must be refused without executing anything:
  os.system through GLOBAL + REDUCE (hand-written with pickletools' opcodes), builtins.eval, a
  class instance whose __reduce__ returns os.system, the same through STACK_GLOBAL (protocol 4),
  a whole pickled nn.Module, and an allowed global called with a non-storage argument.
- dtypes.safetensors: a safetensors file written here by an independent writer (numpy bytes) with
  F64, I64, I16, I8, BOOL, U8, F16, BF16, F32 and I32 tensors and their expected int32/float32
  values.
"""
import collections
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import torch

from common import FIXTURES, generator, randn

OUT = os.path.join(FIXTURES, "torch")
os.makedirs(OUT, exist_ok=True)
g = generator(44)


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return path


def write_safetensors(name, tensors, metadata=None):
    """An independent safetensors writer (numpy bytes, dtype names from the format's spec)."""
    names = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL",
    }
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        if t.dtype in (torch.float16, torch.bfloat16):
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def expected_value(t):
    """What kexue reads a tensor as: contiguous, float64 -> float32, integers -> int32, bool -> uint8."""
    t = t.detach().contiguous()
    if t.dtype == torch.float64:
        return t.float()
    if t.dtype in (torch.int64, torch.int16, torch.int8):
        return t.int()
    if t.dtype == torch.bool:
        return t.to(torch.uint8)
    return t


def flatten(obj, prefix=""):
    """The reader's naming: nested dict keys and list/tuple indices joined with '.'."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))


# --- state.pt -------------------------------------------------------------------------------------
module = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.LayerNorm(4), torch.nn.Embedding(7, 3))
with torch.no_grad():
    for p in module.parameters():
        p.copy_(randn(g, *p.shape))
optim = torch.optim.AdamW(module.parameters(), lr=1e-3)  # its state dict: int keys, tuples, tensors
sum((p * p).sum() for p in module.parameters()).backward()
optim.step()
base = randn(g, 6, 8)
shared = randn(g, 24)
state = {
    "model": module.state_dict(),  # OrderedDict with _metadata
    "optim": optim.state_dict(),  # {'state': {0: {'step', 'exp_avg', ...}}, 'param_groups': [...]}
    "f32": randn(g, 3, 4),
    "f16": randn(g, 2, 5).half(),
    "bf16": randn(g, 4, 3).bfloat16(),
    "f64": torch.tensor([1.0, -2.5, 1e-30, 3.4e38, 1 / 3, float("inf"), float("nan")], dtype=torch.float64),
    "i64": torch.tensor([0, 1, -1, 2**31 - 1, -(2**31), 123456789], dtype=torch.int64),
    "i32": torch.tensor([[7, -8], [2**31 - 1, -(2**31)]], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, 0, -1], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
    "mask": torch.tensor([[True, False, True], [False, False, True]]),
    "transposed": base.t(),  # stride (1, 8), saved as is
    "sliced": base[1:5:2, 2:7],  # offset 10, stride (16, 1)
    "expanded": randn(g, 1, 3).expand(4, 3),  # stride (0, 1)
    "view_a": shared[2:10].view(2, 4),  # two views of one storage
    "view_b": shared[4:].view(4, 5).t(),
    "bf16_t": randn(g, 3, 5).bfloat16().t(),
    "i64_t": torch.arange(12, dtype=torch.int64).view(3, 4).t(),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 4),
    "param": torch.nn.Parameter(randn(g, 2, 2)),
    "pair": (randn(g, 2), torch.arange(3, dtype=torch.int64)),
    "history": [randn(g, 1), randn(g, 2)],
    "epoch": 7,
    "lr": 0.125,
    "name": "bert-tiny",
    "big": 2**40,
}
save(state, "state.pt")
write_safetensors(
    "expected.safetensors",
    {name: expected_value(t) for name, t in flatten(state)},
    {"names": json.dumps([name for name, _ in flatten(state)])},
)

# --- the same archive, deflated ---------------------------------------------------------------------
with zipfile.ZipFile(os.path.join(OUT, "state.pt")) as src, zipfile.ZipFile(os.path.join(OUT, "state_deflate.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
print(f"wrote {os.path.join(OUT, 'state_deflate.pt')}")
# ... and with zip64 records everywhere (as torch writes past 4 GiB): Python's zipfile uses them
# for every size and offset above ZIP64_LIMIT.
limit, zipfile.ZIP64_LIMIT = zipfile.ZIP64_LIMIT, 0
with zipfile.ZipFile(os.path.join(OUT, "state.pt")) as src, zipfile.ZipFile(os.path.join(OUT, "state_zip64.pt"), "w", zipfile.ZIP_STORED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
zipfile.ZIP64_LIMIT = limit
print(f"wrote {os.path.join(OUT, 'state_zip64.pt')}")

# --- range errors -----------------------------------------------------------------------------------
save({"ok": torch.tensor([1, 2]), "ids": torch.tensor([5, 2**40, 3], dtype=torch.int64)}, "int64_range.pt")
save({"w": torch.tensor([1.0, 1e300], dtype=torch.float64)}, "float64_range.pt")
save({"w": torch.ones(2)}, "legacy.pt", _use_new_zipfile_serialization=False)


# --- malicious pickles --------------------------------------------------------------------------------
def evil_zip(name, pkl):
    """A torch-style archive whose data.pkl is `pkl`."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
    print(f"wrote {path}")


class ReduceSystem:
    def __reduce__(self):
        return (os.system, ("echo kexue-pwned",))


class ReduceEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo kexue-pwned')",))


# GLOBAL 'os system', the argument tuple, REDUCE: the classic payload, opcode by opcode.
evil_zip("evil_global_reduce.pt", b"\x80\x02" + b"cos\nsystem\n" + b"X\x10\x00\x00\x00echo kexue-pwned" + b"\x85" + b"R" + b".")
evil_zip("evil_eval.pt", pickle.dumps({"w": ReduceEval()}, protocol=2))
evil_zip("evil_reduce_class.pt", pickle.dumps(collections.OrderedDict(w=ReduceSystem()), protocol=2))
evil_zip("evil_stack_global.pt", pickle.dumps(ReduceSystem(), protocol=4))
buf = io.BytesIO()
torch.save(torch.nn.Linear(2, 2), buf)  # a whole module, not a state dict
with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
    evil_zip("evil_module.pt", z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
# An allowed global with a wrong argument: _rebuild_tensor_v2('not a storage', ...).
evil_zip(
    "evil_bad_args.pt",
    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(X\x01\x00\x00\x00xK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR.",
)
for name in ["evil_global_reduce.pt", "evil_bad_args.pt"]:  # the hand-written ones are well-formed pickles
    with zipfile.ZipFile(os.path.join(OUT, name)) as z:
        pickletools.dis(z.read("archive/data.pkl"), out=io.StringIO())

# --- safetensors with every dtype, from an independent writer -----------------------------------------
st = {
    "f64": torch.tensor([[0.1, -2.0], [1e-40, 6.5e4]], dtype=torch.float64),
    "i64": torch.tensor([3, -4, 2**31 - 1, -(2**31)], dtype=torch.int64),
    "i16": torch.tensor([-7, 30000], dtype=torch.int16),
    "i8": torch.tensor([-100, 100, 0], dtype=torch.int8),
    "bool": torch.tensor([True, False, True]),
    "u8": torch.tensor([1, 200], dtype=torch.uint8),
    "f16": randn(g, 3).half(),
    "bf16": randn(g, 2, 2).bfloat16(),
    "f32": randn(g, 2, 3),
    "i32": torch.tensor([-5, 6], dtype=torch.int32),
}
exp = {f"{k}.expected": expected_value(v) for k, v in st.items()}
write_safetensors("dtypes.safetensors", {**st, **exp}, {"source": "fx_torch_checkpoints.py"})
