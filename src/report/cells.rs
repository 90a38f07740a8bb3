//! Drawing of a derived DARTS cell (genotype) as a layered left-to-right graph in the style of
//! the DARTS paper's figures. The NAS-Bench-201 cell is in `nb201_cell`, sharing the constants
//! and [`titled`] from here.
//!
//! The DARTS layout keeps labels apart by construction: every edge enters its target node
//! through a horizontal stub at its own port, and the op label sits on that stub. Stubs of one
//! column are horizontal at distinct heights, so labels cannot overlap one another, and curves
//! (where edges cross) stay in the zone between a column's stubs and the previous column.

use super::svg::{arrowhead, hex, num, text_width, Anchor, Svg};
use super::{op_colour, write_file};
use crate::error::{Error, Result};
use std::path::Path;

pub(super) const LABEL_SIZE: f64 = 13.0;
const NODE_W: f64 = 78.0;
const NODE_H: f64 = 42.0;
/// Horizontal room for the curved part of the edges between two columns.
const CURVE_ZONE: f64 = 90.0;
/// Stub length in a column no labelled edge enters (the output's).
const BARE_STUB: f64 = 28.0;
/// Vertical spacing between port centres on the left side of a node.
const PORT_PITCH: f64 = 22.0;
pub(super) const MARGIN: f64 = 24.0;
pub(super) const TITLE_H: f64 = 40.0;
pub(super) const ARROW: f64 = 9.0;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Input,
    Node,
    Output,
    Dummy,
}

#[derive(Debug)]
struct Vertex {
    kind: Kind,
    label: String,
    layer: usize,
    y: f64,
    h: f64,
}

/// An edge as the sequence of vertices it passes: source, dummies (one per layer crossed), target.
#[derive(Debug)]
struct Route {
    path: Vec<usize>,
    op: Option<String>,
}

