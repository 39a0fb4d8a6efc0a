//! Live events of running runs, in memory: what `stream` and `join_stream` clients read.
//!
//! Each run has a buffer (for clients that join late or resume with `Last-Event-ID`) and a
//! broadcast channel. A run's buffer is kept for a while after it ends, then dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;

use entity::states::RunStatus;

/// How long a finished run's events stay available for joins and resumes.
const KEEP_AFTER_END: Duration = Duration::from_secs(60);

/// How long the channel of a run queued here but not running here is kept while nobody
/// listens: another replica may have claimed the run, and its end is never told here.
pub const KEEP_UNCLAIMED: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// One SSE event: `id` counts from 0 per run.
    /// Shared: every subscriber and the replay buffer hold the same data.
    Event {
        id: u64,
        event: String,
        data: Arc<Value>,
    },
    /// The run ended: no more events.
    End(Arc<RunEnd>),
}

/// How a run ended, as waiters (`wait`, `join`) need it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub status: RunStatus,
    pub values: Option<Value>,
    pub error: Option<Value>,
}

impl RunEnd {
    /// What `wait` and `join` answer: the final values, or LangGraph's `__error__` object.
    pub fn body(&self) -> Value {
        match (&self.error, &self.values) {
            (Some(error), _) => serde_json::json!({ "__error__": error }),
            (None, Some(values)) => values.clone(),
            (None, None) => Value::Object(serde_json::Map::new()),
        }
    }
}

struct Channel {
    events: Vec<Frame>,
    /// Made on the first live subscriber: most runs (cron fires) never have one, and a
    /// channel's 64 slots cost more than the rest of a short run's start.
    sender: Option<broadcast::Sender<Frame>>,
    opened_at: Instant,
    ended_at: Option<Instant>,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            events: Vec::new(),
            sender: None,
            opened_at: Instant::now(),
            ended_at: None,
        }
    }

    /// Whether a live subscriber still holds the feed.
    fn listened(&self) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    fn send(&self, frame: Frame) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(frame);
        }
    }

    fn subscribe(&mut self) -> broadcast::Receiver<Frame> {
        self.sender
            .get_or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }
}

/// What a subscriber gets: the events so far (after `after`), then the live feed.
pub struct Subscription {
    pub replay: Vec<Frame>,
    pub live: Option<broadcast::Receiver<Frame>>,
    /// When set, live events of other modes are skipped.
    pub modes: Option<Vec<String>>,
}

impl Subscription {
    /// Keeps only the events of the given stream modes (and the end).
    pub fn retain_modes(&mut self, modes: &[String]) {
        self.replay.retain(|frame| match frame {
            Frame::Event { event, .. } => modes.iter().any(|m| m == event),
            Frame::End(_) => true,
        });
        self.modes = Some(modes.to_vec());
    }
}

/// The run's channel, made if it does not exist yet (its id is copied only then, not on
/// every event). Always `Some`; an Option only because the map cannot hand out the entry
/// it may have just made without a second lookup.
fn channel<'a>(runs: &'a mut HashMap<String, Channel>, run_id: &str) -> Option<&'a mut Channel> {
    if !runs.contains_key(run_id) {
        runs.insert(run_id.to_string(), Channel::new());
    }
    runs.get_mut(run_id)
}

#[derive(Clone, Default)]
pub struct EventHub {
    runs: Arc<Mutex<HashMap<String, Channel>>>,
}

