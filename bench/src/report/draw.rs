//! Drawing a [`LineChart`] with plotters, as SVG or PNG.
//!
//! Text uses Noto Sans Regular 1.04 (Apache-2.0, from the `ttf-noto-sans`
//! crate), registered with plotters' `ab_glyph` font backend, so charts
//! render on a machine with no system fonts (plotters' default, font-kit,
//! needs fontconfig and installed fonts).

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::coord::combinators::IntoLogRange;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::select::{LineChart, XAxis, ENGINES};
use super::text::GlyphText;

/// Pixels (PNG) or user units (SVG).
const SIZE: (u32, u32) = (1024, 640);
/// The family plotters asks for by default; the embedded font answers it.
const FONT: &str = "sans-serif";
/// Enough for latencies from nanoseconds to hours.
const MAX_LOG_TICKS: usize = 60;
/// Headroom above the highest point, as a fraction of it.
const Y_HEADROOM: f64 = 0.1;

/// One colour per known engine ([`ENGINES`] order), so an engine looks the
/// same in every chart; other engines take [`Palette99`] colours.
const ENGINE_COLOURS: [RGBColor; 4] = [RGBColor(214, 39, 40), RGBColor(255, 127, 14), RGBColor(31, 119, 180), RGBColor(44, 160, 44)];

pub(crate) fn svg(chart: &LineChart, path: &Path) -> Result<()> {
    embedded_font()?;
    draw(SVGBackend::new(path, SIZE).into_drawing_area(), chart)
}

pub(crate) fn png(chart: &LineChart, path: &Path) -> Result<()> {
    embedded_font()?;
    draw(GlyphText(BitMapBackend::new(path, SIZE)).into_drawing_area(), chart)
}

/// Registers the embedded font once per process.
fn embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR).is_ok());
    ok.then_some(()).ok_or_else(|| anyhow!("the embedded Noto Sans font does not parse"))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &LineChart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let area = root.titled(&c.title, (FONT, 26))?;
    let area = area.titled(&c.subtitle, (FONT, 16))?;
    let x = x_range(c);
    let y = 0.0..y_top(c);
    match &c.x_axis {
        XAxis::Ticks(t) => {
            let inner: RangedCoordf64 = x.into();
            plot(&area, c, Ticked { inner, ticks: t.clone() }, y)?;
        }
        XAxis::Linear => plot(&area, c, x, y)?,
        XAxis::Log => {
            let ticks = log_ticks(&x);
            let inner: LogCoord<f64> = x.log_scale().into();
            plot(&area, c, Ticked { inner, ticks }, y)?;
        }
    }
    root.present()?;
    Ok(())
}

fn plot<DB, X>(area: &DrawingArea<DB, Shift>, c: &LineChart, x: X, y: Range<f64>) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area).margin(20).x_label_area_size(50).y_label_area_size(90).build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(c.x_label)
        .y_desc(c.y_label)
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()?;
    for (i, s) in c.series.iter().enumerate() {
        let colour = colour(&s.engine, i);
        let line = colour.stroke_width(2);
        chart.draw_series(LineSeries::new(s.points.iter().copied(), line))?.label(s.label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        if c.markers {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(if c.legend_upper_left { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::LowerRight })
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// An f64 axis (linear or log) with a tick at each given value and no light
/// grid lines. (plotters' `with_key_points` does the same but its f64 form
/// cannot draw a mesh: it has no value formatter.)
struct Ticked<R> {
    inner: R,
    ticks: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold points only: no light grid lines between the measured values.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Log-axis ticks: 1, 2 and 5 times each power of ten inside `range`.
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(range.start.log10().floor());
    while decade <= range.end && ticks.len() < MAX_LOG_TICKS {
        ticks.extend([1.0, 2.0, 5.0].map(|m| m * decade).into_iter().filter(|t| range.contains(t)));
        decade *= 10.0;
    }
    ticks
}

fn colour(engine: &str, index: usize) -> RGBColor {
    if engine == super::select::FLOOR {
        return RGBColor(128, 128, 128);
    }
    match ENGINES.iter().position(|e| *e == engine) {
        Some(k) => ENGINE_COLOURS[k],
        None => {
            let (r, g, b) = Palette99::pick(index).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// The x span of all points, padded so end points are not on the frame.
fn x_range(c: &LineChart) -> Range<f64> {
    let xs = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    match c.x_axis {
        XAxis::Log => (lo / 1.2)..(hi * 1.2),
        XAxis::Ticks(_) => {
            let pad = ((hi - lo) * 0.05).max(0.5);
            (lo - pad)..(hi + pad)
        }
        XAxis::Linear => {
            let pad = ((hi - lo) * 0.03).max(hi.abs() * 0.01).max(1e-3);
            (lo - pad)..(hi + pad)
        }
    }
}

/// The y axis starts at zero; its top clears the highest point.
fn y_top(c: &LineChart) -> f64 {
    let hi = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    (hi * (1.0 + Y_HEADROOM)).max(c.y_min_top).max(f64::MIN_POSITIVE)
}

/// Axis labels: "1.5M", "250k", "12", "0.25".
fn number(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') && !s.ends_with('M') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(250.4), "250");
        assert_eq!(number(25_000.0), "25k");
        assert_eq!(number(1_500_000.0), "1.5M");
    }

    #[test]
    fn log_ticks_are_one_two_five_per_decade() {
        assert_eq!(super::log_ticks(&(6.0..130.0)), [10.0, 20.0, 50.0, 100.0]);
        assert_eq!(super::log_ticks(&(0.8..3.0)), [1.0, 2.0]);
    }
}
