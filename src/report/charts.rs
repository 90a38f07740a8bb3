//! Line charts drawn with plotters' SVG backend: α weights per edge over epochs, and the
//! loss/accuracy curves.
//!
//! plotters is built without its `ttf`/`ab_glyph` features, so it lays text out from a crude
//! width estimate and never opens a font file; the SVG backend writes `<text>` elements.

use super::plotting::{
    auto_range, draw_line, draw_text, finite_runs, fixed_or_auto, legend, render, rgb, FONT,
};
use super::{op_colour, Rgb};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;
use std::path::Path;

/// One epoch of a search run, for [`curves_chart`].
///
/// Accuracies are fractions in `0..=1` (plotted as percent). Non-finite values are gaps in the
/// curves.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// Epoch number as the run counts it (the x axis).
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Training accuracy, a fraction in `0..=1`.
    pub train_acc: f64,
    /// Validation accuracy, a fraction in `0..=1`.
    pub val_acc: f64,
    /// The DARTS- auxiliary skip coefficient in force during the epoch; `None` for plain DARTS.
    pub beta: Option<f64>,
}

/// Title and grid position of one edge's panel in [`alpha_chart`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgePanel {
    /// Panel title, e.g. `edge 3 (node 1 ← input 1)`.
    pub title: String,
    /// Grid row, from 0 at the top.
    pub row: usize,
    /// Grid column, from 0 at the left.
    pub col: usize,
}

/// Panels for a DARTS cell with `steps` intermediate nodes (α rows in upstream order): one row
/// per node and one column per input, so column `j` is input `j` of the genotype
/// (0 = c_{k-2}, 1 = c_{k-1}, j ≥ 2 = node j−2).
pub fn darts_edge_panels(steps: usize) -> Vec<EdgePanel> {
    let mut panels = Vec::new();
    for node in 0..steps {
        for input in 0..node + 2 {
            panels.push(EdgePanel {
                title: format!("edge {} (node {node} ← input {input})", panels.len()),
                row: node,
                col: input,
            });
        }
    }
    panels
}

/// Panels for the NAS-Bench-201 cell, edges 1←0, 2←0, 2←1, 3←0, 3←1, 3←2: one row per target
/// node, one column per source node.
pub fn nb201_edge_panels() -> Vec<EdgePanel> {
    let mut panels = Vec::new();
    for to in 1..4 {
        for from in 0..to {
            panels.push(EdgePanel {
                title: format!("edge {} (node {to} ← node {from})", panels.len()),
                row: to - 1,
                col: from,
            });
        }
    }
    panels
}

/// Plain `edge i` panels filling a grid of `cols` columns row by row.
pub fn grid_edge_panels(edges: usize, cols: usize) -> Vec<EdgePanel> {
    let cols = cols.max(1);
    (0..edges)
        .map(|e| EdgePanel {
            title: format!("edge {e}"),
            row: e / cols,
            col: e % cols,
        })
        .collect()
}

const PANEL_W: u32 = 270;
const PANEL_H: u32 = 200;

