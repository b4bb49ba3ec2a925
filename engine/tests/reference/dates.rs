//! ehrQL's calendar arithmetic, written from its definition (`ehrql/utils/date_utils.py`):
//! adding months or years keeps the day of the month, and a day the target month lacks
//! rolls forward to the 1st of the next month; differences count whole units as an age does.

use chrono::{Datelike, NaiveDate};

pub fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    date.checked_add_signed(chrono::Duration::try_days(days)?)
}

pub fn add_months(date: NaiveDate, months: i64) -> Option<NaiveDate> {
    let zero_based = date.year() as i64 * 12 + date.month0() as i64 + months;
    let (year, month) = (i32::try_from(zero_based.div_euclid(12)).ok()?, zero_based.rem_euclid(12) as u32 + 1);
    // December has 31 days, so a missing day never needs to roll into the next year.
    NaiveDate::from_ymd_opt(year, month, date.day()).or_else(|| NaiveDate::from_ymd_opt(year, month + 1, 1))
}

pub fn add_years(date: NaiveDate, years: i64) -> Option<NaiveDate> {
    let year = i32::try_from(date.year() as i64 + years).ok()?;
    // Only 29 February can be missing: it becomes 1 March.
    NaiveDate::from_ymd_opt(year, date.month(), date.day()).or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
}

pub fn difference_in_days(end: NaiveDate, start: NaiveDate) -> i64 {
    (end - start).num_days()
}

pub fn difference_in_months(end: NaiveDate, start: NaiveDate) -> i64 {
    let months = (end.year() - start.year()) as i64 * 12 + end.month() as i64 - start.month() as i64;
    if end.day() < start.day() { months - 1 } else { months }
}

pub fn difference_in_years(end: NaiveDate, start: NaiveDate) -> i64 {
    let years = (end.year() - start.year()) as i64;
    if (end.month(), end.day()) < (start.month(), start.day()) { years - 1 } else { years }
}

pub fn first_of_year(date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap()
}

pub fn first_of_month(date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn month_ends_roll_forward() {
        assert_eq!(add_months(d("2021-01-31"), 1), Some(d("2021-03-01")));
        assert_eq!(add_months(d("2020-01-31"), 1), Some(d("2020-03-01")));
        assert_eq!(add_months(d("2020-03-31"), -1), Some(d("2020-03-01")));
        assert_eq!(add_months(d("2020-12-15"), 1), Some(d("2021-01-15")));
        assert_eq!(add_months(d("2020-01-15"), -13), Some(d("2018-12-15")));
        assert_eq!(add_years(d("2020-02-29"), 1), Some(d("2021-03-01")));
        assert_eq!(add_years(d("2020-02-29"), 4), Some(d("2024-02-29")));
    }

    #[test]
    fn differences_count_whole_units() {
        assert_eq!(difference_in_months(d("2020-03-30"), d("2020-01-31")), 1);
        assert_eq!(difference_in_months(d("2020-01-31"), d("2020-03-30")), -2);
        assert_eq!(difference_in_years(d("2021-02-28"), d("2020-02-29")), 0);
        assert_eq!(difference_in_years(d("2020-02-28"), d("2021-02-28")), -1);
    }
}
