//! Cron schedules for `etl watch --cron`: the five fields of a crontab line — minute, hour,
//! day of month, month, day of week — read as Vixie cron reads them, in UTC, and the next
//! time such a schedule fires.
//!
//! Each field is `*`, a number, a range `a-b`, any of these with a step (`*/15`, `1-30/2`,
//! `5/10` meaning `5-<max>/10`), or a comma list of them. Months may be named `JAN`…`DEC` and
//! days of week `SUN`…`SAT` (any case, also in ranges: `MON-FRI`); day of week 0 and 7 are
//! both Sunday. As in Vixie cron, when both day fields are restricted (neither starts with
//! `*`) a day matches if EITHER does (`0 0 1 * MON`: the 1st and every Monday); otherwise
//! both must. `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and
//! `@hourly` stand for their usual lines. A schedule that can never fire (`0 0 30 2 *`) is
//! refused when it is read.

use crate::civil::{civil_from_days, days_from_civil};

/// A parsed five-field schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Bit n set: minute n (0–59) fires.
    minutes: u64,
    /// Bit n: hour n (0–23).
    hours: u32,
    /// Bit n: day of month n (1–31).
    days: u32,
    /// Bit n: month n (1–12).
    months: u16,
    /// Bit n: day of week n (0 = Sunday … 6).
    weekdays: u8,
    /// Whether the day-of-month field started with `*` (then the day fields combine with AND).
    days_star: bool,
    weekdays_star: bool,
    /// The schedule as written, for messages.
    text: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field's rules: its name for messages, its bounds and its value names (numbered from
/// `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    // 7 is Sunday too; folded onto 0 below.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
    },
];

impl Field {
    fn value(&self, text: &str) -> Result<u32, String> {
        if let Some(index) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            // Month names count from 1 (min), weekday names from 0 (min).
            return Ok(self.min + index as u32);
        }
        let value: u32 = text.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or a name ({}…)", self.names[..3].join(", "))
            };
            format!("`{text}` in the {} field is not a number{names}", self.name)
        })?;
        if value < self.min || value > self.max {
            return Err(format!(
                "{value} is out of range for the {} field ({}-{})",
                self.name, self.min, self.max
            ));
        }
        Ok(value)
    }

    /// The values a field's text selects, as a bit set.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(format!("an empty item in the {} field `{text}`", self.name));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!(
                            "step `{step}` in the {} field is not a number above 0",
                            self.name
                        )
                    })?;
                    (range, Some(step))
                }
                None => (item, None),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                let (low, high) = (self.value(low)?, self.value(high)?);
                if low > high {
                    return Err(format!(
                        "range `{range}` in the {} field runs backwards",
                        self.name
                    ));
                }
                (low, high)
            } else {
                let low = self.value(range)?;
                // `5/10` is `5-<max>/10`; a lone value is itself.
                (low, if step.is_some() { self.max } else { low })
            };
            let step = step.unwrap_or(1);
            let mut value = Some(low);
            while let Some(current) = value.filter(|v| *v <= high) {
                bits |= 1 << current;
                // A huge step ends the range instead of overflowing.
                value = current.checked_add(step);
            }
        }
        Ok(bits)
    }
}

