//! Reading one page ahead: a paged read (an iterator whose every `next` is an API call) runs on
//! a helper thread that fetches the next page while the caller works on the one in hand, so
//! the wait for a page overlaps the staging of the one before instead of adding to it. The
//! hand-over is a rendezvous: the helper holds at most one fetched page until the caller takes
//! it, so at most two pages are in memory, whatever the read's size. Pages come out once each,
//! in order; an error page is handed over like any other (the readers end after one), and when
//! the caller stops early the helper stops after the fetch in hand. Both connectors use it; it
//! knows nothing of either.
//!
//! A read whose pages are numbered and counted in advance can also have several fetched at once
//! ([`each_numbered`]): workers take the next page number, at most `in_flight` pages past the
//! one the caller is on, and the caller gets them in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

/// Hands every item of `pages` to `consume`, in order, while the next one is being fetched on
/// a helper thread. Stops at the first error `consume` returns (that error is returned).
pub fn each_ahead<I, E>(
    pages: I,
    mut consume: impl FnMut(I::Item) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator + Send,
    I::Item: Send,
{
    // The helper logs under the caller's span (run, pipeline, stage), as the caller would.
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        // Capacity 0: a fetched page waits in the helper until the caller asks for it, so the
        // helper is never more than one page ahead.
        let (sender, receiver) = mpsc::sync_channel::<I::Item>(0);
        scope.spawn(move || {
            let _in_span = span.enter();
            for page in pages {
                // The caller stopped listening: fetch nothing more.
                if sender.send(page).is_err() {
                    break;
                }
            }
        });
        // `receiver` is dropped on any return from here, before the scope waits for the
        // helper: a helper waiting to hand over a page then gets an error and stops.
        for page in receiver.iter() {
            consume(page)?;
        }
        Ok(())
    })
}

