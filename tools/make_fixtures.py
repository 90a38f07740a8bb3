#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for `cargo test` (tests/torch_reference.rs).

Usage: python3 tools/make_fixtures.py [--out tests/fixtures]
Needs: torch, safetensors (pip install torch safetensors numpy) and, for the NAS-Bench-201
step, the benchmark's own code (pip install --no-deps xautodl).

The modules below are written from ../shared/SPEC.md with plain torch.nn layers; tensor
names follow the reference state_dict. Inputs and weights are float32 values; everything is
computed in float64 so the fixtures are exact references for the f32 GPU results.
Each fixture holds: inputs, the module state before the pass (reference names), the output,
an upstream weighting `c` (loss = sum(out * c)), gradients (`grad.<name>`) and running
statistics after the pass (`after.<name>`). The search-step fixtures hold each step's batches
and losses, the change of every state entry (`step<k>.change.<name>`) and Adam's moments of
alpha (`step<k>.exp_avg.<name>`, `step<k>.exp_avg_sq.<name>`).
"""
import argparse
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file


# ---------------------------------------------------------------- DARTS operations (SPEC §2)
class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout, k, s, p, affine):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, k, s, p, bias=False),
                                nn.BatchNorm2d(cout, affine=affine))

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    def __init__(self, cin, cout, affine):
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(cout, affine=affine)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Module):
    def __init__(self, c, k, s, p, affine):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, k, s, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(), nn.Conv2d(c, c, k, 1, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, c, k, s, p, d, affine):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, s, p, dilation=d, groups=c, bias=False),
                                nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x[:, :, ::self.s, ::self.s].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Noise(nn.Module):
    """RobustDARTS' `noise` (SPEC §10): fresh N(0, 1) values of x[:, :, ::s, ::s]'s shape, no
    gradient to x. Each draw is float32 (then cast to x's dtype) and kept in DRAWS, in draw
    order, so the Rust side can be fed exactly these values."""
    DRAWS = []

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        n = torch.randn(x[:, :, ::self.s, ::self.s].shape, dtype=torch.float32)
        Noise.DRAWS.append(n)
        return n.to(x.dtype)


PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',
              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']

# RobustDARTS' spaces (SPEC §10): the candidates of each edge 0..13, normal and reduction.
SKIP, MAX, AVG, SEP3, DIL3, DIL5 = ('skip_connect', 'max_pool_3x3', 'avg_pool_3x3', 'sep_conv_3x3',
                                   'dil_conv_3x3', 'dil_conv_5x5')
SPACES = {
    's1': dict(
        normal=[[SKIP, DIL3], [SKIP, DIL5], [SKIP, DIL5], [SKIP, SEP3], [SKIP, DIL3], [MAX, SKIP],
                [SKIP, SEP3], [SKIP, SEP3], [SKIP, DIL3], [SKIP, SEP3], [MAX, SKIP], [SKIP, DIL3],
                [DIL3, DIL5], [DIL3, DIL5]],
        reduce=[[MAX, AVG], [MAX, DIL3], [MAX, AVG], [MAX, AVG], [SKIP, DIL5], [MAX, AVG],
                [MAX, SEP3], [SKIP, DIL3], [SKIP, DIL5], [MAX, AVG], [MAX, AVG], [SKIP, DIL5],
                [SKIP, DIL5], [SKIP, DIL5]]),
    's2': dict(normal=[[SKIP, SEP3]] * 14, reduce=[[SKIP, SEP3]] * 14),
    's3': dict(normal=[['none', SKIP, SEP3]] * 14, reduce=[['none', SKIP, SEP3]] * 14),
    's4': dict(normal=[['noise', SEP3]] * 14, reduce=[['noise', SEP3]] * 14),
}


def make_op(name, c, s):
    if name == 'none':
        return Zero(s)
    if name == 'noise':
        return Noise(s)
    if name == 'max_pool_3x3':
        return nn.Sequential(nn.MaxPool2d(3, s, 1), nn.BatchNorm2d(c, affine=False))
    if name == 'avg_pool_3x3':
        return nn.Sequential(nn.AvgPool2d(3, s, 1, count_include_pad=False), nn.BatchNorm2d(c, affine=False))
    if name == 'skip_connect':
        return Identity() if s == 1 else FactorizedReduce(c, c, False)
    if name == 'sep_conv_3x3':
        return SepConv(c, 3, s, 1, False)
    if name == 'sep_conv_5x5':
        return SepConv(c, 5, s, 2, False)
    if name == 'dil_conv_3x3':
        return DilConv(c, 3, s, 2, 2, False)
    if name == 'dil_conv_5x5':
        return DilConv(c, 5, s, 4, 2, False)
    raise ValueError(name)


class MixedOp(nn.Module):
    """DARTS- edge: sum_k w_k op_k(x) + beta * aux(x) (SPEC §4)."""

    def __init__(self, c, s, names=PRIMITIVES):
        super().__init__()
        self._ops = nn.ModuleList([make_op(n, c, s) for n in names])
        self.auxiliary_op = FactorizedReduce(c, c, False) if s == 2 else Identity()

    def forward(self, x, w, beta):
        return sum(wk * op(x) for wk, op in zip(w, self._ops)) + beta * self.auxiliary_op(x)


class SearchCell(nn.Module):
    """SPEC §3: preprocess, 4 nodes of mixed edges, concat of the nodes."""

    def __init__(self, c_pp, c_p, c, reduction, reduction_prev, nodes=4, lists=None):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c, False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, False)
        self.nodes = nodes
        self._ops = nn.ModuleList()
        for i in range(nodes):
            for j in range(2 + i):
                names = lists[len(self._ops)] if lists else PRIMITIVES
                self._ops.append(MixedOp(c, 2 if reduction and j < 2 else 1, names))

    def forward(self, s0, s1, w, beta):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            states.append(sum(self._ops[offset + j](h, w[offset + j], beta) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


class SearchNetwork(nn.Module):
    """SPEC §3: stem, cells (reductions at L//3 and 2L//3), global pool, classifier; `space`
    gives each edge its own candidates (SPEC §10), DARTS' eight by default."""

    def __init__(self, c, layers, classes, nodes=4, space=None):
        super().__init__()
        c_cur = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_cur, 3, padding=1, bias=False), nn.BatchNorm2d(c_cur))
        c_pp, c_p, c_cur = c_cur, c_cur, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_cur *= 2
            lists = space and space['reduce' if reduction else 'normal']
            self.cells.append(SearchCell(c_pp, c_p, c_cur, reduction, reduction_prev, nodes, lists))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_cur
        self.classifier = nn.Linear(c_p, classes)
        k = sum(2 + i for i in range(nodes))
        width = len(space['normal'][0]) if space else len(PRIMITIVES)
        self.alphas_normal = 1e-3 * torch.randn(k, width)
        self.alphas_reduce = 1e-3 * torch.randn(k, width)

    def forward(self, x, beta):
        s0 = s1 = self.stem(x)
        wn = F.softmax(self.alphas_normal, dim=-1)
        wr = F.softmax(self.alphas_reduce, dim=-1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, wr if cell.reduction else wn, beta)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


