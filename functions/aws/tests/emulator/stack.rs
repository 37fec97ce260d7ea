//! Deploying the stack's resources into the emulator (what CloudFormation and the operators would
//! have made: the release bucket, the migration project, the DynamoDB tables, the ECS cluster),
//! seeding tenants, and uploading releases. These use the harness's unrecorded clients: they are
//! setup, not calls the stack makes.

use super::env::Env;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tenantflow_core::steps::StepName;

/// The generation every seeded tenant starts on, and its release.
pub const OLD_GEN: &str = "20260101000000";
pub const OLD_RELEASE: &str = "r0";
/// Tasks of each tenant's service (moto runs with MOTO_ECS_SERVICE_RUNNING=1).
const DESIRED: i32 = 1;
const FAMILY: &str = "tenant-app";
/// The account's parameter and option groups the tenant databases use (the restore copies them).
const PARAMETER_GROUP: &str = "tenant-postgres13";
const OPTION_GROUP: &str = "tenant-postgres13-options";

pub fn old_instance(tenant: &str) -> String {
    format!("{tenant}-{OLD_GEN}")
}

impl Env {
    pub fn default_cluster(&self) -> String {
        self.template()
            .env_value(StepName::RollEcs, "TENANTFLOW_DEFAULT_CLUSTER")
            .expect("TENANTFLOW_DEFAULT_CLUSTER")
    }

