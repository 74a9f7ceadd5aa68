//! Times for people: UTC seconds from the store shown in the lab's time zone.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The lab's time zone: an IANA name from the settings, else the system's.
pub fn zone(name: Option<&str>) -> TimeZone {
    name.and_then(|n| TimeZone::get(n).ok())
        .unwrap_or_else(TimeZone::system)
}

/// `2026-11-22 14:03`.
pub fn datetime(tz: &TimeZone, ts: i64) -> String {
    match Timestamp::from_second(ts) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => "?".into(),
    }
}

/// `14:03`.
pub fn clock(tz: &TimeZone, ts: i64) -> String {
    match Timestamp::from_second(ts) {
        Ok(t) => t.to_zoned(tz.clone()).strftime("%H:%M").to_string(),
        Err(_) => "?".into(),
    }
}

/// `2 h 05 min`, `12 min`, `40 s`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// Unix seconds of the last local midnight and of the start of the week (Monday).
pub fn day_and_week_start(tz: &TimeZone, now: i64) -> (i64, i64) {
    let Ok(t) = Timestamp::from_second(now) else {
        return (now, now);
    };
    let z = t.to_zoned(tz.clone());
    let day = z
        .start_of_day()
        .map(|d| d.timestamp().as_second())
        .unwrap_or(now);
    let back = z.weekday().to_monday_zero_offset() as i64;
    let week = day - back * 86_400;
    (day, week)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_the_lab_zone() {
        let rome = zone(Some("Europe/Rome"));
        // 2026-11-22 13:03:00 UTC is 14:03 in Rome (CET).
        assert_eq!(datetime(&rome, 1_795_352_580), "2026-11-22 14:03");
        assert_eq!(clock(&rome, 1_795_352_580), "14:03");
        assert_eq!(duration(7_500), "2 h 05 min");
        assert_eq!(duration(59), "59 s");
        let (day, week) = day_and_week_start(&rome, 1_795_352_580);
        assert_eq!(datetime(&rome, day), "2026-11-22 00:00");
        assert_eq!(datetime(&rome, week), "2026-11-16 00:00"); // Monday
    }
}
