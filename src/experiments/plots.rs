//! Learning-curve plots: each chart (one mean line per method with a min..max band over its
//! seeds) is drawn once with plotters onto any backend, giving SVG text (inlined in the HTML
//! report) and PNG files (a bitmap buffer encoded with `png`).
//!
//! Labels need a TrueType font: the first of `$OPRL_FONT` and a few usual system paths is
//! registered once. Without one, charts are drawn without text (the HTML page names them).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::stats::BandPoint;
use super::{write_file, ExperimentError};

/// Chart size in pixels.
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 420;

/// One method's curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<BandPoint>,
}

/// One plot.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem of the PNG/SVG files.
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One colour per series up to ten (the comparison has nine methods); more repeat.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a font for labels once; whether one was found.
pub fn fonts_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let from_env = std::env::var("OPRL_FONT").ok();
        let candidates = from_env.iter().map(String::as_str).chain(FONT_CANDIDATES);
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the whole process: leaking the one file is intended.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// The axis ranges covering every point and band of `chart`, padded so lines are not on the
/// frame; a flat range is widened.
pub fn ranges(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let pts = chart.series.iter().flat_map(|s| &s.points);
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in pts {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.min).min(p.mean);
        y1 = y1.max(p.max).max(p.mean);
    }
    if !x0.is_finite() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = 0.05 * (y1 - y0);
    ((x0, x1), (y0 - pad, y1 + pad))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    let text = fonts_available();
    root.fill(&WHITE).map_err(e)?;
    let ((x0, x1), (y0, y1)) = ranges(chart);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(12);
    if text {
        builder
            .caption(&chart.title, ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut ctx = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?;
    let mut mesh = ctx.configure_mesh();
    if text {
        mesh.x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 12));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    for (i, s) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if s.points.iter().any(|p| p.runs > 1) {
            let mut band: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, p.max)).collect();
            band.extend(s.points.iter().rev().map(|p| (p.x, p.min)));
            ctx.draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18))))
                .map_err(e)?;
        }
        let line = ctx
            .draw_series(LineSeries::new(
                s.points.iter().map(|p| (p.x, p.mean)),
                colour.stroke_width(2),
            ))
            .map_err(e)?;
        if text {
            line.label(s.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
    }
    if text {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// The chart as an SVG document.
pub fn to_svg(chart: &Chart) -> Result<String, ExperimentError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(root, chart).map_err(|message| ExperimentError::Plot {
            name: chart.name.clone(),
            message,
        })?;
    }
    Ok(out)
}

/// The chart as PNG bytes (8-bit RGB).
pub fn to_png(chart: &Chart) -> Result<Vec<u8>, ExperimentError> {
    let plot_err = |message: String| ExperimentError::Plot {
        name: chart.name.clone(),
        message,
    };
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(root, chart).map_err(plot_err)?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| plot_err(e.to_string()))?;
        w.write_image_data(&rgb)
            .map_err(|e| plot_err(e.to_string()))?;
    }
    Ok(bytes)
}

/// Writes `<dir>/<name>.svg` and `<dir>/<name>.png`; returns the SVG text.
pub fn write_both(chart: &Chart, dir: &Path) -> Result<String, ExperimentError> {
    let svg = to_svg(chart)?;
    write_file(&dir.join(format!("{}.svg", chart.name)), svg.as_bytes())?;
    write_file(&dir.join(format!("{}.png", chart.name)), &to_png(chart)?)?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::super::stats::summarize;
    use super::*;

    fn chart() -> Chart {
        Chart {
            name: "t".into(),
            title: "success".into(),
            x_label: "iteration".into(),
            y_label: "rate".into(),
            series: vec![Series {
                name: "oprl".into(),
                points: vec![summarize(1.0, &[0.0, 0.5]), summarize(2.0, &[0.5, 1.0])],
            }],
        }
    }

    #[test]
    fn ranges_cover_bands_with_padding() {
        let ((x0, x1), (y0, y1)) = ranges(&chart());
        assert_eq!((x0, x1), (1.0, 2.0));
        assert!((y0 - -0.05).abs() < 1e-12 && (y1 - 1.05).abs() < 1e-12);
    }

    #[test]
    fn charts_render_as_svg_and_png() {
        let svg = to_svg(&chart()).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
        assert!(svg.contains("<polygon") || svg.contains("<path"));
        let png = to_png(&chart()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
