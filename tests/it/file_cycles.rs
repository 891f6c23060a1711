//! No two source files of a crate import each other, directly or around a
//! loop. A file "imports" the deepest module file that a path it names
//! reaches (`use crate::store::port::Store` imports `store/port.rs`; a name
//! re-exported by `store/mod.rs` and named through it imports `mod.rs`).
//! The crate root is the namespace that declares every module, not a room:
//! paths that reach only it are not counted. Comments and `#[cfg(test)]`
//! modules are left out, as test code may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots of the workspace's crates.
const ROOTS: &[&str] = &[
    "src",
    "gateway-rest/src",
    "crates/wa-gateway-core/src",
    "crates/wa-gateway-sql/src",
    "crates/wa-gateway-sqlite/src",
    "crates/wa-gateway-postgres/src",
    "crates/wa-json/src",
];

/// A crate's files by module path (`["store", "port"]`), and their text.
struct Tree {
    files: BTreeMap<Vec<String>, (PathBuf, String)>,
}

fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut segments: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        segments.pop();
    }
    segments
}

fn read_tree(root: &Path) -> Tree {
    let mut files = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.insert(module_path(root, &path), (path, text));
            }
        }
    }
    Tree { files }
}

/// The text without comments and without what follows `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every path of a `use` tree: `a::{b, c::{d}}` gives `a::b`, `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_owned()] };
    let prefix = &tree[..open];
    let close = tree.rfind('}').filter(|&close| close > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items.iter().filter(|i| !i.trim().is_empty()).flat_map(|i| expand(&format!("{prefix}{}", i.trim()))).collect()
}

/// The paths a file names: its `use` trees and inline `crate::` / `super::` paths.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let statement = &rest[at + 4..];
        let end = statement.find(';').unwrap_or(statement.len());
        if before.is_none_or(|c| c.is_whitespace() || c == ')') {
            // `a as b` renames: the path is `a`.
            let mut words = statement[..end].split_whitespace();
            let mut tree = String::new();
            while let Some(word) = words.next() {
                if word == "as" {
                    words.next();
                } else {
                    tree.push_str(word);
                }
            }
            let is_tree = tree.chars().all(|c| c.is_alphanumeric() || "_:{},*".contains(c));
            if is_tree && !tree.is_empty() {
                paths.extend(expand(&tree));
            }
        }
        rest = &statement[end..];
    }
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let starts_word = rest[..at].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let tail = &rest[at..];
            let len = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            if starts_word {
                paths.push(tail[..len].trim_end_matches(':').to_owned());
            }
            rest = &tail[len..];
        }
    }
    paths
}

/// The module file a path reaches from `module`, if any but the crate root.
fn target(tree: &Tree, module: &[String], path: &str) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first() {
        Some(&"crate") => Vec::new(),
        Some(&"self") => module.to_vec(),
        Some(&"super") => module.to_vec(),
        _ => {
            // A relative path names a child module, or an external crate.
            let mut child = module.to_vec();
            child.push(segments.first()?.to_string());
            if !tree.files.contains_key(&child) {
                return None;
            }
            segments.insert(0, "self");
            module.to_vec()
        }
    };
    segments.remove(0);
    while segments.first() == Some(&"super") {
        segments.remove(0);
        base.pop();
    }
    if path.starts_with("super") {
        base.pop();
    }
    let mut deepest = tree.files.contains_key(&base).then(|| base.clone());
    for segment in segments {
        base.push(segment.to_owned());
        if tree.files.contains_key(&base) {
            deepest = Some(base.clone());
        } else {
            break;
        }
    }
    deepest.filter(|found| !found.is_empty() && found.as_slice() != module)
}

/// Each loop of files that import each other, as the files' paths.
fn cycles(tree: &Tree) -> Vec<Vec<PathBuf>> {
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, (_, text)) in &tree.files {
        let reached = named_paths(&code_of(text)).iter().filter_map(|p| target(tree, module, p)).collect();
        edges.insert(module, reached);
    }
    // Strongly connected components (Tarjan), kept when larger than one file.
    struct Walk<'a> {
        edges: &'a BTreeMap<&'a Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        found: Vec<Vec<Vec<String>>>,
    }
    fn visit(walk: &mut Walk, node: &Vec<String>) {
        let n = walk.index.len();
        walk.index.insert(node.clone(), n);
        walk.low.insert(node.clone(), n);
        walk.stack.push(node.clone());
        for next in walk.edges.get(node).into_iter().flatten() {
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node.clone(), low);
            } else if walk.stack.contains(next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node.clone(), low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let at = walk.stack.iter().position(|m| m == node).unwrap();
            let component: Vec<_> = walk.stack.drain(at..).collect();
            if component.len() > 1 {
                walk.found.push(component);
            }
        }
    }
    let mut walk =
        Walk { edges: &edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for module in tree.files.keys() {
        if !walk.index.contains_key(module) {
            visit(&mut walk, module);
        }
    }
    walk.found.iter().map(|c| c.iter().map(|m| tree.files[m].0.clone()).collect()).collect()
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    for root in ROOTS {
        let tree = read_tree(&workspace.join(root));
        assert!(!tree.files.is_empty(), "{root} holds the crate's files");
        let found = cycles(&tree);
        assert!(found.is_empty(), "{root}: files that import each other: {found:#?}");
    }
}

/// The check finds a loop through a parent's re-export, one through
/// `super::`, and one through an inline path, and passes their mended forms.
#[test]
fn a_loop_between_files_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod store;\npub mod domain;\n");
    write("store/mod.rs", "mod port;\npub use port::Store;\nuse crate::domain::Id;\n");
    write("store/port.rs", "pub struct Store;\n");
    write("domain.rs", "use crate::store::Store; // through the re-export\npub struct Id;\n");
    write("a/mod.rs", "mod b;\nuse b::B;\n");
    write("a/b.rs", "use super::{A, c};\n");
    write("x.rs", "fn f() { crate::y::g() }\n");
    write("y.rs", "use crate::{x, z::{Z}};\n/// crate::x in a comment is no import\n");
    let found = cycles(&read_tree(dir.path()));
    let names: BTreeSet<Vec<String>> = found
        .iter()
        .map(|c| {
            let mut names: Vec<String> =
                c.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
            names.sort();
            names
        })
        .collect();
    let expected: BTreeSet<Vec<String>> = [
        vec!["domain.rs".to_owned(), "store/mod.rs".to_owned()],
        vec!["a/b.rs".to_owned(), "a/mod.rs".to_owned()],
        vec!["x.rs".to_owned(), "y.rs".to_owned()],
    ]
    .into();
    assert_eq!(names, expected);
    write("domain.rs", "use crate::store::port::Store;\npub struct Id;\n");
    write("a/b.rs", "pub struct B;\n");
    write("y.rs", "pub fn g() {}\n/// crate::x in a comment is no import\n");
    assert!(cycles(&read_tree(dir.path())).is_empty(), "{:?}", cycles(&read_tree(dir.path())));
}