/// Days in a month of a year.
fn month_length(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// How far ahead a schedule is searched: a Feb 29 can be 8 years away (2096 → 2104).
const SEARCH_YEARS: i64 = 9;

impl Schedule {
    /// Reads a schedule: five fields separated by spaces, or an `@` shorthand.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!(
                "`{trimmed}` is not a cron shorthand (@hourly, @daily, @weekly, @monthly, @yearly)"
            ))
            }
            _ => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "`{trimmed}` has {} field{}; a cron schedule has 5: minute hour day-of-month month day-of-week, e.g. `*/5 * * * *`",
                parts.len(),
                if parts.len() == 1 { "" } else { "s" }
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (field, part)) in FIELDS.iter().zip(&parts).enumerate() {
            bits[i] = field.parse(part)?;
        }
        // Sunday is 0 and 7.
        let weekdays = (bits[4] | (bits[4] >> 7)) & 0x7f;
        let schedule = Schedule {
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            days_star: parts[2].starts_with('*'),
            weekdays_star: parts[4].starts_with('*'),
            text: trimmed.to_string(),
        };
        if schedule.never_fires() {
            return Err(format!(
                "`{trimmed}` never fires: none of its days of month exists in its months"
            ));
        }
        Ok(schedule)
    }

    /// True when only the day of month selects days and no selected month has one of them.
    fn never_fires(&self) -> bool {
        if self.days_star || !self.weekdays_star {
            return false;
        }
        !(1..=12u32).any(|month| {
            self.months & (1 << month) != 0
                && (1..=month_length(2000, month)).any(|day| self.days & (1 << day) != 0)
        })
    }

    /// Whether the schedule fires on this day of its month (by the Vixie day rule).
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let by_date = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        if self.days_star || self.weekdays_star {
            by_date && by_weekday
        } else {
            by_date || by_weekday
        }
    }

    /// The first time after `after` (milliseconds since the epoch, UTC) at which the schedule
    /// fires: always on a whole minute, strictly later than `after`. `None` only for a
    /// schedule with no such time in the next years, which `parse` refuses.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = after.div_euclid(MINUTE) * MINUTE + MINUTE;
        let first_day = start.div_euclid(DAY);
        let (first_year, _, _) = civil_from_days(first_day);
        let last_day = days_from_civil(first_year + SEARCH_YEARS, 1, 1);
        let mut day = first_day;
        while day < last_day {
            let (year, month, date) = civil_from_days(day);
            if self.months & (1 << month) == 0 {
                // On to the first of the next month.
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                day = days_from_civil(y, m, 1);
                continue;
            }
            // 1970-01-01 was a Thursday.
            let weekday = (day + 4).rem_euclid(7) as u32;
            if self.day_matches(date, weekday) {
                // The first minute of this day at or after `start`.
                let from = if day == first_day {
                    (start - day * DAY) / MINUTE
                } else {
                    0
                };
                for minute_of_day in from..1440 {
                    let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
                    if self.hours & (1 << hour) != 0 && self.minutes & (1 << minute) != 0 {
                        return Some(day * DAY + minute_of_day * MINUTE);
                    }
                }
            }
            day += 1;
        }
        None
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Schedule, String> {
        Schedule::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * DAY + (hour * 60 + minute) * MINUTE
    }

    fn next(schedule: &str, after: i64) -> i64 {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(after)
            .unwrap()
    }

    #[test]
    fn steps_and_lists_pick_the_next_minute() {
        let now = at(2026, 11, 28, 14, 21) + 5_000;
        assert_eq!(next("*/5 * * * *", now), at(2026, 11, 28, 14, 25));
        assert_eq!(next("* * * * *", now), at(2026, 11, 28, 14, 22));
        // Strictly after: a time on the schedule gives the next one.
        assert_eq!(
            next("*/5 * * * *", at(2026, 11, 28, 14, 25)),
            at(2026, 11, 28, 14, 30)
        );
        assert_eq!(next("0,30 9-17 * * *", now), at(2026, 11, 28, 14, 30));
        assert_eq!(next("15 10/6 * * *", now), at(2026, 11, 28, 16, 15));
        assert_eq!(next("0 0 * * *", now), at(2026, 11, 29, 0, 0));
        assert_eq!(next("@hourly", now), at(2026, 11, 28, 15, 0));
    }

    #[test]
    fn month_ends_and_year_ends_roll_over() {
        // The 31st skips months without one.
        assert_eq!(
            next("0 12 31 * *", at(2026, 3, 31, 13, 0)),
            at(2026, 5, 31, 12, 0)
        );
        assert_eq!(
            next("59 23 31 12 *", at(2026, 12, 31, 23, 59)),
            at(2027, 12, 31, 23, 59)
        );
        assert_eq!(
            next("0 0 1 JAN *", at(2026, 6, 1, 0, 0)),
            at(2027, 1, 1, 0, 0)
        );
        assert_eq!(
            next("@monthly", at(2026, 2, 28, 10, 0)),
            at(2026, 3, 1, 0, 0)
        );
    }

    #[test]
    fn february_29_waits_for_a_leap_year() {
        assert_eq!(
            next("0 0 29 2 *", at(2026, 1, 1, 0, 0)),
            at(2028, 2, 29, 0, 0)
        );
        // 2100 is not a leap year: from 2096 the next Feb 29 is in 2104.
        assert_eq!(
            next("0 0 29 2 *", at(2096, 3, 1, 0, 0)),
            at(2104, 2, 29, 0, 0)
        );
    }

    #[test]
    fn restricted_day_fields_combine_with_or_like_vixie_cron() {
        // 2026-11-28 is a Saturday. The 1st OR any Monday: Monday the 30th comes first.
        let saturday = at(2026, 11, 28, 12, 0);
        assert_eq!(next("0 0 1 * MON", saturday), at(2026, 11, 30, 0, 0));
        // A star in one day field: the other alone decides (AND with "every day").
        assert_eq!(next("0 0 * * MON", saturday), at(2026, 11, 30, 0, 0));
        assert_eq!(next("0 0 1 * *", saturday), at(2026, 12, 1, 0, 0));
        // `*/2` starts with a star, so it combines with AND: odd days that are Fridays.
        // 2026-12-11 is a Friday on an odd day; Friday 2026-12-04 is even.
        assert_eq!(next("0 0 */2 * FRI", saturday), at(2026, 12, 11, 0, 0));
        // Both restricted: the 13th OR a Friday — Friday 2026-12-04 first.
        assert_eq!(next("0 0 13 * FRI", saturday), at(2026, 12, 4, 0, 0));
    }

    #[test]
    fn names_ranges_and_sunday_as_7() {
        let saturday = at(2026, 11, 28, 12, 0);
        assert_eq!(next("30 8 * * mon-fri", saturday), at(2026, 11, 30, 8, 30));
        assert_eq!(next("0 9 * * 7", saturday), at(2026, 11, 29, 9, 0));
        assert_eq!(next("0 9 * * SUN", saturday), at(2026, 11, 29, 9, 0));
        assert_eq!(next("0 0 1 jun-aug/2 *", saturday), at(2027, 6, 1, 0, 0));
        assert_eq!(
            next("0 0 1 jun-aug/2 *", at(2027, 6, 2, 0, 0)),
            at(2027, 8, 1, 0, 0)
        );
    }

    /// Whether the schedule fires at this minute, read field by field (the oracle the search
    /// is checked against).
    fn fires_at(schedule: &Schedule, millis: i64) -> bool {
        let day = millis.div_euclid(DAY);
        let minute_of_day = (millis - day * DAY) / MINUTE;
        let (_, month, date) = civil_from_days(day);
        let weekday = (day + 4).rem_euclid(7) as u32;
        schedule.minutes & (1 << (minute_of_day % 60)) != 0
            && schedule.hours & (1 << (minute_of_day / 60)) != 0
            && schedule.months & (1 << month) != 0
            && schedule.day_matches(date, weekday)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 512,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any text is a schedule or a message, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(
            fields in proptest::collection::vec("[0-9*/,A-Za-z-]{1,8}|\\PC{0,6}", 0..7),
        ) {
            let _ = Schedule::parse(&fields.join(" "));
        }

        /// The next time of a schedule is after the given time, on a whole minute, on the
        /// schedule, and no minute between the two is (checked minute by minute over up to
        /// three days).
        #[test]
        fn the_next_time_is_the_first_on_the_schedule(
            fields in proptest::collection::vec(
                "\\*|\\*/[1-9]|[0-9]{1,2}|[0-9]-[0-9]{1,2}|[0-9],[1-3][0-9]|[1-9]/[1-9]|MON-FRI|SUN|JAN,JUN",
                5,
            ),
            after in 0i64..4_102_444_800_000,
        ) {
            let Ok(schedule) = Schedule::parse(&fields.join(" ")) else {
                return Ok(());
            };
            let next = schedule.next_after(after).expect("a schedule that fires");
            proptest::prop_assert!(next > after && next % MINUTE == 0);
            proptest::prop_assert!(fires_at(&schedule, next), "{} at {next}", schedule);
            if next - after <= 3 * DAY {
                let mut minute = after.div_euclid(MINUTE) * MINUTE + MINUTE;
                while minute < next {
                    proptest::prop_assert!(!fires_at(&schedule, minute), "{} fires at {minute}", schedule);
                    minute += MINUTE;
                }
            }
        }
    }

    #[test]
    fn a_huge_step_ends_the_range() {
        assert_eq!(
            Schedule::parse("59/4294967295 * * * *")
                .unwrap()
                .next_after(at(2026, 1, 1, 0, 30)),
            Some(at(2026, 1, 1, 0, 59))
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let error = |text: &str| Schedule::parse(text).unwrap_err();
        assert!(error("*/5 * * *").contains("has 4 fields"));
        assert!(error("60 * * * *").contains("out of range for the minute field (0-59)"));
        assert!(error("* 24 * * *").contains("hour"));
        assert!(error("* * 0 * *").contains("day of month"));
        assert!(error("* * * 13 *").contains("month"));
        assert!(error("* * * * 8").contains("day of week"));
        assert!(error("* * * FOO *").contains("not a number or a name"));
        assert!(error("*/0 * * * *").contains("above 0"));
        assert!(error("5-1 * * * *").contains("backwards"));
        assert!(error("1,,2 * * * *").contains("empty item"));
        assert!(error("0 0 30 2 *").contains("never fires"));
        assert!(error("0 0 31 4,6 *").contains("never fires"));
        assert!(error("@fortnightly").contains("shorthand"));
        // With a day of week as well, the OR rule lets it fire.
        assert!(Schedule::parse("0 0 30 2 MON").is_ok());
        assert_eq!(Schedule::parse(" @daily ").unwrap().to_string(), "@daily");
    }
}
