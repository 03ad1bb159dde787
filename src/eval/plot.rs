//! The NDCG@K chart as a standalone SVG (a few dozen lines of markup: no
//! plotting crate needed for one line chart).

use super::EvalReport;
use std::fmt::Write;

const COLORS: [&str; 8] =
    ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// The plot area and the scales of the chart.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    pw: f64,
    ph: f64,
    kmax: usize,
    ymax: f64,
}

impl Frame {
    fn new(report: &EvalReport) -> Frame {
        let (w, h) = (720.0f64, 440.0f64);
        let (left, right, top, bottom) = (60.0, 170.0, 40.0, 50.0);
        let kmax = report.methods.iter().map(|m| m.ndcg_curve.len()).max().unwrap_or(1).max(2);
        let ymax_raw = report
            .methods
            .iter()
            .flat_map(|m| m.ndcg_curve.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1e-3);
        // A round top: 1, 2 or 5 times a power of ten.
        let mag = 10f64.powf(ymax_raw.log10().floor());
        let ymax = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|&v| v >= ymax_raw)
            .unwrap_or(mag * 10.0);
        Frame { w, h, left, top, pw: w - left - right, ph: h - top - bottom, kmax, ymax }
    }

    fn x(&self, k: usize) -> f64 {
        self.left + self.pw * (k.max(1) - 1) as f64 / (self.kmax - 1) as f64
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.ph * (1.0 - v / self.ymax)
    }
}

/// NDCG@K for K = 1..=curve_max, one line per method, with axes, grid and
/// a legend; `title` goes on top.
pub fn ndcg_chart_svg(report: &EvalReport, title: &str) -> String {
    let f = Frame::new(report);
    let (w, h, left, top, pw, ph) = (f.w, f.h, f.left, f.top, f.pw, f.ph);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        left + pw / 2.0,
        escape(title)
    );
    grid(&mut s, &f);
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">K</text><text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">NDCG@K</text>"#,
        left + pw / 2.0,
        h - 12.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    curves(&mut s, &f, report);
    s.push_str("</svg>\n");
    s
}

/// Horizontal lines with NDCG labels, vertical ones with K labels.
fn grid(s: &mut String, f: &Frame) {
    let (left, top, pw, ph) = (f.left, f.top, f.pw, f.ph);
    for i in 0..=5 {
        let v = f.ymax * f64::from(i) / 5.0;
        let yy = f.y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.3}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0
        );
    }
    let step = if f.kmax > 20 { 10 } else { 5 };
    for k in (0..=f.kmax).step_by(step).map(|k| k.max(1)) {
        let xx = f.x(k);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{k}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
}

/// One polyline and one legend entry per method.
fn curves(s: &mut String, f: &Frame, report: &EvalReport) {
    for (i, m) in report.methods.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = m
            .ndcg_curve
            .iter()
            .enumerate()
            .map(|(j, &v)| format!("{:.1},{:.1}", f.x(j + 1), f.y(v)))
            .collect();
        let width = if m.name == "pipeline" { 2.5 } else { 1.5 };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
            points.join(" ")
        );
        let ly = f.top + 10.0 + 20.0 * i as f64;
        let lx = f.left + f.pw + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="{width}"/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&m.name)
        );
    }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
