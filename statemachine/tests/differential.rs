//! Differential test: the conformance cases marked `"differential": true`, plus a bounded batch
//! of proptest-generated Pass/Choice/Parallel/Map definitions with random inputs, run through
//! both our engine and aws-local-stepfunctions (an independent JS interpreter, Node 22), in ONE
//! node process. Outcomes must be identical: status, output for successes, error name for
//! failures (and the cause where the case fixes it: engine-written causes are free text).
//! Cases marked `"differential": false` are known divergences; each names the AWS page that
//! decides, and they are printed as a list.
//!
//! Node: `$TENANTFLOW_NODE` or `.tools/node/node_modules/node/bin/node`; the package:
//! `$TENANTFLOW_ALSF` or `.tools/node/node_modules/aws-local-stepfunctions` (both installed by
//! `.ci/tools/node.sh`). When missing, the test fails under `CI` and is skipped otherwise.

#[path = "conformance/harness.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harness::{check, load_cases, run_ours, Case, Outcome};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// How many random definitions the property test generates (bounded for CI).
const PROPERTY_CASES: usize = 64;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Node and the aws-local-stepfunctions package, or why they are unavailable.
fn js_tools() -> Result<(PathBuf, PathBuf), String> {
    let tools = workspace_root().join(".tools/node");
    let node = std::env::var_os("TENANTFLOW_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("node_modules/node/bin/node"));
    let alsf = std::env::var_os("TENANTFLOW_ALSF")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("node_modules/aws-local-stepfunctions"));
    if !node.exists() {
        return Err(format!("node not found at {}", node.display()));
    }
    if !alsf.join("package.json").exists() {
        return Err(format!(
            "aws-local-stepfunctions not found at {}",
            alsf.display()
        ));
    }
    Ok((node, alsf))
}

/// Returns None (after printing a skip notice) when the tools are missing outside CI.
fn js_tools_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    match js_tools() {
        Ok(t) => Some(t),
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {why}; run .ci/tools/node.sh to install Node 22 and aws-local-stepfunctions");
            }
            eprintln!("SKIPPED {test}: {why} (run .ci/tools/node.sh to enable it)");
            None
        }
    }
}

/// Runs every case through aws-local-stepfunctions in one node process.
fn run_js(node: &Path, alsf: &Path, cases: &[Value]) -> Vec<Outcome> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/run.mjs");
    let mut child = Command::new(node)
        .arg(&script)
        .env("TENANTFLOW_ALSF", alsf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", node.display()));
    let payload = json!({ "cases": cases }).to_string();
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let writer = std::thread::spawn(move || stdin.write_all(payload.as_bytes()));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("node failed: {e}"));
    match writer.join() {
        Ok(Ok(())) => {}
        other => panic!("cannot write the cases to node: {other:?}"),
    }
    assert!(
        out.status.success(),
        "node exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "run.mjs printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(results.len(), cases.len(), "run.mjs lost cases");
    results.iter().map(Outcome::from_js).collect()
}

