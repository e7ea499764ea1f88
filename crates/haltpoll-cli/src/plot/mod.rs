//! Pictures: SVG or PNG files (chosen by the file's extension) drawn with plotters. A
//! [`PlotFile`] is checked and opened before a command's work and drawn after it:
//!
//! - [`PlotFile::think_time_sweep`]: the benchmarks' sweeps, round trip and CPU per round trip
//!   against think time, one line per variant, in two panels of one file;
//! - [`PlotFile::panels`]: any number of such "metric against x" panels;
//! - [`PlotFile::front`]: `haltpoll tune`'s Pareto front.
//!
//! Text is laid out with an embedded DejaVu Sans, so pictures come out the same on a server
//! without fonts. An axis whose values are all positive and span more than a factor of 20
//! (`draw::LOG_SPAN`) is drawn on a log scale (with [`Scale::Auto`]).
//!
//! The drawing (`draw`, plotters and the font) is the `plot` feature, on by default. Without it
//! every `--plot` stops before any work, [`PlotFile::create`] saying to rebuild with the feature.

use std::path::{Path, PathBuf};

use crate::output::{OutputError, OutputFile};

#[cfg(feature = "plot")]
mod draw;

/// Without the `plot` feature nothing draws; callers meet [`PlotError::Disabled`] in
/// [`PlotFile::create`] first.
#[cfg(not(feature = "plot"))]
mod draw {
    use super::{Format, FrontPlot, Panel};

    const DISABLED: &str = "built without the plot feature";

    pub(super) fn panels(_format: Format, _size: (u32, u32), _panels: &[Panel]) -> Result<Vec<u8>, String> {
        Err(DISABLED.to_owned())
    }

    pub(super) fn front(_format: Format, _size: (u32, u32), _plot: &FrontPlot) -> Result<Vec<u8>, String> {
        Err(DISABLED.to_owned())
    }
}

const PANEL_SIZE: (u32, u32) = (960, 460);

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file name does not say SVG or PNG.
    #[error("{0}: a plot file must end in .svg or .png")]
    Format(PathBuf),
    /// This binary was built without the `plot` feature.
    #[error(
        "{0}: this haltpoll was built without plots (cargo feature `plot`); rebuild it with the feature, \
         which is on by default (e.g. `cargo install haltpoll-cli`, without --no-default-features)"
    )]
    Disabled(PathBuf),
    /// Nothing to draw.
    #[error("{0}: nothing to plot (no data points)")]
    NoData(PathBuf),
    /// Drawing failed.
    #[error("cannot draw the plot {path}: {message}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// The file cannot be opened or written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// An axis scale. The commands draw every axis with `Auto`; `Linear` and `Log` force one (the
/// drawing's tests use them).
#[cfg_attr(
    not(all(test, feature = "plot")),
    allow(dead_code, reason = "Linear and Log: only the drawing tests force a scale")
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Logarithmic (values at or below 0 are left out).
    Log,
    /// Log when the values are positive and span more than a factor of 20 (`draw::LOG_SPAN`),
    /// else linear.
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

impl PlotError {
    /// Whether the plot's path was refused before anything ran (a device, standard output).
    pub fn is_usage(&self) -> bool {
        matches!(self, PlotError::Output(e) if e.is_usage())
    }
}

impl Format {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Format, PlotError> {
        if cfg!(not(feature = "plot")) {
            return Err(PlotError::Disabled(path.to_owned()));
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::Format(path.to_owned())),
        }
    }
}

/// A `--plot` file: its name checked and the file beside it created when the command starts,
/// the picture drawn (in memory) and written when its results are in. A picture that cannot be
/// drawn or written is an error of its own, after the results have been printed.
#[derive(Debug)]
pub struct PlotFile {
    format: Format,
    file: OutputFile,
}

