//! Lambda entry point for the `janitor` step (placeholder until wired).
fn main() {}
