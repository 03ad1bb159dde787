//! Docs that cannot drift: every count and list the docs state (features,
//! sources, filters, surfaces, the events header, the examples, the
//! feature table, the long-function exceptions) is compared with the code.

use super::rust_files;
use omnifeed::Surface;
use omnifeed::features::{F, FEATURES};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The docs a newcomer reads: the top-level documents and every module's
/// docs in `src/`.
fn docs() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ["README.md", "ARCHITECTURE.md", "FEATURES.md"]
        .iter()
        .map(|f| (f.to_string(), read(f)))
        .collect();
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: String = text
            .lines()
            .filter(|l| l.trim_start().starts_with("//!") || l.trim_start().starts_with("///"))
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        out.push((file.strip_prefix(root()).unwrap().display().to_string(), doc));
    }
    out
}

const NUMBER_WORDS: [&str; 31] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "twenty-one",
    "twenty-two",
    "twenty-three",
    "twenty-four",
    "twenty-five",
    "twenty-six",
    "twenty-seven",
    "twenty-eight",
    "twenty-nine",
    "thirty",
];

fn number(word: &str) -> Option<usize> {
    let w = word.to_lowercase();
    w.parse().ok().or_else(|| NUMBER_WORDS.iter().position(|&n| n == w))
}

/// Every "N <qualifier>? noun" in the docs whose noun is one of `nouns`,
/// with the number read.
fn stated_counts(nouns: &[&str]) -> Vec<(String, usize, String)> {
    let qualifiers = ["", "named ", "ranking ", "built-in ", "candidate ", "feature "];
    let mut out = Vec::new();
    for (file, text) in docs() {
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let Some(n) = number(w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')) else {
                continue;
            };
            // "at most 32 sources" is a bound, not a count.
            if i > 0 && ["most", "to", "than"].contains(&words[i - 1]) {
                continue;
            }
            for q in qualifiers {
                let q_words: Vec<&str> = q.split_whitespace().collect();
                let at = i + 1 + q_words.len();
                if words.get(i + 1..at).is_some_and(|s| s == q_words) {
                    let noun = words.get(at).map(|s| s.trim_matches(|c: char| !c.is_alphabetic()));
                    // Bare "columns" are any table's; feature columns are named.
                    let bare_columns = q.is_empty() && noun == Some("columns");
                    if let Some(noun) = noun.filter(|n| nouns.contains(n) && !bare_columns) {
                        let phrase = words[i..=at].join(" ");
                        out.push((file.clone(), n, format!("{phrase} ({noun})")));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_stated_count_matches_the_code() {
    let rec = super::adversarial::recommender();
    let expect = [
        (&["features", "columns"][..], F),
        (&["sources"][..], rec.source_ids().len()),
        (&["filters"][..], rec.filter_ids().len()),
        (&["surfaces"][..], Surface::ALL.len()),
    ];
    let mut wrong = Vec::new();
    for (nouns, n) in expect {
        for (file, got, phrase) in stated_counts(nouns) {
            if got != n {
                wrong.push(format!("{file}: \"{phrase}\" but the code has {n}"));
            }
        }
    }
    for (file, text) in docs() {
        for part in text.split("F = ").skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && digits.parse::<usize>() != Ok(F) {
                wrong.push(format!("{file}: F = {digits} but the code has {F}"));
            }
        }
    }
    assert!(wrong.is_empty(), "the docs drifted:\n{}", wrong.join("\n"));
}

#[test]
fn the_source_and_filter_tables_list_the_built_in_stages() {
    let rec = super::adversarial::recommender();
    // The first column of the table whose header names `id` / `filter`.
    let table_ids = |text: &str, header: &str| -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim_start_matches("//!").trim().starts_with(header))
            .unwrap_or_else(|| panic!("no table headed {header:?}"));
        lines[start + 2..]
            .iter()
            .map(|l| l.trim_start_matches("//!").trim())
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cell = l.split('|').nth(1).unwrap().trim();
                cell.trim_matches(|c| c == '`' || c == '[' || c == ']').to_string()
            })
            .collect()
    };
    let sources = table_ids(&read("src/retrieve/mod.rs"), "| id |");
    assert_eq!(sources, rec.source_ids(), "src/retrieve/mod.rs's table");
    let filters = table_ids(&read("src/pipeline/mod.rs"), "| filter |");
    let names: Vec<String> = filters.iter().map(|f| f.to_lowercase()).collect();
    let ids: Vec<String> = rec.filter_ids().iter().map(|f| f.replace('_', "")).collect();
    let blocked = |s: &String| if s == "blocked" { "blocklist".to_string() } else { s.clone() };
    assert_eq!(names.iter().map(blocked).collect::<Vec<_>>(), ids, "src/pipeline/mod.rs's table");
}

