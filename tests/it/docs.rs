//! The manual stays true: `docs/configuration.md` holds every command's
//! `--help` as the binary prints it (so a flag added without its line fails
//! here), and every relative link in the README and `docs/` resolves, to a
//! file and, when it names one, to a heading of that file.
//!
//! `WA_GATEWAY_BLESS=1 cargo test --test it docs::` rewrites the help
//! blocks of `docs/configuration.md` from the binary, leaving its prose.

use std::path::PathBuf;

use crate::common::BIN;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn help(command: &[String]) -> String {
    // As a fresh shell sees it: `--help` shows the environment's values.
    let mut run = std::process::Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WA_GATEWAY_") {
            run.env_remove(name);
        }
    }
    let out = run.args(command).arg("--help").output().unwrap();
    assert!(out.status.success(), "{command:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a `--help` lists, `help` aside.
fn subcommands(help: &str) -> Vec<String> {
    let Some(list) = help.split("Commands:\n").nth(1) else { return Vec::new() };
    list.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path, the binary's own first, depth first.
fn commands() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(command) = todo.pop() {
        let text = help(&command);
        for sub in subcommands(&text).into_iter().rev() {
            let mut deeper = command.clone();
            deeper.push(sub);
            todo.push(deeper);
        }
        all.push(command);
    }
    all
}

fn marker(command: &[String]) -> String {
    let name = if command.is_empty() { String::new() } else { format!(" {}", command.join(" ")) };
    format!("<!-- help: wa-gateway{name} -->")
}

/// `doc` with the fenced block after `marker` replaced by `text`.
fn with_block(doc: &str, marker: &str, text: &str) -> Option<String> {
    let at = doc.find(marker)? + marker.len();
    let open = at + doc[at..].find("```text\n")? + "```text\n".len();
    let close = if doc[open..].starts_with("```") { open } else { open + doc[open..].find("\n```")? + 1 };
    Some(format!("{}{}\n{}", &doc[..open], text.trim_end(), &doc[close..]))
}

#[test]
fn the_configuration_page_is_every_commands_help() {
    let path = root().join("docs/configuration.md");
    let mut doc = std::fs::read_to_string(&path).unwrap();
    let bless = std::env::var_os("WA_GATEWAY_BLESS").is_some();
    let mut stale = Vec::new();
    for command in commands() {
        let marker = marker(&command);
        let text = help(&command);
        match with_block(&doc, &marker, &text) {
            Some(updated) if updated == doc => {}
            Some(updated) if bless => doc = updated,
            Some(_) => stale.push(format!("{marker}: its block differs from `--help`")),
            None => stale.push(format!("{marker} is missing (with a ```text block after it)")),
        }
    }
    if bless {
        std::fs::write(&path, &doc).unwrap();
    }
    assert!(
        stale.is_empty() || bless,
        "docs/configuration.md has drifted from the binary; rewrite its blocks with \
         `WA_GATEWAY_BLESS=1 cargo test --test it docs::` and say what changed:\n{}",
        stale.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, and only
/// letters, digits, `-` and `_` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(doc: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// Relative link targets of a Markdown text, outside code.
fn links(doc: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Outside inline code spans.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                found.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    found
}

/// `path` without `.` and `..` components (it need not exist).
fn normalized(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_the_manual_resolves() {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let doc = std::fs::read_to_string(page).unwrap();
        for target in links(&doc) {
            checked += 1;
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved: PathBuf = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let name = page.strip_prefix(root()).unwrap_or(page).display().to_string();
            // The user's contract documents live beside the repository.
            if file.starts_with("../") && !normalized(&resolved).starts_with(root()) {
                continue;
            }
            if !resolved.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
                continue;
            }
            if !fragment.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the scan right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_scan_finds_links_and_headings_as_github_names_them() {
    let doc = "# Cluster mode (PostgreSQL)\n[a](docs/x.md#y) `[no](code)` [web](https://e.org)\n```\n[b](c.md)\n```\n";
    assert_eq!(links(doc), ["docs/x.md#y"]);
    assert_eq!(anchors(doc), ["cluster-mode-postgresql"]);
}
