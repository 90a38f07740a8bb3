//! How a step's time scales: series of (size, milliseconds) on log–log axes, so a constant
//! ratio between two implementations is a constant vertical gap and linear scaling a line of
//! slope one (`bench --chart`).

use super::plotting::{draw_line, legend, render, rgb, FONT};
use super::Rgb;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// One implementation's (or one setting's) measured points, x ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSeries {
    pub label: String,
    pub colour: Rgb,
    /// (size, step milliseconds); non-positive or non-finite values are left out.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. the reference implementation).
    pub dashed: bool,
}

/// Powers of two from below `lo` to above `hi`: the axis ends of a log₂ x axis.
fn pow2_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 2f64.powf(lo.log2().floor());
    let hi = 2f64.powf(hi.log2().ceil());
    if hi > lo {
        (lo, hi)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// Draws `series` against `x_desc` (log₂ axis) with the step time on a log₁₀ axis.
pub fn scaling_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[ScalingSeries],
) -> Result<()> {
    let good = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0;
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied().filter(good))
        .collect();
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: a scaling chart needs at least one positive time",
            path.display()
        )));
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        all.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (x_lo, x_hi) = fold(|p| p.0);
    let (y_lo, y_hi) = fold(|p| p.1);
    let (x_lo, x_hi) = pow2_range(x_lo, x_hi);
    let y_lo = 10f64.powf(y_lo.log10().floor());
    let y_hi = 10f64.powf(y_hi.log10().ceil()).max(y_lo * 10.0);
    render(path, (820, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_lo..x_hi).log_scale().base(2.0), (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("step time (ms, log scale)")
            // Only the powers of two: the sizes a scaling run takes.
            .x_labels(24)
            .x_label_formatter(&|x| {
                let l = x.log2();
                if (l - l.round()).abs() < 1e-6 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        for s in series {
            let colour = rgb(s.colour);
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(good).collect();
            if s.dashed {
                let style = ShapeStyle::from(colour).stroke_width(2);
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            } else {
                draw_line(
                    &mut chart,
                    pts.clone(),
                    &(y_lo..y_hi),
                    colour,
                    Some(&s.label),
                )?;
            }
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, points: Vec<(f64, f64)>, dashed: bool) -> ScalingSeries {
        ScalingSeries {
            label: label.into(),
            colour: (200, 30, 30),
            points,
            dashed,
        }
    }

    #[test]
    fn draws_both_series_and_survives_bad_values() {
        let dir = crate::report::test_util::out_dir("scaling");
        let path = dir.join("s.svg");
        let ours = series(
            "darts-minus",
            vec![
                (16.0, 3000.0),
                (32.0, 5300.0),
                (64.0, f64::NAN),
                (256.0, 41000.0),
            ],
            false,
        );
        let torch = series("PyTorch CPU", vec![(16.0, 1400.0), (256.0, 0.0)], true);
        scaling_chart(&path, "C=8, 5 cells", "batch", &[ours, torch]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("darts-minus") && svg.contains("PyTorch CPU"),
            "{svg}"
        );
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() >= 2);

        let err = scaling_chart(
            &path,
            "t",
            "batch",
            &[series("x", vec![(1.0, -1.0)], false)],
        );
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("at least one positive"));
    }

    #[test]
    fn axis_ends_are_powers_of_two() {
        assert_eq!(pow2_range(16.0, 256.0), (16.0, 256.0));
        assert_eq!(pow2_range(12.0, 100.0), (8.0, 128.0));
        assert_eq!(pow2_range(64.0, 64.0), (32.0, 128.0));
    }
}
