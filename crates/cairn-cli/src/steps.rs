//! Timed, printed steps of a command.

use std::future::Future;
use std::time::Instant;

use cairn::Result;

/// Runs `step`, then prints its name, how long it took and the summary it returned.
///
/// # Errors
/// The step's error, after printing which step failed.
pub(crate) async fn step<F>(name: &str, step: F) -> Result<()>
where
    F: Future<Output = Result<String>>,
{
    let started = Instant::now();
    match step.await {
        Ok(summary) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            println!("  {name:<26} {ms:>9.2} ms  {summary}");
            Ok(())
        }
        Err(err) => {
            println!("  {name:<26} failed: {err}");
            Err(err)
        }
    }
}
