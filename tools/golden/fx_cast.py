"""Fixture for cast: float32 values (edge cases and random) rounded to float16/bfloat16 by PyTorch,
and back; float -> int32 truncation in range."""
import torch

from common import generator, save_fixture

g = generator(1)
special = torch.tensor([
    0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, -65520.0, 1e10, -1e10,
    6.1035156e-05, 6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08,
    1.0009766, 1.0004883, 1.0014648, 3.3895314e+38, 1e-40, -1e-45,
    float("inf"), float("-inf"), float("nan"),
], dtype=torch.float32)
# Random magnitudes across the whole exponent range, plus exact ties for both half formats.
random = torch.exp(torch.empty(4000).uniform_(-30, 30, generator=g)) * torch.sign(torch.randn(4000, generator=g))
ties16 = (torch.arange(1, 1001, dtype=torch.float32) * 2 + 1) * 2.0 ** -11 + 1.0  # halfway between halves
tiesbf = (torch.arange(1, 1001, dtype=torch.float32) * 2 + 1) * 2.0 ** -8 + 1.0
x = torch.cat([special, random.float(), ties16, tiesbf])
ints = torch.tensor([-3.7, -0.5, 0.0, 0.5, 2.9, 100.99, -100.99, 1e6 + 0.5], dtype=torch.float32)

tensors = {
    "x": x,
    "f16": x.to(torch.float16),
    "bf16": x.to(torch.bfloat16),
    "f16_back": x.to(torch.float16).float(),
    "bf16_back": x.to(torch.bfloat16).float(),
    "ints_in": ints,
    "ints_out": ints.to(torch.int32),
    "int_to_bf16": torch.tensor([16777217, 33554435, -7, 123456789], dtype=torch.int32),
}
tensors["int_to_bf16_out"] = tensors["int_to_bf16"].to(torch.bfloat16)
tensors["int_to_f16_out"] = torch.tensor([0, 1, -2048, 2049, 65504, 70000], dtype=torch.int32).to(torch.float16)
tensors["int_to_f16"] = torch.tensor([0, 1, -2048, 2049, 65504, 70000], dtype=torch.int32)
save_fixture("cast", {f"cast.{k}": v for k, v in tensors.items()}, [{"name": "cast"}])
