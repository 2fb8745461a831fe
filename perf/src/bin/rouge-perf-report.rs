//! `rouge-perf-report`: draws the charts of a `perf/run` result file as SVG.
//!
//! For `perf/results/<date>-<scenario>.json` it writes `<date>-<scenario>-throughput.svg`
//! (median delivered packets per second, one bar per system and generator) and
//! `<date>-<scenario>-latency.svg` (median latency percentiles, one curve per system and
//! generator, log scale), and with `--latest` also `latest-<scenario>-*.svg`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use plotters::prelude::*;
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Draw throughput bars and latency percentile curves from a perf/run JSON file.
#[derive(Debug, Parser)]
#[command(name = "rouge-perf-report", version)]
struct Args {
    /// Result files written by perf/run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Directory for the SVG files (default: beside each result file).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also write `latest-SCENARIO-throughput.svg` and `latest-SCENARIO-latency.svg`.
    #[arg(long)]
    latest: bool,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0xc0, 0x39, 0x2b), // rouge
    RGBColor(0x29, 0x80, 0xb9),
    RGBColor(0x27, 0xae, 0x60),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0xf3, 0x9c, 0x12),
    RGBColor(0x7f, 0x8c, 0x8d),
];

const PERCENTILES: [(&str, &str); 5] = [
    ("p50_us", "p50"),
    ("p90_us", "p90"),
    ("p99_us", "p99"),
    ("p999_us", "p99.9"),
    ("max_us", "max"),
];

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args = Args::parse();
    for f in &args.files {
        if let Err(e) = draw_file(f, args.out_dir.as_deref(), args.latest) {
            eprintln!("rouge-perf-report: {}: {e}", f.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn draw_file(path: &Path, out_dir: Option<&Path>, latest: bool) -> Res<()> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let scenario = doc["scenario"].as_str().ok_or("no `scenario` field")?;
    let summary = doc["summary"].as_array().ok_or("no `summary` array")?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("file name is not UTF-8")?;
    let dir = out_dir
        .map(Path::to_path_buf)
        .or_else(|| path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut names = vec![stem.to_string()];
    if latest {
        names.push(format!("latest-{scenario}"));
    }
    let title = format!("{scenario}: {}", doc["date"].as_str().unwrap_or(""));
    for n in names {
        let tp = dir.join(format!("{n}-throughput.svg"));
        throughput_chart(&tp, &title, summary)?;
        let lat = dir.join(format!("{n}-latency.svg"));
        latency_chart(&lat, &title, summary)?;
        println!("{}\n{}", tp.display(), lat.display());
    }
    Ok(())
}

/// One colour per system, in order of first appearance; Rouge is always red.
fn system_color(summary: &[Value], row: &Value) -> RGBColor {
    let sys = row["system"].as_str().unwrap_or("?");
    if sys == "rouge" {
        return PALETTE[0];
    }
    let mut seen: Vec<&str> = Vec::new();
    for r in summary {
        let s = r["system"].as_str().unwrap_or("?");
        if s != "rouge" && !seen.contains(&s) {
            seen.push(s);
        }
    }
    let i = seen.iter().position(|s| *s == sys).unwrap_or(0);
    PALETTE[1 + i % (PALETTE.len() - 1)]
}

fn label(row: &Value) -> String {
    format!(
        "{} / {}",
        row["system"].as_str().unwrap_or("?"),
        row["generator"].as_str().unwrap_or("?")
    )
}

fn throughput_chart(path: &Path, title: &str, summary: &[Value]) -> Res<()> {
    let bars: Vec<(String, f64, RGBColor, bool)> = summary
        .iter()
        .filter_map(|r| {
            let v = r["throughput_pps"].as_f64()? / 1e6;
            let first_gen = r["generator"].as_str() == Some("rouge-pktgen");
            Some((label(r), v, system_color(summary, r), first_gen))
        })
        .collect();
    let root =
        SVGBackend::new(path, (900, 120 + 44 * bars.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-3) * 1.15;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title} - delivered Mpps (median)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..top, 0.0..n as f64)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y: &f64| {
            let i = (*y - 0.5).round();
            if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[n - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("million packets per second")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (_, v, color, solid)) in bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        // The same colour per system; bars of the second generator are lighter.
        let style = if *solid {
            color.filled()
        } else {
            color.mix(0.55).filled()
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (*v, y + 0.85)],
                style,
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.3}"),
                (*v + top * 0.01, y + 0.62),
                ("sans-serif", 14),
            )))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn latency_chart(path: &Path, title: &str, summary: &[Value]) -> Res<()> {
    let curves: Vec<(String, Vec<f64>, RGBColor)> = summary
        .iter()
        .filter_map(|r| {
            let lat = r
                .get("latency")
                .filter(|l| l.is_object())
                .or(r.get("latency_at_max"))?;
            let pts: Option<Vec<f64>> = PERCENTILES.iter().map(|(k, _)| lat[*k].as_f64()).collect();
            Some((label(r), pts?, system_color(summary, r)))
        })
        .collect();
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // With no curves (e.g. generators without a receiver) draw empty axes of 1-1000 us.
    let all = curves
        .iter()
        .flat_map(|c| c.1.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0);
    let lo = all.clone().fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() {
        (lo / 1.5).max(0.01)
    } else {
        1.0
    };
    let hi = all.fold(0.0, f64::max).max(lo * 100.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title} - latency percentiles (median of rounds)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.2..4.2, (lo..hi * 1.5).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && (0.0..=4.0).contains(&i) {
                PERCENTILES[i as usize].1.to_string()
            } else {
                String::new()
            }
        })
        .y_desc("microseconds (log)")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, pts, color) in &curves {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                pts.iter().enumerate().map(|(x, y)| (x as f64, *y)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                pts.iter()
                    .enumerate()
                    .map(|(x, y)| Circle::new((x as f64, *y), 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