impl PlotFile {
    /// Checks `path`'s extension (and that this build draws) and opens the file for writing.
    pub fn create(path: &Path) -> Result<PlotFile, PlotError> {
        let format = Format::of(path)?;
        Ok(PlotFile { format, file: OutputFile::create(path, "plot")? })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Draws the benchmarks' think-time sweep: round trip against think time above, CPU time
    /// per round trip below, one line per variant (`(think time, value)` points, all in µs).
    ///
    /// ```ignore
    /// let rtt = vec![Series { label: "guest polling".into(), points: vec![(0.0, 12.0), (10.0, 21.0), (100.0, 110.0)] }];
    /// let cpu = vec![Series { label: "guest polling".into(), points: vec![(0.0, 12.0), (10.0, 14.0), (100.0, 15.0)] }];
    /// PlotFile::create(Path::new("sweep.svg"))?.think_time_sweep("bench vm", rtt, cpu)?;
    /// ```
    #[cfg(feature = "bench")]
    pub fn think_time_sweep(
        self,
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
        self.panels(&[
            panel("round trip", "round trip (us)", round_trip),
            panel("CPU per round trip", "CPU time per round trip (us)", cpu_per_round_trip),
        ])
    }

    /// Draws `panels` one above the other.
    pub fn panels(self, panels: &[Panel]) -> Result<(), PlotError> {
        if panels.iter().all(|p| p.series.iter().all(|s| s.points.is_empty())) {
            return Err(PlotError::NoData(self.path().to_owned()));
        }
        let size = (PANEL_SIZE.0, PANEL_SIZE.1 * panels.len().max(1) as u32);
        let bytes = draw::panels(self.format, size, panels);
        self.write(bytes)
    }

    /// Draws `haltpoll tune`'s [`FrontPlot`].
    pub fn front(self, plot: &FrontPlot) -> Result<(), PlotError> {
        if plot.all.is_empty() {
            return Err(PlotError::NoData(self.path().to_owned()));
        }
        let bytes = draw::front(self.format, PANEL_SIZE, plot);
        self.write(bytes)
    }

    fn write(self, drawn: Result<Vec<u8>, String>) -> Result<(), PlotError> {
        let bytes = drawn.map_err(|message| PlotError::Draw { path: self.path().to_owned(), message })?;
        Ok(self.file.write(|out| out.write_all(&bytes))?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "plot", feature = "bench"))]
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

    #[cfg(all(feature = "plot", feature = "bench"))]
    fn sweep(path: &Path, title: &str, rtt: Vec<Series>, cpu: Vec<Series>) -> Result<(), PlotError> {
        PlotFile::create(path)?.think_time_sweep(title, rtt, cpu)
    }

    #[cfg(all(feature = "plot", feature = "bench"))]
    #[test]
    fn sweep_svg_and_png_are_written_in_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let (rtt, cpu) = sweep_series();
        let svg = dir.path().join("sweep.svg");
        sweep(&svg, "synthetic", rtt.clone(), cpu.clone()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", &text[..80]);
        assert!(text.contains("guest polling") && text.contains("round trip against think time"));
        let png = dir.path().join("sweep.PNG");
        sweep(&png, "synthetic", rtt, cpu).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000, "a two-panel picture with text, not an empty image: {} bytes", bytes.len());
    }

    #[cfg(all(feature = "plot", feature = "bench"))]
    #[test]
    fn bad_names_and_no_data_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (rtt, cpu) = sweep_series();
        let err = sweep(&dir.path().join("sweep.pdf"), "x", rtt, cpu).unwrap_err().to_string();
        assert!(err.ends_with("sweep.pdf: a plot file must end in .svg or .png"), "{err}");
        assert!(!dir.path().join("sweep.pdf").exists(), "a bad name opens nothing");
        let err = sweep(&dir.path().join("e.svg"), "x", vec![], vec![]).unwrap_err().to_string();
        assert!(err.contains("nothing to plot"), "{err}");
        // A path that cannot be written fails when the file is opened, before any drawing.
        let err = PlotFile::create(&dir.path().join("no/such/dir/e.png")).unwrap_err();
        assert!(matches!(err, PlotError::Output(OutputError::Open { .. })), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("cannot write the plot to ") && text.contains("No such file or directory"), "{text}");
    }

    #[cfg(feature = "plot")]
    #[test]
    fn a_device_is_refused_before_any_drawing() {
        // A link to /dev/full under a name with the extension: refused, not written through.
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.png");
        std::os::unix::fs::symlink("/dev/full", &full).unwrap();
        let err = PlotFile::create(&full).unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write the plot: {} is not a regular file (a device, a FIFO or a directory): give the path of \
                 a file",
                full.display()
            )
        );
    }

    #[cfg(feature = "plot")]
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
        PlotFile::create(&svg).unwrap().front(&plot).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("Pareto front") && text.contains("recommended") && text.contains("budget 2.5%"));
        PlotFile::create(&dir.path().join("front.png")).unwrap().front(&plot).unwrap();
        let empty = FrontPlot { all: vec![], ..plot };
        assert!(matches!(PlotFile::create(&svg).unwrap().front(&empty), Err(PlotError::NoData(_))));
    }

    #[cfg(not(feature = "plot"))]
    #[test]
    fn without_the_feature_plots_are_refused_before_any_work() {
        let err = Format::of(Path::new("sweep.svg")).unwrap_err().to_string();
        assert!(err.starts_with("sweep.svg: this haltpoll was built without plots"), "{err}");
        assert!(err.contains("rebuild it with the feature"), "{err}");
        assert!(matches!(PlotFile::create(Path::new("s.png")), Err(PlotError::Disabled(_))));
        assert!(!Path::new("s.png").exists(), "nothing opened");
    }
}
