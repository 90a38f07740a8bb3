#!/usr/bin/env python3
"""Time `darts-minus bench` over binaries × launch-policy overrides × configurations, in rounds.

For tuning the launch policy on a new adapter without rebuilding: each policy is a
`DARTS_MINUS_POLICY` string (`name=value,…`; empty: the binary's defaults; the names are
LaunchPolicy's thresholds, `darts-minus devices` prints them). Every round runs every
(binary, policy, configuration) once, in the same order, so that drift hits them alike; the
summary gives each cell's median step time over the rounds and its ratio to the first cell of
its configuration.

Usage:
  python3 tools/policy_sweep.py --bin new=target/release/darts-minus [--bin old=PATH] \\
      --policy '' --policy 'weight_grad_threads=65536' \\
      --config '--channels 16 --layers 8 --batch 64' --config '--space nb201 --batch 64' \\
      [--steps 3] [--warmup 1] [--rounds 2] [--deadline SECONDS] [--json-out FILE]
A binary given as label=PATH:plain runs with the empty policy only (one that predates the
overrides would ignore them).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bin', action='append', required=True, help='label=PATH[:plain]')
    ap.add_argument('--policy', action='append', default=None)
    ap.add_argument('--config', action='append', required=True,
                    help='bench arguments, e.g. "--channels 16 --layers 8 --batch 64,256"')
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--deadline', type=float, default=0,
                    help='start no run after this many seconds (0: none)')
    ap.add_argument('--json-out', help='append one JSON line per run')
    args = ap.parse_args()
    policies = args.policy if args.policy is not None else ['']
    bins = []
    for b in args.bin:
        label, path = b.split('=', 1)
        plain = path.endswith(':plain')
        bins.append((label, path[:-len(':plain')] if plain else path, plain))
    cells = [(label, path, pol, cfg)
             for cfg in args.config
             for (label, path, plain) in bins
             for pol in ([''] if plain else policies)]
    times = {}
    t_start = time.time()
    runs = [(r, cell) for r in range(args.rounds) for cell in cells]
    for r, (label, path, pol, cfg) in runs:
        if args.deadline and time.time() - t_start > args.deadline:
            print(f'deadline: stopped in round {r + 1}', flush=True)
            break
        env = dict(os.environ, DARTS_MINUS_POLICY=pol)
        cmd = [path, 'bench', *cfg.split(), '--steps', str(args.steps),
               '--warmup', str(args.warmup), '--json']
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        try:
            results = json.loads(run.stdout.strip().splitlines()[-1])['results']
        except (IndexError, KeyError, ValueError):
            tail = '\n'.join((run.stdout + run.stderr).strip().splitlines()[-5:])
            print(f'{label} [{pol}] {cfg}: failed (exit {run.returncode})\n{tail}', flush=True)
            continue
        for res in results:
            times.setdefault((res['label'], label, pol), []).append(res['step_ms'])
            print(f"round {r + 1}: {res['label']} | {label} | {pol or 'defaults'} | "
                  f"{res['step_ms']:.1f} ms (encoding {res.get('encode_ms', 0):.1f}), "
                  f"peak {res['peak_bytes'] / 2**20:.0f} MiB", flush=True)
            if args.json_out:
                with open(args.json_out, 'a') as f:
                    f.write(json.dumps({'round': r + 1, 'binary': label, 'policy': pol,
                                        'result': res}) + '\n')
    print('\n| configuration | binary | policy | median ms | rounds | vs first |')
    print('|---|---|---|---:|---:|---:|')
    first = {}
    for (cfg, label, pol), v in times.items():
        med = statistics.median(v)
        base = first.setdefault(cfg, med)
        print(f'| {cfg} | {label} | {pol or "defaults"} | {med:.1f} | {len(v)} | '
              f'{med / base:.3f} |')
    return 0 if times else 1


if __name__ == '__main__':
    sys.exit(main())
