//! The filters templates may use beyond minijinja's built-ins (`upper`, `lower`, `title`,
//! `trim`, `default`, `replace`, `split`, `join`, …): dates, truncation, HTML and number
//! formats, and a `round` that also reads numbers in text. Each gives undefined for a none or undefined value, so `default` can
//! follow; a value that cannot be read (a date that is not a date) is an error, which the
//! transform reports for that field.

use minijinja::{Environment, Error, ErrorKind, Value};

use crate::civil;

/// Adds every filter here to `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("date", date);
    env.add_filter("halo_date", halo_date);
    env.add_filter("truncate", truncate);
    env.add_filter("html_escape", html_escape);
    env.add_filter("strip_html", strip_html);
    env.add_filter("format_number", format_number);
    env.add_filter("round", round);
}

fn is_empty(value: &Value) -> bool {
    value.is_undefined() || value.is_none()
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// Milliseconds since the epoch of an ISO date (`2024-05-01`) or datetime
/// (`2024-05-01T10:00:00.000+0000`, `…Z`, `…+01:00`, or without a zone: UTC).
fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_ascii() {
        return None;
    }
    if text.len() == 10 {
        return civil::parse_date(text).map(|days| days * 86_400_000);
    }
    let text = text.replacen(' ', "T", 1);
    civil::parse_datetime(&text)
}

fn instant(value: &Value, filter: &str) -> Result<i64, Error> {
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    parse_instant(&text)
        .ok_or_else(|| invalid(format!("{filter}: `{text}` is not an ISO date or datetime")))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// Formats an instant (UTC) with a strftime subset.
fn format_instant(millis: i64, format: &str) -> Result<String, Error> {
    let days = millis.div_euclid(86_400_000);
    let rem = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil::civil_from_days(days);
    let (hour, minute, second) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60);
    let month_name = MONTHS[(month as usize + 11) % 12];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{year:04}")),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&day.to_string()),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('F') => out.push_str(&format!("{year:04}-{month:02}-{day:02}")),
            Some('T') => out.push_str(&format!("{hour:02}:{minute:02}:{second:02}")),
            Some('%') => out.push('%'),
            Some(other) => return Err(invalid(format!("date: unknown format code `%{other}`"))),
            None => return Err(invalid("date: the format ends with a lone `%`".into())),
        }
    }
    Ok(out)
}

/// `{{ "2024-05-01T10:00:00.000+0000" | date("%d/%m/%Y") }}` → `01/05/2024`. Without a format,
/// `%Y-%m-%d`. Times are converted to UTC first.
pub fn date(value: Value, format: Option<String>) -> Result<Value, Error> {
    if is_empty(&value) {
        return Ok(Value::UNDEFINED);
    }
    let millis = instant(&value, "date")?;
    format_instant(millis, format.as_deref().unwrap_or("%Y-%m-%d")).map(Value::from)
}

/// `{{ "2024-05-01T10:00:00.000+0000" | halo_date }}` → `2024-05-01T10:00:00`, the form Halo's
/// date fields take (UTC); a date alone becomes midnight.
pub fn halo_date(value: Value) -> Result<Value, Error> {
    if is_empty(&value) {
        return Ok(Value::UNDEFINED);
    }
    let millis = instant(&value, "halo_date")?;
    format_instant(millis, "%Y-%m-%dT%H:%M:%S").map(Value::from)
}

