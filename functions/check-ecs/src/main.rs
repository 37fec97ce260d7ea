//! Lambda entry point for the `check-ecs` step (placeholder until wired).
fn main() {}
