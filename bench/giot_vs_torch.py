#!/usr/bin/python3
"""bench/giot_vs_torch.py: GIoT training throughput, fedmq's C against PyTorch (Debian's
python3-torch) on the same config, one thread each, same machine, same run: forward, backward and
an AdamW step per iteration on random token windows. Prints both tokens/s and the ratio.
Usage: /usr/bin/python3 bench/giot_vs_torch.py [B T C L NH V STEPS]"""
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

args = [int(x) for x in sys.argv[1:]] or [16, 41, 32, 2, 4, 168, 50]
B, T, C, L, NH, V, STEPS = args
torch.set_num_threads(1)
torch.manual_seed(1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
        self.qkv, self.proj = torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
        self.fc, self.fcproj = torch.nn.Linear(C, 4 * C), torch.nn.Linear(4 * C, C)

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        sh = lambda t: t.view(B, T, NH, C // NH).transpose(1, 2)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = ((sh(q) @ sh(k).transpose(-2, -1)) / (C // NH) ** 0.5).masked_fill(~mask, float("-inf"))
        y = (att.softmax(-1) @ sh(v)).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(V, C), torch.nn.Embedding(T, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(C)

    def forward(self, idx, tgt):
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1))


m = GPT()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.0)
idx, tgt = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
for i in range(STEPS + 3):
    if i == 3:
        t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    m(idx, tgt).backward()
    opt.step()
torch_tps = STEPS * B * T / (time.perf_counter() - t0)
src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = subprocess.run([os.path.join(src, "build", "bench", "fmq_bench_giot_speed")] +
                     [str(a) for a in args], capture_output=True, text=True, check=True).stdout
c_tps = float(out.split(":")[-1].split()[0])
print(out.strip())
print("PyTorch %s (1 thread): %.0f tokens/s" % (torch.__version__, torch_tps))
print("ratio fedmq / PyTorch: %.2f" % (c_tps / torch_tps))
