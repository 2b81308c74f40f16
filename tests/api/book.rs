//! The book (`book/`, mdBook) and the repository's other documents hold no broken link: every
//! chapter of `SUMMARY.md` exists and every page is in it, every relative link and `{{#include}}`
//! reaches a file (and a heading or anchor where it names one), and the only runnable blocks are
//! the README tour's, which `readme_tour.rs` runs (the book includes them).
//! `mdbook build book` itself runs in `.ci/run`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.md` file under `dir`.
fn pages(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(pages(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The text of `markdown` outside fenced code blocks.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of `markdown`'s prose.
fn links(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// The anchor a heading gets (GitHub's and mdBook's rule): lower case, spaces to dashes, other
/// punctuation dropped.
fn slug(heading: &str) -> String {
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

/// The anchors of a markdown file's headings.
fn anchors(markdown: &str) -> HashSet<String> {
    prose(markdown)
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// Checks one link of `page`; the problem in words, if any.
fn check(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let resolved = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(file)
    };
    if !resolved.exists() {
        return Some(format!("{}: {target} does not exist", page.display()));
    }
    if let Some(anchor) = anchor {
        if resolved.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&resolved).unwrap();
            if !anchors(&text).contains(anchor) {
                return Some(format!("{}: no heading #{anchor} in {file}", page.display()));
            }
        }
    }
    None
}

#[test]
fn every_chapter_is_in_the_summary_and_every_link_reaches_its_target() {
    let src = root().join("book/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: HashSet<PathBuf> = links(&summary).iter().map(|l| src.join(l)).collect();
    let mut problems = Vec::new();
    for chapter in &listed {
        if !chapter.exists() {
            problems.push(format!(
                "SUMMARY.md lists {} which does not exist",
                chapter.display()
            ));
        }
    }
    let book = pages(&src);
    assert!(book.len() >= 12, "the book has its chapters: {book:?}");
    for page in &book {
        if page.file_name().is_some_and(|n| n != "SUMMARY.md") && !listed.contains(page) {
            problems.push(format!("{} is not in SUMMARY.md", page.display()));
        }
    }
    let mut documents = book.clone();
    for top in ["README.md", "SECURITY.md", "BENCHMARKS.md"] {
        documents.push(root().join(top));
    }
    let mut checked = 0;
    for page in &documents {
        let text = std::fs::read_to_string(page).unwrap();
        for target in links(&text) {
            checked += 1;
            problems.extend(check(page, &target));
        }
        // `{{#include FILE:ANCHOR}}`: the file exists and holds the anchor's two markers.
        for line in text.lines().filter(|l| l.trim_start().starts_with("{{#include ")) {
            let inner = line
                .trim()
                .trim_start_matches("{{#include ")
                .trim_end_matches("}}");
            let (file, anchor) = inner.split_once(':').unwrap_or((inner, ""));
            let path = page.parent().unwrap().join(file);
            match std::fs::read_to_string(&path) {
                Err(_) => problems.push(format!("{}: include {file} does not exist", page.display())),
                Ok(included) if !anchor.is_empty() => {
                    for marker in [format!("ANCHOR: {anchor}"), format!("ANCHOR_END: {anchor}")] {
                        if !included.contains(&marker) {
                            problems.push(format!("{}: {file} has no {marker}", page.display()));
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }
    assert!(checked > 50, "the documents link to each other: {checked} links");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

/// The book's runnable blocks are the README tour's (included, and run by `readme_tour.rs`): a
/// `<!-- tour -->` marker anywhere else would be a block no test runs.
#[test]
fn the_only_runnable_blocks_are_the_tours_which_a_test_runs() {
    for page in pages(&root().join("book/src")) {
        let text = std::fs::read_to_string(&page).unwrap();
        assert_eq!(
            markers(&text),
            0,
            "{}: a runnable block outside the README's tour",
            page.display()
        );
    }
    let client = std::fs::read_to_string(root().join("book/src/client.md")).unwrap();
    assert!(client.contains("{{#include ../../README.md:tour}}"));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tour = readme
        .split("ANCHOR: tour")
        .nth(1)
        .and_then(|t| t.split("ANCHOR_END: tour").next())
        .expect("the README's tour between its anchors");
    assert!(markers(tour) >= 4, "the included part holds the runnable blocks");
    assert_eq!(
        markers(&readme),
        markers(tour),
        "every runnable block of the README is in the part the book includes"
    );
}

/// The lines that mark a runnable block (as `readme_tour.rs` reads them).
fn markers(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == "<!-- tour -->").count()
}

#[test]
fn slugs_follow_the_heading_rule() {
    assert_eq!(
        slug(" Forward auth: protecting another back end"),
        "forward-auth-protecting-another-back-end"
    );
    assert_eq!(slug("The pepper"), "the-pepper");
    assert_eq!(
        slug("Installing on a server (systemd)"),
        "installing-on-a-server-systemd"
    );
}
