//! SVG charts with no dependencies, for the trainer's loss curves and `rudder prompts eval`'s metric
//! comparison. SVG is text, opens in any browser and diffs in review, so reports need no plotting stack.
//!
//! Charts are fixed at 800x480 with the legend at the right. Every number written into the document is
//! finite (non-finite data is dropped, degenerate ranges padded) and every piece of caller text is
//! escaped, so a chart is always a well-formed document whatever the run produced.

use std::fmt::Write as _;

/// One named line of (x, y) points, drawn in the given order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
/// The plot area; the legend sits right of it, title above, labels left and below.
const PLOT_LEFT: f64 = 80.0;
const PLOT_RIGHT: f64 = 610.0;
const PLOT_TOP: f64 = 50.0;
const PLOT_BOTTOM: f64 = 410.0;
const LEGEND_X: f64 = 625.0;
const LEGEND_ROW: f64 = 20.0;
/// Rows that fit beside the plot; more series are summarised as "+N more".
const LEGEND_MAX_ROWS: usize = 17;
const LEGEND_MAX_CHARS: usize = 22;
/// Colour-blind-friendly, mutually distinct (Okabe-Ito plus two); cycles past the end.
const PALETTE: &[&str] = &[
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442", "#7f7f7f",
    "#8c564b",
];
/// Tick counts aimed for: the step among 1/2/5×10^k whose tick count is closest to this wins.
const TARGET_TICKS: usize = 6;

/// A line chart (e.g. loss per step), one polyline per series. Non-finite points are ignored; a series
/// with a single point is drawn as a dot; with no finite point at all the axes carry "no data".
pub fn line_chart_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let finite: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect())
        .collect();
    let all = || finite.iter().flatten();
    let mut svg = Svg::new(title);
    let (Some(x_axis), Some(y_axis)) =
        (Axis::spanning(all().map(|p| p.0)), Axis::spanning(all().map(|p| p.1)))
    else {
        svg.frame(x_label, y_label);
        svg.no_data();
        svg.legend(series.iter().map(|s| s.name.as_str()));
        return svg.finish();
    };
    svg.y_axis(&y_axis);
    svg.x_axis(&x_axis);
    svg.frame(x_label, y_label);
    for (i, points) in finite.iter().enumerate() {
        let colour = colour(i);
        let xy: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x_axis.to_x(x), y_axis.to_y(y))).collect();
        match xy.as_slice() {
            [] => {}
            [(x, y)] => {
                let _ = write!(svg.0, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#, x, y);
            }
            _ => {
                let coords: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    svg.0,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                    coords.join(" ")
                );
            }
        }
    }
    svg.legend(series.iter().map(|s| s.name.as_str()));
    svg.finish()
}

