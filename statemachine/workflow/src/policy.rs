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

/// `rollback`: the run's snapshot is still `creating`, or the in-place restore is not available
/// yet; a restore takes as long as any RDS restore, so 30 retries: at most about 2 h 10 min
/// (7,823 s) before the tenant is reported `rollback-failed`.
pub const UNDO_NOT_READY: Retrier = Retrier {
    max_attempts: 30,
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

/// RDS snapshot and restore: re-check every 15 min; an RDS restore has no SLA and a large one takes
/// hours, so 16 re-checks: 17 × 900 s = 4 h 15 min in all.
pub const RDS_WAIT: WaitBudget = WaitBudget {
    recheck_seconds: 900,
    rechecks: 16,
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
        assert_eq!(secs(UNDO_NOT_READY), 7_823);
        assert_eq!(RDS_WAIT.total_seconds(), 4 * 3_600 + 15 * 60);
        assert_eq!(ROLLOUT_WAIT.total_seconds(), 70 * 60);
    }
}
