"""Shared helpers for the fixture scripts: deterministic inputs and a safetensors writer.

Fixtures are safetensors files (written here by hand, so only torch is needed) whose metadata
entry "cases" holds a JSON list describing each case; tensors are named "<case>.<role>".
"""
import json
import os
import struct

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "packages", "core-cuda", "test", "fixtures")

_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def _raw_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes a .safetensors file: an 8-byte little-endian header length, the JSON header (names in
    sorted order, padded with spaces to 8 bytes), then the raw little-endian data; returns its size."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for key in sorted(tensors):
        t = tensors[key]
        if t.dtype not in _DTYPES:
            raise ValueError(f"{key}: unsupported dtype {t.dtype}")
        raw = _raw_bytes(t)
        header[key] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * ((8 - (8 + len(head)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    return 8 + len(head) + offset


def save_fixture(name, tensors, cases):
    """Writes FIXTURES/<name>.safetensors; tensors maps names to torch tensors."""
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, f"{name}.safetensors")
    size = write_safetensors(path, tensors, {"cases": json.dumps(cases)})
    print(f"wrote {path} ({size} bytes, {len(cases)} cases)")


def generator(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale


def rms_norm_ref(x, w, eps):
    """T5LayerNorm / RMSNorm: x * rsqrt(mean(x^2) + eps) * w (w may be None)."""
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y


def store_norm_params(tensors, name, gamma, gamma64, beta, beta64):
    """The optional gamma and beta of a norm case and their float64 gradients, as float32."""
    if gamma is not None:
        tensors[f"{name}.gamma"] = gamma
        tensors[f"{name}.dgamma"] = gamma64.grad.float()
    if beta is not None:
        tensors[f"{name}.beta"] = beta
        tensors[f"{name}.dbeta"] = beta64.grad.float()


# The AdamW settings of the model fixtures' ten-step check (torch.optim.AdamW; kexue's test reads
# them from each fixture's metadata).
MODEL_ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def train_losses(model, args, steps=10):
    """The loss before each of `steps` torch.optim.AdamW steps (MODEL_ADAMW) of model(*args) -> (loss, outputs)."""
    opt = torch.optim.AdamW(model.parameters(), **MODEL_ADAMW)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = model(*args)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def save_model_fixture(out, name, model, inputs, args, meta):
    """A model fixture in folder `out`: the weights by name, "input.*", the outputs and loss of
    model(*args) ("out.*"), the gradient of the loss for every parameter ("grad.*"), and in the
    metadata `meta` with the parameter names, the loss, MODEL_ADAMW and the ten-step losses (which
    train `model`: save it last)."""
    global FIXTURES
    tensors = {}
    for k, v in model.state_dict().items():
        tensors[k] = v.detach().clone()
    for k, v in inputs.items():
        tensors[f"input.{k}"] = v
    model.zero_grad()
    loss, outs = model(*args)
    loss.backward()
    tensors["out.loss"] = loss.detach().reshape([])
    for k, v in outs.items():
        tensors[f"out.{k}"] = v.detach()
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.detach().clone()
    a = MODEL_ADAMW
    meta = dict(meta, params=[k for k, _ in model.named_parameters()], loss=loss.item(),
                adamw=dict(lr=a["lr"], beta1=a["betas"][0], beta2=a["betas"][1], eps=a["eps"], weightDecay=a["weight_decay"]))
    meta["steps"] = train_losses(model, args)
    # save_fixture writes under FIXTURES: point it at `out` for this call only (make_all runs every
    # script in one process).
    saved, FIXTURES = FIXTURES, out
    try:
        save_fixture(name, tensors, [meta])
    finally:
        FIXTURES = saved
