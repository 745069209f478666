//! Running external commands: echo each one to stderr, then fail with a clear message when
//! it cannot start or exits unsuccessfully.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::Result;

/// A `cargo` command using the same cargo binary that runs this xtask.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `command` with inherited stdio, echoing it first; fails unless it exits with 0.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(command));
    let status = command
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", display(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(command)).into())
    }
}

/// Like [`run`], but the command's stdout goes to our stderr, keeping our stdout for the
/// task's result.
pub(crate) fn run_to_stderr(command: &mut Command) -> Result<()> {
    run(command.stdout(std::io::stderr()))
}

/// Runs `command` with captured output, echoing it first; returns its trimmed stdout and
/// fails, quoting stderr, unless it exits with 0.
pub(crate) fn read(command: &mut Command) -> Result<String> {
    eprintln!("$ {}", display(command));
    let output = capture(command)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(failure(command, &output).into())
    }
}

/// Runs `command` silently and returns its output, whatever the exit status.
pub(crate) fn capture(command: &mut Command) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", display(command)).into())
}

/// A message for a command that exited unsuccessfully, with its stderr and stdout.
pub(crate) fn failure(command: &Command, output: &Output) -> String {
    let mut message = format!("`{}` failed ({})", display(command), output.status);
    for stream in [&output.stderr, &output.stdout] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            message.push_str("\n  ");
            message.push_str(&text.trim().replace('\n', "\n  "));
        }
    }
    message
}

/// The command as a shell-like line: the environment it sets, the program and its arguments.
pub(crate) fn display(command: &Command) -> String {
    let env = command
        .get_envs()
        .filter_map(|(name, value)| Some(format!("{}={}", name.to_string_lossy(), quote(value?))));
    let program = std::iter::once(quote(command.get_program()));
    let args = command.get_args().map(quote);
    env.chain(program).chain(args).collect::<Vec<_>>().join(" ")
}

/// `word` quoted for a POSIX shell when it holds anything but plainly safe characters.
pub(crate) fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
