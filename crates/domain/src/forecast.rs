//! What is coming: workspaces and bytes expiring per day, and the trash by age. Both are counts
//! over plain data the CLI gathers; nothing here decides an action.

use serde::Serialize;

const DAY: i64 = 86_400;

/// One workspace as the forecast sees it: when it expires (none: it does not) and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiring {
    pub expires_at: Option<i64>,
    pub held: bool,
    pub bytes: u64,
}

/// The workspaces whose expiry falls on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayForecast {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub workspaces: usize,
    pub bytes: u64,
}

/// Expiries per day from today (UTC) for `days` days, plus the ones already past their expiry
/// that DynamoDB has not yet deleted (TTL deletes within a few days, not at the second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    pub overdue: DayForecast,
    pub days: Vec<DayForecast>,
    /// Held workspaces never expire while held; counted so the chart does not hide them.
    pub held: usize,
}

fn day_start(epoch: i64) -> i64 {
    epoch.div_euclid(DAY) * DAY
}

fn day_label(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| epoch.to_string())
}

/// Counts `workspaces` into the day their expiry falls on, today (UTC) included.
pub fn expiring_by_day(workspaces: &[Expiring], now: i64, days: usize) -> Forecast {
    let today = day_start(now);
    let mut forecast = Forecast {
        overdue: DayForecast {
            day: "overdue".into(),
            workspaces: 0,
            bytes: 0,
        },
        days: (0..days as i64)
            .map(|d| DayForecast {
                day: day_label(today + d * DAY),
                workspaces: 0,
                bytes: 0,
            })
            .collect(),
        held: 0,
    };
    for w in workspaces {
        if w.held {
            forecast.held += 1;
            continue;
        }
        let Some(at) = w.expires_at else { continue };
        let slot = if at <= now {
            Some(&mut forecast.overdue)
        } else {
            usize::try_from((at - today) / DAY)
                .ok()
                .and_then(|d| forecast.days.get_mut(d))
        };
        if let Some(slot) = slot {
            slot.workspaces += 1;
            slot.bytes += w.bytes;
        }
    }
    forecast
}

/// The trash entries whose age falls in `[from_days, to_days)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgeBand {
    pub label: String,
    pub from_days: u32,
    /// `None`: no upper bound.
    pub to_days: Option<u32>,
    pub entries: usize,
    pub bytes: u64,
    /// Older than the grace: the next sweep purges these.
    pub purge_due: bool,
}

/// One trash entry: when it was deleted (none: a name that is not a trash entry's) and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrashAge {
    pub deleted_at: Option<i64>,
    pub bytes: u64,
}

