//! Lambda entry point for the `rollback` step (placeholder until wired).
fn main() {}
