//! Lambda entry point for the `trigger` step (placeholder until wired).
fn main() {}
