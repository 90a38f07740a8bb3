//! Confusion matrix as a heat map, written as plain SVG: a grid of labelled cells is simpler to
//! lay out directly than through a plotting library's axes.

use super::svg::{num, text_width, Anchor, Svg};
use super::write_file;
use crate::error::{Error, Result};
use std::path::Path;

/// Draws a confusion matrix: rows are the true class, columns the predicted one. Cells are
/// coloured by their share of the row (so classes of any size compare) and show their count
/// when there is room; a last column gives each class's recall. Class names missing from
/// `class_names` are written `class i`; missing counts in ragged rows are 0.
pub fn confusion_svg(path: &Path, class_names: &[String], matrix: &[Vec<u64>]) -> Result<()> {
    let n = matrix
        .iter()
        .map(Vec::len)
        .chain([matrix.len(), class_names.len()])
        .max()
        .unwrap_or(0);
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}: confusion matrix needs at least one class",
            path.display()
        )));
    }
    let name = |i: usize| {
        class_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {i}"))
    };
    let count = |i: usize, j: usize| matrix.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let row_sum: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| count(i, j) as f64).sum())
        .collect();
    let share = |i: usize, j: usize| {
        if row_sum[i] > 0.0 {
            count(i, j) as f64 / row_sum[i]
        } else {
            0.0
        }
    };

    let cell = (560.0 / n as f64).clamp(4.0, 52.0);
    let name_size = (cell * 0.8).min(13.0);
    let show_names = name_size >= 7.0;
    let widest_count = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| count(i, j).to_string().len())
        .max()
        .unwrap_or(1);
    // The largest font that fits the longest count in a cell, at most 13 px.
    let count_size = ((cell - 6.0) / (widest_count as f64 * 0.62)).min(13.0);
    let show_counts = count_size >= 7.0;
    let names_w = if show_names {
        (0..n)
            .map(|i| text_width(&name(i), name_size))
            .fold(0.0, f64::max)
    } else {
        0.0
    };

    let left = 24.0 + 20.0 + names_w + 8.0;
    // Column names are turned 45°, so they need about 0.71 of their length upward.
    let top = 40.0 + 22.0 + names_w * 0.71 + 12.0;
    let grid = cell * n as f64;
    let recall_w = 70.0;
    let width = left + grid + recall_w + 16.0;
    let height = top + grid + 24.0;
    let mut svg = Svg::new(width, height);
    svg.text(
        24.0,
        20.0,
        "confusion matrix: rows = true class, columns = predicted; colour = share of the row",
        14.0,
        "#222222",
        Anchor::Start,
        true,
        None,
    );
    svg.text(
        left + grid / 2.0,
        48.0,
        "predicted",
        13.0,
        "#444444",
        Anchor::Middle,
        false,
        None,
    );
    svg.text(
        24.0,
        top + grid / 2.0,
        "true",
        13.0,
        "#444444",
        Anchor::Middle,
        false,
        Some(-90.0),
    );
    svg.text(
        left + grid + 8.0,
        top - 12.0,
        "recall",
        12.0,
        "#444444",
        Anchor::Start,
        false,
        None,
    );

    for (i, &sum) in row_sum.iter().enumerate() {
        let y = top + i as f64 * cell;
        if show_names {
            svg.text(
                left - 6.0,
                y + cell / 2.0,
                &name(i),
                name_size,
                "#222222",
                Anchor::End,
                false,
                None,
            );
            let x = left + i as f64 * cell + cell / 2.0;
            svg.text(
                x,
                top - 6.0,
                &name(i),
                name_size,
                "#222222",
                Anchor::Start,
                false,
                Some(-45.0),
            );
        }
        for j in 0..n {
            let x = left + j as f64 * cell;
            let s = share(i, j);
            svg.rect(x, y, cell, cell, &blues(s), None, 0.0);
            if show_counts {
                let ink = if s > 0.5 { "#ffffff" } else { "#222222" };
                let c = count(i, j).to_string();
                let (cx, cy) = (x + cell / 2.0, y + cell / 2.0);
                svg.text(cx, cy, &c, count_size, ink, Anchor::Middle, false, None);
            }
        }
        let recall = if sum > 0.0 {
            format!("{}%", num(100.0 * share(i, i)))
        } else {
            "–".to_string()
        };
        let size = name_size.max(7.0);
        let (rx, ry) = (left + grid + 8.0, y + cell / 2.0);
        if show_names || n <= 40 {
            svg.text(rx, ry, &recall, size, "#222222", Anchor::Start, false, None);
        }
    }
    svg.rect(left, top, grid, grid, "none", Some(("#888888", 1.0)), 0.0);
    write_file(path, &svg.finish())
}

/// White → dark blue for `t` in 0..=1 (sequential, readable in greyscale).
fn blues(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let stops = [
        (247.0, 251.0, 255.0),
        (107.0, 174.0, 214.0),
        (8.0, 48.0, 107.0),
    ];
    let (a, b, u) = if t < 0.5 {
        (stops[0], stops[1], t * 2.0)
    } else {
        (stops[1], stops[2], t * 2.0 - 1.0)
    };
    let mix = |p: f64, q: f64| (p + (q - p) * u).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_file_error, out_dir, svg_texts, unwritable};
    use super::*;

    #[test]
    fn confusion_writes_names_counts_and_recall() {
        let dir = out_dir("confusion");
        let path = dir.join("cm.svg");
        let names: Vec<String> = ["cat", "dog", "<bird>"].map(String::from).to_vec();
        let m = vec![vec![8, 2, 0], vec![1, 9, 0], vec![0, 0, 0]];
        confusion_svg(&path, &names, &m).unwrap();
        let text = svg_texts(&path);
        for s in [
            "cat",
            "dog",
            "<bird>",
            "predicted",
            "true",
            "80%",
            "90%",
            "–",
        ] {
            assert!(text.contains(s), "{s} missing");
        }
        assert!(text.lines().any(|l| l == "9"));
    }

    #[test]
    fn confusion_handles_ragged_and_large_input() {
        let dir = out_dir("confusion_ragged");
        let path = dir.join("cm.svg");
        // Ragged rows, fewer names than classes, an overflowing row sum.
        let m = vec![vec![u64::MAX, u64::MAX], vec![3]];
        confusion_svg(&path, &["a".to_string()], &m).unwrap();
        assert!(svg_texts(&path).contains("class 1"));
        let big: Vec<Vec<u64>> = (0..100)
            .map(|i| (0..100).map(|j| i ^ j).collect())
            .collect();
        confusion_svg(&path, &[], &big).unwrap();
        svg_texts(&path);
        assert!(confusion_svg(&path, &[], &[]).is_err());
        let bad = unwritable(&dir);
        assert_file_error(confusion_svg(&bad, &[], &[vec![1]]), &bad);
    }

    #[test]
    fn blues_is_clamped() {
        assert_eq!(blues(-1.0), "#f7fbff");
        assert_eq!(blues(f64::NAN), "#f7fbff");
        assert_eq!(blues(2.0), "#08306b");
    }
}