impl EventHub {
    pub fn new() -> EventHub {
        EventHub::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Channel>) -> R) -> R {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut runs)
    }

    /// Makes the run's channel exist (so events are kept from the first one on). Opened
    /// again when the run starts here, it counts as new for `sweep`.
    pub fn open(&self, run_id: &str) {
        self.with(|runs| {
            if let Some(channel) = channel(runs, run_id) {
                channel.opened_at = Instant::now();
            }
        });
    }

    pub fn publish(&self, run_id: &str, event: &str, data: Value) {
        self.with(|runs| {
            let Some(channel) = channel(runs, run_id) else {
                return;
            };
            let frame = Frame::Event {
                id: channel.events.len() as u64,
                event: event.to_string(),
                data: Arc::new(data),
            };
            channel.events.push(frame.clone());
            channel.send(frame);
        });
    }

    /// Marks the run ended and wakes every subscriber. A resumable run's events are kept
    /// for late resumes (`KEEP_AFTER_END`); any other run's are dropped at once — its live
    /// subscribers already hold the end, and late joiners read the store. (Keeping every
    /// run's events for a minute cost 1.4 GB at 1,000 cron runs/s.)
    pub fn end(&self, run_id: &str, end: RunEnd, keep_for_resume: bool) {
        let end = Arc::new(end);
        let dropped = self.with(|runs| {
            if let Some(channel) = channel(runs, run_id)
                && channel.ended_at.is_none()
            {
                channel.ended_at = Some(Instant::now());
                channel.events.push(Frame::End(end.clone()));
                channel.send(Frame::End(end));
            }
            (!keep_for_resume).then(|| runs.remove(run_id))
        });
        // The run's events are freed here, outside the lock every run's events go through.
        drop(dropped);
    }

    /// Drops the run's events without an end: its end was not recorded here (the lease was
    /// lost, or the store failed), so live subscribers see the feed close and read the store.
    pub fn forget(&self, run_id: &str) {
        let dropped = self.with(|runs| runs.remove(run_id));
        drop(dropped);
    }

    /// Events after id `after` (all when None), then the live feed unless the run ended.
    /// None when this process knows nothing of the run.
    pub fn subscribe(&self, run_id: &str, after: Option<u64>) -> Option<Subscription> {
        self.with(|runs| {
            let channel = runs.get_mut(run_id)?;
            let replay = channel
                .events
                .iter()
                .filter(|frame| match (frame, after) {
                    (Frame::Event { id, .. }, Some(after)) => *id > after,
                    _ => true,
                })
                .cloned()
                .collect();
            let live = channel.ended_at.is_none().then(|| channel.subscribe());
            Some(Subscription {
                replay,
                live,
                modes: None,
            })
        })
    }

    /// Drops finished runs' events once nobody can still need them, and the channels of
    /// runs that are not running here (`running_here` is every run this process runs),
    /// that nobody listens to, and that were opened more than `unclaimed_after` ago: such a
    /// run was queued here and claimed by another replica, or not claimed yet (the worker
    /// that starts it here opens its channel again).
    pub fn sweep(&self, running_here: &HashSet<String>, unclaimed_after: Duration) {
        let dropped = self.with(|runs| {
            runs.extract_if(|run_id, channel| match channel.ended_at {
                Some(ended) => ended.elapsed() >= KEEP_AFTER_END,
                None => {
                    !running_here.contains(run_id)
                        && !channel.listened()
                        && channel.opened_at.elapsed() >= unclaimed_after
                }
            })
            .collect::<Vec<_>>()
        });
        // Freed outside the lock every run's events go through.
        drop(dropped);
    }

    /// How many runs' events are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.with(|runs| runs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn late_subscribers_replay_then_follow() {
        let hub = EventHub::new();
        hub.open("r");
        hub.publish("r", "values", json!({"a": 1}));
        let mut sub = hub.subscribe("r", None).expect("known run");
        assert_eq!(sub.replay.len(), 1);
        hub.publish("r", "updates", json!({"b": 2}));
        let end = RunEnd {
            status: RunStatus::Success,
            values: Some(json!({"b": 2})),
            error: None,
        };
        hub.end("r", end.clone(), true);
        let mut live = sub.live.take().expect("still running");
        assert!(matches!(live.recv().await, Ok(Frame::Event { id: 1, .. })));
        assert_eq!(
            live.recv().await.ok(),
            Some(Frame::End(Arc::new(end.clone())))
        );
        assert_eq!(end.body(), json!({"b": 2}));
        let resumed = hub.subscribe("r", Some(0)).expect("kept after end");
        assert_eq!(resumed.replay.len(), 2, "event 1 and the end");
        assert!(resumed.live.is_none());
        assert!(hub.subscribe("unknown", None).is_none());
        hub.open("gone");
        hub.end("gone", end, false);
        assert!(
            hub.subscribe("gone", None).is_none(),
            "not kept unless resumable"
        );
    }

    #[tokio::test]
    async fn forgetting_a_run_closes_its_live_feed_without_an_end() {
        let hub = EventHub::new();
        hub.open("lost");
        let mut live = hub
            .subscribe("lost", None)
            .and_then(|sub| sub.live)
            .expect("running");
        hub.publish("lost", "values", json!({"a": 1}));
        hub.forget("lost");
        assert!(matches!(live.recv().await, Ok(Frame::Event { id: 0, .. })));
        assert!(matches!(
            live.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert!(hub.subscribe("lost", None).is_none());
    }

    #[tokio::test]
    async fn a_run_not_running_here_loses_its_channel_once_nobody_listens() {
        let hub = EventHub::new();
        for run_id in ["elsewhere", "here", "listened"] {
            hub.open(run_id);
        }
        let live = hub
            .subscribe("listened", None)
            .and_then(|sub| sub.live)
            .expect("not ended");
        let running_here = HashSet::from(["here".to_string()]);
        hub.sweep(&running_here, Duration::from_secs(3600));
        assert_eq!(hub.len(), 3, "all younger than the grace");
        hub.sweep(&running_here, Duration::ZERO);
        assert!(
            hub.subscribe("elsewhere", None).is_none(),
            "claimed elsewhere"
        );
        assert!(hub.subscribe("here", None).is_some(), "running here");
        assert!(
            hub.subscribe("listened", None).is_some(),
            "a client waits on it"
        );
        drop(live);
        hub.sweep(&running_here, Duration::ZERO);
        assert_eq!(hub.len(), 1, "only the run running here is left");
    }
}
