//! Plotting helpers shared by the charts: rendering to a file without panicking, text, broken
//! lines, the legend, and axis ranges.

use super::{write_file, Rgb};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;

pub(super) const FONT: &str = "sans-serif";

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(super) type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Renders into a string with `draw`, then writes it to `path`; drawing errors name the path.
///
/// plotters has arithmetic that can panic on ranges it did not expect; a report must never take
/// down a long search run, so a panic while drawing becomes an error too.
pub(super) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<()> {
    let fail = |msg: String| Error::File {
        path: path.to_path_buf(),
        msg: format!("could not draw the chart: {msg}"),
    };
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
            root.fill(&WHITE)
                .and_then(|_| draw(&root))
                .and_then(|_| root.present())
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(buf)
    }));
    match drawn {
        Ok(Ok(buf)) => write_file(path, &buf),
        Ok(Err(e)) => Err(fail(e)),
        Err(_) => Err(fail("the plotting library panicked".into())),
    }
}

pub(super) fn draw_text(
    area: &Area,
    text: &str,
    at: (i32, i32),
    size: u32,
    bold: bool,
    h: HPos,
) -> DrawResult {
    let font = if bold {
        (FONT, size as f64, FontStyle::Bold).into_font()
    } else {
        (FONT, size as f64).into_font()
    };
    let style = font.color(&BLACK).pos(Pos::new(h, VPos::Center));
    area.draw(&Text::new(text.to_string(), at, style))
}

