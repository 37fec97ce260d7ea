//! Lambda entry point for the `await-resource` step (placeholder until wired).
fn main() {}
