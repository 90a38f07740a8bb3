//! Drawing of a NAS-Bench-201 cell: four nodes on a line, six labelled edges.

use super::cells::{titled, ARROW, LABEL_SIZE, MARGIN, TITLE_H};
use super::svg::{arrowhead, hex, num, text_width, Anchor};
use super::{op_colour, write_file};
use crate::error::Result;
use std::path::Path;

/// The NAS-Bench-201 edges in α order: (from, to).
const NB201_EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)];

/// Draws a NAS-Bench-201 cell: nodes 0..3 on a line, edges 1←0, 2←0, 2←1, 3←0, 3←1, 3←2 (in
/// that order in `ops`) as arrows labelled with their op; neighbours are joined straight, longer
/// edges arc above or below. `none` edges are dashed and grey.
pub fn nb201_cell_svg(path: &Path, title: &str, ops: &[&str; 6]) -> Result<()> {
    let widest = ops
        .iter()
        .map(|o| text_width(o, LABEL_SIZE))
        .fold(0.0, f64::max);
    let r = 22.0;
    let dx = (widest + 2.0 * r + 70.0).max(190.0);
    let (h1, h2) = (78.0, 150.0);
    let x0 = MARGIN + 20.0;
    let base = TITLE_H + MARGIN + h2 + 10.0;
    let node = |i: usize| (x0 + i as f64 * dx, base);
    let width = x0 + 3.0 * dx + 20.0 + MARGIN;
    let height = base + h1 + 16.0 + MARGIN;
    let mut svg = titled(width, height, title);

    let mut labels = Vec::new();
    for (e, (&(from, to), op)) in NB201_EDGES.iter().zip(ops).enumerate() {
        let none = *op == "none";
        let colour = hex(op_colour(op, e));
        let dash = none.then_some("6 4");
        let width = if none { 1.5 } else { 2.0 };
        let (a, b) = (node(from), node(to));
        match to - from {
            1 => {
                let tip = (b.0 - r, b.1);
                let d = format!(
                    "M{} {} L{} {}",
                    num(a.0 + r),
                    num(a.1),
                    num(tip.0 - ARROW + 1.0),
                    num(tip.1)
                );
                svg.path(&d, &colour, width, dash);
                arrowhead(&mut svg, tip, (1.0, 0.0), &colour);
                labels.push(((a.0 + b.0) / 2.0, a.1, op, colour));
            }
            span => {
                // 2←0 and 3←0 arc above, 3←1 below, at heights that keep their labels apart.
                let (sign, h) = match (from, span) {
                    (1, _) => (1.0, h1),
                    (_, 2) => (-1.0, h1),
                    _ => (-1.0, h2),
                };
                // Leave and enter the circles off the axis, toward the arc; steeper for the
                // higher arc so that the two arcs leaving node 0 start apart.
                let ang = if span == 3 { 70f64 } else { 40f64 }.to_radians();
                let s = (a.0 + r * ang.cos(), a.1 + sign * r * ang.sin());
                let t = (b.0 - r * ang.cos(), b.1 + sign * r * ang.sin());
                // A cubic with both controls at 4/3 h reaches height h at its middle.
                let c1 = (s.0 + (t.0 - s.0) * 0.15, a.1 + sign * h * 4.0 / 3.0);
                let c2 = (t.0 - (t.0 - s.0) * 0.15, a.1 + sign * h * 4.0 / 3.0);
                let dir = (t.0 - c2.0, t.1 - c2.1);
                let len = (dir.0 * dir.0 + dir.1 * dir.1).sqrt();
                let end = (
                    t.0 - dir.0 / len * (ARROW - 1.0),
                    t.1 - dir.1 / len * (ARROW - 1.0),
                );
                let d = format!(
                    "M{} {} C{} {} {} {} {} {}",
                    num(s.0),
                    num(s.1),
                    num(c1.0),
                    num(c1.1),
                    num(c2.0),
                    num(c2.1),
                    num(end.0),
                    num(end.1)
                );
                svg.path(&d, &colour, width, dash);
                arrowhead(&mut svg, t, dir, &colour);
                let apex = 0.125 * (s.1 + t.1) + 0.375 * (c1.1 + c2.1);
                labels.push(((s.0 + t.0) / 2.0, apex, op, colour));
            }
        }
    }
    for (cx, cy, op, colour) in &labels {
        svg.label(*cx, *cy, op, LABEL_SIZE, colour);
    }
    for i in 0..4 {
        let (cx, cy) = node(i);
        let fill = match i {
            0 => "#cfe8c9",
            3 => "#f9e3a3",
            _ => "#cfe0f3",
        };
        svg.circle(cx, cy, r, fill, Some(("#555555", 1.2)));
        svg.text(
            cx,
            cy,
            &i.to_string(),
            15.0,
            "#111111",
            Anchor::Middle,
            true,
            None,
        );
    }
    let (ix, iy) = node(0);
    svg.text(
        ix,
        iy + r + 14.0,
        "input",
        12.0,
        "#555555",
        Anchor::Middle,
        false,
        None,
    );
    let (ox, oy) = node(3);
    svg.text(
        ox,
        oy + r + 14.0,
        "output",
        12.0,
        "#555555",
        Anchor::Middle,
        false,
        None,
    );
    write_file(path, &svg.finish())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{
        assert_file_error, assert_no_overlap, label_boxes, out_dir, svg_texts, unwritable,
    };
    use super::*;

    #[test]
    fn nb201_cell() {
        let dir = out_dir("nb201_cell");
        let path = dir.join("cell.svg");
        let ops = [
            "nor_conv_3x3",
            "none",
            "skip_connect",
            "avg_pool_3x3",
            "nor_conv_1x1",
            "none",
        ];
        nb201_cell_svg(&path, "NB201", &ops).unwrap();
        let text = svg_texts(&path);
        for op in ops {
            assert!(text.contains(op));
        }
        let src = std::fs::read_to_string(&path).unwrap();
        assert_eq!(src.matches("stroke-dasharray").count(), 2);
        assert_eq!(src.matches("<polygon").count(), 6);
        assert_no_overlap(&label_boxes(&src));
        let bad = unwritable(&dir);
        assert_file_error(nb201_cell_svg(&bad, "", &ops), &bad);
    }
}
