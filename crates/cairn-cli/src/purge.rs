//! `cairn purge`.

use std::process::ExitCode;

use cairn::admin::{self, PurgeOptions};
use cairn::{Error, Result, Storage, StorageConfig};
use clap::Args;
use time::Duration;

use crate::selection::SelectArgs;

/// Options of `cairn purge`.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Remove expired sessions.
    #[arg(long)]
    expired_sessions: bool,

    /// Remove events older than this age, e.g. `90d`, `12h`, `30m`, `45s`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    events_older_than: Option<Duration>,

    /// Remove hook executions older than this age, e.g. `30d`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    hooks_older_than: Option<Duration>,

    #[command(flatten)]
    select: SelectArgs,
}

/// Parses an age: a non-negative whole number followed by `d`, `h`, `m` or `s`.
fn parse_age(age: &str) -> std::result::Result<Duration, String> {
    let unit_at = age.len().saturating_sub(1);
    let (number, unit) = age.split_at(unit_at);
    let number: i64 =
        number.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!("`{age}`: expected a whole number and d, h, m or s, e.g. 30d")
        })?;
    let seconds_per = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("`{age}`: the unit must be d, h, m or s")),
    };
    number
        .checked_mul(seconds_per)
        .map(Duration::seconds)
        .ok_or_else(|| format!("`{age}` is too long"))
}

/// `cairn purge`: applies the asked retention to every selected tenant.
pub(crate) async fn purge(config: &StorageConfig, args: &PurgeArgs) -> Result<ExitCode> {
    let options = PurgeOptions {
        expired_sessions: args.expired_sessions,
        events_older_than: args.events_older_than,
        hooks_older_than: args.hooks_older_than,
    };
    if !options.expired_sessions
        && options.events_older_than.is_none()
        && options.hooks_older_than.is_none()
    {
        return Err(Error::invalid_input(
            "nothing to purge: give --expired-sessions, --events-older-than or \
             --hooks-older-than",
        ));
    }
    let storage = Storage::open(config).await?;
    let reports = admin::purge(&storage, &args.select.selection()?, &options).await?;
    println!(
        "{:<24} {:>10} {:>10} {:>10}",
        "tenant", "sessions", "events", "hooks"
    );
    for report in &reports {
        println!(
            "{:<24} {:>10} {:>10} {:>10}",
            report.tenant.as_str(),
            report.sessions,
            report.events,
            report.hooks
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_age("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_age("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        for bad in ["", "d", "-1d", "5w", "1.5h", "99999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
