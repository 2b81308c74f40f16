//! `admin import`: runs the import and writes what it finds: each refused row as it is met, then
//! the counts (words, or one JSON document), with a progress bar on standard error when that is a
//! terminal.

use std::io::{IsTerminal, Write};

use super::output::stdout_error;
use crate::cli::UsageError;
use crate::startup::Services;

/// `admin import`: refusals as they come (text lines, or the elements of the JSON document's
/// `refusals`), then the counts.
pub(super) async fn import(
    services: &Services,
    from: &str,
    dry_run: bool,
    keep_keys: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::service::import::{Importer, Location, Options, SourceError};
    let source = Location::parse(from);
    let importer = Importer::new(
        services.store.clone(),
        services.clock.clone(),
        services.accounts.hasher(),
        services.keys.clone(),
    );
    let mut sink = ImportOutput::new(json);
    if json {
        sink.write("{\n  \"refusals\": [")?;
    }
    let report = match importer
        .run(&source, Options { dry_run, keep_keys }, &mut sink)
        .await
    {
        Ok(report) => report,
        Err(e) => {
            sink.bar.finish_and_clear();
            if json {
                // Keep standard output a JSON document even when the import stops half-way.
                let _ = sink.write("\n  ],\n  \"error\": true\n}\n");
            }
            return Err(match e.downcast::<SourceError>() {
                Ok(usage) => UsageError(usage.0).into(),
                Err(e) => e,
            });
        }
    };
    sink.bar.finish_and_clear();
    if json {
        let tail = serde_json::to_string_pretty(&report)?;
        let tail = tail.strip_prefix('{').unwrap_or(&tail);
        sink.write(if sink.any { "\n  ]," } else { "]," })?;
        sink.write(tail)?;
        return sink.write("\n");
    }
    let a = &report.accounts;
    sink.write(&format!(
        "accounts: {} imported, {} already present ({} with the hash updated), {} refused, of {} read ({:.1} s)\n",
        a.imported, a.already_present, a.hash_updated, a.refused, a.read, report.seconds
    ))?;
    if let Some(k) = &report.keys {
        let revoked = k
            .revoked
            .map_or_else(|| "not checked in a dry run".to_owned(), |n| n.to_string());
        sink.write(&format!(
            "keys: {} imported, {} already present, {} skipped (owner not imported or suspended), {} unreadable, of {} live read; revoked as gone from the source: {revoked}\n",
            k.imported, k.already_present, k.skipped, k.refused, k.read
        ))?;
    }
    if report.dry_run {
        sink.write("dry run: nothing was written\n")?;
    }
    Ok(())
}

/// Where `admin import` writes: standard output for results, a progress bar on standard error
/// when that is a terminal.
struct ImportOutput {
    json: bool,
    /// Whether a refusal was written (JSON: the commas).
    any: bool,
    bar: indicatif::ProgressBar,
}

impl ImportOutput {
    fn new(json: bool) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        Self {
            json,
            any: false,
            bar,
        }
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        self.bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(stdout_error)
        })
    }
}

impl crate::service::import::ImportSink for ImportOutput {
    fn refused(&mut self, refused: crate::service::import::Refused) -> anyhow::Result<()> {
        let text = if self.json {
            format!(
                "{}\n    {}",
                if self.any { "," } else { "" },
                serde_json::to_string(&refused)?
            )
        } else {
            match &refused.name {
                Some(name) => format!("refused: {} ({name:?}): {}\n", refused.at, refused.reason),
                None => format!("refused: {}: {}\n", refused.at, refused.reason),
            }
        };
        self.any = true;
        self.write(&text)
    }

    fn phase(&mut self, phase: crate::service::import::Phase, total: Option<u64>) {
        use crate::service::import::Phase;
        let template = match phase {
            Phase::File => "{wide_bar} {percent}% {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
            Phase::Accounts => "accounts {wide_bar} {percent}% {pos}/{len} ({per_sec}, {eta} left)",
            Phase::Keys => "keys {wide_bar} {percent}% {pos}/{len} ({per_sec}, {eta} left)",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
        self.bar.set_position(0);
        self.bar.set_length(total.unwrap_or(0));
    }

    fn progress(&mut self, position: u64) {
        self.bar.set_position(position);
    }
}
