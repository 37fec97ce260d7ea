//! Lambda entry point for the `snapshot` step (placeholder until wired).
fn main() {}
