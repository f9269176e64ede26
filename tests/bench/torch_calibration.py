#!/usr/bin/python3
"""Host calibration against the reference's figures (docs/reference-results.md).

The authors' code cannot be run here, but the two operations that set its pace can: a LightGCN
mini-batch step of the kind its base teachers take (2-layer propagation of the whole graph with a
torch COO sparse product, BPR on 512 triples, Adam over every row) and the full users x items
score GEMM, both at Yelp block-0 size, in the same torch (Debian's python3-torch 1.13.1) on 2
threads. The reference measured ~58 ms per step and 296 ms per GEMM on its host; the ratio of
these figures to the ones printed here says how much faster or slower this host runs the
reference, which is what a ccd-offline time on this host must be compared with.

This is our own minimal re-implementation of such a step, not the authors' code. Usage:
    /usr/bin/python3 tests/bench/torch_calibration.py ../shared/data/yelp
"""
import sys
import time

import torch

torch.set_num_threads(2)
data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/yelp"
pairs = [tuple(map(int, line.split())) for line in open(data + "/block0/train.tsv")]
n_users = max(u for u, _ in pairs) + 1
n_items = max(i for _, i in pairs) + 1
u = torch.tensor([p[0] for p in pairs])
i = torch.tensor([p[1] for p in pairs]) + n_users
n = n_users + n_items
edges = torch.cat([torch.stack([u, i]), torch.stack([i, u])], 1)
adj = torch.sparse_coo_tensor(edges, torch.ones(edges.shape[1]), (n, n)).coalesce()
deg = torch.sparse.sum(adj, 1).to_dense()
inv_sqrt = deg.pow(-0.5)
inv_sqrt[torch.isinf(inv_sqrt)] = 0
ix = adj.indices()
a_hat = torch.sparse_coo_tensor(ix, inv_sqrt[ix[0]] * inv_sqrt[ix[1]], (n, n)).coalesce()
emb = torch.nn.Parameter(0.01 * torch.randn(n, 128))
opt = torch.optim.Adam([emb], lr=1e-3)


def step():
    bu = torch.randint(0, n_users, (512,))
    bp = torch.randint(n_users, n, (512,))
    bn = torch.randint(n_users, n, (512,))
    e1 = torch.sparse.mm(a_hat, emb)
    e2 = torch.sparse.mm(a_hat, e1)
    f = (emb + e1 + e2) / 3
    x = (f[bu] * (f[bp] - f[bn])).sum(1)
    reg = emb[bu].norm() ** 2 + emb[bp].norm() ** 2 + emb[bn].norm() ** 2
    loss = -torch.nn.functional.logsigmoid(x).mean() + 1e-4 * reg / 512
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(5):
    step()
t = time.time()
for _ in range(40):
    step()
batch_s = (time.time() - t) / 40
users, items = torch.randn(n_users, 128), torch.randn(n_items, 128)
for _ in range(2):
    scores = users @ items.T
t = time.time()
for _ in range(5):
    scores = users @ items.T
gemm_s = (time.time() - t) / 5
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
print(f"LightGCN step (512 triples): {batch_s * 1e3:.1f} ms; reference host ~58 ms; "
      f"ratio {58e-3 / batch_s:.2f}")
print(f"score GEMM {n_users} x {n_items} x 128: {gemm_s * 1e3:.0f} ms "
      f"({2 * n_users * n_items * 128 / gemm_s / 1e9:.0f} GFLOP/s); reference host 296 ms; "
      f"ratio {296e-3 / gemm_s:.2f}")