/// Draws `points` as a line broken at values that are non-finite or outside `y_range` (plotters
/// would overflow mapping those); a point with no drawable neighbour gets a dot so it stays
/// visible. `label` adds a legend entry even if there is nothing to draw.
pub(super) fn draw_line<'a, X, CT>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    points: impl IntoIterator<Item = (X, f64)>,
    y_range: &Range<f64>,
    colour: RGBColor,
    label: Option<&str>,
) -> DrawResult
where
    X: Clone + 'static,
    CT: CoordTranslate<From = (X, f64)>,
{
    let style = ShapeStyle::from(colour).stroke_width(2);
    let points: Vec<(X, f64)> = points.into_iter().collect();
    for seg in finite_runs(&points, y_range) {
        if seg.len() == 1 {
            chart.draw_series(seg.into_iter().map(|p| Circle::new(p, 3, style.filled())))?;
        } else {
            chart.draw_series(LineSeries::new(seg, style))?;
        }
    }
    if let Some(label) = label {
        chart
            .draw_series(LineSeries::new(Vec::<(X, f64)>::new(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    Ok(())
}

pub(super) fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
}

/// Maximal runs of consecutive points whose value is finite and within `range`.
pub(super) fn finite_runs<X: Clone>(points: &[(X, f64)], range: &Range<f64>) -> Vec<Vec<(X, f64)>> {
    let mut runs = vec![];
    let mut cur = vec![];
    for p in points {
        if p.1.is_finite() && p.1 >= range.start && p.1 <= range.end {
            cur.push(p.clone());
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// How a chart's y axis spans its values.
#[derive(Clone, Debug, PartialEq)]
pub enum YRange {
    /// This range, or [`auto_range`]'s where a value falls outside it.
    Fixed(Range<f64>),
    /// Just around the values ([`tight_range`]).
    Tight,
}

impl YRange {
    pub(super) fn of(&self, values: impl Iterator<Item = f64> + Clone) -> Range<f64> {
        match self {
            YRange::Fixed(r) => fixed_or_auto(r.clone(), values),
            YRange::Tight => tight_range(values),
        }
    }
}

/// A y range from 0 (or the lowest value, if negative) to a round number above the highest
/// finite value; `0..1` when there is none. Absurdly large values (|v| ≥ 1e300) are left out
/// of the range rather than overflowing it.
pub(super) fn auto_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && v.abs() < 1e300)
        .fold((0.0f64, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !hi.is_finite() || hi <= lo {
        return lo..lo + 1.0;
    }
    let lo = if lo < 0.0 {
        -nice_ceil(-lo * 1.05)
    } else {
        0.0
    };
    lo..nice_ceil(hi * 1.05)
}

/// A y range just around the finite values: 10 % of their span beyond each (at least 1 % of
/// the largest magnitude, so a flat series still gets a band), ends on multiples of a round
/// step. For a quantity whose changes are small next to its size (softmax(α) moving between
/// 0.19 and 0.21), which an axis from 0 would flatten. [`auto_range`] where nothing is finite.
pub(super) fn tight_range(values: impl Iterator<Item = f64> + Clone) -> Range<f64> {
    let (lo, hi) = values
        .clone()
        .filter(|v| v.is_finite() && v.abs() < 1e300)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return auto_range(values);
    }
    let pad = ((hi - lo) * 0.1)
        .max(0.01 * lo.abs().max(hi.abs()))
        .max(1e-12);
    let (lo, hi) = (lo - pad, hi + pad);
    // About ten steps across the panel.
    let step = nice_ceil((hi - lo) / 10.0);
    (lo / step).floor() * step..(hi / step).ceil() * step
}

/// `fixed`, or [`auto_range`] of `values` if a finite one falls outside it.
pub(super) fn fixed_or_auto(
    fixed: Range<f64>,
    values: impl Iterator<Item = f64> + Clone,
) -> Range<f64> {
    let outside = values
        .clone()
        .any(|v| v.is_finite() && (v < fixed.start || v > fixed.end));
    if outside {
        auto_range(values)
    } else {
        fixed
    }
}

/// The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k that is ≥ `v` (1 for non-positive or
/// non-finite `v`): round axis ends without wasting much of the panel.
pub(super) fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let e = v.log10().floor() as i32;
    // Dividing by 10^-e for small values gives the nearest double to 0.6, not 6 × 0.1.
    let scale = |m: f64| {
        if e < 0 {
            m / 10f64.powi(-e)
        } else {
            m * 10f64.powi(e)
        }
    };
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(scale)
        .find(|&c| c >= v * (1.0 - 1e-12))
        .unwrap_or_else(|| scale(10.0))
}

pub(super) fn rgb((r, g, b): Rgb) -> RGBColor {
    RGBColor(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceil(0.29), 0.3);
        assert_eq!(nice_ceil(0.51), 0.6);
        assert_eq!(nice_ceil(2.3), 2.5);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(f64::NAN), 1.0);
        assert_eq!(auto_range([f64::NAN, 1e301].into_iter()), 0.0..1.0);
        assert_eq!(fixed_or_auto(0.0..100.0, [50.0].into_iter()), 0.0..100.0);
        assert_eq!(fixed_or_auto(0.0..100.0, [5000.0].into_iter()), 0.0..6000.0);
        assert_eq!(auto_range([-0.5, 3.0].into_iter()), -0.6..4.0);
    }

    #[test]
    fn a_tight_range_zooms_onto_small_changes() {
        // softmax(α) of skip_connect between 0.19 and 0.21: the axis spans about that, not 0..1.
        let r = tight_range([0.1918, 0.2, 0.2051, f64::NAN].into_iter());
        assert!(r.start <= 0.1918 && r.end >= 0.2051, "{r:?}");
        assert!(r.start > 0.17 && r.end < 0.23, "{r:?}");
        // A flat series gets a band around it; nothing finite falls back to 0..1.
        let flat = tight_range([0.2, 0.2].into_iter());
        assert!(
            flat.start < 0.2 && flat.end > 0.2 && flat.end - flat.start < 0.05,
            "{flat:?}"
        );
        assert_eq!(tight_range([f64::NAN].into_iter()), 0.0..1.0);
        assert_eq!(
            YRange::Tight.of([0.5].into_iter()),
            tight_range([0.5].into_iter())
        );
    }
}
