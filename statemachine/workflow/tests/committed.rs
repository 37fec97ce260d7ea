//! The committed `statemachine/deploy.asl.json` is the generator's output.

use std::path::Path;

#[test]
fn the_committed_definition_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("statemachine/")
        .join("deploy.asl.json");
    let committed = std::fs::read_to_string(&path).expect("statemachine/deploy.asl.json");
    let generated = workflow::definition_text();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} differs from the generator's output (first at line {}: committed {:?}, generated {:?}); \
             regenerate it with `make definition` (cargo run -p tenantflow-workflow --bin write-definition)",
            workflow::COMMITTED_PATH,
            line + 1,
            committed.lines().nth(line).unwrap_or("<end>"),
            generated.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn every_placeholder_has_a_substitution() {
    let text = workflow::definition_text();
    let table = workflow::substitutions("arn:aws:lambda:local:000000000000:function:", "p", "b");
    let mut rest = text.as_str();
    let mut used = 0;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("a closed placeholder");
        assert!(table.contains_key(&after[..end]), "${{{}}}", &after[..end]);
        used += 1;
        rest = &after[end + 1..];
    }
    assert!(used > 0);
    assert_eq!(
        table["CreateDbFunctionArn"],
        "arn:aws:lambda:local:000000000000:function:create-db"
    );
    assert_eq!(table["MigrationProjectName"], "p");
    assert_eq!(table["ReleaseBucket"], "b");
}
