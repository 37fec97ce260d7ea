//! [`LocalPorts`]: every port on one state directory, built once, plus the core `Ports` bundle.

use crate::clock::{Clock, SwitchClock, SystemClock};
use crate::codebuild::LocalMigrations;
use crate::ecs::LocalServices;
use crate::error::LocalError;
use crate::events::LocalBus;
use crate::layout::{Layout, StateConfig};
use crate::rds::LocalDatabases;
use crate::records::LocalRecords;
use crate::s3::LocalObjects;
use crate::secrets::LocalSecrets;
use crate::ssm::LocalParameters;
use crate::workflows::LocalWorkflows;
use std::sync::Arc;
use tenantflow_core::steps::{Ports, Settings};

/// The local adapters, typed (for the local API) and as the core [`Ports`] bundle (for steps).
/// `secrets` and `migrations` are local API only: no step calls them (the engine's runner starts
/// builds for `codebuild:startBuild.sync`).
#[derive(Clone)]
pub struct LocalPorts {
    pub layout: Layout,
    pub config: StateConfig,
    pub clock: Arc<SwitchClock>,
    pub bus: Arc<LocalBus>,
    pub databases: Arc<LocalDatabases>,
    pub parameters: Arc<LocalParameters>,
    pub records: Arc<LocalRecords>,
    pub objects: Arc<LocalObjects>,
    pub secrets: Arc<LocalSecrets>,
    pub services: Arc<LocalServices>,
    pub migrations: Arc<LocalMigrations>,
    pub workflows: Arc<LocalWorkflows>,
    pub settings: Settings,
}

impl LocalPorts {
    /// Opens every port on the state directory `layout` (which must exist).
    pub fn open(layout: &Layout, config: StateConfig) -> Result<LocalPorts, LocalError> {
        let clock = SwitchClock::new(Arc::new(SystemClock));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let heavy = crate::heavy::HeavyPool::shared();
        let bus = LocalBus::new(layout.events_log(), dyn_clock.clone());
        let databases = Arc::new(
            LocalDatabases::open(
                layout,
                dyn_clock.clone(),
                bus.clone(),
                config.limits,
                config.durations,
                heavy.clone(),
            )
            .map(|d| d.simulated(config.simulate))
            .map_err(|e| LocalError::sqlite(&layout.rds_registry(), e))?,
        );
        let parameters = Arc::new(
            LocalParameters::open(&layout.ssm(), dyn_clock.clone())
                .map_err(|e| LocalError::sqlite(&layout.ssm(), e))?,
        );
        let records = Arc::new(
            LocalRecords::open(&layout.records(), dyn_clock.clone())
                .map_err(|e| LocalError::sqlite(&layout.records(), e))?,
        );
        let objects = Arc::new(LocalObjects::new(&layout.s3_dir()));
        let secrets = Arc::new(LocalSecrets::new(&layout.secrets()));
        let services = Arc::new(
            LocalServices::open(
                layout,
                dyn_clock.clone(),
                bus.clone(),
                parameters.clone(),
                objects.clone(),
                config.durations.rollout_seconds,
                heavy.clone(),
            )
            .map(|s| s.simulated(config.simulate))
            .map_err(|e| LocalError::sqlite(&layout.ecs_registry(), e))?,
        );
        let migrations = Arc::new(
            LocalMigrations::open(layout, dyn_clock, objects.clone(), databases.clone(), heavy)
                .map(|m| m.simulated(config.simulate))
                .map_err(|e| LocalError::sqlite(&layout.builds(), e))?,
        );
        let workflows = Arc::new(LocalWorkflows::new(&layout.runs_dir()));
        // The core defaults, except that the local "account" says how many builds it runs.
        let settings = Settings {
            build_concurrency: config.limits.builds,
            quota_hint: Some(format!("\"limits\" in {}", layout.marker().display())),
            ..Settings::default()
        };
        Ok(LocalPorts {
            layout: layout.clone(),
            config,
            clock,
            bus,
            databases,
            parameters,
            records,
            objects,
            secrets,
            services,
            migrations,
            workflows,
            settings,
        })
    }

    /// The core `Ports` bundle over these adapters.
    pub fn ports(&self) -> Ports {
        Ports {
            databases: self.databases.clone(),
            parameters: self.parameters.clone(),
            records: self.records.clone(),
            services: self.services.clone(),
            workflows: self.workflows.clone(),
            objects: self.objects.clone(),
            events: self.bus.clone(),
            settings: self.settings.clone(),
        }
    }
}
