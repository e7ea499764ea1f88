//! Pictures: SVG or PNG files (chosen by the file's extension) drawn with plotters.
//!
//! - [`think_time_sweep`]: the benchmarks' sweeps, round trip and CPU per round trip against
//!   think time, one line per variant, in two panels of one file;
//! - [`draw_panels`]: any number of such "metric against x" panels;
//! - [`draw_front`]: `haltpoll tune`'s Pareto front.
//!
//! Text is laid out with an embedded DejaVu Sans, so pictures come out the same on a server
//! without fonts. An axis whose values are all positive and span more than [`LOG_SPAN`] is drawn
//! on a log scale (with [`Scale::Auto`]).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

/// An axis spanning more than this factor is drawn on a log scale by [`Scale::Auto`].
pub const LOG_SPAN: f64 = 20.0;

const PANEL_SIZE: (u32, u32) = (960, 460);
const FONT: &str = "sans-serif";

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file name does not say SVG or PNG.
    #[error("{0}: a plot file must end in .svg or .png")]
    Format(PathBuf),
    /// Nothing to draw.
    #[error("{0}: nothing to plot (no data points)")]
    NoData(PathBuf),
    /// Drawing or writing failed.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

/// An axis scale.
#[allow(dead_code, reason = "Linear and Log are for the benchmarks' callers")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Logarithmic (values at or below 0 are left out).
    Log,
    /// Log when the values are positive and span more than [`LOG_SPAN`], else linear.
    #[default]
    Auto,
}

/// One line: a variant's values.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a metric against x, one line per series.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// The x axis's name, with its unit.
    pub x_label: String,
    /// The y axis's name, with its unit.
    pub y_label: String,
    /// How x is drawn.
    pub x_scale: Scale,
    /// How y is drawn.
    pub y_scale: Scale,
    /// The lines.
    pub series: Vec<Series>,
}

/// The format a file name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.svg`.
    Svg,
    /// `.png`.
    Png,
}

impl Format {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Format, PlotError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::Format(path.to_owned())),
        }
    }
}

/// Draws the benchmarks' think-time sweep into `path`: round trip against think time above,
/// CPU time per round trip below, one line per variant (`(think time, value)` points, all in
/// µs).
///
/// ```ignore
/// let rtt = vec![Series { label: "guest polling".into(), points: vec![(0.0, 12.0), (10.0, 21.0), (100.0, 110.0)] }];
/// let cpu = vec![Series { label: "guest polling".into(), points: vec![(0.0, 12.0), (10.0, 14.0), (100.0, 15.0)] }];
/// think_time_sweep(Path::new("sweep.svg"), "bench vm", rtt, cpu)?;
/// ```
pub fn think_time_sweep(
    path: &Path,
    title: &str,
    round_trip: Vec<Series>,
    cpu_per_round_trip: Vec<Series>,
) -> Result<(), PlotError> {
    let panel = |what: &str, y_label: &str, series| Panel {
        title: format!("{title}: {what} against think time"),
        x_label: "think time (us)".to_owned(),
        y_label: y_label.to_owned(),
        x_scale: Scale::Auto,
        y_scale: Scale::Auto,
        series,
    };
    draw_panels(
        path,
        &[
            panel("round trip", "round trip (us)", round_trip),
            panel("CPU per round trip", "CPU time per round trip (us)", cpu_per_round_trip),
        ],
    )
}

/// Draws `panels` one above the other into `path`.
#[allow(dead_code, reason = "for the benchmarks' pictures beyond the standard sweep")]
pub fn draw_panels(path: &Path, panels: &[Panel]) -> Result<(), PlotError> {
    if panels.iter().all(|p| p.series.iter().all(|s| s.points.is_empty())) {
        return Err(PlotError::NoData(path.to_owned()));
    }
    let size = (PANEL_SIZE.0, PANEL_SIZE.1 * panels.len().max(1) as u32);
    render(path, size, &Panels(panels))
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

/// `haltpoll tune`'s picture: every setting, the Pareto front, the defaults, the budget and
/// the recommendation, as (poll share %, no-exit share %) points.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontPlot {
    /// The title.
    pub title: String,
    /// Every setting evaluated.
    pub all: Vec<(f64, f64)>,
    /// The front, by increasing poll share.
    pub front: Vec<(f64, f64)>,
    /// Linux's defaults.
    pub defaults: Option<(f64, f64)>,
    /// The recommendation.
    pub recommended: Option<(f64, f64)>,
    /// The CPU budget, % of CPU time.
    pub budget: Option<f64>,
    /// The x axis's name.
    pub x_label: String,
}

