//! Numbers as people read them in an editor margin: `1.2 ms`, `48 µs`,
//! `1.3k calls`, `34%`, a small text histogram, and manifest durations.

/// `350 ns`, `48.2 µs`, `1.2 ms`, `250 ms`, `2.1 s`.
pub fn duration(ns: u64) -> String {
    let (v, unit) = match ns {
        0..1_000 => return format!("{ns} ns"),
        1_000..1_000_000 => (ns as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (ns as f64 / 1e6, "ms"),
        _ => (ns as f64 / 1e9, "s"),
    };
    if v >= 100.0 { format!("{v:.0} {unit}") } else { format!("{v:.1} {unit}") }
}

/// `999`, `1.3k`, `12k`, `1.2M`.
pub fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..10_000 => format!("{:.1}k", n as f64 / 1e3),
        10_000..1_000_000 => format!("{}k", (n as f64 / 1e3).round()),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `1 call`, `2 calls`, `1.3k calls`: [`count`] with the noun agreeing.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", count(n), if n == 1 { "" } else { "s" })
}

/// `34%`, `0.4%`, `<0.1%`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 0.1 {
        format!("{p:.1}%")
    } else if p > 0.0 {
        "<0.1%".to_owned()
    } else {
        "0%".to_owned()
    }
}

/// `1.2 KiB`, `3.4 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// A duration in the manifest's units, rounded up, in the smallest unit that
/// keeps it under five digits: `"62us"`, `"14ms"`, `"3s"`.
pub fn manifest_duration(ns: u64) -> String {
    let ns = ns.max(1);
    for (unit, factor) in [("ns", 1u64), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000)] {
        let v = ns.div_ceil(factor);
        if v < 10_000 || unit == "s" {
            return format!("{v}{unit}");
        }
    }
    unreachable!("the last unit always returns")
}

/// The histogram's buckets (`[value_ns, count]`, ascending) as at most 8 rows
/// of `≤ 20.6 µs ▕████████            ▏ 3`, buckets merged on a log scale.
pub fn histogram(buckets: &[(u64, u64)]) -> String {
    if buckets.is_empty() {
        return String::new();
    }
    const ROWS: usize = 8;
    const WIDTH: u64 = 20;
    let rows: Vec<(u64, u64)> = if buckets.len() <= ROWS {
        buckets.to_vec()
    } else {
        let lo = (buckets[0].0.max(1) as f64).ln();
        let hi = (buckets[buckets.len() - 1].0.max(1) as f64).ln();
        let step = ((hi - lo) / ROWS as f64).max(f64::MIN_POSITIVE);
        let mut rows = vec![(0u64, 0u64); ROWS];
        for &(v, n) in buckets {
            let i = (((v.max(1) as f64).ln() - lo) / step) as usize;
            let row = &mut rows[i.min(ROWS - 1)];
            row.0 = row.0.max(v);
            row.1 += n;
        }
        rows.into_iter().filter(|r| r.1 > 0).collect()
    };
    let most = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let labels: Vec<String> = rows.iter().map(|r| format!("≤ {}", duration(r.0))).collect();
    let pad = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, (_, n)) in labels.iter().zip(&rows) {
        let bar = (n * WIDTH).div_ceil(most);
        out.push_str(&format!(
            "{label:<pad$} ▕{}{}▏ {n}\n",
            "█".repeat(bar as usize),
            " ".repeat((WIDTH - bar) as usize)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_nouns_agree() {
        assert_eq!(counted(1, "call"), "1 call");
        assert_eq!(counted(0, "call"), "0 calls");
        assert_eq!(counted(1300, "call"), "1.3k calls");
    }

    #[test]
    fn human_figures() {
        assert_eq!(duration(350), "350 ns");
        assert_eq!(duration(1_200_000), "1.2 ms");
        assert_eq!(duration(4_000_000), "4.0 ms");
        assert_eq!(duration(48_210), "48.2 µs");
        assert_eq!(duration(250_000_000), "250 ms");
        assert_eq!(count(1_300), "1.3k");
        assert_eq!(count(12_345), "12k");
        assert_eq!(percent(0.34), "34%");
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(manifest_duration(61_709), "62us");
        assert_eq!(manifest_duration(14_000_001), "15ms");
        assert_eq!(manifest_duration(900), "900ns");
    }

    #[test]
    fn histogram_rows_and_bars() {
        let h = histogram(&[(6_911, 1), (20_607, 2), (49_407, 1)]);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains(&"█".repeat(20)), "{h}");
        assert!(lines[0].starts_with("≤ 6.9 µs"), "{h}");
        let many: Vec<(u64, u64)> = (1..100).map(|i| (i * 1000, 1)).collect();
        assert!(histogram(&many).lines().count() <= 8);
    }
}
