//! The drawing itself, with plotters (the `plot` feature): panels of lines and the Pareto
//! front, on an SVG or PNG backend, text in an embedded DejaVu Sans.

use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::{Format, FrontPlot, Panel, Scale, Series};

/// An axis spanning more than this factor is drawn on a log scale by [`Scale::Auto`].
pub(super) const LOG_SPAN: f64 = 20.0;

const FONT: &str = "sans-serif";

/// Draws `panels` one above the other, as a file of `format`'s bytes.
pub(super) fn panels(format: Format, size: (u32, u32), panels: &[Panel]) -> Result<Vec<u8>, String> {
    render(format, size, &Panels(panels))
}

/// Draws `plot`, as a file of `format`'s bytes.
pub(super) fn front(format: Format, size: (u32, u32), plot: &FrontPlot) -> Result<Vec<u8>, String> {
    render(format, size, plot)
}

/// Something drawn the same way on any backend.
trait Picture {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

struct Panels<'a>(&'a [Panel]);

impl Picture for Panels<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        for (area, panel) in root.split_evenly((self.0.len(), 1)).iter().zip(self.0) {
            draw_panel(area, panel)?;
        }
        Ok(())
    }
}

impl Picture for FrontPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let plot = self;
        let xs = plot.all.iter().map(|p| p.0).chain(plot.budget);
        let x_max = xs.fold(0.0f64, f64::max).max(0.1) * 1.05;
        let mut chart = builder(root, &plot.title).build_cartesian_2d(0.0..x_max, 0.0..100.0).map_err(text)?;
        mesh(&mut chart, &plot.x_label, "wakeups that needed no exit (%)")?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(plot.all.iter().map(|&p| Circle::new(p, 3, grey.filled())))
            .map_err(text)?
            .label("a setting of the grid")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
        chart
            .draw_series(LineSeries::new(plot.front.iter().copied(), BLUE.stroke_width(2)).point_size(4))
            .map_err(text)?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        if let Some(budget) = plot.budget {
            let style = RED.mix(0.6).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new([(budget, 0.0), (budget, 100.0)], 6, 4, style))
                .map_err(text)?
                .label(format!("budget {budget}% of CPU time"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        if let Some(d) = plot.defaults {
            chart
                .draw_series([TriangleMarker::new(d, 8, BLACK.filled())])
                .map_err(text)?
                .label("Linux defaults")
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        }
        if let Some(r) = plot.recommended {
            chart
                .draw_series([Circle::new(r, 7, RED.filled())])
                .map_err(text)?
                .label("recommended")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// Draws `picture` on a white canvas in memory and returns the file's bytes: the SVG text, or
/// the bitmap encoded as PNG. Memory, not the file: plotters' backends would report a failed
/// write as their own debug text, and the file is the caller's, opened before the work.
fn render(format: Format, size: (u32, u32), picture: &impl Picture) -> Result<Vec<u8>, String> {
    font()?;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            draw_on(SVGBackend::with_string(&mut svg, size).into_drawing_area(), picture)?;
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            draw_on(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(), picture)?;
            encode_png(&rgb, size).map_err(text)
        }
    }
}

/// An 8-bit RGB bitmap as a PNG file.
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, picture: &impl Picture) -> Result<(), String> {
    root.fill(&WHITE).map_err(text)?;
    picture.draw(&root)?;
    root.present().map_err(text)
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Registers the embedded font once; plotters' `ab_glyph` text has no other source.
fn font() -> Result<(), String> {
    static FONT_READY: OnceLock<Result<(), String>> = OnceLock::new();
    FONT_READY
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font does not load".to_owned())
        })
        .clone()
}

/// An axis: its range, whether it is logarithmic, and where on it values at or below 0 go.
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    range: Range<f64>,
    log: bool,
    /// On a log axis, values at or below 0 (a think time of 0) are drawn here, at the left edge.
    zero_at: f64,
}

/// The axis for `values` on `scale`, padded.
fn axis(values: impl Iterator<Item = f64> + Clone, scale: Scale) -> Option<Axis> {
    let finite = values.filter(|v| v.is_finite());
    let (lo, hi) = finite.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let (plo, phi) =
        finite.filter(|&v| v > 0.0).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let log = match scale {
        Scale::Linear => false,
        Scale::Log => plo.is_finite(),
        // Negative values rule a log axis out; zeros do not (they go to the edge).
        Scale::Auto => plo.is_finite() && lo >= 0.0 && phi / plo > LOG_SPAN,
    };
    if log {
        let zero_at = if lo > 0.0 { plo } else { plo / 3.0 };
        return Some(Axis { range: zero_at / 1.25..phi * 1.25, log, zero_at });
    }
    if !lo.is_finite() {
        return None;
    }
    // Linear axes of non-negative values start at 0, so lines compare by height.
    let pad = ((hi - lo) * 0.05).max(if hi == 0.0 { 1.0 } else { hi.abs() * 0.05 });
    let start = if lo >= 0.0 { 0.0 } else { lo - pad };
    Some(Axis { range: start..hi + pad, log, zero_at: 0.0 })
}

