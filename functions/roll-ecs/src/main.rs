//! Lambda entry point for the `roll-ecs` step (placeholder until wired).
fn main() {}
