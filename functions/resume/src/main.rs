//! Lambda entry point for the `resume` step (placeholder until wired).
fn main() {}
