//! The house drawn from the imports: rooms are the top-level modules of
//! `src/` (a folder or a file), an arrow is a `crate::room` path in a room's
//! code (comments and unit-test modules left out). There is no circle of rooms,
//! and no module reaches another through the crate root's re-exports
//! (`crate::Name`), which would tie it to every room `lib.rs` re-exports.

use super::rust_files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The room of a file under `src/`, and its text without unit-test modules.
fn rooms() -> BTreeMap<String, String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for f in rust_files(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let room = first.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code = code.split("#[cfg(all(test").next().unwrap();
        // Code only: a doc link upward is a reference, not a dependency.
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let entry = out.entry(room.clone()).or_default();
            entry.push_str(line);
            entry.push('\n');
        }
    }
    out
}

/// The rooms each room's text names as `crate::room`.
fn arrows(rooms: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (room, text) in rooms {
        let mut to = BTreeSet::new();
        for part in text.split("crate::").skip(1) {
            let name: String =
                part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name != *room && rooms.contains_key(&name) {
                to.insert(name);
            }
        }
        out.insert(room.clone(), to);
    }
    out
}

#[test]
fn the_rooms_have_no_circle() {
    let rooms = rooms();
    let mut arrows = arrows(&rooms);
    arrows.remove("lib"); // the crate root re-exports every room
    // Peel off rooms that import no remaining room; what is left holds a circle.
    let mut left: BTreeSet<String> = arrows.keys().cloned().collect();
    loop {
        let ground: Vec<String> =
            left.iter().filter(|r| arrows[*r].iter().all(|t| !left.contains(t))).cloned().collect();
        if ground.is_empty() {
            break;
        }
        for r in ground {
            left.remove(&r);
        }
    }
    let circle: Vec<String> = left
        .iter()
        .map(|r| format!("{r} -> {:?}", arrows[r].intersection(&left).collect::<Vec<_>>()))
        .collect();
    assert!(circle.is_empty(), "rooms that import each other in a circle:\n{}", circle.join("\n"));
}

#[test]
fn no_module_goes_through_the_crate_root() {
    let mut wrong = Vec::new();
    for (room, text) in rooms().iter().filter(|(r, _)| *r != "lib") {
        for part in text.split("crate::").skip(1) {
            if part.starts_with(|c: char| c.is_ascii_uppercase()) || part.starts_with('{') {
                let name: String = part.chars().take(30).take_while(|c| *c != '\n').collect();
                wrong.push(format!("{room}: crate::{name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "name the module, not the crate root:\n{}", wrong.join("\n"));
}
