//! README.md's tour, run as it is written (issue 15): the blocks marked `<!-- tour -->` are
//! pasted, in order, into one bash against the real binary (`serve`, on this binary's database),
//! and every `#>` line must be printed, in order (`…` matches anything).
//!
//! What a reader types is kept; only where it runs changes: `localhost:8080` and `localhost:8081`
//! become free ports, `cargo run --release -q --` the binary this suite built (so that the command
//! line reaches the test's database), `cargo run -q --example game_server` the example's binary, and
//! `deploy/` this repository's. Needs Debian's `nginx` (`./test` installs it).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::helpers::{database_url, free_port, installed, start_binary};

const README: &str = include_str!("../../README.md");

/// The tour's blocks: each fenced `sh` block right after a `<!-- tour -->` line.
fn tour_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "<!-- tour -->" {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "a tour marker must be followed by a ```sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

/// The `#>` lines of a script: what it must print, in order.
fn expectations(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#> ").map(str::to_owned))
        .collect()
}

/// Whether `line` is `expected`, where each `…` stands for any text.
fn matches(expected: &str, line: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    let (first, rest) = parts.split_first().expect("split gives one part at least");
    let Some(mut remaining) = line.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.is_empty()
}

/// Checks that the expectations appear in `output` in order; the error names the first one that
/// does not.
fn check_in_order(expected: &[String], output: &str) -> Result<(), String> {
    let mut lines = output.lines().map(|l| l.trim_end_matches('\r'));
    for want in expected {
        if !lines.by_ref().any(|line| matches(want, line)) {
            return Err(format!("`#> {want}` was not printed (in this order)"));
        }
    }
    Ok(())
}

fn example_binary() -> PathBuf {
    crate::game_server::example_binary()
}

#[test]
fn the_tour_marks_its_blocks_and_their_output() {
    let blocks = tour_blocks(README);
    assert!(blocks.len() >= 4, "the tour has its blocks: {}", blocks.len());
    let script = blocks.join("\n");
    for needed in [
        "localhost:8080/users",
        "deploy/forward-auth-demo.sh",
        "--example game_server",
    ] {
        assert!(script.contains(needed), "the tour shows {needed}");
    }
    assert!(expectations(&script).len() >= 8);
    assert!(matches("hello Bill (…)", "hello Bill (0c7e)"));
    assert!(matches(
        "{\"a\":\"…\",…,\"c\":1}",
        "{\"a\":\"x\",\"b\":2,\"c\":1}"
    ));
    assert!(!matches(
        "{\"a\":\"…\",…,\"c\":1}",
        "{\"a\":\"x\",\"b\":2,\"c\":2}"
    ));
    assert!(!matches("kicked Bill signed_out", "kicked Bill signed_out twice"));
    assert!(check_in_order(&["b".into(), "a".into()], "a\nb\n").is_err());
    assert!(check_in_order(&["a".into(), "b".into()], "a\nx\nb\n").is_ok());
}

/// The README starts with the two commands a new user runs, and CI runs the second.
#[test]
fn the_readme_starts_with_the_two_commands() {
    let first_block: Vec<&str> = README
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a first sh block")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(first_block.len(), 2, "two commands: {first_block:?}");
    assert!(first_block[0].starts_with("cargo run --release -- serve "));
    assert!(first_block[1].starts_with("./test "));
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let last = ci.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        last.trim(),
        "./test",
        ".ci/run runs the README's test command last"
    );
}

#[tokio::test]
#[cfg_attr(not(feature = "external"), ignore = "needs nginx: ./test runs it")]
async fn the_readme_tour_runs_as_written() {
    assert!(
        installed("nginx", "/usr/sbin/nginx").is_some(),
        "nginx is not installed: run ./test (it installs Debian's nginx package), \
         or apt-get install -y nginx"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(dir.path(), &[]).await;
    let nginx_port = free_port();
    let example = tokio::task::spawn_blocking(example_binary).await.unwrap();
    let root = env!("CARGO_MANIFEST_DIR");

    let script = tour_blocks(README).join("\n");
    let expected = expectations(&script);
    let runnable = script
        .replace("localhost:8080", &format!("127.0.0.1:{}", server.port))
        .replace("localhost:8081", &format!("127.0.0.1:{nginx_port}"))
        .replace(
            "cargo run --release -q --",
            &format!("'{}'", env!("CARGO_BIN_EXE_killbill-auth")),
        )
        .replace(
            "cargo run -q --example game_server",
            &format!("'{}'", example.display()),
        )
        .replace("deploy/", &format!("{root}/deploy/"));

    let work = tempfile::tempdir().unwrap();
    let mut bash = tokio::process::Command::new("bash");
    bash.arg("-c")
        .arg(format!("set -eu -o pipefail\n{runnable}"))
        .current_dir(work.path())
        .env("KILLBILL_AUTH_DATABASE_URL", database_url(dir.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = bash.spawn().expect("bash");
    let pgid = child.id().expect("a running bash");
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let ran = tokio::time::timeout(Duration::from_secs(120), child.wait()).await;
    // Whatever happened, nothing of the tour outlives the test (nginx, the game server), and
    // their ends of the pipes close.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let out = tokio::time::timeout(Duration::from_secs(10), out).await;
    let err = tokio::time::timeout(Duration::from_secs(10), err).await;
    let out = out.map(Result::unwrap_or_default).unwrap_or_default();
    let err = err.map(Result::unwrap_or_default).unwrap_or_default();
    let report = format!("stdout:\n{out}\nstderr:\n{err}");
    let status = match ran {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => panic!("the tour could not be run: {e}\n{report}"),
        Err(_) => panic!("the tour did not finish within 120 s\n{report}"),
    };
    assert!(status.success(), "the tour failed ({status})\n{report}");
    if let Err(e) = check_in_order(&expected, &out) {
        panic!("{e}\n{report}");
    }
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "the tour cleans up after itself"
    );
}
