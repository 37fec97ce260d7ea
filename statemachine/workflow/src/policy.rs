//! Every number the workflow retries or waits with, once, with its reason and the budget it gives
//! (`tests` below check the budgets the comments state).

use crate::asl::Retrier;

pub const TRANSIENT_ERROR: &str = "Tenantflow.Transient";
pub const NOT_READY: &str = "Tenantflow.NotReady";
pub const LOCKED: &str = "Tenantflow.Locked";

/// The failures a later attempt can get past: a step's own `Tenantflow.Transient` (an adapter saw
/// throttling, a 5xx or a network error) and the Lambda service's errors around an invocation.
pub const TRANSIENT_ERRORS: &[&str] = &[
    TRANSIENT_ERROR,
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// Transient failures: 2 s doubling up to 60 s, full jitter so a throttled fleet spreads out, 6
/// retries: at most 122 s of backoff, longer than a throttling burst, short enough that a real
/// outage rolls the tenant back within minutes.
pub const TRANSIENT: Retrier = Retrier {
    error_equals: TRANSIENT_ERRORS,
    interval_seconds: 2,
    max_attempts: 6,
    backoff_rate: 2.0,
    max_delay_seconds: Some(60),
    jitter_strategy: Some("FULL"),
};

/// The errors Step Functions reports when the `codebuild:startBuild.sync` integration's StartBuild
/// call is refused, so the build never ran: the account's build limit or queue is full
/// (`AccountLimitExceededException`), or the call was throttled or hit a service error, which an
/// optimized integration reports under the service's base exception (`AWSCodeBuildException`, as
/// `Lambda.AWSLambdaException`; `CodeBuildException` in the SDK-v2 naming of the SDK
/// integrations). Never `States.TaskFailed`: that is a build that ran and failed.
pub const BUILD_NOT_STARTED_ERRORS: &[&str] = &[
    "CodeBuild.AccountLimitExceededException",
    "CodeBuild.AWSCodeBuildException",
    "CodeBuild.CodeBuildException",
];

/// CodeBuild refused to start the build: a slot frees when a running build ends, which takes
/// minutes, so 30 s doubling up to 5 min, full jitter, 8 retries: at most 27.5 min (1,650 s).
pub const BUILD_NOT_STARTED: Retrier = Retrier {
    error_equals: BUILD_NOT_STARTED_ERRORS,
    interval_seconds: 30,
    max_attempts: 8,
    backoff_rate: 2.0,
    max_delay_seconds: Some(300),
    jitter_strategy: Some("FULL"),
};

/// A resource a step acts on is still changing state (an instance or snapshot not yet
/// `available`): 30 s growing 1.5× up to 5 min, 10 retries, at most about 30 min (1,823 s).
pub const RESOURCE_NOT_READY: Retrier = Retrier {
    error_equals: &[NOT_READY],
    interval_seconds: 30,
    max_attempts: 10,
    backoff_rate: 1.5,
    max_delay_seconds: Some(300),
    jitter_strategy: Some("FULL"),
};

/// `check-ecs`: the recorded deployment is still IN_PROGRESS or short of its desired count after
/// the rollout event: checked sooner (15 s), 8 retries, at most about 12 min (739 s).
pub const ROLLOUT_NOT_DONE: Retrier = Retrier {
    interval_seconds: 15,
    max_attempts: 8,
    ..RESOURCE_NOT_READY
};

/// `rollback`: the run's snapshot is still `creating`, or the in-place rollback's restore of the
/// safety snapshot is not usable yet (`rollback` answers `NotReady` until the restored instance
/// serves connections: `available`, or `backing-up` / `storage-optimization`, in which a fresh
/// restore can sit for hours while usable). That restore is as large as the candidate's, so the
/// retries must wait at least as long as [`RDS_WAIT`] does for it: 30 s growing 1.5× up to 5 min,
/// 56 retries, 15,623 s (4 h 20 min) in all. No jitter: with full jitter each delay is a random
/// part of its step, so the 30 retries this had waited 2 h 10 min at most but about 65 min on
/// average and could end far sooner; a restore the run started itself is no throttling burst to
/// spread. Cost: at most 12 `rollback` invocations and 12 billed transitions per hour of waiting,
/// 3 history events each (56 retries: about 170 events of the child's 25,000).
pub const UNDO_NOT_READY: Retrier = Retrier {
    max_attempts: 56,
    jitter_strategy: None,
    ..RESOURCE_NOT_READY
};

/// A `waitForTaskToken` wait is resumed by an event; its `TimeoutSeconds` is the re-check interval
/// (the retry on `States.Timeout` re-registers the token and checks the resource once, the net for
/// a lost event), and after `rechecks` re-checks the tenant rolls back.
#[derive(Clone, Copy, Debug)]
pub struct WaitBudget {
    pub recheck_seconds: u32,
    pub rechecks: u32,
}

/// The re-check starts as soon as the timeout fires (1 s is the smallest interval).
const RECHECK_DELAY_SECONDS: u32 = 1;

impl WaitBudget {
    /// The longest a tenant waits: one timeout per attempt.
    pub const fn total_seconds(self) -> u32 {
        self.recheck_seconds * (self.rechecks + 1)
    }

    /// The retry on `States.Timeout` that re-checks.
    pub const fn retrier(self) -> Retrier {
        Retrier {
            error_equals: &["States.Timeout"],
            interval_seconds: RECHECK_DELAY_SECONDS,
            max_attempts: self.rechecks,
            backoff_rate: 1.0,
            max_delay_seconds: None,
            jitter_strategy: None,
        }
    }
}

/// RDS snapshot and restore. RDS delivers its events to EventBridge best-effort (ECS delivers its
/// deployment events durably), so the re-check is what ends a wait whose event was lost: every
/// 4 min, so a lost event costs at most 4 minutes. A re-check costs 1 billed transition, one
/// `await-resource` invocation and 3–4 history events (the attempt's scheduled, started and timed
/// out; AWS may add a submitted): 15 transitions and at most 60 events per hour of waiting. An RDS
/// restore has no SLA and a large one (or a first, full snapshot) takes hours, so 63 re-checks:
/// 64 × 240 s = 4 h 16 min in all, no shorter than the 17 × 900 s this waited before; a whole
/// budget costs 63 transitions and at most about 250 of the child's 25,000 history events. An
/// awaited instance is ready once it serves connections, so the hours a fresh restore may then
/// spend in `backing-up` are not waited for. (240 s is no divisor of the local backend's simulated
/// snapshot and restore times, 300 s and 600 s, so a local wait never times out at the instant its
/// event arrives.)
pub const RDS_WAIT: WaitBudget = WaitBudget {
    recheck_seconds: 240,
    rechecks: 63,
};

/// ECS rollout (its events are delivered durably): re-check every 10 min, 6 re-checks:
/// 7 × 600 s = 70 min in all.
pub const ROLLOUT_WAIT: WaitBudget = WaitBudget {
    recheck_seconds: 600,
    rechecks: 6,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budgets_are_the_documented_ones() {
        let secs = |r: Retrier| r.max_backoff_seconds().round() as u32;
        assert_eq!(secs(TRANSIENT), 122);
        assert_eq!(secs(BUILD_NOT_STARTED), 1_650);
        assert_eq!(secs(RESOURCE_NOT_READY), 1_823);
        assert_eq!(secs(ROLLOUT_NOT_DONE), 739);
        assert_eq!(secs(UNDO_NOT_READY), 15_623);
        assert_eq!(RDS_WAIT.total_seconds(), 4 * 3_600 + 16 * 60);
        assert_eq!(ROLLOUT_WAIT.total_seconds(), 70 * 60);
    }

    /// A lost RDS event costs minutes, and the in-place rollback waits for its restore at least as
    /// long as a candidate's restore is waited for, whatever the jitter draws.
    #[test]
    fn a_lost_event_costs_minutes_and_the_undo_covers_a_restore() {
        const { assert!(RDS_WAIT.recheck_seconds <= 5 * 60) };
        const { assert!(RDS_WAIT.total_seconds() >= 4 * 3_600) };
        assert_eq!(UNDO_NOT_READY.jitter_strategy, None);
        assert!(UNDO_NOT_READY.min_backoff_seconds() >= f64::from(RDS_WAIT.total_seconds()));
        // Every jittered policy guarantees nothing; the documented figures are maxima.
        assert_eq!(RESOURCE_NOT_READY.min_backoff_seconds(), 0.0);
    }
}
