//! [`PlanSummary`]: the top of a captured query plan, kept per query summary, and the gate
//! that lets a database crate capture one at most once per interval.
//!
//! towerkit-timing knows nothing of any database: a crate that can ask its server for a
//! plan (towerkit-db runs PostgreSQL's `EXPLAIN`) claims the right with
//! [`QueryLabel::claim_plan`](crate::QueryLabel::claim_plan) and hands the result to
//! [`QueryLabel::record_plan`](crate::QueryLabel::record_plan); [`QueryStats`](crate::QueryStats)
//! then shows it next to the label's timings.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The top node of a query's estimated plan: what it does, what the planner thinks it
/// costs and returns, and when it was captured. Holds no parameter value and no
/// condition text (a plan's conditions can show the values it was planned with).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    /// The top node's type, such as `Seq Scan`, `Index Scan` or `Hash Join`.
    pub node: String,
    /// The planner's estimated total cost of the top node, in its arbitrary units.
    pub total_cost: f64,
    /// The planner's estimated row count of the top node.
    pub rows: f64,
    /// When the plan was captured.
    pub captured_at: SystemTime,
}

/// One summary's last plan and when one was last claimed. Touched only for slow queries.
#[derive(Default)]
pub(crate) struct PlanSlot {
    state: Mutex<PlanState>,
}

#[derive(Default)]
struct PlanState {
    claimed_at: Option<Instant>,
    last: Option<PlanSummary>,
}

impl PlanSlot {
    /// True, and the claim recorded, unless a claim was made less than `interval` ago.
    pub(crate) fn claim(&self, interval: Duration) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state
            .claimed_at
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
        {
            return false;
        }
        state.claimed_at = Some(now);
        true
    }

    /// Keeps `plan` as the last one.
    pub(crate) fn record(&self, plan: PlanSummary) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last = Some(plan);
    }

    /// The last plan kept.
    pub(crate) fn last(&self) -> Option<PlanSummary> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_granted_once_per_interval() {
        let slot = PlanSlot::default();
        let interval = Duration::from_millis(50);
        assert!(slot.claim(interval));
        assert!(!slot.claim(interval));
        std::thread::sleep(Duration::from_millis(60));
        assert!(slot.claim(interval));
        assert!(!slot.claim(interval));
    }

    #[test]
    fn the_last_recorded_plan_is_kept() {
        let slot = PlanSlot::default();
        assert_eq!(slot.last(), None);
        for node in ["Seq Scan", "Index Scan"] {
            slot.record(PlanSummary {
                node: node.to_owned(),
                total_cost: 1.0,
                rows: 2.0,
                captured_at: SystemTime::UNIX_EPOCH,
            });
        }
        assert_eq!(slot.last().unwrap().node, "Index Scan");
    }
}
