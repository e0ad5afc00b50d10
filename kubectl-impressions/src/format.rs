//! Text as kubectl prints it: aligned columns and short ages.

use k8s_openapi::jiff::Timestamp;

/// Rows as columns separated by three spaces, each as wide as its widest cell (the last one
/// unpadded), like kubectl's tables.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The time from `then` to `now` as kubectl shows ages: `45s`, `3m20s`, `17m`, `5h10m`, `30h`,
/// `3d4h`, `120d`, `2y30d`.
pub fn age(then: Timestamp, now: Timestamp) -> String {
    let s = now.as_second() - then.as_second();
    if s < -1 {
        return "<invalid>".into();
    }
    let s = s.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    let pair = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => pair(m, "m", s % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => pair(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => pair(d, "d", h % 24, "h"),
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => pair(d / 365, "y", d % 365, "d"),
        _ => format!("{}y", d / 365),
    }
}

/// A rate or count with no decimals, `-` when unknown.
pub fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_s() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let ago = |s: i64| age(Timestamp::from_second(now.as_second() - s).unwrap(), now);
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (240, "4m"),
            (17 * 60 + 5, "17m"),
            (5 * 3600 + 600, "5h10m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (120 * 86_400, "120d"),
            (760 * 86_400, "2y30d"),
            (9 * 365 * 86_400, "9y"),
            (-30, "<invalid>"),
        ];
        for (s, want) in cases {
            assert_eq!(ago(s), want, "{s} s");
        }
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["NAME".into(), "READY".into(), "LAST".into()],
            vec!["impressions-eu".into(), "2/3".into(), "ScaleUp 1→3".into()],
            vec!["p".into(), "-".into(), "-".into()],
        ];
        assert_eq!(
            columns(&rows),
            "NAME             READY   LAST\nimpressions-eu   2/3     ScaleUp 1→3\np                -       -\n"
        );
    }
}
