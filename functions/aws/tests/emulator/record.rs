//! Recording every AWS call: an SDK interceptor that captures, per call, the principal making it,
//! the service and operation (the SDK's own operation metadata) and the request's parameters as
//! they went on the wire, plus the HTTP status that came back.
//!
//! Parameters are read from the serialized request, so one interceptor covers every client and
//! protocol: awsQuery (RDS: a form body), awsJson (SSM, ECS, CodeBuild, Step Functions, Secrets
//! Manager, EventBridge, DynamoDB: a JSON body) and S3's REST (bucket and key from the path-style
//! URI, the query string). Calls the emulator cannot serve and the harness answers itself, and
//! calls AWS services make on the stack's behalf (the state machine invoking functions, the
//! migration build reading scripts), are added with [`Recorder::push`], marked by `via`.
//!
//! IAM may decide on a resource's tags (`aws:ResourceTag/<key>`), which a request does not carry.
//! So for each RDS call the recorder reads the tags of every instance and snapshot the request
//! names from the emulator just before the call goes out ([`TagReader`]), and records them with
//! the call: the tags IAM would have seen, even when the call then deletes the resource.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};

/// Tag key -> value.
pub type Tags = BTreeMap<String, String>;

/// One recorded call.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// Logical id of the IAM role the call runs as (e.g. `SnapshotFunctionRole`).
    pub principal: String,
    /// What made the call: a step name, `states` (the state machine), `build`, `scheduler`.
    pub caller: String,
    /// The SDK's service name: `RDS`, `SSM`, `S3`, `SFN`, `ECS`, `CodeBuild`, …
    pub service: String,
    pub operation: String,
    /// The request's parameters (form fields, JSON body, or `{bucket, key, query}` for S3).
    pub params: Value,
    /// HTTP status of the answer, when one came.
    pub status: Option<u16>,
    /// `emulator` (moto answered), `engine` (the local Step Functions API answered), `harness`
    /// (the emulator lacks the API; the harness answered), `service` (a call AWS itself makes
    /// for the stack, recorded from what the harness did in its place).
    pub via: String,
    /// For an RDS call made through a recording client: the tags, read from the emulator as the
    /// call went out, of each instance (`db:<id>`) and snapshot (`snapshot:<id>`) the request
    /// names; one that did not exist has no entry (it has no tags). `None`: not read.
    pub resource_tags: Option<BTreeMap<String, Tags>>,
}

/// A shared, append-only log of calls.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Call>>>,
    tags: Option<Arc<TagReader>>,
}

impl Recorder {
    /// A log whose RDS calls carry their resources' tags, read with `tags`.
    pub fn with_tag_reader(tags: TagReader) -> Self {
        Recorder {
            log: Arc::default(),
            tags: Some(Arc::new(tags)),
        }
    }
    pub fn push(&self, call: Call) -> usize {
        let mut v = self.log.lock().unwrap();
        v.push(call);
        v.len() - 1
    }
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap().clone()
    }
    fn set_status(&self, i: usize, status: u16) {
        if let Some(c) = self.log.lock().unwrap().get_mut(i) {
            c.status = Some(status);
        }
    }
    /// An interceptor recording into this log as `principal` (called by `caller`).
    pub fn interceptor(&self, principal: &str, caller: &str, via: &str) -> RecordingInterceptor {
        RecordingInterceptor {
            log: self.clone(),
            principal: principal.to_string(),
            caller: caller.to_string(),
            via: via.to_string(),
        }
    }
}

/// The SDK interceptor: one record per attempt that reached the wire.
#[derive(Debug, Clone)]
pub struct RecordingInterceptor {
    log: Recorder,
    principal: String,
    caller: String,
    via: String,
}

/// Index of this execution's record, carried from before-transmit to the end of the execution.
#[derive(Debug, Clone)]
struct RecordIndex(usize);
impl Storable for RecordIndex {
    type Storer = StoreReplace<Self>;
}

impl Intercept for RecordingInterceptor {
    fn name(&self) -> &'static str {
        "EmulatorCallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let meta = cfg
            .load::<Metadata>()
            .ok_or("recorder: the SDK stored no operation metadata")?;
        let (service, operation) = (meta.service().to_string(), meta.name().to_string());
        let req = context.request();
        let body = req.body().bytes().unwrap_or_default();
        let params = wire_params(&service, req.method(), req.uri(), body);
        let resource_tags = match (&self.log.tags, service.as_str()) {
            (Some(reader), "RDS") => Some(reader.read(rds_resources(&params))),
            _ => None,
        };
        let i = self.log.push(Call {
            principal: self.principal.clone(),
            caller: self.caller.clone(),
            service,
            operation,
            params,
            status: None,
            via: self.via.clone(),
            resource_tags,
        });
        cfg.interceptor_state().store_put(RecordIndex(i));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(RecordIndex(i)), Some(resp)) = (cfg.load::<RecordIndex>(), context.response())
        {
            self.log.set_status(*i, resp.status().as_u16());
        }
        Ok(())
    }
}

