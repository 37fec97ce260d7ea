//! `tenantflow` CLI (skeleton; commands are added as the issues land).
fn main() {}
