#!/usr/bin/env python3
"""NAS-Bench-201 first-order DARTS / DARTS- search with the benchmark's own PyTorch code.

Purpose: a fast CPU reference to find the smallest setting at which plain DARTS collapses on
NAS-Bench-201 (derived cell drifts to skip_connect / parameter-free ops) and to check that
DARTS- does not, before spending time on the Rust/WebGPU tool at that setting.

What it follows
  * Network: xautodl.models.cell_searchs.search_model_darts.TinyNetworkDarts (the supernet
    of the NAS-Bench-201 DARTS baseline), ops none, skip_connect, nor_conv_1x1, nor_conv_3x3,
    avg_pool_3x3; BN affine=False in the cells (SPEC §7).
  * Search step: exps/NAS-Bench-201-algos/DARTS-V1.py + configs/nas-benchmark/algos/DARTS.config
    of D-X-Y/AutoDL-Projects, per step
      1) weight step on a train batch: SGD lr cosine 0.025 -> 0.001 (set once per epoch,
         xautodl CosineAnnealingLR, T_max = epochs), momentum 0.9, Nesterov, wd 5e-4,
         grad-norm clip 5 over network.parameters() (as upstream, this includes α, whose
         grad from the train loss enters the norm but is then zeroed before the α step);
      2) α step on a validation batch: Adam lr 3e-4, betas (0.5, 0.999), wd 1e-3.
    Each train image is paired with a validation image drawn uniformly with replacement
    (xautodl SearchDataset), both augmented; one epoch = one pass over the train half.
    After each epoch: a pass over the validation half in eval mode, no augmentation.
  * --method darts-minus: every edge output gets + β·x (x = the edge's input node), β has no
    gradient, β = (epochs − e)/epochs set at the start of epoch e (1.00 … 1/epochs), also in
    the eval pass (SPEC §4/§7). Implemented by subclassing TinyNetworkDarts, not by copying.

Deviations from upstream
  * Data: a CIFAR-10 subset, not the benchmark's 25k/25k split (cifar-split.txt). The images
    are split into halves like darts-minus's `search_split` (first n/2 = train, rest = val).
    JPEG-folder images (--data N = N per class) are shuffled with a fixed seed (0) first,
    since the folder is in class order (the binary mini set is already shuffled).
  * Augmentation (random crop 32 pad 4, flip) is done on batched tensors in torch, not by
    torchvision; normalisation uses the CIFAR-10 mean/std of SPEC §5.
  * CPU only, no DataParallel, no checkpoints; the NB201 accuracies come from the 200-epoch
    CSV (assets/nb201_acc_200ep.csv) instead of the NAS-Bench-201 API.
  * track_running_stats defaults to 1 (as darts-minus); it only changes the eval pass.

Output: one line per epoch on stdout and one JSON object per epoch in --out (JSON lines).
"""

import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from xautodl.models.cell_searchs.search_cells import NAS201SearchCell
from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
PARAM_FREE = {"none", "skip_connect", "avg_pool_3x3"}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
MEAN = torch.tensor([0.49139968, 0.48215827, 0.44653124]).view(1, 3, 1, 1)
STD = torch.tensor([0.24703233, 0.24348505, 0.26158768]).view(1, 3, 1, 1)
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(HERE, "..", "assets", "nb201_acc_200ep.csv")


# ----------------------------------------------------------------------------- data

