//! Human durations as written in flags and policy files: `500ms`, `30s`, `5m`, `1h`, or
//! a plain number of seconds.

use std::time::Duration;

/// Parses a duration; zero is rejected (an interval or pause of zero is a mistake).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 5m, 1h, 500ms"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m or h"
            ));
        }
    };
    if d.is_zero() {
        return Err("duration must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_mins(2)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert!(parse("0s").is_err());
        assert!(parse("soon").is_err());
        assert!(parse("3d").is_err());
    }
}
