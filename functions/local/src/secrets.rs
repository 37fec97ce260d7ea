//! Local Secrets Manager: `<state>/secrets.json`, an object of secret id → value. No step reads
//! secrets (the migration build gets its credentials itself), so this is local API, not a port.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tenantflow_core::StepError;

/// A secret value. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret itself. Call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

pub struct LocalSecrets {
    path: PathBuf,
}

impl LocalSecrets {
    pub fn new(path: &Path) -> Self {
        LocalSecrets {
            path: path.to_path_buf(),
        }
    }

    fn load(&self) -> Result<BTreeMap<String, String>, StepError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                // Never echo the file: it holds secrets.
                StepError::Internal(format!(
                    "{} is not a JSON object of strings: line {}",
                    self.path.display(),
                    e.line()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(crate::error::io_step_error(&self.path, e)),
        }
    }

    /// Stores a secret (used by `init` and tests).
    pub fn put(&self, id: &str, value: &str) -> Result<(), StepError> {
        let mut all = self.load()?;
        all.insert(id.to_string(), value.to_string());
        let text = serde_json::to_string_pretty(&all)
            .map_err(|e| StepError::Internal(format!("serialize secrets: {e}")))?;
        crate::layout::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| crate::error::io_step_error(&self.path, e))
    }

    /// The secret `id`; `NotFound` when absent. Async like the Secrets Manager call it stands for.
    pub async fn get_secret(&self, id: &str) -> Result<SecretString, StepError> {
        self.load()?
            .remove(id)
            .map(SecretString::new)
            .ok_or_else(|| StepError::NotFound(format!("secret {id}")))
    }
}
