//! Where the suite's external tools are: `moto_server` and the policy expander's Python (from
//! `.ci/tools/emulator.sh`), Node 22 with iam-simulate (from `.ci/tools/node.sh`), all under the
//! repository's git-ignored `.tools/` (or `$TENANTFLOW_TOOLS`). A missing tool fails the test
//! loudly, naming what to run: it is never a silent pass.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct Tools {
    pub root: PathBuf,
    pub moto_server: PathBuf,
    pub python: PathBuf,
    pub node: PathBuf,
    pub policies_script: PathBuf,
    pub evaluate_script: PathBuf,
}

pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let root = repo_root();
        let dir = std::env::var_os("TENANTFLOW_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".tools"));
        let t = Tools {
            moto_server: dir.join("py/emulator/bin/moto_server"),
            python: dir.join("py/emulator/bin/python"),
            node: dir.join("node/node_modules/node/bin/node"),
            policies_script: root.join(".ci/emulator/policies.py"),
            evaluate_script: root.join(".ci/emulator/evaluate.mjs"),
            root,
        };
        let iam_simulate = dir.join("node/node_modules/@cloud-copilot/iam-simulate/package.json");
        for p in [&t.moto_server, &t.python, &t.node, &iam_simulate] {
            assert!(
                p.exists(),
                "EMULATOR SUITE CANNOT RUN: {} is missing. Run `make tools` (.ci/tools/emulator.sh \
                 installs moto[server] and aws-sam-translator, .ci/tools/node.sh installs Node 22 \
                 and @cloud-copilot/iam-simulate into .tools/). This is a failure, not a skip.",
                p.display()
            );
        }
        t
    })
}
