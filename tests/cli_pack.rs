//! `tenantflow release pack` through the binary.

mod common;

use common::*;

#[test]
fn packing_a_copy_of_an_example_reproduces_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    for id in ["0001-initial", "0002-loyalty-points", "0003-unique-email"] {
        let dir = tmp.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(example(id)).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "manifest.json" {
                std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
            }
        }
        let out = tenantflow(
            tmp.path(),
            &["release", "pack", dir.to_str().unwrap(), "--json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let committed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(example(id).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(printed, written);
        // Same scripts and sha256s as the committed manifest (settings come from flags there).
        assert_eq!(written["scripts"], committed["scripts"], "{id}");
        assert_eq!(written["release"], id);
    }
}

#[test]
fn pack_sets_strategy_fleet_and_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rel");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("V1__a.sql"), "CREATE TABLE a (x);").unwrap();
    let out = tenantflow(
        tmp.path(),
        &[
            "release",
            "pack",
            dir.to_str().unwrap(),
            "--id",
            "0009-custom",
            "--strategy",
            "in-place",
            "--fleet",
            "all-or-nothing",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["release"], "0009-custom");
    assert_eq!(m["strategy"], "in-place");
    assert_eq!(m["fleet"], "all-or-nothing");
    assert_eq!(m["scripts"][0]["name"], "V1__a.sql");
    assert_eq!(m["scripts"][0]["sha256"].as_str().unwrap().len(), 64);
}