/// Grouped bars: one group per metric along x, one bar per series (variant) in each group, labelled
/// with its value to 2 decimals. `None`, a non-finite value or a missing entry (a series shorter than
/// `groups`) is drawn as a small "n/a". The y axis runs from 0 to the largest value, or to 1 when
/// every value is a rate in 0..=1 so rates are read against their full scale; groups may be on
/// different scales, which the value labels make readable.
pub fn bar_chart_svg(
    title: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
    y_label: &str,
) -> String {
    let mut svg = Svg::new(title);
    if groups.is_empty() || series.is_empty() {
        svg.frame("", y_label);
        svg.no_data();
        svg.legend(series.iter().map(|(name, _)| name.as_str()));
        return svg.finish();
    }
    let value = |s: usize, g: usize| series[s].1.get(g).copied().flatten().filter(|v| v.is_finite());
    let values: Vec<f64> = (0..series.len())
        .flat_map(|s| (0..groups.len()).map(move |g| (s, g)))
        .filter_map(|(s, g)| value(s, g))
        .collect();
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let hi = if lo >= 0.0 && hi <= 1.0 { 1.0 } else { hi };
    let y_axis = Axis::spanning([lo, hi].into_iter()).unwrap_or_else(Axis::unit);
    svg.y_axis(&y_axis);
    let group_width = (PLOT_RIGHT - PLOT_LEFT) / groups.len() as f64;
    let bar_width = group_width * 0.8 / series.len() as f64;
    let baseline = y_axis.to_y(0.0);
    let label_size = if bar_width < 28.0 { 9 } else { 10 };
    for (g, group) in groups.iter().enumerate() {
        let group_left = PLOT_LEFT + group_width * g as f64;
        let max_chars = ((group_width / 6.0) as usize).max(4);
        svg.text(
            group_left + group_width / 2.0,
            PLOT_BOTTOM + 18.0,
            "middle",
            r#"font-size="11""#,
            group,
            max_chars,
        );
        for s in 0..series.len() {
            let x = group_left + group_width * 0.1 + bar_width * s as f64;
            let centre = x + bar_width / 2.0;
            let attrs = format!(r#"font-size="{label_size}""#);
            match value(s, g) {
                Some(v) => {
                    let top = y_axis.to_y(v);
                    let (y, height) =
                        if top <= baseline { (top, baseline - top) } else { (baseline, top - baseline) };
                    let _ = write!(
                        svg.0,
                        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                        x + 1.0,
                        y,
                        (bar_width - 2.0).max(1.0),
                        height,
                        colour(s)
                    );
                    let label_y = if v >= 0.0 { top - 4.0 } else { top + 12.0 };
                    svg.text(centre, label_y, "middle", &attrs, &format!("{v:.2}"), usize::MAX);
                }
                None => {
                    let attrs = format!(r##"{attrs} fill="#888888""##);
                    svg.text(centre, baseline - 4.0, "middle", &attrs, "n/a", usize::MAX);
                }
            }
        }
    }
    svg.frame("", y_label);
    svg.legend(series.iter().map(|(name, _)| name.as_str()));
    svg.finish()
}

fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// A numeric axis: its drawn range (widened to whole ticks) and the ticks.
#[derive(Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    step: f64,
}

impl Axis {
    /// The axis covering `values` (all finite), or `None` when there are none.
    fn spanning(values: impl Iterator<Item = f64>) -> Option<Axis> {
        let (lo, hi) = values.fold(None, |range: Option<(f64, f64)>, v| {
            Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })?;
        let (ticks, step) = nice_ticks(lo, hi);
        let lo = ticks.first().copied().unwrap_or(lo).min(lo);
        let hi = ticks.last().copied().unwrap_or(hi).max(hi);
        Some(Axis { lo, hi, ticks, step })
    }

    fn unit() -> Axis {
        let (ticks, step) = nice_ticks(0.0, 1.0);
        Axis { lo: 0.0, hi: 1.0, ticks, step }
    }

    /// Where `v` falls between the ends, 0..=1 for values on the axis; 0.5 if the span is unusable.
    fn fraction(&self, v: f64) -> f64 {
        let f = (v - self.lo) / (self.hi - self.lo);
        if f.is_finite() { f } else { 0.5 }
    }

    fn to_x(&self, v: f64) -> f64 {
        PLOT_LEFT + self.fraction(v) * (PLOT_RIGHT - PLOT_LEFT)
    }

    fn to_y(&self, v: f64) -> f64 {
        PLOT_BOTTOM - self.fraction(v) * (PLOT_BOTTOM - PLOT_TOP)
    }

    fn label(&self, v: f64) -> String {
        format_tick(v, self.step)
    }
}

/// Ticks on multiples of a "nice" step (1, 2 or 5 × 10^k) covering lo..=hi, choosing the step whose tick
/// count is closest to [`TARGET_TICKS`] (fewer on a tie), so axes read like a human drew them. A zero
/// span is padded first (by 10% of the value, or 1 around 0) so constant data still gets an axis.
/// Returns the ticks and the step.
fn nice_ticks(lo: f64, hi: f64) -> (Vec<f64>, f64) {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let (lo, hi) = if hi - lo > 0.0 {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo, hi].into_iter().filter(|v| v.is_finite()).collect(), f64::NAN);
    }
    // Tolerance in step units, so 0.6 / 0.2 = 2.9999999999999996 still starts at tick 3.
    const SLACK: f64 = 1e-7;
    let magnitude = span.log10().floor() as i32;
    let mut best: Option<(usize, usize, f64, f64)> = None;
    for exponent in magnitude - 2..=magnitude + 1 {
        for mantissa in [1.0, 2.0, 5.0] {
            let step = mantissa * 10f64.powi(exponent);
            let first = (lo / step + SLACK).floor();
            let last = (hi / step - SLACK).ceil();
            let count = (last - first) as usize + 1;
            let key = (count.abs_diff(TARGET_TICKS), count);
            if best.is_none_or(|(diff, n, ..)| key < (diff, n)) {
                best = Some((key.0, key.1, step, first));
            }
        }
    }
    match best {
        Some((_, count, step, first)) => ((0..count).map(|i| (first + i as f64) * step).collect(), step),
        None => (vec![lo, hi], span),
    }
}

