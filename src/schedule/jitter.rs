//! Jitter: each instant of a cron with `jitter_seconds` starts a delay after it, drawn from
//! [0, jitter) by a hash of (cron id, instant). Every replica, every restart and `/next`
//! compute the same delay, so the start of an instant is known before it comes.

use sha2::{Digest, Sha256};

use entity::cron;

use crate::time::Millis;

/// The most a cron's `jitter_seconds` may be.
pub const MAX_JITTER_SECONDS: i32 = 3600;

/// The delay of `cron`'s instant `instant`, in milliseconds: 0 without jitter.
pub fn delay(cron: &cron::Model, instant: Millis) -> Millis {
    delay_of(&cron.cron_id, cron.jitter_seconds, instant)
}

/// When `cron`'s instant `instant` starts: the instant plus its delay.
pub fn start(cron: &cron::Model, instant: Millis) -> Millis {
    instant + delay(cron, instant)
}

fn delay_of(cron_id: &str, jitter_seconds: i32, instant: Millis) -> Millis {
    let bound = u64::try_from(jitter_seconds).unwrap_or(0) * 1000;
    if bound == 0 {
        return 0;
    }
    let digest = Sha256::new()
        .chain_update(cron_id.as_bytes())
        .chain_update(instant.to_be_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % bound) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_jitter_is_no_delay() {
        assert_eq!(delay_of("c", 0, 60_000), 0);
        assert_eq!(delay_of("c", -5, 60_000), 0);
    }

    #[test]
    fn delays_stay_below_the_bound_and_spread_over_it() {
        let delays: Vec<Millis> = (0..1000)
            .map(|n| delay_of(&format!("cron-{n}"), 10, 3_600_000))
            .collect();
        assert!(delays.iter().all(|d| (0..10_000).contains(d)));
        // Ten one-second buckets, each holding about a tenth of 1,000 crons.
        for bucket in 0..10 {
            let held = delays.iter().filter(|d| **d / 1000 == bucket).count();
            assert!((50..=150).contains(&held), "bucket {bucket}: {held}");
        }
    }

    #[test]
    fn the_same_cron_and_instant_get_the_same_delay() {
        assert_eq!(delay_of("a", 60, 1_000), delay_of("a", 60, 1_000));
        assert_ne!(
            (0..20)
                .map(|n| delay_of("a", 60, n * 1_000))
                .collect::<Vec<_>>(),
            (0..20)
                .map(|n| delay_of("b", 60, n * 1_000))
                .collect::<Vec<_>>()
        );
    }
}
