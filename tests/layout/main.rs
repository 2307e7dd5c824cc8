//! The code's layout, checked: no crate's top-level modules import each other in a circle. A
//! circle means neither module can be read, tested or replaced without the other, which is what
//! the seams of DESIGN.md are for. Test code (`#[cfg(test)]` to the end of a file) is not counted.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

#[test]
fn no_crate_has_an_import_circle_between_its_top_level_modules() -> anyhow::Result<()> {
    let workspace =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or_else(|| anyhow::anyhow!("no workspace"))?;
    let crates = crate_sources(workspace)?;
    assert!(crates.len() >= 8, "found only {} crates under {}", crates.len(), workspace.display());
    let mut circles = Vec::new();
    for src in &crates {
        let graph = module_graph(src)?;
        if let Some(circle) = find_circle(&graph) {
            circles.push(format!("{}: {}", src.display(), circle.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
    Ok(())
}

#[test]
fn the_reader_sees_use_groups_paths_and_super_and_skips_comments_and_tests() {
    let code = "//! [`crate::ignored`]\nuse crate::{alpha, beta::{x, y}, Gamma};\nfn f() { crate::delta::go(); super::epsilon::run(); }\n#[cfg(test)]\nmod tests { use crate::zeta; }\n";
    let modules: BTreeSet<String> =
        ["alpha", "beta", "delta", "epsilon", "zeta", "ignored"].map(String::from).into_iter().collect();
    let used = references(code, true, &modules);
    assert_eq!(used, ["alpha", "beta", "delta", "epsilon"].map(String::from).into_iter().collect());
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(find_circle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

/// Every `src` directory of a workspace crate.
fn crate_sources(workspace: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![workspace.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !path.is_dir() || name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if name == "src" && dir.join("Cargo.toml").is_file() {
                found.push(path);
            } else {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Top-level module -> the crate's other top-level modules it refers to.
fn module_graph(src: &Path) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.is_dir() {
            for file in rust_files(&path)? {
                let top =
                    file.parent() == Some(path.as_path()) && file.file_stem().is_some_and(|s| s == "mod");
                files.push((stem.clone(), file, top));
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !["lib", "main"].contains(&stem.as_str()) {
            files.push((stem, path, true));
        }
    }
    let modules: BTreeSet<String> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file, top) in &files {
        let code = std::fs::read_to_string(file)?;
        let used = references(&code, *top, &modules);
        graph.entry(module.clone()).or_default().extend(used.into_iter().filter(|m| m != module));
    }
    Ok(graph)
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    Ok(found)
}

/// The crate's top-level `modules` that `code` names through `crate::` (or `super::` when the file is
/// the module's own top file), outside comments and test code.
fn references(code: &str, top: bool, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let roots: &[&str] = if top { &["crate::", "super::"] } else { &["crate::"] };
    for root in roots {
        for (at, _) in code.match_indices(root) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + root.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                used.extend(group_heads(group));
            } else {
                used.insert(identifier(rest));
            }
        }
    }
    used.retain(|m| modules.contains(m));
    used
}

/// The first path segment of each item of a `{...}` use group (after its opening brace).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = vec![identifier(group.trim_start())];
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(identifier(group[i + 1..].trim_start())),
            _ => {}
        }
    }
    heads
}

fn identifier(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// A circle in `graph` (its first module repeated at the end), if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}