/// The trash by age in days, in bands split at the grace so "due for purge" is a band of its
/// own; entries with names the sweeper does not parse are counted apart.
pub fn trash_by_age(entries: &[TrashAge], now: i64, grace_days: u32) -> (Vec<AgeBand>, AgeBand) {
    let mut edges: Vec<u32> = [0, 1, 3, 7, 14, 30]
        .into_iter()
        .chain(std::iter::once(grace_days))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut bands: Vec<AgeBand> = edges
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let to = edges.get(i + 1).copied();
            AgeBand {
                label: match to {
                    Some(to) => format!("{from}-{to} d"),
                    None => format!(">= {from} d"),
                },
                from_days: from,
                to_days: to,
                entries: 0,
                bytes: 0,
                purge_due: from >= grace_days,
            }
        })
        .collect();
    let mut unknown = AgeBand {
        label: "not a trash entry's name".into(),
        from_days: 0,
        to_days: None,
        entries: 0,
        bytes: 0,
        purge_due: false,
    };
    for e in entries {
        let band = match e.deleted_at {
            Some(at) => {
                // A deletion time in the future (a clock skew) is age 0, never "due".
                let age_days = u32::try_from((now - at).max(0) / DAY).unwrap_or(u32::MAX);
                bands.iter_mut().rev().find(|b| b.from_days <= age_days)
            }
            None => Some(&mut unknown),
        };
        if let Some(band) = band {
            band.entries += 1;
            band.bytes += e.bytes;
        }
    }
    (bands, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_764_374_400 + 13 * 3_600; // 2025-11-29 13:00 UTC

    fn ws(expires_at: Option<i64>, bytes: u64) -> Expiring {
        Expiring {
            expires_at,
            held: false,
            bytes,
        }
    }

    #[test]
    fn expiries_land_on_their_utc_day() {
        let today = day_start(NOW);
        let f = expiring_by_day(
            &[
                ws(Some(NOW - 10), 1),          // overdue
                ws(Some(NOW + 60), 2),          // later today
                ws(Some(today + DAY - 1), 4),   // last second of today
                ws(Some(today + DAY), 8),       // tomorrow
                ws(Some(today + 29 * DAY), 16), // the 30th day
                ws(Some(today + 30 * DAY), 32), // beyond the window
                ws(None, 64),                   // never expires
                Expiring {
                    expires_at: Some(NOW + 60),
                    held: true,
                    bytes: 128,
                },
            ],
            NOW,
            30,
        );
        assert_eq!(f.days.len(), 30);
        assert_eq!(f.days[0].day, "2025-11-29");
        assert_eq!((f.overdue.workspaces, f.overdue.bytes), (1, 1));
        assert_eq!((f.days[0].workspaces, f.days[0].bytes), (2, 6));
        assert_eq!((f.days[1].workspaces, f.days[1].bytes), (1, 8));
        assert_eq!((f.days[29].workspaces, f.days[29].bytes), (1, 16));
        assert_eq!(f.held, 1);
    }

    #[test]
    fn trash_bands_split_at_the_grace() {
        let e = |age_days: i64, bytes| TrashAge {
            deleted_at: Some(NOW - age_days * DAY - 5),
            bytes,
        };
        let (bands, unknown) = trash_by_age(
            &[
                e(0, 1),
                e(4, 2),
                e(5, 4),
                e(40, 8),
                TrashAge {
                    deleted_at: Some(NOW + DAY),
                    bytes: 16,
                },
                TrashAge {
                    deleted_at: None,
                    bytes: 32,
                },
            ],
            NOW,
            5,
        );
        let labels: Vec<_> = bands.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            ["0-1 d", "1-3 d", "3-5 d", "5-7 d", "7-14 d", "14-30 d", ">= 30 d"]
        );
        let count = |label: &str| {
            let b = bands.iter().find(|b| b.label == label).unwrap();
            (b.entries, b.bytes, b.purge_due)
        };
        assert_eq!(
            count("0-1 d"),
            (2, 17, false),
            "the future-dated entry is age 0"
        );
        assert_eq!(count("3-5 d"), (1, 2, false));
        assert_eq!(count("5-7 d"), (1, 4, true));
        assert_eq!(count(">= 30 d"), (1, 8, true));
        assert_eq!((unknown.entries, unknown.bytes), (1, 32));
    }

    proptest! {
        /// Every workspace is counted once: in a day, overdue, held, or (past the window or
        /// without expiry) not at all; the bands hold every trash entry exactly once.
        #[test]
        fn nothing_is_counted_twice_or_lost(
            offsets in proptest::collection::vec((proptest::option::of(-40 * DAY..40 * DAY), any::<bool>(), 0u64..1_000), 0..60),
            ages in proptest::collection::vec(proptest::option::of(-DAY..400 * DAY), 0..60),
            grace in 0u32..60,
        ) {
            let list: Vec<Expiring> = offsets.iter().map(|&(o, held, bytes)| Expiring { expires_at: o.map(|o| NOW + o), held, bytes }).collect();
            let f = expiring_by_day(&list, NOW, 30);
            let end = day_start(NOW) + 30 * DAY;
            let inside = list.iter().filter(|w| !w.held && w.expires_at.is_some_and(|e| e < end)).count();
            let counted: usize = f.days.iter().map(|d| d.workspaces).sum::<usize>() + f.overdue.workspaces;
            prop_assert_eq!(counted, inside);
            prop_assert_eq!(f.held, list.iter().filter(|w| w.held).count());

            let trash: Vec<TrashAge> = ages.iter().map(|&a| TrashAge { deleted_at: a.map(|a| NOW - a), bytes: 1 }).collect();
            let (bands, unknown) = trash_by_age(&trash, NOW, grace);
            prop_assert_eq!(bands.iter().map(|b| b.entries).sum::<usize>() + unknown.entries, trash.len());
            for b in &bands {
                prop_assert_eq!(b.purge_due, b.from_days >= grace);
            }
        }
    }
}