/// A tick label with as many decimals as the step needs ("0.2", "15", "0.05"), scientific notation for
/// very large or tiny values, and never "-0".
fn format_tick(v: f64, step: f64) -> String {
    if !step.is_finite() || step <= 0.0 {
        return format!("{v:.3e}");
    }
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || step < 1e-4) {
        return format!("{v:.2e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Text safe inside an element or a double-quoted attribute: the five XML specials escaped, and
/// characters XML 1.0 forbids (most control characters) dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `max_chars` characters with an ellipsis, so long names cannot run off the chart.
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// An SVG document being written.
#[derive(Debug)]
struct Svg(String);

impl Svg {
    fn new(title: &str) -> Svg {
        let mut svg = Svg(String::new());
        let _ = write!(
            svg.0,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(svg.0, r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##);
        svg.text(WIDTH / 2.0, 28.0, "middle", r#"font-size="16" font-weight="bold""#, title, 90);
        svg
    }

    /// A `<text>` element; text longer than `max_chars` is shortened, with the full text kept as a
    /// `<title>` tooltip.
    fn text(&mut self, x: f64, y: f64, anchor: &str, attrs: &str, content: &str, max_chars: usize) {
        let shown = shorten(content, max_chars);
        let tooltip =
            if shown == content { String::new() } else { format!("<title>{}</title>", escape(content)) };
        let _ = write!(
            self.0,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" {attrs}>{tooltip}{}</text>"#,
            finite(x),
            finite(y),
            escape(&shown)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
        let _ = write!(
            self.0,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{stroke}" stroke-width="1"/>"#,
            finite(x1),
            finite(y1),
            finite(x2),
            finite(y2)
        );
    }

    /// Horizontal grid lines and labels at the y ticks.
    fn y_axis(&mut self, axis: &Axis) {
        for &tick in &axis.ticks {
            let y = axis.to_y(tick);
            self.line((PLOT_LEFT, y), (PLOT_RIGHT, y), "#e5e5e5");
            self.text(PLOT_LEFT - 6.0, y + 4.0, "end", "", &axis.label(tick), 14);
        }
    }

    /// Tick marks and labels at the x ticks.
    fn x_axis(&mut self, axis: &Axis) {
        for &tick in &axis.ticks {
            let x = axis.to_x(tick);
            self.line((x, PLOT_BOTTOM), (x, PLOT_BOTTOM + 5.0), "#333333");
            self.text(x, PLOT_BOTTOM + 19.0, "middle", "", &axis.label(tick), 14);
        }
    }

    /// The two axis lines and their labels.
    fn frame(&mut self, x_label: &str, y_label: &str) {
        self.line((PLOT_LEFT, PLOT_TOP), (PLOT_LEFT, PLOT_BOTTOM), "#333333");
        self.line((PLOT_LEFT, PLOT_BOTTOM), (PLOT_RIGHT, PLOT_BOTTOM), "#333333");
        let centre_x = (PLOT_LEFT + PLOT_RIGHT) / 2.0;
        let centre_y = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
        self.text(centre_x, HEIGHT - 22.0, "middle", "", x_label, 80);
        let rotate = format!(r#"transform="rotate(-90 20 {centre_y:.1})""#);
        self.text(20.0, centre_y, "middle", &rotate, y_label, 50);
    }

    fn no_data(&mut self) {
        let centre_x = (PLOT_LEFT + PLOT_RIGHT) / 2.0;
        let centre_y = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
        self.text(centre_x, centre_y, "middle", r##"font-size="14" fill="#888888""##, "no data", usize::MAX);
    }

    /// One colour swatch and name per series, in series order.
    fn legend<'a>(&mut self, names: impl ExactSizeIterator<Item = &'a str>) {
        let total = names.len();
        let shown = if total > LEGEND_MAX_ROWS { LEGEND_MAX_ROWS - 1 } else { total };
        for (i, name) in names.take(shown).enumerate() {
            let y = PLOT_TOP + 8.0 + LEGEND_ROW * i as f64;
            let _ = write!(
                self.0,
                r#"<rect x="{LEGEND_X}" y="{:.1}" width="16" height="4" fill="{}"/>"#,
                y - 6.0,
                colour(i)
            );
            self.text(LEGEND_X + 22.0, y, "start", "", name, LEGEND_MAX_CHARS);
        }
        if shown < total {
            let y = PLOT_TOP + 8.0 + LEGEND_ROW * shown as f64;
            self.text(LEGEND_X + 22.0, y, "start", "", &format!("+{} more", total - shown), usize::MAX);
        }
    }

    fn finish(mut self) -> String {
        self.0.push_str("</svg>");
        self.0
    }
}

/// Coordinates are finite by construction; this is the last guard so a document never says NaN.
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series { name: name.to_owned(), points: points.to_vec() }
    }

    /// The properties every chart must have, whatever the data.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches("<title>").count(), svg.matches("</title>").count());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count(), "{svg}");
        for bad in ["NaN", "nan", "inf"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        let text_content: Vec<&str> = svg.split('>').filter_map(|chunk| chunk.split('<').next()).collect();
        for content in text_content {
            for (i, _) in content.match_indices('&') {
                let entity = &content[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| entity.starts_with(e)),
                    "bare & in {content}"
                );
            }
        }
    }

    fn approx(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-9, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn ticks_for_unit_range_step_by_a_fifth() {
        let (ticks, step) = nice_ticks(0.0, 1.0);
        approx(&ticks, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert!((step - 0.2).abs() < 1e-12);
    }

    #[test]
    fn ticks_cover_awkward_ranges_with_nice_steps() {
        approx(&nice_ticks(1.3, 4.9).0, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        approx(&nice_ticks(0.6, 1.0).0, &[0.6, 0.7, 0.8, 0.9, 1.0]);
        approx(&nice_ticks(0.0, 1000.0).0, &[0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        approx(&nice_ticks(2.31, 2.37).0, &[2.30, 2.32, 2.34, 2.36, 2.38]);
        approx(&nice_ticks(-3.0, 7.0).0, &[-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]);
        for (lo, hi) in [(0.0, 1.0), (1.3, 4.9), (0.003, 0.0071), (17.0, 983.0), (-5e9, 2e9), (1e-12, 3e-12)]
        {
            let (ticks, step) = nice_ticks(lo, hi);
            assert!((4..=8).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            assert!(
                ticks[0] <= lo + step * 1e-6 && *ticks.last().unwrap() >= hi - step * 1e-6,
                "{lo}..{hi}: {ticks:?}"
            );
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "step {step}");
        }
    }

    #[test]
    fn constant_values_get_a_padded_range() {
        let (ticks, _) = nice_ticks(2.5, 2.5);
        assert!(ticks.len() >= 2 && ticks[0] < 2.5 && *ticks.last().unwrap() > 2.5, "{ticks:?}");
        let (ticks, _) = nice_ticks(0.0, 0.0);
        assert!(ticks[0] <= -1.0 && *ticks.last().unwrap() >= 1.0, "{ticks:?}");
    }

    #[test]
    fn tick_labels_are_tidy() {
        assert_eq!(format_tick(0.6000000000000001, 0.2), "0.6");
        assert_eq!(format_tick(-1e-17, 0.2), "0.0");
        assert_eq!(format_tick(400.0, 200.0), "400");
        assert_eq!(format_tick(0.05, 0.05), "0.05");
        assert_eq!(format_tick(2e9, 1e9), "2.00e9");
    }

    #[test]
    fn escaping_covers_xml_specials_and_control_characters() {
        assert_eq!(escape(r#"a & b < c > d "e" 'f'"#), "a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;");
        assert_eq!(escape("x\u{0}y\u{1b}z\nw"), "xyz w");
        assert_eq!(escape("£ € ünïcode"), "£ € ünïcode");
    }

    #[test]
    fn line_chart_draws_each_series_with_escaped_names() {
        let data = [
            series("prefix <uk> & \"tone\"", &[(0.0, 2.9), (50.0, 2.1), (100.0, 1.7)]),
            series("baseline", &[(0.0, 3.0), (100.0, 2.8)]),
        ];
        let svg = line_chart_svg("Loss <train>", "step", "loss", &data);
        assert_well_formed(&svg);
        assert!(svg.contains("prefix &lt;uk&gt; &amp; &quot;tone&quot;"));
        assert!(svg.contains("baseline"));
        assert!(svg.contains("Loss &lt;train&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn line_chart_handles_degenerate_data() {
        let cases: Vec<Vec<Series>> = vec![
            vec![],
            vec![series("empty", &[])],
            vec![series("non-finite only", &[(f64::NAN, 1.0), (1.0, f64::INFINITY)])],
            vec![series("one point", &[(3.0, 0.5)])],
            vec![series("flat", &[(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)])],
            vec![series("zero", &[(0.0, 0.0), (5.0, 0.0)])],
            vec![series("gaps", &[(0.0, 1.0), (1.0, f64::NAN), (2.0, 0.5), (f64::NEG_INFINITY, 0.0)])],
            vec![series("huge", &[(0.0, -1e308), (1.0, 1e308)])],
        ];
        for data in &cases {
            let svg = line_chart_svg("t", "x", "y", data);
            assert_well_formed(&svg);
            for s in data {
                assert!(svg.contains(&escape(&s.name)));
            }
        }
        assert!(line_chart_svg("t", "x", "y", &cases[0]).contains("no data"));
        assert!(line_chart_svg("t", "x", "y", &cases[2]).contains("no data"));
        assert!(line_chart_svg("t", "x", "y", &cases[3]).contains("<circle"));
        assert_eq!(line_chart_svg("t", "x", "y", &cases[6]).matches("<polyline").count(), 1);
    }

    #[test]
    fn long_names_are_shortened_with_a_tooltip() {
        let name = "a very long variant name that would run off the chart";
        let svg = line_chart_svg("t", "x", "y", &[series(name, &[(0.0, 1.0), (1.0, 0.5)])]);
        assert_well_formed(&svg);
        assert!(svg.contains(&format!("<title>{name}</title>")));
        assert!(svg.contains("a very long variant n…"));
    }

    #[test]
    fn many_series_keep_the_legend_inside_the_chart() {
        let data: Vec<Series> = (0..30).map(|i| series(&format!("s{i}"), &[(0.0, i as f64)])).collect();
        let svg = line_chart_svg("t", "x", "y", &data);
        assert_well_formed(&svg);
        assert!(svg.contains("+14 more"));
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bar_chart_labels_values_and_missing_ones() {
        let groups = names(&["currency", "british spelling", "apology"]);
        let series = vec![
            ("base & <plain>".to_owned(), vec![Some(0.5), None, Some(0.126)]),
            ("prefix".to_owned(), vec![Some(0.9), Some(1.0)]),
        ];
        let svg = bar_chart_svg("Variants \"uk\"", &groups, &series, "rate");
        assert_well_formed(&svg);
        assert!(svg.contains("base &amp; &lt;plain&gt;") && svg.contains("prefix"));
        assert!(svg.contains("Variants &quot;uk&quot;"));
        for label in [">0.50<", ">0.90<", ">1.00<", ">0.13<"] {
            assert!(svg.contains(label), "{label}");
        }
        // One None and one entry past the end of the shorter series.
        assert_eq!(svg.matches(">n/a<").count(), 2);
        // Rates: the axis tops out at 1.
        assert!(svg.contains(">1.0<") && !svg.contains(">1.2<"));
    }

    #[test]
    fn bar_chart_axis_follows_values_above_one() {
        let groups = names(&["latency ms", "rate"]);
        let series = vec![
            ("a".to_owned(), vec![Some(230.0), Some(0.4)]),
            ("b".to_owned(), vec![Some(f64::NAN), None]),
        ];
        let svg = bar_chart_svg("t", &groups, &series, "value");
        assert_well_formed(&svg);
        assert!(svg.contains(">230.00<") && svg.contains(">250<"));
        assert_eq!(svg.matches(">n/a<").count(), 2);
    }

    #[test]
    fn bar_chart_without_groups_or_series_says_no_data() {
        for (groups, series) in [(vec![], vec![("a".to_owned(), vec![Some(1.0)])]), (names(&["g"]), vec![])] {
            let svg = bar_chart_svg("t", &groups, &series, "y");
            assert_well_formed(&svg);
            assert!(svg.contains("no data"));
        }
        let svg = bar_chart_svg("t", &names(&["g"]), &[("a".to_owned(), vec![None])], "y");
        assert_well_formed(&svg);
        assert!(svg.contains(">n/a<"));
    }

    #[test]
    fn bar_chart_handles_negative_values() {
        let svg = bar_chart_svg("t", &names(&["delta"]), &[("a".to_owned(), vec![Some(-0.3)])], "y");
        assert_well_formed(&svg);
        assert!(svg.contains(">-0.30<"));
        assert!(!svg.contains("height=\"-"));
    }
}
