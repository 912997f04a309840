//! Byte counts as a person reads them, one way for every place that shows one: the CLI's
//! tunnel table and dump progress in binary units (`1.2 MiB`, as ssh and rsync count), the
//! desktop's dump progress in decimal units (`1.2 MB`, as file managers count).

/// `999 B`, `1.5 KiB`, `2.0 MiB`, … up to TiB.
pub fn binary(n: f64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
}

/// `999 B`, `1.2 kB`, `5.0 GB` (GB the largest).
pub fn decimal(n: f64) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB"])
}

/// Whole bytes as they are; a larger unit with one decimal.
fn scaled(n: f64, base: f64, units: &[&str]) -> String {
    let mut value = n;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(binary(0.0), "0 B");
        assert_eq!(binary(1023.0), "1023 B");
        assert_eq!(binary(1536.0), "1.5 KiB");
        assert_eq!(binary(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(binary(2.0 * 1024f64.powi(4)), "2.0 TiB");
        assert_eq!(decimal(999.0), "999 B");
        assert_eq!(decimal(1_234_567.0), "1.2 MB");
        assert_eq!(decimal(5_000_000_000_000.0), "5000.0 GB");
    }
}
