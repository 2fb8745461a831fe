//! `rouge`: the Rouge appliance binary.
//!
//! `rouge run` starts the data plane; every other command talks to a running appliance
//! through its management socket or checks a configuration file.

use std::process::ExitCode;

use clap::Parser;
use rouge_appliance::cli::{self, Cli, Command};
use rouge_appliance::{config, console, readiness, run, top};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            cores,
            idle,
            realtime_priority,
            pcap,
            socket,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("ROUGE_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            run::run(run::RunOptions {
                config,
                cores,
                idle: idle.map(Into::into),
                realtime_priority,
                pcap,
                socket,
            })
        }
        Command::Check {
            config,
            config_only,
            ..
        } => match config::load(&config) {
            Ok(cfg) if config_only => {
                println!("{}: valid", config.display());
                for w in config::load_warnings(&config, &cfg) {
                    println!("warning: {w}");
                }
                Ok(())
            }
            Ok(cfg) => {
                println!("{}: valid", config.display());
                for w in config::load_warnings(&config, &cfg) {
                    println!("warning: {w}");
                }
                // What the drivers need, and what this machine lacks.
                let (report, missing) =
                    readiness::render(&readiness::assess(&cfg, &readiness::Facts::probe(&cfg)));
                print!("{report}");
                if missing {
                    Err(format!(
                        "{}: this machine lacks what the configuration's drivers need (the MISSING lines above, each with its fix)",
                        config.display()
                    ))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e.to_string()),
        },
        Command::Show {
            what,
            name,
            json,
            socket,
            virtual_name,
        } => {
            cli::show(&socket, what, name.or(virtual_name).as_deref(), json).map(|s| print!("{s}"))
        }
        Command::Pool { action } => cli::pool_action(action, None).map(|s| println!("{s}")),
        Command::Config { action } => cli::config_action(action).map(|s| println!("{s}")),
        Command::Console { socket } => console::run(&socket),
        Command::Top {
            sort,
            once,
            iterations,
            socket,
        } => top::run(&top::TopOptions {
            socket,
            sort,
            iterations: if once { Some(1) } else { iterations },
            interval: std::time::Duration::from_secs(1),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rouge: {e}");
            ExitCode::FAILURE
        }
    }
}
