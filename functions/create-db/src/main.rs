//! Lambda entry point for the `create-db` step (placeholder until wired).
fn main() {}
