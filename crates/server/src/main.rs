//! `lottery`: run the platform, migrate databases, route user ids, mint tokens, seed a demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lottery_server::auth::TokenRole;
use lottery_server::config::{Config, Mode};
use lottery_server::{Role, compose, shutdown_signal, start, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "lottery",
    version,
    about = "Prize-draw campaigns that survive a traffic spike"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// TOML configuration file (optional; environment LOTTERY_... overrides it).
    #[arg(long, env = "LOTTERY_CONFIG")]
    config: Option<PathBuf>,
    /// Where embedded mode keeps its SQLite files and token secret.
    #[arg(long, env = "LOTTERY_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and/or the workers.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, env = "LOTTERY_LISTEN")]
        listen: Option<SocketAddr>,
        /// What runs in this process (also `LOTTERY_ROLE`).
        #[arg(long, value_enum, default_value_t = Role::All, env = "LOTTERY_ROLE")]
        role: Role,
    },
    /// Apply the database schema to the global database and every shard.
    Migrate {
        #[command(flatten)]
        common: Common,
        /// First create the databases the configuration names, when missing (a first
        /// install; needs a database user allowed to create databases).
        #[arg(long)]
        create_databases: bool,
    },
    /// Print where a user's rows live: database number and table suffix.
    Route {
        #[command(flatten)]
        common: Common,
        user_id: String,
    },
    /// Print a signed token, using the same secret as the server.
    Token {
        #[command(flatten)]
        common: Common,
        /// Token for this user id.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        user: Option<String>,
        /// Token for an admin.
        #[arg(long)]
        admin: bool,
        /// The admin's name (recorded as the creator of what they deploy).
        #[arg(long, default_value = "admin")]
        name: String,
    },
    /// Deploy a demo activity with a few awards and start it.
    SeedDemo {
        #[command(flatten)]
        common: Common,
    },
}

fn load(common: &Common) -> Result<Config, String> {
    let mut config = Config::load(common.config.as_deref()).map_err(|e| report(&e))?;
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            common,
            listen,
            role,
        } => serve(&common, listen, role).await,
        Command::Migrate {
            common,
            create_databases,
        } => migrate(&common, create_databases).await,
        Command::Route { common, user_id } => {
            let config = load(&common)?;
            let rc = compose::router_config(&config).map_err(|e| report(&e))?;
            let spread = rc.spread().map_err(|e| report(&e))?;
            let route = spread.route(&user_id);
            println!("db {} table {}", route.db_label(), route.table_suffix());
            Ok(())
        }
        Command::Token {
            common,
            user,
            admin,
            name,
        } => {
            let config = load(&common)?;
            let keys = compose::keys(&config).map_err(|e| report(&e))?;
            let token = if admin {
                keys.mint(&name, TokenRole::Admin)
            } else {
                let user = user.ok_or("give --user ID or --admin")?;
                lottery_domain::UserId::new(user.clone()).map_err(|e| format!("--user: {e}"))?;
                keys.mint(&user, TokenRole::User)
            }
            .map_err(|e| report(&e))?;
            println!("{token}");
            Ok(())
        }
        Command::SeedDemo { common } => seed_demo(&common).await,
    }
}

async fn serve(
    common: &Common,
    listen: Option<std::net::SocketAddr>,
    role: Role,
) -> Result<(), String> {
    let mut config = load(common)?;
    if let Some(addr) = listen {
        config.listen = addr;
    }
    telemetry::init(&config.log);
    let running = start(&config, role, shutdown_signal())
        .await
        .map_err(|e| report(&e))?;
    let url = format!("http://{}", running.addr);
    println!(
        "lottery is running in {} mode at {url}",
        mode_name(config.mode())
    );
    println!("  API docs:    {url}/docs");
    println!("  console:     {url}/console");
    println!("  play page:   {url}/play/ACTIVITY_ID#token=USER_TOKEN");
    // Tokens must be signed with this instance's secret: the data directory's in
    // embedded mode, the configuration's in cluster mode.
    let source = match (&common.config, config.mode()) {
        (Some(file), lottery_server::config::Mode::Cluster) => {
            format!("--config {}", file.display())
        }
        _ => format!("--data-dir {}", config.data_dir.display()),
    };
    println!("  admin token: lottery token {source} --admin");
    println!("  user token:  lottery token {source} --user alice");
    running.wait().await;
    Ok(())
}

async fn migrate(common: &Common, create_databases: bool) -> Result<(), String> {
    let config = load(common)?;
    telemetry::init(&config.log);
    if create_databases && let Some(db) = &config.database {
        let urls: Vec<String> = std::iter::once(db.global_url.clone())
            .chain(db.shard_urls.iter().cloned())
            .collect();
        let names = lottery_storage::create_databases(&urls)
            .await
            .map_err(|e| report(&e))?;
        println!("databases present: {}", names.join(", "));
    }
    let mut rc = compose::router_config(&config).map_err(|e| report(&e))?;
    // Schema changes on large tables may rightly run long.
    rc.statement_timeout_ms = 0;
    let storage = lottery_storage::Storage::connect(&rc)
        .await
        .map_err(|e| report(&e))?;
    storage.migrate().await.map_err(|e| report(&e))?;
    storage.close().await;
    println!("schema is up to date");
    Ok(())
}

async fn seed_demo(common: &Common) -> Result<(), String> {
    let config = load(common)?;
    telemetry::init(&config.log);
    let built = compose::build(&config, Role::Api)
        .await
        .map_err(|e| report(&e))?;
    let demo = lottery_server::api::demo_command();
    let lottery = &built.state.lottery;
    let deployed = lottery
        .administration()
        .deploy(demo, "demo")
        .await
        .map_err(|e| report(&e))?;
    for action in [
        lottery_activity::Action::Submit,
        lottery_activity::Action::Approve,
        lottery_activity::Action::Start,
    ] {
        lottery
            .administration()
            .act(deployed.activity_id, action)
            .await
            .map_err(|e| report(&e))?;
    }
    println!(
        "demo activity {} is running (strategy {})",
        deployed.activity_id, deployed.strategy_id
    );
    built.shutdown().await;
    Ok(())
}

/// An error with its causes, outermost first: `cannot start: stock store: connection refused`.
fn report(error: &(dyn std::error::Error + 'static)) -> String {
    lottery_domain::Chain(error).to_string()
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Embedded => "embedded",
        Mode::Cluster => "cluster",
    }
}
