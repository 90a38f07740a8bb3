#!/usr/bin/env python3
"""Time the DARTS- search step in PyTorch and compare it with `darts-minus bench`.

Usage:
  python3 tools/bench_torch.py [--space darts|nb201] [--batch 64] [--channels 16] [--layers 8]
                               [--cells-per-stage 5] [--steps 10] [--warmup 3]
                               [--device cpu|cuda] [--darts-minus PATH] [--json-out FILE]

The step is the one `darts-minus bench` times (SPEC §5, first order): an Adam step on α from
the loss of a validation batch, then an SGD step (momentum 0.9, weight decay 3e-4, clipped at
5) on the weights from a training batch, both with the model in train mode and β = 1 on the
auxiliary skip. With --space nb201 it is SPEC §7's: the SGD step first (Nesterov, weight decay
5e-4), then the α step, on the NAS-Bench-201 search network. The models are the project's own
PyTorch models of the search networks (tools/make_fixtures.py, written from
../shared/SPEC.md), in float32.

Prints the median step time, images/s and (on CUDA) the peak allocated memory. With
--darts-minus (the path of the release binary) it also runs `darts-minus bench` with the same
configuration on the same machine and prints the ratio of the two. --batch and --channels take
comma-separated lists: each configuration is timed on both sides back to back (only paired
ratios mean anything on a machine whose speed drifts), and --json-out appends one JSON line
per configuration, which `darts-minus bench --chart OUT.svg --pairs FILE` draws.

With --profile it then runs the same number of steps under torch.profiler and prints where a
step's time goes by op family (convolutions, pooling, batch norm and weighted sums,
elementwise, optimiser, other), ms per step; with --darts-minus also darts-minus's
(`bench --profile`: one eager step, each launch timed alone) in the same families, side by
side, so a gap can be placed (see FAMILIES).
Needs: torch (pip install torch).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import NB201SearchNetwork, SearchNetwork  # noqa: E402


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


# Op families for --profile: (family, a regular expression over PyTorch's aten op names,
# darts-minus kernel prefixes), the first match wins. A mixed edge's tail is one family on
# both sides: PyTorch's batch norms and the muls and adds of its weighted sums, our fused
# normalised sums. ReLU (aten::clamp_min) is elementwise, the clipping's aten::clamp optimiser.
FAMILIES = [
    ('convolutions', r'conv', ['conv:', 'pointwise:', 'depthwise:']),
    ('pooling', r'pool', ['pool:']),
    ('batch norm + weighted sums', r'batch_norm|^aten::(mul|add|sum|div|sub)_?$',
     ['mixed:', 'batchnorm:', 'elementwise:add']),
    ('elementwise (relu, copies, fills)', r'threshold|relu|clamp_min|copy|fill|zero',
     ['elementwise:', 'layout:', 'noise:']),
    ('optimiser', r'_foreach|addcmul|addcdiv|lerp|sqrt|norm|^aten::clamp_?$', ['optim:']),
]


def family(name, torch_side):
    for fam, ops, kernels in FAMILIES:
        if re.search(ops, name) if torch_side else name.startswith(tuple(kernels)):
            return fam
    return 'other'


def torch_profile(step, steps):
    """Self CPU ms per step by family over `steps` profiled calls of step()."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    fams = {}
    for e in prof.key_averages():
        if e.key.startswith('aten::'):
            fam = family(e.key, True)
            fams[fam] = fams.get(fam, 0.0) + e.self_cpu_time_total / 1e3 / steps
    return fams


