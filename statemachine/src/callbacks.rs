//! Task tokens for `.waitForTaskToken`: SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::CallbackError;

pub(crate) enum Msg {
    Success(Value),
    Failure(String, String),
    Heartbeat,
}

enum Slot {
    Open(mpsc::UnboundedSender<Msg>),
    Closed,
    TimedOut,
}

#[derive(Default)]
pub(crate) struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Registry {
    pub fn open(&self, token: &str) -> mpsc::UnboundedReceiver<Msg> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(token.to_string(), Slot::Open(tx));
        rx
    }

    /// The task stopped waiting (it finished, failed or was cancelled).
    pub fn close(&self, token: &str, timed_out: bool) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(token) {
            if matches!(slot, Slot::Open(_)) {
                *slot = if timed_out {
                    Slot::TimedOut
                } else {
                    Slot::Closed
                };
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, token: &str, msg: Msg) -> Result<(), CallbackError> {
        let mut slots = self.lock();
        let slot = slots.get_mut(token).ok_or(CallbackError::InvalidToken)?;
        match slot {
            Slot::Open(tx) => {
                let closes = !matches!(msg, Msg::Heartbeat);
                if tx.send(msg).is_err() {
                    *slot = Slot::Closed;
                    return Err(CallbackError::TaskDoesNotExist);
                }
                if closes {
                    *slot = Slot::Closed;
                }
                Ok(())
            }
            Slot::Closed => Err(CallbackError::TaskDoesNotExist),
            Slot::TimedOut => Err(CallbackError::TaskTimedOut),
        }
    }
}

/// Clone + Send + Sync handle for completing `.waitForTaskToken` tasks.
#[derive(Clone)]
pub struct Callbacks {
    pub(crate) registry: Arc<Registry>,
}

impl Callbacks {
    pub fn send_task_success(&self, token: &str, output: Value) -> Result<(), CallbackError> {
        self.registry.send(token, Msg::Success(output))
    }

    pub fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), CallbackError> {
        self.registry
            .send(token, Msg::Failure(error.to_string(), cause.to_string()))
    }

    pub fn send_task_heartbeat(&self, token: &str) -> Result<(), CallbackError> {
        self.registry.send(token, Msg::Heartbeat)
    }
}
