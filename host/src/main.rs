//! The `wasmbot` binary: the command line over the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmbot::config::{Config, ServeArgs};

#[derive(Parser)]
#[command(
    name = "wasmbot",
    version,
    about = "A Twilio bot whose behaviours are WebAssembly components"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `wasmbot` serves.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Twilio webhook at POST /bot (the default)
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    // The seed read `.flaskenv`; wasmbot reads `.env` when there is one.
    // Variables already set win over the file.
    let dotenv = dotenvy::dotenv().ok();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMBOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(path) = dotenv {
        tracing::info!(file = %path.display(), "read environment file");
    }
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = Config::resolve(&args, std::env::vars())?;
    tokio::runtime::Runtime::new()
        .context("starting tokio")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = wasmbot::Server::new(&config)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "listening on http://{addr}/bot (plugins from {})",
        config.plugins_dir.display()
    );
    server.run(listener, wasmbot::shutdown_signal()).await
}
