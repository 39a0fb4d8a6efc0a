//! The states a row can be in, as Rust enums. Each is stored as its string value in a plain
//! string column (no database enum type), and the same string is its JSON form; `as_str`
//! gives it without an allocation (metrics labels, messages).

use sea_orm::Iterable;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A run's status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "success")]
    Success,
    #[sea_orm(string_value = "error")]
    Error,
    #[sea_orm(string_value = "timeout")]
    Timeout,
    #[sea_orm(string_value = "interrupted")]
    Interrupted,
}

impl RunStatus {
    /// Not ended yet: queued or executing. A thread with such a run is busy.
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Pending, RunStatus::Running];
    /// Ended without success: what counts as a cron's failure.
    pub const FAILED: [RunStatus; 2] = [RunStatus::Error, RunStatus::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<RunStatus> {
        Self::iter().find(|status| status.as_str() == text)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    #[sea_orm(string_value = "idle")]
    Idle,
    #[sea_orm(string_value = "busy")]
    Busy,
    #[sea_orm(string_value = "interrupted")]
    Interrupted,
    #[sea_orm(string_value = "error")]
    Error,
}

impl ThreadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Idle => "idle",
            ThreadStatus::Busy => "busy",
            ThreadStatus::Interrupted => "interrupted",
            ThreadStatus::Error => "error",
        }
    }
}

/// What happens to a stateless run's thread once the run ends.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum OnCompletion {
    #[sea_orm(string_value = "delete")]
    Delete,
    #[sea_orm(string_value = "keep")]
    Keep,
}

impl OnCompletion {
    pub fn as_str(self) -> &'static str {
        match self {
            OnCompletion::Delete => "delete",
            OnCompletion::Keep => "keep",
        }
    }
}

/// How a run is cancelled.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
#[schema(as = CancelActionParam)]
pub enum CancelAction {
    /// The run ends as `interrupted`; the thread keeps its values.
    #[sea_orm(string_value = "interrupt")]
    Interrupt,
    /// The run is deleted as well.
    #[sea_orm(string_value = "rollback")]
    Rollback,
}

impl CancelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelAction::Interrupt => "interrupt",
            CancelAction::Rollback => "rollback",
        }
    }
}

/// What became of a scheduled instant (or a manual trigger): the `fire` of its history entry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
#[schema(as = HistoryFire)]
pub enum FireOutcome {
    /// Recorded ahead of its instant: its run is queued at the instant, with the multitask
    /// and overlap decisions taken then (the entry then says `fired`, `rejected` or
    /// `skipped`).
    #[sea_orm(string_value = "scheduled")]
    Scheduled,
    /// Its run was queued by the scheduler.
    #[sea_orm(string_value = "fired")]
    Fired,
    /// Not fired: late past the grace, given up under the cron's misfire policy.
    #[sea_orm(string_value = "missed")]
    Missed,
    /// Its run was refused (the thread was busy under `reject`, or is gone).
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// A manual trigger through the API (the schedule did not move).
    #[sea_orm(string_value = "triggered")]
    Triggered,
    /// Not run: the cron's earlier run was still active, under its `overlap` policy.
    #[sea_orm(string_value = "skipped")]
    Skipped,
    /// A past instant fired by a backfill request.
    #[sea_orm(string_value = "backfilled")]
    Backfilled,
}

impl FireOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Scheduled => "scheduled",
            FireOutcome::Fired => "fired",
            FireOutcome::Missed => "missed",
            FireOutcome::Rejected => "rejected",
            FireOutcome::Triggered => "triggered",
            FireOutcome::Skipped => "skipped",
            FireOutcome::Backfilled => "backfilled",
        }
    }
}

/// Where a delivery stands: `pending` (queued or retrying), `delivered`, or `failed` (out of
/// attempts).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl DeliveryStatus {
    /// Done with: no attempt is due (until one is asked for again).
    pub const FINISHED: [DeliveryStatus; 2] = [DeliveryStatus::Delivered, DeliveryStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// What a delivery calls: a run's `webhook` (`run`) or an alert route (`alert`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    #[sea_orm(string_value = "run")]
    Run,
    #[sea_orm(string_value = "alert")]
    Alert,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Run => "run",
            DeliveryKind::Alert => "alert",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveEnum;
    use serde::de::DeserializeOwned;

    /// The stored string, `as_str` and (where the API shows it) the JSON form are one.
    fn agree<T>(as_str: fn(T) -> &'static str, json: bool)
    where
        T: ActiveEnum<Value = String> + Iterable + Copy + PartialEq + std::fmt::Debug,
        T: Serialize + DeserializeOwned,
    {
        for state in T::iter() {
            assert_eq!(state.to_value(), as_str(state), "{state:?}");
            assert_eq!(
                T::try_from_value(&as_str(state).to_string()).ok(),
                Some(state)
            );
            if json {
                assert_eq!(serde_json::to_value(state).ok(), Some(as_str(state).into()));
                assert_eq!(
                    serde_json::from_value::<T>(as_str(state).into()).ok(),
                    Some(state)
                );
            }
        }
    }

    #[test]
    fn stored_and_wire_strings_agree() {
        agree(RunStatus::as_str, true);
        agree(ThreadStatus::as_str, true);
        agree(OnCompletion::as_str, true);
        agree(DeliveryStatus::as_str, true);
        agree(CancelAction::as_str, true);
        agree(FireOutcome::as_str, true);
        agree(DeliveryKind::as_str, true);
        agree(Overlap::as_str, true);
        agree(DstRepeat::as_str, true);
        agree(DstGap::as_str, true);
    }

    #[test]
    fn parse_knows_every_name_and_no_other() {
        for status in RunStatus::iter() {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::parse("Pending"), None);
        assert_eq!(RunStatus::parse(""), None);
    }

    #[test]
    fn active_runs_are_pending_and_running() {
        let active: Vec<_> = RunStatus::iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [RunStatus::Pending, RunStatus::Running]);
    }
}

