//! The command line describes itself: every command has help with examples, and
//! usage mistakes exit non-zero with clap's message.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ehrfusion")).args(args).output().unwrap()
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [vec![], vec!["generate-dataset"], vec!["generate-measures"], vec!["create-dummy-tables"], vec!["explain"]] {
        let mut args = command.clone();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Examples:"), "{command:?} help has no examples:\n{text}");
        assert!(text.contains("Usage: ehrfusion"), "{text}");
    }
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("ehrfusion {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_mistakes() {
    let out = run(&["generate-dataset"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<DEFINITION>"));
    let out = run(&["generate-dataset", "x.json", "--data", "a", "--dummy-tables", "b"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["generate-dataset", "x.json", "--output", "out.xlsx", "--data", "."]);
    assert_eq!(out.status.code(), Some(2), "a bad --output is a usage mistake, as in ehrQL");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output out.xlsx: the file extension must be"));
}