# ---------------------------------------------------------------- evaluation network (SPEC §8)
DARTS_V2 = dict(
    normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
    reduce_concat=[2, 3, 4, 5])
DARTS_MINUS = dict(
    normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('dil_conv_3x3', 2),
            ('skip_connect', 1), ('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 0)],
    normal_concat=[2, 3, 4, 5],
    reduce=[('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0),
            ('skip_connect', 2), ('skip_connect', 3), ('skip_connect', 2), ('skip_connect', 3)],
    reduce_concat=[2, 3, 4, 5])


def eval_op(name, c, s):
    if name == 'max_pool_3x3':
        return nn.MaxPool2d(3, s, 1)
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, s, 1, count_include_pad=False)
    if name == 'skip_connect':
        return Identity() if s == 1 else FactorizedReduce(c, c, True)
    if name == 'sep_conv_3x3':
        return SepConv(c, 3, s, 1, True)
    if name == 'sep_conv_5x5':
        return SepConv(c, 5, s, 2, True)
    if name == 'dil_conv_3x3':
        return DilConv(c, 3, s, 2, 2, True)
    if name == 'dil_conv_5x5':
        return DilConv(c, 5, s, 4, 2, True)
    raise ValueError(name)


class EvalCell(nn.Module):
    def __init__(self, genes, concat, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c, True) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, True)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, True)
        self._ops = nn.ModuleList([eval_op(n, c, 2 if reduction and j < 2 else 1) for n, j in genes])
        self.indices = [j for _, j in genes]
        self.concat = concat

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self._ops) // 2):
            a, b = 2 * i, 2 * i + 1
            states.append(self._ops[a](states[self.indices[a]]) + self._ops[b](states[self.indices[b]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxHead(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, 3, 0, count_include_pad=False), nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class EvalNetwork(nn.Module):
    def __init__(self, genotype, c, layers, classes, auxiliary=True):
        super().__init__()
        c_cur = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_cur, 3, padding=1, bias=False), nn.BatchNorm2d(c_cur))
        c_pp, c_p, c_cur = c_cur, c_cur, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.aux_after = 2 * layers // 3
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_cur *= 2
            kind = 'reduce' if reduction else 'normal'
            self.cells.append(EvalCell(genotype[kind], genotype[kind + '_concat'], c_pp, c_p, c_cur, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, len(genotype[kind + '_concat']) * c_cur
            if i == self.aux_after:
                c_aux = c_p
        if auxiliary:
            self.auxiliary_head = AuxHead(c_aux, classes)
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_after and hasattr(self, 'auxiliary_head') and self.training:
                aux = self.auxiliary_head(s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1)), aux


NB201_OPS = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3']


def nb201_op(name, c):
    """NAS-Bench-201 ops with affine BN (training network): nor_conv = ReLU -> conv -> BN."""
    if name == 'none':
        return Zero(1)
    if name == 'skip_connect':
        return Identity()
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    k = 1 if name == 'nor_conv_1x1' else 3
    return ReLUConvBN(c, c, k, 1, k // 2, True)


class NB201Cell(nn.Module):
    EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]

    def __init__(self, ops, c):
        super().__init__()
        self.layers = nn.ModuleList([nb201_op(o, c) for o in ops])

    def forward(self, x):
        nodes = [x]
        for to in (1, 2, 3):
            nodes.append(sum(self.layers[e](nodes[f]) for e, (t, f) in enumerate(self.EDGES) if t == to))
        return nodes[-1]


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2, 1, True)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1, 1, True)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """SPEC §7's network: stem, 3 stages of n cells joined by residual blocks, BN-ReLU, linear.
    Cells are NB201Cell(ops, c), or make_cell(c) where given."""

    def __init__(self, ops, c=16, n=5, classes=10, make_cell=None):
        super().__init__()
        make_cell = make_cell or (lambda ch: NB201Cell(ops, ch))
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        cells = []
        for stage in range(3):
            if stage:
                cells.append(ResBlock(c, 2 * c))
                c *= 2
            cells += [make_cell(c) for _ in range(n)]
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, classes)