/// `{{ "A long subject" | truncate(6) }}` → `A l...`: at most `length` characters including
/// the `end` marker (default `...`).
pub fn truncate(value: Value, length: usize, end: Option<String>) -> Result<Value, Error> {
    if is_empty(&value) {
        return Ok(Value::UNDEFINED);
    }
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    if text.chars().count() <= length {
        return Ok(Value::from(text));
    }
    let end = end.unwrap_or_else(|| "...".to_string());
    let keep = length.saturating_sub(end.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    if length >= end.chars().count() {
        out.push_str(&end);
    }
    Ok(Value::from(out))
}

fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `{{ "Fish & <Chips>" | html_escape }}` → `Fish &amp; &lt;Chips&gt;`.
pub fn html_escape(value: Value) -> Value {
    if is_empty(&value) {
        return Value::UNDEFINED;
    }
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    Value::from(escape_text(&text))
}

/// `{{ "<p>Hello&nbsp;<b>there</b></p><p>Bye</p>" | strip_html }}` → `Hello there\nBye`: tags
/// removed (`<br>` and the ends of paragraphs, divs and list items become line breaks), common
/// entities decoded, surrounding whitespace trimmed.
pub fn strip_html(value: Value) -> Value {
    if is_empty(&value) {
        return Value::UNDEFINED;
    }
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let tag = after[..end].trim().to_ascii_lowercase();
                let name: String = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                let closing = tag.starts_with('/');
                if name == "br" || (closing && matches!(name.as_str(), "p" | "div" | "li" | "tr")) {
                    out.push('\n');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    Value::from(decoded.trim().to_string())
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let entity_end = after.find(';').filter(|&end| end <= 10);
        let decoded = entity_end.and_then(|end| {
            let name = &after[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `{{ 1234567.891 | format_number(2) }}` → `1234567.89`; `{{ 1234567.891 | format_number(2, ",") }}`
/// → `1,234,567.89`. Numbers in text (`"12.5"`) are read too.
pub fn format_number(
    value: Value,
    decimals: Option<usize>,
    separator: Option<String>,
) -> Result<Value, Error> {
    if is_empty(&value) {
        return Ok(Value::UNDEFINED);
    }
    let number = match value.as_str() {
        Some(text) => text.trim().parse::<f64>().ok(),
        None => f64::try_from(value.clone()).ok(),
    }
    .filter(|n| n.is_finite())
    .ok_or_else(|| invalid(format!("format_number: `{value}` is not a number")))?;
    let decimals = decimals.unwrap_or(0).min(15);
    // Halves round away from zero (12.5 → 13), as people expect, not to even.
    let factor = 10f64.powi(decimals as i32);
    let rounded = (number * factor).round() / factor;
    let number = if rounded.is_finite() { rounded } else { number };
    let text = format!("{number:.decimals$}");
    let Some(separator) = separator.filter(|s| !s.is_empty()) else {
        return Ok(Value::from(text));
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push_str(&separator);
        }
        grouped.push(c);
    }
    let mut out = format!("{sign}{grouped}");
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    Ok(Value::from(out))
}

/// `{{ 12.345 | round(1) }}` → `12.3`; `{{ 12.5 | round }}` → `13.0`. Replaces minijinja's
/// `round` so that numbers in text (`"12.5"`) are read and an empty value stays empty; halves
/// round away from zero. Whole numbers are returned unchanged.
pub fn round(value: Value, precision: Option<i32>) -> Result<Value, Error> {
    if is_empty(&value) {
        return Ok(Value::UNDEFINED);
    }
    if value.as_i64().is_some() {
        return Ok(value);
    }
    let number = match value.as_str() {
        Some(text) => text.trim().parse::<f64>().ok(),
        None => f64::try_from(value.clone()).ok(),
    }
    .filter(|n| n.is_finite())
    .ok_or_else(|| invalid(format!("round: `{value}` is not a number")))?;
    let factor = 10f64.powi(precision.unwrap_or(0).clamp(-15, 15));
    let rounded = (number * factor).round() / factor;
    Ok(Value::from(if rounded.is_finite() {
        rounded
    } else {
        number
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, value: Value) -> Result<String, Error> {
        let mut env = Environment::new();
        register(&mut env);
        env.render_str(source, minijinja::context! { value })
    }

    #[test]
    fn dates() {
        let sf = Value::from("2024-05-01T10:00:00.000+0000");
        assert_eq!(
            render("{{ value | date }}", sf.clone()).unwrap(),
            "2024-05-01"
        );
        assert_eq!(
            render("{{ value | date('%d/%m/%Y %H:%M') }}", sf.clone()).unwrap(),
            "01/05/2024 10:00"
        );
        assert_eq!(
            render("{{ value | date('%e %B %Y, %A') }}", sf.clone()).unwrap(),
            "1 May 2024, Wednesday"
        );
        assert_eq!(
            render("{{ value | date('%b %y') }}", Value::from("2024-12-31")).unwrap(),
            "Dec 24"
        );
        assert_eq!(
            render("{{ value | halo_date }}", sf).unwrap(),
            "2024-05-01T10:00:00"
        );
        assert_eq!(
            render("{{ value | halo_date }}", Value::from("2024-05-01")).unwrap(),
            "2024-05-01T00:00:00"
        );
        assert_eq!(
            render(
                "{{ value | halo_date }}",
                Value::from("2024-05-01T01:30:00+02:00")
            )
            .unwrap(),
            "2024-04-30T23:30:00"
        );
        assert_eq!(
            render("{{ value | date | default('n/a') }}", Value::from(())).unwrap(),
            "n/a"
        );
        assert_eq!(
            render("{{ value | halo_date }}", Value::UNDEFINED).unwrap(),
            ""
        );
        assert!(render("{{ value | date }}", Value::from("soon")).is_err());
        assert!(render("{{ value | date }}", Value::from("2024-05-01T10:00:00é")).is_err());
        assert!(render("{{ value | date('%Q') }}", Value::from("2024-05-01")).is_err());
    }

    #[test]
    fn text() {
        assert_eq!(
            render("{{ value | truncate(6) }}", Value::from("A long subject")).unwrap(),
            "A l..."
        );
        assert_eq!(
            render(
                "{{ value | truncate(6, '…') }}",
                Value::from("A long subject")
            )
            .unwrap(),
            "A lon…"
        );
        assert_eq!(
            render("{{ value | truncate(20) }}", Value::from("short")).unwrap(),
            "short"
        );
        assert_eq!(
            render("{{ value | truncate(1) }}", Value::from("short")).unwrap(),
            ""
        );
        assert_eq!(
            render("{{ value | html_escape }}", Value::from("Fish & <Chips>")).unwrap(),
            "Fish &amp; &lt;Chips&gt;"
        );
        assert_eq!(
            render(
                "{{ value | strip_html }}",
                Value::from("<p>Hello&nbsp;<b>there</b></p><p>Bye &amp; &#233;</p>")
            )
            .unwrap(),
            "Hello there\nBye &amp; é".replace("&amp;", "&")
        );
        assert_eq!(
            render("{{ value | strip_html }}", Value::from("a < b & c")).unwrap(),
            "a < b & c"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            render("{{ value | format_number(2) }}", Value::from(1234567.891)).unwrap(),
            "1234567.89"
        );
        assert_eq!(
            render(
                "{{ value | format_number(2, ',') }}",
                Value::from(1234567.891)
            )
            .unwrap(),
            "1,234,567.89"
        );
        assert_eq!(
            render("{{ value | format_number(0, ',') }}", Value::from(-1234)).unwrap(),
            "-1,234"
        );
        assert_eq!(
            render("{{ value | format_number }}", Value::from("12.5")).unwrap(),
            "13"
        );
        assert!(render("{{ value | format_number }}", Value::from("twelve")).is_err());
        assert_eq!(
            render("{{ value | round(1) }}", Value::from(12.345)).unwrap(),
            "12.3"
        );
        assert_eq!(
            render("{{ value | round }}", Value::from("12.5")).unwrap(),
            "13.0"
        );
        assert_eq!(render("{{ value | round }}", Value::from(7)).unwrap(), "7");
        assert_eq!(
            render("{{ value | round(2) }}", Value::UNDEFINED).unwrap(),
            ""
        );
        assert!(render("{{ value | round }}", Value::from("x")).is_err());
    }
}
