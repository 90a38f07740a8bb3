//! SVG reports of a search run: α weights over epochs, loss/accuracy curves, the derived cells
//! (DARTS and NAS-Bench-201) and a confusion matrix.
//!
//! Everything here takes plain data (no GPU types) and writes one self-contained SVG file.
//! No font files are read: text is emitted as SVG `<text>` and laid out from a width estimate,
//! so reports work on headless machines with no fonts installed.
//!
//! Ops keep one colour everywhere ([`op_colour`]), so `sep_conv_3x3` in an α chart has the
//! colour of its edges in the cell drawing.

mod bands;
mod cells;
mod charts;
mod confusion;
mod nb201_cell;
mod plotting;
mod scaling;
mod svg;

pub use bands::{band_chart, band_of, Band, BandPoint};
pub use cells::darts_cell_svg;
pub use charts::{
    alpha_chart, curves_chart, darts_edge_panels, grid_edge_panels, nb201_edge_panels, EdgePanel,
    EpochPoint,
};
pub use confusion::confusion_svg;
pub use nb201_cell::nb201_cell_svg;
pub use plotting::YRange;
pub use scaling::{scaling_chart, ScalingSeries};

use crate::error::{Error, Result};
use std::path::Path;

/// An sRGB colour.
pub type Rgb = (u8, u8, u8);

/// The colour of an op, stable across charts and cell drawings.
///
/// Known DARTS and NAS-Bench-201 op names have the colours of their spaces' tables
/// (`nn::darts_ops`; `none` is grey); any other name takes a colour from a fallback palette by
/// `index` (its column in α).
pub fn op_colour(name: &str, index: usize) -> Rgb {
    crate::nn::darts_ops::colour_of(name).unwrap_or(FALLBACK[index % FALLBACK.len()])
}

/// Dark enough for text and thin lines on white.
const FALLBACK: [Rgb; 8] = [
    (31, 119, 180),
    (230, 115, 0),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (194, 67, 158),
    (128, 128, 0),
];

/// Writes `contents` to a temporary file beside `path`, then renames it over `path`, so a
/// viewer refreshing the report during a run never sees a half-written file.
fn write_file(path: &Path, contents: &str) -> Result<()> {
    let file_err = |what: &str, e: std::io::Error| Error::File {
        path: path.to_path_buf(),
        msg: format!("could not {what} the SVG report: {e}"),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, contents).map_err(|e| file_err("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_err("rename into place", e)
    })
}

/// Shared helpers for the tests of the report modules.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// A fresh directory for one test's files, removed when dropped.
    pub struct OutDir(PathBuf);

    impl std::ops::Deref for OutDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for OutDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn out_dir(test: &str) -> OutDir {
        let dir =
            std::env::temp_dir().join(format!("darts-report-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        OutDir(dir)
    }

    /// Parses the SVG at `path` as XML and returns the concatenated text of all `<text>`
    /// elements, one per line.
    pub fn svg_texts(path: &std::path::Path) -> String {
        let src = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&src)
            .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("text") || n.has_tag_name("tspan"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A path that cannot be written: its parent is a regular file (works as root too).
    pub fn unwritable(dir: &std::path::Path) -> PathBuf {
        let file = dir.join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        file.join("out.svg")
    }

    /// Asserts that `r` is a file error naming `path`.
    pub fn assert_file_error(r: crate::error::Result<()>, path: &std::path::Path) {
        match r {
            Err(e @ crate::error::Error::File { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
            }
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    /// Boxes (x, y, w, h) of the white label backgrounds: rects with rx=3.
    pub fn label_boxes(svg: &str) -> Vec<(f64, f64, f64, f64)> {
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("rx") == Some("3"))
            .map(|n| {
                let f = |a| n.attribute(a).unwrap().parse::<f64>().unwrap();
                (f("x"), f("y"), f("width"), f("height"))
            })
            .collect()
    }

    pub fn assert_no_overlap(boxes: &[(f64, f64, f64, f64)]) {
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart =
                    a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "labels overlap: {a:?} {b:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_reports_the_path() {
        let dir = test_util::out_dir("write_file");
        let bad = test_util::unwritable(&dir);
        test_util::assert_file_error(write_file(&bad, "<svg/>"), &bad);
        let good = dir.join("ok.svg");
        write_file(&good, "<svg/>").unwrap();
        assert_eq!(std::fs::read_to_string(&good).unwrap(), "<svg/>");
        assert!(!dir.join("ok.svg.tmp").exists());
    }

    #[test]
    fn known_ops_have_distinct_colours_within_a_space() {
        use crate::nn::darts_ops::{DARTS_OPS, NB201_OPS};
        for space in [&DARTS_OPS[..], &NB201_OPS[..]] {
            let mut c: Vec<Rgb> = space.iter().map(|n| op_colour(n, 0)).collect();
            c.sort();
            c.dedup();
            assert_eq!(c.len(), space.len());
        }
    }
}
