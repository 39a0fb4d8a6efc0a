//! What happens to scheduled instants that could not fire on time (the daemon was down or
//! overloaded): the misfire policy, and the plan it gives for one cron at one moment.

use crate::time::Millis;

pub use entity::states::MisfirePolicy;

/// Which instants to fire now, and how many are given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub fire: Vec<Millis>,
    pub missed: u64,
}

/// Plans the due instants `due` (ascending, all ≤ now). An instant later than `grace` is
/// missed; what happens to missed ones is the policy's. An instant within grace always fires.
pub fn plan(
    policy: MisfirePolicy,
    due: &[Millis],
    now: Millis,
    grace: Millis,
    catchup_window: Millis,
) -> Plan {
    let (missed, on_time): (Vec<Millis>, Vec<Millis>) =
        due.iter().partition(|&&instant| now - instant > grace);
    match policy {
        MisfirePolicy::Skip => Plan {
            fire: on_time,
            missed: missed.len() as u64,
        },
        MisfirePolicy::FireOnce => {
            if !on_time.is_empty() {
                Plan {
                    fire: on_time,
                    missed: missed.len() as u64,
                }
            } else {
                let latest = missed.last().copied();
                Plan {
                    fire: latest.into_iter().collect(),
                    missed: missed.len().saturating_sub(1) as u64,
                }
            }
        }
        MisfirePolicy::FireAll => {
            let (within, too_old): (Vec<Millis>, Vec<Millis>) = missed
                .iter()
                .partition(|&&instant| now - instant <= catchup_window);
            let mut fire = within;
            fire.extend(on_time);
            Plan {
                fire,
                missed: too_old.len() as u64,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Millis = 1_000;
    const WINDOW: Millis = 3_600_000;

    #[test]
    fn on_time_instants_always_fire() {
        for policy in [
            MisfirePolicy::FireOnce,
            MisfirePolicy::Skip,
            MisfirePolicy::FireAll,
        ] {
            assert_eq!(
                plan(policy, &[10_000], 10_005, GRACE, WINDOW),
                Plan {
                    fire: vec![10_000],
                    missed: 0
                }
            );
        }
    }

    #[test]
    fn after_downtime_each_policy_does_what_it_says() {
        // A minute cron down for three minutes: 60 s, 120 s and 180 s were missed.
        let due = [60_000, 120_000, 180_000];
        let now = 200_000;
        assert_eq!(
            plan(MisfirePolicy::FireOnce, &due, now, GRACE, WINDOW),
            Plan {
                fire: vec![180_000],
                missed: 2
            }
        );
        assert_eq!(
            plan(MisfirePolicy::Skip, &due, now, GRACE, WINDOW),
            Plan {
                fire: vec![],
                missed: 3
            }
        );
        assert_eq!(
            plan(MisfirePolicy::FireAll, &due, now, GRACE, WINDOW),
            Plan {
                fire: vec![60_000, 120_000, 180_000],
                missed: 0
            }
        );
        assert_eq!(
            plan(MisfirePolicy::FireAll, &due, now, GRACE, 100_000),
            Plan {
                fire: vec![120_000, 180_000],
                missed: 1
            },
            "older than the catch-up window"
        );
    }

    #[test]
    fn nothing_due_plans_nothing() {
        assert_eq!(
            plan(MisfirePolicy::FireOnce, &[], 5, GRACE, WINDOW),
            Plan {
                fire: vec![],
                missed: 0
            }
        );
    }
}