class NB201SearchNetwork(NB201Network):
    """SPEC §7's search network: every edge sum_k softmax(alpha)_k op_k(x) + beta * x, one alpha
    (6 edges × 5 ops) shared by all cells; nor_conv with a bias and BN affine=False."""

    def __init__(self, c=16, n=5, classes=10):
        def mixed_cell(ch):
            return nn.ModuleList([nn.ModuleList([nb201_search_op(o, ch) for o in NB201_OPS])
                                  for _ in NB201Cell.EDGES])
        super().__init__(None, c, n, classes, make_cell=mixed_cell)
        self.arch_parameters = nn.Parameter(1e-3 * torch.randn(len(NB201Cell.EDGES), len(NB201_OPS)))

    def weights(self):
        return [p for n, p in self.named_parameters() if n != 'arch_parameters']

    def forward(self, x, beta):
        w = F.softmax(self.arch_parameters, dim=-1)
        h = self.stem(x)
        for cell in self.cells:
            if isinstance(cell, ResBlock):
                h = cell(h)
                continue
            nodes = [h]
            for to in (1, 2, 3):
                nodes.append(sum(sum(wk * op(nodes[f]) for wk, op in zip(w[e], cell[e])) + beta * nodes[f]
                                 for e, (t, f) in enumerate(NB201Cell.EDGES) if t == to))
            h = nodes[-1]
        h = self.lastact(h)
        return self.classifier(F.adaptive_avg_pool2d(h, 1).flatten(1))