/// The RDS resources an RDS request names, as `db:<id>` / `snapshot:<id>` (the resource part of
/// their ARNs): its instance and snapshot identifiers, and a `ResourceName` ARN.
pub fn rds_resources(params: &Value) -> Vec<String> {
    let s = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut out = Vec::new();
    if let Some(id) = s("DBInstanceIdentifier") {
        out.push(format!("db:{id}"));
    }
    if let Some(id) = s("DBSnapshotIdentifier") {
        out.push(format!("snapshot:{id}"));
    }
    if let Some(key) = s("ResourceName").and_then(rds_resource_of) {
        out.push(key);
    }
    out
}

/// `db:<id>` / `snapshot:<id>` from an RDS ARN (`arn:aws:rds:<region>:<account>:db:<id>`).
pub fn rds_resource_of(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "rds", _, _, kind @ ("db" | "snapshot"), id] => Some(format!("{kind}:{id}")),
        _ => None,
    }
}

/// Reads RDS resources' tags from the emulator for the (synchronous) recording interceptor: a
/// thread of its own with its own runtime and client, so a read never waits on the runtime of
/// the call being recorded. It stops when the reader is dropped.
#[derive(Debug)]
pub struct TagReader {
    requests: Mutex<mpsc::Sender<TagRequest>>,
}

/// Resources to read (`db:<id>`, `snapshot:<id>`) and where to send their tags.
type TagRequest = (Vec<String>, mpsc::Sender<BTreeMap<String, Tags>>);

impl TagReader {
    /// A reader of the emulator at `endpoint`, in `region`.
    pub fn start(region: &str, endpoint: &str) -> Self {
        let (tx, rx) = mpsc::channel::<TagRequest>();
        let (region, endpoint) = (region.to_string(), endpoint.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the tag reader");
            let rds = rt.block_on(async {
                aws_sdk_rds::Client::new(&super::env::sdk_config(&region, &endpoint).await)
            });
            while let Ok((keys, reply)) = rx.recv() {
                let _ = reply.send(rt.block_on(read_tags(&rds, keys)));
            }
        });
        TagReader {
            requests: Mutex::new(tx),
        }
    }

    /// The tags of each of `keys` (`db:<id>`, `snapshot:<id>`) that exists.
    pub fn read(&self, keys: Vec<String>) -> BTreeMap<String, Tags> {
        if keys.is_empty() {
            return BTreeMap::new();
        }
        let (tx, rx) = mpsc::channel();
        self.requests
            .lock()
            .unwrap()
            .send((keys, tx))
            .expect("the tag reader runs");
        rx.recv().expect("the tag reader answers")
    }
}

async fn read_tags(rds: &aws_sdk_rds::Client, keys: Vec<String>) -> BTreeMap<String, Tags> {
    let to_map = |list: &[aws_sdk_rds::types::Tag]| -> Tags {
        list.iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect()
    };
    let mut out = BTreeMap::new();
    for key in keys {
        let tags = match key.split_once(':') {
            Some(("db", id)) => rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .ok()
                .and_then(|o| o.db_instances().first().map(|i| to_map(i.tag_list()))),
            Some(("snapshot", id)) => rds
                .describe_db_snapshots()
                .db_snapshot_identifier(id)
                .send()
                .await
                .ok()
                .and_then(|o| o.db_snapshots().first().map(|s| to_map(s.tag_list()))),
            _ => None,
        };
        if let Some(tags) = tags {
            out.insert(key, tags);
        }
    }
    out
}

/// The request's parameters as JSON, whatever the protocol.
pub fn wire_params(service: &str, method: &str, uri: &str, body: &[u8]) -> Value {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = path
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(path);
    if service == "S3" {
        // Path style (the clients force it when an endpoint is set): /<bucket>/<key…>
        let trimmed = path.trim_start_matches('/');
        let (bucket, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        return json!({
            "method": method,
            "bucket": percent_decode(bucket),
            "key": percent_decode(key),
            "query": form(query),
        });
    }
    if body.first() == Some(&b'{') {
        return serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    if !body.is_empty() {
        return form(std::str::from_utf8(body).unwrap_or(""));
    }
    form(query)
}

/// `a=1&b=x%2Fy` as a JSON object of strings.
fn form(s: &str) -> Value {
    let mut m = Map::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(
            percent_decode(&k.replace('+', " ")),
            Value::String(percent_decode(&v.replace('+', " "))),
        );
    }
    Value::Object(m)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_protocol() {
        let q = wire_params(
            "RDS",
            "POST",
            "http://127.0.0.1:1/",
            b"Action=CreateDBSnapshot&DBSnapshotIdentifier=a-1&Tags.Tag.1.Key=tenantflow%3Anamespace",
        );
        assert_eq!(q["DBSnapshotIdentifier"], "a-1");
        assert_eq!(q["Tags.Tag.1.Key"], "tenantflow:namespace");
        let j = wire_params(
            "SSM",
            "POST",
            "http://h/",
            br#"{"Name":"/tenantflow/a/db"}"#,
        );
        assert_eq!(j["Name"], "/tenantflow/a/db");
        let s = wire_params(
            "S3",
            "GET",
            "http://127.0.0.1:1/bkt/releases/r%201/manifest.json?x-id=GetObject&versionId=v1",
            b"",
        );
        assert_eq!(s["bucket"], "bkt");
        assert_eq!(s["key"], "releases/r 1/manifest.json");
        assert_eq!(s["query"]["versionId"], "v1");
    }
}
