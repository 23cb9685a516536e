//! Resource quantities (`1Gi`, `500M`, `1.5e3`) as the API server reads them, enough to
//! compare two storage requests.

/// The value of a quantity in base units, `None` when it is not one.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let number_end = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && matches!(c, '+' | '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(number_end);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024_f64,
        "Mi" => 1024_f64.powi(2),
        "Gi" => 1024_f64.powi(3),
        "Ti" => 1024_f64.powi(4),
        "Pi" => 1024_f64.powi(5),
        "Ei" => 1024_f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let digits = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            10_f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * scale)
}

/// The quantity at `value` (a JSON string, or a number as some clients send).
pub fn of(value: Option<&serde_json::Value>) -> Option<f64> {
    match value? {
        serde_json::Value::String(s) => parse(s),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_binary_decimal_and_exponent_suffixes() {
        assert_eq!(parse("1Gi"), Some(1_073_741_824.0));
        assert_eq!(parse("1.5Gi"), Some(1_610_612_736.0));
        assert_eq!(parse("500M"), Some(5e8));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1E"), Some(1e18));
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("1073741824"), parse("1Gi"));
        assert!(parse("2Gi") > parse("1Gi"));
        assert!(parse("1G") < parse("1Gi"));
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for text in ["", "Gi", "1GB", "1 Gi", "one"] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
