//! [`Unavailable`]: the port a step does not declare.

use super::{Port, StepName};
use crate::error::StepError;
use crate::model::{ResourceKind, ServiceRef, TenantRecord, WaitRecord};
use crate::names::{InstanceId, Namespace, SnapshotId};
use crate::ports::{
    Databases, DatedParameter, DbInstance, DbSnapshot, DeploymentStatus, Events, ExecutionState,
    Headroom, LockTake, Objects, Parameter, Parameters, PrimaryDeployment, Records, RestoreRequest,
    Services, Started, Tags, Workflows,
};
use async_trait::async_trait;

/// A port that `step` does not declare ([`StepName::ports`]), so its Lambda has no client for it.
/// Every call fails with `Tenantflow.Internal` naming the step, the port and the method: a wrong
/// declaration is a typed error at the first call, never a silent no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    pub step: StepName,
    pub port: Port,
}

impl Unavailable {
    fn fail<T>(&self, method: &str) -> Result<T, StepError> {
        Err(StepError::Internal(format!(
            "step {} called {}.{method}: a port it does not declare, so this Lambda has no client for it",
            self.step, self.port
        )))
    }
}

#[async_trait]
impl Databases for Unavailable {
    async fn describe_instance(&self, _: &InstanceId) -> Result<Option<DbInstance>, StepError> {
        self.fail("describe_instance")
    }
    async fn describe_snapshot(&self, _: &SnapshotId) -> Result<Option<DbSnapshot>, StepError> {
        self.fail("describe_snapshot")
    }
    async fn create_snapshot(
        &self,
        _: &InstanceId,
        _: &SnapshotId,
        _: &Tags,
    ) -> Result<DbSnapshot, StepError> {
        self.fail("create_snapshot")
    }
    async fn restore_instance(&self, _: &RestoreRequest) -> Result<DbInstance, StepError> {
        self.fail("restore_instance")
    }
    async fn set_deletion_protection(&self, _: &InstanceId, _: bool) -> Result<(), StepError> {
        self.fail("set_deletion_protection")
    }
    async fn delete_instance(&self, _: &InstanceId) -> Result<(), StepError> {
        self.fail("delete_instance")
    }
    async fn delete_snapshot(&self, _: &SnapshotId) -> Result<(), StepError> {
        self.fail("delete_snapshot")
    }
    async fn list_instances(&self, _: &str) -> Result<Vec<DbInstance>, StepError> {
        self.fail("list_instances")
    }
    async fn list_snapshots(&self, _: &str) -> Result<Vec<DbSnapshot>, StepError> {
        self.fail("list_snapshots")
    }
    async fn headroom(&self) -> Result<Headroom, StepError> {
        self.fail("headroom")
    }
}

#[async_trait]
impl Parameters for Unavailable {
    async fn get(&self, _: &str) -> Result<Option<Parameter>, StepError> {
        self.fail("get")
    }
    async fn get_dated(&self, _: &str) -> Result<Option<DatedParameter>, StepError> {
        self.fail("get_dated")
    }
    async fn create(&self, _: &str, _: &str) -> Result<Option<i64>, StepError> {
        self.fail("create")
    }
    async fn put(&self, _: &str, _: &str) -> Result<i64, StepError> {
        self.fail("put")
    }
    async fn delete(&self, _: &str) -> Result<(), StepError> {
        self.fail("delete")
    }
    async fn list(&self, _: &str) -> Result<Vec<Parameter>, StepError> {
        self.fail("list")
    }
}

#[async_trait]
impl Services for Unavailable {
    async fn force_deployment(&self, _: &ServiceRef) -> Result<String, StepError> {
        self.fail("force_deployment")
    }
    async fn primary_deployment(
        &self,
        _: &ServiceRef,
    ) -> Result<Option<PrimaryDeployment>, StepError> {
        self.fail("primary_deployment")
    }
    async fn deployment(
        &self,
        _: &ServiceRef,
        _: &str,
    ) -> Result<Option<DeploymentStatus>, StepError> {
        self.fail("deployment")
    }
}

#[async_trait]
impl Workflows for Unavailable {
    async fn start_execution(&self, _: &str, _: &str) -> Result<Started, StepError> {
        self.fail("start_execution")
    }
    async fn send_task_success(&self, _: &str, _: &str) -> Result<(), StepError> {
        self.fail("send_task_success")
    }
    async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), StepError> {
        self.fail("send_task_failure")
    }
    async fn execution_status(&self, _: &str) -> Result<Option<ExecutionState>, StepError> {
        self.fail("execution_status")
    }
}

#[async_trait]
impl Objects for Unavailable {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StepError> {
        self.fail("get")
    }
    async fn put(&self, _: &str, _: &str, _: &[u8]) -> Result<(), StepError> {
        self.fail("put")
    }
    async fn list(&self, _: &str, _: &str) -> Result<Vec<String>, StepError> {
        self.fail("list")
    }
}

#[async_trait]
impl Events for Unavailable {
    async fn put_event(&self, _: &str, _: &serde_json::Value) -> Result<(), StepError> {
        self.fail("put_event")
    }
}

#[async_trait]
impl Records for Unavailable {
    async fn acquire(&self, _: &Namespace, _: &str, _: &str) -> Result<LockTake, StepError> {
        self.fail("acquire")
    }
    async fn release(&self, _: &Namespace, _: &str) -> Result<bool, StepError> {
        self.fail("release")
    }
    async fn write_journal(
        &self,
        _: &Namespace,
        _: i64,
        _: &crate::model::Journal,
    ) -> Result<Option<TenantRecord>, StepError> {
        self.fail("write_journal")
    }
    async fn get_tenant(&self, _: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        self.fail("get_tenant")
    }
    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError> {
        self.fail("list_held")
    }
    async fn list_run(&self, _: &str) -> Result<Vec<TenantRecord>, StepError> {
        self.fail("list_run")
    }
    async fn put_token(&self, _: ResourceKind, _: &str, _: &WaitRecord) -> Result<(), StepError> {
        self.fail("put_token")
    }
    async fn get_token(&self, _: ResourceKind, _: &str) -> Result<Option<WaitRecord>, StepError> {
        self.fail("get_token")
    }
    async fn delete_token(&self, _: ResourceKind, _: &str, _: &str) -> Result<bool, StepError> {
        self.fail("delete_token")
    }
}
