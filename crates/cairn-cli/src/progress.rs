//! Progress of long commands on stderr: an indicatif bar with rate and ETA on a terminal,
//! plain log lines (at each section's start and end, and every few seconds) otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn::admin::Progress;
use cairn::{Component, TenantId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain log lines report a running section.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The running section, for plain log lines.
struct Section {
    label: String,
    records: u64,
    bytes: u64,
    started: Instant,
    logged: Instant,
}

/// A [`Progress`] for the terminal or a log.
pub(crate) struct Reporter {
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
    section: Mutex<Option<Section>>,
}

impl Reporter {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub(crate) fn new() -> Reporter {
        Reporter {
            terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            section: Mutex::new(None),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `n` per second over `elapsed`.
pub(crate) fn rate(n: f64, elapsed: Duration) -> f64 {
    n / elapsed.as_secs_f64().max(1e-9)
}

impl Progress for Reporter {
    fn wants_totals(&self) -> bool {
        self.terminal
    }

    fn start(&self, tenant: &TenantId, component: Component, total: Option<u64>) {
        let label = format!("{tenant}/{component}");
        if self.terminal {
            let bar = match total {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template(
                        "{prefix:<32} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{prefix:<32} {spinner} {pos} {per_sec} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_prefix(label.clone());
            *lock(&self.bar) = Some(bar);
        } else {
            let total = total.map_or_else(String::new, |t| format!(" ({t} records)"));
            eprintln!("{label}: started{total}");
        }
        let now = Instant::now();
        *lock(&self.section) = Some(Section {
            label,
            records: 0,
            bytes: 0,
            started: now,
            logged: now,
        });
    }

    fn advance(&self, records: u64, bytes: u64) {
        if let Some(bar) = lock(&self.bar).as_ref() {
            bar.inc(records);
        }
        let mut section = lock(&self.section);
        let Some(section) = section.as_mut() else {
            return;
        };
        section.records += records;
        section.bytes += bytes;
        if !self.terminal && section.logged.elapsed() >= LOG_EVERY {
            section.logged = Instant::now();
            let elapsed = section.started.elapsed();
            eprintln!(
                "{}: {} records, {:.0} records/s",
                section.label,
                section.records,
                rate(section.records as f64, elapsed)
            );
        }
    }

    fn finish(&self, records: u64) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_with_message("done");
        }
        if let Some(section) = lock(&self.section).take()
            && !self.terminal
        {
            let elapsed = section.started.elapsed();
            eprintln!(
                "{}: done, {records} records in {:.2} s ({:.0} records/s)",
                section.label,
                elapsed.as_secs_f64(),
                rate(records as f64, elapsed)
            );
        }
    }
}