    /// The release bucket (versioned), the migration project, the default ECS cluster.
    pub async fn deploy_stack(&self) {
        let t = self.template();
        let a = &self.admin;
        let bucket = t.release_bucket();
        let mut create = a.s3.create_bucket().bucket(&bucket);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        // S3 is global in moto: the first test creates the bucket, the others find it.
        if let Err(e) = create.send().await {
            let code = e.as_service_error().and_then(|s| {
                use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                s.code().map(str::to_string)
            });
            assert!(
                matches!(
                    code.as_deref(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ),
                "create bucket {bucket}: {e:?}"
            );
        }
        a.s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();

        let project = t.migration_project();
        let role_arn = t.doc["principals"][project["role"].as_str().unwrap()]["arn"]
            .as_str()
            .unwrap()
            .to_string();
        use aws_sdk_codebuild::types::*;
        a.codebuild
            .create_project()
            .name(project["name"].as_str().unwrap())
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::NoSource)
                    .location("none")
                    .buildspec("version: 0.2")
                    .build()
                    .unwrap(),
            )
            .artifacts(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::NoArtifacts)
                    .build()
                    .unwrap(),
            )
            .environment(
                ProjectEnvironment::builder()
                    .r#type(EnvironmentType::LinuxContainer)
                    .image("flyway/flyway:10")
                    .compute_type(ComputeType::BuildGeneral1Small)
                    .build()
                    .unwrap(),
            )
            .service_role(role_arn)
            .send()
            .await
            .unwrap();

        a.rds
            .create_db_parameter_group()
            .db_parameter_group_name(PARAMETER_GROUP)
            .db_parameter_group_family("postgres13")
            .description("tenant databases")
            .send()
            .await
            .unwrap();
        a.rds
            .create_option_group()
            .option_group_name(OPTION_GROUP)
            .engine_name("postgres")
            .major_engine_version("13")
            .option_group_description("tenant databases")
            .send()
            .await
            .unwrap();
        self.create_tables().await;
        a.ecs
            .create_cluster()
            .cluster_name(self.default_cluster())
            .send()
            .await
            .unwrap();
        a.ecs
            .register_task_definition()
            .family(FAMILY)
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image("app:latest")
                    .memory(128)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Every DynamoDB table the template defines (none yet on some branches), with its keys,
    /// indexes and TTL, on demand.
    async fn create_tables(&self) {
        use aws_sdk_dynamodb::types::*;
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        for table in self.template().doc["tables"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let keys = |v: &Value| -> Vec<KeySchemaElement> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        KeySchemaElement::builder()
                            .attribute_name(s(k, "AttributeName"))
                            .key_type(KeyType::from(s(k, "KeyType").as_str()))
                            .build()
                            .unwrap()
                    })
                    .collect()
            };
            let mut req = self
                .admin
                .dynamodb
                .create_table()
                .table_name(s(table, "name"))
                .billing_mode(BillingMode::PayPerRequest)
                .set_key_schema(Some(keys(&table["keySchema"])));
            for a in table["attributeDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                req = req.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(s(a, "AttributeName"))
                        .attribute_type(ScalarAttributeType::from(s(a, "AttributeType").as_str()))
                        .build()
                        .unwrap(),
                );
            }
            for g in table["globalSecondaryIndexes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                req = req.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(s(g, "IndexName"))
                        .set_key_schema(Some(keys(&g["KeySchema"])))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::from(
                                    g["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
                                ))
                                .build(),
                        )
                        .build()
                        .unwrap(),
                );
            }
            req.send().await.unwrap();
            if let Some(attr) = table["ttlAttribute"].as_str() {
                self.admin
                    .dynamodb
                    .update_time_to_live()
                    .table_name(s(table, "name"))
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(attr)
                            .enabled(true)
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// A tenant on generation [`OLD_GEN`] at release [`OLD_RELEASE`]: its instance (protected,
    /// tagged), its active pointer, its ECS service.
    pub async fn add_tenant(&self, tenant: &str) {
        let a = &self.admin;
        let id = old_instance(tenant);
        let tag = |k: &str, v: &str| aws_sdk_rds::types::Tag::builder().key(k).value(v).build();
        let out = a
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .engine_version("13.15")
            .db_parameter_group_name(PARAMETER_GROUP)
            .option_group_name(OPTION_GROUP)
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("not-a-secret-1")
            .deletion_protection(true)
            .tags(tag("tenantflow:namespace", tenant))
            .tags(tag("tenantflow:release", OLD_RELEASE))
            .tags(tag("tenantflow:role", "active"))
            .send()
            .await
            .unwrap();
        let ep = out.db_instance().and_then(|i| i.endpoint()).unwrap();
        let pointer = json!({
            "generation": OLD_GEN,
            "instanceId": id,
            "endpoint": ep.address().unwrap_or_default(),
            "port": ep.port().unwrap_or(5432),
            "release": OLD_RELEASE,
        });
        a.ssm
            .put_parameter()
            .name(format!("/tenantflow/{tenant}/db"))
            .value(pointer.to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
        a.ecs
            .create_service()
            .cluster(self.default_cluster())
            .service_name(tenant)
            .task_definition(FAMILY)
            .desired_count(DESIRED)
            .send()
            .await
            .unwrap();
        self.contents.set_instance(&id, OLD_RELEASE);
    }

    /// A tenant database from before tenantflow: instance `id` (any name, unprotected, with
    /// the tenants' engine and groups, carrying only `tags`) at release [`OLD_RELEASE`], and the
    /// tenant's ECS service `service`; no pointer (that is what `tenantflow aws adopt` writes).
    pub async fn add_legacy_instance(&self, id: &str, tags: &[(&str, &str)], service: &str) {
        let a = &self.admin;
        let mut req = a
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .engine_version("13.15")
            .db_parameter_group_name(PARAMETER_GROUP)
            .option_group_name(OPTION_GROUP)
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("not-a-secret-1");
        for (k, v) in tags {
            req = req.tags(aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build());
        }
        req.send().await.unwrap();
        a.ecs
            .create_service()
            .cluster(self.default_cluster())
            .service_name(service)
            .task_definition(FAMILY)
            .desired_count(DESIRED)
            .send()
            .await
            .unwrap();
        self.contents.set_instance(id, OLD_RELEASE);
    }

    /// Uploads `releases/<id>/` (two scripts, then the manifest, as a release is committed) and
    /// returns the manifest's key and version id. `extra` is merged into the manifest.
    pub async fn upload_release(&self, id: &str, extra: Value) -> (String, String) {
        let bucket = self.template().release_bucket();
        let scripts = [
            (
                "V1__base.sql".to_string(),
                "CREATE TABLE customer (id BIGINT PRIMARY KEY);\n".to_string(),
            ),
            (
                format!("V2__{}.sql", id.replace(['-', '.'], "_")),
                format!(
                    "ALTER TABLE customer ADD COLUMN note_{} TEXT;\n",
                    id.replace(['-', '.'], "_")
                ),
            ),
        ];
        let mut entries = Vec::new();
        for (name, body) in &scripts {
            self.admin
                .s3
                .put_object()
                .bucket(&bucket)
                .key(format!("releases/{id}/{name}"))
                .body(body.clone().into_bytes().into())
                .send()
                .await
                .unwrap();
            entries.push(json!({"name": name, "sha256": hex(&Sha256::digest(body.as_bytes()))}));
        }
        let mut manifest = json!({
            "release": id,
            "scripts": entries,
            "strategy": "blue-green",
            "fleet": "independent",
            "waves": {"maxFailurePercent": 100.0},
            "tenants": {},
            "writeFreeze": true,
            "bakeSeconds": 60,
            "snapshotRetention": 2,
        });
        if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        // What `tenantflow release pack` writes next to the manifest (the plan refuses a release
        // without it).
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let sums = tenantflow_core::manifest::Manifest::parse(&bytes)
            .and_then(|m| m.sha256sums())
            .unwrap();
        self.admin
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("releases/{id}/SHA256SUMS"))
            .body(sums.into_bytes().into())
            .send()
            .await
            .unwrap();
        let key = format!("releases/{id}/manifest.json");
        let out = self
            .admin
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(serde_json::to_vec_pretty(&manifest).unwrap().into())
            .send()
            .await
            .unwrap();
        (key, out.version_id().unwrap_or_default().to_string())
    }

    /// The EventBridge "Object Created" event of the release bucket for `key`.
    pub fn object_created(&self, key: &str, version: &str) -> Value {
        let t = self.template();
        let bucket = t.release_bucket();
        json!({
            "version": "0",
            "id": "00000000-0000-0000-0000-000000000000",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": t.account(),
            "time": "2026-11-03T10:14:58Z",
            "region": t.region(),
            "resources": [format!("arn:aws:s3:::{bucket}")],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {"key": key, "size": 1, "etag": "0123456789abcdef", "version-id": version},
                "reason": "PutObject"
            }
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
