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
    /// Talk to the plugins without a phone: a prompt, or one --message
    Chat {
        /// Send this one message, print the reply and exit
        #[arg(long, short)]
        message: Option<String>,
        /// Print the TwiML Twilio would get instead of the messages
        #[arg(long)]
        twiml: bool,
        /// The sender
        #[arg(long, default_value = "whatsapp:+15550001111")]
        from: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Create a new plugin in plugins/NAME/ that answers ping with pong
    New {
        /// The language to write it in
        #[arg(long, value_enum)]
        lang: wasmbot::scaffold::Lang,
        /// Its name: lowercase letters, digits and '-'
        name: String,
        /// The plugins folder
        #[arg(long, env = "WASMBOT_PLUGINS", default_value = "plugins")]
        plugins: std::path::PathBuf,
    },
    /// Build plugin sources (plugins/NAME/) into plugins/NAME.wasm
    Build {
        /// The plugins to build [default: every folder in the plugins folder]
        names: Vec<String>,
        /// The plugins folder
        #[arg(long, env = "WASMBOT_PLUGINS", default_value = "plugins")]
        plugins: std::path::PathBuf,
        /// The WIT folder of the plugin contract, for plugins without a wit/ of their own [default: the nearest wit/ above the plugins folder, else the contract built into wasmbot]
        #[arg(long)]
        wit: Option<std::path::PathBuf>,
    },
    /// Write the plugin contract this wasmbot implements (wasmbot.wit) into DIR
    Wit {
        /// The folder to write wasmbot.wit into
        #[arg(default_value = "wit")]
        dir: std::path::PathBuf,
    },
    /// Load one component, validate it against the plugin contract, show
    /// what it declares and run it on a sample message
    Check {
        /// The component, e.g. plugins/quote.wasm
        file: std::path::PathBuf,
        /// The sample message
        #[arg(long, short, default_value = "ping")]
        message: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// mimalloc: per-thread free lists suit a server that allocates and frees
/// the same small objects on every message (measured in the README's
/// Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `wasmbot check` found the component wanting; its report is printed
/// already, so the program only exits with status 1 (after `run` returns,
/// so the log is flushed first).
#[derive(Debug, thiserror::Error)]
#[error("the check failed")]
struct CheckFailed;

fn main() {
    // Errors end the program with one clear line (and its causes), the
    // way a command-line tool should; no backtrace.
    if let Err(e) = run() {
        if !e.is::<CheckFailed>() {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    // The seed read `.flaskenv`; wasmbot reads `.env` in the working
    // directory when there is one (never from a parent folder). Variables
    // already set win over the file.
    let dotenv = std::path::Path::new(".env")
        .is_file()
        .then(|| dotenvy::from_path(".env").map(|()| std::path::PathBuf::from(".env")))
        .transpose()
        .context("reading .env")?;
    let cli = Cli::parse();
    // Chat and check print for a person: only warnings go to the log.
    let quiet = matches!(
        cli.command,
        Some(Command::Chat { .. } | Command::Check { .. })
    );
    // Log lines are formatted on the thread that logs and written in
    // batches by a background thread, so a slow terminal or pipe never
    // holds a request and a line costs a request one copy; when 1 MiB
    // waits, logging waits too rather than losing lines or growing. The
    // guard writes what is left at exit.
    let (writer, _flush_at_exit) =
        wasmbot::logsink::LogSink::spawn(std::io::stderr(), "wasmbot-log")
            .context("starting the log writer")?;
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMBOT_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
            }),
        )
        .init();
    if let Some(path) = dotenv {
        tracing::info!(file = %path.display(), "read environment file");
    }
    let rt = tokio::runtime::Runtime::new().context("starting tokio")?;
    let result = command(&rt, cli);
    // A plugin may still be compiling on a blocking thread (an 18 MB
    // component takes seconds): do not wait for it to exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

fn command(rt: &tokio::runtime::Runtime, cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => rt.block_on(serve(Config::resolve(&cli.serve, std::env::vars())?)),
        Some(Command::Serve(args)) => rt.block_on(serve(Config::resolve(&args, std::env::vars())?)),
        Some(Command::Chat {
            message,
            twiml,
            from,
            serve,
        }) => {
            let config = Config::resolve(&serve, std::env::vars())?;
            let options = wasmbot::chat::Options { from, twiml };
            rt.block_on(chat(config, message, options))
        }
        Some(Command::New {
            lang,
            name,
            plugins,
        }) => {
            let dir = wasmbot::scaffold::new(&plugins, lang, &name)?;
            println!(
                "created {}
next: wasmbot build {name}   (then it answers \"ping\" in a running bot, or: wasmbot chat -m ping)",
                dir.display()
            );
            Ok(())
        }
        Some(Command::Build {
            names,
            plugins,
            wit,
        }) => {
            // Plugins without a wit/ of their own are built against
            // --wit, the repo's (the nearest wit/ above), else the
            // contract built into this binary.
            let built_in = tempfile::tempdir().context("a temporary folder")?;
            let (wit, root) = match wit.or_else(|| wasmbot::toolchain::find_wit(&plugins)) {
                Some(wit) => {
                    let root = std::path::absolute(&wit)?
                        .parent()
                        .map_or_else(|| ".".into(), ToOwned::to_owned);
                    (wit, root)
                }
                None => {
                    wasmbot::scaffold::write_wit(built_in.path())?;
                    let plugins = std::path::absolute(&plugins)?;
                    let root = plugins
                        .parent()
                        .map_or_else(|| ".".into(), ToOwned::to_owned);
                    (built_in.path().to_owned(), root)
                }
            };
            let target_dir = wasmbot::toolchain::default_target_dir(&root);
            let mut failed = 0;
            for source in wasmbot::toolchain::sources(&plugins, &names)? {
                match wasmbot::toolchain::build(&source, &wit, &target_dir) {
                    Ok(out) => println!("built {}", out.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {}: {e}", source.display());
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} plugin(s) failed to build");
            }
            Ok(())
        }
        Some(Command::Wit { dir }) => {
            let path = wasmbot::scaffold::write_wit(&dir)?;
            println!(
                "wrote {} ({}@{})",
                path.display(),
                wasmbot::runtime::WIT_PACKAGE,
                wasmbot::runtime::WIT_VERSION
            );
            Ok(())
        }
        Some(Command::Check {
            file,
            message,
            serve,
        }) => {
            let config = Config::resolve(&serve, std::env::vars())?;
            match rt.block_on(wasmbot::check::check(&config, &file, &message)) {
                Ok(report) => {
                    print!("{report}");
                    Ok(())
                }
                Err(report) => {
                    eprint!("{report}");
                    Err(CheckFailed.into())
                }
            }
        }
    }
}

async fn chat(
    mut config: Config,
    message: Option<String>,
    options: wasmbot::chat::Options,
) -> anyhow::Result<()> {
    // Nothing leaves through Twilio from a chat: a plugin's `later.defer`
    // is unavailable, so it answers here and now.
    config.twilio_api = None;
    let server = wasmbot::Server::new(&config)?;
    let _background = server.start_plugins()?;
    server.registry.wait_ready().await;
    for failure in &server.registry.snapshot().errors {
        eprintln!("warning: {}: {}", failure.file, failure.error);
    }
    match message {
        Some(message) => {
            print!(
                "{}",
                wasmbot::chat::answer(&server, &message, &options, 1).await
            );
            Ok(())
        }
        None => Ok(wasmbot::chat::repl(&server, &options).await?),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(file) = &config.config_file {
        tracing::info!(file = %file.display(), "read configuration file");
    }
    // Descriptors bound the connections served and the plugins' own; the
    // default connection cap is derived from the raised limit.
    let fds = wasmbot::edge::raise_fd_limit();
    let server = wasmbot::Server::new(&config)?;
    tracing::debug!(
        fds,
        max_connections = server.edge_limits().max_connections,
        "open files"
    );
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
