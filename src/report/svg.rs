//! A minimal SVG writer for the diagrams (cells, confusion matrix): shapes, escaped text, and a
//! text-width estimate for layout, since no font metrics are available.

use super::Rgb;
use std::fmt::Write;

/// Font stack for all text; viewers substitute whatever sans-serif font they have.
pub const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// Estimated width in pixels of `text` at `size` px. Deliberately generous (wide glyphs in a
/// wide fallback font) so that layouts built on it never overlap.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// `#rrggbb`.
pub fn hex((r, g, b): Rgb) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Escapes text for element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Formats a coordinate compactly; non-finite values (which only bad input could produce)
/// become 0 so the document stays valid.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Horizontal anchor of a text element.
#[derive(Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// An SVG document under construction.
pub struct Svg {
    body: String,
    width: f64,
    height: f64,
}

impl Svg {
    /// An empty document of the given size with a white background.
    pub fn new(width: f64, height: f64) -> Self {
        let mut s = Svg {
            body: String::new(),
            width,
            height,
        };
        s.rect(0.0, 0.0, width, height, "#ffffff", None, 0.0);
        s
    }

    /// A rectangle with corner radius `rx`; `stroke` is `(colour, width)`.
    #[allow(clippy::too_many_arguments)]
    pub fn rect(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        stroke: Option<(&str, f64)>,
        rx: f64,
    ) {
        let _ = write!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="{}" fill="{}""#,
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0)),
            num(rx),
            escape(fill)
        );
        self.stroke_attrs(stroke, None);
        self.body.push_str("/>\n");
    }

    /// A circle.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: &str, stroke: Option<(&str, f64)>) {
        let _ = write!(
            self.body,
            r#"<circle cx="{}" cy="{}" r="{}" fill="{}""#,
            num(cx),
            num(cy),
            num(r.max(0.0)),
            escape(fill)
        );
        self.stroke_attrs(stroke, None);
        self.body.push_str("/>\n");
    }

    /// An unfilled path with SVG path data `d`; `dash` is a `stroke-dasharray`.
    pub fn path(&mut self, d: &str, stroke: &str, width: f64, dash: Option<&str>) {
        let _ = write!(self.body, r#"<path d="{}" fill="none""#, escape(d));
        self.stroke_attrs(Some((stroke, width)), dash);
        self.body.push_str("/>\n");
    }

    /// A filled polygon.
    pub fn polygon(&mut self, points: &[(f64, f64)], fill: &str) {
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{},{}", num(x), num(y)))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polygon points="{}" fill="{}"/>"#,
            pts.join(" "),
            escape(fill)
        );
    }

    /// One line of text; `y` is the vertical centre of the line. `rotate` turns it about
    /// `(x, y)` by that many degrees.
    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        x: f64,
        y: f64,
        text: &str,
        size: f64,
        fill: &str,
        anchor: Anchor,
        bold: bool,
        rotate: Option<f64>,
    ) {
        let anchor = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        // dy = 0.35em centres the x-height on y; dominant-baseline is not honoured everywhere.
        let _ = write!(
            self.body,
            r#"<text x="{}" y="{}" dy="0.35em" font-family="{FONT}" font-size="{}" fill="{}" text-anchor="{anchor}""#,
            num(x),
            num(y),
            num(size),
            escape(fill)
        );
        if bold {
            self.body.push_str(r#" font-weight="bold""#);
        }
        if let Some(deg) = rotate {
            let _ = write!(
                self.body,
                r#" transform="rotate({} {} {})""#,
                num(deg),
                num(x),
                num(y)
            );
        }
        let _ = writeln!(self.body, ">{}</text>", escape(text));
    }

    /// Text centred at `(x, y)` on a white box, so that lines under it stay out of the way.
    pub fn label(&mut self, x: f64, y: f64, text: &str, size: f64, fill: &str) {
        let w = text_width(text, size) + 6.0;
        let h = size + 4.0;
        self.rect(x - w / 2.0, y - h / 2.0, w, h, "#ffffff", None, 3.0);
        self.text(x, y, text, size, fill, Anchor::Middle, false, None);
    }

    fn stroke_attrs(&mut self, stroke: Option<(&str, f64)>, dash: Option<&str>) {
        if let Some((colour, width)) = stroke {
            let _ = write!(
                self.body,
                r#" stroke="{}" stroke-width="{}""#,
                escape(colour),
                num(width)
            );
        }
        if let Some(d) = dash {
            let _ = write!(self.body, r#" stroke-dasharray="{}""#, escape(d));
        }
    }

    /// The finished document.
    pub fn finish(self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n{}</svg>\n",
            self.body,
            w = num(self.width.ceil()),
            h = num(self.height.ceil()),
        )
    }
}

/// A filled arrowhead whose tip is at `tip`, pointing along `dir` (need not be unit length).
pub fn arrowhead(svg: &mut Svg, tip: (f64, f64), dir: (f64, f64), colour: &str) {
    let len = (dir.0 * dir.0 + dir.1 * dir.1).sqrt();
    let (ux, uy) = if len > 1e-9 && len.is_finite() {
        (dir.0 / len, dir.1 / len)
    } else {
        (1.0, 0.0)
    };
    let (l, half) = (9.0, 4.5);
    let base = (tip.0 - ux * l, tip.1 - uy * l);
    svg.polygon(
        &[
            tip,
            (base.0 - uy * half, base.1 + ux * half),
            (base.0 + uy * half, base.1 - ux * half),
        ],
        colour,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{fffd}"
        );
    }

    #[test]
    fn document_is_well_formed() {
        let mut s = Svg::new(100.0, 50.0);
        s.label(50.0, 25.0, "<&>", 12.0, "#000");
        s.path("M0 0 L10 10", "#000", 1.0, Some("4 2"));
        arrowhead(&mut s, (10.0, 10.0), (0.0, 0.0), "#000");
        s.text(
            1.0,
            1.0,
            "x",
            10.0,
            "#000",
            Anchor::Start,
            true,
            Some(-45.0),
        );
        let doc = s.finish();
        let parsed = roxmltree::Document::parse(&doc).unwrap();
        assert_eq!(parsed.root_element().tag_name().name(), "svg");
        assert!(doc.contains("&lt;&amp;&gt;"));
    }

    #[test]
    fn numbers_are_compact_and_finite() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(2.26), "2.3");
        assert_eq!(num(f64::NAN), "0");
    }
}