/// Compares the two engines' outcomes of one case; `expect_cause` says whether causes must match.
fn compare(ours: &Outcome, js: &Outcome, expect_cause: bool) -> Option<String> {
    let same = ours.status == js.status
        && match ours.status.as_str() {
            "SUCCEEDED" => ours.output == js.output,
            "FAILED" => ours.error == js.error && (!expect_cause || ours.cause == js.cause),
            _ => true,
        };
    (!same).then(|| format!("ours: {}\n    js:   {}", ours.brief(), js.brief()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_aws_local_stepfunctions() {
    let Some((node, alsf)) = js_tools_or_skip("differential_against_aws_local_stepfunctions")
    else {
        return;
    };
    let started = std::time::Instant::now();
    let all = load_cases();
    let (cases, divergent): (Vec<&Case>, Vec<&Case>) = all.iter().partition(|c| c.differential());
    let props = property_cases();
    let mut batch: Vec<Value> = cases.iter().map(|c| c.raw.clone()).collect();
    batch.extend(props.iter().map(|c| c.raw.clone()));
    let js = run_js(&node, &alsf, &batch);
    let js_seconds = started.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    let mut generated_succeeded = 0;
    for (case, js) in cases.iter().copied().chain(props.iter()).zip(&js) {
        let (ours, _store) = run_ours(case).await;
        let expect_cause = case.expect().get("cause").is_some();
        if case.name.starts_with("prop_") && ours.status == "SUCCEEDED" {
            generated_succeeded += 1;
        }
        if let Some(diff) = compare(&ours, js, expect_cause) {
            problems.push(format!("{}: engines differ\n    {diff}", case.name));
        } else if !case.name.starts_with("prop_") {
            // Both agree; make sure they agree with the AWS-documented expectation too.
            let off = check(case, js, None, false);
            if !off.is_empty() {
                problems.push(format!(
                    "{}: both engines disagree with the docs: {}",
                    case.name,
                    off.join("; ")
                ));
            }
        }
    }
    println!(
        "differential: {} conformance cases + {} generated definitions compared in {:.2} s (node batch {:.2} s)",
        cases.len(),
        props.len(),
        started.elapsed().as_secs_f64(),
        js_seconds
    );
    // Generated definitions only read fields that exist, so they should run to completion.
    assert_eq!(
        generated_succeeded,
        props.len(),
        "generated definitions must succeed in our engine (see the mismatches above, if any)"
    );
    println!("known divergences (not compared; the AWS page named decides):");
    for c in &divergent {
        println!("  - {}: {}", c.name, c.divergence().unwrap_or_default());
    }
    assert!(
        problems.is_empty(),
        "{} differential mismatch(es):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ------------------------------------------------------------------ random definitions

/// Random inputs: scalars the generated Choice rules test, and an array the Maps iterate.
fn input_strategy() -> impl Strategy<Value = Value> {
    let item = (-5i64..=5, prop::sample::select(vec!["x", "y", "z"]))
        .prop_map(|(v, s)| json!({ "v": v, "s": s }));
    (
        -5i64..=5,
        prop::sample::select(vec!["alpha", "beta", "gamma", ""]),
        any::<bool>(),
        prop::collection::vec(item, 0..4),
    )
        .prop_map(|(a, b, c, arr)| json!({ "a": a, "b": b, "c": c, "arr": arr }))
}

/// Builds a definition from a stream of random numbers. Every state writes its result to a
/// fresh field (ResultPath), so `$.a`, `$.b`, `$.c`, `$.arr` stay readable everywhere at the top
/// level and `$.v`, `$.i`, `$.a` inside Map iterations.
struct Builder {
    rng: Vec<u32>,
    pos: usize,
    next_id: usize,
}

impl Builder {
    fn pick(&mut self, n: u32) -> u32 {
        let r = self.rng.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        r % n.max(1)
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn small_value(&mut self) -> Value {
        match self.pick(5) {
            // No falsy Results: aws-local-stepfunctions ignores them (see pass_result_falsy_value).
            0 => json!(self.pick(100) as i64 + 1),
            1 => json!(["k", self.pick(3)]),
            2 => json!({ "n": self.pick(10), "t": "s" }),
            3 => json!(true),
            _ => json!(format!("str{}", self.pick(10))),
        }
    }

    /// A chain of 1..=4 states; `in_map` selects the field names of a Map iteration's input.
    fn block(&mut self, depth: u32, in_map: bool) -> Value {
        let len = 1 + self.pick(4) as usize;
        let names: Vec<String> = (0..len).map(|_| self.id("S")).collect();
        let mut states = Map::new();
        for (k, name) in names.iter().enumerate() {
            let next = names.get(k + 1).cloned();
            self.add_step(&mut states, name, next, depth, in_map);
        }
        json!({ "StartAt": names[0], "States": states })
    }

    fn num_field(&mut self, in_map: bool) -> &'static str {
        if in_map {
            ["$.v", "$.i", "$.a"][self.pick(3) as usize]
        } else {
            "$.a"
        }
    }

    fn add_step(
        &mut self,
        states: &mut Map<String, Value>,
        name: &str,
        next: Option<String>,
        depth: u32,
        in_map: bool,
    ) {
        let link = |mut s: Value, next: &Option<String>| {
            match next {
                Some(n) => s["Next"] = json!(n),
                None => s["End"] = json!(true),
            }
            s
        };
        let field = format!("$.{}", name.to_lowercase());
        let kinds = if depth == 0 { 3 } else { 5 };
        let state = match self.pick(kinds) {
            0 => json!({ "Type": "Pass", "Result": self.small_value(), "ResultPath": field }),
            1 => {
                let num = self.num_field(in_map);
                let k = self.pick(7) as i64 - 3;
                let mut params = json!({
                    "const": self.small_value(),
                    "num.$": num,
                    "sum.$": format!("States.MathAdd({num}, {k})"),
                    "text.$": format!("States.Format('n={{}}', {num})"),
                });
                if !in_map {
                    params["len.$"] = json!("States.ArrayLength($.arr)");
                    params["b.$"] = json!("$.b");
                }
                json!({ "Type": "Pass", "Parameters": params, "ResultPath": field })
            }
            2 => {
                // Choice: two arms that write different results and rejoin at `next`.
                let yes = self.id("Yes");
                let no = self.id("No");
                let rule = self.choice_rule(in_map);
                let yes_state = link(
                    json!({ "Type": "Pass", "Result": format!("{yes}"), "ResultPath": field }),
                    &next,
                );
                let no_state = link(
                    json!({ "Type": "Pass", "Result": format!("{no}"), "ResultPath": field }),
                    &next,
                );
                let mut rule = rule;
                rule["Next"] = json!(yes);
                states.insert(
                    name.to_string(),
                    json!({ "Type": "Choice", "Choices": [rule], "Default": no }),
                );
                states.insert(yes, yes_state);
                states.insert(no, no_state);
                return;
            }
            3 => {
                let n = 1 + self.pick(3);
                let branches: Vec<Value> = (0..n).map(|_| self.branch(depth - 1, in_map)).collect();
                json!({ "Type": "Parallel", "Branches": branches, "ResultPath": field })
            }
            _ => {
                let mut map = json!({
                    "Type": "Map",
                    "ItemsPath": if in_map { "$.pair" } else { "$.arr" },
                    "ItemSelector": {
                        "v.$": if in_map { "$$.Map.Item.Value" } else { "$$.Map.Item.Value.v" },
                        "i.$": "$$.Map.Item.Index",
                        "a.$": "$.a",
                    },
                    "ItemProcessor": self.branch(depth - 1, true),
                    "ResultPath": field,
                });
                if self.pick(2) == 0 {
                    map["MaxConcurrency"] = json!(self.pick(3));
                }
                if in_map {
                    // Give the iteration input a `pair` field first.
                    let prep = self.id("Prep");
                    states.insert(
                        name.to_string(),
                        json!({ "Type": "Pass", "Parameters": { "v.$": "$.v", "i.$": "$.i", "a.$": "$.a",
                                 "pair.$": "States.Array($.v, $.i)" }, "Next": prep }),
                    );
                    states.insert(prep, link(map, &next));
                    return;
                }
                map
            }
        };
        states.insert(name.to_string(), link(state, &next));
    }

    /// A sub-machine for a Parallel branch or Map iteration, ending in a small OutputPath.
    fn branch(&mut self, depth: u32, in_map: bool) -> Value {
        let mut b = self.block(depth, in_map);
        let last = self.id("Out");
        let out = if self.pick(2) == 0 { "$" } else { "$.a" };
        // Re-link the block's end states to a final Pass that trims the output.
        if let Some(states) = b["States"].as_object_mut() {
            for s in states.values_mut() {
                if s.get("End").is_some() {
                    s.as_object_mut().map(|o| o.remove("End"));
                    s["Next"] = json!(last);
                }
            }
            states.insert(
                last,
                json!({ "Type": "Pass", "OutputPath": out, "End": true }),
            );
        }
        b
    }

    fn choice_rule(&mut self, in_map: bool) -> Value {
        let num = self.num_field(in_map);
        let k = self.pick(7) as i64 - 3;
        let simple = |b: &mut Builder| -> Value {
            match b.pick(if in_map { 3 } else { 6 }) {
                0 => json!({ "Variable": num, "NumericGreaterThan": k }),
                1 => json!({ "Variable": num, "NumericLessThanEquals": k }),
                2 => json!({ "Variable": num, "IsNumeric": true }),
                3 => json!({ "Variable": "$.b", "StringEquals": "beta" }),
                4 => json!({ "Variable": "$.b", "StringMatches": "*a*" }),
                _ => json!({ "Variable": "$.c", "BooleanEquals": true }),
            }
        };
        match self.pick(4) {
            0 => json!({ "And": [simple(self), simple(self)] }),
            1 => json!({ "Or": [simple(self), simple(self)] }),
            2 => json!({ "Not": simple(self) }),
            _ => simple(self),
        }
    }
}

/// Generates the property-test cases with proptest (fixed seed, so CI is reproducible).
fn property_cases() -> Vec<Case> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = (input_strategy(), prop::collection::vec(any::<u32>(), 256));
    (0..PROPERTY_CASES)
        .map(|i| {
            let (input, rng) = strategy
                .new_tree(&mut runner)
                .unwrap_or_else(|e| panic!("proptest: {e}"))
                .current();
            let mut b = Builder {
                rng,
                pos: 0,
                next_id: 0,
            };
            let definition = b.block(2, false);
            let name = format!("prop_{i:02}");
            let raw = json!({
                "name": name,
                "doc": "property test",
                "definition": definition,
                "input": input,
                "expect": {},
            });
            Case { name, raw }
        })
        .collect()
}

#[test]
fn generated_definitions_are_valid_for_our_engine() {
    let cases = property_cases();
    let text: String = cases.iter().map(|c| c.definition().to_string()).collect();
    for ty in ["Pass", "Choice", "Parallel", "Map"] {
        let n = text.matches(&format!("\"Type\":\"{ty}\"")).count();
        assert!(
            n >= PROPERTY_CASES / 4,
            "only {n} {ty} states in the generated definitions"
        );
    }
    for c in cases {
        if let Err(e) = statemachine::Definition::from_value(c.definition().clone()) {
            panic!(
                "{}: generated an invalid definition: {e}\n{}",
                c.name,
                c.definition()
            );
        }
    }
}
