//! The phases of a run that each run a per-tenant state machine in a Distributed Map.

/// `Wave` is the independent mode's pipeline; the others are the all-or-nothing phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Wave,
    Prepare,
    Discard,
    Commit,
    Revert,
    Teardown,
    /// Fleet mode `rehearse`: steps 1–5, then the candidate is discarded.
    Rehearse,
}

impl Phase {
    /// In the order the parent lists them.
    pub const ALL: [Phase; 7] = [
        Phase::Wave,
        Phase::Prepare,
        Phase::Discard,
        Phase::Commit,
        Phase::Revert,
        Phase::Teardown,
        Phase::Rehearse,
    ];

    /// The tally's `phase` parameter, and the suffix of the phase's per-tenant state names.
    pub fn word(self) -> &'static str {
        match self {
            Phase::Wave => "wave",
            Phase::Prepare => "prepare",
            Phase::Discard => "discard",
            Phase::Commit => "commit",
            Phase::Revert => "revert",
            Phase::Teardown => "teardown",
            Phase::Rehearse => "rehearse",
        }
    }

    /// A per-tenant state's name in this phase: `Roll back` in a wave, `Roll back (prepare)`, …
    /// (names are unique across the whole definition).
    pub fn name(self, base: &str) -> String {
        match self {
            Phase::Wave => base.to_string(),
            other => format!("{base} ({})", other.word()),
        }
    }

    /// Runs steps 1–5 (lock, snapshot, candidate, migration).
    pub fn prepares(self) -> bool {
        matches!(self, Phase::Wave | Phase::Prepare | Phase::Rehearse)
    }

    /// Runs steps 6–7 (flip, roll out).
    pub fn commits(self) -> bool {
        matches!(self, Phase::Wave | Phase::Commit)
    }
}
