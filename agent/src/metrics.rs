//! Prometheus text exposition (format 0.0.4): counters, gauges and histograms written
//! by hand, no client library. Values are kept by their owners (the app registry, the
//! webhook receivers); this module only measures durations into buckets and prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds, in seconds, of the duration histograms: from a 5 ms no-op fetch to a
/// 10-minute health wait.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

/// A cumulative histogram of durations.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Histogram {
    /// Observations at or under each of [`BUCKETS`] (not cumulative here; summed when
    /// printed).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// A label set, `{k="v",…}`, values escaped as the format requires.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// One metric family being written: `# HELP`, `# TYPE`, then samples.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

/// Starts a family of `kind` (`counter`, `gauge`, `histogram`).
pub fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    Family { out, name }
}

impl Family<'_> {
    /// A counter or gauge sample.
    pub fn sample(&mut self, labels_text: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = writeln!(self.out, "{}{labels_text} {value}", self.name);
        self
    }

    /// The `_bucket`, `_sum` and `_count` samples of a histogram, with `pairs` on each.
    pub fn histogram(&mut self, pairs: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let le = bound.to_string();
            let mut with_le = pairs.to_vec();
            with_le.push(("le", &le));
            let _ = writeln!(
                self.out,
                "{}_bucket{} {cumulative}",
                self.name,
                labels(&with_le)
            );
        }
        let mut with_le = pairs.to_vec();
        with_le.push(("le", "+Inf"));
        let _ = writeln!(
            self.out,
            "{}_bucket{} {}",
            self.name,
            labels(&with_le),
            h.count
        );
        let _ = writeln!(self.out, "{}_sum{} {}", self.name, labels(pairs), h.sum);
        let _ = writeln!(self.out, "{}_count{} {}", self.name, labels(pairs), h.count);
        self
    }
}

/// Counters keyed by a label value (e.g. syncs by result).
pub type ByLabel = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_hours(1));
        let mut out = String::new();
        family(&mut out, "x_seconds", "histogram", "X.").histogram(&[("app", "a")], &h);
        assert!(
            out.contains("x_seconds_bucket{app=\"a\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{app=\"a\",le=\"0.5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{app=\"a\",le=\"600\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{app=\"a\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{app=\"a\"} 3\n"), "{out}");
        assert!(out.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\n")]), "{a=\"x\\\"y\\\\z\\n\"}");
        assert_eq!(labels(&[]), "");
    }
}