/// Draws softmax(α) over epochs as small multiples: one panel per edge, every op's weight as a
/// line (x = position in `history`, from 0; y = weight on a scale shared by all panels), one
/// colour per op and a single legend.
///
/// `history[epoch][edge][op]`; `edge_ops[edge]` names that edge's α columns (an edge beyond
/// the list takes the last one, so one list serves a space whose edges all have the same
/// candidates). An op keeps one colour and one legend entry across edges. `panels` places
/// and titles the edges ([`darts_edge_panels`], [`nb201_edge_panels`]); if it has fewer
/// entries than there are edges, a plain grid is used instead. Missing and non-finite weights
/// are gaps in the lines.
pub fn alpha_chart(
    path: &Path,
    title: &str,
    edge_ops: &[&[&str]],
    panels: &[EdgePanel],
    history: &[Vec<Vec<f32>>],
) -> Result<()> {
    let edges = history.iter().map(Vec::len).max().unwrap_or(0);
    if edges == 0 {
        return Err(Error::Invalid(format!(
            "{}: α chart needs at least one epoch with at least one edge",
            path.display()
        )));
    }
    let ops = history.iter().flatten().map(Vec::len).max().unwrap_or(0);
    // Column k of edge e is the legend entry line_of[e][k]; unnamed columns are "op k".
    let mut names: Vec<String> = Vec::new();
    let line_of: Vec<Vec<usize>> = (0..edges)
        .map(|e| {
            let own = edge_ops.get(e).or(edge_ops.last()).copied().unwrap_or(&[]);
            (0..ops.max(own.len()))
                .map(|k| {
                    let name = own
                        .get(k)
                        .map_or_else(|| format!("op {k}"), |n| n.to_string());
                    names.iter().position(|n| *n == name).unwrap_or_else(|| {
                        names.push(name);
                        names.len() - 1
                    })
                })
                .collect()
        })
        .collect();
    let colours: Vec<Rgb> = names
        .iter()
        .enumerate()
        .map(|(k, n)| op_colour(n, k))
        .collect();

    let mut panels: Vec<EdgePanel> = panels.iter().take(edges).cloned().collect();
    let grid = |p: &[EdgePanel]| {
        let rows = p.iter().map(|p| p.row + 1).max().unwrap_or(1);
        let cols = p.iter().map(|p| p.col + 1).max().unwrap_or(1);
        (rows, cols)
    };
    // Too few panels, or positions so sparse that the image would be mostly empty: fall back.
    if panels.len() < edges || {
        let (r, c) = grid(&panels);
        r.saturating_mul(c) > 2 * edges + 8
    } {
        panels = grid_edge_panels(edges, if edges <= 6 { 3 } else { 4 });
    }
    let (rows, cols) = grid(&panels);

    let value = |epoch: usize, edge: usize, op: usize| -> f64 {
        history[epoch]
            .get(edge)
            .and_then(|r| r.get(op))
            .map_or(f64::NAN, |&v| v as f64)
    };
    let weights = || history.iter().flatten().flatten().map(|&v| v as f64);
    let mut y_range = auto_range(weights());
    if weights().filter(|v| v.is_finite()).all(|v| v <= 1.0) {
        y_range.end = y_range.end.min(1.0);
    }
    let last = history.len() as i32 - 1;
    let x_range = 0..last.max(1);

    // Legend entries wrap onto more lines when the ops do not fit on one.
    let width = PANEL_W * cols as u32;
    let entry_w: Vec<u32> = names
        .iter()
        .map(|n| 40 + (n.chars().count() as f64 * 7.5) as u32)
        .collect();
    let mut legend_rows = vec![Vec::new()];
    let mut used = 0;
    for (k, &w) in entry_w.iter().enumerate() {
        if used + w > width.saturating_sub(40) && !legend_rows[legend_rows.len() - 1].is_empty() {
            legend_rows.push(Vec::new());
            used = 0;
        }
        if let Some(row) = legend_rows.last_mut() {
            row.push(k);
        }
        used += w;
    }
    let header_h = 64 + 22 * legend_rows.len() as u32;
    let height = header_h + PANEL_H * rows as u32;

    render(path, (width, height), |root| {
        let (header, body) = root.split_vertically(header_h);
        draw_text(
            &header,
            title,
            (width as i32 / 2, 18),
            22,
            true,
            HPos::Center,
        )?;
        draw_text(
            &header,
            "softmax(α) weight of each op over epochs, one panel per edge",
            (width as i32 / 2, 42),
            15,
            false,
            HPos::Center,
        )?;
        for (line, entries) in legend_rows.iter().enumerate() {
            let total: u32 = entries.iter().map(|&k| entry_w[k]).sum();
            let mut x = (width.saturating_sub(total) / 2) as i32;
            let y = 66 + 22 * line as i32;
            for &k in entries {
                let style = rgb(colours[k]).stroke_width(3);
                header.draw(&PathElement::new(vec![(x, y), (x + 24, y)], style))?;
                draw_text(&header, &names[k], (x + 30, y), 15, false, HPos::Left)?;
                x += entry_w[k] as i32;
            }
        }

        let cells = body.split_evenly((rows, cols));
        for (edge, panel) in panels.iter().enumerate() {
            let Some(area) = cells.get(panel.row * cols + panel.col) else {
                continue;
            };
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 15))
                .margin(6)
                .margin_right(12)
                .x_label_area_size(20)
                .y_label_area_size(36)
                .build_cartesian_2d(x_range.clone(), y_range.clone())?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(5)
                .label_style((FONT, 13))
                .light_line_style(TRANSPARENT)
                .bold_line_style(RGBColor(225, 225, 225))
                .y_label_formatter(&|v| format!("{v:.2}"))
                .draw()?;
            for (op, &line) in line_of[edge].iter().enumerate() {
                let points = (0..history.len()).map(|e| (e as i32, value(e, edge, op)));
                draw_line(&mut chart, points, &y_range, rgb(colours[line]), None)?;
            }
        }
        Ok(())
    })
}

