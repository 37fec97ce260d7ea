//! The process exit codes of the commands. [`EXIT_CODES_HELP`] is what `tenantflow --help` prints
//! about them; the README has the same table.

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// The command failed, or refused its input before changing anything; for `deploy`, also a run
/// that failed as a whole.
pub const EXIT_FAILED: u8 = 1;
/// A usage error: an unknown flag, a missing or invalid argument (the code clap uses), or for
/// `sfn run` an invalid definition. Nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// `deploy`, `retry`: the run finished, but some tenants were rolled back or skipped. `recover`: a
/// tenant still waits on a resource; run `recover` again.
pub const EXIT_PARTIAL: u8 = 3;
/// `init`, `deploy`, `retry`, `demo`, `recover`: another command holds the state directory (see `--wait`). Nothing
/// was changed.
pub const EXIT_BUSY: u8 = 4;
/// `status`: something needs a person (a locked or write-frozen tenant, a tenant with a problem,
/// an orphan); the output says what to run. `recover --dry-run`: there is something to recover.
pub const EXIT_ATTENTION: u8 = 5;

/// `deploy`: interrupted (Ctrl-C or SIGTERM). After the first interrupt the run stopped once its
/// steps in flight finished (status ABORTED); a second one exits at once. Either way `tenantflow
/// recover` (or the same deploy again) settles the tenants the run had started.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit codes, as `--help` prints them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (deploy, retry: every tenant deployed or was already up to date)
  1  failed, or the input was refused before anything changed (deploy: the run itself failed;
     recover: a tenant could not be recovered, its lock stays)
  2  usage error: an unknown flag, a missing or invalid argument (sfn run: an invalid definition)
  3  deploy, retry: the run finished, but some tenants were rolled back or skipped
     recover: a tenant still waits on a resource; run recover again
  4  init, deploy, retry, demo, recover: another tenantflow command is using the state directory
     (nothing changed; --wait waits for it)
  5  status: something needs a person (a locked or write-frozen tenant, a tenant with a problem,
     an orphan); the output says what to run (recover --dry-run: something to recover)
  130 deploy: interrupted (Ctrl-C, SIGTERM); run `tenantflow recover` or the deploy again to settle
     the tenants it had started
With --json, a failure prints {\"error\": \"<message>\", \"exitCode\": <code>} on stderr.";