/// What a new run does when its thread already has an active run (LangGraph's
/// `multitask_strategy`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum MultitaskStrategy {
    #[sea_orm(string_value = "reject")]
    Reject,
    #[sea_orm(string_value = "rollback")]
    Rollback,
    #[sea_orm(string_value = "interrupt")]
    Interrupt,
    #[default]
    #[sea_orm(string_value = "enqueue")]
    Enqueue,
}

impl MultitaskStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            MultitaskStrategy::Reject => "reject",
            MultitaskStrategy::Rollback => "rollback",
            MultitaskStrategy::Interrupt => "interrupt",
            MultitaskStrategy::Enqueue => "enqueue",
        }
    }

    /// A cron payload's (or run body's) `multitask_strategy`; enqueue when absent.
    pub fn of_payload(payload: &serde_json::Value) -> MultitaskStrategy {
        payload
            .get("multitask_strategy")
            .and_then(serde_json::Value::as_str)
            .and_then(|text| Self::iter().find(|strategy| strategy.as_str() == text))
            .unwrap_or_default()
    }
}

/// cronhook's addition to LangGraph's crons (which always behave like `FireOnce`).
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default, EnumIter, ToSchema,
)]
#[schema(
    description = "What happens to scheduled instants that could not fire on time: `fire_once` (the latest fires once), `skip` (none fires), `fire_all` (each within the catch-up window fires, in order). cronhook's addition to LangGraph's crons."
)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// The most recent missed instant fires once; older ones are skipped.
    #[default]
    FireOnce,
    /// Missed instants are skipped; the schedule resumes at the next future instant.
    Skip,
    /// Every missed instant within the catch-up window fires, in order.
    FireAll,
}

impl MisfirePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::FireOnce => "fire_once",
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::FireAll => "fire_all",
        }
    }

    /// The policy named `text`, if any.
    pub fn parse(text: &str) -> Option<MisfirePolicy> {
        Self::iter().find(|policy| policy.as_str() == text)
    }
}

/// What a stateless cron's instant does while the cron's earlier run is still pending or
/// running (Temporal's overlap policies). A thread cron follows its `multitask_strategy`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Runs at once beside the active one (LangGraph's behaviour).
    #[default]
    #[sea_orm(string_value = "allow")]
    Allow,
    /// Not run (history `skipped`).
    #[sea_orm(string_value = "skip")]
    Skip,
    /// At most one waits behind the active run; further instants are skipped.
    #[sea_orm(string_value = "buffer_one")]
    BufferOne,
    /// Every instant waits its turn, one run at a time, in order.
    #[sea_orm(string_value = "buffer_all")]
    BufferAll,
    /// The active run is interrupted, then the new one starts.
    #[sea_orm(string_value = "cancel_other")]
    CancelOther,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer_one",
            Overlap::BufferAll => "buffer_all",
            Overlap::CancelOther => "cancel_other",
        }
    }
}

/// How often a wall-clock time that a daylight-saving change repeats fires.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum DstRepeat {
    /// Once, at its first occurrence.
    #[default]
    #[sea_orm(string_value = "once")]
    Once,
    /// Twice, at both occurrences (croniter's behaviour).
    #[sea_orm(string_value = "twice")]
    Twice,
}

impl DstRepeat {
    pub fn as_str(self) -> &'static str {
        match self {
            DstRepeat::Once => "once",
            DstRepeat::Twice => "twice",
        }
    }

    pub fn parse(text: &str) -> Option<DstRepeat> {
        Self::iter().find(|choice| choice.as_str() == text)
    }
}

/// What a wall-clock time that a daylight-saving change skips does.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum DstGap {
    /// Fires right after the gap.
    #[default]
    #[sea_orm(string_value = "shift")]
    Shift,
    /// Does not fire that day.
    #[sea_orm(string_value = "skip")]
    Skip,
}

impl DstGap {
    pub fn as_str(self) -> &'static str {
        match self {
            DstGap::Shift => "shift",
            DstGap::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<DstGap> {
        Self::iter().find(|choice| choice.as_str() == text)
    }
}
