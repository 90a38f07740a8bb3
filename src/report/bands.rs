//! A chart of several series over epochs, each a mean line inside a shaded band (e.g. the
//! spread over seeds): how a sweep's methods compare as runs go on.

use super::plotting::{draw_line, legend, render, rgb, YRange, FONT};
use super::Rgb;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// One value of a band: its centre line and its lower and upper edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandPoint {
    pub epoch: usize,
    pub mid: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Clone, Debug)]
pub struct Band {
    pub label: String,
    pub colour: Rgb,
    pub points: Vec<BandPoint>,
}

/// Per epoch (1-based), the mean, minimum and maximum over `series` (one per run; NaN and
/// missing values skipped).
pub fn band_of(series: &[Vec<f64>]) -> Vec<BandPoint> {
    let epochs = series.iter().map(Vec::len).max().unwrap_or(0);
    (0..epochs)
        .filter_map(|e| {
            let v: Vec<f64> = series
                .iter()
                .filter_map(|s| s.get(e).copied())
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return None;
            }
            Some(BandPoint {
                epoch: e + 1,
                mid: v.iter().sum::<f64>() / v.len() as f64,
                lo: v.iter().copied().fold(f64::INFINITY, f64::min),
                hi: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        })
        .collect()
}

/// Draws `bands` against the epoch. `fixed_y` is the y range unless a value leaves it.
pub fn band_chart(path: &Path, title: &str, y_desc: &str, y: YRange, bands: &[Band]) -> Result<()> {
    let values = || {
        bands
            .iter()
            .flat_map(|b| &b.points)
            .flat_map(|p| [p.lo, p.hi])
    };
    if values().next().is_none() {
        return Err(Error::Invalid(format!(
            "{}: a band chart needs at least one value",
            path.display()
        )));
    }
    let y_range = y.of(values());
    let last = bands
        .iter()
        .flat_map(|b| &b.points)
        .map(|p| p.epoch.min(1_000_000_000) as i64)
        .max()
        .unwrap_or(1);
    let x_range = 1..last.max(2);
    render(path, (820, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        let inside = |v: f64| v.clamp(y_range.start, y_range.end);
        for b in bands {
            let colour = rgb(b.colour);
            let pts: Vec<&BandPoint> = b
                .points
                .iter()
                .filter(|p| p.lo.is_finite() && p.hi.is_finite())
                .collect();
            if pts.len() > 1 {
                let mut outline: Vec<(i64, f64)> =
                    pts.iter().map(|p| (p.epoch as i64, inside(p.hi))).collect();
                outline.extend(pts.iter().rev().map(|p| (p.epoch as i64, inside(p.lo))));
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(0.18).filled(),
                )))?;
            }
            draw_line(
                &mut chart,
                b.points.iter().map(|p| (p.epoch as i64, p.mid)),
                &y_range,
                colour,
                Some(&b.label),
            )?;
        }
        // The legend goes in the corner the lines' ends leave free.
        let ends: Vec<f64> = bands
            .iter()
            .filter_map(|b| b.points.last())
            .map(|p| p.mid)
            .filter(|v| v.is_finite())
            .collect();
        let high = !ends.is_empty()
            && ends.iter().sum::<f64>() / ends.len() as f64 > (y_range.start + y_range.end) / 2.0;
        let corner = if high {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        legend(&mut chart, corner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_util::{out_dir, svg_texts};

    #[test]
    fn bands_are_mean_min_max_per_epoch_over_the_runs_that_have_it() {
        let b = band_of(&[
            vec![0.2, 0.4, f64::NAN],
            vec![0.4, 0.8],
            vec![0.3, 0.6, 0.9],
        ]);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].epoch, 1);
        assert!((b[0].mid - 0.3).abs() < 1e-12 && b[0].lo == 0.2 && b[0].hi == 0.4);
        assert!((b[1].mid - 0.6).abs() < 1e-12 && b[1].lo == 0.4 && b[1].hi == 0.8);
        assert_eq!((b[2].mid, b[2].lo, b[2].hi), (0.9, 0.9, 0.9));
        assert!(band_of(&[]).is_empty());
    }

    #[test]
    fn a_band_chart_has_a_band_and_a_legend_entry_per_series() {
        let dir = out_dir("bands");
        let path = dir.join("b.svg");
        let bands = [
            Band {
                label: "darts-minus".into(),
                colour: (44, 160, 44),
                points: band_of(&[vec![0.2, 0.25, 0.22], vec![0.3, 0.2, 0.2]]),
            },
            Band {
                label: "darts".into(),
                colour: (214, 39, 40),
                points: band_of(&[vec![0.2, 0.5, 0.9]]),
            },
        ];
        band_chart(&path, "skip", "softmax(α)", YRange::Fixed(0.0..1.0), &bands).unwrap();
        let texts = svg_texts(&path);
        assert!(texts.lines().any(|l| l == "darts-minus"), "{texts}");
        assert!(texts.lines().any(|l| l == "darts"), "{texts}");
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<polygon").count(), 2, "one band per series");
        let e = band_chart(&path, "t", "y", YRange::Tight, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one value"), "{e}");
    }
}
