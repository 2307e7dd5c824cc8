//! The Prometheus text exposition format (version 0.0.4): what `GET /metrics` answers. Small on
//! purpose: the server exports a handful of families whose values live elsewhere (the bundle
//! registry's traffic counters, the activation state), so this only writes them out correctly —
//! label values escaped (brands are user input), histograms cumulative with `+Inf`, `_sum`, `_count`.

use std::fmt::Write as _;

/// Upper bounds (seconds) of the latency histograms: generation spans ~0.1 s (a cached short answer)
/// to over a minute (a long answer on a busy 2-core machine).
pub const LATENCY_BUCKETS_SECONDS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0];

/// A cumulative histogram over fixed bucket bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `counts[i]`: observations <= `bounds[i]` and above the previous bound (not cumulative).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// Builds one exposition document, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// `name="value"` pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines (`kind`: counter, gauge or histogram).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.line(name, labels, None, value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram.
    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, histogram: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
            cumulative += count;
            self.line(&bucket, labels, Some(&format_value(*bound)), cumulative as f64);
        }
        self.line(&bucket, labels, Some("+Inf"), histogram.count as f64);
        self.line(&format!("{name}_sum"), labels, None, histogram.sum);
        self.line(&format!("{name}_count"), labels, None, histogram.count as f64);
    }

    pub fn finish(self) -> String {
        self.text
    }

    fn line(&mut self, name: &str, labels: Labels<'_>, le: Option<&str>, value: f64) {
        self.text.push_str(name);
        let mut pairs = labels.iter().map(|(k, v)| (*k, *v)).chain(le.map(|le| ("le", le))).peekable();
        if pairs.peek().is_some() {
            self.text.push('{');
            for (i, (key, value)) in pairs.enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }
}

/// Backslash, double quote and line feed are the characters a label value must escape.
fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_label_values_are_escaped() {
        let mut latency = Histogram::new(&[0.5, 1.0]);
        for seconds in [0.25, 0.75, 0.875, 3.0] {
            latency.observe(seconds);
        }
        let mut out = Exposition::default();
        out.family("rudder_x_seconds", "histogram", "How long x took.");
        out.histogram("rudder_x_seconds", &[("brand", "a\"b\\c\nd")], &latency);
        out.family("rudder_y", "gauge", "y");
        out.sample("rudder_y", &[], 2.0);
        let text = out.finish();
        let label = r#"brand="a\"b\\c\nd""#;
        let expected = [
            "# HELP rudder_x_seconds How long x took.".to_owned(),
            "# TYPE rudder_x_seconds histogram".to_owned(),
            format!("rudder_x_seconds_bucket{{{label},le=\"0.5\"}} 1"),
            format!("rudder_x_seconds_bucket{{{label},le=\"1\"}} 3"),
            format!("rudder_x_seconds_bucket{{{label},le=\"+Inf\"}} 4"),
            format!("rudder_x_seconds_sum{{{label}}} 4.875"),
            format!("rudder_x_seconds_count{{{label}}} 4"),
            "# HELP rudder_y y".to_owned(),
            "# TYPE rudder_y gauge".to_owned(),
            "rudder_y 2".to_owned(),
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }
}