def nb201_search_op(name, c):
    """Search-network ops (SPEC §7): nor_conv = ReLU -> conv with bias -> BN(affine=False)."""
    if name in ('nor_conv_1x1', 'nor_conv_3x3'):
        k = 1 if name == 'nor_conv_1x1' else 3
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, 1, k // 2, bias=True),
                             nn.BatchNorm2d(c, affine=False))
    return nb201_op(name, c)


# ---------------------------------------------------------------- helpers
def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def state(module, prefix=''):
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}


def finish(out_dict, module, prefix, before):
    """Adds state before, gradients and running statistics after a pass."""
    for k, v in before.items():
        out_dict[k] = v
    for k, p in module.named_parameters():
        if p.grad is not None:
            out_dict['grad.' + prefix + k] = p.grad.detach().clone()
    for k, b in module.named_buffers():
        out_dict['after.' + prefix + k] = b.detach().clone()


def save(path, tensors):
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    save_file(tensors, path)
    print(f'wrote {path}: {len(tensors)} tensors')


# ---------------------------------------------------------------- fixtures
def mixed_edge(stride, out_dir):
    torch.manual_seed(10 + stride)
    c, edge, beta = 4, (5 if stride == 1 else 0), 0.7
    op = MixedOp(c, stride)
    before = state(op)
    x = randn(2, c, 8, 8)
    alphas = randn(14, 8)
    op = op.double().train()
    xd = x.double().requires_grad_()
    ad = alphas.double().requires_grad_()
    w = F.softmax(ad, dim=-1)
    out = op(xd, w[edge], beta)
    cw = randn(*out.shape)
    (out * cw.double()).sum().backward()
    t = {'x': x, 'alphas': alphas, 'edge': torch.tensor([edge], dtype=torch.int64),
         'beta': torch.tensor([beta], dtype=torch.float32), 'c': cw, 'out': out.detach(),
         'grad.x': xd.grad, 'grad.alphas': ad.grad}
    finish(t, op, '', before)
    save(os.path.join(out_dir, f'mixed_edge_s{stride}.safetensors'), t)


def sep_conv_stack(out_dir):
    torch.manual_seed(3)
    net = nn.Sequential(SepConv(3, 5, 2, 2, True), SepConv(3, 3, 1, 1, True))
    # Non-trivial affine parameters.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    before = state(net)
    x = randn(2, 3, 9, 9)
    net = net.double().train()
    xd = x.double().requires_grad_()
    out = net(xd)
    cw = randn(*out.shape)
    (out * cw.double()).sum().backward()
    t = {'x': x, 'c': cw, 'out': out.detach(), 'grad.x': xd.grad}
    finish(t, net, '', before)
    net.eval()
    with torch.no_grad():
        t['out_eval'] = net(x.double())
    save(os.path.join(out_dir, 'sep_conv_stack.safetensors'), t)


