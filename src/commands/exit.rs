//! The process exit codes of the commands.

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// The command (or the run itself) failed.
pub const EXIT_FAILED: u8 = 1;
/// `deploy`: the run finished, but some tenants were rolled back or skipped.
pub const EXIT_PARTIAL: u8 = 2;
/// `sfn run`: bad arguments or an invalid definition (the code clap uses for usage errors).
pub const EXIT_USAGE: u8 = 2;