impl Axis {
    /// Where `v` is drawn.
    fn place(&self, v: f64) -> f64 {
        if self.log && v <= 0.0 { self.zero_at } else { v }
    }

    /// The axis name, saying where zeros went if any did.
    fn describe(&self, label: &str, has_zero: bool) -> String {
        if self.log && has_zero { format!("{label}, log scale; 0 drawn at the left edge") } else { label.to_owned() }
    }
}

/// Line colours that read on white (matplotlib's tab10).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<(), String> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter().copied());
    let (Some(x), Some(y)) = (axis(points().map(|p| p.0), panel.x_scale), axis(points().map(|p| p.1), panel.y_scale))
    else {
        return Ok(()); // an empty panel stays blank
    };
    let (xr, yr) = (x.range.clone(), y.range.clone());
    let labels = Labels {
        x: x.describe(&panel.x_label, points().any(|p| p.0 <= 0.0)),
        y: y.describe(&panel.y_label, points().any(|p| p.1 <= 0.0)),
    };
    let placed = |s: &Series| -> Vec<(f64, f64)> { s.points.iter().map(|&(a, b)| (x.place(a), y.place(b))).collect() };
    let series: Vec<(&str, Vec<(f64, f64)>)> = panel.series.iter().map(|s| (s.label.as_str(), placed(s))).collect();
    match (x.log, y.log) {
        (false, false) => chart(area, &panel.title, &labels, &series, xr, yr),
        (true, false) => chart(area, &panel.title, &labels, &series, xr.log_scale(), yr),
        (false, true) => chart(area, &panel.title, &labels, &series, xr, yr.log_scale()),
        (true, true) => chart(area, &panel.title, &labels, &series, xr.log_scale(), yr.log_scale()),
    }
}

struct Labels {
    x: String,
    y: String,
}

fn chart<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    labels: &Labels,
    series: &[(&str, Vec<(f64, f64)>)],
    x: X,
    y: Y,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = builder(area, title).build_cartesian_2d(x, y).map_err(text)?;
    mesh(&mut chart, &labels.x, &labels.y)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)).point_size(3))
            .map_err(text)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// A chart with a title and room for the axes' labels.
fn builder<'a, 'b, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>, title: &str) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(title, (FONT, 22)).margin(12).x_label_area_size(48).y_label_area_size(72);
    b
}

/// The grid, ticks and axis names.
fn mesh<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&|v| compact(*v))
        .max_light_lines(4)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(text)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(text)
}

/// A tick label: up to three significant digits, with k and M for large values.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = match a {
        _ if a >= 1e6 => (v / 1e6, "M"),
        _ if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match scaled.abs() {
        s if s >= 100.0 || s == 0.0 => 0,
        s if s >= 10.0 => 1,
        s if s >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        let a = axis([1.0, 1000.0].into_iter(), Scale::Auto).unwrap();
        assert!(a.log && a.range.start < 1.0 && a.range.end > 1000.0);
        let zero = axis([0.0, 1.0, 1000.0].into_iter(), Scale::Auto).unwrap();
        assert!(zero.log, "a think time of 0 does not rule out a log axis");
        assert!(zero.place(0.0) < 1.0 && zero.place(0.0) > zero.range.start);
        assert!(zero.describe("think time (us)", true).ends_with("0 drawn at the left edge"));
        assert!(!axis([-1.0, 1000.0].into_iter(), Scale::Auto).unwrap().log);
        assert!(!axis([5.0, 10.0].into_iter(), Scale::Auto).unwrap().log, "a narrow range stays linear");
        assert_eq!(axis([5.0, 10.0].into_iter(), Scale::Linear).unwrap().range.start, 0.0);
        assert!(axis([0.0, 5.0].into_iter(), Scale::Log).unwrap().log);
        assert_eq!(axis(std::iter::empty(), Scale::Auto), None);
        assert_eq!(axis([0.0].into_iter(), Scale::Auto).unwrap().range, 0.0..1.0);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(12.0), "12");
        assert_eq!(compact(0.125), "0.125");
        assert_eq!(compact(1500.0), "1.5k");
        assert_eq!(compact(200_000.0), "200k");
        assert_eq!(compact(3_000_000.0), "3M");
    }
}
