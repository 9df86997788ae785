#!/usr/bin/python3
"""Generates schemas/vectors/giot_ref.bin: a reference forward and backward of the GIoT
transformer computed independently with PyTorch (Debian's python3-torch), in float64, on a fixed
small config and input. tests/unit/test_gpt.c runs core/model/gpt.c on the same parameters and
compares logits, loss and every gradient. The parameter order is the one in
core/include/fedmq/gpt.h. Usage: /usr/bin/python3 gen_giot_ref.py OUT.bin (Debian python3-torch; not needed to build
or test: the output is committed)"""
import struct
import sys

import torch
import torch.nn.functional as F

V, T, L, NH, C, K, B = 24, 6, 2, 2, 8, 3, 2
LM_W, CLS_W = 1.0, 0.5
torch.manual_seed(20261126)
dt = torch.float64

shapes = [("wte", (V, C)), ("wpe", (T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
          ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)),
          ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, 4 * C, C)),
          ("fcb", (L, 4 * C)), ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)), ("lnfw", (C,)),
          ("lnfb", (C,)), ("clsw", (K, C)), ("clsb", (K,))]
p = {}
for name, shape in shapes:
    scale = 0.3 if name in ("wte", "wpe") else 0.2
    t = torch.randn(shape, dtype=dt) * scale
    if name in ("ln1w", "ln2w", "lnfw"):
        t = 1.0 + 0.1 * torch.randn(shape, dtype=dt)
    # round through float32 so both sides start from identical values
    p[name] = t.float().double().requires_grad_(True)

inputs = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B, T))
targets[0, 2] = -1  # ignored positions
targets[1, 5] = -1
labels = torch.tensor([1, 2])


def forward():
    hs = C // NH
    x = p["wte"][inputs] + p["wpe"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / hs ** 0.5
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h2 = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        f = F.gelu(h2 @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + f @ p["fcprojw"][l].T + p["fcprojb"][l]
    xf = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = xf @ p["wte"].T
    lm = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    cls_logits = xf[:, -1] @ p["clsw"].T + p["clsb"]
    cl = F.cross_entropy(cls_logits, labels)
    return logits, cls_logits, LM_W * lm + CLS_W * cl


logits, cls_logits, loss = forward()
loss.backward()

with open(sys.argv[1], "wb") as f:
    f.write(b"GIOTREF1")
    f.write(struct.pack("<7i", V, T, L, NH, C, K, B))
    f.write(struct.pack("<2f", LM_W, CLS_W))
    for arr in (inputs, targets, labels):
        f.write(struct.pack("<%di" % arr.numel(), *arr.reshape(-1).tolist()))
    for tensor_list in ([p[n] for n, _ in shapes], [logits], [cls_logits], [loss.reshape(1)],
                        [p[n].grad for n, _ in shapes]):
        for t in tensor_list:
            vals = t.detach().reshape(-1).float().tolist()
            f.write(struct.pack("<%df" % len(vals), *vals))
print("wrote", sys.argv[1], "loss", loss.item())