/// Hands `fetch(n)` for every page number `n` in `numbers` to `consume`, in order, with up to
/// `in_flight` pages fetched at once on helper threads, none more than `in_flight` pages past
/// the one being consumed. Stops at the first error `consume` returns (that error is returned);
/// pages being fetched then are dropped.
pub fn each_numbered<T, E>(
    numbers: std::ops::RangeInclusive<u32>,
    in_flight: usize,
    fetch: impl Fn(u32) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
{
    let (first, last) = (*numbers.start(), *numbers.end());
    if first > last {
        return Ok(());
    }
    let in_flight = in_flight.max(1) as u32;
    let next = AtomicU32::new(first);
    let stop = AtomicBool::new(false);
    // The page the caller waits for: a worker takes a number only within `in_flight` of it.
    let wanted = (Mutex::new(first), Condvar::new());
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<(u32, T)>();
        for _ in 0..in_flight.min(last - first + 1) {
            let (sender, span) = (sender.clone(), span.clone());
            let (next, stop, wanted, fetch) = (&next, &stop, &wanted, &fetch);
            scope.spawn(move || {
                let _in_span = span.enter();
                loop {
                    let number = next.fetch_add(1, Ordering::SeqCst);
                    if number > last {
                        return;
                    }
                    let (lock, turn) = wanted;
                    let mut at = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    while number >= *at + in_flight && !stop.load(Ordering::SeqCst) {
                        at = turn
                            .wait(at)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    drop(at);
                    if stop.load(Ordering::SeqCst) || sender.send((number, fetch(number))).is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let halt = || {
            stop.store(true, Ordering::SeqCst);
            wanted.1.notify_all();
        };
        let mut waiting: BTreeMap<u32, T> = BTreeMap::new();
        let mut expected = first;
        for (number, page) in receiver.iter() {
            waiting.insert(number, page);
            while let Some(page) = waiting.remove(&expected) {
                if let Err(error) = consume(page) {
                    halt();
                    return Err(error);
                }
                expected += 1;
                let (lock, turn) = &wanted;
                *lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = expected;
                turn.notify_all();
            }
        }
        halt();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Pages 0..count, each fetched after `delay`, counting the fetches made.
    fn pages(
        count: usize,
        delay: Duration,
        fetched: &AtomicUsize,
    ) -> impl Iterator<Item = Result<usize, String>> + Send + '_ {
        (0..count).map(move |page| {
            std::thread::sleep(delay);
            fetched.fetch_add(1, Ordering::SeqCst);
            Ok(page)
        })
    }

    #[test]
    fn every_page_once_in_order_never_more_than_one_ahead() {
        let fetched = AtomicUsize::new(0);
        let mut seen = Vec::new();
        each_ahead(pages(20, Duration::ZERO, &fetched), |page| {
            let page = page?;
            // Give the helper time to run as far ahead as it can.
            std::thread::sleep(Duration::from_millis(2));
            // This page and at most the next one have been fetched.
            let ahead = fetched.load(Ordering::SeqCst);
            assert!(
                ahead <= page + 2,
                "{ahead} pages fetched while on page {page}"
            );
            seen.push(page);
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(fetched.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn the_wait_for_a_page_overlaps_the_work_on_the_one_before() {
        let fetched = AtomicUsize::new(0);
        let started = Instant::now();
        each_ahead(pages(6, Duration::from_millis(40), &fetched), |page| {
            page?;
            std::thread::sleep(Duration::from_millis(40));
            Ok::<(), String>(())
        })
        .unwrap();
        // One after the other: 6 × (40 + 40) ms = 480 ms; overlapped: 7 × 40 ms = 280 ms.
        let took = started.elapsed();
        assert!(took < Duration::from_millis(420), "took {took:?}");
    }

    #[test]
    fn a_page_that_failed_is_handed_over_in_its_place_with_its_message() {
        let read = vec![
            Ok(1),
            Ok(2),
            Err("INVALID_QUERY_LOCATOR: the locator expired".to_string()),
        ];
        let mut seen = Vec::new();
        let ended = each_ahead(read.into_iter(), |page| {
            seen.push(page.clone());
            page.map(|_| ())
        });
        assert_eq!(
            ended.unwrap_err(),
            "INVALID_QUERY_LOCATOR: the locator expired"
        );
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[..2], [Ok(1), Ok(2)]);
    }

    #[test]
    fn a_caller_that_stops_ends_the_read() {
        let fetched = AtomicUsize::new(0);
        let ended = each_ahead(
            pages(1000, Duration::from_millis(1), &fetched),
            |page| match page? {
                2 => Err("the staging disk is full".to_string()),
                _ => Ok(()),
            },
        );
        assert_eq!(ended.unwrap_err(), "the staging disk is full");
        // Pages 0..=2 handed over, at most one more fetched.
        let fetched = fetched.load(Ordering::SeqCst);
        assert!((3..=4).contains(&fetched), "{fetched} pages fetched");
    }

    #[test]
    fn numbered_pages_come_in_order_with_a_few_in_flight_and_no_more() {
        let fetching = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let mut seen = Vec::new();
        each_numbered(
            1..=12,
            3,
            |number| {
                let now = fetching.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later pages answer sooner: the caller must still get them in order.
                std::thread::sleep(Duration::from_millis(60 - 4 * number as u64));
                fetching.fetch_sub(1, Ordering::SeqCst);
                number
            },
            |number| {
                seen.push(number);
                Ok::<(), String>(())
            },
        )
        .unwrap();
        assert_eq!(seen, (1..=12).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=3).contains(&most), "{most} fetched at once");
    }

    #[test]
    fn numbered_pages_stop_at_the_callers_error() {
        let fetched = AtomicUsize::new(0);
        let mut seen = Vec::new();
        let ended = each_numbered(
            1..=50,
            4,
            |number| {
                fetched.fetch_add(1, Ordering::SeqCst);
                number
            },
            |number| {
                seen.push(number);
                match number {
                    3 => Err(format!("stopped at {number}")),
                    _ => Ok(()),
                }
            },
        );
        assert_eq!(ended.unwrap_err(), "stopped at 3");
        assert_eq!(seen, [1, 2, 3]);
        // No page further than `in_flight` past the one the caller stopped on.
        assert!(fetched.load(Ordering::SeqCst) <= 3 + 4, "{fetched:?}");
    }
}