/// Draws a [`FrontPlot`] into `path`.
pub fn draw_front(path: &Path, plot: &FrontPlot) -> Result<(), PlotError> {
    if plot.all.is_empty() {
        return Err(PlotError::NoData(path.to_owned()));
    }
    render(path, PANEL_SIZE, plot)
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

/// Opens the backend `path` asks for, fills it white, draws `picture`, and writes the file.
fn render(path: &Path, size: (u32, u32), picture: &impl Picture) -> Result<(), PlotError> {
    let fail = |message: String| PlotError::Draw { path: path.to_owned(), message };
    font().map_err(fail)?;
    match Format::of(path)? {
        Format::Svg => draw_on(SVGBackend::new(path, size).into_drawing_area(), picture),
        Format::Png => draw_on(BitMapBackend::new(path, size).into_drawing_area(), picture),
    }
    .map_err(fail)
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
pub fn compact(v: f64) -> String {
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

    fn sweep_series() -> (Vec<Series>, Vec<Series>) {
        let think = [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0];
        let line = |label: &str, f: &dyn Fn(f64) -> f64| Series {
            label: label.to_owned(),
            points: think.iter().map(|&t| (t, f(t))).collect(),
        };
        let rtt = vec![
            line("no polling", &|t| 40.0 + t),
            line("host polling", &|t| 15.0 + t),
            line("guest polling", &|t| 12.0 + t),
        ];
        let cpu = vec![
            line("no polling", &|_| 8.0),
            line("host polling", &|t| 15.0 + t.min(200.0)),
            line("guest polling", &|t| 12.0 + t.min(200.0)),
        ];
        (rtt, cpu)
    }

    #[test]
    fn sweep_svg_and_png_are_written_in_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let (rtt, cpu) = sweep_series();
        let svg = dir.path().join("sweep.svg");
        think_time_sweep(&svg, "synthetic", rtt.clone(), cpu.clone()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", &text[..80]);
        assert!(text.contains("guest polling") && text.contains("round trip against think time"));
        let png = dir.path().join("sweep.PNG");
        think_time_sweep(&png, "synthetic", rtt, cpu).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000, "a two-panel picture with text, not an empty image: {} bytes", bytes.len());
    }

    #[test]
    fn bad_names_and_no_data_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (rtt, cpu) = sweep_series();
        let err = think_time_sweep(&dir.path().join("sweep.pdf"), "x", rtt, cpu).unwrap_err().to_string();
        assert!(err.ends_with("sweep.pdf: a plot file must end in .svg or .png"), "{err}");
        let err = think_time_sweep(&dir.path().join("e.svg"), "x", vec![], vec![]).unwrap_err().to_string();
        assert!(err.contains("nothing to plot"), "{err}");
        let err = think_time_sweep(&dir.path().join("no/such/dir/e.png"), "x", sweep_series().0, vec![]).unwrap_err();
        assert!(matches!(err, PlotError::Draw { .. }), "{err}");
    }

    #[test]
    fn front_plot() {
        let dir = tempfile::tempdir().unwrap();
        let plot = FrontPlot {
            title: "t".into(),
            all: vec![(0.0, 0.0), (1.0, 30.0), (2.0, 20.0), (4.0, 60.0)],
            front: vec![(0.0, 0.0), (1.0, 30.0), (4.0, 60.0)],
            defaults: Some((2.0, 20.0)),
            recommended: Some((1.0, 30.0)),
            budget: Some(2.5),
            x_label: "CPU time polling (%)".into(),
        };
        let svg = dir.path().join("front.svg");
        draw_front(&svg, &plot).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("Pareto front") && text.contains("recommended") && text.contains("budget 2.5%"));
        draw_front(&dir.path().join("front.png"), &plot).unwrap();
        let empty = FrontPlot { all: vec![], ..plot };
        assert!(matches!(draw_front(&svg, &empty), Err(PlotError::NoData(_))));
    }

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