def primitive_ops(out_dir):
    """Single ops whose PyTorch semantics are easy to get subtly wrong."""
    torch.manual_seed(4)
    t = {}

    def case(name, fn, inputs, diff):
        ins = [i.double().requires_grad_(d) for i, d in zip(inputs, diff)]
        out = fn(*ins)
        cw = randn(*out.shape)
        (out * cw.double()).sum().backward()
        t[name + '.out'] = out.detach()
        t[name + '.c'] = cw
        for k, (i, d) in enumerate(zip(ins, diff)):
            t[f'{name}.in.{k}'] = inputs[k]
            if d:
                t[f'{name}.grad.{k}'] = i.grad

    x = randn(2, 3, 7, 9)
    case('max_pool_3x3_s2', lambda a: F.max_pool2d(a, 3, 2, 1), [x], [True])
    case('avg_pool_3x3_s1', lambda a: F.avg_pool2d(a, 3, 1, 1, count_include_pad=False), [x], [True])
    case('avg_pool_3x3_s2', lambda a: F.avg_pool2d(a, 3, 2, 1, count_include_pad=False), [x], [True])
    case('avg_pool_2x2_s2', lambda a: F.avg_pool2d(a, 2, 2), [randn(2, 3, 8, 6)], [True])
    case('avg_pool_5x5_s3', lambda a: F.avg_pool2d(a, 5, 3, 0, count_include_pad=False), [randn(2, 4, 8, 8)], [True])
    case('conv_3x3_bias', lambda a, w, b: F.conv2d(a, w, b, 1, 1), [x, randn(4, 3, 3, 3), randn(4)], [True] * 3)
    case('conv_dw_5x5_d2_s2', lambda a, w: F.conv2d(a, w, None, 2, 4, 2, 3), [x, randn(3, 1, 5, 5)], [True] * 2)
    case('linear', lambda a, w, b: F.linear(a, w, b), [randn(5, 7), randn(3, 7), randn(3)], [True] * 3)
    case('softmax', lambda a: F.softmax(a, dim=-1), [randn(14, 8)], [True])
    labels = torch.randint(0, 10, (6,))
    t['cross_entropy.labels'] = labels
    case('cross_entropy', lambda a: F.cross_entropy(a, labels).reshape(1), [randn(6, 10) * 3], [True])
    # Batch norm, train mode: output, gradients, running statistics after one update.
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    for k, v in bn.state_dict().items():
        t['bn.before.' + k] = v.clone().float() if v.is_floating_point() else v.clone()
    case('bn_train', lambda a, g, b: F.batch_norm(a, bn.running_mean, bn.running_var, g, b, True, 0.1, 1e-5),
         [x, bn.weight.detach().float(), bn.bias.detach().float()], [True] * 3)
    t['bn.after.running_mean'] = bn.running_mean.clone()
    t['bn.after.running_var'] = bn.running_var.clone()
    save(os.path.join(out_dir, 'primitive_ops.safetensors'), t)


def step_record(t, k, before, after, adam, alphas):
    """Step k's record: the change of every state entry (after - before, in float64, stored as
    float32: the change keeps its own digits, which the weights' float32 would round away),
    counters as int64, and Adam's moments of each alpha (its gradients, not just their signs)."""
    for name, a in after.items():
        d = a - before[name]
        t[f'step{k}.change.{name}'] = d if not d.is_floating_point() else d.float()
    for name, p in alphas.items():
        st = adam.state[p]
        t[f'step{k}.exp_avg.{name}'] = st['exp_avg'].float()
        t[f'step{k}.exp_avg_sq.{name}'] = st['exp_avg_sq'].float()


def snapshot(net, alphas):
    s = {k: v.detach().clone() for k, v in net.state_dict().items()}
    s.update({k: v.detach().clone() for k, v in alphas.items()})
    return s


# A ReLU input this close to 0, or a max-pool runner-up this close to its window's maximum,
# is a decision that float32 may take the other way: one flipped ReLU at 1.8e-8 moved a
# DARTS- alpha gradient by 4e-4 of its largest value. Step fixtures draw their batches anew
# until every decision clears this margin (exact ties excluded: both sides compute them alike).
DECISION_MARGIN = 2e-7


class Decisions:
    """The smallest decision margin of the forwards run inside it (F.relu, which nn.ReLU
    calls, and F.max_pool2d)."""

    def __enter__(self):
        self.margin = float('inf')
        self.relu, self.max_pool2d = F.relu, F.max_pool2d

        def relu(x, *a, **k):
            self.margin = min(self.margin, x.detach().abs().min().item())
            return self.relu(x, *a, **k)

        def max_pool2d(x, kernel_size, stride=None, padding=0, *a, **k):
            s = stride or kernel_size
            u = F.pad(x.detach(), (padding,) * 4, value=float('-inf'))
            u = u.unfold(2, kernel_size, s).unfold(3, kernel_size, s).flatten(-2)
            top = u.topk(2, dim=-1).values
            gap = top[..., 0] - top[..., 1]
            gap = gap[gap > 0]
            if gap.numel():
                self.margin = min(self.margin, gap.min().item())
            return self.max_pool2d(x, kernel_size, stride, padding, *a, **k)

        F.relu, F.max_pool2d = relu, max_pool2d
        return self

    def __exit__(self, *exc):
        F.relu, F.max_pool2d = self.relu, self.max_pool2d


