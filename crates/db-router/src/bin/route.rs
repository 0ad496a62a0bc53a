//! `route --db-count N --tb-count M <user-id>`: prints the shard and table of a key.

use std::process::ExitCode;

use db_router::cli::{ROUTE_USAGE, RouteCommandError, route_command};

fn main() -> ExitCode {
    match route_command(std::env::args_os().skip(1)) {
        Ok(route) => {
            println!("{route}");
            ExitCode::SUCCESS
        }
        Err(RouteCommandError::Help) => {
            println!("{ROUTE_USAGE}");
            ExitCode::SUCCESS
        }
        Err(RouteCommandError::Usage(msg)) => {
            eprintln!("error: {msg}\n{ROUTE_USAGE}");
            ExitCode::from(2)
        }
    }
}