def ours_profile(args):
    """darts-minus's per-family ms of one eager profiled step (`bench --profile`)."""
    cmd = [args.darts_minus, 'bench', '--space', args.space, '--batch', str(args.batch),
           '--channels', str(args.channels), '--layers', str(args.layers),
           '--cells-per-stage', str(args.cells_per_stage), '--steps', '1', '--warmup', '1',
           '--profile'] + args.extra.split()
    run = subprocess.run(cmd, capture_output=True, text=True)
    fams, in_table = {}, False
    for line in run.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if cells[:2] == ['kernel', 'launches']:
            in_table = True
            continue
        if not in_table or len(cells) < 4 or not line.startswith('|'):
            continue
        try:
            ms = float(cells[2])
        except ValueError:
            continue
        fam = family(cells[0], False)
        fams[fam] = fams.get(fam, 0.0) + ms
    if not fams:
        print(f'darts-minus --profile gave no table (exit {run.returncode})', flush=True)
    return fams


def print_families(torch_fams, ours_fams):
    names = [f[0] for f in FAMILIES] + ['other']
    print('| family | pytorch ms/step | darts-minus ms/step | ratio |')
    print('|---|---:|---:|---:|')
    for n in names + ['all']:
        t = sum(torch_fams.values()) if n == 'all' else torch_fams.get(n, 0.0)
        o = sum(ours_fams.values()) if n == 'all' else ours_fams.get(n, 0.0)
        ours = f'{o:.1f} | {o / t:.2f}' if ours_fams and t > 0 else (f'{o:.1f} | -' if ours_fams else '- | -')
        print(f'| {n} | {t:.1f} | {ours} |')
    print('(pytorch: self time of aten ops under torch.profiler, each op\'s wall time on its '
          'calling thread, intra-op threads inside; darts-minus: one eager step, each launch '
          'timed alone)', flush=True)