def load_cifar_bin(paths):
    """CIFAR-10 binary file(s): per image 1 label byte + 3072 bytes (R, G, B planes)."""
    xs, ys = [], []
    for p in paths:
        raw = np.fromfile(p, dtype=np.uint8).reshape(-1, 3073)
        ys.append(raw[:, 0].astype(np.int64))
        xs.append(raw[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(xs), np.concatenate(ys)


def load_jpeg_folder(root, per_class):
    """The first `per_class` images (sorted names) of each class folder, shuffled (seed 0)."""
    from PIL import Image  # only needed for this source
    xs, ys = [], []
    for label, name in enumerate(CLASSES):
        files = sorted(os.listdir(os.path.join(root, name)))[:per_class]
        for f in files:
            img = np.asarray(Image.open(os.path.join(root, name, f)).convert("RGB"))
            xs.append(img.transpose(2, 0, 1))
            ys.append(label)
    x, y = np.stack(xs), np.array(ys, dtype=np.int64)
    perm = np.random.RandomState(0).permutation(len(y))
    return x[perm], y[perm]


def augment(x_u8):
    """Random crop 32 with zero padding 4 and horizontal flip p=0.5, then normalise
    (as torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip on raw pixels)."""
    n = x_u8.shape[0]
    pad = F.pad(x_u8.float().div_(255.0), (4, 4, 4, 4), value=0.0)
    ox, oy = torch.randint(0, 9, (n,)).tolist(), torch.randint(0, 9, (n,)).tolist()
    flip = (torch.rand(n) < 0.5).tolist()
    out = torch.empty(n, 3, 32, 32)
    for i in range(n):
        crop = pad[i, :, oy[i]:oy[i] + 32, ox[i]:ox[i] + 32]
        out[i] = crop.flip(-1) if flip[i] else crop
    return (out - MEAN) / STD


def plain(x_u8):
    return (x_u8.float().div_(255.0) - MEAN) / STD


# ----------------------------------------------------------------------------- model

class TinyNetworkDartsMinus(TinyNetworkDarts):
    """TinyNetworkDarts whose every edge output gets + beta * (edge input)."""

    beta = 1.0

    def _cell_forward(self, cell, inputs, weightss):
        # NAS201SearchCell.forward with the auxiliary skip added per edge
        nodes = [inputs]
        for i in range(1, cell.max_nodes):
            inter = []
            for j in range(i):
                key = "{:}<-{:}".format(i, j)
                w = weightss[cell.edge2index[key]]
                mixed = sum(op(nodes[j]) * wk for op, wk in zip(cell.edges[key], w))
                inter.append(mixed + self.beta * nodes[j])
            nodes.append(sum(inter))
        return nodes[-1]

    def forward(self, inputs):
        alphas = F.softmax(self.arch_parameters, dim=-1)
        feature = self.stem(inputs)
        for cell in self.cells:
            if isinstance(cell, NAS201SearchCell):
                feature = self._cell_forward(cell, feature, alphas)
            else:
                feature = cell(feature)
        out = self.lastact(feature)
        out = self.global_pooling(out).flatten(1)
        return out, self.classifier(out)


def load_nb201(path):
    table = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            table[row["arch"]] = (float(row["cifar10_valid"]), float(row["cifar10_test"]))
    return table


def arch_summary(model, nb201):
    """Derived cell (argmax over all 5 ops per edge, none included) and its statistics."""
    with torch.no_grad():
        w = F.softmax(model.arch_parameters, dim=-1)
    arch = model.genotype().tostr()
    # edge order of model.edge2index: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 (SPEC §7)
    ops = [OPS[k] for k in w.argmax(-1).tolist()]
    valid, test = nb201.get(arch, (float("nan"), float("nan")))
    return {
        "arch": arch,
        "skip_w": float(w[:, OPS.index("skip_connect")].mean()),
        "n_skip": ops.count("skip_connect"),
        "n_none": ops.count("none"),
        "n_pfree": sum(o in PARAM_FREE for o in ops),
        "c10_valid": valid,
        "c10_test": test,
        "alpha_softmax": [[round(v, 4) for v in r] for r in w.tolist()],
        "arch_parameters": model.arch_parameters.detach().tolist(),
    }


# ----------------------------------------------------------------------------- search

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=["darts", "darts-minus"], default="darts")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells-per-stage", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", nargs="+",
                    default=["/work/shared/data/cifar10-mini/train_1000.bin"],
                    help="CIFAR-10 .bin file(s), or one integer N = N images per class "
                         "from --jpeg-root")
    ap.add_argument("--jpeg-root", default="/tmp/c10/train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--track-running-stats", type=int, default=1)
    ap.add_argument("--nb201-csv", default=DEFAULT_CSV)
    ap.add_argument("--out", default=None, help="JSON-lines log (default: none)")
    ap.add_argument("--plain", action="store_true",
                    help="no augmentation, training batches in index order, and step k's "
                         "validation batch the k-th of the validation half in index order: "
                         "darts-minus search --no-augment --no-shuffle --val-pairing queue")
    ap.add_argument("--init-out", default=None,
                    help="write the initial state_dict (safetensors) for darts-minus "
                         "search --init-from")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    if len(args.data) == 1 and args.data[0].isdigit():
        x, y = load_jpeg_folder(args.jpeg_root, int(args.data[0]))
    else:
        x, y = load_cifar_bin(args.data)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    half = len(y) // 2  # darts-minus search_split: first half train, rest val
    train_idx, val_idx = list(range(half)), list(range(half, len(y)))

    cls = TinyNetworkDartsMinus if args.method == "darts-minus" else TinyNetworkDarts
    model = cls(args.channels, args.cells_per_stage, 4, 10, OPS, False,
                bool(args.track_running_stats))
    w_opt = torch.optim.SGD(model.get_weights(), lr=0.025, momentum=0.9,
                            weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(model.get_alphas(), lr=3e-4, betas=(0.5, 0.999),
                             weight_decay=1e-3)
    criterion = nn.CrossEntropyLoss()
    nb201 = load_nb201(args.nb201_csv)
    out = open(args.out, "w") if args.out else None
    n_w = sum(p.numel() for p in model.get_weights())
    if args.init_out:
        from safetensors.torch import save_file
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
                  args.init_out)
    print(f"# {args.method} C={args.channels} N={args.cells_per_stage} "
          f"epochs={args.epochs} batch={args.batch_size} seed={args.seed} "
          f"images={len(y)} weights={n_w}", flush=True)

    t_start = time.time()
    for epoch in range(args.epochs):
        t0 = time.time()
        lr = 0.001 + (0.025 - 0.001) * (1 + math.cos(math.pi * epoch / args.epochs)) / 2
        for g in w_opt.param_groups:
            g["lr"] = lr
        beta = (args.epochs - epoch) / args.epochs
        if args.method == "darts-minus":
            model.beta = beta

        model.train()
        order = list(range(half)) if args.plain else torch.randperm(half).tolist()
        tr_loss = tr_hit = va_hit = 0.0
        for s in range(0, half, args.batch_size):
            bi = [train_idx[i] for i in order[s:s + args.batch_size]]
            if args.plain:
                vi = [val_idx[i % len(val_idx)] for i in range(s, s + len(bi))]
                xb, yb = plain(x[bi]), y[bi]
                xv, yv = plain(x[vi]), y[vi]
            else:
                vi = [random.choice(val_idx) for _ in bi]
                xb, yb = augment(x[bi]), y[bi]
                xv, yv = augment(x[vi]), y[vi]
            # 1) weight step
            w_opt.zero_grad()
            _, logits = model(xb)
            loss = criterion(logits, yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            w_opt.step()
            tr_loss += loss.item() * len(bi)
            tr_hit += (logits.argmax(-1) == yb).sum().item()
            # 2) architecture step
            a_opt.zero_grad()
            _, logits = model(xv)
            criterion(logits, yv).backward()
            a_opt.step()
            va_hit += (logits.argmax(-1) == yv).sum().item()

        model.eval()
        ev_hit = ev_loss = 0.0
        with torch.no_grad():
            for s in range(half, len(y), 256):
                xb, yb = plain(x[s:s + 256]), y[s:s + 256]
                _, logits = model(xb)
                ev_loss += criterion(logits, yb).item() * len(yb)
                ev_hit += (logits.argmax(-1) == yb).sum().item()
        n_val = len(y) - half
        rec = {
            "epoch": epoch, "method": args.method, "seed": args.seed,
            "beta": beta if args.method == "darts-minus" else 0.0, "lr": lr,
            "train_loss": tr_loss / half, "train_acc": 100 * tr_hit / half,
            "arch_batch_acc": 100 * va_hit / half,
            "val_loss": ev_loss / n_val, "val_acc": 100 * ev_hit / n_val,
            "epoch_s": time.time() - t0, "elapsed_s": time.time() - t_start,
        }
        rec.update(arch_summary(model, nb201))
        print(f"ep {epoch:3d} tr {rec['train_acc']:5.1f} val {rec['val_acc']:5.1f} "
              f"skip_w {rec['skip_w']:.3f} skip {rec['n_skip']} none {rec['n_none']} "
              f"pfree {rec['n_pfree']} c10 {rec['c10_test']:.2f} "
              f"{rec['epoch_s']:.1f}s {rec['arch']}", flush=True)
        if out:
            out.write(json.dumps(rec) + "\n")
            out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