/// Draws a derived DARTS cell: inputs c_{k-2} and c_{k-1} on the left, intermediate nodes in
/// layers by depth, the output c_{k} on the right; every gene is an arrow labelled and
/// coloured by its op, and the `concat` nodes feed the output.
///
/// `genes` come in pairs, node `i` taking `genes[2i]` and `genes[2i+1]`; a gene's input `j` is
/// 0 = c_{k-2}, 1 = c_{k-1}, `j ≥ 2` = intermediate node `j−2` (which must come before node
/// `i`). `concat` holds state indices in the same numbering (upstream: `[2, 3, 4, 5]`). An
/// input that is out of range is an error naming the gene.
pub fn darts_cell_svg(
    path: &Path,
    title: &str,
    genes: &[(String, usize)],
    concat: &[usize],
) -> Result<()> {
    let invalid = |msg: String| Error::Invalid(format!("{}: {msg}", path.display()));
    if genes.is_empty() {
        return Err(invalid("a DARTS cell needs at least one gene".into()));
    }
    let nodes = genes.len().div_ceil(2);
    let out = nodes + 2;

    let mut v: Vec<Vertex> = Vec::new();
    let mut push = |kind, label: &str| {
        v.push(Vertex {
            kind,
            label: label.to_string(),
            layer: 0,
            y: 0.0,
            h: NODE_H,
        })
    };
    push(Kind::Input, "c_{k-2}");
    push(Kind::Input, "c_{k-1}");
    for i in 0..nodes {
        push(Kind::Node, &i.to_string());
    }
    push(Kind::Output, "c_{k}");

    let mut routes = Vec::new();
    for (g, (op, j)) in genes.iter().enumerate() {
        let node = g / 2;
        if *j >= node + 2 {
            return Err(invalid(format!(
                "gene {g} ('{op}', {j}) of node {node} takes input {j}, but node {node} can only \
                 take inputs 0..={}",
                node + 1
            )));
        }
        routes.push(Route {
            path: vec![*j, node + 2],
            op: Some(op.clone()),
        });
    }
    let mut seen = vec![false; out];
    for &c in concat {
        if c >= out {
            return Err(invalid(format!(
                "concat index {c} is not a state of this cell (0..{out})"
            )));
        }
        if !std::mem::replace(&mut seen[c], true) {
            routes.push(Route {
                path: vec![c, out],
                op: None,
            });
        }
    }

    // Layers by longest path; routes only go from lower to higher indices, so one pass works.
    // The output goes right of everything, even of nodes left out of `concat`.
    for i in 2..out {
        let layer = routes
            .iter()
            .filter(|r| r.path[1] == i)
            .map(|r| v[r.path[0]].layer + 1)
            .max()
            .unwrap_or(1);
        v[i].layer = layer;
    }
    v[out].layer = v[..out].iter().map(|p| p.layer).max().unwrap_or(0) + 1;
    let layers = v[out].layer + 1;

    // Dummies for routes that skip layers, so long edges get their own lane in each layer.
    for r in routes.iter_mut() {
        let (src, dst) = (r.path[0], r.path[1]);
        let mut path = vec![src];
        for layer in v[src].layer + 1..v[dst].layer {
            v.push(Vertex {
                kind: Kind::Dummy,
                label: String::new(),
                layer,
                y: 0.0,
                h: 0.0,
            });
            path.push(v.len() - 1);
        }
        path.push(dst);
        r.path = path;
    }

    // Node heights grow with the number of ports they need.
    for (id, vert) in v.iter_mut().enumerate() {
        if vert.kind == Kind::Dummy {
            continue;
        }
        let ins = routes.iter().filter(|r| r.path.last() == Some(&id)).count();
        let outs = routes.iter().filter(|r| r.path[0] == id).count();
        let need = (ins.saturating_sub(1) as f64 * PORT_PITCH).max(outs as f64 * 10.0) + 20.0;
        vert.h = NODE_H.max(need);
    }

    assign_heights(&mut v, &routes, layers);

    // Column x positions: each column's stub is long enough for the widest label entering it.
    let label_w = |l: usize| {
        routes
            .iter()
            .filter(|r| v[*r.path.last().unwrap_or(&0)].layer == l)
            .filter_map(|r| r.op.as_deref())
            .map(|op| text_width(op, LABEL_SIZE))
            .fold(None, |m: Option<f64>, w| Some(m.map_or(w, |m| m.max(w))))
    };
    let stub: Vec<f64> = (0..layers)
        .map(|l| label_w(l).map_or(BARE_STUB, |w| w + 24.0 + ARROW))
        .collect();
    let mut x = vec![MARGIN + NODE_W / 2.0; layers];
    for l in 1..layers {
        x[l] = x[l - 1] + NODE_W + CURVE_ZONE + stub[l];
    }

    // Ports: incoming sorted by where the edge comes from, outgoing by where it goes, so
    // edges sharing a node do not cross at it.
    let n_routes = routes.len();
    let mut in_port = vec![0.0; n_routes];
    let mut out_port = vec![0.0; n_routes];
    for id in 0..v.len() {
        if v[id].kind == Kind::Dummy {
            continue;
        }
        let mut ins: Vec<usize> = (0..n_routes)
            .filter(|&r| routes[r].path.last() == Some(&id))
            .collect();
        ins.sort_by(|&a, &b| {
            let ya = v[routes[a].path[routes[a].path.len() - 2]].y;
            let yb = v[routes[b].path[routes[b].path.len() - 2]].y;
            ya.total_cmp(&yb).then(a.cmp(&b))
        });
        let pitch = PORT_PITCH.min((v[id].h - 12.0) / ins.len().saturating_sub(1).max(1) as f64);
        for (k, &r) in ins.iter().enumerate() {
            in_port[r] = v[id].y + (k as f64 - (ins.len() as f64 - 1.0) / 2.0) * pitch;
        }
        let mut outs: Vec<usize> = (0..n_routes).filter(|&r| routes[r].path[0] == id).collect();
        outs.sort_by(|&a, &b| v[routes[a].path[1]].y.total_cmp(&v[routes[b].path[1]].y));
        let pitch = 12.0f64.min((v[id].h - 12.0) / outs.len().saturating_sub(1).max(1) as f64);
        for (k, &r) in outs.iter().enumerate() {
            out_port[r] = v[id].y + (k as f64 - (outs.len() as f64 - 1.0) / 2.0) * pitch;
        }
    }

    let top = v
        .iter()
        .map(|p| p.y - p.h / 2.0)
        .fold(f64::INFINITY, f64::min);
    let bottom = v
        .iter()
        .map(|p| p.y + p.h / 2.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let dy = TITLE_H + MARGIN - top;
    let width = x[layers - 1] + NODE_W / 2.0 + MARGIN;
    let height = bottom + dy + MARGIN;
    let mut svg = titled(width, height, title);

    let mut ops_seen: Vec<&str> = Vec::new();
    let mut labels = Vec::new();
    for (r, route) in routes.iter().enumerate() {
        let (colour, dash, stroke_w) = match route.op.as_deref() {
            Some("none") => (hex(op_colour("none", 0)), Some("6 4"), 1.5),
            Some(op) => {
                let k = ops_seen.iter().position(|o| *o == op).unwrap_or_else(|| {
                    ops_seen.push(op);
                    ops_seen.len() - 1
                });
                (hex(op_colour(op, k)), None, 2.0)
            }
            None => ("#777777".to_string(), None, 1.5),
        };
        let src = route.path[0];
        let mut cur = (x[v[src].layer] + NODE_W / 2.0, out_port[r] + dy);
        let mut d = format!("M{} {}", num(cur.0), num(cur.1));
        for (step, &id) in route.path.iter().enumerate().skip(1) {
            let last = step + 1 == route.path.len();
            let l = v[id].layer;
            let y = if last { in_port[r] } else { v[id].y } + dy;
            let entry = (x[l] - NODE_W / 2.0 - stub[l], y);
            let mid = (cur.0 + entry.0) / 2.0;
            d += &format!(
                " C{} {} {} {} {} {}",
                num(mid),
                num(cur.1),
                num(mid),
                num(entry.1),
                num(entry.0),
                num(entry.1)
            );
            if last {
                let tip = (x[l] - NODE_W / 2.0, y);
                d += &format!(" L{} {}", num(tip.0 - ARROW + 1.0), num(y));
                svg.path(&d, &colour, stroke_w, dash);
                arrowhead(&mut svg, tip, (1.0, 0.0), &colour);
                if let Some(op) = &route.op {
                    let cx = entry.0 + (stub[l] - ARROW) / 2.0;
                    labels.push((cx, y, op.clone(), colour.clone()));
                }
                break;
            }
            cur = (x[l] + NODE_W / 2.0, y);
            d += &format!(" L{} {}", num(cur.0), num(cur.1));
        }
    }
    for (cx, y, op, colour) in &labels {
        svg.label(*cx, *y, op, LABEL_SIZE, colour);
    }
    for vert in v.iter().filter(|p| p.kind != Kind::Dummy) {
        let (fill, size) = match vert.kind {
            Kind::Input => ("#cfe8c9", 14.0),
            Kind::Output => ("#f9e3a3", 14.0),
            _ => ("#cfe0f3", 15.0),
        };
        let (cx, cy) = (x[vert.layer], vert.y + dy);
        svg.rect(
            cx - NODE_W / 2.0,
            cy - vert.h / 2.0,
            NODE_W,
            vert.h,
            fill,
            Some(("#555555", 1.2)),
            6.0,
        );
        let bold = vert.kind == Kind::Node;
        svg.text(
            cx,
            cy,
            &vert.label,
            size,
            "#111111",
            Anchor::Middle,
            bold,
            None,
        );
    }
    write_file(path, &svg.finish())
}

/// A `width`×`height` drawing with `title` at its top left, as both cell drawings start.
pub(super) fn titled(width: f64, height: f64, title: &str) -> Svg {
    let mut svg = Svg::new(width, height);
    svg.text(
        MARGIN,
        22.0,
        title,
        17.0,
        "#222222",
        Anchor::Start,
        true,
        None,
    );
    svg
}

/// Vertical placement, one layer at a time from the left: each vertex wants the mean height of
/// its predecessors (straight edges); vertices are then pushed apart to their minimum spacing
/// and the layer is shifted back to stay centred on what it wanted.
fn assign_heights(v: &mut [Vertex], routes: &[Route], layers: usize) {
    let gap = |a: &Vertex, b: &Vertex| match (a.kind == Kind::Dummy, b.kind == Kind::Dummy) {
        (true, true) => 24.0,
        (false, false) => (a.h + b.h) / 2.0 + 44.0,
        // Clear of the labels on the node's ports.
        _ => (a.h + b.h) / 2.0 + 30.0,
    };
    let inputs: Vec<usize> = (0..v.len()).filter(|&i| v[i].layer == 0).collect();
    let mut y = 0.0;
    for (k, &i) in inputs.iter().enumerate() {
        if k > 0 {
            y += gap(&v[inputs[k - 1]], &v[i]);
        }
        v[i].y = y;
    }
    for l in 1..layers {
        let mut items: Vec<(usize, f64)> = (0..v.len())
            .filter(|&i| v[i].layer == l)
            .map(|i| {
                let preds: Vec<f64> = routes
                    .iter()
                    .flat_map(|r| r.path.windows(2))
                    .filter(|w| w[1] == i)
                    .map(|w| v[w[0]].y)
                    .collect();
                let want = if preds.is_empty() {
                    0.0
                } else {
                    preds.iter().sum::<f64>() / preds.len() as f64
                };
                (i, want)
            })
            .collect();
        items.sort_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then(v[a.0].kind.cmp(&v[b.0].kind))
                .then(a.0.cmp(&b.0))
        });
        let mut placed: Vec<f64> = Vec::with_capacity(items.len());
        for (k, &(i, want)) in items.iter().enumerate() {
            let y = match k {
                0 => want,
                _ => want.max(placed[k - 1] + gap(&v[items[k - 1].0], &v[i])),
            };
            placed.push(y);
        }
        let shift = items
            .iter()
            .zip(&placed)
            .map(|((_, want), y)| y - want)
            .sum::<f64>()
            / items.len().max(1) as f64;
        for (&(i, _), y) in items.iter().zip(&placed) {
            v[i].y = y - shift;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{
        assert_file_error, assert_no_overlap, label_boxes, out_dir, svg_texts, unwritable,
    };
    use super::*;

    fn genes(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(o, j)| (o.to_string(), *j)).collect()
    }

    /// The DARTS- paper's cells, as the library names them.
    fn darts_minus() -> crate::search::genotype::Genotype {
        crate::search::genotype::named("DARTS_MINUS").unwrap()
    }

    fn normal() -> Vec<(String, usize)> {
        darts_minus().normal
    }

    fn reduce() -> Vec<(String, usize)> {
        darts_minus().reduce
    }

    #[test]
    fn darts_paper_cells_have_all_labels_and_none_overlap() {
        let dir = out_dir("darts_cells");
        for (name, g) in [("normal", normal()), ("reduce", reduce())] {
            let path = dir.join(format!("{name}.svg"));
            darts_cell_svg(&path, name, &g, &[2, 3, 4, 5]).unwrap();
            let text = svg_texts(&path);
            for (op, _) in &g {
                assert!(text.contains(op.as_str()), "{op}");
            }
            for n in ["c_{k-2}", "c_{k-1}", "c_{k}", "0", "1", "2", "3"] {
                assert!(text.lines().any(|l| l == n), "node {n}");
            }
            let src = std::fs::read_to_string(&path).unwrap();
            let boxes = label_boxes(&src);
            assert_eq!(boxes.len(), 8);
            assert_no_overlap(&boxes);
            // 8 gene arrows + 4 concat arrows.
            assert_eq!(src.matches("<polygon").count(), 12);
        }
    }

    #[test]
    fn darts_chain_and_partial_cells() {
        let dir = out_dir("darts_chain");
        let path = dir.join("chain.svg");
        let chain = genes(&[
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 1),
            ("dil_conv_5x5", 2),
            ("avg_pool_3x3", 0),
            ("skip_connect", 3),
            ("none", 1),
            ("dil_conv_3x3", 4),
            ("sep_conv_3x3", 0),
        ]);
        darts_cell_svg(&path, "chain", &chain, &[2, 3, 4, 5]).unwrap();
        let src = std::fs::read_to_string(&path).unwrap();
        assert_no_overlap(&label_boxes(&src));
        assert!(src.contains("stroke-dasharray"), "none is dashed");
        // An odd number of genes, duplicate concat entries and an empty concat still draw.
        let odd = genes(&[
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 2),
        ]);
        darts_cell_svg(&path, "odd <&>", &odd, &[2, 3, 3]).unwrap();
        assert!(svg_texts(&path).contains("odd <&>"));
        darts_cell_svg(&path, "", &odd, &[]).unwrap();
    }

    #[test]
    fn darts_bad_genes_are_errors() {
        let dir = out_dir("darts_bad");
        let path = dir.join("bad.svg");
        let forward = genes(&[("skip_connect", 0), ("skip_connect", 2)]);
        let e = darts_cell_svg(&path, "", &forward, &[2]).unwrap_err();
        assert!(e.to_string().contains("gene 1"), "{e}");
        let e = darts_cell_svg(&path, "", &normal(), &[2, 9]).unwrap_err();
        assert!(e.to_string().contains("concat index 9"), "{e}");
        assert!(darts_cell_svg(&path, "", &[], &[]).is_err());
        assert!(!path.exists());
        let bad = unwritable(&dir);
        assert_file_error(darts_cell_svg(&bad, "", &normal(), &[2, 3, 4, 5]), &bad);
    }
}
