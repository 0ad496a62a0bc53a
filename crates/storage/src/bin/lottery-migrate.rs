//! Applies the schema to the global database and every shard (cluster mode), for operators:
//!
//! `lottery-migrate --global URL --shard URL [--shard URL ...] --tables N`
//!
//! The server binary's `migrate` subcommand does the same from its configuration file.

use std::process::ExitCode;

use db_router::RouterConfig;
use lottery_storage::Storage;

const USAGE: &str = "usage: lottery-migrate --global URL --shard URL [--shard URL ...] --tables N";

fn parse(args: impl Iterator<Item = String>) -> Result<RouterConfig, String> {
    let (mut global, mut shards, mut tables) = (None, Vec::new(), None);
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--global" => global = Some(value()?),
            "--shard" => shards.push(value()?),
            "--tables" => {
                let v = value()?;
                tables = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("--tables takes a number, got {v:?}"))?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let global = global.ok_or("--global is required")?;
    if shards.is_empty() {
        return Err("at least one --shard is required".into());
    }
    let config = RouterConfig::new(global, shards, tables.ok_or("--tables is required")?);
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = async {
        let storage = Storage::connect(&config).await?;
        storage.migrate().await?;
        storage.close().await;
        Ok::<_, lottery_storage::StorageError>(())
    }
    .await;
    match result {
        Ok(()) => {
            println!(
                "schema up to date on the global database and {} shard(s)",
                config.shard_urls.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}
