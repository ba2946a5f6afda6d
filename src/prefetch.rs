//! Reading one page ahead: a paged read (an iterator whose every `next` is an API call) runs on
//! a helper thread that fetches the next page while the caller works on the one in hand, so
//! the wait for a page overlaps the staging of the one before instead of adding to it. The
//! hand-over is a rendezvous: the helper holds at most one fetched page until the caller takes
//! it, so at most two pages are in memory, whatever the read's size. Pages come out once each,
//! in order; an error page is handed over like any other (the readers end after one), and when
//! the caller stops early the helper stops after the fetch in hand. Both connectors use it; it
//! knows nothing of either.

use std::sync::mpsc;

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
}
