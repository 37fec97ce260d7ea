//! Lambda entry point for the `report` step (placeholder until wired).
fn main() {}
