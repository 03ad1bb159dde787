//! The server's command line and its run: config, log, replica thread,
//! runtime, listener, shutdown. `fault_drill` runs the same as its child.

use crate::{app, routes};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The command line (`--help` lists every flag with its default).
#[derive(Debug, clap::Parser)]
#[command(name = "server", about = "The reference HTTP/JSON service over a durable log")]
pub struct Cli {
    /// The service config, with its `[server]` table.
    #[arg(long, value_name = "PATH", default_value = "examples/omnifeed.toml")]
    config: PathBuf,
    /// Listen here [default: the config's server.listen].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The log and snapshots directory [default: the config's server.data_dir].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The catalog directory of a first start [default: the config's server.catalog].
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Follow the shared Redis stream at this URL instead of the file log
    /// (needs `--features redis`) [default: none].
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// Parses the command line and serves; logs go to stderr.
#[allow(dead_code)] // fault_drill enters through `main_from`
pub fn main() -> ExitCode {
    main_from(std::env::args())
}

/// Parses `args` (the first is the program's name) and serves.
pub fn main_from(args: impl Iterator<Item = String>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = <Cli as clap::Parser>::parse_from(args);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or ctrl-c.
pub fn run(cli: &Cli) -> Result<(), app::BoxError> {
    let (service, mut server) = app::read_config(Some(&cli.config))?;
    if let Some(l) = &cli.listen {
        server.listen = l.clone();
    }
    if let Some(d) = &cli.data_dir {
        server.data_dir = d.clone();
    }
    if let Some(c) = &cli.catalog {
        server.catalog = c.clone();
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let log = app::open_log(&server, cli.redis.as_deref())?;
    let app = Arc::new(app::App::new(log, server.ready_lag, handle));
    let follower = {
        let (app, server) = (Arc::clone(&app), server.clone());
        std::thread::Builder::new()
            .name("omnifeed-replica".into())
            .spawn(move || app::follow(app, service, server))?
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if server.workers > 0 {
        runtime.worker_threads(server.workers);
    }
    let served = runtime.enable_all().build()?.block_on(serve(Arc::clone(&app), &server));
    app.stop.store(true, Ordering::Relaxed);
    let _ = follower.join();
    served
}

async fn serve(app: Arc<app::App>, server: &app::ServerConfig) -> Result<(), app::BoxError> {
    let listener = tokio::net::TcpListener::bind(&server.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let router = routes::router(app, server.max_body_bytes);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
