//! Lambda entry point for the `flip-ssm` step (placeholder until wired).
fn main() {}
