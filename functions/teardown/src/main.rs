//! Lambda entry point for the `teardown` step (placeholder until wired).
fn main() {}
