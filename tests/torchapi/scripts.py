"""The user script the torch API tests write into a temporary directory and launch.

It is what a user would write: a small CNN with batch norm, their own ``torch.optim.Adam``
(gradient mode) or an hpctrain algorithm (algorithm mode), every rank training on its
slice of each global batch. ``mode=single`` is the oracle: plain PyTorch in one process on
the concatenated global batch, no hpctrain at all.

Batch norm is kept in eval mode (running statistics frozen at their initial values, the
affine weights trained): in train mode each rank normalises with its own batch's
statistics, so gradient averaging is *not* the gradient of the concatenated batch, and the
comparison would not be fair. The test documents this; everything else is as a user has it.
"""

USER_SCRIPT = r'''
import json, os, sys
import numpy as np
import torch

cfg = json.loads(sys.argv[1])
out = cfg["out"]
dtype = getattr(torch, cfg.get("dtype", "float64"))
torch.set_default_dtype(dtype)
single = cfg["mode"] == "single"
if not single:
    import hpctrain.torch as ht
    ht.init()
    rank, size = ht.rank(), ht.size()
else:
    rank, size = 0, cfg["ranks"]
    torch.set_num_threads(1)

def net():
    torch.manual_seed(1234 + rank)   # different on each rank: broadcast_parameters must fix it
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

device = cfg.get("device", "cpu")
model = net().to(device)
g = torch.Generator().manual_seed(7)
steps, per = cfg["steps"], cfg["batch"]
cycle = cfg.get("cycle", steps)  # batches before the data repeats (a small data set trains fast)
X = torch.randn(cycle * per * size, 1, 8, 8, generator=g, dtype=dtype)
W = torch.randn(64, 4, generator=g, dtype=dtype)
Y = (X.reshape(len(X), -1) @ W).argmax(1)
X, Y = X.to(device), Y.to(device)

if cfg["mode"] == "grad":
    ht.broadcast_parameters(model, root_rank=0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.get("lr", 1e-2))
    opt = ht.DistributedOptimizer(opt, model=model, compression=cfg.get("compression", "none"),
                                  density=cfg.get("density", 0.1), bucket_size=cfg.get("bucket", 0.002),
                                  overlap=cfg.get("overlap", "auto"), collective=cfg.get("collective", "auto"),
                                  step_per_bucket=cfg.get("step_per_bucket", "auto"))
    ht.broadcast_optimizer_state(opt, root_rank=0)
elif cfg["mode"] == "algo":
    ht.broadcast_parameters(model, root_rank=0)
    opt = ht.DistributedAlgorithm(model, algo=cfg["algo"], lr=cfg.get("lr", 0.05), **cfg.get("options", {}))
else:
    opt = torch.optim.Adam(model.parameters(), lr=cfg.get("lr", 1e-2))

start = 0
if cfg.get("resume"):
    start = ht.load_checkpoint(cfg["resume"], model, opt)
model.eval()   # batch norm with frozen statistics (see the module docstring)
losses = []
for t in range(start, steps):
    k = t % cycle
    xb, yb = X[k * per * size:(k + 1) * per * size], Y[k * per * size:(k + 1) * per * size]
    if not single:
        xb, yb = xb[rank * per:(rank + 1) * per], yb[rank * per:(rank + 1) * per]
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
    if cfg.get("save_at") == t + 1:
        ht.save_checkpoint(cfg["ckpt"], model, opt)
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
np.save(os.path.join(out, f"params-{rank}.npy"), flat)
with open(os.path.join(out, f"result-{rank}.json"), "w") as f:
    json.dump({"losses": losses, "overlap": bool(getattr(opt, "overlap", False)),
               "step_per_bucket": bool(getattr(opt, "step_per_bucket", False))}, f)
'''
