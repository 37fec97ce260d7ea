//! The state directory's lock for the commands that change it (`init`, `deploy`, `demo`): one at
//! a time, held until the command ends ([`tenantflow_local::StateLock`]). With `--wait` a second
//! command says whom it waits for and waits; without, it is refused with exit code 4.

use anyhow::Result;
use std::path::Path;
use tenantflow_local::{Layout, LocalError, StateLock};

/// This process's command line, as the lock's holder names it.
pub fn command_line() -> String {
    let mut words = vec!["tenantflow".to_string()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

/// Takes the lock of the state directory at `state` (which must exist), waiting when `wait`.
pub fn lock_state(state: &Path, wait: bool) -> Result<StateLock> {
    let layout = Layout::new(state);
    let command = command_line();
    match StateLock::try_acquire(&layout, &command) {
        Err(LocalError::Busy { holder, .. }) if wait => {
            match holder {
                Some(h) => eprintln!("waiting for {h} to finish with {}", state.display()),
                None => eprintln!(
                    "waiting for another tenantflow command to finish with {}",
                    state.display()
                ),
            }
            Ok(StateLock::acquire_waiting(&layout, &command)?)
        }
        other => Ok(other?),
    }
}
