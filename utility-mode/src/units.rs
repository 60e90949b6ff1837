//! Sizes as people write them: `256MiB`, `4k`.

/// `n` bytes in the largest binary unit that keeps a whole number.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// Parses a size: plain bytes, or a number with K/M/G/T (binary) and an
/// optional `iB`/`B`, e.g. `256MiB`, `4k`, `1G`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 256MiB)"))?;
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "`{text}`: a size is a whole number of its unit (1.5MiB is 1536KiB)"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("`{other}` is not a size unit (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary units with or without `iB`/`B`, any case; a fraction, an
    /// unknown unit and an overflow each said plainly.
    #[test]
    fn sizes_parse_as_people_write_them() {
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size(" 1G "), Ok(1 << 30));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("1.5MiB").unwrap_err().contains("whole number"));
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("not a size unit")
        );
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
    }
}
