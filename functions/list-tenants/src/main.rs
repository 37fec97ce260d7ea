//! Lambda entry point for the `list-tenants` step (placeholder until wired).
fn main() {}