/// Draws the loss curves (train, val) and the accuracy curves (train, val, in percent) side by
/// side over `epochs[i].epoch`. When any epoch has a β, it is drawn dashed on the loss panel
/// against a 0..1 axis on the right. Non-finite values are gaps.
pub fn curves_chart(path: &Path, epochs: &[EpochPoint]) -> Result<()> {
    if epochs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: curves chart needs at least one epoch",
            path.display()
        )));
    }
    // Capped so that plotters' integer tick arithmetic cannot overflow.
    let xs: Vec<i64> = epochs
        .iter()
        .map(|p| p.epoch.min(1_000_000_000) as i64)
        .collect();
    let x_min = xs.iter().copied().min().unwrap_or(0);
    let x_max = xs.iter().copied().max().unwrap_or(0);
    let x_range = x_min..x_max.max(x_min + 1);
    let series = |f: fn(&EpochPoint) -> f64| -> Vec<(i64, f64)> {
        xs.iter().zip(epochs).map(|(&x, p)| (x, f(p))).collect()
    };
    let train_loss = series(|p| p.train_loss);
    let val_loss = series(|p| p.val_loss);
    let train_acc = series(|p| 100.0 * p.train_acc);
    let val_acc = series(|p| 100.0 * p.val_acc);
    let beta = series(|p| p.beta.unwrap_or(f64::NAN));
    let has_beta = epochs.iter().any(|p| p.beta.is_some());
    let loss_range = auto_range(train_loss.iter().chain(&val_loss).map(|p| p.1));
    // Fixed scales unless the data leaves them (e.g. accuracies passed in percent), so such a
    // mistake shows instead of being drawn off the panel.
    let acc_range = fixed_or_auto(0.0..100.0, train_acc.iter().chain(&val_acc).map(|p| p.1));
    let beta_range = fixed_or_auto(0.0..1.0, beta.iter().map(|p| p.1));
    let train_c = RGBColor(31, 119, 180);
    let val_c = RGBColor(230, 115, 0);
    let beta_c = RGBColor(110, 110, 110);

    render(path, (1100, 420), |root| {
        let (left, right) = root.split_horizontally(550);

        let mut loss = ChartBuilder::on(&left)
            .caption("loss", (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .right_y_label_area_size(if has_beta { 48 } else { 0 })
            .build_cartesian_2d(x_range.clone(), loss_range.clone())?
            .set_secondary_coord(x_range.clone(), beta_range.clone());
        loss.configure_mesh()
            .x_desc("epoch")
            .y_desc("cross-entropy")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()?;
        draw_line(&mut loss, train_loss, &loss_range, train_c, Some("train"))?;
        draw_line(&mut loss, val_loss, &loss_range, val_c, Some("val"))?;
        if has_beta {
            loss.configure_secondary_axes()
                .y_desc("β (aux skip weight)")
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .draw()?;
            let style = ShapeStyle::from(beta_c).stroke_width(2);
            for seg in finite_runs(&beta, &beta_range) {
                if seg.len() == 1 {
                    let dot = seg.into_iter().map(|p| Circle::new(p, 3, style.filled()));
                    loss.draw_secondary_series(dot)?;
                } else {
                    loss.draw_secondary_series(DashedLineSeries::new(seg, 6, 4, style))?;
                }
            }
            // A labelled empty series gives β its (dashed) legend entry.
            loss.draw_secondary_series(LineSeries::new(Vec::<(i64, f64)>::new(), style))?
                .label("β")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], style)
                        + PathElement::new(vec![(10, 0), (20, 0)], style)
                });
        }
        // Losses fall, so the upper right is free; accuracies rise, so the lower right is.
        legend(&mut loss, SeriesLabelPosition::UpperRight)?;

        let mut acc = ChartBuilder::on(&right)
            .caption("accuracy", (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range.clone(), acc_range.clone())?;
        acc.configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        draw_line(&mut acc, train_acc, &acc_range, train_c, Some("train"))?;
        draw_line(&mut acc, val_acc, &acc_range, val_c, Some("val"))?;
        legend(&mut acc, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

#[cfg(test)]
#[path = "charts_tests.rs"]
mod tests;
