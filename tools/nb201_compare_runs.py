#!/usr/bin/env python3
"""Epoch-by-epoch comparison of a NAS-Bench-201 search by darts-minus and by the reference
script (tools/nb201_reference_search.py), for runs made from one initial state on the same
batches:

    python3 tools/nb201_reference_search.py --plain --init-out init.safetensors \
        --method darts-minus --out ref.jsonl ...
    darts-minus search --space nb201 --init-from init.safetensors --no-augment --no-shuffle \
        --val-pairing queue --out ours ...
    python3 tools/nb201_compare_runs.py ref.jsonl ours/metrics.jsonl

Prints, per epoch: both train losses, both validation accuracies, both mean skip weights
(softmax over each edge, mean over the 6 edges), the largest difference of any softmax(α)
entry, on how many of the 6 edges the argmax agrees, and both derived cells' NB201 CIFAR-10
test accuracies. `--markdown` prints a table instead.
"""

import argparse
import json
import math

SKIP = 1  # column of skip_connect in both logs' op order


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", help="JSON lines of nb201_reference_search.py --out")
    ap.add_argument("ours", help="metrics.jsonl of darts-minus search")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    ref, ours = read(args.reference), read(args.ours)
    head = ["epoch", "train loss ref", "ours", "val acc ref", "ours", "skip w ref", "ours",
            "max Δ softmax(α)", "argmax agree", "C10 test ref", "ours"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---:|" * len(head))
    else:
        print(" ".join(f"{h:>12}" for h in head))
    for r, o in zip(ref, ours):
        assert r["epoch"] == o["epoch"], (r["epoch"], o["epoch"])
        a_ref = [softmax(row) for row in r["arch_parameters"]]
        a_our = o["alphas"]["arch_parameters"]  # already softmax
        diff = max(abs(x - y) for rr, oo in zip(a_ref, a_our) for x, y in zip(rr, oo))
        agree = sum(rr.index(max(rr)) == oo.index(max(oo)) for rr, oo in zip(a_ref, a_our))
        skip_ref = sum(row[SKIP] for row in a_ref) / len(a_ref)
        skip_our = sum(row[SKIP] for row in a_our) / len(a_our)
        row = [r["epoch"], f"{r['train_loss']:.4f}", f"{o['train_loss']:.4f}",
               f"{r['val_acc']:.1f}", f"{100 * o['val_acc']:.1f}",
               f"{skip_ref:.4f}", f"{skip_our:.4f}", f"{diff:.5f}", f"{agree}/6",
               f"{r['c10_test']:.2f}", f"{(o.get('nb201') or {}).get('cifar10_test', math.nan):.2f}"]
        if args.markdown:
            print("| " + " | ".join(str(v) for v in row) + " |")
        else:
            print(" ".join(f"{v:>12}" for v in row))


if __name__ == "__main__":
    main()
