//! `rouge console`: an interactive shell with line editing, history and help, taking
//! the same commands as the command line (without the leading `rouge`).

use std::path::Path;

use clap::Parser;
use rustyline::error::ReadlineError;

use crate::cli::{self, Cli, Command, ConfigAction};

const HELP: &str = "\
commands:
  show interfaces|arp|routes|stats|virtual|pool|member|class|connections|tls|config [NAME] [--json]
                                                             state and counters
  pool member enable|disable|force-offline POOL ADDR:PORT    change a member's admin state
  config save [FILE]                                         write the running config as TOML
  config apply FILE                                          replace the running config (no flow dropped)
  check --config FILE                                        validate a configuration file
  top [--sort rate|conns|bytes|name] [--iterations N]       live view (one screen a second; default 1 screen)
  help                                                       this list
  quit                                                       leave the console";

/// Runs one console line; returns the text to print, or `None` to leave.
pub fn run_line(socket: &Path, line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => return Some(String::new()),
        ["quit"] | ["exit"] => return None,
        ["help"] | ["?"] => return Some(HELP.to_string()),
        _ => {}
    }
    let argv = std::iter::once("rouge").chain(words.iter().copied());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "{}\n(type `help` for the commands)",
                e.to_string().trim_end()
            ))
        }
    };
    let out = match cli.command {
        Command::Show {
            what,
            name,
            json,
            virtual_name,
            ..
        } => cli::show(socket, what, name.or(virtual_name).as_deref(), json),
        Command::Pool { action } => cli::pool_action(action, Some(socket)),
        Command::Config { action } => cli::config_action(on_socket(action, socket)),
        Command::Check { config, .. } => match crate::config::load_with_warnings(&config) {
            Ok((_, warnings)) => Ok(std::iter::once(format!("{}: valid", config.display()))
                .chain(warnings.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join("\n")),
            Err(e) => Err(e.to_string()),
        },
        Command::Top {
            sort,
            once,
            iterations,
            ..
        } => crate::top::run(&crate::top::TopOptions {
            socket: socket.to_path_buf(),
            sort,
            // Inside the console Ctrl-C would end the console too: a bounded view.
            iterations: Some(if once { 1 } else { iterations.unwrap_or(1) }),
            interval: std::time::Duration::from_secs(1),
        })
        .map(|()| String::new()),
        Command::Run { .. } | Command::Console { .. } => {
            Err("not available inside the console".into())
        }
    };
    Some(match out {
        Ok(s) => s.trim_end().to_string(),
        Err(e) => format!("error: {e}"),
    })
}

/// The same action aimed at the console's appliance.
fn on_socket(action: ConfigAction, socket: &Path) -> ConfigAction {
    let socket = socket.to_path_buf();
    match action {
        ConfigAction::Save { file, .. } => ConfigAction::Save { file, socket },
        ConfigAction::Apply { file, .. } => ConfigAction::Apply { file, socket },
    }
}

/// The interactive loop. History is kept in `~/.rouge_history` when a home exists.
pub fn run(socket: &Path) -> Result<(), String> {
    let mut rl = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
    let history = std::env::var_os("HOME").map(|h| Path::new(&h).join(".rouge_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!(
        "rouge console ({}); `help` lists the commands",
        socket.display()
    );
    loop {
        match rl.readline("rouge> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                match run_line(socket, &line) {
                    Some(out) if out.is_empty() => {}
                    Some(out) => println!("{out}"),
                    None => break,
                }
            }
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_quit_and_errors() {
        let s = Path::new("/nonexistent/rouge.sock");
        assert!(run_line(s, "help").unwrap().contains("show interfaces"));
        assert_eq!(run_line(s, "quit"), None);
        assert_eq!(run_line(s, "   ").unwrap(), "");
        assert!(run_line(s, "show bogus").unwrap().contains("help"));
        let e = run_line(s, "show stats").unwrap();
        assert!(e.starts_with("error: cannot reach rouge"), "{e}");
        assert!(run_line(s, "run --config x")
            .unwrap()
            .contains("not available"));
    }
}