def clear_steps(run, draw, what):
    """run(draw()) with batches drawn until no decision of the steps is within the margin."""
    for _ in range(100):
        batches = draw()
        with Decisions() as d:
            t = run(batches)
        if d.margin >= DECISION_MARGIN:
            return t
        print(f'{what}: a decision within {d.margin:.1e}; drawing new batches')
    raise SystemExit(f'{what}: no batches clear the decision margin')


def search_step(out_dir):
    """Two first-order DARTS- steps (SPEC §5), each an Adam step on alpha from a validation
    batch, then SGD with momentum, weight decay and clipping on w from a training batch. The
    second step makes Adam's alpha update depend on gradient magnitudes, not only signs."""
    torch.manual_seed(5)
    net0 = SearchNetwork(4, 5, 10)
    # Large enough alpha that the softmax is not uniform, so its gradient matters.
    net0.alphas_normal = torch.randn(14, 8) * 0.5
    net0.alphas_reduce = torch.randn(14, 8) * 0.5
    init = state(net0)
    init['alphas_normal'] = net0.alphas_normal.clone()
    init['alphas_reduce'] = net0.alphas_reduce.clone()
    save(os.path.join(out_dir, 'search_step_init.safetensors'), init)

    def draw():
        return [(randn(6, 3, 16, 16), torch.randint(0, 10, (6,)), randn(6, 3, 16, 16),
                 torch.randint(0, 10, (6,))) for _ in range(2)]

    def run(batches):
        net = copy.deepcopy(net0).double().train()
        alphas = {'alphas_normal': net.alphas_normal.double().requires_grad_(),
                  'alphas_reduce': net.alphas_reduce.double().requires_grad_()}
        net.alphas_normal, net.alphas_reduce = alphas.values()
        beta, lr = 1.0, 0.025
        w_opt = torch.optim.SGD(net.parameters(), lr, momentum=0.9, weight_decay=3e-4)
        a_opt = torch.optim.Adam(alphas.values(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        t = {}
        for k, (xt, yt, xv, yv) in enumerate(batches, 1):
            before = snapshot(net, alphas)
            # alpha step on the validation batch (model in train mode).
            a_opt.zero_grad()
            loss_a = F.cross_entropy(net(xv.double(), beta), yv)
            loss_a.backward()
            a_opt.step()
            # w step on the training batch; alpha is not a parameter of the network, so
            # neither in the optimiser nor in the clipping norm.
            w_opt.zero_grad()
            loss_w = F.cross_entropy(net(xt.double(), beta), yt)
            loss_w.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            w_opt.step()
            step_record(t, k, before, snapshot(net, alphas), a_opt, alphas)
            t.update({f'step{k}.x_train': xt, f'step{k}.y_train': yt, f'step{k}.x_val': xv,
                      f'step{k}.y_val': yv, f'step{k}.loss_arch': loss_a.detach().reshape(1),
                      f'step{k}.loss_weights': loss_w.detach().reshape(1)})
        return t

    t = clear_steps(run, draw, 'search_step')
    save(os.path.join(out_dir, 'search_step_changes.safetensors'), t)


def nb201_step(out_dir, name='nb201_step', beta=None):
    """Two steps of NAS-Bench-201's first-order DARTS on the benchmark's own search network
    (xautodl's TinyNetworkDarts: pip install --no-deps xautodl), stepped as the benchmark's
    exps/NAS-Bench-201-algos/DARTS-V1.py does: w step (Nesterov SGD, wd 5e-4, then
    clip_grad_norm_ over network.parameters(), which include alpha), then the alpha step
    (Adam). alpha.grad is cleared only by the alpha optimiser, so the clipping norm of step 2
    also holds the previous alpha step's gradient. Clipping at DARTS-V1's default 5 acts on
    step 2 here.

    With `beta`: DARTS- (SPEC §7), the same network and step with beta * (edge input) added
    to every edge's output, as tools/nb201_reference_search.py --method darts-minus runs it
    (beta below 1 so that a missing or misplaced factor shows)."""
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts
    torch.manual_seed(7)
    if beta is None:
        net0 = TinyNetworkDarts(2, 1, 4, 10, NB201_OPS, False, True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from nb201_reference_search import TinyNetworkDartsMinus
        net0 = TinyNetworkDartsMinus(2, 1, 4, 10, NB201_OPS, False, True)
        net0.beta = beta
    with torch.no_grad():
        net0.arch_parameters.normal_(0, 0.5)
    save(os.path.join(out_dir, f'{name}_init.safetensors'), state(net0))

    def draw():
        return [(randn(4, 3, 8, 8), torch.randint(0, 10, (4,)), randn(4, 3, 8, 8),
                 torch.randint(0, 10, (4,))) for _ in range(2)]

    def run(batches):
        net = copy.deepcopy(net0).double().train()
        w_opt = torch.optim.SGD(net.get_weights(), 0.025, momentum=0.9, weight_decay=5e-4,
                                nesterov=True)
        a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        t = {}
        for k, (xt, yt, xv, yv) in enumerate(batches, 1):
            before = snapshot(net, {})
            w_opt.zero_grad()
            _, logits = net(xt.double())
            loss_w = F.cross_entropy(logits, yt)
            loss_w.backward()
            norm = nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            w_opt.step()
            a_opt.zero_grad()
            _, logits = net(xv.double())
            loss_a = F.cross_entropy(logits, yv)
            loss_a.backward()
            a_opt.step()
            step_record(t, k, before, snapshot(net, {}), a_opt,
                        {'arch_parameters': net.arch_parameters})
            t.update({f'step{k}.x_train': xt, f'step{k}.y_train': yt, f'step{k}.x_val': xv,
                      f'step{k}.y_val': yv, f'step{k}.loss_arch': loss_a.detach().reshape(1),
                      f'step{k}.loss_weights': loss_w.detach().reshape(1),
                      f'step{k}.clip_norm': norm.detach().reshape(1)})
        return t

    t = clear_steps(run, draw, name)
    save(os.path.join(out_dir, f'{name}_changes.safetensors'), t)


def search_step_space(name, batch, out_dir):
    """The same step in a RobustDARTS space (one file: initial state by the reference names,
    `after.*`, the batches, and for S4 every noise draw in order as `noise.<i>`)."""
    torch.manual_seed(7)
    Noise.DRAWS.clear()
    init, t = one_search_step(SearchNetwork(4, 5, 10, space=SPACES[name]), batch)
    # float32 afterwards halves the file; its rounding is far below the check's tolerances.
    t = {k: v.float() if k.startswith('after.') and v.is_floating_point() else v for k, v in t.items()}
    t.update(init)
    for i, n in enumerate(Noise.DRAWS):
        t[f'noise.{i}'] = n
    save(os.path.join(out_dir, f'search_step_{name}.safetensors'), t)


def one_search_step(net, batch):
    """(initial state, results) of one α step and one w step of `net` on random batches."""
    # Large enough α that the softmax is not uniform, so its gradient matters.
    net.alphas_normal = torch.randn(*net.alphas_normal.shape) * 0.5
    net.alphas_reduce = torch.randn(*net.alphas_reduce.shape) * 0.5
    init = state(net)
    init['alphas_normal'] = net.alphas_normal.clone()
    init['alphas_reduce'] = net.alphas_reduce.clone()
    xt, xv = randn(batch, 3, 16, 16), randn(batch, 3, 16, 16)
    yt, yv = torch.randint(0, 10, (batch,)), torch.randint(0, 10, (batch,))
    net = net.double().train()
    alphas = [net.alphas_normal.double().requires_grad_(), net.alphas_reduce.double().requires_grad_()]
    net.alphas_normal, net.alphas_reduce = alphas
    beta, lr = 1.0, 0.025
    w_opt = torch.optim.SGD(net.parameters(), lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    # α step on the validation batch (model in train mode).
    a_opt.zero_grad()
    loss_a = F.cross_entropy(net(xv.double(), beta), yv)
    loss_a.backward()
    a_opt.step()
    # w step on the training batch.
    w_opt.zero_grad()
    loss_w = F.cross_entropy(net(xt.double(), beta), yt)
    loss_w.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    w_opt.step()
    after = {k: v.detach().clone() for k, v in net.state_dict().items()}
    after['alphas_normal'] = alphas[0].detach().clone()
    after['alphas_reduce'] = alphas[1].detach().clone()
    t = {'after.' + k: v for k, v in after.items()}
    t.update({'x_train': xt, 'y_train': yt, 'x_val': xv, 'y_val': yv,
              'loss_arch': loss_a.detach().reshape(1), 'loss_weights': loss_w.detach().reshape(1)})
    return init, t


def multiply_adds(net):
    """Multiply-adds of one 32x32 image through the eval-mode network (convs and linears)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in hs:
        h.remove()
    return total[0]


def eval_network(out_dir):
    """Parameter counts of the paper-sized networks, and one training step of a small one."""
    import json
    counts = {}
    for name, g in (('DARTS_V2', DARTS_V2), ('DARTS_MINUS', DARTS_MINUS)):
        net = EvalNetwork(g, 36, 20, 10)
        total = sum(p.numel() for p in net.parameters())
        aux = sum(p.numel() for p in net.auxiliary_head.parameters())
        counts[name] = {'without_aux': total - aux, 'aux_head': aux, 'multiply_adds': multiply_adds(net)}
    best = ['nor_conv_3x3', 'nor_conv_3x3', 'nor_conv_3x3', 'skip_connect', 'nor_conv_3x3', 'nor_conv_1x1']
    net = NB201Network(best)
    counts['NB201_BEST'] = {'without_aux': sum(p.numel() for p in net.parameters()), 'aux_head': 0,
                            'names': sorted(net.state_dict().keys())}
    with open(os.path.join(out_dir, 'eval_counts.json'), 'w') as f:
        json.dump(counts, f, indent=1)
    print('eval counts', counts)
    torch.manual_seed(6)
    net = EvalNetwork(DARTS_MINUS, 4, 5, 10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    t = {'init.' + k: v for k, v in state(net).items()}
    x, y = randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    net = net.double().train()
    opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    logits, aux = net(x.double())
    loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    t.update({'x': x, 'y': y, 'logits': logits.detach().float(), 'logits_aux': aux.detach().float(),
              'loss': loss.detach().reshape(1)})
    for k, v in net.state_dict().items():
        t['after.' + k] = v.float() if v.is_floating_point() else v
    save(os.path.join(out_dir, 'eval_step.safetensors'), t)


FIXTURES = ['mixed_edge', 'sep_conv_stack', 'primitive_ops', 'search_step', 'nb201_step',
            'nb201_minus_step', 'search_step_s1', 'search_step_s4', 'eval_network']


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument('--out', default=os.path.join(here, '..', 'tests', 'fixtures'))
    ap.add_argument('--only', nargs='+', choices=FIXTURES, default=FIXTURES,
                    help='write these fixtures only (default: all)')
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    make = {
        'mixed_edge': lambda: (mixed_edge(1, args.out), mixed_edge(2, args.out)),
        'sep_conv_stack': lambda: sep_conv_stack(args.out),
        'primitive_ops': lambda: primitive_ops(args.out),
        'search_step': lambda: search_step(args.out),
        'nb201_step': lambda: nb201_step(args.out),
        'nb201_minus_step': lambda: nb201_step(args.out, 'nb201_minus_step', beta=0.7),
        'search_step_s1': lambda: search_step_space('s1', 6, args.out),
        # Batch 2: the fixture holds every noise draw of both forwards.
        'search_step_s4': lambda: search_step_space('s4', 2, args.out),
        'eval_network': lambda: eval_network(args.out),
    }
    for name in args.only:
        make[name]()


if __name__ == '__main__':
    main()
