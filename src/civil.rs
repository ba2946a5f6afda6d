//! Calendar arithmetic without a date library: days since the Unix epoch to and from civil
//! dates, and the timestamp formats Salesforce and DuckDB print.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` for a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of a `YYYY-MM-DD…` text (a date, or the date part of a datetime).
pub fn parse_date(text: &str) -> Option<i64> {
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| days_from_civil(year, month, day))
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Salesforce's datetime format: `2024-05-01T10:00:00.000+0000` (UTC, milliseconds).
pub fn salesforce_datetime(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let rem = millis.rem_euclid(86_400_000);
    let (secs, ms) = (rem / 1000, rem % 1000);
    format!(
        "{}T{:02}:{:02}:{:02}.{ms:03}+0000",
        format_date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A zone-less ISO-8601 datetime with milliseconds, `2024-05-01T10:00:00.250`: for systems
/// that read a time without a zone on the same scale as the times they hand out.
pub fn iso_datetime(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let rem = millis.rem_euclid(86_400_000);
    let (secs, ms) = (rem / 1000, rem % 1000);
    format!(
        "{}T{:02}:{:02}:{:02}.{ms:03}",
        format_date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Milliseconds since the epoch of an ISO-8601 datetime with `Z`, `±hh:mm` or `±hhmm`
/// (`2024-05-01T10:00:00.000+0000`, `2024-05-01T10:00:00Z`).
pub fn parse_datetime(text: &str) -> Option<i64> {
    let days = parse_date(text)?;
    let rest = text.get(10..)?.strip_prefix('T')?;
    let hours: i64 = rest.get(0..2)?.parse().ok()?;
    let minutes: i64 = rest.get(3..5)?.parse().ok()?;
    let seconds: i64 = rest.get(6..8)?.parse().ok()?;
    let mut tail = &rest[8..];
    let mut millis = 0;
    if let Some(fraction) = tail.strip_prefix('.') {
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().ok()?;
        tail = &fraction[digits..];
    }
    let offset_minutes = match tail {
        "" | "Z" => 0,
        _ => {
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            let digits: String = tail[1..].chars().filter(char::is_ascii_digit).collect();
            if digits.len() != 4 {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    Some(
        ((days * 86_400 + hours * 3600 + minutes * 60 + seconds) - offset_minutes * 60) * 1000
            + millis,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for days in [-1, 0, 19_723, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_date(19_723), "2024-01-01");
        let ms = parse_datetime("2024-05-01T10:00:00.250+0000").unwrap();
        assert_eq!(salesforce_datetime(ms), "2024-05-01T10:00:00.250+0000");
        assert_eq!(iso_datetime(ms), "2024-05-01T10:00:00.250");
        assert_eq!(parse_datetime(&iso_datetime(ms)), Some(ms));
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00+02:00"),
            parse_datetime("2024-05-01T10:00:00Z")
        );
    }
}
