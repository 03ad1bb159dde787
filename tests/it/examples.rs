//! The examples' command lines: `--help` lists every flag with its default
//! and exits 0; an unknown flag is an error that names it. Runs the example
//! binaries `cargo test` built beside this one.

use std::path::PathBuf;
use std::process::Command;

/// The path of example `name`'s binary, built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built (cargo test builds the examples)", path.display());
    path
}

fn names() -> Vec<&'static str> {
    let mut names = vec![
        "quickstart",
        "custom_source",
        "custom_filter",
        "custom_scorer",
        "gen_data",
        "live_shop",
        "signals_scale",
        "ann_recall",
        "evaluate",
        "search_eval",
        "off_policy",
        "online_learning",
        "server",
        "fault_drill",
        "alloc_count",
        "scaling",
    ];
    if cfg!(feature = "redis") {
        names.push("replicas");
    }
    names
}

#[test]
fn every_example_lists_its_flags_with_their_defaults() {
    for name in names() {
        let out = Command::new(example(name)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help failed");
        let help = String::from_utf8(out.stdout).unwrap();
        // One block per option: its line and the indented lines under it.
        let mut blocks: Vec<String> = Vec::new();
        for line in help.lines() {
            let t = line.trim_start();
            if t.starts_with("--") || t.starts_with("-h, ") {
                blocks.push(line.to_string());
            } else if let Some(b) = blocks.last_mut().filter(|_| line.starts_with("   ")) {
                b.push_str(line);
            }
        }
        assert!(blocks.len() >= 2, "{name}: no options in\n{help}");
        for b in blocks.iter().filter(|b| b.contains(" <")) {
            assert!(b.contains("[default"), "{name}: a flag without its default: {b}");
        }
    }
}

#[test]
fn an_unknown_flag_is_an_error_that_names_it() {
    for name in names() {
        let out = Command::new(example(name)).arg("--no-such-flag").output().unwrap();
        assert!(!out.status.success(), "{name} accepted an unknown flag");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("--no-such-flag"), "{name}: {err}");
    }
}
