//! The modules of `src/` import each other without circles.
//!
//! Reads the sources only: every file under `src/` (except `main.rs`, a crate of its own) is a
//! module; a `crate::…`, `$crate::…`, `self::…`, `super::…` or child-module path in it, whether in
//! a `use` or in code, and a path through a name such a `use` brought in, is an edge to the module
//! of the longest matching file (a `#[macro_export]` macro belongs to the file defining it).
//! Comments and string literals are skipped. Any strongly connected component of more than one
//! module fails the test and is named.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust source as identifiers and punctuation, without comments, strings or char literals.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |ch: char| ch.is_alphabetic() || ch == '_';
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' || (ch == 'b' && next == Some('"')) {
            i += if ch == 'b' { 2 } else { 1 };
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if (ch == 'r' || (ch == 'b' && next == Some('r')))
            && matches!(c.get(i + usize::from(ch == 'b') + 1), Some('"') | Some('#'))
            && !(c.get(i + usize::from(ch == 'b') + 1) == Some(&'#')
                && c.get(i + usize::from(ch == 'b') + 2)
                    .is_some_and(|&x| ident_start(x)))
        {
            // Raw string: r"…", r#"…"#, br"…".
            i += usize::from(ch == 'b') + 1;
            let mut hashes = 0;
            while c.get(i) == Some(&'#') {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if ch == '\'' {
            if next == Some('\\') {
                // '\n', '\u{…}'
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime or label.
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ch == '$' && next.is_some_and(ident_start) {
            let start = i;
            i += 1;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch == 'r' && next == Some('#') && c.get(i + 2).is_some_and(|&x| ident_start(x)) {
            i += 2;
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ident_start(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------ use trees

/// Expands the use tree starting at `toks[*i]` (just after `use`) into (path, bound name) pairs;
/// a glob binds nothing. Leaves `*i` after the closing `;`.
fn use_tree(
    toks: &[Tok],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    if toks.get(*i) == Some(&Tok::Path) {
        *i += 1; // a leading `::`
    }
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(name)) => {
                path.push(name.clone());
                *i += 1;
                if toks.get(*i) == Some(&Tok::Path) {
                    *i += 1;
                    continue;
                }
                let bound = if toks.get(*i) == Some(&Tok::Ident("as".into())) {
                    *i += 1;
                    let alias = match toks.get(*i) {
                        Some(Tok::Ident(a)) => a.clone(),
                        _ => String::new(),
                    };
                    *i += 1;
                    alias
                } else if name == "self" {
                    path.pop();
                    path.last().cloned().unwrap_or_default()
                } else {
                    name.clone()
                };
                out.push((path, Some(bound)));
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push((path, None));
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while !matches!(toks.get(*i), Some(Tok::Punct('}')) | None) {
                    use_tree(toks, i, &path, out);
                    if toks.get(*i) == Some(&Tok::Punct(',')) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}

// ------------------------------------------------------------------ the graph

type Module = Vec<String>;

fn show(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Module graph of a crate given as (module path, source) pairs: module → the modules it uses.
fn graph(files: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let toks: BTreeMap<&Module, Vec<Tok>> = files.iter().map(|(m, s)| (m, tokens(s))).collect();
    // `#[macro_export]` macros live at the crate root but belong to the file defining them.
    let mut macros: BTreeMap<String, Module> = BTreeMap::new();
    for (m, t) in &toks {
        for w in t.windows(4) {
            if let [Tok::Ident(kw), Tok::Punct('!'), Tok::Ident(name), _] = w {
                if kw == "macro_rules" {
                    macros.insert(name.clone(), (*m).clone());
                }
            }
        }
    }
    // The file module that an absolute path lands in.
    let owner = |abs: &[String]| -> Module {
        if abs.len() == 1 {
            if let Some(m) = macros.get(&abs[0]) {
                return m.clone();
            }
        }
        (0..=abs.len())
            .rev()
            .map(|n| abs[..n].to_vec())
            .find(|p| files.contains_key(p))
            .unwrap_or_default()
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (file, t) in &toks {
        let file: &Module = file;
        let targets = edges.entry(file.clone()).or_default();
        // Scope: the file's module plus the inline `mod x { … }` it is in.
        let mut scope: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let current = |scope: &[(String, usize)]| -> Vec<String> {
            file.iter()
                .cloned()
                .chain(scope.iter().map(|(n, _)| n.clone()))
                .collect()
        };
        // Resolves a path (as written) to an absolute one, or None for another crate's.
        let resolve =
            |segs: &[String], here: &[String], aliases: &BTreeMap<String, Vec<String>>| {
                let first = segs.first()?;
                let (mut base, mut rest) = match first.as_str() {
                    "crate" | "$crate" => (Vec::new(), &segs[1..]),
                    "self" => (here.to_vec(), &segs[1..]),
                    "super" => (here.to_vec(), segs),
                    _ => {
                        if let Some(a) = aliases.get(first) {
                            (a.clone(), &segs[1..])
                        } else {
                            let mut child = here.to_vec();
                            child.push(first.clone());
                            if files.contains_key(&child) {
                                (here.to_vec(), segs)
                            } else {
                                return None;
                            }
                        }
                    }
                };
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                Some(base)
            };
        let mut i = 0;
        while i < t.len() {
            match &t[i] {
                Tok::Punct('{') => {
                    depth += 1;
                    i += 1;
                }
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if scope.last().is_some_and(|(_, d)| *d == depth) {
                        scope.pop();
                    }
                    i += 1;
                }
                Tok::Ident(kw) if kw == "mod" => {
                    if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                        (t.get(i + 1), t.get(i + 2))
                    {
                        scope.push((name.clone(), depth));
                        depth += 1;
                        i += 3;
                    } else {
                        i += 1;
                    }
                }
                Tok::Ident(kw) if kw == "use" => {
                    i += 1;
                    let mut found = Vec::new();
                    use_tree(t, &mut i, &[], &mut found);
                    let here = current(&scope);
                    for (path, bound) in found {
                        if let Some(abs) = resolve(&path, &here, &aliases) {
                            let to = owner(&abs);
                            if let Some(name) = bound {
                                aliases.insert(name, abs);
                            }
                            if &to != file {
                                targets.insert(to);
                            }
                        }
                    }
                }
                Tok::Ident(_) if i == 0 || t[i - 1] != Tok::Path => {
                    let mut segs = Vec::new();
                    let mut j = i;
                    while let Some(Tok::Ident(s)) = t.get(j) {
                        segs.push(s.clone());
                        if t.get(j + 1) == Some(&Tok::Path) {
                            j += 2;
                        } else {
                            break;
                        }
                    }
                    if segs.len() > 1 {
                        if let Some(abs) = resolve(&segs, &current(&scope), &aliases) {
                            let to = owner(&abs);
                            if &to != file {
                                targets.insert(to);
                            }
                        }
                    }
                    i = j + 1;
                }
                _ => i += 1,
            }
        }
    }
    edges
}

/// The strongly connected components of more than one module.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<BTreeSet<Module>> {
    let nodes: Vec<&Module> = edges.keys().collect();
    let reach = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<Module>> =
        nodes.iter().map(|m| (*m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in &nodes {
        if done.contains(*m) {
            continue;
        }
        let comp: BTreeSet<Module> = nodes
            .iter()
            .filter(|n| *n == m || (reachable[*m].contains(**n) && reachable[**n].contains(*m)))
            .map(|n| (*n).clone())
            .collect();
        done.extend(comp.iter().cloned());
        if comp.len() > 1 {
            out.push(comp);
        }
    }
    out
}

fn src_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            src_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/commands/mod.rs` → `commands`; `src/lib.rs` → the crate root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let mut m: Module = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod") | Some("lib")) {
        m.pop();
    }
    m
}

// ------------------------------------------------------------------ tests

#[test]
fn src_has_no_import_cycles() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    src_files(&src, &mut paths);
    let files: BTreeMap<Module, String> = paths
        .iter()
        .filter(|p| p.as_path() != src.join("main.rs"))
        .map(|p| {
            (
                module_of(&src, p),
                fs::read_to_string(p).expect("a readable source file"),
            )
        })
        .collect();
    let g = graph(&files);
    let edge_count: usize = g.values().map(BTreeSet::len).sum();
    for (m, to) in &g {
        println!(
            "{} -> {}",
            show(m),
            to.iter().map(show).collect::<Vec<_>>().join(", ")
        );
    }
    let found = cycles(&g);
    println!(
        "{} modules, {edge_count} import edges, {} cyclic components",
        g.len(),
        found.len()
    );
    // The dispatcher reaches the commands: the parser sees the graph at all.
    assert!(
        g.get(&vec!["cli".to_string()]).is_some_and(|to| to
            .iter()
            .any(|m| m.first().is_some_and(|s| s == "commands"))),
        "src/cli.rs does not appear to use src/commands: {g:?}"
    );
    let named: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(show).collect::<Vec<_>>().join(" <-> "))
        .collect();
    assert!(
        named.is_empty(),
        "import cycles among the modules of src/: {named:#?}"
    );
}

fn fixture(files: &[(&str, &str)]) -> BTreeMap<Module, String> {
    files
        .iter()
        .map(|(m, s)| {
            let m: Module = if m.is_empty() {
                Vec::new()
            } else {
                m.split("::").map(str::to_string).collect()
            };
            (m, s.to_string())
        })
        .collect()
}

fn names(c: &[BTreeSet<Module>]) -> Vec<Vec<String>> {
    c.iter().map(|s| s.iter().map(show).collect()).collect()
}

#[test]
fn the_checker_sees_cycles_through_use_trees_aliases_super_and_macros() {
    // Grouped use one way, a path in code the other way.
    let g = graph(&fixture(&[
        ("", "pub mod a; pub mod b;"),
        ("a", "use crate::{b::{X, Y as Z}, c};\nfn f() {}"),
        (
            "b",
            "fn g() { let _ = \"crate::nothing::here\"; crate::a::f() }",
        ),
    ]));
    assert_eq!(names(&cycles(&g)), vec![vec!["a", "b"]]);

    // `use crate::cmd;` then `cmd::x::run()`; back through `super::super::`.
    let g = graph(&fixture(&[
        ("", "pub mod cli; pub mod cmd;"),
        ("cli", "use crate::cmd;\nfn run() { cmd::x::run() }"),
        ("cmd", "pub mod x; pub mod y;"),
        ("cmd::x", "use super::super::cli::Args;"),
        (
            "cmd::y",
            "// crate::cli::Args in a comment\n/* use crate::cli; */ fn f() {}",
        ),
    ]));
    assert_eq!(names(&cycles(&g)), vec![vec!["cli", "cmd::x"]]);

    // A macro exported at the root belongs to its file; `super` in an inline test module is the
    // file itself, not a cycle.
    let g = graph(&fixture(&[
        ("", "pub mod out; pub mod user;"),
        ("out", "#[macro_export] macro_rules! say { () => { $crate::out::w(crate::user::NAME) } }"),
        ("user", "pub const NAME: &str = \"x\"; fn f() { crate::say!() }\n#[cfg(test)] mod tests { use super::*; }"),
    ]));
    assert_eq!(names(&cycles(&g)), vec![vec!["out", "user"]]);
    let g = graph(&fixture(&[
        ("", "pub mod user;"),
        ("user", "fn f() {}\n#[cfg(test)] mod tests { use super::*; fn t() { super::f(); let c = '{'; } }"),
    ]));
    assert!(cycles(&g).is_empty(), "{g:?}");
    assert!(g[&vec!["user".to_string()]].is_empty(), "{g:?}");
}