#[test]
fn the_feature_table_is_the_schema() {
    let md = read("FEATURES.md");
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(char::is_numeric))
        .collect();
    let want: Vec<String> = FEATURES
        .iter()
        .map(|f| {
            format!(
                "| {} | `{}` | {} | {} | {} | {} |",
                f.column, f.name, f.definition, f.range, f.scaling, f.source
            )
        })
        .collect();
    assert_eq!(rows, want, "FEATURES.md's table differs from features::FEATURES");
}

#[test]
fn the_events_header_is_the_one_the_loader_reads() {
    let data = read("data/events.csv");
    let header = data.lines().next().unwrap();
    let mut wrong = Vec::new();
    for (file, text) in docs() {
        for part in text.split("`at,user,").skip(1) {
            let stated = format!("at,user,{}", part.split('`').next().unwrap());
            if stated != header {
                wrong.push(format!("{file}: `{stated}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "the events header is {header:?}; docs say:\n{}", wrong.join("\n"));
}

#[test]
fn every_example_is_named_and_every_named_example_exists() {
    let mut examples: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // Cargo's examples: `name.rs`, or `name/main.rs` (a folder without
        // `main.rs`, as `support/`, holds shared modules).
        .filter(|p| p.join("main.rs").is_file() || p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    examples.sort();
    let mut wrong = Vec::new();
    for doc in ["README.md", "ARCHITECTURE.md", "src/lib.rs"] {
        let text = read(doc);
        for e in &examples {
            if !text.contains(&format!("`{e}`")) && !text.contains(&format!("--example {e}")) {
                wrong.push(format!("{doc} does not name the example {e}"));
            }
        }
        for part in text.split("--example ").skip(1) {
            let named: String =
                part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !named.is_empty() && !examples.contains(&named) {
                wrong.push(format!("{doc} names --example {named}, which does not exist"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Function lengths in `src/`: at most 80 lines, except the numeric
/// kernels ARCHITECTURE.md lists under "Numeric kernels longer than 80
/// lines" (by `path::function`).
#[test]
fn no_function_is_longer_than_80_lines_but_the_listed_kernels() {
    let arch = read("ARCHITECTURE.md");
    let section = arch.split("## Numeric kernels longer than 80 lines").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let mut long = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            let t = t.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            let t = t.trim_start_matches("const ").trim_start_matches("unsafe ");
            let Some(rest) = t.strip_prefix("fn ") else { continue };
            if line.trim_end().ends_with(';') {
                continue;
            }
            let name: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let close = " ".repeat(indent) + "}";
            let end = (i + 1..lines.len()).find(|&j| lines[j].trim_end() == close);
            let Some(end) = end else { continue };
            if end - i + 1 > 80 && !section.contains(&format!("::{name}`")) {
                let rel = file.strip_prefix(root()).unwrap().display().to_string();
                long.push(format!("{rel}:{} {name}: {} lines", i + 1, end - i + 1));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines not listed in ARCHITECTURE.md:\n{}",
        long.join("\n")
    );
}

/// Every file of `src/` has its row in ARCHITECTURE.md's "Which file is
/// which room" table, and every row names a file that exists.
#[test]
fn the_room_table_lists_every_file() {
    let arch = read("ARCHITECTURE.md");
    let table = arch.split("## Which file is which room").nth(1).unwrap();
    let table = table.split("\n## ").next().unwrap();
    let mut listed: Vec<String> = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `src/")) {
        let cell = line.split('`').nth(1).unwrap();
        // `src/load/{catalog,npy,logs}.rs` lists three files.
        match (cell.find('{'), cell.find('}')) {
            (Some(a), Some(b)) => {
                for name in cell[a + 1..b].split(',') {
                    listed.push(format!("{}{name}{}", &cell[..a], &cell[b + 1..]));
                }
            }
            _ => listed.push(cell.to_string()),
        }
    }
    let files: Vec<String> = rust_files(&root().join("src"))
        .iter()
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    let missing: Vec<&String> = files.iter().filter(|f| !listed.contains(f)).collect();
    let gone: Vec<&String> = listed.iter().filter(|f| !files.contains(f)).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "not in the table: {missing:?}; no such file: {gone:?}"
    );
}
