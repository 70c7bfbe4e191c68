//! `frugal calibrate --plot FILE.png`: each swept frontier as a panel (quality against cost),
//! the picked point in red. Labels need a TrueType font: `FRUGAL_PLOT_FONT`, else DejaVu Sans
//! from Debian's `fonts-dejavu-core`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::Calibration;

/// Where the font is looked for when `FRUGAL_PLOT_FONT` is not set.
const DEFAULT_FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// One panel: its title, axis names, the frontier and the picked point.
struct Panel {
    title: String,
    x: &'static str,
    y: &'static str,
    points: Vec<(f64, f64)>,
    pick: Option<(f64, f64)>,
}

/// Draws every frontier of `calibration` into the PNG at `path`.
pub fn draw(path: &Path, calibration: &Calibration) -> anyhow::Result<()> {
    let panels = panels(calibration);
    anyhow::ensure!(!panels.is_empty(), "no frontier to plot");
    register_font()?;
    let width = 560 * u32::try_from(panels.len()).unwrap_or(1);
    let root = BitMapBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(&panels) {
        draw_panel(area, panel)?;
    }
    root.present()
        .map_err(plot_error)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn panels(calibration: &Calibration) -> Vec<Panel> {
    let mut panels = Vec::new();
    if let Some(route) = &calibration.route {
        let xy = |p: &super::sweep::RoutePoint| (100.0 * p.cost, 100.0 * p.quality);
        panels.push(Panel {
            title: "routing: start_strong_above".into(),
            x: "cost, % of always-strong",
            y: "quality, % of always-strong",
            points: route.points.iter().map(xy).collect(),
            pick: route.picked().as_ref().map(xy),
        });
    }
    if let Some(cache) = &calibration.cache {
        let xy = |p: &super::sweep::CachePoint| (100.0 * p.false_hit_rate, 100.0 * p.recall);
        panels.push(Panel {
            title: "semantic cache: similarity_threshold".into(),
            x: "false hits, % of different pairs",
            y: "duplicates served, %",
            points: cache.points.iter().map(xy).collect(),
            pick: cache.picked().as_ref().map(xy),
        });
    }
    if let Some(shadow) = &calibration.shadow {
        let xy = |p: &super::sweep::ShadowPoint| (100.0 * p.disagreement, 100.0 * p.would_serve);
        panels.push(Panel {
            title: "semantic cache on your traffic (shadow)".into(),
            x: "would-be hits disagreeing, %",
            y: "requests the cache would serve, %",
            points: shadow.points.iter().map(xy).collect(),
            pick: shadow.picked().as_ref().map(xy),
        });
    }
    if let Some(trim) = &calibration.trim {
        let xy = |p: &super::sweep::TrimPoint| (100.0 * p.token_reduction, 100.0 * p.evidence_kept);
        panels.push(Panel {
            title: "trimming: max_context_tokens".into(),
            x: "context tokens removed, %",
            y: "gold evidence kept, %",
            points: trim.points.iter().map(xy).collect(),
            pick: trim.picked().as_ref().map(xy),
        });
    }
    panels
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> anyhow::Result<()> {
    let (x_range, y_range) = ranges(&panel.points);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_range, y_range)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(panel.x)
        .y_desc(panel.y)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(plot_error)?;
    let mut sorted = panel.points.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(LineSeries::new(sorted, &BLUE))
        .map_err(plot_error)?;
    if let Some(pick) = panel.pick {
        chart
            .draw_series(std::iter::once(Circle::new(pick, 6, RED.filled())))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Axis ranges covering the points, with a little room.
fn ranges(points: &[(f64, f64)]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let span = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() || !hi.is_finite() {
            return 0.0..1.0;
        }
        let pad = ((hi - lo) * 0.05).max(0.5);
        (lo - pad)..(hi + pad)
    };
    (
        span(points.iter().map(|p| p.0).collect()),
        span(points.iter().map(|p| p.1).collect()),
    )
}

/// Registers the labels' font once.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = font_path().ok_or_else(|| {
                format!(
                    "--plot needs a TrueType font for its labels: install Debian's fonts-dejavu-core \
                     (scripts/setup.sh does), or set FRUGAL_PLOT_FONT to a .ttf file (looked in {})",
                    DEFAULT_FONTS.join(", ")
                )
            })?;
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read the font {}: {e}", path.display()))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a TrueType font", path.display()))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn font_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FRUGAL_PLOT_FONT") {
        return Some(PathBuf::from(path));
    }
    DEFAULT_FONTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn plot_error<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {error}")
}