def torch_step_times(args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    # As the reference scripts: DARTS-'s train_search.py lets cuDNN pick its algorithms
    # (benchmark mode; the warm-up steps absorb the picking), NAS-Bench-201's leaves it off.
    torch.backends.cudnn.benchmark = args.space == 'darts'
    if args.space == 'nb201':
        net = NB201SearchNetwork(args.channels, args.cells_per_stage, 10).to(device).train()
        alphas, weights = [net.arch_parameters], net.weights()
        w_opt = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
    else:
        net = SearchNetwork(args.channels, args.layers, 10).to(device).train()
        alphas = [net.alphas_normal.to(device).requires_grad_(), net.alphas_reduce.to(device).requires_grad_()]
        net.alphas_normal, net.alphas_reduce = alphas
        weights = list(net.parameters())
        w_opt = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    b = args.batch

    def alpha_step(x, y):
        a_opt.zero_grad()
        F.cross_entropy(net(x, 1.0), y).backward()
        a_opt.step()

    def weight_step(x, y):
        w_opt.zero_grad()
        loss = F.cross_entropy(net(x, 1.0), y)
        loss.backward()
        nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()
        return loss

    def batch():
        x = torch.randn(b, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (b,), device=device)
        return x, y

    def step(xv, yv, xt, yt):
        # The order of each space's reference code; the loss read back ends the step.
        if args.space == 'nb201':
            loss = weight_step(xt, yt)
            alpha_step(xv, yv)
        else:
            alpha_step(xv, yv)
            loss = weight_step(xt, yt)
        loss.item()
        sync(device)

    times = []
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        (xv, yv), (xt, yt) = batch(), batch()
        sync(device)
        t0 = time.perf_counter()
        step(xv, yv, xt, yt)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device.type == 'cuda' else None
    fams = None
    if getattr(args, 'profile', False):
        fams = torch_profile(lambda: step(*batch(), *batch()), args.steps)
    return times, peak, fams


def ints(text):
    return [int(v) for v in str(text).split(',') if v.strip()]


def one_config(args, record):
    """Times one configuration in PyTorch, then (with --darts-minus) in darts-minus, back to
    back; appends a JSON line to --json-out when given."""
    times, peak, torch_fams = torch_step_times(args)
    med = statistics.median(times)
    depth = f'N={args.cells_per_stage}' if args.space == 'nb201' else f'L={args.layers}'
    config = f'{args.space} C={args.channels} {depth} batch={args.batch}'
    print(f'pytorch {torch.__version__} on {args.device} ({torch.get_num_threads()} threads): '
          f'{config}, median of {args.steps} steps '
          f'after {args.warmup} warm-up: {med * 1e3:.1f} ms/step, {args.batch / med:.1f} images/s'
          + (f', peak {peak / 2**20:.0f} MiB allocated' if peak is not None else ''),
          flush=True)
    ours = None
    if args.darts_minus:
        cmd = [args.darts_minus, 'bench', '--space', args.space, '--batch', str(args.batch),
               '--channels', str(args.channels), '--layers', str(args.layers),
               '--cells-per-stage', str(args.cells_per_stage), '--steps', str(args.steps),
               '--warmup', str(args.warmup), '--json'] + args.extra.split()
        run = subprocess.run(cmd, capture_output=True, text=True)
        try:
            ours = json.loads(run.stdout.strip().splitlines()[-1])['results'][0]
        except (IndexError, KeyError, ValueError):
            # A configuration darts-minus cannot run (too large for the adapter, a driver
            # error) must not hide the ones after it.
            tail = '\n'.join((run.stdout + run.stderr).strip().splitlines()[-8:])
            print(f'darts-minus failed on {config} (exit {run.returncode}):\n{tail}', flush=True)
            ours = None
    if ours is not None:
        ratio = ours['step_ms'] / (med * 1e3)
        print(f"darts-minus on {ours['adapter']}: {ours['step_ms']:.1f} ms/step "
              f"({ours.get('encode_ms', 0):.1f} ms of it encoding commands), "
              f"{ours['images_per_sec']:.1f} images/s, peak {ours['peak_bytes'] / 2**20:.0f} MiB, "
              f"{ours['dispatches_per_step']} dispatches/step")
        print(f'step time ratio darts-minus / pytorch: {ratio:.3f}'
              + (f"; peak memory ratio: {ours['peak_bytes'] / peak:.3f}" if peak else ''),
              flush=True)
    if torch_fams is not None:
        print(f'where a step goes, {config}:')
        print_families(torch_fams, ours_profile(args) if args.darts_minus else {})
    if record:
        line = {
            'space': args.space, 'channels': args.channels, 'layers': args.layers,
            'cells_per_stage': args.cells_per_stage, 'batch': args.batch,
            'steps': args.steps, 'warmup': args.warmup, 'device': args.device,
            'torch_version': torch.__version__, 'torch_threads': torch.get_num_threads(),
            'torch_ms': med * 1e3, 'torch_times_ms': [t * 1e3 for t in times],
            'torch_peak_bytes': peak, 'ours': ours,
        }
        with open(record, 'a') as f:
            f.write(json.dumps(line) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--space', choices=['darts', 'nb201'], default='darts')
    ap.add_argument('--batch', default='64', help='batch size; a comma-separated list runs each')
    ap.add_argument('--channels', default='16',
                    help='initial channels C; a comma-separated list runs each')
    ap.add_argument('--layers', type=int, default=8, help='cells of the DARTS network')
    ap.add_argument('--cells-per-stage', type=int, default=5,
                    help='cells per stage of the NAS-Bench-201 network')
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--threads', type=int,
                    help='CPU threads for PyTorch (torch.set_num_threads; default: its own)')
    ap.add_argument('--darts-minus', help='path of the darts-minus binary to compare with')
    ap.add_argument('--profile', action='store_true',
                    help='also print a step\'s time by op family on both sides (torch.profiler; '
                    'darts-minus bench --profile)')
    ap.add_argument('--extra', default='', help='extra arguments for darts-minus bench')
    ap.add_argument('--json-out', help='append one JSON line per configuration (both sides) to '
                    'this file: the input of `darts-minus bench --chart OUT.svg --pairs FILE`')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches, channels = ints(args.batch), ints(args.channels)
    for c in channels:
        for b in batches:
            one = argparse.Namespace(**vars(args))
            one.channels, one.batch = c, b
            one_config(one, args.json_out)


if __name__ == '__main__':
    main()
